// Package job implements the signed job document: what the orchestrator
// hands a runner (the local engine, or later a remote sensor) so that the
// runner can check, on its own and before the first packet, that the scan
// it is asked to run was authorised.
//
// A job binds the signed scope (embedded whole, so a runner needs nothing
// but the job and its trusted keys), the request (targets, ports, probe
// kinds, rate, vantage point, policy hash, requester), the safety profile's
// id and hash, the approvals (each bound to the request's hash) and a short
// validity window. It is signed with the appliance's job key (Ed25519) over
// a canonical encoding (probe/internal/canon, the same writer as the scope's)
// with its own signing context, so a job signature can never pass as a
// scope, report or profile signature. The format is documented in
// docs/job.md.
//
// Verify is the only way to obtain a *Verified job, and it refuses every
// mismatch with a specific sentinel error. The package imports nothing from
// appliance: a remote sensor links it alone.
package job

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"time"

	"firewalliq/probe/internal/canon"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// Errors returned by Verify (and by Sign for a malformed job). Each names
// one reason a runner refuses a job; wrapped errors carry the detail.
var (
	// ErrInvalid means the job is malformed (syntax, canonical forms,
	// limits).
	ErrInvalid = errors.New("invalid job")
	// ErrUntrustedKey means the job is signed by another key than the
	// trusted job key, or names another signer than the one that signed.
	ErrUntrustedKey = errors.New("job signed by an untrusted key")
	// ErrSignature means the job signature does not verify.
	ErrSignature = errors.New("job signature does not verify")
	// ErrNotYetValid means now is before the job's not_before.
	ErrNotYetValid = errors.New("job is not yet valid")
	// ErrExpired means now is at or after the job's not_after.
	ErrExpired = errors.New("job has expired")
	// ErrProfileMismatch means the job names another safety profile (id or
	// hash) than the one this runner enforces.
	ErrProfileMismatch = errors.New("job names another safety profile")
	// ErrScopeUntrusted means the embedded scope is signed by none of the
	// trusted scope keys.
	ErrScopeUntrusted = errors.New("job scope signed by an untrusted key")
	// ErrScope means the embedded scope does not verify (signature, window,
	// profile, special addresses); the scope package's error is wrapped.
	ErrScope = errors.New("job scope does not verify")
	// ErrScopeMismatch means the request names another scope hash or
	// tenant than the embedded scope's.
	ErrScopeMismatch = errors.New("job request does not match its scope")
	// ErrTargetOutOfScope means a requested target is not wholly inside
	// the scope.
	ErrTargetOutOfScope = errors.New("job target outside the scope")
	// ErrTooManyTargets means the targets expand to more addresses than
	// the profile's max_targets.
	ErrTooManyTargets = errors.New("job targets exceed the profile's max_targets")
	// ErrPortOutOfScope means a requested port is not in the scope.
	ErrPortOutOfScope = errors.New("job port outside the scope")
	// ErrProbeNotAllowed means a requested probe kind is not allowed by
	// the scope or the profile.
	ErrProbeNotAllowed = errors.New("job probe kind not allowed")
	// ErrRateAboveCap means the requested rate is above the scope's
	// max_pps or the profile's global_pps. It is refused, never clamped.
	ErrRateAboveCap = errors.New("job rate above the cap")
	// ErrApprovalMismatch means an approval is bound to another request
	// hash than the job's request.
	ErrApprovalMismatch = errors.New("job approval bound to another request")
	// ErrApprovals means the approvals do not meet the rule: a production
	// scope needs two, from two distinct approvers, neither the requester.
	ErrApprovals = errors.New("job approvals insufficient")
)

// Limits on a job's size, so a hostile job cannot make the verifier do
// unbounded work.
const (
	MaxTargets   = 1024 // entries in request.targets (each may be a CIDR)
	MaxApprovals = 16
	// MaxValidity bounds not_after - not_before: a job is a permission to
	// start one scan soon, not a standing authorisation (schedules are).
	MaxValidity = 24 * time.Hour
)

// Approval is one approver's decision, bound to the hash of the exact
// request it approved.
type Approval struct {
	ID            string // approval id
	Approver      string // approver's user id
	RequestSHA256 string // Request.SHA256 of what was approved
}

// Request is what a person asked for and approvers approved. Its canonical
// encoding's SHA-256 (SHA256) is what approvals bind to: change anything
// in it and every approval dies.
type Request struct {
	ID           string        // scan request id
	Tenant       string        // must equal the scope's tenant
	Requester    string        // requesting user's id
	ScopeSHA256  string        // scope.Scope.SHA256 of the scope it runs under
	Targets      []string      // canonical addresses or CIDRs (hostnames are resolved and pinned before)
	Ports        string        // canonical port specification (scope.FormatPorts); "" with icmp-echo only
	Probes       []safety.Kind // probe kinds, each once
	Rate         int           // packets per second
	Vantage      string        // the runner that must run it ("local" or a sensor id)
	PolicySHA256 string        // SHA-256 of the expected policy; "" for none
}

// ProfileRef names the safety profile a job was issued under.
type ProfileRef struct {
	ID     string
	SHA256 string
}

// Job is a job document as signed.
type Job struct {
	ID           string
	ScanID       string
	Request      Request
	Scope        []byte // the signed scope envelope (any formatting; encoded canonically)
	Profile      ProfileRef
	Approvals    []Approval
	IssuedAt     time.Time
	NotBefore    time.Time
	NotAfter     time.Time
	Seed         uint64 // target order (scope.TargetSet.Targets); part of the job so a resumed run walks the same order
	BatchTargets int    // targets per batch, the unit of resume (0: the engine's default)
	SignerKeyID  string // id of the job key; Sign fills it in
}

// Vantage points. A sensor's id is any other valid id.
const VantageLocal = "local"

var (
	idPattern  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._:@-]{0,127}$`)
	hexPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)
	keyPattern = regexp.MustCompile(`^[0-9a-f]{16}$`)
	// profilePattern is probe/safety's profile id syntax.
	profilePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
)

// portKinds are the probe kinds that need a port.
var portKinds = []safety.Kind{safety.KindTCPSyn, safety.KindTCPConnect, safety.KindUDP, safety.KindTLSHello, safety.KindBanner}

func bad(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// Validate checks the request on its own: ids, hashes, canonical target
// and port forms, probe kinds, rate.
func (r Request) Validate() error {
	for _, f := range []struct{ name, v string }{{"request id", r.ID}, {"tenant", r.Tenant}, {"requester", r.Requester}, {"vantage", r.Vantage}} {
		if !idPattern.MatchString(f.v) {
			return bad("%s %q must be 1-128 characters of A-Z a-z 0-9 _ . : @ -", f.name, f.v)
		}
	}
	if !hexPattern.MatchString(r.ScopeSHA256) {
		return bad("scope_sha256 %q is not 64 lower-case hex digits", r.ScopeSHA256)
	}
	if r.PolicySHA256 != "" && !hexPattern.MatchString(r.PolicySHA256) {
		return bad("policy_sha256 %q is neither empty nor 64 lower-case hex digits", r.PolicySHA256)
	}
	if len(r.Targets) == 0 || len(r.Targets) > MaxTargets {
		return bad("targets must have 1-%d entries, got %d", MaxTargets, len(r.Targets))
	}
	for i, t := range r.Targets {
		c, err := canonicalTarget(t)
		if err != nil {
			return bad("targets: %v", err)
		}
		if c != t {
			return bad("targets: %q is not in canonical form %q", t, c)
		}
		if slices.Contains(r.Targets[:i], t) {
			return bad("targets: %q listed twice", t)
		}
	}
	if len(r.Probes) == 0 {
		return bad("probes is empty")
	}
	needPorts := false
	for i, k := range r.Probes {
		if _, err := safety.ParseKind(string(k)); err != nil {
			return bad("probes: %v", err)
		}
		if slices.Contains(r.Probes[:i], k) {
			return bad("probes: %q listed twice", k)
		}
		needPorts = needPorts || slices.Contains(portKinds, k)
	}
	switch {
	case needPorts && r.Ports == "":
		return bad("ports is empty but probes include port-based kinds")
	case !needPorts && r.Ports != "":
		return bad("ports %q given but no probe kind uses ports", r.Ports)
	case r.Ports != "":
		ps, err := scope.ParsePorts(r.Ports)
		if err != nil {
			return bad("ports: %v", err)
		}
		if c := scope.FormatPorts(ps); c != r.Ports {
			return bad("ports %q is not in canonical form %q", r.Ports, c)
		}
	}
	if r.Rate < 1 {
		return bad("rate must be at least 1 pps, got %d", r.Rate)
	}
	return nil
}

// canonicalTarget parses an address or CIDR target strictly and returns
// its canonical text (a /32 or /128 is written as the bare address), so one
// set of targets has one request hash.
func canonicalTarget(t string) (string, error) {
	for i := 0; i < len(t); i++ {
		if t[i] == '/' {
			p, err := scope.ParseTargetPrefix(t)
			if err != nil {
				return "", err
			}
			if p.IsSingleIP() {
				// One address has one canonical form: the bare address.
				return p.Addr().String(), nil
			}
			return p.String(), nil
		}
	}
	a, err := scope.ParseTarget(t)
	if err != nil {
		return "", err
	}
	return a.String(), nil
}

// object returns the request's canonical members.
func (r Request) object() canon.Object {
	probes := make([]string, len(r.Probes))
	for i, k := range r.Probes {
		probes[i] = string(k)
	}
	targets := r.Targets
	if targets == nil {
		targets = []string{}
	}
	return canon.Object{
		"id": r.ID, "tenant": r.Tenant, "requester": r.Requester, "scope_sha256": r.ScopeSHA256,
		"targets": targets, "ports": r.Ports, "probes": probes, "rate": r.Rate,
		"vantage": r.Vantage, "policy_sha256": r.PolicySHA256,
	}
}

// Canonical returns the request's canonical encoding (docs/job.md).
func (r Request) Canonical() ([]byte, error) {
	b, err := canon.Marshal(r.object())
	if err != nil {
		return nil, fmt.Errorf("%w: request: %w", ErrInvalid, err)
	}
	return b, nil
}

// SHA256 returns the hex SHA-256 of the request's canonical encoding: the
// hash approvals bind to.
func (r Request) SHA256() (string, error) {
	b, err := r.Canonical()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// Validate checks the job on its own, without keys, a profile or a clock.
// An empty SignerKeyID is accepted here (Sign fills it in).
func (j Job) Validate() error {
	for _, f := range []struct{ name, v string }{{"id", j.ID}, {"scan_id", j.ScanID}} {
		if !idPattern.MatchString(f.v) {
			return bad("%s %q must be 1-128 characters of A-Z a-z 0-9 _ . : @ -", f.name, f.v)
		}
	}
	if err := j.Request.Validate(); err != nil {
		return err
	}
	if _, err := scope.CanonicalEnvelope(j.Scope); err != nil {
		return bad("scope: %v", err)
	}
	if !profilePattern.MatchString(j.Profile.ID) {
		return bad("profile id %q is not [a-z0-9._-]{1,64}", j.Profile.ID)
	}
	if !hexPattern.MatchString(j.Profile.SHA256) {
		return bad("profile sha256 %q is not 64 lower-case hex digits", j.Profile.SHA256)
	}
	if len(j.Approvals) > MaxApprovals {
		return bad("at most %d approvals", MaxApprovals)
	}
	for i, a := range j.Approvals {
		if !idPattern.MatchString(a.ID) || !idPattern.MatchString(a.Approver) {
			return bad("approval %d: id %q and approver %q must be 1-128 characters of A-Z a-z 0-9 _ . : @ -", i, a.ID, a.Approver)
		}
		if !hexPattern.MatchString(a.RequestSHA256) {
			return bad("approval %s: request_sha256 %q is not 64 lower-case hex digits", a.ID, a.RequestSHA256)
		}
		for _, b := range j.Approvals[:i] {
			if b.ID == a.ID {
				return bad("approval %s listed twice", a.ID)
			}
		}
	}
	for _, t := range []struct {
		name string
		v    time.Time
	}{{"issued_at", j.IssuedAt}, {"not_before", j.NotBefore}, {"not_after", j.NotAfter}} {
		if t.v.IsZero() || t.v.Nanosecond() != 0 || t.v.UTC().Year() < 1 || t.v.UTC().Year() > 9999 {
			return bad("%s must be a whole-second time in years 0001-9999", t.name)
		}
	}
	if j.IssuedAt.After(j.NotBefore) {
		return bad("issued_at %s is after not_before %s", formatTime(j.IssuedAt), formatTime(j.NotBefore))
	}
	if !j.NotBefore.Before(j.NotAfter) {
		return bad("not_before %s is not before not_after %s", formatTime(j.NotBefore), formatTime(j.NotAfter))
	}
	if j.NotAfter.Sub(j.NotBefore) > MaxValidity {
		return bad("validity window %s is longer than %s", j.NotAfter.Sub(j.NotBefore), MaxValidity)
	}
	if j.BatchTargets < 0 || j.BatchTargets > 1<<20 {
		return bad("batch_targets %d outside 0-%d", j.BatchTargets, 1<<20)
	}
	if j.SignerKeyID != "" && !keyPattern.MatchString(j.SignerKeyID) {
		return bad("signer_key_id %q is not 16 lower-case hex digits", j.SignerKeyID)
	}
	return nil
}

// Canonical returns the job's canonical encoding: the bytes that are
// signed, after the signing context (docs/job.md).
func (j Job) Canonical() ([]byte, error) {
	sc, err := scope.CanonicalEnvelope(j.Scope)
	if err != nil {
		return nil, bad("scope: %v", err)
	}
	approvals := make([]canon.Object, len(j.Approvals))
	for i, a := range j.Approvals {
		approvals[i] = canon.Object{"id": a.ID, "approver": a.Approver, "request_sha256": a.RequestSHA256}
	}
	b, err := canon.Marshal(canon.Object{
		"id": j.ID, "scan_id": j.ScanID, "request": j.Request.object(), "scope": canon.Raw(sc),
		"profile":   canon.Object{"id": j.Profile.ID, "sha256": j.Profile.SHA256},
		"approvals": approvals, "issued_at": formatTime(j.IssuedAt),
		"not_before": formatTime(j.NotBefore), "not_after": formatTime(j.NotAfter),
		"seed": formatSeed(j.Seed), "batch_targets": j.BatchTargets, "signer_key_id": j.SignerKeyID,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return b, nil
}

// SHA256 returns the hex SHA-256 of the job's canonical encoding; evidence
// manifests and audit entries name a job by it.
func (j Job) SHA256() (string, error) {
	b, err := j.Canonical()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// formatTime writes t as the canonical encoding does: RFC 3339 in UTC,
// whole seconds, "Z".
func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// formatSeed writes the seed as 16 lower-case hex digits: a JSON number
// would lose precision above 2^53 in many readers.
func formatSeed(s uint64) string {
	h := strconv.FormatUint(s, 16)
	for len(h) < 16 {
		h = "0" + h
	}
	return h
}

// TargetsOf turns checked targets (scope.Scope.Resolve: addresses, pinned
// hostname answers, CIDRs) into a request's target list: canonical text,
// each once, addresses before prefixes, each sorted, so the same set of
// targets always makes the same request hash.
func TargetsOf(ts []scope.Target) []string {
	var addrs []netip.Addr
	var prefixes []netip.Prefix
	for _, t := range ts {
		if t.Prefix.IsValid() {
			if p := t.Prefix.Masked(); p.IsSingleIP() {
				addrs = append(addrs, p.Addr())
			} else {
				prefixes = append(prefixes, p)
			}
		}
		for _, a := range t.Addrs {
			addrs = append(addrs, a.Unmap())
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	slices.SortFunc(prefixes, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	out := []string{}
	for _, a := range slices.Compact(addrs) {
		out = append(out, a.String())
	}
	for _, p := range slices.Compact(prefixes) {
		out = append(out, p.String())
	}
	return out
}
