package sensor

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"firewalliq/probe"
	"firewalliq/probe/job"
	"firewalliq/probe/runner"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// guardJob is a job signed by testJobKey: 127.0.0.1 (of a 127.0.0.0/30
// scope signed by testOtherKey), tcp/80 (of tcp/80,443), tcp-connect, 10
// pps, batches of one target.
func guardJob(t testing.TB) ([]byte, job.Job) {
	t.Helper()
	p, err := safety.Load()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	ss, err := scope.Sign(scope.Document{ID: "sc", Tenant: "t1", Name: "lo", Environment: scope.EnvNonProduction,
		CIDRs: []string{"127.0.0.0/30"}, Exclude: []string{}, Ports: "tcp:80,443", Probes: []safety.Kind{safety.KindTCPConnect},
		NotBefore: at.Add(-time.Hour), NotAfter: at.Add(time.Hour), MaxPPS: 50}, testOtherKey)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := scope.Verify(ss, testOtherKey.Public().(ed25519.PublicKey), at, p)
	if err != nil {
		t.Fatal(err)
	}
	j := job.Job{ID: "job-1", ScanID: "scan-1", Request: job.Request{ID: "req-1", Tenant: "t1", Requester: "u-1", ScopeSHA256: sc.SHA256(),
		Targets: []string{"127.0.0.1"}, Ports: "tcp:80", Probes: []safety.Kind{safety.KindTCPConnect}, Rate: 10, Vantage: "sen_x"},
		Scope: ss, Profile: job.ProfileRef{ID: p.ID, SHA256: p.SHA256()}, IssuedAt: at, NotBefore: at, NotAfter: at.Add(time.Hour), Seed: 1, BatchTargets: 1}
	signed, err := job.Sign(j, testJobKey)
	if err != nil {
		t.Fatal(err)
	}
	j, _, err = job.Open(signed)
	if err != nil {
		t.Fatal(err)
	}
	return signed, j
}

// guardLines is an honest run of guardJob as JSON Lines.
func guardLines(t testing.TB, j job.Job) []byte {
	t.Helper()
	jsha, _ := j.SHA256()
	rsha, _ := j.Request.SHA256()
	at := j.NotBefore.Add(time.Second)
	evs := []runner.Event{
		{Seq: 1, Type: runner.TypeAccepted, JobID: j.ID, ScanID: j.ScanID, Accepted: &runner.Accepted{Runner: "sen_x", JobSHA256: jsha, RequestSHA256: rsha,
			Targets: 1, RatePPS: 10, Transport: "connect", BatchTargets: 1}},
		{Seq: 2, Type: runner.TypeResult, Result: &probe.Result{Target: "127.0.0.1", Proto: "tcp", Port: 80, Probe: probe.KindTCPConnect,
			State: probe.StateOpen, Reason: probe.ReasonConnected, Time: at}},
		{Seq: 3, Type: runner.TypeCheckpoint, Checkpoint: &runner.Checkpoint{NextBatch: 1}},
		{Seq: 4, Type: runner.TypeDone, Done: &runner.Done{Summary: probe.Summary{WallSeconds: 0.3, PacketsSent: 1, Worst100ms: 1, RatePPS: 10}}},
	}
	var b bytes.Buffer
	for _, ev := range evs {
		line, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(append(line, '\n'))
	}
	return b.Bytes()
}

// FuzzGuard feeds a guard event lines (decoded as the intake decodes
// them) and checks what it lets through: never a panic; at most one
// acceptance, first; results only for 127.0.0.1 tcp/80 tcp-connect, at
// most one; checkpoints only forward and within the job's one batch; a
// summary within the job's window limit. Seeds: an honest run, and the
// same run bent (a result for another target, port, kind; a checkpoint
// back; a summary over the cap).
func FuzzGuard(f *testing.F) {
	signed, j := guardJob(f)
	honest := guardLines(f, j)
	f.Add(honest)
	for _, bend := range [][2]string{
		{`"target":"127.0.0.1"`, `"target":"127.0.0.2"`},
		{`"target":"127.0.0.1"`, `"target":"::ffff:127.0.0.1"`},
		{`"port":80`, `"port":443`},
		{`"probe":"tcp-connect"`, `"probe":"tcp-syn"`},
		{`"next_batch":1`, `"next_batch":0`},
		{`"packets_sent":1`, `"packets_sent":1000000`},
		{`"worst_100ms_window":1`, `"worst_100ms_window":3`},
		{`"runner":"sen_x"`, `"runner":"sen_y"`},
	} {
		f.Add(bytes.Replace(honest, []byte(bend[0]), []byte(bend[1]), 1))
	}
	p, err := safety.Load()
	if err != nil {
		f.Fatal(err)
	}
	trusted := []ed25519.PublicKey{testOtherKey.Public().(ed25519.PublicKey)}
	f.Fuzz(func(t *testing.T, lines []byte) {
		base := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
		mono := func() time.Time { return base }
		g := newGuard(signed, 0, "sen_x", testJobKey.Public().(ed25519.PublicKey), trusted, p, mono)
		if g.v == nil {
			t.Fatalf("the test job does not verify: %v", g.why)
		}
		base = base.Add(time.Minute) // the run's done comes a minute after its dispatch
		accepted, results, next := 0, 0, 0
		for i, line := range bytes.Split(lines, []byte("\n")) {
			var ev runner.Event
			if strictDecode(line, &ev) != nil || ev.Validate() != nil {
				continue
			}
			if g.check(ev) != nil {
				return // the run ends at the first refusal
			}
			switch ev.Type {
			case runner.TypeAccepted:
				if accepted++; accepted > 1 || results > 0 || next > 0 {
					t.Fatalf("line %d: acceptance %d let through after %d results", i, accepted, results)
				}
			case runner.TypeResult:
				r := ev.Result
				a, err := netip.ParseAddr(r.Target)
				if accepted == 0 || err != nil || a.Unmap() != netip.MustParseAddr("127.0.0.1") || r.Port != 80 || r.Proto != "tcp" || r.Probe != probe.KindTCPConnect {
					t.Fatalf("line %d: result %+v let through (accepted %d)", i, r, accepted)
				}
				if results++; results > 1 {
					t.Fatalf("line %d: %d results let through, the job has one", i, results)
				}
			case runner.TypeCheckpoint:
				if n := ev.Checkpoint.NextBatch; n <= next || n > 1 {
					t.Fatalf("line %d: checkpoint %d let through after %d", i, n, next)
				}
				next = ev.Checkpoint.NextBatch
			case runner.TypeDone:
				if s := ev.Done.Summary; s.Worst100ms > probe.WindowLimit(10) || float64(s.PacketsSent) > float64(probe.WindowLimit(10))*(s.WallSeconds*10+2) {
					t.Fatalf("line %d: summary %+v let through", i, s)
				}
			}
		}
	})
}
