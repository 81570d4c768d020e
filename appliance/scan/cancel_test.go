package scan_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"firewalliq/appliance/internal/apptest"
	"firewalliq/appliance/scan"
	"firewalliq/audit"
)

// waitJobState polls scan id until its job is in state (20 s at most).
func (e *env) waitJobState(t *testing.T, id, state string) scan.Scan {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var sc scan.Scan
	for time.Now().Before(deadline) {
		var err error
		if sc, err = e.f.App.Scans.Get(e.f.Ctx, e.op.P, "", id); err != nil {
			t.Fatal(err)
		}
		if sc.Job != nil && sc.Job.State == state {
			return sc
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("scan %s: job %+v, want it %s", id, sc.Job, state)
	return sc
}

// checkStop checks that the entries after mark on scan id are exactly
// scan.cancel (by the operator, with reason) then one scan.stop (by the
// orchestrator) naming job jobID, and returns the scan.stop details. The
// request stays cancelled with the user's reason, and the audit log
// still verifies.
func (e *env) checkStop(t *testing.T, mark int64, id, jobID, reason string) map[string]any {
	t.Helper()
	f := e.f
	if got, want := e.actions(mark, "scan:"+id), []string{"scan.cancel", "scan.stop"}; !slices.Equal(got, want) {
		t.Fatalf("audit %v, want %v", got, want)
	}
	cancels := f.Entries(mark, audit.ActScanCancel)
	if len(cancels) != 1 || cancels[0].ActorID != e.op.P.UserID || apptest.Details(t, cancels[0])["reason"] != reason {
		t.Fatalf("scan.cancel entries %+v", cancels)
	}
	stops := f.Entries(mark, audit.ActScanStop)
	if len(stops) != 1 || stops[0].ActorID != "system" || stops[0].ActorName != "orchestrator" || stops[0].Tenant != f.Tenant {
		t.Fatalf("scan.stop entries %+v", stops)
	}
	if stops[0].Seq < cancels[0].Seq {
		t.Fatalf("scan.stop (seq %d) before scan.cancel (seq %d)", stops[0].Seq, cancels[0].Seq)
	}
	d := apptest.Details(t, stops[0])
	if d["job"] != jobID {
		t.Fatalf("scan.stop names job %v, want %s", d["job"], jobID)
	}
	sc, err := f.App.Scans.Get(f.Ctx, e.op.P, "", id)
	if err != nil {
		t.Fatal(err)
	}
	if sc.State != scan.StateCancelled || sc.Reason != reason || sc.Job.State != scan.JobCancelled {
		t.Fatalf("after the stop: %s (%s), job %+v", sc.State, sc.Reason, sc.Job)
	}
	if n, ok := d["results"].(float64); !ok || int64(n) != sc.Job.Results {
		t.Fatalf("scan.stop results %v, %d stored", d["results"], sc.Job.Results)
	}
	if n, ok := d["next_batch"].(float64); !ok || int(n) != sc.Job.NextBatch {
		t.Fatalf("scan.stop next_batch %v, job at %d", d["next_batch"], sc.Job.NextBatch)
	}
	rep, err := f.App.VerifyAuditLog(f.Ctx)
	if err != nil || !rep.Intact {
		t.Fatalf("audit verify: %+v %v", rep, err)
	}
	return d
}

// TestCancelRunningScan: a user cancels a scan mid-run (real engine,
// loopback targets). The request is cancelled and audited as scan.cancel
// by the user; the run stops and its job's end is audited once, as
// scan.stop by the orchestrator, with the packets the engine sent, when
// it stopped, the last checkpoint and the results stored; nothing is
// stored after it, and the log verifies.
func TestCancelRunningScan(t *testing.T) {
	began := time.Now()
	e := newEnv(t)
	f := e.f
	// 128 addresses x 2 ports at 20 pps: about 13 s of sending, in
	// batches of 16 addresses, so the cancel lands mid-run.
	sc := e.slowScan(t, "127.0.0.0/25")
	e.dispatch(t)
	waitCheckpoint(t, f.DB, sc.ID)
	mark := f.Head()
	t0 := time.Now()
	got, err := f.App.Scans.Cancel(f.Ctx, e.op.P, "", sc.ID, "change window closed")
	if err != nil || got.State != scan.StateCancelled {
		t.Fatalf("Cancel: %v %+v", err, got)
	}
	sc = e.waitJobState(t, sc.ID, scan.JobCancelled)
	t.Logf("job cancelled and audited %v after Cancel was called (%s into the test)", time.Since(t0).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	if sc.Job.Results == 0 || sc.Job.Results >= 256 || sc.Job.NextBatch < 1 {
		t.Fatalf("cancelled job %+v: want some results stored, not all", sc.Job)
	}
	d := e.checkStop(t, mark, sc.ID, sc.Job.ID, "change window closed")
	if d["reason"] != "cancelled by a user" || d["was"] != scan.JobRunning || d["recovery"] != nil || d["vantage"] != "local" {
		t.Fatalf("scan.stop details %v", d)
	}
	// Every stored result took at least one packet; far fewer than the
	// whole scan's 256 probes went out.
	if p, ok := d["packets"].(float64); !ok || int64(p) < sc.Job.Results || p >= 256 {
		t.Fatalf("scan.stop packets %v, %d results stored", d["packets"], sc.Job.Results)
	}
	// The engine's own clock (the wall clock; the appliance's is the
	// fixture's), as in a completed scan's manifest.
	at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(d["stopped_at"]))
	if err != nil || at.Before(began) || at.After(time.Now()) {
		t.Fatalf("scan.stop stopped_at %v (%v), the test began at %v", d["stopped_at"], err, began)
	}
	// Nothing is stored, and nothing audited, after the stop.
	time.Sleep(500 * time.Millisecond)
	later, err := f.App.Scans.Get(f.Ctx, e.op.P, "", sc.ID)
	if err != nil || later.Job.Results != sc.Job.Results || later.State != scan.StateCancelled {
		t.Fatalf("after the stop: %v %+v job %+v", err, later, later.Job)
	}
	if got := e.actions(mark, "scan:"+sc.ID); len(got) != 2 {
		t.Fatalf("audit after the stop: %v", got)
	}
}

// TestCancelWhileStopped: the scan service stops mid-scan (its job stays
// running, as after a crash), and a user cancels the scan before it
// runs again. No run holds the job, so Cancel ends it at once (scan.stop,
// no packet count); the next Run has nothing to resume and writes nothing
// more.
func TestCancelWhileStopped(t *testing.T) {
	e := newEnv(t)
	f := e.f
	sc := e.stoppedMidScan(t, "stopped")
	mark := f.Head()
	got, err := f.App.Scans.Cancel(f.Ctx, e.op.P, "", sc.ID, "not today")
	if err != nil || got.State != scan.StateCancelled {
		t.Fatalf("Cancel: %v %+v", err, got)
	}
	if got.Job == nil || got.Job.State != scan.JobCancelled {
		t.Fatalf("job after Cancel: %+v", got.Job)
	}
	d := e.checkStop(t, mark, sc.ID, got.Job.ID, "not today")
	if d["reason"] != "cancelled by a user" || d["was"] != scan.JobRunning || d["packets"] != nil {
		t.Fatalf("scan.stop details %v", d)
	}
	// Running again: nothing to resume, nothing audited.
	e.dispatch(t)
	time.Sleep(time.Second)
	if got := e.actions(mark, "scan:"+sc.ID); len(got) != 2 {
		t.Fatalf("audit after the restart: %v", got)
	}
}

// TestCancelledWhileDown: the appliance died after Cancel committed and
// before the run's end was recorded (simulated: the request is set
// cancelled in the database while its job is left running, which is
// what such a crash leaves). Recovery ends the job as cancelled, audited
// once as scan.stop with recovery: true, and does not resume it.
func TestCancelledWhileDown(t *testing.T) {
	e := newEnv(t)
	f := e.f
	sc := e.stoppedMidScan(t, "down")
	if _, err := f.DB.Exec(`UPDATE scan_requests SET state = 'cancelled', reason = 'not today' WHERE id = ?`, sc.ID); err != nil {
		t.Fatal(err)
	}
	mark := f.Head()
	e.dispatch(t)
	got := e.waitJobState(t, sc.ID, scan.JobCancelled)
	if got.State != scan.StateCancelled || got.Reason != "not today" {
		t.Fatalf("after recovery: %s (%s)", got.State, got.Reason)
	}
	stops := f.Entries(mark, audit.ActScanStop)
	if len(stops) != 1 || stops[0].Object != "scan:"+sc.ID || stops[0].ActorID != "system" {
		t.Fatalf("scan.stop entries %+v", stops)
	}
	d := apptest.Details(t, stops[0])
	if d["job"] != got.Job.ID || d["recovery"] != true || d["reason"] != "cancelled while the appliance was down" ||
		d["was"] != scan.JobRunning || int64(d["results"].(float64)) != got.Job.Results || int(d["next_batch"].(float64)) != got.Job.NextBatch {
		t.Fatalf("scan.stop details %v, job %+v", d, got.Job)
	}
	if res := f.Entries(mark, audit.ActScanResume); len(res) != 0 {
		t.Fatalf("a cancelled scan resumed: %+v", res)
	}
	time.Sleep(500 * time.Millisecond)
	if acts := e.actions(mark, "scan:"+sc.ID); !slices.Equal(acts, []string{"scan.stop"}) {
		t.Fatalf("audit %v", acts)
	}
	rep, err := f.App.VerifyAuditLog(f.Ctx)
	if err != nil || !rep.Intact {
		t.Fatalf("audit verify: %+v %v", rep, err)
	}
}

// stoppedMidScan requests a slow scan (id prefix plus a letter), runs the
// scan service until the scan has checkpointed and stops it, as a crash
// would, and checks the scan is left running with its job running. It
// returns the scan as requested. A scan that completes before the stop
// takes effect is tried again with the next letter, three times at most.
func (e *env) stoppedMidScan(t *testing.T, prefix string) scan.Scan {
	t.Helper()
	f := e.f
	for attempt := range 3 {
		sc := e.slowScanOf(t, prefix+string(rune('a'+attempt)), "127.0.0.0/25")
		stop := e.dispatch(t)
		waitCheckpoint(t, f.DB, sc.ID)
		stop()
		got, err := f.App.Scans.Get(f.Ctx, e.op.P, "", sc.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State == scan.StateCompleted {
			t.Logf("attempt %d: the scan completed before the stop took effect", attempt+1)
			continue
		}
		if got.State != scan.StateRunning || got.Job.State != scan.JobRunning {
			t.Fatalf("after stop: %s %+v", got.State, got.Job)
		}
		return sc
	}
	t.Fatal("the scan completed before the stop took effect, three times")
	return scan.Scan{}
}
