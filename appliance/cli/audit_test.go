package cli

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"firewalliq/appliance"
	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// TestAuditCommands runs the audit commands against a real data directory
// made by 'init': verify, checkpoint, prove, verify-proof, export, then
// tampering and a rollback to an older copy.
func TestAuditCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if code, _, stderr := runCLI(t, nil, "init", "--data", dir, "--admin", "alice"); code != 0 {
		t.Fatalf("init: %s", stderr)
	}
	pub := filepath.Join(dir, "keys", "audit.pub")
	run := func(want int, args ...string) string {
		t.Helper()
		code, stdout, stderr := runCLI(t, nil, args...)
		if code != want {
			t.Fatalf("%v: exit %d, want %d\nstdout %s\nstderr %s", args, code, want, stdout, stderr)
		}
		return stdout + stderr
	}

	out := run(0, "audit", "verify", "--data", dir)
	if !strings.Contains(out, "audit log intact: 3 entries") {
		t.Fatalf("verify: %s", out)
	}
	note := run(0, "audit", "checkpoint", "--data", dir)
	if !strings.HasPrefix(note, "firewalliq.audit\n3\n") {
		t.Fatalf("checkpoint: %q", note)
	}
	keptFile := filepath.Join(t.TempDir(), "kept.note")
	if err := os.WriteFile(keptFile, []byte(note), 0o600); err != nil {
		t.Fatal(err)
	}
	proof := run(0, "audit", "prove", "--data", dir, "--seq", "2")
	proofFile := filepath.Join(t.TempDir(), "proof.json")
	if err := os.WriteFile(proofFile, []byte(proof), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := run(0, "audit", "verify-proof", "--pub", pub, proofFile); !strings.Contains(out, "ok: entry 2 (tenant.create") {
		t.Fatalf("verify-proof: %s", out)
	}
	cons := run(0, "audit", "prove", "--data", dir, "--from", "1")
	if err := os.WriteFile(proofFile, []byte(cons), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := run(0, "audit", "verify-proof", "--pub", pub, proofFile); !strings.Contains(out, "ok: tree 1") {
		t.Fatalf("verify-proof consistency: %s", out)
	}
	exportFile := filepath.Join(t.TempDir(), "export.jsonl")
	run(0, "audit", "export", "--data", dir, "--since", "2000-01-01T00:00:00Z", "--out", exportFile)
	if out := run(0, "audit", "verify-proof", "--pub", pub, exportFile); strings.Count(out, "ok: entry") != 3 {
		t.Fatalf("verify export: %s", out)
	}
	// A tampered proof file fails.
	bad := strings.Replace(proof, `"actor_name": "init"`, `"actor_name": "mallory"`, 1)
	if bad == proof {
		t.Fatal("test setup: proof has no actor_name to edit")
	}
	if err := os.WriteFile(proofFile, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	run(1, "audit", "verify-proof", "--pub", pub, proofFile)
	run(2, "audit", "prove", "--data", dir)
	run(2, "audit", "export", "--data", dir, "--since", "yesterday")

	// More activity after a copy was taken, then a new checkpoint that an
	// auditor keeps: the older copy verifies on its own but not against it.
	older := filepath.Join(t.TempDir(), "older")
	copyDir(t, dir, older)
	ctx := context.Background()
	cfg := appliance.DefaultConfig()
	cfg.DataDir = dir
	// Entries written straight into the file (no checkpoint signed), as
	// any activity between two checkpoints leaves them.
	st, err := store.Open(ctx, filepath.Join(dir, appliance.DatabaseFile), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lg := audit.New(audit.Options{})
	for range 2 {
		err := st.InTx(ctx, func(tx *sql.Tx) error {
			_, err := lg.Append(ctx, tx, audit.Entry{ActorID: "u-1", Action: audit.ActScopeSign, Object: "scope:1"})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	// The running appliance signs checkpoints on its own (every
	// audit.checkpoint_interval); here the test has it sign one now.
	a, err := appliance.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	a.Close()
	note2 := run(0, "audit", "checkpoint", "--data", dir)
	if !strings.HasPrefix(note2, "firewalliq.audit\n5\n") {
		t.Fatalf("checkpoint after a new signed one: %q", note2)
	}
	kept2 := filepath.Join(t.TempDir(), "kept2.note")
	if err := os.WriteFile(kept2, []byte(note2), 0o600); err != nil {
		t.Fatal(err)
	}
	out = run(0, "audit", "verify", "--data", older, "--from-checkpoint", keptFile)
	if !strings.Contains(out, "extends 1 kept checkpoint") {
		t.Fatalf("older copy vs its own checkpoint: %s", out)
	}
	out = run(1, "audit", "verify", "--data", older, "--from-checkpoint", kept2)
	if !strings.Contains(out, "seq 4..5 (rollback)") {
		t.Fatalf("older copy vs newer kept checkpoint: %s", out)
	}
	run(0, "audit", "verify", "--data", dir, "--from-checkpoint", keptFile, "--from-checkpoint", kept2)

	// Tamper with a copy: edit entry 2.
	tampered := filepath.Join(t.TempDir(), "tampered")
	copyDir(t, dir, tampered)
	db := openRW(t, tampered)
	e, err := audit.ReadEntry(ctx, db, 2)
	if err != nil {
		t.Fatal(err)
	}
	e.Object = "tenant:other"
	if _, err := db.Exec(`DROP TRIGGER audit_entries_no_update`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_entries SET entry = ? WHERE seq = 2`, audit.Canonical(e)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	out = run(1, "audit", "verify", "--data", tampered)
	if !strings.Contains(out, "seq 2 (hash)") {
		t.Fatalf("tampered verify: %s", out)
	}
	out = run(1, "audit", "verify", "--data", tampered, "--json")
	if !strings.Contains(out, `"intact": false`) || !strings.Contains(out, `"seq": 2`) {
		t.Fatalf("tampered verify --json: %s", out)
	}
}

func openRW(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", store.DSN(filepath.Join(dir, "firewalliq.db"), false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	return db
}

// copyDir copies a data directory (the database after a WAL checkpoint,
// and the keys).
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	db := openRW(t, src)
	db.Close()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}
