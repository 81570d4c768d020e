package scope

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"firewalliq/probe/keys"
	"firewalliq/probe/safety"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json")

func TestVerifyRejects(t *testing.T) {
	pub := testKey.Public().(ed25519.PublicKey)
	p := testProfile(t)
	good, err := Sign(baseDoc(), testKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(good, pub, testNow, p); err != nil {
		t.Fatalf("good scope: %v", err)
	}
	_, otherPriv, _ := ed25519.GenerateKey(nil)
	otherSigned, _ := Sign(baseDoc(), otherPriv)
	resign := func(mut func(*Document)) []byte {
		d := baseDoc()
		mut(&d)
		d.SignerKeyID = ""
		// Sign only checks the document; the profile checks happen in Verify.
		b, err := Sign(d, testKey)
		if err != nil {
			t.Fatalf("Sign: %v", err)
		}
		return b
	}
	tests := []struct {
		name   string
		signed []byte
		now    time.Time
		want   error
	}{
		{"other key", otherSigned, testNow, ErrUntrustedKey},
		{"edited cidr", bytes.Replace(good, []byte("10.0.0.0/24"), []byte("10.0.1.0/24"), 1), testNow, ErrSignature},
		{"edited max_pps", bytes.Replace(good, []byte(`"max_pps":400`), []byte(`"max_pps":401`), 1), testNow, ErrSignature},
		{"removed exclude", bytes.Replace(good, []byte(`["10.0.0.0/28"]`), []byte(`[]`), 1), testNow, ErrSignature},
		{"signer_key_id swapped", bytes.Replace(good, []byte(`"signer_key_id":"`+keys.ID(pub)), []byte(`"signer_key_id":"`+keys.ID(otherPriv.Public().(ed25519.PublicKey))), 1), testNow, ErrUntrustedKey},
		{"duplicate key", bytes.Replace(good, []byte(`{"cidrs":`), []byte(`{"cidrs":["10.9.0.0/16"],"cidrs":`), 1), testNow, ErrInvalid},
		{"case-folded key", bytes.Replace(good, []byte(`"cidrs":`), []byte(`"CIDRS":`), 1), testNow, ErrInvalid},
		{"unknown field", bytes.Replace(good, []byte(`{"cidrs":`), []byte(`{"x":1,"cidrs":`), 1), testNow, ErrInvalid},
		{"other alg", bytes.Replace(good, []byte(`"alg":"ed25519"`), []byte(`"alg":"none"`), 1), testNow, ErrInvalid},
		{"truncated", good[:len(good)/2], testNow, ErrInvalid},
		{"trailing garbage", append(bytes.TrimSpace(bytes.Clone(good)), '{'), testNow, ErrInvalid},
		{"not yet valid", good, time.Date(2026, 10, 31, 23, 59, 59, 0, time.UTC), ErrNotYetValid},
		{"expired at not_after", good, time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC), ErrExpired},
		{"max_pps above profile", resign(func(d *Document) { d.MaxPPS = p.GlobalPPS + 1 }), testNow, ErrExceedsProfile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Verify(tt.signed, pub, tt.now, p)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, %v; want %v", s, err, tt.want)
			}
		})
	}
	// A profile that does not allow a kind refuses the scope rather than
	// dropping the kind.
	narrow := p
	narrow.ProbeKinds = []safety.Kind{safety.KindTCPSyn}
	if _, err := Verify(good, pub, testNow, narrow); !errors.Is(err, ErrExceedsProfile) {
		t.Fatalf("kind outside the profile: %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mut    func(*Document)
		reason string
	}{
		{"whole internet v4", func(d *Document) { d.CIDRs = []string{"0.0.0.0/0"} }, "whole-internet"},
		{"whole internet v6", func(d *Document) { d.CIDRs = []string{"::/0"} }, "whole-internet"},
		{"short v4", func(d *Document) { d.CIDRs = []string{"10.0.0.0/7"} }, "whole-internet"},
		{"short v6", func(d *Document) { d.CIDRs = []string{"2000::/31"} }, "whole-internet"},
		{"host bits", func(d *Document) { d.CIDRs = []string{"10.0.0.1/24"} }, "host bits"},
		{"all excluded", func(d *Document) { d.Exclude = []string{"10.0.0.0/8", "2001:db8::/32"} }, "no address"},
		{"bad environment", func(d *Document) { d.Environment = "prod" }, "environment"},
		{"bad kind", func(d *Document) { d.Probes = []safety.Kind{"tcp-fin"} }, "unknown probe kind"},
		{"duplicate kind", func(d *Document) { d.Probes = []safety.Kind{"udp", "udp"} }, "twice"},
		{"no probes", func(d *Document) { d.Probes = nil }, "probes"},
		{"no ports for tcp", func(d *Document) { d.Ports = "" }, "ports"},
		{"bad ports", func(d *Document) { d.Ports = "tcp:0" }, "ports"},
		{"window backwards", func(d *Document) { d.NotAfter = d.NotBefore }, "not before"},
		{"fractional second", func(d *Document) { d.NotAfter = d.NotAfter.Add(time.Millisecond) }, "whole seconds"},
		{"zero pps", func(d *Document) { d.MaxPPS = 0 }, "max_pps"},
		{"id with space", func(d *Document) { d.ID = "a b" }, "id"},
		{"name with newline", func(d *Document) { d.Name = "a\nb" }, "control"},
		{"bad signer id", func(d *Document) { d.SignerKeyID = "XYZ" }, "signer_key_id"},
		{"no cidrs", func(d *Document) { d.CIDRs = nil }, "cidrs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := baseDoc()
			tt.mut(&d)
			err := d.Validate()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("Validate = %v, want ErrInvalid mentioning %q", err, tt.reason)
			}
		})
	}
	icmp := baseDoc()
	icmp.Ports, icmp.Probes = "", []safety.Kind{safety.KindICMPEcho}
	if err := icmp.Validate(); err != nil {
		t.Fatalf("icmp-only scope without ports: %v", err)
	}
}

// vector is one canonical-encoding test vector (docs/scope.md).
type vector struct {
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`     // a scope document as a person writes it
	Canonical string          `json:"canonical"` // its canonical encoding
	Signed    string          `json:"signed"`    // the envelope Sign makes with the test key
}

// TestVectors checks testdata/vectors.json: the canonical encoding and the
// signed envelope (Ed25519 is deterministic) of each input, signed with the
// test key whose seed is 32 bytes of 0x01. Regenerate with -update.
func TestVectors(t *testing.T) {
	data, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 3 {
		t.Fatalf("only %d vectors", len(vs))
	}
	pub := testKey.Public().(ed25519.PublicKey)
	for i := range vs {
		v := &vs[i]
		t.Run(v.Name, func(t *testing.T) {
			d, err := DecodeDocument(v.Input)
			if err != nil {
				t.Fatal(err)
			}
			signed, err := Sign(d, testKey)
			if err != nil {
				t.Fatal(err)
			}
			d.SignerKeyID = keys.ID(pub)
			canon, err := d.Canonical()
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				v.Canonical, v.Signed = string(canon), string(signed)
			}
			if string(canon) != v.Canonical {
				t.Errorf("canonical:\n got %s\nwant %s", canon, v.Canonical)
			}
			if string(signed) != v.Signed {
				t.Errorf("signed:\n got %s\nwant %s", signed, v.Signed)
			}
			if _, err := Verify([]byte(v.Signed), pub, testNow, testProfile(t)); err != nil {
				t.Errorf("vector does not verify: %v", err)
			}
		})
	}
	if *update {
		var out bytes.Buffer
		enc := json.NewEncoder(&out)
		enc.SetEscapeHTML(false) // keep <, > and & readable in the vectors
		enc.SetIndent("", "  ")
		if err := enc.Encode(vs); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("testdata/vectors.json", out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCanonicalEscaping pins the string rules independently of the vectors.
func TestCanonicalEscaping(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", `"plain"`},
		{`q"b\`, `"q\"b\\"`},
		{"\b\t\n\f\r", `"\b\t\n\f\r"`},
		{"\x00\x1f\x7f", `"\u0000\u001f` + "\x7f" + `"`},
		{"<&>", `"<&>"`},
		{"café ☃ 😀", `"café ☃ 😀"`},
		{"\u2028", "\"\u2028\""},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := quote(tt.in); got != tt.want {
				t.Fatalf("quote(%q) = %s, want %s", tt.in, got, tt.want)
			}
			var back string
			if err := json.Unmarshal([]byte(quote(tt.in)), &back); err != nil || back != tt.in {
				t.Fatalf("round trip: %q, %v", back, err)
			}
		})
	}
	d := baseDoc()
	d.Name = "bad \xff"
	if _, err := d.Canonical(); err == nil {
		t.Fatal("invalid UTF-8 encoded")
	}
}

// TestDocVectors checks that the example in docs/scope.md is the committed
// vector, so the documentation cannot drift from the code.
func TestDocVectors(t *testing.T) {
	doc, err := os.ReadFile("../../docs/scope.md")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatal(err)
	}
	var v *vector
	for i := range vs {
		if strings.HasPrefix(vs[i].Name, "the docs example") {
			v = &vs[i]
		}
	}
	if v == nil {
		t.Fatal("no docs example vector")
	}
	for marker, want := range map[string]string{"canonical": v.Canonical, "signed": strings.TrimSuffix(v.Signed, "\n")} {
		_, rest, ok := strings.Cut(string(doc), "<!-- vector:"+marker+" -->\n```\n")
		block, _, ok2 := strings.Cut(rest, "\n```")
		if !ok || !ok2 || block != want {
			t.Errorf("docs/scope.md %s block:\n%s\nwant\n%s", marker, block, want)
		}
	}
}
