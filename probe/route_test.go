package probe

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// rtmsg builds an rtmsg-like message: 12-byte header with dst_len, and an
// RTA_DST attribute when dst is valid.
func rtmsg(dst netip.Addr, bits int) []byte {
	b := make([]byte, 12)
	b[0], b[1] = 2, byte(bits) // AF_INET
	if dst.IsValid() {
		a := make([]byte, 8)
		binary.NativeEndian.PutUint16(a[0:], 8)
		binary.NativeEndian.PutUint16(a[2:], 1)
		v := dst.As4()
		copy(a[4:], v[:])
		b = append(b, a...)
	}
	return b
}

func TestDstPrefix(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want string
		err  bool
	}{
		{"route", rtmsg(netip.MustParseAddr("10.1.2.0"), 24), "10.1.2.0/24", false},
		{"default", rtmsg(netip.Addr{}, 0), "0.0.0.0/0", false},
		{"host bits masked", rtmsg(netip.MustParseAddr("10.1.2.3"), 16), "10.1.0.0/16", false},
		{"short", []byte{2, 24}, "", true},
		{"bad length", rtmsg(netip.MustParseAddr("10.0.0.0"), 33), "", true},
		{"attribute overruns", append(rtmsg(netip.Addr{}, 8), 200, 0, 1, 0), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := dstPrefix(tt.b)
			if (err != nil) != tt.err || (!tt.err && p.String() != tt.want) {
				t.Fatalf("%v, %v; want %s (err %v)", p, err, tt.want, tt.err)
			}
		})
	}
}

// FuzzDstPrefix: the netlink attribute walk never panics.
func FuzzDstPrefix(f *testing.F) {
	f.Add(rtmsg(netip.MustParseAddr("10.1.2.0"), 24))             // a route
	f.Add(append(rtmsg(netip.Addr{}, 0), 4, 0, 9, 0, 6, 0, 2, 0)) // more attributes, one cut
	f.Add([]byte{2})                                              // truncated header
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := dstPrefix(b); err == nil && (!p.IsValid() || p.Bits() > 32) {
			t.Fatalf("bad prefix %v", p)
		}
	})
}

func TestFIBKeysOrder(t *testing.T) {
	k := &fibKeys{set: map[netip.Prefix]struct{}{}}
	for _, p := range []string{"0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24"} {
		k.add(netip.MustParsePrefix(p))
	}
	for in, want := range map[string]string{"10.1.2.3": "10.1.2.0/24", "10.1.3.3": "10.1.0.0/16", "10.2.0.1": "10.0.0.0/8", "192.0.2.1": "0.0.0.0/0"} {
		if p, ok := k.key(netip.MustParseAddr(in)); !ok || p.String() != want {
			t.Errorf("key(%s) = %v, want %s", in, p, want)
		}
	}
}

// TestRouterCacheAgrees: on this host's real routing tables, the source
// cached per routing prefix equals a fresh lookup for every address
// (route lookups only: connect(2) on a UDP socket sends nothing).
func TestRouterCacheAgrees(t *testing.T) {
	r := newRouter()
	defer r.close()
	if r.fib == nil {
		t.Skip("routing tables not readable over netlink")
	}
	if p, ok := r.fib.key(netip.MustParseAddr("127.1.2.3")); !ok || p != netip.MustParsePrefix("127.0.0.0/8") {
		t.Fatalf("127.1.2.3 falls under %v, want the local table's 127.0.0.0/8", p)
	}
	fresh := newRouter()
	defer fresh.close()
	fresh.fib = nil
	rng := rand.New(rand.NewPCG(1, 2))
	bases := [][2]byte{{127, 0}, {10, 0}, {192, 168}, {198, 18}}
	for range 400 {
		b := bases[rng.IntN(len(bases))]
		a := netip.AddrFrom4([4]byte{b[0], b[1] + byte(rng.IntN(2)), byte(rng.IntN(256)), byte(rng.IntN(256))})
		got, err1 := r.source(a)
		want, err2 := fresh.source(a)
		if (err1 == nil) != (err2 == nil) || got != want {
			t.Fatalf("%s: cached %v (%v), fresh %v (%v)", a, got, err1, want, err2)
		}
	}
}
