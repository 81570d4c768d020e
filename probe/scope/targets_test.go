package scope

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// region is a /16 of IPv4 or a /112 of IPv6 (65,536 addresses) in which a
// random scope is drawn, so a 65,536-bit bitmap covers every address it can
// contain.
type region struct {
	base netip.Prefix
}

func (g region) offset(a netip.Addr) (int, bool) {
	if !g.base.Contains(a) {
		return 0, false
	}
	if a.Is4() {
		b := a.As4()
		return int(b[2])<<8 | int(b[3]), true
	}
	b := a.As16()
	return int(b[14])<<8 | int(b[15]), true
}

// randPrefix draws a prefix of length in [min, max] bits inside g (or, with
// probability 1/8, just outside it, so excludes that miss are covered).
func (g region) randPrefix(rng *rand.Rand, outside bool) netip.Prefix {
	addr := g.base.Addr()
	width := addr.BitLen()
	bits := width - 16 + rng.IntN(17)
	off := rng.IntN(1 << 16)
	if addr.Is4() {
		b := addr.As4()
		if outside {
			b[1]++
		}
		b[2], b[3] = byte(off>>8), byte(off)
		return netip.PrefixFrom(netip.AddrFrom4(b), bits).Masked()
	}
	b := addr.As16()
	if outside {
		b[13]++
	}
	b[14], b[15] = byte(off>>8), byte(off)
	return netip.PrefixFrom(netip.AddrFrom16(b), bits).Masked()
}

// TestTargetsExactlyOnce is the ZMap-style property: for random scopes with
// CIDRs and excludes over IPv4 and IPv6 (prefixes up to /16 of space), a
// bitmap proves that Targets yields every in-scope address exactly once and
// nothing else, and that Contains and Size agree with a naive evaluation.
func TestTargetsExactlyOnce(t *testing.T) {
	cases := 40
	if testing.Short() {
		cases = 12
	}
	seed := uint64(20261127)
	rng := rand.New(rand.NewPCG(seed, seed))
	for c := range cases {
		t.Run(fmt.Sprint(c), func(t *testing.T) {
			var regions []region
			if rng.IntN(3) != 1 {
				regions = append(regions, region{netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(1 + rng.IntN(223)), byte(rng.IntN(255)), 0, 0}), 16)})
			}
			if len(regions) == 0 || rng.IntN(2) == 0 {
				var b [16]byte
				b[0], b[1], b[2] = 0x20, 0x01, byte(rng.IntN(256))
				b[13] = byte(rng.IntN(255))
				regions = append(regions, region{netip.PrefixFrom(netip.AddrFrom16(b), 112)})
			}
			var cidrs, excl []string
			var inc, exc []netip.Prefix
			for _, g := range regions {
				for range 1 + rng.IntN(4) {
					p := g.randPrefix(rng, false)
					inc = append(inc, p)
					cidrs = append(cidrs, p.String())
				}
				for range rng.IntN(5) {
					p := g.randPrefix(rng, rng.IntN(8) == 0)
					exc = append(exc, p)
					excl = append(excl, p.String())
				}
			}
			r, err := buildRanges(cidrs, excl)
			if err != nil {
				t.Fatalf("buildRanges(%v, %v): %v", cidrs, excl, err)
			}
			s := &Scope{r: r}
			// Naive truth, one bitmap per region.
			want := make([][]bool, len(regions))
			var wantN uint64
			for i, g := range regions {
				want[i] = make([]bool, 1<<16)
				a := g.base.Addr()
				for off := range 1 << 16 {
					in := false
					for _, p := range inc {
						in = in || p.Contains(a)
					}
					for _, p := range exc {
						in = in && !p.Contains(a)
					}
					want[i][off] = in
					if in {
						wantN++
					}
					if s.Contains(a) != in {
						t.Fatalf("Contains(%s) = %v, want %v (cidrs %v exclude %v)", a, !in, in, cidrs, excl)
					}
					a = a.Next()
				}
			}
			if s.Size() != wantN {
				t.Fatalf("Size = %d, want %d (cidrs %v exclude %v)", s.Size(), wantN, cidrs, excl)
			}
			seen := make([][]bool, len(regions))
			for i := range seen {
				seen[i] = make([]bool, 1<<16)
			}
			var n uint64
			for a := range s.Targets(rng.Uint64()) {
				n++
				found := false
				for i, g := range regions {
					off, ok := g.offset(a)
					if !ok {
						continue
					}
					found = true
					if !want[i][off] {
						t.Fatalf("yielded out-of-scope %s", a)
					}
					if seen[i][off] {
						t.Fatalf("yielded %s twice", a)
					}
					seen[i][off] = true
				}
				if !found {
					t.Fatalf("yielded %s outside every region", a)
				}
			}
			if n != wantN {
				t.Fatalf("yielded %d addresses, want %d", n, wantN)
			}
		})
	}
}

func TestTargetsOrder(t *testing.T) {
	d := baseDoc()
	d.CIDRs, d.Exclude = []string{"10.1.0.0/20"}, nil
	s := mustScope(t, d)
	collect := func(seed uint64) []netip.Addr {
		var out []netip.Addr
		for a := range s.Targets(seed) {
			out = append(out, a)
		}
		return out
	}
	a, b, c := collect(1), collect(1), collect(2)
	if len(a) != 4096 {
		t.Fatalf("got %d targets", len(a))
	}
	same, sorted := true, true
	for i := range a {
		same = same && a[i] == b[i]
		sorted = sorted && (i == 0 || a[i-1].Less(a[i]))
	}
	if !same {
		t.Fatal("the same seed gave different orders")
	}
	if sorted {
		t.Fatal("targets came out in address order")
	}
	diff := 0
	for i := range a {
		if a[i] != c[i] {
			diff++
		}
	}
	if diff < len(a)/2 {
		t.Fatalf("seeds 1 and 2 agree on %d of %d positions", len(a)-diff, len(a))
	}
	// Stopping early works and yields a prefix of the full order.
	i := 0
	for x := range s.Targets(1) {
		if x != a[i] {
			t.Fatal("early-stopped order differs")
		}
		i++
		if i == 10 {
			break
		}
	}
	// One-address scope.
	d.CIDRs = []string{"10.1.0.7"}
	one := mustScope(t, d)
	var got []netip.Addr
	for x := range one.Targets(9) {
		got = append(got, x)
	}
	if len(got) != 1 || got[0] != netip.MustParseAddr("10.1.0.7") {
		t.Fatalf("single target = %v", got)
	}
}

// TestTargetsLazy shows memory does not grow with the scope: iterating a
// maximal scope allocates a constant amount.
func TestTargetsLazy(t *testing.T) {
	d := baseDoc()
	d.CIDRs, d.Exclude = []string{"10.2.0.0/16"}, []string{"10.2.128.0/24"}
	s := mustScope(t, d)
	allocs := testing.AllocsPerRun(1, func() {
		n := 0
		for range s.Targets(3) {
			n++
		}
		if n != 65536-256 {
			t.Fatalf("n = %d", n)
		}
	})
	if allocs > 10 {
		t.Fatalf("%v allocations to walk the scope", allocs)
	}
}

func BenchmarkTargets(b *testing.B) {
	d := baseDoc()
	d.CIDRs, d.Exclude = []string{"10.2.0.0/16"}, []string{"10.2.128.0/24"}
	s := mustScope(b, d)
	b.ResetTimer()
	for b.Loop() {
		for range s.Targets(3) {
		}
	}
}

func TestRangesEdges(t *testing.T) {
	tests := []struct {
		name        string
		cidrs, excl []string
		size        uint64
		in, out     []string
	}{
		{"huge v6 saturates", []string{"2001:db8::/32"}, nil, ^uint64(0), []string{"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"}, []string{"2001:db9::"}},
		{"2^64 exactly saturates", []string{"2001:db8::/64"}, nil, ^uint64(0), []string{"2001:db8::ffff:ffff:ffff:ffff"}, nil},
		{"top of v4 space", []string{"255.0.0.0/8"}, []string{"255.255.255.255/32"}, 1<<24 - 1, []string{"255.255.255.254"}, []string{"255.255.255.255"}},
		{"top of v6 space", []string{"ffff::/32"}, []string{"ffff:0:ffff:ffff:ffff:ffff::/96", "ffff:0::/33"}, ^uint64(0), []string{"ffff:0:8000::", "ffff:0:ffff:ffff:ffff:fffe:ffff:ffff"}, []string{"ffff::1", "ffff:0:ffff:ffff:ffff:ffff::1"}},
		{"exclude everything v6 via ::/0", []string{"10.0.0.0/30", "2001:db8::/126"}, []string{"::/0"}, 4, []string{"10.0.0.3"}, []string{"2001:db8::1"}},
		{"adjacent merge", []string{"10.0.0.0/25", "10.0.0.128/25"}, []string{"10.0.0.127/32", "10.0.0.128/32"}, 254, []string{"10.0.0.126", "10.0.0.129"}, []string{"10.0.0.127", "10.0.0.128"}},
		{"overlapping cidrs counted once", []string{"10.0.0.0/24", "10.0.0.0/25", "10.0.0.7"}, nil, 256, []string{"10.0.0.255"}, []string{"10.0.1.0"}},
		{"exclude spanning two ranges", []string{"10.0.0.0/28", "10.0.0.32/28"}, []string{"10.0.0.0/26"}, 0, nil, []string{"10.0.0.33"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := buildRanges(tt.cidrs, tt.excl)
			if err != nil {
				t.Fatal(err)
			}
			if r.size != tt.size {
				t.Fatalf("size = %d, want %d", r.size, tt.size)
			}
			s := &Scope{r: r}
			for _, a := range tt.in {
				if !s.Contains(netip.MustParseAddr(a)) {
					t.Errorf("%s not contained", a)
				}
			}
			for _, a := range tt.out {
				if s.Contains(netip.MustParseAddr(a)) {
					t.Errorf("%s contained", a)
				}
			}
		})
	}
}

// BenchmarkContains measures the send path's per-packet destination check.
func BenchmarkContains(b *testing.B) {
	d := baseDoc()
	d.CIDRs = []string{"10.2.0.0/17", "2001:db8::/116"}
	d.Exclude = []string{"10.2.0.0/28", "10.2.64.0/24", "2001:db8::/120"}
	s := mustScope(b, d)
	a := netip.MustParseAddr("10.2.100.7")
	for b.Loop() {
		if !s.Contains(a) {
			b.Fatal("not contained")
		}
	}
}
