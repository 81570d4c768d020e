package probe

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// throughputEnv marks the child process that runs inside the test's own
// network namespace.
const throughputEnv = "FIQ_PROBE_THROUGHPUT_CHILD"

// TestThroughput measures the highest send rate of the raw path. It runs
// in a network namespace the test creates, whose only route for the
// targets (10.99.0.0/16) is a veth pair into a second namespace that drops
// everything: every packet really goes through the kernel's IP output path
// and a driver, and nothing ever leaves the two namespaces. Set FIQ_THROUGHPUT_MIN to assert a
// floor (the lab benchmark asserts 150k pps; the default here is low
// because CI shares its cores).
func TestThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("throughput measurement skipped in -short mode")
	}
	needRoot(t)
	if os.Getenv(throughputEnv) == "" {
		if _, err := exec.LookPath("ip"); err != nil {
			t.Skip("needs iproute2 (ip) to create a network namespace")
		}
		ns := fmt.Sprintf("fiqtp%d", os.Getpid())
		run := func(args ...string) {
			t.Helper()
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("ip %v: %v\n%s", args, err, out)
			}
		}
		sink := ns + "s"
		run("netns", "add", ns)
		defer exec.Command("ip", "netns", "del", ns).Run()
		run("netns", "add", sink)
		defer exec.Command("ip", "netns", "del", sink).Run()
		run("-n", ns, "link", "set", "lo", "up")
		// A veth pair from the namespace to a sink namespace: the probes
		// leave through fa and arrive at fb, which has no address, so the
		// sink's stack drops them (no forwarding). A permanent neighbour
		// entry spares ARP.
		run("-n", ns, "link", "add", "name", "fa", "type", "veth", "peer", "name", "fb")
		run("-n", ns, "link", "set", "fb", "netns", sink)
		run("-n", sink, "link", "set", "fb", "address", "02:00:00:00:00:02")
		run("-n", ns, "link", "set", "fa", "up")
		run("-n", sink, "link", "set", "fb", "up")
		run("-n", ns, "addr", "add", "10.98.0.1/24", "dev", "fa")
		run("-n", ns, "neigh", "add", "10.98.0.2", "lladdr", "02:00:00:00:00:02", "dev", "fa", "nud", "permanent")
		run("-n", ns, "route", "add", "10.99.0.0/16", "via", "10.98.0.2")
		cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestThroughput$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), throughputEnv+"=1")
		out, err := cmd.CombinedOutput()
		t.Logf("child:\n%s", out)
		if err != nil {
			t.Fatalf("child: %v", err)
		}
		return
	}
	const rate = 400_000
	targets := func(yield func(netip.Addr) bool) {
		for i := 2; i < 65536; i++ {
			if !yield(netip.AddrFrom4([4]byte{10, 99, byte(i >> 8), byte(i)})) {
				return
			}
		}
	}
	var ports []Port
	for p := 1; p <= 4; p++ {
		ports = append(ports, Port{"tcp", uint16(p)})
	}
	// Evidence on, as in a real scan: every packet goes to pcapng.
	d, err := OpenDir(t.TempDir(), Checkpoint{ScanID: "throughput"}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	e, err := New(Config{
		Evidence: d.Evidence(), Results: d.Result, Checkpoint: d.Checkpoint,
		ScanID: "throughput", Targets: targets, Scope: prefixes{netip.MustParsePrefix("10.99.0.0/16")},
		Ports: ports, Kinds: []Kind{KindTCPSyn}, Limits: Limits{Profile: rate},
		Timeout: 20 * time.Millisecond, Retries: -1, BatchTargets: 4096,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := e.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Finish(s, true); err != nil {
		t.Fatal(err)
	}
	t.Logf("sent %d packets, measured %.0f pps (requested %d), worst 100 ms window %d (limit %d)", s.PacketsSent, s.MeasuredPPS, rate, s.Worst100ms, s.WindowLimit)
	if s.Worst100ms > s.WindowLimit {
		t.Errorf("window %d > limit %d", s.Worst100ms, s.WindowLimit)
	}
	floor := 20000.0
	if v, err := strconv.ParseFloat(os.Getenv("FIQ_THROUGHPUT_MIN"), 64); err == nil {
		floor = v
	}
	if s.MeasuredPPS < floor {
		t.Errorf("measured %.0f pps < %.0f", s.MeasuredPPS, floor)
	}
}
