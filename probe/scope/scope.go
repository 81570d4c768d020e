package scope

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"iter"
	"math/bits"
	"net/netip"
	"slices"

	"firewalliq/probe/safety"
)

// Scope is a verified scope document, compiled for containment checks and
// target enumeration. Only Verify makes one; it is immutable.
type Scope struct {
	Doc Document

	r         *ranges
	ports     []Port
	canonical []byte // canonical encoding of Doc, as signed
}

// Contains reports whether a is in the scope: inside a CIDR and not inside an
// exclude. An IPv4-mapped IPv6 address is judged as the IPv4 address it maps;
// an address with a zone is never in scope.
func (s *Scope) Contains(a netip.Addr) bool {
	if !a.IsValid() || a.Zone() != "" {
		return false
	}
	return s.r.contains(a.Unmap())
}

// Check is Contains with a reason: nil when a is in scope, otherwise an
// error wrapping ErrOutOfScope that says which rule excludes it.
func (s *Scope) Check(a netip.Addr) error {
	if !a.IsValid() {
		return fmt.Errorf("%w: invalid address", ErrOutOfScope)
	}
	if a.Zone() != "" {
		return fmt.Errorf("%w: %s has a zone", ErrOutOfScope, a)
	}
	u := a.Unmap()
	if s.r.contains(u) {
		return nil
	}
	for _, p := range s.r.exclude {
		if p.Contains(u) {
			return fmt.Errorf("%w: %s is excluded by %s", ErrOutOfScope, u, p)
		}
	}
	return fmt.Errorf("%w: %s is in none of the scope's CIDRs", ErrOutOfScope, u)
}

// Ports returns the scope's ports, sorted by protocol then number. The
// caller gets its own copy.
func (s *Scope) Ports() []Port { return slices.Clone(s.ports) }

// Allows reports whether the scope allows probe kind k. Verify has already
// refused a scope that names a kind the profile does not allow.
func (s *Scope) Allows(k safety.Kind) bool { return slices.Contains(s.Doc.Probes, k) }

// Size returns the number of in-scope addresses.
func (s *Scope) Size() uint64 { return s.r.size }

// SHA256 returns the hex SHA-256 of the scope's canonical encoding: the
// bytes that were signed. Jobs and approvals bind to it.
func (s *Scope) SHA256() string {
	sum := sha256.Sum256(s.canonical)
	return hex.EncodeToString(sum[:])
}

// Canonical returns a copy of the canonical encoding that was signed.
func (s *Scope) Canonical() []byte { return slices.Clone(s.canonical) }

// Targets yields every in-scope address exactly once, in an order that is a
// pseudo-random permutation chosen by seed, computed lazily: memory does not
// grow with the size of the scope. As in ZMap, the permutation spreads the
// probes across the address space, so no single subnet takes a burst.
//
// The permutation is a four-round Feistel network over the smallest
// even-width power of two covering Size, with cycle walking to drop indices
// >= Size; each index is then mapped to its address through the sorted
// ranges. The same seed gives the same order.
func (s *Scope) Targets(seed uint64) iter.Seq[netip.Addr] { return s.r.permuted(seed) }

// permuted yields every address of r once in the order chosen by seed.
func (r *ranges) permuted(seed uint64) iter.Seq[netip.Addr] {
	return func(yield func(netip.Addr) bool) {
		n := r.size
		if n == 0 {
			return
		}
		f := newFeistel(n, seed)
		var done uint64
		for i := uint64(0); done < n; i++ {
			j := f.permute(i)
			if j >= n {
				continue
			}
			done++
			if !yield(r.at(j)) {
				return
			}
		}
	}
}

// feistel is a keyed bijection on [0, 2^(2*half)).
type feistel struct {
	half uint
	mask uint64
	keys [4]uint64
}

func newFeistel(n, seed uint64) feistel {
	width := uint(bits.Len64(n - 1))
	if width < 2 {
		width = 2
	}
	width += width & 1
	f := feistel{half: width / 2}
	f.mask = 1<<f.half - 1
	x := seed
	for i := range f.keys {
		x = splitmix64(x)
		f.keys[i] = x
	}
	return f
}

func (f feistel) permute(x uint64) uint64 {
	l, r := x>>f.half, x&f.mask
	for _, k := range f.keys {
		l, r = r, l^(splitmix64(r^k)&f.mask)
	}
	return l<<f.half | r
}

// splitmix64 is the SplitMix64 finaliser: a cheap, well-mixed round function.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
