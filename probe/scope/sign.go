package scope

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"firewalliq/probe/keys"
	"firewalliq/probe/safety"

	"firewalliq/probe/internal/strictjson"
)

// signingContext is prepended to the canonical scope before signing, so a
// scope signature can never be replayed as a signature over anything else
// (a job, a report, a profile), nor the other way round.
const signingContext = "firewalliq scope v1\n"

// AlgEd25519 is the only signature algorithm.
const AlgEd25519 = "ed25519"

// signedMessage returns the bytes the Ed25519 signature covers.
func signedMessage(canonical []byte) []byte {
	return append([]byte(signingContext), canonical...)
}

// Sign validates doc, sets its signer_key_id to the id of priv's public key
// (refusing a different id already present), and returns the signed
// envelope, itself canonical JSON followed by a newline:
//
//	{"scope":{...canonical...},"signature":{"alg":"ed25519","key_id":"...","sig":"BASE64"}}
//
// Sign checks the document on its own only; Verify also checks it against
// the safety profile and the clock.
func Sign(doc Document, priv ed25519.PrivateKey) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("sign scope: private key has %d bytes", len(priv))
	}
	id := keys.ID(priv.Public().(ed25519.PublicKey))
	if doc.SignerKeyID != "" && doc.SignerKeyID != id {
		return nil, fmt.Errorf("sign scope: %w: signer_key_id %s but the key is %s", ErrUntrustedKey, doc.SignerKeyID, id)
	}
	doc.SignerKeyID = id
	if doc.Exclude == nil {
		doc.Exclude = []string{}
	}
	if err := doc.Validate(); err != nil {
		return nil, fmt.Errorf("sign scope: %w", err)
	}
	canon, err := doc.Canonical()
	if err != nil {
		return nil, fmt.Errorf("sign scope: %w", err)
	}
	sig := ed25519.Sign(priv, signedMessage(canon))
	return append(envelope(canon, id, sig), '\n'), nil
}

// envelope writes the signed envelope in canonical form (no newline).
func envelope(canon []byte, keyID string, sig []byte) []byte {
	var b bytes.Buffer
	b.WriteString(`{"scope":`)
	b.Write(canon)
	b.WriteString(`,"signature":{"alg":`)
	b.WriteString(quote(AlgEd25519))
	b.WriteString(`,"key_id":`)
	b.WriteString(quote(keyID))
	b.WriteString(`,"sig":`)
	b.WriteString(quote(base64.StdEncoding.EncodeToString(sig)))
	b.WriteString("}}")
	return b.Bytes()
}

// CanonicalEnvelope decodes a signed envelope (as Open, verifying nothing)
// and writes it back in canonical form without the trailing newline: the
// form a job embeds, so that reformatting a scope file cannot change a
// job's bytes.
func CanonicalEnvelope(signed []byte) ([]byte, error) {
	doc, sig, err := Open(signed)
	if err != nil {
		return nil, err
	}
	canon, err := doc.Canonical()
	if err != nil {
		return nil, err
	}
	return envelope(canon, sig.KeyID, sig.Sig), nil
}

// Signature is the signature block of a signed envelope.
type Signature struct {
	Alg   string `json:"alg"`
	KeyID string `json:"key_id"`
	Sig   []byte `json:"sig"`
}

// Open decodes a signed envelope without verifying anything. Use it only to
// display or index a document; Verify is the only way to trust one.
func Open(signed []byte) (Document, Signature, error) {
	var sig Signature
	env, err := strictjson.Object(signed)
	if err != nil {
		return Document{}, sig, fmt.Errorf("%w: envelope: %v", ErrInvalid, err)
	}
	if len(env) != 2 || env["scope"] == nil || env["signature"] == nil {
		return Document{}, sig, fmt.Errorf("%w: envelope must have exactly the members scope and signature", ErrInvalid)
	}
	doc, err := DecodeDocument(env["scope"])
	if err != nil {
		return Document{}, sig, err
	}
	sf, err := strictjson.Object(env["signature"])
	if err != nil {
		return Document{}, sig, fmt.Errorf("%w: signature: %v", ErrInvalid, err)
	}
	if len(sf) != 3 || sf["alg"] == nil || sf["key_id"] == nil || sf["sig"] == nil {
		return Document{}, sig, fmt.Errorf("%w: signature must have exactly the members alg, key_id and sig", ErrInvalid)
	}
	var sigText string
	for _, f := range []struct {
		k string
		v *string
	}{{"alg", &sig.Alg}, {"key_id", &sig.KeyID}, {"sig", &sigText}} {
		if err := json.Unmarshal(sf[f.k], f.v); err != nil {
			return Document{}, sig, fmt.Errorf("%w: signature %s: %v", ErrInvalid, f.k, err)
		}
	}
	if sig.Alg != AlgEd25519 {
		return Document{}, sig, fmt.Errorf("%w: signature alg %q, want %q", ErrInvalid, sig.Alg, AlgEd25519)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(sigText)
	if err != nil || len(raw) != ed25519.SignatureSize {
		return Document{}, sig, fmt.Errorf("%w: sig is not one standard-base64 Ed25519 signature", ErrInvalid)
	}
	sig.Sig = raw
	return doc, sig, nil
}

// Verify checks a signed envelope and returns the compiled scope. In order:
// the envelope decodes strictly; its key_id and the document's
// signer_key_id both equal the id of trusted; the signature verifies over
// the canonical encoding; the document is valid (which includes: no
// special address, see SpecialPrefixes); it fits the profile (every probe
// kind allowed, max_pps <= GlobalPPS, refused rather than clamped); and now
// is inside [not_before, not_after). The scope's size is not compared with
// the profile's MaxTargets: that cap applies to each scan (Expand).
func Verify(signed []byte, trusted ed25519.PublicKey, now time.Time, p safety.Profile) (*Scope, error) {
	if len(trusted) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("verify scope: trusted key has %d bytes", len(trusted))
	}
	doc, sig, err := Open(signed)
	if err != nil {
		return nil, fmt.Errorf("verify scope: %w", err)
	}
	want := keys.ID(trusted)
	if sig.KeyID != want {
		return nil, fmt.Errorf("verify scope: %w: signed by key %s, trusted key is %s", ErrUntrustedKey, sig.KeyID, want)
	}
	if doc.SignerKeyID != want {
		return nil, fmt.Errorf("verify scope: %w: signer_key_id %q does not match signing key %s", ErrUntrustedKey, doc.SignerKeyID, want)
	}
	canon, err := doc.Canonical()
	if err != nil {
		return nil, fmt.Errorf("verify scope: %w", err)
	}
	if !ed25519.Verify(trusted, signedMessage(canon), sig.Sig) {
		return nil, fmt.Errorf("verify scope %q: %w", doc.ID, ErrSignature)
	}
	r, err := doc.compile()
	if err != nil {
		return nil, fmt.Errorf("verify scope %q: %w", doc.ID, err)
	}
	if err := fitsProfile(doc, r, p); err != nil {
		return nil, fmt.Errorf("verify scope %q: %w", doc.ID, err)
	}
	if now.Before(doc.NotBefore) {
		return nil, fmt.Errorf("verify scope %q: %w: valid from %s", doc.ID, ErrNotYetValid, formatTime(doc.NotBefore))
	}
	if !now.Before(doc.NotAfter) {
		return nil, fmt.Errorf("verify scope %q: %w: valid until %s", doc.ID, ErrExpired, formatTime(doc.NotAfter))
	}
	ports := []Port{}
	if doc.Ports != "" {
		ports, _ = ParsePorts(doc.Ports) // validated by compile
	}
	return &Scope{Doc: doc, r: r, ports: ports, canonical: canon}, nil
}

func sizeString(n uint64) string {
	if n == ^uint64(0) {
		return "more than 2^64"
	}
	return fmt.Sprint(n)
}

// CheckProfile validates the document and checks it against profile p as
// Verify would, without a signature or a clock, so a scope that the
// appliance would refuse is caught before it is signed.
func (d Document) CheckProfile(p safety.Profile) error {
	r, err := d.compile()
	if err != nil {
		return err
	}
	return fitsProfile(d, r, p)
}

// fitsProfile refuses (never clamps) a scope that asks for more than p.
func fitsProfile(d Document, r *ranges, p safety.Profile) error {
	for _, k := range d.Probes {
		if !p.Allows(k) {
			return fmt.Errorf("%w: probe kind %s is not allowed by profile %s", ErrExceedsProfile, k, p.ID)
		}
	}
	if d.MaxPPS > p.GlobalPPS {
		return fmt.Errorf("%w: max_pps %d above the profile's %d", ErrExceedsProfile, d.MaxPPS, p.GlobalPPS)
	}
	// The profile's max_targets bounds each scan's expansion (Expand), not
	// the scope: a scope is as large as the customer's authorisation (a
	// /48 is the normal unit of an IPv6 one), and a scan names the subset
	// it probes.
	return nil
}
