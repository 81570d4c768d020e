package job

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"firewalliq/probe/internal/canon"
	"firewalliq/probe/internal/strictjson"
	"firewalliq/probe/keys"
	"firewalliq/probe/safety"
)

// signingContext is prepended to the canonical job before signing, so a
// job signature can never be replayed as a signature over a scope, report
// or profile, nor the other way round.
const signingContext = "firewalliq job v1\n"

// AlgEd25519 is the only signature algorithm.
const AlgEd25519 = "ed25519"

func signedMessage(canonical []byte) []byte {
	return append([]byte(signingContext), canonical...)
}

// Sign validates j, sets its signer_key_id to the id of priv's public key
// (refusing a different id already present) and returns the signed
// envelope, canonical JSON followed by a newline:
//
//	{"job":{...canonical...},"signature":{"alg":"ed25519","key_id":"...","sig":"BASE64"}}
//
// Sign checks the job on its own only; Verify checks it against the keys,
// the scope, the profile and the clock.
func Sign(j Job, priv ed25519.PrivateKey) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("sign job: private key has %d bytes", len(priv))
	}
	id := keys.ID(priv.Public().(ed25519.PublicKey))
	if j.SignerKeyID != "" && j.SignerKeyID != id {
		return nil, fmt.Errorf("sign job: %w: signer_key_id %s but the key is %s", ErrUntrustedKey, j.SignerKeyID, id)
	}
	j.SignerKeyID = id
	if err := j.Validate(); err != nil {
		return nil, fmt.Errorf("sign job: %w", err)
	}
	c, err := j.Canonical()
	if err != nil {
		return nil, fmt.Errorf("sign job: %w", err)
	}
	sig := ed25519.Sign(priv, signedMessage(c))
	var b bytes.Buffer
	b.WriteString(`{"job":`)
	b.Write(c)
	b.WriteString(`,"signature":{"alg":`)
	b.WriteString(canon.Quote(AlgEd25519))
	b.WriteString(`,"key_id":`)
	b.WriteString(canon.Quote(id))
	b.WriteString(`,"sig":`)
	b.WriteString(canon.Quote(base64.StdEncoding.EncodeToString(sig)))
	b.WriteString("}}\n")
	return b.Bytes(), nil
}

// Signature is the signature block of a signed envelope.
type Signature struct {
	Alg   string
	KeyID string
	Sig   []byte
}

// Open decodes a signed job envelope strictly without verifying anything:
// exact member names, no duplicate, unknown or null members, integers
// only, whole-second RFC 3339 times. Use it only to display or index a job;
// Verify is the only way to trust one.
func Open(signed []byte) (Job, Signature, error) {
	var sig Signature
	env, err := object(signed, "envelope", "job", "signature")
	if err != nil {
		return Job{}, sig, err
	}
	j, err := decodeJob(env["job"])
	if err != nil {
		return Job{}, sig, err
	}
	sf, err := object(env["signature"], "signature", "alg", "key_id", "sig")
	if err != nil {
		return Job{}, sig, err
	}
	var sigText string
	if err := scalars(sf, "signature", map[string]any{"alg": &sig.Alg, "key_id": &sig.KeyID, "sig": &sigText}); err != nil {
		return Job{}, sig, err
	}
	if sig.Alg != AlgEd25519 {
		return Job{}, sig, bad("signature alg %q, want %q", sig.Alg, AlgEd25519)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(sigText)
	if err != nil || len(raw) != ed25519.SignatureSize {
		return Job{}, sig, bad("sig is not one standard-base64 Ed25519 signature")
	}
	sig.Sig = raw
	return j, sig, nil
}

// object splits a JSON object and requires exactly the members names.
func object(data []byte, what string, names ...string) (map[string]json.RawMessage, error) {
	m, err := strictjson.Object(data)
	if err != nil {
		return nil, bad("%s: %v", what, err)
	}
	for k := range m {
		found := false
		for _, n := range names {
			found = found || k == n
		}
		if !found {
			return nil, bad("%s: unknown member %q", what, k)
		}
	}
	for _, n := range names {
		v, ok := m[n]
		if !ok {
			return nil, bad("%s: missing member %q", what, n)
		}
		if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			return nil, bad("%s: member %q is null", what, n)
		}
	}
	return m, nil
}

// scalars decodes members into strings, ints and string slices.
func scalars(m map[string]json.RawMessage, what string, into map[string]any) error {
	for k, v := range into {
		if err := json.Unmarshal(m[k], v); err != nil {
			return bad("%s: member %q: %v", what, k, err)
		}
	}
	return nil
}

func decodeJob(data []byte) (Job, error) {
	var j Job
	m, err := object(data, "job", "approvals", "batch_targets", "id", "issued_at", "not_after", "not_before",
		"profile", "request", "scan_id", "scope", "seed", "signer_key_id")
	if err != nil {
		return j, err
	}
	var issued, nb, na, seed string
	var approvals []json.RawMessage
	if err := scalars(m, "job", map[string]any{
		"id": &j.ID, "scan_id": &j.ScanID, "batch_targets": &j.BatchTargets, "issued_at": &issued,
		"not_before": &nb, "not_after": &na, "seed": &seed, "signer_key_id": &j.SignerKeyID, "approvals": &approvals,
	}); err != nil {
		return j, err
	}
	for _, t := range []struct {
		name string
		s    string
		v    *time.Time
	}{{"issued_at", issued, &j.IssuedAt}, {"not_before", nb, &j.NotBefore}, {"not_after", na, &j.NotAfter}} {
		if *t.v, err = parseTime(t.s); err != nil {
			return j, bad("%s: %v", t.name, err)
		}
	}
	if len(seed) != 16 || !keyPattern.MatchString(seed) {
		return j, bad("seed %q is not 16 lower-case hex digits", seed)
	}
	j.Seed, _ = strconv.ParseUint(seed, 16, 64)
	pm, err := object(m["profile"], "profile", "id", "sha256")
	if err != nil {
		return j, err
	}
	if err := scalars(pm, "profile", map[string]any{"id": &j.Profile.ID, "sha256": &j.Profile.SHA256}); err != nil {
		return j, err
	}
	if len(approvals) > MaxApprovals {
		return j, bad("at most %d approvals", MaxApprovals)
	}
	j.Approvals = []Approval{}
	for i, raw := range approvals {
		am, err := object(raw, fmt.Sprintf("approval %d", i), "approver", "id", "request_sha256")
		if err != nil {
			return j, err
		}
		var a Approval
		if err := scalars(am, fmt.Sprintf("approval %d", i), map[string]any{"id": &a.ID, "approver": &a.Approver, "request_sha256": &a.RequestSHA256}); err != nil {
			return j, err
		}
		j.Approvals = append(j.Approvals, a)
	}
	if j.Request, err = decodeRequest(m["request"]); err != nil {
		return j, err
	}
	j.Scope = bytes.Clone(m["scope"])
	return j, nil
}

func decodeRequest(data []byte) (Request, error) {
	var r Request
	m, err := object(data, "request", "id", "policy_sha256", "ports", "probes", "rate", "requester", "scope_sha256", "targets", "tenant", "vantage")
	if err != nil {
		return r, err
	}
	var probes []string
	if err := scalars(m, "request", map[string]any{
		"id": &r.ID, "policy_sha256": &r.PolicySHA256, "ports": &r.Ports, "probes": &probes, "rate": &r.Rate,
		"requester": &r.Requester, "scope_sha256": &r.ScopeSHA256, "targets": &r.Targets, "tenant": &r.Tenant, "vantage": &r.Vantage,
	}); err != nil {
		return r, err
	}
	if len(r.Targets) > MaxTargets {
		return r, bad("targets must have 1-%d entries, got %d", MaxTargets, len(r.Targets))
	}
	for _, p := range probes {
		r.Probes = append(r.Probes, safety.Kind(p))
	}
	return r, nil
}

// parseTime accepts RFC 3339 with whole seconds and any offset, and returns
// the time in UTC.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time: %v", s, err)
	}
	if t.Nanosecond() != 0 {
		return time.Time{}, fmt.Errorf("%q has fractional seconds; use whole seconds", s)
	}
	return t.UTC(), nil
}
