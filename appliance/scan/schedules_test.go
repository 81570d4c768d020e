package scan_test

import (
	"errors"
	"testing"
	"time"

	"firewalliq/appliance/internal/apptest"
	"firewalliq/appliance/scan"
	"firewalliq/audit"
	"firewalliq/probe/scope"
)

// TestSchedule: a schedule runs only with its standing dual approval; a
// due run is queued with the schedule's approvals and completes; runs
// missed while the appliance was down are reported, not run in a burst;
// an edit voids the approval; the validity ends.
func TestSchedule(t *testing.T) {
	e := newEnv(t)
	f := e.f
	e.scope(t, "prod", scope.EnvProduction)
	req := scan.ScheduleRequest{ScanRequest: scan.ScanRequest{ScopeID: "prod"}, Spec: "@every 1h", ValidDays: 2}
	for _, bad := range []scan.ScheduleRequest{
		{ScanRequest: req.ScanRequest, Spec: "@every 1m"},
		{ScanRequest: req.ScanRequest, Spec: "@every 1h", ValidDays: 91},
		{ScanRequest: scan.ScanRequest{ScopeID: "prod", Rate: 51}, Spec: "@every 1h"},
	} {
		if _, err := f.App.Scans.CreateSchedule(f.Ctx, e.op.P, "", bad); !errors.Is(err, scan.ErrBadRequest) {
			t.Fatalf("CreateSchedule(%+v): %v", bad, err)
		}
	}
	mark := f.Head()
	sc, err := f.App.Scans.CreateSchedule(f.Ctx, e.op.P, "", req)
	if err != nil || sc.State != scan.SchedulePending {
		t.Fatalf("CreateSchedule: %v %+v", err, sc)
	}
	// Not approved: nothing runs even when due.
	f.Clock.Advance(2 * time.Hour)
	if err := f.App.Scans.TickSchedules(f.Ctx); err != nil {
		t.Fatal(err)
	}
	if page, _ := f.App.Scans.List(f.Ctx, e.op.P, "", scan.ListFilter{}); len(page.Items) != 0 {
		t.Fatalf("an unapproved schedule ran: %+v", page.Items)
	}
	if _, err := f.App.Scans.ApproveSchedule(f.Ctx, e.op.P, "", sc.ID, f.Code(e.op)); err == nil {
		t.Fatal("the requester approved their own schedule")
	}
	for _, role := range []string{"approver", "security_lead"} {
		u := f.Users[role]
		if sc, err = f.App.Scans.ApproveSchedule(f.Ctx, u.P, "", sc.ID, f.Code(u)); err != nil {
			t.Fatalf("%s approves: %v", role, err)
		}
	}
	if sc.State != scan.ScheduleApproved || len(sc.Approvers) != 2 || sc.NextRun == "" {
		t.Fatalf("approved schedule %+v", sc)
	}
	// Due: one run, queued with the standing approval, completes.
	f.Clock.Advance(time.Hour + time.Minute)
	if err := f.App.Scans.TickSchedules(f.Ctx); err != nil {
		t.Fatal(err)
	}
	page, err := f.App.Scans.List(f.Ctx, e.op.P, "", scan.ListFilter{})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("after the first due time: %v %d scans", err, len(page.Items))
	}
	e.dispatch(t)
	run := e.wait(t, page.Items[0].ID, scan.StateCompleted, scan.StateFailed)
	if run.State != scan.StateCompleted || len(run.Approvers) != 2 || run.RequestSHA256 != sc.RequestSHA256 {
		t.Fatalf("scheduled run %+v (%s)", run, run.Reason)
	}
	// Down for five hours: four runs missed and reported, one runs now.
	f.Clock.Advance(5 * time.Hour)
	markMissed := f.Head()
	if err := f.App.Scans.TickSchedules(f.Ctx); err != nil {
		t.Fatal(err)
	}
	ms := f.Entries(markMissed, audit.ActScanScheduleMissed)
	if len(ms) != 1 || ms[0].Object != "schedule:"+sc.ID {
		t.Fatalf("scan.schedule.missed entries %+v", ms)
	}
	if n := apptest.Details(t, ms[0])["missed"].(float64); n != 4 {
		t.Fatalf("missed %v runs, want 4", n)
	}
	if page, _ = f.App.Scans.List(f.Ctx, e.op.P, "", scan.ListFilter{}); len(page.Items) != 2 {
		t.Fatalf("%d scans after the gap, want 2 (no burst)", len(page.Items))
	}
	e.wait(t, page.Items[0].ID, scan.StateCompleted)
	// An edit voids the standing approval; the new schedule needs its own.
	edited, err := f.App.Scans.EditSchedule(f.Ctx, e.op.P, "", sc.ID, scan.ScheduleRequest{ScanRequest: req.ScanRequest, Spec: "0 3 * * *", ValidDays: 2})
	if err != nil || edited.State != scan.SchedulePending || edited.ID == sc.ID {
		t.Fatalf("EditSchedule: %v %+v", err, edited)
	}
	if old, _ := f.App.Scans.GetSchedule(f.Ctx, e.op.P, "", sc.ID); old.State != scan.ScheduleVoid {
		t.Fatalf("old schedule after edit: %+v", old)
	}
	for _, role := range []string{"approver", "security_lead"} {
		u := f.Users[role]
		if edited, err = f.App.Scans.ApproveSchedule(f.Ctx, u.P, "", edited.ID, f.Code(u)); err != nil {
			t.Fatal(err)
		}
	}
	// Past its validity the schedule expires instead of running.
	f.Clock.Advance(3 * 24 * time.Hour)
	if err := f.App.Scans.TickSchedules(f.Ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.App.Scans.GetSchedule(f.Ctx, e.op.P, "", edited.ID); got.State != scan.ScheduleExpired {
		t.Fatalf("after its validity: %+v", got)
	}
	want := map[audit.Action]int{audit.ActScanSchedule: 4, audit.ActScanScheduleVoid: 2, audit.ActScanScheduleMissed: 1}
	for a, n := range want {
		if got := len(f.Entries(mark, a)); got != n {
			t.Errorf("%d %s entries, want %d", got, a, n)
		}
	}
}
