// Package scope implements signed scope documents: the contract that says
// what may be probed. A scope names CIDRs (IPv4 and IPv6) with excludes, a
// port specification, the probe kinds it allows, a validity window and a
// packet-rate cap, and it is signed with Ed25519 over a canonical encoding
// (docs/scope.md).
//
// Verify is the only way to obtain a *Scope: it checks the signature, the
// validity window against an injected time, and the limits of the safety
// profile, and compiles the CIDR sets into sorted disjoint ranges so that
// Contains is a binary search and Targets enumerates every in-scope address
// exactly once in a random order without materialising the set.
//
// Parsing is deliberately unforgiving: anything that another parser could
// read differently (leading zeros, shorthand IPv4, zones, host bits in a
// prefix, duplicate or case-folded JSON keys) is refused with a reason rather
// than guessed at.
package scope

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"firewalliq/probe/safety"
)

// Errors returned by this package. Wrapped errors carry the detail.
var (
	// ErrInvalid means a scope document is malformed.
	ErrInvalid = errors.New("invalid scope document")
	// ErrSignature means the signature does not verify.
	ErrSignature = errors.New("scope signature does not verify")
	// ErrUntrustedKey means the scope is signed by another key than the
	// trusted one, or names another signer than the one that signed it.
	ErrUntrustedKey = errors.New("scope signed by an untrusted key")
	// ErrNotYetValid means now is before the scope's not_before.
	ErrNotYetValid = errors.New("scope is not yet valid")
	// ErrExpired means now is at or after the scope's not_after.
	ErrExpired = errors.New("scope has expired")
	// ErrExceedsProfile means the scope asks for more than the safety
	// profile allows. It is refused, never clamped.
	ErrExceedsProfile = errors.New("scope exceeds the safety profile")
	// ErrBadTarget means a target could not be parsed unambiguously.
	ErrBadTarget = errors.New("bad target")
	// ErrOutOfScope means a target (or one of its resolved addresses) is
	// outside the scope.
	ErrOutOfScope = errors.New("out of scope")
	// ErrSpecialAddress means a scope includes an address that cannot name
	// one host: unspecified, limited broadcast or multicast (see
	// SpecialPrefixes). Such a scope is refused at signing and at
	// verification; the error also matches ErrInvalid.
	ErrSpecialAddress = errors.New("scope includes special addresses")
)

// Environments a scope may name. Production scopes need dual approval.
const (
	EnvProduction    = "production"
	EnvNonProduction = "non-production"
)

// Limits on a document's size, so a hostile document cannot make the
// verifier do unbounded work.
const (
	MaxCIDRs   = 1024 // entries in cidrs, and separately in exclude
	MaxNameLen = 200  // bytes in name
)

// Minimum prefix lengths of a scope CIDR: anything shorter is treated as an
// attempt to scan the internet and refused before the profile's MaxTargets
// is even consulted.
const (
	MinPrefixV4 = 8
	MinPrefixV6 = 32
)

// Document is a scope document as signed. JSON field names are those of the
// canonical encoding (docs/scope.md).
type Document struct {
	ID          string        `json:"id"`
	Tenant      string        `json:"tenant"`
	Name        string        `json:"name"`
	Environment string        `json:"environment"` // "production" | "non-production"
	CIDRs       []string      `json:"cidrs"`
	Exclude     []string      `json:"exclude"`
	Ports       string        `json:"ports"` // e.g. "tcp:22,80,443,8000-8100 udp:53"
	Probes      []safety.Kind `json:"probes"`
	NotBefore   time.Time     `json:"not_before"`
	NotAfter    time.Time     `json:"not_after"`
	MaxPPS      int           `json:"max_pps"`
	SignerKeyID string        `json:"signer_key_id"`
}

var (
	idPattern    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._:@-]{0,127}$`)
	keyIDPattern = regexp.MustCompile(`^[0-9a-f]{16}$`)
)

// portKinds are the probe kinds that need a port.
var portKinds = []safety.Kind{safety.KindTCPSyn, safety.KindTCPConnect, safety.KindUDP, safety.KindTLSHello, safety.KindBanner}

// Validate checks the document on its own, without a profile, a clock or a
// signature: field syntax, CIDRs, ports, probe kinds and the window's order.
// An empty SignerKeyID is accepted here (Sign fills it in); Verify requires
// it.
func (d Document) Validate() error {
	_, err := d.compile()
	return err
}

// compile validates d and builds its address ranges.
func (d Document) compile() (*ranges, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	if !idPattern.MatchString(d.ID) {
		return nil, bad("id %q must be 1-128 characters of A-Z a-z 0-9 _ . : @ -", d.ID)
	}
	if !idPattern.MatchString(d.Tenant) {
		return nil, bad("tenant %q must be 1-128 characters of A-Z a-z 0-9 _ . : @ -", d.Tenant)
	}
	if err := checkName(d.Name); err != nil {
		return nil, bad("name: %v", err)
	}
	if d.Environment != EnvProduction && d.Environment != EnvNonProduction {
		return nil, bad("environment %q must be %q or %q", d.Environment, EnvProduction, EnvNonProduction)
	}
	if len(d.CIDRs) == 0 {
		return nil, bad("cidrs is empty")
	}
	if len(d.CIDRs) > MaxCIDRs || len(d.Exclude) > MaxCIDRs {
		return nil, bad("at most %d cidrs and %d excludes", MaxCIDRs, MaxCIDRs)
	}
	if len(d.Probes) == 0 {
		return nil, bad("probes is empty")
	}
	needPorts := false
	for i, k := range d.Probes {
		if _, err := safety.ParseKind(string(k)); err != nil {
			return nil, bad("probes: %v", err)
		}
		if slices.Contains(d.Probes[:i], k) {
			return nil, bad("probes: %q listed twice", k)
		}
		needPorts = needPorts || slices.Contains(portKinds, k)
	}
	if d.Ports == "" {
		if needPorts {
			return nil, bad("ports is empty but probes include port-based kinds")
		}
	} else if _, err := ParsePorts(d.Ports); err != nil {
		return nil, bad("ports: %v", err)
	}
	if d.NotBefore.IsZero() || d.NotAfter.IsZero() {
		return nil, bad("not_before and not_after are required")
	}
	if d.NotBefore.Nanosecond() != 0 || d.NotAfter.Nanosecond() != 0 {
		return nil, bad("not_before and not_after must be whole seconds")
	}
	if y := d.NotAfter.UTC().Year(); y > 9999 || d.NotBefore.UTC().Year() < 1 {
		return nil, bad("validity window outside years 0001-9999")
	}
	if !d.NotBefore.Before(d.NotAfter) {
		return nil, bad("not_before %s is not before not_after %s", formatTime(d.NotBefore), formatTime(d.NotAfter))
	}
	if d.MaxPPS < 1 {
		return nil, bad("max_pps must be at least 1, got %d", d.MaxPPS)
	}
	if d.SignerKeyID != "" && !keyIDPattern.MatchString(d.SignerKeyID) {
		return nil, bad("signer_key_id %q is not 16 lower-case hex digits", d.SignerKeyID)
	}
	r, err := buildRanges(d.CIDRs, d.Exclude)
	if err != nil {
		return nil, bad("%v", err)
	}
	if r.size == 0 {
		return nil, bad("the excludes leave no address in scope")
	}
	if err := checkSpecial(r); err != nil {
		return nil, fmt.Errorf("%w: %w: %w", ErrInvalid, ErrSpecialAddress, err)
	}
	return r, nil
}

func checkName(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > MaxNameLen:
		return fmt.Errorf("longer than %d bytes", MaxNameLen)
	case !utf8.ValidString(s):
		return errors.New("not UTF-8")
	case strings.TrimSpace(s) != s:
		return errors.New("leading or trailing space")
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return fmt.Errorf("control character %U", r)
		}
	}
	return nil
}

// formatTime writes t as the canonical encoding does: RFC 3339 in UTC,
// whole seconds, "Z".
func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }
