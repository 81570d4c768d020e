package verify

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"testing"
)

// The golden report of package report, signed with keys from these seeds.
var (
	reportPub = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)).Public().(ed25519.PublicKey)
	auditPub  = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32)).Public().(ed25519.PublicKey)
)

func goldenReport(t testing.TB) []byte {
	b, err := os.ReadFile("../testdata/report.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCanonicalVectors pins the canonical form.
func TestCanonicalVectors(t *testing.T) {
	tests := []struct {
		name, in, want string
		err            bool
	}{
		{"sorted keys, no whitespace", `{ "b" : 1, "a" : [ true, false, null ] }`, `{"a":[true,false,null],"b":1}`, false},
		{"nested sort by bytes", `{"b":{"z":1,"Z":2,"a":3},"A":"x"}`, `{"A":"x","b":{"Z":2,"a":3,"z":1}}`, false},
		{"no HTML escaping", `{"s":"<a&b>"}`, `{"s":"<a&b>"}`, false},
		{"control characters escaped", `{"s":"a\u0001\n\t"}`, `{"s":"a\u0001\n\t"}`, false},
		{"unicode kept", `{"s":"\u00e9\u2028"}`, "{\"s\":\"\u00e9\\u2028\"}", false},
		{"escaped solidus unescaped", `{"s":"a\/b"}`, `{"s":"a/b"}`, false},
		{"negative integer", `[-12,0]`, `[-12,0]`, false},
		{"fraction refused", `[1.5]`, ``, true},
		{"exponent refused", `[1e3]`, ``, true},
		{"leading zero refused", `[01]`, ``, true},
		{"duplicate key refused", `{"a":1,"a":2}`, ``, true},
		{"trailing data refused", `{} {}`, ``, true},
		{"too deep refused", string(bytes.Repeat([]byte("["), 100)) + string(bytes.Repeat([]byte("]"), 100)), ``, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonical([]byte(tt.in))
			if tt.err {
				if !errors.Is(err, ErrFormat) {
					t.Fatalf("got %s, %v; want ErrFormat", got, err)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %s, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func TestVerifyGolden(t *testing.T) {
	res, err := Verify(goldenReport(t), Options{ReportKey: reportPub, AuditKey: auditPub})
	if err != nil {
		t.Fatal(err)
	}
	if res.Proofs != 2 || !res.Anchored || res.EvidenceFiles != 0 {
		t.Errorf("%+v", res)
	}
	if _, err := Verify(goldenReport(t), Options{ReportKey: reportPub}); err == nil {
		t.Error("verified without an audit key")
	}
	// The combined golden: two parts, each with two proofs.
	res, err = Verify(goldenCombined(t), Options{ReportKey: reportPub, AuditKey: auditPub})
	if err != nil {
		t.Fatal(err)
	}
	if res.Kind != KindCombinedReport || res.Combined == nil || len(res.Combined.Parts) != 2 || res.Proofs != 4 || !res.Anchored {
		t.Errorf("combined: %+v", res)
	}
}

func goldenCombined(t testing.TB) []byte {
	b, err := os.ReadFile("../testdata/combined.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzVerify: the verifier never panics on any input, and whatever it
// accepts is in canonical form (so there is one accepted spelling).
func FuzzVerify(f *testing.F) {
	g := goldenReport(f)
	// Seeds: the golden report, it without its final newline, truncated,
	// with a flipped byte, an empty object, and a non-canonical spelling.
	f.Add(g)
	f.Add(bytes.TrimSuffix(g, []byte("\n")))
	f.Add(g[:len(g)/2])
	flipped := bytes.Clone(g)
	flipped[len(flipped)/3] ^= 0x20
	f.Add(flipped)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"signature":{"alg":"ed25519","key_id":"x","sig":""}, "report":{}}`))
	// A combined report, and it cut short.
	gc := goldenCombined(f)
	f.Add(gc)
	f.Add(gc[:len(gc)/2])
	o := Options{ReportKey: reportPub, AuditKey: auditPub}
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := Verify(b, o); err != nil {
			return
		}
		body := bytes.TrimSuffix(b, []byte("\n"))
		c, err := Canonical(body)
		if err != nil || !bytes.Equal(c, body) {
			t.Fatal("accepted a non-canonical report")
		}
	})
}

// FuzzCanonical: Canonical is idempotent and never panics.
func FuzzCanonical(f *testing.F) {
	f.Add([]byte(`{"b":1,"a":[true,null,"x"]}`)) // to sort
	f.Add([]byte(`{"a":1.5}`))                   // refused
	f.Add([]byte(`"\u2028<>&"`))                 // escapes
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Canonical(b)
		if err != nil {
			return
		}
		c2, err := Canonical(c)
		if err != nil || !bytes.Equal(c, c2) {
			t.Fatalf("not idempotent: %s -> %s (%v)", c, c2, err)
		}
	})
}
