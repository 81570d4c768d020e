package review_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"firewalliq/appliance/report/verify"
)

// tamperTable checks that a signed review fails verification after any
// change: to a byte, a decision, a name, the order, whitespace, the
// signature or the key; and that a review re-signed after an edit that
// breaks its own consistency fails too.
func tamperTable(t *testing.T, file []byte, pub ed25519.PublicKey) {
	t.Helper()
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	otherPub := otherPriv.Public().(ed25519.PublicKey)
	replace := func(old, new string) func([]byte) []byte {
		return func(b []byte) []byte {
			if !bytes.Contains(b, []byte(old)) {
				t.Fatalf("tamper: %q not in the file", old)
			}
			return bytes.Replace(b, []byte(old), []byte(new), 1)
		}
	}
	// resign edits the body with edit and signs it again with a key the
	// verifier does not trust, or (trusted) breaks only the summary.
	resign := func(priv ed25519.PrivateKey, edit func(*verify.AccessReview)) func([]byte) []byte {
		return func(b []byte) []byte {
			var f verify.File
			if err := json.Unmarshal(b, &f); err != nil {
				t.Fatal(err)
			}
			var r verify.AccessReview
			if err := json.Unmarshal(f.Report, &r); err != nil {
				t.Fatal(err)
			}
			edit(&r)
			out, err := verify.SignReview(r, priv)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
	}
	cases := []struct {
		name   string
		tamper func([]byte) []byte
		key    ed25519.PublicKey
		want   error
	}{
		{name: "revoke turned into keep", tamper: replace(`"decision":"revoke"`, `"decision":"keep"`), want: verify.ErrSignature},
		{name: "user renamed", tamper: replace(`"name":"operator"`, `"name":"0perator"`), want: verify.ErrSignature},
		{name: "reviewer changed", tamper: replace(`"reviewer":{"id":"`, `"reviewer":{"id":"x`), want: verify.ErrSignature},
		{name: "signed time changed", tamper: replace(`"signed_at":"2`, `"signed_at":"3`), want: verify.ErrSignature},
		{name: "whitespace added", tamper: replace(`{"report":{`, `{"report": {`), want: verify.ErrFormat},
		{name: "keys reordered", tamper: func(b []byte) []byte {
			var f verify.File
			if err := json.Unmarshal(b, &f); err != nil {
				t.Fatal(err)
			}
			return []byte(`{"signature":` + mustJSON(t, f.Signature) + `,"report":` + string(f.Report) + "}\n")
		}, want: verify.ErrFormat},
		{name: "truncated", tamper: func(b []byte) []byte { return b[:len(b)/2] }, want: verify.ErrFormat},
		{name: "signature byte flipped", tamper: func(b []byte) []byte {
			i := bytes.Index(b, []byte(`"sig":"`)) + len(`"sig":"`)
			c := bytes.Clone(b)
			if c[i] == 'A' {
				c[i] = 'B'
			} else {
				c[i] = 'A'
			}
			return c
		}, want: verify.ErrSignature},
		{name: "wrong report key", tamper: func(b []byte) []byte { return b }, key: otherPub, want: verify.ErrSignature},
		{name: "re-signed by another key", tamper: resign(otherPriv, func(r *verify.AccessReview) { r.Lines = r.Lines[1:] }), want: verify.ErrSignature},
		{name: "re-signed, line dropped, summary kept", tamper: resign(otherPriv, func(r *verify.AccessReview) { r.Lines = r.Lines[1:] }), key: otherPub, want: verify.ErrReview},
		{name: "re-signed, a line undecided", tamper: resign(otherPriv, func(r *verify.AccessReview) { r.Lines[0].Decision = "" }), key: otherPub, want: verify.ErrReview},
		{name: "control: re-signed untouched by the trusted key", tamper: resign(otherPriv, func(r *verify.AccessReview) {}), key: otherPub, want: nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := pub
			if c.key != nil {
				key = c.key
			}
			_, err := verify.Verify(c.tamper(bytes.Clone(file)), verify.Options{ReportKey: key})
			if c.want == nil {
				if err != nil {
					t.Fatalf("an untouched review re-signed by its key: %v", err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	// An unknown field is refused even when the signature holds.
	extra := resign(otherPriv, func(*verify.AccessReview) {})(bytes.Clone(file))
	var f verify.File
	if err := json.Unmarshal(extra, &f); err != nil {
		t.Fatal(err)
	}
	body, err := verify.Canonical([]byte(strings.Replace(string(f.Report), `{"appliance"`, `{"added":1,"appliance"`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	f.Report = body
	f.Signature.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(otherPriv, body))
	out, err := verify.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verify.Verify(append(out, '\n'), verify.Options{ReportKey: otherPub}); !errors.Is(err, verify.ErrFormat) {
		t.Fatalf("unknown field: %v, want ErrFormat", err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
