package appliance_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"firewalliq/appliance"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// TestTamperAlarmAcknowledge walks the whole tamper story through the
// composition root: a clean start, an attacker editing an audit entry in
// the database file, the alarm raised at the next start-up, exports refused,
// and an admin acknowledging with step-up MFA (a wrong or reused code is
// refused), which clears the alarm and opens a new signed segment.
func TestTamperAlarmAcknowledge(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 14, 0, 5, 0, time.UTC)
	clock := func() time.Time { return now }
	cfg := appliance.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	res, err := appliance.Init(ctx, cfg, appliance.InitOptions{Admin: "root", Now: clock})
	if err != nil {
		t.Fatal(err)
	}

	// First start: clean. The admin finishes the first login (enrol TOTP,
	// change the one-time password), which appends entries after the
	// verified point.
	a, err := appliance.Open(ctx, cfg, clock)
	if err != nil {
		t.Fatal(err)
	}
	if a.AuditStartup.Alarm != nil {
		t.Fatalf("clean start raised an alarm: %+v", a.AuditStartup.Alarm)
	}
	c := auth.Client{IP: "127.0.0.1", UserAgent: "alarm-test"}
	const password = "the admin's own passphrase"
	l, err := a.Auth.Login(ctx, "root", res.OneTimePassword, c, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Auth.BeginEnrolment(ctx, l.Token, c); err != nil {
		t.Fatal(err)
	}
	code, _ := auth.TOTPCode(res.TOTPSecret, now)
	full, _, err := a.Auth.ConfirmEnrolment(ctx, l.Token, code, c)
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Auth.Authenticate(ctx, auth.Request{SessionToken: full.Token, Method: "GET", Client: c})
	if err != nil {
		t.Fatal(err)
	}
	if full, err = a.Auth.ChangePassword(ctx, p, res.OneTimePassword, password); err != nil {
		t.Fatal(err)
	}
	var head int64
	if err := a.DB().QueryRowContext(ctx, `SELECT MAX(seq) FROM audit_entries`).Scan(&head); err != nil {
		t.Fatal(err)
	}
	a.Close()

	// The attacker, with the file: drop the triggers and rewrite the last
	// entry's actor IP.
	db, err := sql.Open("sqlite", store.DSN(filepath.Join(cfg.DataDir, appliance.DatabaseFile), false))
	if err != nil {
		t.Fatal(err)
	}
	e, err := audit.ReadEntry(ctx, db, head)
	if err != nil {
		t.Fatal(err)
	}
	e.ActorIP = "203.0.113.66"
	for _, q := range []string{`DROP TRIGGER audit_entries_no_update`} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx, `UPDATE audit_entries SET entry = ? WHERE seq = ?`, audit.Canonical(e), head); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// Next start: the alarm is raised and names the edited entry.
	now = now.Add(time.Minute)
	a, err = appliance.Open(ctx, cfg, clock)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.AuditStartup.Alarm == nil || a.AuditStartup.Alarm.BadSeq != head {
		t.Fatalf("start-up after tampering: %+v, want an alarm at seq %d", a.AuditStartup, head)
	}
	if err := audit.CheckNoAlarm(ctx, a.DB()); !errors.Is(err, audit.ErrTamperAlarm) {
		t.Fatalf("CheckNoAlarm = %v", err)
	}

	// Log in again (password + TOTP of a later step).
	l, err = a.Auth.Login(ctx, "root", password, c, "")
	if err != nil {
		t.Fatal(err)
	}
	code, _ = auth.TOTPCode(res.TOTPSecret, now)
	full, err = a.Auth.VerifyTOTP(ctx, l.Token, code, c)
	if err != nil {
		t.Fatal(err)
	}
	p, err = a.Auth.Authenticate(ctx, auth.Request{SessionToken: full.Token, Method: "GET", Client: c})
	if err != nil {
		t.Fatal(err)
	}
	// The login code cannot be replayed as the step-up, and a wrong code fails.
	for name, bad := range map[string]string{"replayed login code": code, "wrong code": "000000"} {
		if _, _, err := a.Audit.AcknowledgeAlarm(ctx, p, "restored", bad); err == nil {
			t.Fatalf("%s acknowledged the alarm", name)
		}
	}
	if err := audit.CheckNoAlarm(ctx, a.DB()); !errors.Is(err, audit.ErrTamperAlarm) {
		t.Fatal("a refused acknowledgement cleared the alarm")
	}
	now = now.Add(30 * time.Second)
	code, _ = auth.TOTPCode(res.TOTPSecret, now)
	ack, cp, err := a.Audit.AcknowledgeAlarm(ctx, p, "investigated: test edit", code)
	if err != nil {
		t.Fatal(err)
	}
	if ack.Action != audit.ActAuditTamperAck || ack.ActorName != "root" || cp.Size < ack.Seq {
		t.Fatalf("ack entry %+v, checkpoint %+v", ack, cp)
	}
	if err := audit.CheckNoAlarm(ctx, a.DB()); err != nil {
		t.Fatalf("alarm still raised after acknowledgement: %v", err)
	}
	if _, _, err := a.Audit.AcknowledgeAlarm(ctx, p, "again", code); !errors.Is(err, audit.ErrNoAlarm) {
		t.Fatalf("second acknowledgement: %v, want ErrNoAlarm", err)
	}
}
