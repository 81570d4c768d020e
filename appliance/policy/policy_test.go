package policy

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func mustParse(t testing.TB, src string) *Document {
	t.Helper()
	d, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return d
}

func TestParseExample(t *testing.T) {
	src, err := os.ReadFile("testdata/dmz.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d := mustParse(t, string(src))
	if d.Name != "dmz-from-corp" || d.VantagePoint != "corp-lan" || len(d.Rules) != 3 || len(d.Groups) != 2 || len(d.Canaries) != 1 {
		t.Fatalf("parsed %+v", d)
	}
	if got := d.Rules[1].Prefixes(); len(got) != 1 || got[0].String() != "10.30.0.0/24" {
		t.Errorf("db-closed prefixes %v", got)
	}
	// The canonical JSON parses back to the same document (JSON is read
	// through the same YAML parser, with lines).
	d2 := mustParse(t, string(d.Canonical()))
	if string(d2.Canonical()) != string(d.Canonical()) || d2.SHA256() != d.SHA256() {
		t.Errorf("canonical round trip differs:\n%s\n%s", d.Canonical(), d2.Canonical())
	}
}

// TestParseErrors: every error names its line and field, and all problems
// of a document are reported at once.
func TestParseErrors(t *testing.T) {
	base := "version: 1\nname: p\nvantage_point: v\n"
	tests := []struct {
		name string
		src  string
		want []string // "line N: field" prefixes, in order
	}{
		{"not yaml", "version: [1\n", []string{"line 1: not YAML"}},
		{"empty", "", []string{"line 1: empty document"}},
		{"top level list", "- 1\n", []string{"line 1: must be a mapping"}},
		{"missing fields", "version: 1\n", []string{"line 1: name: required", "line 1: vantage_point: required", "line 1: rules: required"}},
		{"unknown field", base + "rules: []\ncolour: red\n", []string{"line 5: colour: unknown field"}},
		{"duplicate key", base + "rules: []\nname: q\n", []string{"line 5: name: given twice"}},
		{"bad version", "version: 2\nname: p\nvantage_point: v\nrules: []\n", []string{"line 1: version: \"2\""}},
		{"bad name", "version: 1\nname: 'a b'\nvantage_point: v\nrules: []\n", []string{"line 2: name: \"a b\" is not a name"}},
		{"bad default", base + "default: maybe\nrules: []\n", []string{"line 4: default: \"maybe\" is not one of allow, deny, none"}},
		{"bad cidr", base + "groups:\n  - name: g\n    cidrs: [10.0.0.0/33]\nrules: []\n", []string{"line 6: groups[0].cidrs[0]: \"10.0.0.0/33\" is not a CIDR"}},
		{"host bits", base + "groups:\n  - name: g\n    cidrs: [10.0.0.1/24]\nrules: []\n", []string{"line 6: groups[0].cidrs[0]: \"10.0.0.1/24\" has host bits set"}},
		{"rule errors", base + "rules:\n  - name: r\n    action: permit\n    to: [nogroup]\n    ports: \"tcp:99999\"\n    severity: huge\n",
			[]string{"line 6: rules[0].action", "line 7: rules[0].to[0]: \"nogroup\" is neither", "line 8: rules[0].ports", "line 9: rules[0].severity"}},
		{"rule missing fields", base + "rules:\n  - name: r\n", []string{"line 5: rules[0].action: required", "line 5: rules[0].to: required", "line 5: rules[0].ports: required", "line 5: rules[0].severity: required"}},
		{"unknown canary", base + "rules:\n  - {name: r, action: deny, to: 10.0.0.0/8, ports: 'tcp:22', severity: low, canaries: [c]}\n", []string{"line 5: rules[0].canaries[0]: no canary \"c\""}},
		{"denial on allow", base + "rules:\n  - {name: r, action: allow, to: 10.0.0.0/8, ports: 'tcp:22', severity: low, denial: drop}\n", []string{"line 5: rules[0].denial: only deny rules"}},
		{"duplicate rule", base + "rules:\n  - {name: r, action: allow, to: 10.0.0.0/8, ports: 'tcp:22', severity: low}\n  - {name: r, action: allow, to: 10.0.0.0/8, ports: 'tcp:23', severity: low}\n", []string{"line 6: rules[1].name: rule \"r\" defined twice"}},
		{"reserved default", base + "rules:\n  - {name: default, action: allow, to: 10.0.0.0/8, ports: 'tcp:22', severity: low}\n", []string{"line 5: rules: \"default\" is reserved"}},
		{"bad canary", base + "canaries:\n  - {name: c, target: nowhere, port: 0}\nrules: []\n", []string{"line 5: canaries[0].target", "line 5: canaries[0].port"}},
		{"alias", base + "groups:\n  - &g {name: g, cidrs: [10.0.0.0/8]}\nrules: []\n", []string{"line 5: YAML anchors and aliases are not allowed"}},
		{"json with tabs", "{\n\t\"version\": 1,\n\t\"name\": \"p\",\n\t\"vantage_point\": \"v\",\n\t\"rules\": [{\"name\": \"r\", \"action\": \"deny\", \"to\": [\"10.0.0.0/8\"], \"ports\": \"tcp:22\", \"severity\": \"urgent\"}]\n}",
			[]string{"line 5: rules[0].severity: \"urgent\""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src))
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err %v, want a ValidationError", err)
			}
			if len(ve.Errors) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(ve.Errors), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(ve.Errors[i].Error(), w) {
					t.Errorf("error %d: %q, want prefix %q", i, ve.Errors[i].Error(), w)
				}
			}
		})
	}
}

// FuzzParse: Parse never panics; whatever it accepts has a canonical form
// that parses to the same canonical form (a fixed point).
func FuzzParse(f *testing.F) {
	// Seeds: the documented example, its canonical JSON, a minimal policy,
	// an error-laden one, an alias, and a flow-style one-liner.
	src, err := os.ReadFile("testdata/dmz.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(src)
	if d, err := Parse(src); err == nil {
		f.Add(d.Canonical())
	}
	f.Add([]byte("version: 1\nname: p\nvantage_point: v\nrules: []\n"))
	f.Add([]byte("version: 1\nname: p\nrules:\n  - name: r\n    action: permit\n"))
	f.Add([]byte("a: &x [1]\nb: *x\n"))
	f.Add([]byte(`{"version":1,"name":"p","vantage_point":"v","rules":[{"name":"r","action":"deny","to":"::/0","ports":"udp:53","severity":"low"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		c := d.Canonical()
		d2, err := Parse(c)
		if err != nil {
			t.Fatalf("canonical form does not parse: %v\n%s", err, c)
		}
		if string(d2.Canonical()) != string(c) {
			t.Fatalf("canonical form not a fixed point:\n%s\n%s", c, d2.Canonical())
		}
	})
}
