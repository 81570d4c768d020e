package job

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

var update = flag.Bool("update", false, "rewrite testdata/example.json")

var (
	testNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	// Fixed keys so the example is reproducible: the scope key is seed 32 x
	// 0x01 (as in probe/scope's vectors), the job key 32 x 0x02. Both are
	// public test keys.
	scopeKey = ed25519.NewKeyFromSeed(slices.Repeat([]byte{1}, 32))
	jobKey   = ed25519.NewKeyFromSeed(slices.Repeat([]byte{2}, 32))
	otherKey = ed25519.NewKeyFromSeed(slices.Repeat([]byte{3}, 32))
)

// testProfileJSON is a fixed profile, signed below by a test release key,
// so the example and its hashes do not move when the embedded profile does.
const testProfileJSON = `{"id":"default","version":1,"global_pps":1000,"per_host_pps":100,"max_concurrent_scans":2,"max_targets":65536,` +
	`"probe_kinds":["tcp-syn","tcp-connect","udp","icmp-echo","tls-hello","banner"],"udp_payloads":["empty","dns-query","ntp-client"]}`

func testProfile(t testing.TB) safety.Profile {
	t.Helper()
	release := ed25519.NewKeyFromSeed(slices.Repeat([]byte{4}, 32))
	p, err := safety.Verify([]byte(testProfileJSON), safety.Sign([]byte(testProfileJSON), release), release.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func scopeDoc() scope.Document {
	return scope.Document{
		ID: "sc-dmz", Tenant: "acme", Name: "DMZ", Environment: scope.EnvProduction,
		CIDRs: []string{"10.20.0.0/16", "2001:db8:20::/48"}, Exclude: []string{"10.20.1.128/25"},
		Ports: "tcp:22,80,443 udp:53", Probes: []safety.Kind{safety.KindTCPSyn, safety.KindUDP, safety.KindICMPEcho},
		NotBefore: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC),
		MaxPPS: 400,
	}
}

func signScope(t testing.TB, d scope.Document, key ed25519.PrivateKey) []byte {
	t.Helper()
	b, err := scope.Sign(d, key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func scopeHash(t testing.TB, signed []byte) string {
	t.Helper()
	s, err := scope.Verify(signed, scopeKey.Public().(ed25519.PublicKey), testNow, testProfile(t))
	if err != nil {
		t.Fatal(err)
	}
	return s.SHA256()
}

// goodJob is a valid production job: two approvals bound to the request.
func goodJob(t testing.TB) Job {
	t.Helper()
	sc := signScope(t, scopeDoc(), scopeKey)
	p := testProfile(t)
	j := Job{
		ID: "job-1", ScanID: "scan-1",
		Request: Request{
			ID: "req-1", Tenant: "acme", Requester: "u-req", ScopeSHA256: scopeHash(t, sc),
			Targets: []string{"10.20.2.0/24", "2001:db8:20::/120", "10.20.0.9"}, Ports: "tcp:22,443",
			Probes: []safety.Kind{safety.KindTCPSyn}, Rate: 200, Vantage: VantageLocal,
			PolicySHA256: strings.Repeat("ab", 32),
		},
		Scope:    sc,
		Profile:  ProfileRef{ID: p.ID, SHA256: p.SHA256()},
		IssuedAt: testNow.Add(-time.Minute), NotBefore: testNow.Add(-time.Minute), NotAfter: testNow.Add(time.Hour),
		Seed: 0x0123456789abcdef, BatchTargets: 64,
	}
	return rebind(t, j)
}

// rebind (re)creates the two approvals bound to j's current request.
func rebind(t testing.TB, j Job) Job {
	t.Helper()
	h, err := j.Request.SHA256()
	if err != nil {
		t.Fatal(err)
	}
	j.Approvals = []Approval{{ID: "ap-1", Approver: "u-a1", RequestSHA256: h}, {ID: "ap-2", Approver: "u-a2", RequestSHA256: h}}
	return j
}

func sign(t testing.TB, j Job, key ed25519.PrivateKey) []byte {
	t.Helper()
	b, err := Sign(j, key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func verify(signed []byte, p safety.Profile) (*Verified, error) {
	return Verify(signed, jobKey.Public().(ed25519.PublicKey), []ed25519.PublicKey{otherKey.Public().(ed25519.PublicKey), scopeKey.Public().(ed25519.PublicKey)}, p, testNow)
}

func TestVerifyGood(t *testing.T) {
	j := goodJob(t)
	signed := sign(t, j, jobKey)
	v, err := verify(signed, testProfile(t))
	if err != nil {
		t.Fatal(err)
	}
	if v.Targets.Size() != 256+256+1 || len(v.Ports) != 2 || v.Scope.Doc.ID != "sc-dmz" {
		t.Fatalf("verified %d targets, ports %v", v.Targets.Size(), v.Ports)
	}
	rh, _ := j.Request.SHA256()
	if v.RequestSHA256 != rh || v.Job.Approvals[0].RequestSHA256 != rh || len(v.SHA256) != 64 {
		t.Fatalf("hashes %s %s", v.RequestSHA256, v.SHA256)
	}
	// Reformatting the envelope (indentation) does not break it.
	if _, err := verify(bytes.ReplaceAll(signed, []byte(`,"`), []byte(", \"")), testProfile(t)); err != nil {
		t.Fatalf("reformatted: %v", err)
	}
}

// mutation changes one field of a job. resigned is what Verify says when
// the changed job is signed again with the job key: nil when the change is
// harmless once signed (an id), otherwise the specific sentinel.
type mutation struct {
	name     string
	mut      func(t *testing.T, j *Job)
	resigned error
}

func mutations() []mutation {
	other := strings.Repeat("cd", 32)
	return []mutation{
		{"id", func(_ *testing.T, j *Job) { j.ID = "job-2" }, nil},
		{"scan_id", func(_ *testing.T, j *Job) { j.ScanID = "scan-2" }, nil},
		{"issued_at", func(_ *testing.T, j *Job) { j.IssuedAt = j.IssuedAt.Add(-time.Second) }, nil},
		{"issued_at after not_before", func(_ *testing.T, j *Job) { j.IssuedAt = j.NotBefore.Add(time.Second) }, ErrInvalid},
		{"not_before in the future", func(_ *testing.T, j *Job) { j.NotBefore = testNow.Add(time.Minute) }, ErrNotYetValid},
		{"not_after reached", func(_ *testing.T, j *Job) { j.NotAfter = testNow }, ErrExpired},
		{"window too long", func(_ *testing.T, j *Job) { j.NotAfter = j.NotBefore.Add(MaxValidity + time.Second) }, ErrInvalid},
		{"seed", func(_ *testing.T, j *Job) { j.Seed++ }, nil},
		{"batch_targets", func(_ *testing.T, j *Job) { j.BatchTargets = 128 }, nil},
		{"batch_targets negative", func(_ *testing.T, j *Job) { j.BatchTargets = -1 }, ErrInvalid},
		{"profile id", func(_ *testing.T, j *Job) { j.Profile.ID = "lab" }, ErrProfileMismatch},
		{"profile sha256", func(_ *testing.T, j *Job) { j.Profile.SHA256 = other }, ErrProfileMismatch},
		{"scope swapped", func(t *testing.T, j *Job) {
			d := scopeDoc()
			d.CIDRs = []string{"10.20.0.0/16", "10.99.0.0/16"}
			j.Scope = signScope(t, d, scopeKey)
		}, ErrScopeMismatch},
		{"scope by untrusted key", func(t *testing.T, j *Job) {
			_, priv, _ := ed25519.GenerateKey(nil)
			j.Scope = signScope(t, scopeDoc(), priv)
		}, ErrScopeUntrusted},
		{"scope edited", func(_ *testing.T, j *Job) {
			j.Scope = bytes.Replace(j.Scope, []byte(`"max_pps":400`), []byte(`"max_pps":900`), 1)
		}, ErrScope},
		{"scope expired", func(t *testing.T, j *Job) {
			d := scopeDoc()
			d.NotAfter = testNow
			j.Scope = signScope(t, d, scopeKey)
			j.Request.ScopeSHA256 = strings.Repeat("00", 32)
		}, ErrScope},
		{"request scope_sha256", func(_ *testing.T, j *Job) { j.Request.ScopeSHA256 = other }, ErrScopeMismatch},
		{"request tenant", func(_ *testing.T, j *Job) { j.Request.Tenant = "globex" }, ErrScopeMismatch},
		{"request target outside", func(_ *testing.T, j *Job) { j.Request.Targets = append(j.Request.Targets, "10.21.0.1") }, ErrTargetOutOfScope},
		{"request target over an exclude", func(_ *testing.T, j *Job) { j.Request.Targets = append(j.Request.Targets, "10.20.1.0/24") }, ErrTargetOutOfScope},
		{"request target not canonical", func(_ *testing.T, j *Job) { j.Request.Targets[2] = "10.20.0.9/32" }, ErrInvalid},
		{"request target hostname", func(_ *testing.T, j *Job) { j.Request.Targets[2] = "web.example" }, ErrInvalid},
		{"request targets too many", func(_ *testing.T, j *Job) { j.Request.Targets = []string{"2001:db8:20::/64"} }, ErrTooManyTargets},
		{"request port outside", func(_ *testing.T, j *Job) { j.Request.Ports = "tcp:22,443,8080" }, ErrPortOutOfScope},
		{"request udp port", func(_ *testing.T, j *Job) { j.Request.Ports = "tcp:22,443 udp:123" }, ErrPortOutOfScope},
		{"request probe outside scope", func(_ *testing.T, j *Job) { j.Request.Probes = append(j.Request.Probes, safety.KindTLSHello) }, ErrProbeNotAllowed},
		{"request rate above scope", func(_ *testing.T, j *Job) { j.Request.Rate = 401 }, ErrRateAboveCap},
		{"request rate zero", func(_ *testing.T, j *Job) { j.Request.Rate = 0 }, ErrInvalid},
		{"request vantage", func(_ *testing.T, j *Job) { j.Request.Vantage = "sensor-7" }, ErrApprovalMismatch},
		{"request policy", func(_ *testing.T, j *Job) { j.Request.PolicySHA256 = "" }, ErrApprovalMismatch},
		{"request id", func(_ *testing.T, j *Job) { j.Request.ID = "req-2" }, ErrApprovalMismatch},
		{"request requester", func(_ *testing.T, j *Job) { j.Request.Requester = "u-other" }, ErrApprovalMismatch},
		{"request ports narrowed", func(_ *testing.T, j *Job) { j.Request.Ports = "tcp:22" }, ErrApprovalMismatch},
		{"approval request hash", func(_ *testing.T, j *Job) { j.Approvals[1].RequestSHA256 = other }, ErrApprovalMismatch},
		{"approval id", func(_ *testing.T, j *Job) { j.Approvals[0].ID = "ap-9" }, nil},
		{"approval dropped", func(_ *testing.T, j *Job) { j.Approvals = j.Approvals[:1] }, ErrApprovals},
		{"approvals none", func(_ *testing.T, j *Job) { j.Approvals = nil }, ErrApprovals},
		{"approver twice", func(_ *testing.T, j *Job) { j.Approvals[1].Approver = "u-a1" }, ErrApprovals},
		{"requester approves", func(t *testing.T, j *Job) {
			j.Request.Requester = "u-a1"
			*j = rebind(t, *j)
		}, ErrApprovals},
	}
}

// TestTamperedJob alters each job field in turn and proves the job is
// refused: changed after signing, every change breaks the signature; signed
// again with the job key, every change of meaning is refused with its own
// sentinel error.
func TestTamperedJob(t *testing.T) {
	p := testProfile(t)
	good := sign(t, goodJob(t), jobKey)
	sigBlock := good[bytes.LastIndex(good, []byte(`,"signature":`)):]
	for _, m := range mutations() {
		t.Run(m.name, func(t *testing.T) {
			j := goodJob(t)
			m.mut(t, &j)
			// Altered after signing: the original signature over new bytes.
			j.SignerKeyID = mustOpen(t, good).SignerKeyID
			c, err := j.Canonical()
			if err != nil {
				t.Fatal(err)
			}
			tampered := append(append([]byte(`{"job":`), c...), sigBlock...)
			if _, err := verify(tampered, p); !errors.Is(err, ErrSignature) {
				t.Fatalf("tampered: Verify = %v, want ErrSignature", err)
			}
			// Signed again: the specific reason.
			j.SignerKeyID = ""
			signed, err := Sign(j, jobKey)
			if err != nil {
				if m.resigned == ErrInvalid && errors.Is(err, ErrInvalid) {
					// Sign refuses it already; Verify must too.
					signed = forgeSigned(t, j)
				} else {
					t.Fatalf("Sign: %v", err)
				}
			}
			_, err = verify(signed, p)
			if m.resigned == nil {
				if err != nil {
					t.Fatalf("re-signed: Verify = %v, want success", err)
				}
				return
			}
			if !errors.Is(err, m.resigned) {
				t.Fatalf("re-signed: Verify = %v, want %v", err, m.resigned)
			}
		})
	}
}

func mustOpen(t *testing.T, signed []byte) Job {
	t.Helper()
	j, _, err := Open(signed)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// forgeSigned signs j without Sign's validation, as a buggy or hostile
// orchestrator holding the job key would.
func forgeSigned(t *testing.T, j Job) []byte {
	t.Helper()
	good := sign(t, goodJob(t), jobKey)
	j.SignerKeyID = mustOpen(t, good).SignerKeyID
	c, err := j.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	sig := ed25519.Sign(jobKey, signedMessage(c))
	return []byte(`{"job":` + string(c) + `,"signature":{"alg":"ed25519","key_id":"` + j.SignerKeyID + `","sig":"` + b64(sig) + `"}}`)
}

// TestVerifyEnvelope: the envelope and the keys.
func TestVerifyEnvelope(t *testing.T) {
	p := testProfile(t)
	good := sign(t, goodJob(t), jobKey)
	byOther := sign(t, goodJob(t), otherKey)
	tests := []struct {
		name   string
		signed []byte
		want   error
	}{
		{"other job key", byOther, ErrUntrustedKey},
		{"key_id swapped", bytes.Replace(good, []byte(`"key_id":"`+mustOpen(t, good).SignerKeyID), []byte(`"key_id":"`+mustOpen(t, byOther).SignerKeyID), 1), ErrUntrustedKey},
		{"duplicate member", bytes.Replace(good, []byte(`{"job":{"approvals":`), []byte(`{"job":{"id":"x","approvals":`), 1), ErrInvalid},
		{"case-folded member", bytes.Replace(good, []byte(`"scan_id":`), []byte(`"Scan_id":`), 1), ErrInvalid},
		{"unknown member", bytes.Replace(good, []byte(`{"job":{`), []byte(`{"job":{"x":1,`), 1), ErrInvalid},
		{"null member", bytes.Replace(good, []byte(`"policy_sha256":"`+strings.Repeat("ab", 32)+`"`), []byte(`"policy_sha256":null`), 1), ErrInvalid},
		{"float rate", bytes.Replace(good, []byte(`"rate":200`), []byte(`"rate":200.0`), 1), ErrInvalid},
		{"other alg", bytes.Replace(good, []byte(`"alg":"ed25519"`), []byte(`"alg":"none"`), 1), ErrInvalid},
		{"truncated", good[:len(good)/2], ErrInvalid},
		{"trailing data", append(bytes.TrimSpace(bytes.Clone(good)), '{'), ErrInvalid},
		{"not json", []byte("job"), ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := verify(tt.signed, p); !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := Verify(good, nil, nil, p, testNow); !errors.Is(err, ErrUntrustedKey) {
		t.Fatalf("no job key: %v", err)
	}
	if _, err := Verify(good, jobKey.Public().(ed25519.PublicKey), nil, p, testNow); !errors.Is(err, ErrScopeUntrusted) {
		t.Fatalf("no scope keys: %v", err)
	}
	// A profile the scope does not fit (a narrower runner) refuses the job.
	narrow := p
	narrow.GlobalPPS = 100
	if _, err := verify(good, narrow); !errors.Is(err, ErrScope) {
		t.Fatalf("narrow profile: %v", err)
	}
}

// TestNonProduction: a non-production scope runs without approvals; any
// approval present must still be bound to the request.
func TestNonProduction(t *testing.T) {
	p := testProfile(t)
	d := scopeDoc()
	d.Environment = scope.EnvNonProduction
	j := goodJob(t)
	j.Scope = signScope(t, d, scopeKey)
	j.Request.ScopeSHA256 = scopeHash(t, j.Scope)
	j.Approvals = nil
	if _, err := verify(sign(t, j, jobKey), p); err != nil {
		t.Fatalf("no approvals: %v", err)
	}
	j.Approvals = []Approval{{ID: "ap-1", Approver: "u-a1", RequestSHA256: strings.Repeat("00", 32)}}
	if _, err := verify(sign(t, j, jobKey), p); !errors.Is(err, ErrApprovalMismatch) {
		t.Fatalf("stale approval: %v", err)
	}
}

// TestExample keeps testdata/example.json (quoted in docs/job.md) in step
// with the code; regenerate with -update.
func TestExample(t *testing.T) {
	signed := sign(t, goodJob(t), jobKey)
	if _, err := verify(signed, testProfile(t)); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("testdata/example.json", signed, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("testdata/example.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(signed, want) {
		t.Fatalf("testdata/example.json is stale; run go test ./probe/job -run TestExample -update\n%s", signed)
	}
}

func TestTargetsOf(t *testing.T) {
	d := scopeDoc()
	signed := signScope(t, d, scopeKey)
	sc, err := scope.Verify(signed, scopeKey.Public().(ed25519.PublicKey), testNow, testProfile(t))
	if err != nil {
		t.Fatal(err)
	}
	resolver := func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("10.20.0.9"), netip.MustParseAddr("2001:db8:20::5")}, nil
	}
	var ts []scope.Target
	for _, in := range []string{"10.20.3.0/24", "web.example", "10.20.0.9", "2001:db8:20::/120", "10.20.2.0/24", "10.20.0.7"} {
		tg, err := sc.Resolve(context.Background(), in, resolver)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, tg)
	}
	got := TargetsOf(ts)
	want := []string{"10.20.0.7", "10.20.0.9", "2001:db8:20::5", "10.20.2.0/24", "10.20.3.0/24", "2001:db8:20::/120"}
	if !slices.Equal(got, want) {
		t.Fatalf("TargetsOf = %v, want %v", got, want)
	}
	r := goodJob(t).Request
	r.Targets = got
	if err := r.Validate(); err != nil {
		t.Fatalf("TargetsOf output is not a valid request: %v", err)
	}
}
