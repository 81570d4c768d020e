package probe

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"firewalliq/probe/safety"
)

// simEngines drives engines' gates on a simulated clock for span, as their
// senders do: each engine holds its next destination until it gets a slot
// for it (a per-host wait stalls that engine, as in sendLoop), cycling
// through its hosts. It returns the grant times of all engines together
// and per host.
func simEngines(t *testing.T, c *simClock, engines []*Engine, hosts [][]netip.Addr, span time.Duration, seed uint64) ([]time.Time, map[netip.Addr][]time.Time) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	next := make([]int, len(engines))
	var all []time.Time
	per := map[netip.Addr][]time.Time{}
	end := c.t.Add(span)
	for steps := 0; c.t.Before(end); steps++ {
		if steps > 10_000_000 {
			t.Fatalf("no progress after %d steps", steps)
		}
		wait := time.Duration(1<<63 - 1)
		for _, i := range rng.Perm(len(engines)) {
			h := hosts[i][next[i]%len(hosts[i])]
			tk, d := engines[i].pacer.ReserveTicket(h)
			if d == 0 {
				all = append(all, c.t)
				per[h] = append(per[h], c.t)
				next[i]++
				// The packet leaves a little later; the ring keeps the
				// send time.
				engines[i].pacer.Stamp(tk, c.t.Add(time.Duration(rng.IntN(50))*time.Microsecond))
				wait = 0
				continue
			}
			wait = min(wait, d)
		}
		c.t = c.t.Add(wait + time.Duration(rng.IntN(200))*time.Microsecond)
	}
	return all, per
}

// TestSharedPacerTwoEngines: two engines sharing the appliance-wide pacer,
// each asking for 800 pps against a global cap of 1,000 pps and a per-host
// cap of 100 pps, never put more than 101 packets in any 100 ms window
// together, nor more than 11 to the host both scan; and together they still
// use the global rate. Without the shared pacer the same two engines go far
// above the cap (the control, which is what two processes did before).
func TestSharedPacerTwoEngines(t *testing.T) {
	prof := safety.Profile{ID: "shared-test", Version: 1, GlobalPPS: 1000, PerHostPPS: 100, MaxConcurrentScans: 2, MaxTargets: 1 << 16,
		ProbeKinds: safety.AllKinds(), UDPPayloads: []string{PayloadEmpty}}
	both := netip.MustParseAddr("10.9.0.1")
	// every: the host both engines scan is every n-th destination of each
	// (41: one host among many; 2: a hot host, where the per-host cap binds).
	for _, every := range []int{41, 2} {
		hosts := make([][]netip.Addr, 2)
		for i := range hosts {
			for j := range 40 {
				if j%every == 0 {
					hosts[i] = append(hosts[i], both)
				}
				hosts[i] = append(hosts[i], netip.AddrFrom4([4]byte{10, byte(i + 1), 0, byte(j + 1)}))
			}
		}
		for _, shared := range []bool{true, false} {
			for seed := range uint64(4) {
				t.Run(fmt.Sprintf("every=%d/shared=%v/seed=%d", every, shared, seed), func(t *testing.T) {
					c := &simClock{t: time.Unix(1_800_000_000, 0)}
					var sp *SharedPacer
					if shared {
						var err error
						if sp, err = newSharedPacer(prof, c.now); err != nil {
							t.Fatal(err)
						}
					}
					var engines []*Engine
					for range 2 {
						e, err := newEngine(Config{
							Targets: seqOf(), Scope: prefixes{netip.MustParsePrefix("10.0.0.0/8")}, Kinds: []Kind{KindTCPSyn},
							Limits: Limits{Profile: 1000, PerHost: 100, Requested: 800}, Now: c.now, Shared: sp,
						}, prof)
						if err != nil {
							t.Fatal(err)
						}
						engines = append(engines, e)
					}
					all, per := simEngines(t, c, engines, hosts, 5*time.Second, seed)
					worst, worstBoth := worstWindow(all), worstWindow(per[both])
					rate := float64(len(all)) / 5
					if !shared {
						// The control: separate pacers exceed a cap, which is
						// what two processes did before.
						if every == 2 && worstBoth <= WindowLimit(100) || every != 2 && worst <= WindowLimit(1000) {
							t.Fatalf("control: unshared engines stayed under the caps (worst %d, shared host %d): the test proves nothing", worst, worstBoth)
						}
						return
					}
					if worst > WindowLimit(1000) {
						t.Errorf("worst 100 ms window of both engines: %d > %d", worst, WindowLimit(1000))
					}
					if worstBoth > WindowLimit(100) {
						t.Errorf("worst 100 ms window to the shared host: %d > %d", worstBoth, WindowLimit(100))
					}
					if every != 2 && (rate < 0.95*1000 || rate > 1000*1.01) {
						t.Errorf("together %.0f pps, want about 1000", rate)
					}
					t.Logf("%d packets, %.0f pps, worst window %d, shared host worst %d", len(all), rate, worst, worstBoth)
				})
			}
		}
	}
}
