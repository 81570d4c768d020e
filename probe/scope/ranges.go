package scope

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"slices"
	"strings"
)

// u128 is an address as an unsigned 128-bit number (IPv4 in the low 32 bits).
type u128 struct{ hi, lo uint64 }

func (a u128) cmp(b u128) int {
	switch {
	case a.hi < b.hi:
		return -1
	case a.hi > b.hi:
		return 1
	case a.lo < b.lo:
		return -1
	case a.lo > b.lo:
		return 1
	}
	return 0
}

func (a u128) add(n uint64) u128 {
	lo, c := bits.Add64(a.lo, n, 0)
	return u128{a.hi + c, lo}
}

func (a u128) sub1() u128 {
	lo, b := bits.Sub64(a.lo, 1, 0)
	return u128{a.hi - b, lo}
}

// span returns b-a+1 saturated to math.MaxUint64.
func span(a, b u128) uint64 {
	lo, borrow := bits.Sub64(b.lo, a.lo, 0)
	hi := b.hi - a.hi - borrow
	if hi != 0 || lo == math.MaxUint64 {
		return math.MaxUint64
	}
	return lo + 1
}

func toU128(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{0, uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func fromU128(v u128, is4 bool) netip.Addr {
	if is4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(v.lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], v.hi)
	binary.BigEndian.PutUint64(b[8:], v.lo)
	return netip.AddrFrom16(b)
}

// interval is an inclusive address range [lo, hi] of one family.
type interval struct{ lo, hi u128 }

func prefixInterval(p netip.Prefix) interval {
	lo := toU128(p.Addr())
	width := 32
	if !p.Addr().Is4() {
		width = 128
	}
	host := width - p.Bits() // host bits, 0..128
	hi := lo
	switch {
	case host >= 64:
		hi.lo = math.MaxUint64
		hi.hi |= (1<<(host-64) - 1) | boolMask(host == 128)
	case host > 0:
		hi.lo |= 1<<host - 1
	}
	return interval{lo, hi}
}

func boolMask(b bool) uint64 {
	if b {
		return math.MaxUint64
	}
	return 0
}

// merge sorts and coalesces overlapping or adjacent intervals.
func merge(iv []interval) []interval {
	slices.SortFunc(iv, func(a, b interval) int { return a.lo.cmp(b.lo) })
	var out []interval
	for _, x := range iv {
		if n := len(out); n > 0 {
			last := &out[n-1]
			if last.hi.cmp(u128{math.MaxUint64, math.MaxUint64}) == 0 || x.lo.cmp(last.hi.add(1)) <= 0 {
				if x.hi.cmp(last.hi) > 0 {
					last.hi = x.hi
				}
				continue
			}
		}
		out = append(out, x)
	}
	return out
}

// subtract removes ex (sorted, disjoint) from in (sorted, disjoint).
func subtract(in, ex []interval) []interval {
	var out []interval
	j := 0
	for _, x := range in {
		cur := x
		alive := true
		for j < len(ex) && ex[j].hi.cmp(cur.lo) < 0 {
			j++
		}
		for k := j; k < len(ex) && ex[k].lo.cmp(cur.hi) <= 0; k++ {
			e := ex[k]
			if e.lo.cmp(cur.lo) > 0 {
				out = append(out, interval{cur.lo, e.lo.sub1()})
			}
			if e.hi.cmp(cur.hi) >= 0 {
				alive = false
				break
			}
			cur.lo = e.hi.add(1)
		}
		if alive {
			out = append(out, cur)
		}
	}
	return out
}

// ranges is a compiled address set: sorted disjoint intervals per family and
// the cumulative index of each interval's first address.
type ranges struct {
	v4, v6     []interval
	off4, off6 []uint64 // off[i] = index of v[i].lo in the enumeration
	size       uint64   // saturated at math.MaxUint64
	include    []netip.Prefix
	exclude    []netip.Prefix
}

func buildRanges(cidrs, exclude []string) (*ranges, error) {
	r := &ranges{}
	var in4, in6, ex4, ex6 []interval
	for _, s := range cidrs {
		p, err := ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("cidrs: %w", err)
		}
		if p.Addr().Is4() && p.Bits() < MinPrefixV4 || p.Addr().Is6() && p.Bits() < MinPrefixV6 {
			return nil, fmt.Errorf("cidrs: %s is shorter than /%d (IPv4) or /%d (IPv6); whole-internet scopes are refused", s, MinPrefixV4, MinPrefixV6)
		}
		r.include = append(r.include, p)
		if p.Addr().Is4() {
			in4 = append(in4, prefixInterval(p))
		} else {
			in6 = append(in6, prefixInterval(p))
		}
	}
	for _, s := range exclude {
		p, err := ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("exclude: %w", err)
		}
		r.exclude = append(r.exclude, p)
		if p.Addr().Is4() {
			ex4 = append(ex4, prefixInterval(p))
		} else {
			ex6 = append(ex6, prefixInterval(p))
		}
	}
	r.v4 = subtract(merge(in4), merge(ex4))
	r.v6 = subtract(merge(in6), merge(ex6))
	r.off4, r.size = offsets(r.v4, 0)
	r.off6, r.size = offsets(r.v6, r.size)
	return r, nil
}

func offsets(iv []interval, start uint64) ([]uint64, uint64) {
	off := make([]uint64, len(iv))
	n := start
	for i, x := range iv {
		off[i] = n
		s := span(x.lo, x.hi)
		if n > math.MaxUint64-s {
			n = math.MaxUint64
		} else {
			n += s
		}
	}
	return off, n
}

// contains reports whether a (already unmapped, without zone) is in the set.
func (r *ranges) contains(a netip.Addr) bool {
	iv := r.v6
	if a.Is4() {
		iv = r.v4
	}
	return find(iv, toU128(a)) >= 0
}

// at returns the address with enumeration index idx < size.
func (r *ranges) at(idx uint64) netip.Addr {
	iv, off, is4 := r.v4, r.off4, true
	if len(r.off6) > 0 && idx >= r.off6[0] {
		iv, off, is4 = r.v6, r.off6, false
	}
	i, found := slices.BinarySearch(off, idx)
	if !found {
		i--
	}
	return fromU128(iv[i].lo.add(idx-off[i]), is4)
}

// ParsePrefix parses a scope CIDR strictly: canonical netip syntax, no zone,
// no host bits set, no leading zeros in the length, no IPv4-mapped IPv6
// prefix (write the IPv4 prefix instead). A bare address means a host prefix
// (/32 or /128).
func ParsePrefix(s string) (netip.Prefix, error) {
	if err := checkChars(s); err != nil {
		return netip.Prefix{}, fmt.Errorf("%q: %w", s, err)
	}
	addrPart, bitsPart, hasBits := strings.Cut(s, "/")
	a, err := parseAddrStrict(addrPart)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q: %w", s, err)
	}
	if a.Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%q: IPv4-mapped IPv6 prefix is ambiguous; write the IPv4 prefix", s)
	}
	if !hasBits {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	if bitsPart == "" || len(bitsPart) > 1 && bitsPart[0] == '0' || strings.TrimLeft(bitsPart, "0123456789") != "" {
		return netip.Prefix{}, fmt.Errorf("%q: prefix length %q is not a plain decimal number", s, bitsPart)
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q: %v", s, err)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q: host bits set; did you mean %s?", s, p.Masked())
	}
	return p, nil
}

// find returns the index of the interval of iv holding x, or -1.
func find(iv []interval, x u128) int {
	i, _ := slices.BinarySearchFunc(iv, x, func(e interval, t u128) int {
		if e.hi.cmp(t) < 0 {
			return -1
		}
		if e.lo.cmp(t) > 0 {
			return 1
		}
		return 0
	})
	if i < len(iv) && iv[i].lo.cmp(x) <= 0 && x.cmp(iv[i].hi) <= 0 {
		return i
	}
	return -1
}

// containsInterval reports whether every address of x (of the family
// is4) is in the set. The intervals are disjoint and coalesced, so x is
// contained only if one interval holds all of it.
func (r *ranges) containsInterval(is4 bool, x interval) bool {
	iv := r.v6
	if is4 {
		iv = r.v4
	}
	i := find(iv, x.lo)
	return i >= 0 && x.hi.cmp(iv[i].hi) <= 0
}

// firstOutside returns the lowest address of x (of the family is4) not in
// the set; x must not be wholly contained.
func (r *ranges) firstOutside(is4 bool, x interval) netip.Addr {
	iv := r.v6
	if is4 {
		iv = r.v4
	}
	if i := find(iv, x.lo); i >= 0 {
		// x starts inside interval i and runs past its end; intervals are
		// coalesced, so the address after it is outside.
		return fromU128(iv[i].hi.add(1), is4)
	}
	return fromU128(x.lo, is4)
}
