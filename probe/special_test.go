package probe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// anything is a scope that says yes to every address, as a mis-signed or
// hostile scope would: the send path must still refuse special addresses.
type anything struct{}

func (anything) Contains(netip.Addr) bool { return true }

// TestSendPathRefusesSpecial: whatever the scope says, a raw packet to an
// unspecified, limited broadcast or multicast address never reaches the
// socket; the other packets of the batch are sent.
func TestSendPathRefusesSpecial(t *testing.T) {
	src := netip.MustParseAddr("127.0.0.1")
	tests := []struct {
		name string
		dst  string
	}{
		{"unspecified v4", "0.0.0.0"},
		{"this network", "0.1.2.3"},
		{"limited broadcast", "255.255.255.255"},
		{"multicast v4", "224.0.0.1"},
		{"multicast v4 top", "239.255.255.250"},
		{"unspecified v6", "::"},
		{"multicast v6", "ff02::1"},
		{"multicast v6 global", "ff0e::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := netip.MustParseAddr(tt.dst)
			e, err := New(Config{Targets: seqOf(), Scope: anything{}, Kinds: []Kind{KindTCPSyn}, Limits: Limits{Profile: 100}})
			if err != nil {
				t.Fatal(err)
			}
			cc := &countingConn{packetConn: nopConn{}, dsts: map[netip.Addr]int{}}
			e.conn = cc
			s := src
			if dst.Is6() {
				s = netip.MustParseAddr("::1")
			}
			good, _ := buildUDP(s, s, 1, 2, nil)
			bad, _ := buildUDP(s, dst, 1, 2, nil)
			b := &batch{done: make(chan struct{})}
			b.remaining.Store(2)
			badEnt, goodEnt := &entry{b: b}, &entry{b: b}
			// sendChecked compacts its slices in place.
			e.sendChecked([][]byte{bad, good}, []netip.Addr{dst, s}, []*entry{badEnt, goodEnt})
			if cc.dsts[dst] != 0 || cc.dsts[s] != 1 || e.refused.Load() != 1 {
				t.Fatalf("socket saw %v, refused %d", cc.dsts, e.refused.Load())
			}
			if !badEnt.fin || badEnt.res.State != StateError || badEnt.res.Reason != "out-of-scope-refused" || goodEnt.fin {
				t.Fatalf("entries %+v %+v", badEnt.res, goodEnt.res)
			}
		})
	}
}

// TestPlannerRefusesSpecial: the planner drops special addresses too,
// whatever the scope says, and counts them as refused targets.
func TestPlannerRefusesSpecial(t *testing.T) {
	in := netip.MustParseAddr("127.0.0.1")
	port := closedPort(t, "127.0.0.1")
	s, col := runEngine(t, Config{
		Targets: seqOf(netip.MustParseAddr("0.0.0.0"), in, netip.MustParseAddr("224.0.0.1"), netip.MustParseAddr("255.255.255.255")),
		Scope:   anything{}, Ports: []Port{{"tcp", port}}, Kinds: []Kind{KindTCPConnect}, NoRaw: true,
	})
	if s.RefusedTargets != 3 || len(col.res) != 1 || col.res[0].Target != in.String() {
		t.Fatalf("refused %d, results %+v", s.RefusedTargets, col.res)
	}
}

// TestConnectRefusesUnspecified: on Linux a connect(2) to 0.0.0.0 reaches
// the local host. With the planner fooled and a scope that says yes, the
// connect path's check (right before connect) still refuses it: the
// listener accepts nothing.
func TestConnectRefusesUnspecified(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("listen: %v", err)
	}
	defer l.Close()
	var accepted atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	e, err := newTestEngine(Config{
		Targets: seqOf(netip.MustParseAddr("0.0.0.0")), Scope: anything{}, Ports: []Port{{"tcp", port}},
		Kinds: []Kind{KindTCPConnect}, Limits: Limits{Profile: 1000}, Timeout: 300 * time.Millisecond, NoRaw: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.plannerContains = func(netip.Addr) bool { return true } // the planner is fooled
	col := &collector{}
	e.cfg.Results = col.add
	s, err := e.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if accepted.Load() != 0 || s.PacketsSent != 0 || s.RefusedPackets != 1 {
		t.Fatalf("accepted %d, sent %d, refused %d", accepted.Load(), s.PacketsSent, s.RefusedPackets)
	}
	if len(col.res) != 1 || col.res[0].Reason != "out-of-scope-refused" {
		t.Fatalf("results %+v", col.res)
	}
}

// TestTooManyTargets: a scan that names more targets than the profile's
// max_targets is refused before the first packet, and the planner stops one
// whose targets run past the cap without TargetCount saying so.
func TestTooManyTargets(t *testing.T) {
	prof := testProfile()
	prof.MaxTargets = 2
	scope := prefixes{netip.MustParsePrefix("127.0.0.0/8")}
	a, b, c := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
	_, err := newEngine(Config{Targets: seqOf(a, b, c), TargetCount: 3, Scope: scope, Ports: []Port{{"tcp", 1}}, Kinds: []Kind{KindTCPConnect}}, prof)
	if !errors.Is(err, ErrTooManyTargets) {
		t.Fatalf("New = %v", err)
	}
	e, err := newEngine(Config{Targets: seqOf(a, b, c), Scope: scope, Ports: []Port{{"tcp", 1}}, Kinds: []Kind{KindTCPConnect}, NoRaw: true, BatchTargets: 1, Timeout: 100 * time.Millisecond}, prof)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Run(context.Background()); !errors.Is(err, ErrTooManyTargets) {
		t.Fatalf("Run = %v", err)
	}
}
