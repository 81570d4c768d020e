package sensor

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"firewalliq/probe"
	"firewalliq/probe/job"
	"firewalliq/probe/runner"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// ErrResultRefused means the console refused an event of a live remote
// run because it cannot be true of the job the console dispatched: a
// result outside the job's targets, ports or probe kinds, a checkpoint
// that goes back or past the job's end, an acceptance of another job, or a
// summary with more packets than the job's rate allows in the run's
// duration. The run ends there (a "done" event with code RefusedCode and
// this error as its reason), the sensor is told to cancel it, and the
// scan fails (scan.fail with that code): a sensor that reports such a
// thing is broken or compromised, and nothing more of the run is
// evidence.
var ErrResultRefused = errors.New("sensor event refused")

// RefusedCode is the code of the final event a live remote run ends with
// when the console refused one of its events (ErrResultRefused).
const RefusedCode = "result-refused"

// Bounds on the strings of a result that the engine writes itself (not
// target data, which probe.Clean bounds): a reason is a short stable
// identifier, an error one local error message.
const (
	maxReason      = 64
	maxResultError = 1024
)

// guard checks the events of one live remote run against the job the
// console dispatched, in seq order, before they reach the scan service.
// A sensor that lies about what it observed at targets it was given
// cannot be caught here; one that claims anything the job did not ask for
// (or could not have done) is.
type guard struct {
	sensor string
	j      job.Job
	// v is the job as the console verifies it; nil when it does not
	// verify (why says why): the sensor verifies the same job with the
	// same keys, so it must refuse it, and a refusal is all it may send.
	v      *job.Verified
	why    error
	resume int
	// dispatched is when this process published the run (monotonic
	// clock): the sensor cannot have been probing for longer.
	dispatched time.Time
	mono       func() time.Time

	rate      int
	limit     int // probe.WindowLimit(rate)
	kinds     map[probe.Kind]bool
	ports     map[scope.Port]bool
	perTarget uint64 // results one target yields at most
	size      uint64 // targets in the job

	accepted   bool
	batch      uint64 // targets per batch, from the acceptance
	batches    uint64 // batches in the job
	next       int    // the last checkpoint's next_batch
	results    uint64 // results of the run
	maxResults uint64 // results of the batches from resume on, at most
}

// newGuard builds the guard of a run of signed (a job this console
// issued) dispatched now to sensorID, with the tenant's trusted scope keys
// (those the run's trust bundle carries). The job is verified as of its
// own not_before: the console checked it for the present before handing
// it to the runner (scan.checkJob), and what matters here is what it asks
// for.
func newGuard(signed []byte, resume int, sensorID string, jobKey ed25519.PublicKey, scopeKeys []ed25519.PublicKey, p safety.Profile, mono func() time.Time) *guard {
	g := &guard{sensor: sensorID, resume: resume, next: resume, mono: mono, dispatched: mono()}
	j, _, err := job.Open(signed)
	if err != nil {
		g.why = err
		return g
	}
	g.j = j
	v, err := job.Verify(signed, jobKey, scopeKeys, p, j.NotBefore)
	if err != nil {
		g.why = err
		return g
	}
	g.v = v
	g.rate = j.Request.Rate
	g.limit = probe.WindowLimit(g.rate)
	g.size = v.Targets.Size()
	g.kinds = map[probe.Kind]bool{}
	g.ports = map[scope.Port]bool{}
	var tcp, udp uint64
	for _, pt := range v.Ports {
		g.ports[pt] = true
		switch pt.Proto {
		case "tcp":
			tcp++
		case "udp":
			udp++
		}
	}
	for _, k := range j.Request.Probes {
		pk := probe.Kind(k)
		g.kinds[pk] = true
		switch pk {
		case probe.KindICMPEcho:
			g.perTarget++
		case probe.KindUDP:
			g.perTarget += udp
		default:
			g.perTarget += tcp
		}
	}
	return g
}

// count is n as a count: false when it is negative.
func count(n int) (uint64, bool) {
	if n < 0 {
		return 0, false
	}
	return uint64(n), true
}

// satMul is a*b, or the largest uint64 when that overflows.
func satMul(a, b uint64) uint64 {
	if a != 0 && b > math.MaxUint64/a {
		return math.MaxUint64
	}
	return a * b
}

// check returns nil when ev may be true of the job, or an error wrapping
// ErrResultRefused that says what was refused.
func (g *guard) check(ev runner.Event) error {
	refuse := func(format string, a ...any) error {
		return fmt.Errorf("%w: sensor %s, event %d (%s): %s", ErrResultRefused, g.sensor, ev.Seq, ev.Type, fmt.Sprintf(format, a...))
	}
	if ev.Type == runner.TypeRefused {
		return nil // nothing was sent; the scan service records the refusal
	}
	if g.v == nil {
		return refuse("the console cannot verify the job it dispatched (%v), so the sensor must refuse it", g.why)
	}
	if ev.JobID != "" && ev.JobID != g.j.ID {
		return refuse("job %q, the run is of job %s", ev.JobID, g.j.ID)
	}
	if ev.ScanID != "" && ev.ScanID != g.j.ScanID {
		return refuse("scan %q, the run is of scan %s", ev.ScanID, g.j.ScanID)
	}
	if ev.Type == runner.TypeAccepted {
		return g.checkAccepted(ev.Accepted, refuse)
	}
	if !g.accepted {
		return refuse("before the run's acceptance")
	}
	switch ev.Type {
	case runner.TypeResult:
		return g.checkResult(ev.Result, refuse)
	case runner.TypeCheckpoint:
		// Strictly after the last one (the scan service stores a batch
		// per checkpoint and refuses one that goes back) and within the
		// job.
		n := ev.Checkpoint.NextBatch
		if u, ok := count(n); !ok || n <= g.next || u > g.batches {
			return refuse("checkpoint at batch %d after batch %d; the job has %d batches", n, g.next, g.batches)
		}
		g.next = n
	case runner.TypeDone:
		return g.checkDone(ev.Done, refuse)
	}
	return nil
}

func (g *guard) checkAccepted(a *runner.Accepted, refuse func(string, ...any) error) error {
	switch {
	case g.accepted:
		return refuse("a second acceptance")
	case a.Runner != g.sensor:
		return refuse("accepted by runner %q", a.Runner)
	case a.JobSHA256 != g.v.SHA256 || a.RequestSHA256 != g.v.RequestSHA256:
		return refuse("accepted job %.12s (request %.12s), the console dispatched job %.12s (request %.12s)", a.JobSHA256, a.RequestSHA256, g.v.SHA256, g.v.RequestSHA256)
	case a.RatePPS < 1 || a.RatePPS > g.rate:
		return refuse("accepted at %d pps, the job asks %d", a.RatePPS, g.rate)
	case a.ResumeBatch != g.resume:
		return refuse("accepted from batch %d, the dispatch resumes at %d", a.ResumeBatch, g.resume)
	case a.BatchTargets < 1 || (g.j.BatchTargets > 0 && a.BatchTargets != g.j.BatchTargets):
		return refuse("batches of %d targets, the job says %d", a.BatchTargets, g.j.BatchTargets)
	}
	g.accepted, g.batch = true, uint64(a.BatchTargets)
	g.batches = (g.size + g.batch - 1) / g.batch
	resume, ok := count(g.resume)
	if !ok || resume > g.batches {
		return refuse("resumes at batch %d of %d", g.resume, g.batches)
	}
	// Batches run overlapped, so results of several may come before the
	// next checkpoint: the bound is the run's, which also bounds what the
	// scan service holds between two checkpoints.
	g.maxResults = min(satMul(satMul(g.batches-resume, g.batch), g.perTarget), satMul(g.size, g.perTarget))
	return nil
}

func (g *guard) checkResult(r *probe.Result, refuse func(string, ...any) error) error {
	a, err := netip.ParseAddr(r.Target)
	switch {
	case err != nil:
		return refuse("target %q is no address", r.Target)
	case !g.v.Targets.Contains(a) || !g.v.Scope.Contains(a):
		return refuse("target %s is outside the job's targets", a)
	}
	switch {
	case !g.kinds[r.Probe] && !(r.Probe == probe.KindTCPConnect && r.Fallback == probe.KindTCPSyn && g.kinds[probe.KindTCPSyn]):
		return refuse("probe %q (fallback from %q) is not one of the job's", r.Probe, r.Fallback)
	case r.Fallback != "" && r.Fallback != probe.KindTCPSyn:
		return refuse("fallback from %q", r.Fallback)
	}
	if r.Probe == probe.KindICMPEcho {
		if r.Proto != "icmp" || r.Port != 0 {
			return refuse("icmp-echo result on %s/%d", r.Proto, r.Port)
		}
	} else {
		want := "tcp"
		if r.Probe == probe.KindUDP {
			want = "udp"
		}
		if r.Proto != want || !g.ports[scope.Port{Proto: r.Proto, Number: r.Port}] {
			return refuse("port %s/%d is not one of the job's", r.Proto, r.Port)
		}
	}
	switch r.State {
	case probe.StateOpen, probe.StateClosed, probe.StateFiltered, probe.StateRejected, probe.StateOpenFiltered, probe.StateError:
	default:
		return refuse("state %q", r.State)
	}
	if len(r.Reason) > maxReason || len(r.Error) > maxResultError {
		return refuse("a reason of %d bytes or an error of %d bytes", len(r.Reason), len(r.Error))
	}
	if g.results++; g.results > g.maxResults {
		return refuse("%d results, the job has at most %d from batch %d on", g.results, g.maxResults, g.resume)
	}
	return nil
}

// checkDone checks the run's summary against the job's rate: the pacer
// holds every 100 ms window to rate/10 + 1 packets (probe.WindowLimit),
// so a run of WallSeconds sends at most that many per started window, and
// it cannot have lasted longer than the time since this process
// dispatched it.
func (g *guard) checkDone(d *runner.Done, refuse func(string, ...any) error) error {
	s := d.Summary
	elapsed := g.mono().Sub(g.dispatched).Seconds()
	switch {
	case math.IsNaN(s.WallSeconds) || math.IsInf(s.WallSeconds, 0) || s.WallSeconds < 0:
		return refuse("a run of %v s", s.WallSeconds)
	case s.WallSeconds > elapsed*1.05+5:
		return refuse("a run of %.1f s, dispatched %.1f s ago", s.WallSeconds, elapsed)
	case s.RatePPS > g.rate:
		return refuse("a rate of %d pps, the job asks %d", s.RatePPS, g.rate)
	case s.Worst100ms < 0 || s.Worst100ms > g.limit:
		return refuse("a worst 100 ms window of %d packets, the job's rate allows %d", s.Worst100ms, g.limit)
	case math.IsNaN(s.MeasuredPPS) || math.IsInf(s.MeasuredPPS, 0) || s.MeasuredPPS < 0:
		return refuse("a measured rate of %v pps", s.MeasuredPPS)
	}
	windows := math.Ceil(s.WallSeconds/probe.Window.Seconds()) + 1
	if most := float64(g.limit) * windows; float64(s.PacketsSent) > most {
		return refuse("%d packets in %.1f s, the job's %d pps allows at most %.0f", s.PacketsSent, s.WallSeconds, g.rate, most)
	}
	// n packets with at most limit in any window span at least
	// floor((n-1)/limit) windows, which bounds the measured rate,
	// (n-1)/span.
	if n := s.PacketsSent; n > 1 {
		if k := math.Floor(float64(n-1) / float64(g.limit)); k >= 1 {
			if most := float64(n-1) / (k * probe.Window.Seconds()) * 1.001; s.MeasuredPPS > most {
				return refuse("a measured rate of %.1f pps over %d packets, the job's %d pps allows at most %.1f", s.MeasuredPPS, n, g.rate, most)
			}
		}
	}
	return nil
}
