package scope

import (
	"fmt"
	"net/netip"
)

// specialPrefix is an address block that never names one host: a probe to
// it would go nowhere (unspecified), to every host of a link (limited
// broadcast) or to a group of hosts (multicast). No scope may include one,
// whatever its signer meant, and the engine refuses to send to one.
type specialPrefix struct {
	p    netip.Prefix
	what string
}

// specials is the fixed list. It is a function so nothing can change it.
func specials() [5]specialPrefix {
	return [5]specialPrefix{
		{netip.MustParsePrefix("0.0.0.0/8"), "unspecified (\"this network\") addresses"},
		{netip.MustParsePrefix("224.0.0.0/4"), "multicast addresses"},
		{netip.MustParsePrefix("255.255.255.255/32"), "the limited broadcast address"},
		{netip.MustParsePrefix("::/128"), "the unspecified address"},
		{netip.MustParsePrefix("ff00::/8"), "multicast addresses"},
	}
}

// SpecialPrefixes returns the address blocks no scope may include and the
// engine never sends to: 0.0.0.0/8, 224.0.0.0/4, 255.255.255.255/32, ::/128
// and ff00::/8.
func SpecialPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range specials() {
		out = append(out, s.p)
	}
	return out
}

// Special reports whether a is in one of SpecialPrefixes, and if so says
// which block and why ("224.0.0.1 is in 224.0.0.0/4 (multicast
// addresses)"). An IPv4-mapped IPv6 address is judged as the IPv4 address
// it maps, as everywhere else. An invalid address is special (it cannot
// name a host either).
func Special(a netip.Addr) (string, bool) {
	if !IsSpecial(a) {
		return "", false
	}
	if !a.IsValid() {
		return "invalid address", true
	}
	u := a.Unmap().WithZone("")
	for _, s := range specials() {
		if s.p.Contains(u) {
			return fmt.Sprintf("%s is in %s (%s)", u, s.p, s.what), true
		}
	}
	return "", true // not reached: IsSpecial and specials agree (TestSpecial)
}

// IsSpecial is Special without the reason, cheap enough for the send path
// (no allocation, no parsing): it runs once per packet.
func IsSpecial(a netip.Addr) bool {
	if !a.IsValid() {
		return true
	}
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return b[0] == 0 || b[0]>>4 == 0xe || b == [4]byte{255, 255, 255, 255}
	}
	b := a.As16()
	return b[0] == 0xff || b == [16]byte{}
}

// checkSpecial refuses a compiled address set that includes any special
// address, naming the scope CIDR that brings it in and the block. The check
// runs on the set after excludes, so a scope may cover 0.0.0.0/8's
// neighbourhood if it excludes the block itself.
func checkSpecial(r *ranges) error {
	for _, s := range specials() {
		iv := prefixInterval(s.p)
		set := r.v6
		if s.p.Addr().Is4() {
			set = r.v4
		}
		if !intersects(set, iv) {
			continue
		}
		for _, c := range r.include {
			if c.Overlaps(s.p) {
				return fmt.Errorf("cidrs: %s includes %s (%s); exclude %s or narrow the CIDR", c, s.what, s.p, s.p)
			}
		}
		return fmt.Errorf("cidrs include %s (%s)", s.what, s.p) // not reached: the set comes from r.include
	}
	return nil
}

// intersects reports whether the sorted disjoint intervals set meet x.
func intersects(set []interval, x interval) bool {
	for _, v := range set {
		if v.lo.cmp(x.hi) <= 0 && x.lo.cmp(v.hi) <= 0 {
			return true
		}
	}
	return false
}
