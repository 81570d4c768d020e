package appliance

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// TestAuditWiring: init writes its audit entries and a signed checkpoint;
// Open verifies at start-up, raises the tamper alarm on an edited entry,
// refuses work until acknowledged with step-up, and starts clean after.
func TestAuditWiring(t *testing.T) {
	ctx := context.Background()
	cfg := DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	if _, err := Init(ctx, cfg, InitOptions{Admin: "alice"}); err != nil {
		t.Fatal(err)
	}
	a, err := Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	es, err := audit.ReadEntries(ctx, a.DB(), 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []audit.Action{audit.ActApplianceInit, audit.ActTenantCreate, audit.ActUserCreate}
	if len(es) != len(want) {
		t.Fatalf("init wrote %d entries, want %d", len(es), len(want))
	}
	for i, e := range es {
		if e.Action != want[i] {
			t.Fatalf("entry %d is %s, want %s", e.Seq, e.Action, want[i])
		}
	}
	if !a.AuditStartup.Report.Intact || a.AuditStartup.Alarm != nil {
		t.Fatalf("fresh start-up: %+v", a.AuditStartup)
	}
	for range 2 {
		if err := a.RecordForTest(ctx, audit.Entry{ActorID: "u-1", Action: audit.ActScopeSign, Object: "scope:1"}); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()

	// An attacker edits entry 5 (after the last verified point, 3).
	db, err := sql.Open("sqlite", store.DSN(filepath.Join(cfg.DataDir, DatabaseFile), false))
	if err != nil {
		t.Fatal(err)
	}
	e, err := audit.ReadEntry(ctx, db, 5)
	if err != nil {
		t.Fatal(err)
	}
	e.Object = "scope:2"
	if _, err := db.Exec(`DROP TRIGGER audit_entries_no_update`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_entries SET entry = ? WHERE seq = 5`, audit.Canonical(e)); err != nil {
		t.Fatal(err)
	}
	db.Close()

	a, err = Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !a.AuditStartup.Raised || a.AuditStartup.Alarm == nil || a.AuditStartup.Alarm.BadSeq != 5 {
		t.Fatalf("tampered start-up: %+v", a.AuditStartup)
	}
	if err := audit.CheckNoAlarm(ctx, a.DB()); !errors.Is(err, audit.ErrTamperAlarm) {
		t.Fatalf("CheckNoAlarm: %v", err)
	}
	err = store.InTx(ctx, a.DB(), func(tx *sql.Tx) error {
		_, _, err := a.journal.Acknowledge(ctx, tx, audit.Acknowledgement{ActorID: "u-1", ActorName: "alice", StepUpVerified: true})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	a, err = Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if !a.AuditStartup.Report.Intact || a.AuditStartup.Alarm != nil {
		t.Fatalf("start-up after acknowledgement: %+v", a.AuditStartup)
	}
	if err := audit.CheckNoAlarm(ctx, a.DB()); err != nil {
		t.Fatal(err)
	}
}
