package console

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"firewalliq/appliance/auth"
	"firewalliq/audit"
)

// TestTemplatesParse checks that the embedded templates parse and escape
// (New does both at boot) and that a broken template fails instead of
// serving, whether the parser or the escaper finds the fault; and that a
// page whose zero-data execution merely fails (a field of nil Data) is
// not refused.
func TestTemplatesParse(t *testing.T) {
	if _, err := parseTemplates(templateFS, funcs(func(string, auth.Operation) bool { return true })); err != nil {
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
		// These parse; html/template finds them only when it escapes the
		// page at its first Execute, which parseTemplates does at boot.
		{"unclosed attribute quote", `{{define "content"}}<a href="{{.Title}}>x</a>{{end}}`},
		{"unclosed attribute quote at the end", `{{define "content"}}<a href="{{.Title}}{{end}}`},
		{"unclosed single-quoted attribute", `{{define "content"}}<p title='{{.Title}}{{end}}`},
		{"script left open", `{{define "content"}}<script>/* {{.Title}}{{end}}`},
	}
	// A good page that fails to execute with no data (nil .Data) is fine:
	// only escaping errors fail the boot.
	fsys := fstest.MapFS{
		"templates/layout.html": {Data: layout},
		"templates/ok.html":     {Data: []byte(`{{define "content"}}<a href="/x?y={{.Data.Missing.Field}}">x</a>{{end}}`)},
	}
	if _, err := parseTemplates(fsys, funcs(func(string, auth.Operation) bool { return true })); err != nil {
		t.Fatalf("a page that only fails on nil data was refused: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{
				"templates/layout.html": {Data: layout},
				"templates/bad.html":    {Data: []byte(tt.page)},
			}
			_, err := parseTemplates(fsys, funcs(func(string, auth.Operation) bool { return true }))
			if err == nil {
				t.Fatal("a broken template parsed")
			}
			t.Log(err)
		})
	}
}

// FuzzQRURL checks the one URL the console marks safe: whatever the input,
// the result is "" or a data:image/png;base64 URI of base64 characters
// only, equal to the input.
func FuzzQRURL(f *testing.F) {
	// Seeds: a real PNG URI, other schemes, markup and quote breaking.
	for _, s := range []string{
		"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
		"javascript:alert(1)",
		"data:text/html;base64,PHNjcmlwdD4=",
		`data:image/png;base64,AAAA"><script>`,
		"data:image/png;base64,",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := string(qrURL(in))
		if out == "" {
			return
		}
		const prefix = "data:image/png;base64,"
		if out != in || len(out) < len(prefix) || out[:len(prefix)] != prefix {
			t.Fatalf("qrURL(%q) = %q", in, out)
		}
		for _, r := range out[len(prefix):] {
			if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '+' || r == '/' || r == '=') {
				t.Fatalf("qrURL(%q) kept %q", in, r)
			}
		}
	})
}

// FuzzActivityChart checks that the chart, emitted as trusted HTML, holds
// only its fixed markup whatever the entries' times.
func FuzzActivityChart(f *testing.F) {
	// Seeds: entries now, an hour ago, in the future and long ago.
	f.Add(int64(0), int64(3600), int64(-60), int64(1<<40))
	f.Fuzz(func(t *testing.T, a, b, c, d int64) {
		now := time.Date(2026, 11, 29, 15, 30, 0, 0, time.UTC)
		var es []audit.Entry
		for _, ago := range []int64{a, b, c, d} {
			es = append(es, audit.Entry{Time: now.Add(-time.Duration(ago%(1<<40)) * time.Second)})
		}
		out := string(activityChart(es, now))
		if !strings.HasPrefix(out, `<svg class="chart"`) || !strings.HasSuffix(out, "</svg>") || strings.Contains(out, "<script") {
			t.Fatalf("chart: %s", out)
		}
	})
}
