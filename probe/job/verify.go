package job

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"firewalliq/probe/keys"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// Verified is a job that passed Verify, with what a runner needs compiled:
// the verified scope, the target set (every address in scope, at most the
// profile's max_targets) and the ports.
type Verified struct {
	Job           Job
	SHA256        string // Job.SHA256
	RequestSHA256 string // Request.SHA256
	Scope         *scope.Scope
	Targets       *scope.TargetSet
	Ports         []scope.Port
}

// Verify checks a signed job envelope, in this order, refusing the first
// mismatch with its sentinel error:
//
//  1. the envelope decodes strictly (ErrInvalid);
//  2. its key_id and the job's signer_key_id are the trusted job key's id
//     (ErrUntrustedKey), and the signature verifies over the canonical job
//     (ErrSignature);
//  3. the job is well formed (ErrInvalid);
//  4. now is inside [not_before, not_after) (ErrNotYetValid, ErrExpired);
//  5. the profile id and hash are p's (ErrProfileMismatch);
//  6. the embedded scope is signed by one of trustedScopeKeys
//     (ErrScopeUntrusted) and verifies against p at now (ErrScope);
//  7. the request names that scope's hash and tenant (ErrScopeMismatch);
//  8. every probe kind is allowed by the scope and p (ErrProbeNotAllowed),
//     every port is in the scope (ErrPortOutOfScope), the rate is at most
//     the scope's max_pps and p's global_pps (ErrRateAboveCap);
//  9. every target lies wholly in the scope (ErrTargetOutOfScope) and the
//     targets expand to at most p's max_targets (ErrTooManyTargets);
//  10. every approval is bound to this request's hash
//     (ErrApprovalMismatch), approvers are distinct and none is the
//     requester, and a production scope has at least two (ErrApprovals).
//
// Nothing is clamped or repaired: a runner runs exactly the verified job or
// nothing.
func Verify(signed []byte, trustedJobKey ed25519.PublicKey, trustedScopeKeys []ed25519.PublicKey, p safety.Profile, now time.Time) (*Verified, error) {
	if len(trustedJobKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("verify job: %w: trusted job key has %d bytes", ErrUntrustedKey, len(trustedJobKey))
	}
	j, sig, err := Open(signed)
	if err != nil {
		return nil, fmt.Errorf("verify job: %w", err)
	}
	want := keys.ID(trustedJobKey)
	if sig.KeyID != want || j.SignerKeyID != want {
		return nil, fmt.Errorf("verify job: %w: signed by key %s (signer_key_id %q), trusted job key is %s", ErrUntrustedKey, sig.KeyID, j.SignerKeyID, want)
	}
	c, err := j.Canonical()
	if err != nil {
		return nil, fmt.Errorf("verify job: %w", err)
	}
	if !ed25519.Verify(trustedJobKey, signedMessage(c), sig.Sig) {
		return nil, fmt.Errorf("verify job %q: %w", j.ID, ErrSignature)
	}
	v, err := check(j, trustedScopeKeys, p, now)
	if err != nil {
		return nil, fmt.Errorf("verify job %q: %w", j.ID, err)
	}
	return v, nil
}

// check is everything after the signature: the job's own content against
// the scope, the profile and the clock.
func check(j Job, trustedScopeKeys []ed25519.PublicKey, p safety.Profile, now time.Time) (*Verified, error) {
	if err := j.Validate(); err != nil {
		return nil, err
	}
	if now.Before(j.NotBefore) {
		return nil, fmt.Errorf("%w: valid from %s", ErrNotYetValid, formatTime(j.NotBefore))
	}
	if !now.Before(j.NotAfter) {
		return nil, fmt.Errorf("%w: valid until %s", ErrExpired, formatTime(j.NotAfter))
	}
	if j.Profile.ID != p.ID || j.Profile.SHA256 != p.SHA256() {
		return nil, fmt.Errorf("%w: job names %s %.12s, this runner enforces %s %.12s", ErrProfileMismatch, j.Profile.ID, j.Profile.SHA256, p.ID, p.SHA256())
	}
	_, ssig, err := scope.Open(j.Scope)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrScope, err)
	}
	var key ed25519.PublicKey
	for _, k := range trustedScopeKeys {
		if len(k) == ed25519.PublicKeySize && keys.ID(k) == ssig.KeyID {
			key = k
			break
		}
	}
	if key == nil {
		return nil, fmt.Errorf("%w: scope signed by key %s", ErrScopeUntrusted, ssig.KeyID)
	}
	sc, err := scope.Verify(j.Scope, key, now, p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrScope, err)
	}
	r := j.Request
	if r.ScopeSHA256 != sc.SHA256() {
		return nil, fmt.Errorf("%w: request names scope %.12s, the job carries %.12s", ErrScopeMismatch, r.ScopeSHA256, sc.SHA256())
	}
	if r.Tenant != sc.Doc.Tenant {
		return nil, fmt.Errorf("%w: request tenant %q, scope tenant %q", ErrScopeMismatch, r.Tenant, sc.Doc.Tenant)
	}
	for _, k := range r.Probes {
		if !sc.Allows(k) {
			return nil, fmt.Errorf("%w: %s is not in scope %s", ErrProbeNotAllowed, k, sc.Doc.ID)
		}
		if !p.Allows(k) {
			return nil, fmt.Errorf("%w: %s is not allowed by profile %s", ErrProbeNotAllowed, k, p.ID)
		}
	}
	var ports []scope.Port
	if r.Ports != "" {
		ports, _ = scope.ParsePorts(r.Ports) // validated
		allowed := sc.Ports()
		for _, pt := range ports {
			if _, found := slices.BinarySearchFunc(allowed, pt, comparePorts); !found {
				return nil, fmt.Errorf("%w: %s is not in scope %s (%s)", ErrPortOutOfScope, pt, sc.Doc.ID, sc.Doc.Ports)
			}
		}
	}
	if limit := min(sc.Doc.MaxPPS, p.GlobalPPS); r.Rate > limit {
		return nil, fmt.Errorf("%w: %d pps requested, the cap is %d (scope %d, profile %d)", ErrRateAboveCap, r.Rate, limit, sc.Doc.MaxPPS, p.GlobalPPS)
	}
	var targets []scope.Target
	for _, t := range r.Targets {
		// Addresses and CIDRs only (Validate): no resolver is consulted.
		rt, err := sc.Resolve(context.Background(), t, noResolver)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrTargetOutOfScope, err)
		}
		targets = append(targets, rt)
	}
	set, err := sc.Expand(targets, p)
	if err != nil {
		if errors.Is(err, scope.ErrExceedsProfile) {
			return nil, fmt.Errorf("%w: %w", ErrTooManyTargets, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrTargetOutOfScope, err)
	}
	rh, err := r.SHA256()
	if err != nil {
		return nil, err
	}
	var approvers []string
	for _, a := range j.Approvals {
		if a.RequestSHA256 != rh {
			return nil, fmt.Errorf("%w: approval %s by %s is bound to request %.12s, this request is %.12s", ErrApprovalMismatch, a.ID, a.Approver, a.RequestSHA256, rh)
		}
		if a.Approver == r.Requester {
			return nil, fmt.Errorf("%w: approval %s is by the requester %s", ErrApprovals, a.ID, a.Approver)
		}
		if slices.Contains(approvers, a.Approver) {
			return nil, fmt.Errorf("%w: %s approved twice", ErrApprovals, a.Approver)
		}
		approvers = append(approvers, a.Approver)
	}
	if sc.Doc.Environment == scope.EnvProduction && len(approvers) < 2 {
		return nil, fmt.Errorf("%w: production scope %s needs two approvers, the job has %d", ErrApprovals, sc.Doc.ID, len(approvers))
	}
	jh, err := j.SHA256()
	if err != nil {
		return nil, err
	}
	return &Verified{Job: j, SHA256: jh, RequestSHA256: rh, Scope: sc, Targets: set, Ports: ports}, nil
}

// noResolver refuses to resolve: a job's targets are addresses and CIDRs,
// pinned when the job was issued, so a runner never asks DNS.
func noResolver(context.Context, string) ([]netip.Addr, error) {
	return nil, errors.New("a job's targets are never resolved")
}

func comparePorts(a, b scope.Port) int {
	if a.Proto != b.Proto {
		if a.Proto < b.Proto {
			return -1
		}
		return 1
	}
	return int(a.Number) - int(b.Number)
}
