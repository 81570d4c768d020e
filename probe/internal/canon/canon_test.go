package canon

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestMarshal(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string
		err  error
	}{
		{"sorted keys", Object{"b": 1, "a": "x", "c": []string{}}, `{"a":"x","b":1,"c":[]}`, nil},
		{"nested", Object{"z": Object{"y": true, "x": []Object{{"k": int64(-3)}}}}, `{"z":{"x":[{"k":-3}],"y":true}}`, nil},
		{"escapes", "a\"\\\b\t\n\f\r\x01\x1f<>&é\u2028", `"a\"\\\b\t\n\f\r\u0001\u001f<>&é` + "\u2028" + `"`, nil},
		{"raw", Object{"s": Raw(`{"q":1}`)}, `{"s":{"q":1}}`, nil},
		{"any array", []any{"a", 1, false}, `["a",1,false]`, nil},
		{"bad utf-8", "\xff", "", ErrValue},
		{"big int", int64(1<<53 + 1), "", ErrValue},
		{"unknown type", 1.5, "", ErrValue},
		{"empty raw", Raw(nil), "", ErrValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Marshal(tt.v)
			if !errors.Is(err, tt.err) || string(got) != tt.want {
				t.Fatalf("Marshal = %s, %v; want %s, %v", got, err, tt.want, tt.err)
			}
			if err == nil && !json.Valid(got) {
				t.Fatalf("not JSON: %s", got)
			}
		})
	}
}

// FuzzQuote: a quoted string is valid JSON and reads back as itself.
func FuzzQuote(f *testing.F) {
	// Seeds: plain, escapes, control characters, non-ASCII.
	for _, s := range []string{"", "abc", "\"\\", "\x00\x1f\x7f", "é\u2028<>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Marshal(s)
		if err != nil {
			return // invalid UTF-8
		}
		var back string
		if err := json.Unmarshal(got, &back); err != nil || back != s {
			t.Fatalf("%q -> %s -> %q, %v", s, got, back, err)
		}
	})
}
