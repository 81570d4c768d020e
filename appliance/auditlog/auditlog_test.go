package auditlog_test

import (
	"database/sql"
	"errors"
	"testing"

	"firewalliq/appliance"
	"firewalliq/appliance/auditlog"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/internal/apptest"
	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// TestEntriesByRole: who reads which entries, and keyset paging.
func TestEntriesByRole(t *testing.T) {
	f := apptest.New(t)
	all := f.Entries(0, "")
	count := func(tenant string) int {
		n := 0
		for _, e := range all {
			if e.Tenant == tenant {
				n++
			}
		}
		return n
	}
	tests := []struct {
		role string
		want error
		n    int
	}{
		{role: "admin", n: count(f.Tenant)},
		{role: "security_lead", n: count(f.Tenant)},
		{role: "auditor", n: count(f.Tenant)},
		{role: "other_admin", n: count(f.Other)},
		{role: "appliance_admin", n: len(all)},
		{role: "operator", want: auth.ErrForbidden},
		{role: "approver", want: auth.ErrForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.role, func(t *testing.T) {
			u := f.Users[tt.role]
			mark := f.Head()
			// Walk in pages of 2; every entry once, in order.
			var got []audit.Entry
			var after int64
			for i := 0; i < 1000; i++ {
				pg, err := f.App.Audit.Entries(f.Ctx, u.P, "", after, 2)
				if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
					t.Fatalf("Entries: %v, want %v", err, tt.want)
				}
				if err != nil {
					if es := f.Entries(mark, audit.ActAccessDenied); len(es) != 1 {
						t.Fatalf("refusal audited %d times", len(es))
					}
					return
				}
				got = append(got, pg.Entries...)
				if pg.Next == 0 {
					break
				}
				if pg.Next <= after {
					t.Fatalf("cursor went from %d to %d", after, pg.Next)
				}
				after = pg.Next
			}
			if len(got) != tt.n {
				t.Fatalf("read %d entries, want %d", len(got), tt.n)
			}
			for i := 1; i < len(got); i++ {
				if got[i].Seq <= got[i-1].Seq {
					t.Fatal("entries out of order")
				}
			}
			if f.Head() != mark {
				t.Fatal("a read wrote to the audit log")
			}
		})
	}
	if _, err := f.App.Audit.Entries(f.Ctx, f.Users["admin"].P, f.Other, 0, 10); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("cross-tenant read: %v", err)
	}
	if _, err := f.App.Audit.Entries(f.Ctx, f.Users["admin"].P, "", -1, 10); !errors.Is(err, auth.ErrInvalid) {
		t.Fatalf("negative cursor: %v", err)
	}
}

// TestCheckpoint: the latest signed checkpoint, for those who read the log.
func TestCheckpoint(t *testing.T) {
	f := apptest.New(t)
	cp, err := f.App.Audit.Checkpoint(f.Ctx, f.Users["auditor"].P)
	if err != nil || cp.Size < 3 || cp.Note == "" {
		t.Fatalf("Checkpoint: %+v %v", cp, err)
	}
	if _, err := f.App.Audit.Checkpoint(f.Ctx, f.Users["operator"].P); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("operator: %v", err)
	}
}

// TestAlarmAcknowledge: raise a tamper alarm, then acknowledge it through
// the challenge and StepUpFor, as an API client does.
func TestAlarmAcknowledge(t *testing.T) {
	f := apptest.New(t)
	f.App.Close()
	// The attacker edits the newest entry (after the verified point).
	head := f.Head()
	e, err := audit.ReadEntry(f.Ctx, f.DB, head)
	if err != nil {
		t.Fatal(err)
	}
	e.Object = "forged"
	if _, err := f.DB.Exec(`DROP TRIGGER audit_entries_no_update`); err != nil {
		t.Fatal(err)
	}
	if _, err := f.DB.Exec(`UPDATE audit_entries SET entry = ? WHERE seq = ?`, audit.Canonical(e), head); err != nil {
		t.Fatal(err)
	}
	app, err := appliance.Open(f.Ctx, f.Cfg, f.Clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if app.AuditStartup.Alarm == nil {
		t.Fatal("no alarm raised")
	}
	root, adm := f.Users["appliance_admin"], f.Users["admin"]
	if _, raised, err := app.Audit.Alarm(f.Ctx, f.Users["auditor"].P); err != nil || !raised {
		t.Fatalf("Alarm: %v %v", raised, err)
	}
	tests := []struct {
		name    string
		p       auth.Principal
		comment string
		want    error
	}{
		{name: "tenant admin", p: adm.P, comment: "x", want: auth.ErrForbidden},
		{name: "empty comment", p: root.P, comment: " ", want: auth.ErrInvalid},
		{name: "no step-up", p: root.P, comment: "restored", want: auth.ErrStepUpRequired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := app.Audit.AcknowledgeAlarm(f.Ctx, tt.p, tt.comment, ""); !errors.Is(err, tt.want) {
				t.Fatalf("AcknowledgeAlarm: %v, want %v", err, tt.want)
			}
			if err := audit.CheckNoAlarm(f.Ctx, f.DB); !errors.Is(err, audit.ErrTamperAlarm) {
				t.Fatal("a refused acknowledgement cleared the alarm")
			}
		})
	}
	_, _, err = app.Audit.AcknowledgeAlarm(f.Ctx, root.P, "restored", "")
	var ch *auth.StepUpChallenge
	if !errors.As(err, &ch) || ch.Op != auth.OpAuditAlarmAck {
		t.Fatalf("challenge: %v", err)
	}
	if _, err := app.Auth.StepUpFor(f.Ctx, root.P, ch.Op, ch.Request, f.Code(root)); err != nil {
		t.Fatal(err)
	}
	// A grant for one comment does not acknowledge with another.
	if _, _, err := app.Audit.AcknowledgeAlarm(f.Ctx, root.P, "something else", ""); !errors.Is(err, auth.ErrStepUpRequired) {
		t.Fatalf("other comment: %v", err)
	}
	mark := f.Head()
	ack, cp, err := app.Audit.AcknowledgeAlarm(f.Ctx, root.P, "restored", "")
	if err != nil || ack.Action != audit.ActAuditTamperAck || cp.Size < ack.Seq {
		t.Fatalf("acknowledge: %+v %+v %v", ack, cp, err)
	}
	if es := f.Entries(mark, audit.ActAuditTamperAck); len(es) != 1 || es[0].ActorID != root.P.UserID {
		t.Fatalf("ack entries %+v", es)
	}
	if err := audit.CheckNoAlarm(f.Ctx, f.DB); err != nil {
		t.Fatal(err)
	}
	if _, _, err := app.Audit.AcknowledgeAlarm(f.Ctx, root.P, "again", f.Code(root)); !errors.Is(err, audit.ErrNoAlarm) {
		t.Fatalf("second acknowledgement: %v", err)
	}
}

// TestAlerts: an anomaly alert, who sees it, who acknowledges it, once.
func TestAlerts(t *testing.T) {
	f := apptest.New(t)
	op := f.Users["operator"]
	// Ten exports in an hour cross the threshold: one anomaly.alert.
	err := store.InTx(f.Ctx, f.DB, func(tx *sql.Tx) error {
		for range 10 {
			if err := f.App.Auth.RecordActivity(f.Ctx, tx, op.P, auth.ActivityExport); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	alerts := f.Entries(0, audit.ActAnomalyAlert)
	if len(alerts) != 1 {
		t.Fatalf("%d anomaly alerts", len(alerts))
	}
	seq := alerts[0].Seq
	list := []struct {
		role string
		want error
		n    int
	}{
		{role: "admin", n: 1}, {role: "security_lead", n: 1}, {role: "auditor", n: 1},
		{role: "appliance_admin", n: 1}, {role: "other_admin", n: 0},
		{role: "operator", want: auth.ErrForbidden}, {role: "approver", want: auth.ErrForbidden},
	}
	for _, tt := range list {
		t.Run("list "+tt.role, func(t *testing.T) {
			pg, err := f.App.Audit.Alerts(f.Ctx, f.Users[tt.role].P, "", 0, 0)
			if !errors.Is(err, tt.want) || len(pg.Alerts) != tt.n {
				t.Fatalf("Alerts: %d %v, want %d %v", len(pg.Alerts), err, tt.n, tt.want)
			}
			if tt.n == 1 && (pg.Alerts[0].Activity != string(auth.ActivityExport) || pg.Alerts[0].UserID != op.P.UserID || pg.Alerts[0].AckedBy != "") {
				t.Fatalf("alert %+v", pg.Alerts[0])
			}
		})
	}
	acks := []struct {
		name, role string
		seq        int64
		want       error
		audited    audit.Action
	}{
		{name: "auditor may not", role: "auditor", seq: seq, want: auth.ErrForbidden, audited: audit.ActAccessDenied},
		{name: "other tenant", role: "other_admin", seq: seq, want: auditlog.ErrNotFound, audited: audit.ActAccessDenied},
		{name: "not an alert", role: "admin", seq: 1, want: auditlog.ErrNotFound, audited: audit.ActAccessDenied},
		{name: "security lead", role: "security_lead", seq: seq, audited: audit.ActAlertAck},
		{name: "twice", role: "admin", seq: seq, want: auditlog.ErrAlreadyAcknowledged},
	}
	for _, tt := range acks {
		t.Run("ack "+tt.name, func(t *testing.T) {
			mark := f.Head()
			a, err := f.App.Audit.AckAlert(f.Ctx, f.Users[tt.role].P, "", tt.seq, "seen; expected bulk export")
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("AckAlert: %v, want %v", err, tt.want)
			}
			es := f.Entries(mark, "")
			if tt.audited == "" {
				if len(es) != 0 {
					t.Fatalf("wrote %d entries", len(es))
				}
				return
			}
			if len(es) != 1 || es[0].Action != tt.audited {
				t.Fatalf("audit: %+v, want one %s", es, tt.audited)
			}
			if tt.want == nil && (a.AckedBy != f.Users[tt.role].P.UserID || a.AckSeq != es[0].Seq || es[0].Tenant != f.Tenant) {
				t.Fatalf("acknowledged alert %+v, entry %+v", a, es[0])
			}
		})
	}
	pg, err := f.App.Audit.Alerts(f.Ctx, f.Users["auditor"].P, "", 0, 0)
	if err != nil || len(pg.Alerts) != 1 || pg.Alerts[0].AckedBy != f.Users["security_lead"].P.UserID {
		t.Fatalf("after ack: %+v %v", pg, err)
	}
}

// TestEntriesScanBudget: a page stops after reading a bounded number of
// entries even when none of them is the caller's; the cursor then moves
// past what was read, possibly with an empty page, and paging on reaches
// the caller's entry.
func TestEntriesScanBudget(t *testing.T) {
	f := apptest.New(t)
	lg := audit.New(audit.Options{})
	err := store.InTx(f.Ctx, f.DB, func(tx *sql.Tx) error {
		for i := range 12000 {
			tenant := f.Other
			if i == 11999 {
				tenant = f.Tenant
			}
			if _, err := lg.Append(f.Ctx, tx, audit.Entry{Tenant: tenant, ActorName: "bulk", Action: audit.ActScanStart, Object: "scan"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	start := f.Head() - 12000
	p := f.Users["auditor"].P
	pg, err := f.App.Audit.Entries(f.Ctx, p, "", start, 10)
	if err != nil || len(pg.Entries) != 0 || pg.Next == 0 || pg.Next >= f.Head() {
		t.Fatalf("first page: %d entries, next %d, %v", len(pg.Entries), pg.Next, err)
	}
	pg, err = f.App.Audit.Entries(f.Ctx, p, "", pg.Next, 10)
	if err != nil || len(pg.Entries) != 1 || pg.Entries[0].Seq != f.Head() || pg.Next != 0 {
		t.Fatalf("second page: %+v, %v", pg, err)
	}
}

// TestEntriesPrefilterFalsePositives: SQL pre-filters rows by the bytes a
// tenant field contributes to the canonical encoding; another tenant's
// entry that carries the same bytes in another field passes that filter
// but must still be dropped, and the page must still fill with the
// caller's own entries after it.
func TestEntriesPrefilterFalsePositives(t *testing.T) {
	f := apptest.New(t)
	needle := string([]byte{0, 0, 0, byte(len(f.Tenant))}) + f.Tenant
	lg := audit.New(audit.Options{})
	err := store.InTx(f.Ctx, f.DB, func(tx *sql.Tx) error {
		for i := range 30 {
			e := audit.Entry{Tenant: f.Other, ActorName: "bulk", Action: audit.ActScanStart, Object: needle}
			if i%3 == 2 {
				e = audit.Entry{Tenant: f.Tenant, ActorName: "bulk", Action: audit.ActScanStart, Object: "scan"}
			}
			if _, err := lg.Append(f.Ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	start := f.Head() - 30
	p := f.Users["auditor"].P
	for _, tc := range []struct {
		name  string
		limit int
		want  int
	}{
		{name: "page smaller than the matches", limit: 4, want: 4},
		{name: "page larger than the matches", limit: 50, want: 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pg, err := f.App.Audit.Entries(f.Ctx, p, "", start, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(pg.Entries) != tc.want {
				t.Fatalf("%d entries, want %d", len(pg.Entries), tc.want)
			}
			for _, e := range pg.Entries {
				if e.Tenant != f.Tenant {
					t.Fatalf("entry %d of tenant %q leaked", e.Seq, e.Tenant)
				}
			}
		})
	}
}
