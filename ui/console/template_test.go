package console

import (
	"testing"
	"testing/fstest"
)

// TestTemplatesParse checks that the embedded templates parse (New does
// this at boot) and that a broken template fails instead of serving.
func TestTemplatesParse(t *testing.T) {
	if _, err := parseTemplates(templateFS); err != nil {
		t.Fatalf("embedded templates: %v", err)
	}
	layout, err := templateFS.ReadFile("templates/layout.html")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		page string
	}{
		{"unclosed action", `{{define "content"}}{{if .P}}{{end}}`},
		{"unknown function", `{{define "content"}}{{nosuchfunc .}}{{end}}`},
		{"no content", `{{define "other"}}x{{end}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{
				"templates/layout.html": {Data: layout},
				"templates/bad.html":    {Data: []byte(tt.page)},
			}
			if _, err := parseTemplates(fsys); err == nil {
				t.Fatal("a broken template parsed")
			}
		})
	}
}
