package cli

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"firewalliq/appliance"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/store"
)

// signedInAdmin inits a data directory whose first admin has finished the
// first login, and returns a runner that feeds each command the admin's
// password and fresh TOTP codes (the clock moves a minute per command, so
// codes are never replayed).
func signedInAdmin(t *testing.T, envVars map[string]string) (dir string, run func(stepUp bool, args ...string) (int, string, string)) {
	t.Helper()
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 15, 0, 10, 0, time.UTC)
	clock := func() time.Time { return now }
	dir = filepath.Join(t.TempDir(), "data")
	cfg := appliance.DefaultConfig()
	cfg.DataDir = dir
	res, err := appliance.Init(ctx, cfg, appliance.InitOptions{Admin: "root-admin", Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	const password = "a long admin passphrase"
	a, err := appliance.Open(ctx, cfg, clock)
	if err != nil {
		t.Fatal(err)
	}
	c := auth.Client{IP: "127.0.0.1", UserAgent: "test"}
	l, err := a.Auth.Login(ctx, "root-admin", res.OneTimePassword, c, "")
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
	if _, err := a.Auth.ChangePassword(ctx, p, res.OneTimePassword, password); err != nil {
		t.Fatal(err)
	}
	a.Close()
	run = func(stepUp bool, args ...string) (int, string, string) {
		now = now.Add(time.Minute)
		login, _ := auth.TOTPCode(res.TOTPSecret, now.Add(-30*time.Second))
		step, _ := auth.TOTPCode(res.TOTPSecret, now)
		stdin := password + "\n" + login + "\n"
		if stepUp {
			stdin += step + "\n"
		}
		var out, errb bytes.Buffer
		env := &Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return envVars[k] }, Now: clock}
		code := Run(ctx, env, append(args, "--data", dir, "--user", "root-admin"))
		return code, out.String(), errb.String()
	}
	return dir, run
}

// TestSiemCommands walks the siem group through the SIEM service as a
// signed-in admin: add (udp, webhook with a generated key, refused tls
// without a CA, refused without the step-up code), list, test (a real
// datagram on loopback), status and rm.
func TestSiemCommands(t *testing.T) {
	_, run := signedInAdmin(t, nil)
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	for _, tc := range []struct {
		name   string
		stepUp bool
		args   []string
		code   int
		out    string
	}{
		{"add udp", true, []string{"siem", "add", "--name", "soc-udp", "--kind", "udp", "--address", udp.LocalAddr().String()}, 0, "added soc-udp"},
		{"add webhook", true, []string{"siem", "add", "--name", "hook", "--kind", "webhook", "--address", "https://127.0.0.1:9/x", "--tenant", "default"}, 0, "webhook HMAC key"},
		{"add without step-up code", false, []string{"siem", "add", "--name", "nostep", "--kind", "udp", "--address", "127.0.0.1:514"}, 2, ""},
		{"tls needs a CA", true, []string{"siem", "add", "--name", "t", "--kind", "tls", "--address", "127.0.0.1:6514"}, 2, ""},
		{"credentials in a webhook URL", true, []string{"siem", "add", "--name", "w", "--kind", "webhook", "--address", "https://u:p@127.0.0.1/x"}, 2, ""},
		{"port out of range", true, []string{"siem", "add", "--name", "p", "--kind", "udp", "--address", "127.0.0.1:70000"}, 2, ""},
		{"unknown tenant", true, []string{"siem", "add", "--name", "u", "--kind", "udp", "--address", "127.0.0.1:514", "--tenant", "nope"}, 1, ""},
		{"missing flags", true, []string{"siem", "add", "--name", "x"}, 2, ""},
		{"list", false, []string{"siem", "list"}, 0, "soc-udp"},
		{"test", false, []string{"siem", "test", "soc-udp"}, 0, "test message sent"},
		{"status", false, []string{"siem", "status"}, 0, "soc-udp"},
		{"rm", true, []string{"siem", "rm", "hook", "--tenant", "default"}, 0, "removed hook"},
		{"rm again", true, []string{"siem", "rm", "hook", "--tenant", "default"}, 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := run(tc.stepUp, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.out) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tc.code, out, stderr)
			}
		})
	}
	_ = udp.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65536)
	n, _, err := udp.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no test datagram: %v", err)
	}
	if msg := string(buf[:n]); !strings.Contains(msg, `seq="0"`) || !strings.Contains(msg, "siem.test") {
		t.Fatalf("test message %q", msg)
	}
	code, out, _ := run(false, "siem", "status", "--json")
	var st []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st) != 1 {
		t.Fatalf("status --json: exit %d\n%s", code, out)
	}
	// The udp destination holds at least its own creation event and the
	// webhook's creation and removal (appliance-wide destinations get every
	// tenant's), plus logins and checkpoints; nothing delivered.
	if st[0]["last_seq"].(float64) < 3 || st[0]["pending"] != st[0]["last_seq"] {
		t.Errorf("status %v", st[0])
	}
}

// TestSiemAddCheckpoints: the audit entries 'siem add' writes go through the
// appliance's signing log, so an entry on an audit.checkpoint_every boundary
// gets its signed checkpoint (with checkpoint_every 1, every entry does).
func TestSiemAddCheckpoints(t *testing.T) {
	dir, run := signedInAdmin(t, map[string]string{"FIQ_AUDIT_CHECKPOINT_EVERY": "1"})
	if code, _, stderr := run(true, "siem", "add", "--name", "soc", "--kind", "udp", "--address", "127.0.0.1:514"); code != 0 {
		t.Fatalf("siem add: %s", stderr)
	}
	db, err := sql.Open("sqlite", store.DSN(filepath.Join(dir, appliance.DatabaseFile), true))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var head, signed int64
	if err := db.QueryRow(`SELECT (SELECT max(seq) FROM audit_entries), (SELECT max(size) FROM audit_checkpoints)`).Scan(&head, &signed); err != nil {
		t.Fatal(err)
	}
	if signed != head {
		t.Fatalf("latest signed checkpoint covers %d of %d entries", signed, head)
	}
}
