package sensor_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"firewalliq/appliance/scan"
	"firewalliq/audit"
)

// TestCancelRemoteScan: a user cancels a scan running on a sensor (a real
// agent over the embedded NATS server, loopback targets). The request is
// cancelled (scan.cancel by the user); closing the run's stream asks the
// sensor to stop, and the job's end is audited once, as scan.stop by the
// orchestrator, naming the sensor, with the packets of the sensor's last
// progress report and the results stored; the audit log verifies.
func TestCancelRemoteScan(t *testing.T) {
	fl := newFleet(t)
	// The sensor checks the job's validity on the console's test clock,
	// set flowing so that the engine's timeouts pass.
	fl.Clock.Flow()
	creds, dir := fl.enrol(t, "admin", "edge")
	startAgentAt(t, dir, fl.Clock.Now)
	open, _ := listen(t)
	// 128 targets of one port at 10 pps: a run of about 13 s at least.
	fl.registerScopeOf(t, "slow", "127.0.0.0/25", open)
	fl.runScans(t)
	op := fl.Users["operator"]
	sc, err := fl.App.Scans.Request(fl.Ctx, op.P, "", scan.ScanRequest{ScopeID: "slow", Targets: []string{"127.0.0.0/25"}, Rate: 10, Vantage: creds.SensorID}, fl.Code(op))
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the console has heard of packets sent.
	wctx, wcancel := context.WithTimeout(fl.Ctx, 30*time.Second)
	defer wcancel()
	ch, err := fl.App.Scans.Watch(wctx, op.P, "", sc.ID)
	if err != nil {
		t.Fatal(err)
	}
	var sent uint64
	for sent == 0 {
		select {
		case p, ok := <-ch:
			if !ok {
				t.Fatalf("the progress feed ended before a packet was reported (scan %s)", p.State)
			}
			if p.State != scan.StateRunning && p.State != scan.StateQueued {
				t.Fatalf("scan %s before the cancel", p.State)
			}
			sent = p.Sent
		case <-wctx.Done():
			t.Fatal("no progress with packets sent within 30 s")
		}
	}
	wcancel()
	mark := fl.Head()
	if got, err := fl.App.Scans.Cancel(fl.Ctx, op.P, "", sc.ID, "wrong vantage"); err != nil || got.State != scan.StateCancelled {
		t.Fatalf("Cancel: %v %+v", err, got)
	}
	for i := 0; ; i++ {
		if sc, err = fl.App.Scans.Get(fl.Ctx, op.P, "", sc.ID); err != nil {
			t.Fatal(err)
		}
		if sc.Job.State == scan.JobCancelled {
			break
		}
		if i > 1000 {
			t.Fatalf("job %+v, want it cancelled", sc.Job)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if sc.State != scan.StateCancelled || sc.Reason != "wrong vantage" {
		t.Fatalf("after the stop: %s (%s)", sc.State, sc.Reason)
	}
	var got []string
	for _, en := range fl.Entries(mark, "") {
		if en.Object == "scan:"+sc.ID {
			got = append(got, string(en.Action))
		}
	}
	if want := []string{"scan.cancel", "scan.stop"}; !slices.Equal(got, want) {
		t.Fatalf("audit %v, want %v", got, want)
	}
	stops := fl.Entries(mark, audit.ActScanStop)
	if len(stops) != 1 || stops[0].ActorID != "system" {
		t.Fatalf("scan.stop entries %+v", stops)
	}
	var d map[string]any
	if err := json.Unmarshal(stops[0].Details, &d); err != nil {
		t.Fatal(err)
	}
	p, _ := d["packets"].(float64)
	if d["job"] != sc.Job.ID || d["vantage"] != creds.SensorID || d["reason"] != "cancelled by a user" ||
		uint64(p) < sent || p >= 3*128 || int64(d["results"].(float64)) != sc.Job.Results {
		t.Fatalf("scan.stop details %v (the console heard of %d packets before the cancel; job %+v)", d, sent, sc.Job)
	}
	rep, err := fl.App.VerifyAuditLog(fl.Ctx)
	if err != nil || !rep.Intact {
		t.Fatalf("audit verify: %+v %v", rep, err)
	}
}
