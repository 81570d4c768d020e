package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"syscall"
)

// fibKeys is, for IPv4, the set of every destination prefix that appears
// in any routing table or policy rule, as read once from the kernel. Two
// destinations whose most specific covering prefix in this set is the
// same get the same routing decision from every table and every rule
// that selects on destination, so the same source address: the engine
// looks the source up once per such prefix instead of once per target
// (the lookups were a fifth of the CPU at high rates). IPv6 is not cached:
// its source address selection (RFC 6724, longest matching prefix) can
// differ between destinations of one route.
type fibKeys struct {
	set  map[netip.Prefix]struct{}
	lens []int // distinct prefix lengths, longest first
}

// errNetlink is a netlink answer the engine could not read.
var errNetlink = errors.New("malformed netlink message")

// loadFIBKeys reads the IPv4 routes of all tables and the IPv4 policy
// rules.
func loadFIBKeys() (*fibKeys, error) {
	k := &fibKeys{set: map[netip.Prefix]struct{}{}}
	for _, q := range []struct {
		req, resp int
	}{{syscall.RTM_GETROUTE, syscall.RTM_NEWROUTE}, {syscall.RTM_GETRULE, syscall.RTM_NEWRULE}} {
		b, err := syscall.NetlinkRIB(q.req, syscall.AF_INET)
		if err != nil {
			return nil, fmt.Errorf("netlink dump: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(b)
		if err != nil {
			return nil, fmt.Errorf("netlink dump: %w", err)
		}
		for _, m := range msgs {
			if int(m.Header.Type) != q.resp {
				continue
			}
			p, err := dstPrefix(m.Data)
			if err != nil {
				return nil, err
			}
			k.add(p)
		}
	}
	return k, nil
}

func (k *fibKeys) add(p netip.Prefix) {
	k.set[p] = struct{}{}
	if !slices.Contains(k.lens, p.Bits()) {
		k.lens = append(k.lens, p.Bits())
		slices.SortFunc(k.lens, func(a, b int) int { return b - a })
	}
}

// dstPrefix reads the destination prefix of an rtmsg or fib_rule_hdr
// (both 12 bytes: family, dst_len, ...) followed by route attributes, where
// RTA_DST and FRA_DST are both type 1.
func dstPrefix(b []byte) (netip.Prefix, error) {
	const hdr = 12
	if len(b) < hdr || b[0] != syscall.AF_INET || b[1] > 32 {
		return netip.Prefix{}, errNetlink
	}
	bits := int(b[1])
	addr := netip.IPv4Unspecified()
	for a := b[hdr:]; len(a) >= 4; {
		l := int(binary.NativeEndian.Uint16(a[0:]))
		typ := binary.NativeEndian.Uint16(a[2:])
		if l < 4 || l > len(a) {
			return netip.Prefix{}, errNetlink
		}
		if typ == syscall.RTA_DST && l == 8 {
			addr = netip.AddrFrom4([4]byte(a[4:8]))
		}
		a = a[min((l+3)&^3, len(a)):]
	}
	return netip.PrefixFrom(addr, bits).Masked(), nil
}

// key returns the most specific prefix of the set containing a.
func (k *fibKeys) key(a netip.Addr) (netip.Prefix, bool) {
	for _, l := range k.lens {
		p := netip.PrefixFrom(a, l).Masked()
		if _, ok := k.set[p]; ok {
			return p, true
		}
	}
	return netip.Prefix{}, false
}
