package labtest

import (
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"firewalliq/probe/lab"
)

// benchEnv turns TestServiceOverhead on; it is a measurement (about a
// minute), not a check, so the suite does not run it.
const benchEnv = "FIQ_SCANLAB_BENCH"

// TestServiceOverhead measures a lab scan through the scan service (signed
// job, runner verification, shared pacer, results in SQLite, evidence to
// the local vault) against the bare engine (results and capture to a
// directory, as the lab build's probe command runs it) at the same rate:
// the whole target zone, 14 ports and echo, tcp-syn/udp/icmp-echo, at the
// profile's global rate. Wall time is from Start to the completed state
// (service) or around the engine's Run (engine); CPU is the process's
// user+system time over the same span, per 1,000 probes on the wire.
// Repetitions alternate the two; medians are reported (docs/benchmarks.md).
//
//	sudo FIQ_SCANLAB_BENCH=1 FIQ_SCANLAB_REPS=3 go test -count=1 -run TestServiceOverhead -v ./appliance/scan/labtest/
func TestServiceOverhead(t *testing.T) {
	if os.Getenv(benchEnv) == "" {
		t.Skip("measurement; run with " + benchEnv + "=1 (docs/benchmarks.md)")
	}
	reps := 3
	if n, err := strconv.Atoi(os.Getenv("FIQ_SCANLAB_REPS")); err == nil && n > 0 && n <= 20 {
		reps = n
	}
	l := labT(t)
	rate := profile(t).GlobalPPS
	type sample struct{ wall, cpuPer1k time.Duration }
	runs := map[string][]sample{}
	for rep := range reps {
		order := []string{"bench-engine", "bench-service"}
		if rep%2 == 1 {
			slices.Reverse(order)
		}
		for _, mode := range order {
			r := runChild(t, l, childConfig{Mode: mode, Rate: rate})
			probes := len(lab.Probes(r.pkts, l.ScannerV4, l.ScannerV6))
			if probes == 0 {
				t.Fatalf("%s: no probes on the wire", mode)
			}
			s := sample{wall: r.out.Wall, cpuPer1k: r.out.CPU * 1000 / time.Duration(probes)}
			t.Logf("%s rep %d: wall %v, cpu %v for %d probes (%v per 1,000)", mode, rep+1, r.out.Wall.Round(time.Millisecond),
				r.out.CPU.Round(time.Millisecond), probes, s.cpuPer1k.Round(time.Microsecond))
			runs[mode] = append(runs[mode], s)
		}
	}
	median := func(ss []sample, f func(sample) time.Duration) time.Duration {
		v := make([]time.Duration, len(ss))
		for i, s := range ss {
			v[i] = f(s)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	wall := func(s sample) time.Duration { return s.wall }
	cpu := func(s sample) time.Duration { return s.cpuPer1k }
	ew, sw := median(runs["bench-engine"], wall), median(runs["bench-service"], wall)
	t.Logf("median wall: engine %v, service %v; speed ratio engine/service %.3f (target >= 0.95)",
		ew.Round(time.Millisecond), sw.Round(time.Millisecond), ew.Seconds()/sw.Seconds())
	t.Logf("median CPU per 1,000 probes: engine %v, service %v",
		median(runs["bench-engine"], cpu).Round(time.Microsecond), median(runs["bench-service"], cpu).Round(time.Microsecond))
}
