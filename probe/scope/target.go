package scope

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// checkChars refuses input that carries whitespace, control characters or
// non-ASCII bytes: a target is typed by a person and read by several
// parsers, and invisible characters are where they disagree.
func checkChars(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
			return fmt.Errorf("contains whitespace at byte %d", i)
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("contains a control character at byte %d", i)
		case c >= 0x80:
			return fmt.Errorf("contains a non-ASCII byte at byte %d (write internationalised names as xn-- punycode)", i)
		}
	}
	return nil
}

// parseAddrStrict parses an address with net/netip, the one canonical parser,
// and explains the forms it refuses that other parsers (inet_aton, some
// browsers) would accept with another meaning.
func parseAddrStrict(s string) (netip.Addr, error) {
	if err := checkChars(s); err != nil {
		return netip.Addr{}, err
	}
	if strings.Contains(s, "%") {
		return netip.Addr{}, errors.New("zone ids (%...) are refused: they name an interface, not a destination")
	}
	a, err := netip.ParseAddr(s)
	if err == nil {
		return a, nil
	}
	if reason := whyNotIPv4(s); reason != "" {
		return netip.Addr{}, errors.New(reason)
	}
	return netip.Addr{}, fmt.Errorf("not a canonical IPv4 or IPv6 address: %v", err)
}

// whyNotIPv4 names the reason a dotted or numeric string is not a canonical
// IPv4 address, or returns "" when the string does not look like IPv4.
func whyNotIPv4(s string) string {
	if strings.Contains(s, ":") {
		return ""
	}
	lower := strings.ToLower(s)
	if strings.HasSuffix(s, ".") {
		return "trailing dot is refused"
	}
	parts := strings.Split(lower, ".")
	numeric := true
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789abcdefx") != "" {
			numeric = false
		}
	}
	if !numeric {
		return ""
	}
	for _, p := range parts {
		if strings.HasPrefix(p, "0x") {
			return "hexadecimal IPv4 parts are refused (inet_aton would read them)"
		}
		if strings.Trim(p, "0123456789") != "" {
			return ""
		}
	}
	if len(parts) > 4 {
		return fmt.Sprintf("%d dot-separated numbers is not an IPv4 address", len(parts))
	}
	if len(parts) < 4 {
		return fmt.Sprintf("shorthand IPv4 with %d parts is refused (inet_aton would expand it); write all four octets", len(parts))
	}
	for _, p := range parts {
		if len(p) > 1 && p[0] == '0' {
			return fmt.Sprintf("octet %q has a leading zero (octal to inet_aton, decimal to others); refused", p)
		}
		if len(p) > 3 || p > "255" && len(p) == 3 {
			return fmt.Sprintf("octet %q is above 255", p)
		}
	}
	return ""
}

// ParseTarget parses one target address strictly. An IPv4-mapped IPv6
// address ("::ffff:10.0.0.1") is returned as the IPv4 address it maps, so it
// is judged and probed by the IPv4 rules. Addresses that cannot name one
// host are refused: unspecified, multicast, limited broadcast, and IPv6
// link-local (meaningless without a zone, and zones are refused).
func ParseTarget(s string) (netip.Addr, error) {
	a, err := parseAddrStrict(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w %q: %v", ErrBadTarget, s, err)
	}
	a = a.Unmap()
	if err := checkUnicast(a); err != nil {
		return netip.Addr{}, fmt.Errorf("%w %q: %v", ErrBadTarget, s, err)
	}
	return a, nil
}

func checkUnicast(a netip.Addr) error {
	switch {
	case a.Zone() != "":
		return errors.New("zone ids are refused")
	case a.IsUnspecified():
		return errors.New("unspecified address")
	case a.IsMulticast():
		return errors.New("multicast address (one probe would reach many hosts)")
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return errors.New("limited broadcast address")
	case a.Is6() && (a.IsLinkLocalUnicast()):
		return errors.New("IPv6 link-local address needs a zone, and zones are refused")
	}
	return nil
}

// looksLikeAddress reports whether s should be judged as an address literal
// rather than a hostname: it has a colon, or its last dot-separated label is
// numeric (no top-level domain is all digits, so "10.1" or "1.2.3.4." are
// malformed addresses, not names).
func looksLikeAddress(s string) bool {
	if strings.ContainsAny(s, ":%") {
		return true
	}
	last := s[strings.LastIndex(strings.TrimSuffix(s, "."), ".")+1:]
	last = strings.TrimSuffix(last, ".")
	if strings.HasPrefix(strings.ToLower(last), "0x") {
		return true
	}
	return last != "" && strings.Trim(last, "0123456789") == ""
}

// ParseHostname checks that s is a plain DNS hostname: ASCII letters, digits
// and hyphens in dot-separated labels of 1-63 characters, at most 253 in
// all, no trailing dot (a fully qualified and a relative name would resolve
// differently), no label starting or ending with a hyphen. It returns the
// name in lower case.
func ParseHostname(s string) (string, error) {
	if err := checkChars(s); err != nil {
		return "", fmt.Errorf("%w %q: %v", ErrBadTarget, s, err)
	}
	if looksLikeAddress(s) {
		_, err := ParseTarget(s)
		if err == nil {
			err = fmt.Errorf("%w %q: an address, not a hostname", ErrBadTarget, s)
		}
		return "", err
	}
	if len(s) > 253 {
		return "", fmt.Errorf("%w %q: hostname longer than 253 characters", ErrBadTarget, s)
	}
	if strings.HasSuffix(s, ".") {
		return "", fmt.Errorf("%w %q: trailing dot is refused", ErrBadTarget, s)
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 {
			return "", fmt.Errorf("%w %q: hostname label %q must be 1-63 characters", ErrBadTarget, s, l)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("%w %q: hostname label %q starts or ends with a hyphen", ErrBadTarget, s, l)
		}
		if strings.Trim(strings.ToLower(l), "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			return "", fmt.Errorf("%w %q: hostname label %q has a character other than a-z 0-9 -", ErrBadTarget, s, l)
		}
	}
	return strings.ToLower(s), nil
}

// Resolver resolves a hostname to addresses. It is called once per hostname
// target; the result is pinned.
type Resolver func(ctx context.Context, host string) ([]netip.Addr, error)

// SystemResolver resolves through the operating system's resolver
// configuration (net.DefaultResolver).
func SystemResolver(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// Target is a checked target: the input, the hostname if it was one, and the
// addresses to probe, pinned at resolution time so that a later DNS answer
// cannot move the scan elsewhere (no rebinding).
//
// A CIDR target ("10.20.1.0/24") has Prefix set and no Addrs: it stands for
// every address of the prefix, all of them in scope.
type Target struct {
	Input  string       `json:"input"`
	Host   string       `json:"host,omitempty"`  // lower-case hostname; "" for an address literal or CIDR
	Prefix netip.Prefix `json:"prefix,omitzero"` // a CIDR target; zero otherwise
	Addrs  []netip.Addr `json:"addresses"`       // sorted, unique, all in scope; nil for a CIDR target
}

// Resolve checks one target against the scope. An address literal is parsed
// with ParseTarget; a hostname is resolved once with r (SystemResolver when
// nil) and every returned address must be in scope, or the whole target is
// rejected with an error naming the first offending address.
//
// A target with a '/' is a CIDR (ParsePrefix syntax): it must lie wholly
// inside the scope and outside its excludes (CheckPrefix), and include no
// special address.
func (s *Scope) Resolve(ctx context.Context, target string, r Resolver) (Target, error) {
	t := Target{Input: target}
	if strings.Contains(target, "/") {
		p, err := ParseTargetPrefix(target)
		if err != nil {
			return t, err
		}
		if err := s.CheckPrefix(p); err != nil {
			return t, err
		}
		t.Prefix = p
		return t, nil
	}
	if target == "" || looksLikeAddress(target) || checkChars(target) != nil {
		a, err := ParseTarget(target)
		if err != nil {
			return t, err
		}
		if err := s.Check(a); err != nil {
			return t, err
		}
		t.Addrs = []netip.Addr{a}
		return t, nil
	}
	host, err := ParseHostname(target)
	if err != nil {
		return t, err
	}
	t.Host = host
	if r == nil {
		r = SystemResolver
	}
	addrs, err := r(ctx, host)
	if err != nil {
		return t, fmt.Errorf("%w %q: resolve: %v", ErrBadTarget, target, err)
	}
	if len(addrs) == 0 {
		return t, fmt.Errorf("%w %q: resolved to no address", ErrBadTarget, target)
	}
	for _, a := range addrs {
		if a.Zone() != "" {
			return t, fmt.Errorf("%w %q: resolved to %s with a zone", ErrBadTarget, target, a)
		}
		a = a.Unmap()
		if err := checkUnicast(a); err != nil {
			return t, fmt.Errorf("%w %q: resolved to %s: %v", ErrBadTarget, target, a, err)
		}
		if err := s.Check(a); err != nil {
			return t, fmt.Errorf("%q resolved to %s: %w", target, a, err)
		}
		t.Addrs = append(t.Addrs, a)
	}
	slices.SortFunc(t.Addrs, netip.Addr.Compare)
	t.Addrs = slices.Compact(t.Addrs)
	return t, nil
}

// ParseTargetPrefix parses a CIDR target strictly (ParsePrefix) and refuses
// one that includes a special address (SpecialPrefixes) or an IPv6
// link-local one, as ParseTarget refuses those addresses.
func ParseTargetPrefix(s string) (netip.Prefix, error) {
	p, err := ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%w %v", ErrBadTarget, err)
	}
	for _, sp := range specials() {
		if p.Overlaps(sp.p) {
			return netip.Prefix{}, fmt.Errorf("%w %q: includes %s (%s)", ErrBadTarget, s, sp.what, sp.p)
		}
	}
	if ll := netip.MustParsePrefix("fe80::/10"); p.Overlaps(ll) {
		return netip.Prefix{}, fmt.Errorf("%w %q: includes IPv6 link-local addresses (%s), which need a zone", ErrBadTarget, s, ll)
	}
	return p, nil
}

// CheckPrefix reports whether every address of p is in the scope: nil if
// so, otherwise an error wrapping ErrOutOfScope that names the first
// excluded prefix p overlaps, or the first address of p in none of the
// scope's CIDRs.
func (s *Scope) CheckPrefix(p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("%w: invalid prefix", ErrOutOfScope)
	}
	p = p.Masked()
	if s.r.containsInterval(p.Addr().Is4(), prefixInterval(p)) {
		return nil
	}
	for _, ex := range s.r.exclude {
		if ex.Overlaps(p) {
			return fmt.Errorf("%w: %s overlaps the excluded %s", ErrOutOfScope, p, ex)
		}
	}
	a := s.r.firstOutside(p.Addr().Is4(), prefixInterval(p))
	return fmt.Errorf("%w: %s includes %s, which is in none of the scope's CIDRs", ErrOutOfScope, p, a)
}
