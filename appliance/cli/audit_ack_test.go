package cli

import (
	"bytes"
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"firewalliq/appliance"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// TestAuditAcknowledge drives 'audit acknowledge' on a data directory whose
// audit log an attacker edited: without an alarm it refuses, with one it
// needs the password and two distinct TOTP codes on standard input.
func TestAuditAcknowledge(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 15, 0, 10, 0, time.UTC)
	clock := func() time.Time { return now }
	dir := filepath.Join(t.TempDir(), "data")
	cfg := appliance.DefaultConfig()
	cfg.DataDir = dir
	res, err := appliance.Init(ctx, cfg, appliance.InitOptions{Admin: "root", Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	const password = "a long admin passphrase"
	a, err := appliance.Open(ctx, cfg, clock)
	if err != nil {
		t.Fatal(err)
	}
	c := auth.Client{IP: "127.0.0.1", UserAgent: "test"}
	l, err := a.Auth.Login(ctx, "root", res.OneTimePassword, c, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Auth.BeginEnrolment(ctx, l.Token, c); err != nil {
		t.Fatal(err)
	}
	code, _ := auth.TOTPCode(res.TOTPSecret, now.Add(-2*time.Minute))
	now = now.Add(-2 * time.Minute)
	full, _, err := a.Auth.ConfirmEnrolment(ctx, l.Token, code, c)
	now = now.Add(2 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Auth.Authenticate(ctx, auth.Request{SessionToken: full.Token, Method: "GET", Client: c})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Auth.ChangePassword(ctx, p, res.OneTimePassword, password); err != nil {
		t.Fatal(err)
	}
	a.Close()

	run := func(stdin string) (int, string, string) {
		var out, errb bytes.Buffer
		env := &Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }, Now: clock}
		code := Run(ctx, env, []string{"audit", "acknowledge", "--data", dir, "--user", "root", "--comment", "restored from backup"})
		return code, out.String(), errb.String()
	}
	loginCode, _ := auth.TOTPCode(res.TOTPSecret, now.Add(-30*time.Second))
	stepCode, _ := auth.TOTPCode(res.TOTPSecret, now)
	secrets := password + "\n" + loginCode + "\n" + stepCode + "\n"

	if code, _, stderr := run(secrets); code != 1 || !strings.Contains(stderr, "no unacknowledged") {
		t.Fatalf("acknowledge without an alarm: exit %d %q", code, stderr)
	}

	// Tamper with the newest entry (after the verified point).
	db, err := sql.Open("sqlite", store.DSN(filepath.Join(dir, appliance.DatabaseFile), false))
	if err != nil {
		t.Fatal(err)
	}
	var head int64
	if err := db.QueryRow(`SELECT MAX(seq) FROM audit_entries`).Scan(&head); err != nil {
		t.Fatal(err)
	}
	e, err := audit.ReadEntry(ctx, db, head)
	if err != nil {
		t.Fatal(err)
	}
	e.Object = "forged"
	if _, err := db.Exec(`DROP TRIGGER audit_entries_no_update`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_entries SET entry = ? WHERE seq = ?`, audit.Canonical(e), head); err != nil {
		t.Fatal(err)
	}
	db.Close()

	now = now.Add(time.Minute)
	loginCode, _ = auth.TOTPCode(res.TOTPSecret, now.Add(-30*time.Second))
	stepCode, _ = auth.TOTPCode(res.TOTPSecret, now)
	tests := []struct {
		name, stdin string
		code        int
		want        string
	}{
		{"input ends early", password + "\n", 2, "standard input ended"},
		{"wrong password", "not the password at all\n" + loginCode + "\n" + stepCode + "\n", 1, "sign in"},
		{"step-up reuses the login code", password + "\n" + loginCode + "\n" + loginCode + "\n", 1, "acknowledge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(tt.stdin)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d %q, want %d containing %q", code, stderr, tt.code, tt.want)
			}
		})
	}
	now = now.Add(time.Minute)
	loginCode, _ = auth.TOTPCode(res.TOTPSecret, now.Add(-30*time.Second))
	stepCode, _ = auth.TOTPCode(res.TOTPSecret, now)
	exit, out, stderr := run(password + "\n" + loginCode + "\n" + stepCode + "\n")
	if exit != 0 || !strings.Contains(out, "alarm acknowledged by root") {
		t.Fatalf("acknowledge: exit %d %q %q", exit, out, stderr)
	}
}
