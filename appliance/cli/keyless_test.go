package cli

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"firewalliq/appliance"
	"firewalliq/appliance/auth"
	"firewalliq/audit"
)

// keylessRewrite is security finding 1's attack on a data directory: every
// entry re-appended with one edited through a Log without the key (public
// code, chain and tree recomputed), checkpoints and verified points deleted.
func keylessRewrite(t *testing.T, dir string, editSeq int64) {
	t.Helper()
	ctx := context.Background()
	db := openRW(t, dir)
	defer db.Close()
	var head int64
	if err := db.QueryRow(`SELECT max(seq) FROM audit_entries`).Scan(&head); err != nil {
		t.Fatal(err)
	}
	es, err := audit.ReadEntries(ctx, db, 1, head)
	if err != nil {
		t.Fatal(err)
	}
	execSQL(t, db, `DROP TRIGGER audit_entries_no_delete`, `DROP TRIGGER audit_checkpoints_no_delete`, `DROP TRIGGER audit_verified_no_delete`,
		`DELETE FROM audit_entries`, `DELETE FROM audit_checkpoints`, `DELETE FROM audit_verified`)
	i := 0
	forger := audit.New(audit.Options{Now: func() time.Time { return es[i].Time }})
	for i = range es {
		e := es[i]
		if e.Seq == editSeq {
			e.Object = "tenant:forged"
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := forger.Append(ctx, tx, e); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	execSQL(t, db, `PRAGMA wal_checkpoint(TRUNCATE)`)
}

func execSQL(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// TestKeylessRewriteAuditVerifyFails: 'audit verify' fails (exit 1) after
// the keyless rewrite of security finding 1 and its variants, where before
// the fix it reported "intact" with 0 signed checkpoints; and the next
// start (here 'audit checkpoint --new', which opens the appliance) signs
// nothing.
func TestKeylessRewriteAuditVerifyFails(t *testing.T) {
	base := filepath.Join(t.TempDir(), "data")
	if code, _, stderr := runCLI(t, nil, "init", "--data", base, "--admin", "alice"); code != 0 {
		t.Fatalf("init: %s", stderr)
	}
	// One more entry and checkpoint: checkpoints of sizes 3 and 4.
	ctx := context.Background()
	cfg := appliance.DefaultConfig()
	cfg.DataDir = base
	a, err := appliance.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	// One more entry through the front door: a failed login is audited.
	err = addAuditedEntry(ctx, a)
	if err == nil {
		_, _, err = a.Checkpoint(ctx)
	}
	a.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		attack func(t *testing.T, dir string)
		want   string
	}{
		{"rewrite", func(t *testing.T, dir string) { keylessRewrite(t, dir, 2) }, "seq 1..4"},
		{"checkpoints deleted, entries intact", func(t *testing.T, dir string) {
			db := openRW(t, dir)
			defer db.Close()
			execSQL(t, db, `DROP TRIGGER audit_checkpoints_no_delete`, `DROP TRIGGER audit_verified_no_delete`, `DELETE FROM audit_checkpoints`, `DELETE FROM audit_verified`)
		}, "no signed checkpoint"},
		{"a gap", func(t *testing.T, dir string) {
			db := openRW(t, dir)
			defer db.Close()
			execSQL(t, db, `DROP TRIGGER audit_checkpoints_no_delete`, `DELETE FROM audit_checkpoints WHERE id = 1`)
		}, "are missing"},
		{"a lower tree size", func(t *testing.T, dir string) {
			db := openRW(t, dir)
			defer db.Close()
			execSQL(t, db, `INSERT INTO audit_checkpoints (size, time, note) SELECT size, time, note FROM audit_checkpoints WHERE id = 1`)
		}, "below the 4 of an earlier one"},
		{"state file deleted", func(t *testing.T, dir string) {
			if err := os.Remove(appliance.AuditStatePath(dir)); err != nil {
				t.Fatal(err)
			}
		}, "state file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			copyDir(t, base, dir)
			if code, out, stderr := runCLI(t, nil, "audit", "verify", "--data", dir); code != 0 {
				t.Fatalf("copy before the attack: exit %d %s %s", code, out, stderr)
			}
			tc.attack(t, dir)
			code, out, stderr := runCLI(t, nil, "audit", "verify", "--data", dir)
			if code != 1 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("verify after the attack: exit %d, stdout %q, stderr %q (want %q)", code, out, stderr, tc.want)
			}
			t.Log(strings.TrimSpace(stderr))
			// Opening the appliance raises the alarm; nothing is signed.
			code, out, stderr = runCLI(t, nil, "audit", "checkpoint", "--data", dir, "--new")
			if code == 0 {
				t.Fatalf("checkpoint --new signed after the attack: %s", out)
			}
			if code, _, _ := runCLI(t, nil, "audit", "verify", "--data", dir); code != 1 {
				t.Fatalf("verify after the start: exit %d", code)
			}
		})
	}
}

// TestAuditVerifyAnchors: 'audit verify --anchors' reads the anchors from
// the configured vault (local backend) and proves the log extends them; a
// data directory rolled back to an older genuine copy (database and state
// file) verifies on its own, but not against the anchors.
func TestAuditVerifyAnchors(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	envv := map[string]string{"FIQ_PRODUCTION": "false", "FIQ_VAULT_BACKEND": "local", "FIQ_VAULT_LOCAL_DIR": t.TempDir()}
	if code, _, stderr := runCLI(t, envv, "init", "--data", dir, "--admin", "alice"); code != 0 {
		t.Fatalf("init: %s", stderr)
	}
	if code, _, stderr := runCLI(t, nil, "audit", "verify", "--data", dir, "--anchors"); code != 2 {
		t.Fatalf("--anchors without a vault: exit %d %s", code, stderr)
	}
	older := filepath.Join(t.TempDir(), "older")
	copyDir(t, dir, older)
	cfg := appliance.DefaultConfig()
	cfg.DataDir, cfg.Production = dir, false
	cfg.Vault.Backend, cfg.Vault.LocalDir = "local", envv["FIQ_VAULT_LOCAL_DIR"]
	a, err := appliance.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	// One more entry through the front door: a failed login is audited.
	err = addAuditedEntry(ctx, a)
	if err == nil {
		_, err = a.Evidence.AnchorNow(ctx)
	}
	if err == nil {
		err = a.Evidence.Vault().Flush(ctx)
	}
	a.Close()
	if err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCLI(t, envv, "audit", "verify", "--data", dir, "--anchors")
	if code != 0 || !strings.Contains(out, "extends all 1 anchored checkpoint") {
		t.Fatalf("verify --anchors: exit %d %s %s", code, out, stderr)
	}
	// The rolled-back copy: intact on its own, inconsistent with the anchor.
	if code, out, stderr := runCLI(t, envv, "audit", "verify", "--data", older); code != 0 {
		t.Fatalf("older copy alone: exit %d %s %s", code, out, stderr)
	}
	code, _, stderr = runCLI(t, envv, "audit", "verify", "--data", older, "--anchors")
	if code != 1 || !strings.Contains(stderr, "(rollback)") {
		t.Fatalf("older copy --anchors: exit %d %s", code, stderr)
	}
	t.Log(strings.TrimSpace(stderr))
}

// addAuditedEntry appends one audit entry the way any client can: a login
// with a wrong password, which the identity service audits.
func addAuditedEntry(ctx context.Context, a *appliance.Appliance) error {
	_, err := a.Auth.Login(ctx, "nobody", "wrong password", auth.Client{IP: "127.0.0.1", UserAgent: "test"}, "")
	if !errors.Is(err, auth.ErrUnauthenticated) {
		return fmt.Errorf("login of an unknown user: %v", err)
	}
	return nil
}
