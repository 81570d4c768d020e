package appliance

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// keylessRewrite is security finding 1's attack on a data directory's
// database, with the public code only: every entry re-appended (entry
// editSeq edited) through a Log without the key, which recomputes chain and
// tree, and the rows of audit_checkpoints and audit_verified deleted.
func keylessRewrite(t *testing.T, dbPath string, editSeq int64) {
	t.Helper()
	ctx := context.Background()
	db, err := sql.Open("sqlite", store.DSN(dbPath, false))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var head int64
	if err := db.QueryRow(`SELECT max(seq) FROM audit_entries`).Scan(&head); err != nil {
		t.Fatal(err)
	}
	es, err := audit.ReadEntries(ctx, db, 1, head)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`DROP TRIGGER audit_entries_no_delete`, `DROP TRIGGER audit_checkpoints_no_delete`, `DROP TRIGGER audit_verified_no_delete`,
		`DELETE FROM audit_entries`, `DELETE FROM audit_checkpoints`, `DELETE FROM audit_verified`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	i := 0
	forger := audit.New(audit.Options{Now: func() time.Time { return es[i].Time }})
	for i = range es {
		e := es[i]
		if e.Seq == editSeq {
			e.Details = []byte(`{"name":"mallory","role":"admin"}`)
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
	if _, err := db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
}

func countCheckpoints(t *testing.T, a *Appliance) int {
	t.Helper()
	var n int
	if err := a.st.DB().QueryRow(`SELECT count(*) FROM audit_checkpoints`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func appendEntries(t *testing.T, a *Appliance, n int) {
	t.Helper()
	ctx := context.Background()
	for range n {
		err := store.InTx(ctx, a.st.DB(), func(tx *sql.Tx) error {
			_, err := a.log.Append(ctx, tx, audit.Entry{ActorID: "u-1", Action: audit.ActScopeSign, Object: "scope:1"})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// newDataDir initialises a data directory, opens it once, adds two entries
// and signs a checkpoint of them, as a used appliance looks.
func newDataDir(t *testing.T, vaultDir string) Config {
	t.Helper()
	ctx := context.Background()
	cfg := DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	if vaultDir != "" {
		cfg.Production = false
		cfg.Vault.Backend, cfg.Vault.LocalDir = "local", vaultDir
	}
	if _, err := Init(ctx, cfg, InitOptions{Admin: "alice"}); err != nil {
		t.Fatal(err)
	}
	a, err := Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	appendEntries(t, a, 2)
	if err := a.log.CheckpointNow(ctx, a.st.DB()); err != nil {
		t.Fatal(err)
	}
	a.Close()
	return cfg
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestKeylessRewriteRaisesAlarm is the regression test for security
// finding 1 on a real data directory: after the keyless rewrite (and its
// variants) the next Open raises the tamper alarm and signs nothing, not
// at start and not on a checkpoint turn. On the code before the fix, Open
// verified the forgery from zero and signed it.
func TestKeylessRewriteRaisesAlarm(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		attack func(t *testing.T, cfg Config)
	}{
		{"rewrite with the admin's user.create edited", func(t *testing.T, cfg Config) {
			keylessRewrite(t, filepath.Join(cfg.DataDir, DatabaseFile), 3)
		}},
		{"checkpoints deleted, entries intact", func(t *testing.T, cfg Config) {
			execAll(t, cfg, `DROP TRIGGER audit_checkpoints_no_delete`, `DROP TRIGGER audit_verified_no_delete`,
				`DELETE FROM audit_checkpoints`, `DELETE FROM audit_verified`)
		}},
		{"a gap: the first checkpoint deleted", func(t *testing.T, cfg Config) {
			execAll(t, cfg, `DROP TRIGGER audit_checkpoints_no_delete`, `DELETE FROM audit_checkpoints WHERE id = 1`)
		}},
		{"a lower tree size: the newest checkpoint deleted", func(t *testing.T, cfg Config) {
			execAll(t, cfg, `DROP TRIGGER audit_checkpoints_no_delete`, `DELETE FROM audit_checkpoints WHERE id = (SELECT max(id) FROM audit_checkpoints)`)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := newDataDir(t, "")
			tc.attack(t, cfg)
			state := AuditStatePath(cfg.DataDir)
			before, err := os.ReadFile(state)
			if err != nil {
				t.Fatal(err)
			}
			a, err := Open(ctx, cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			res := a.AuditStartup
			if !res.Raised || res.Alarm == nil {
				t.Fatalf("Open after the attack raised no alarm: %+v", res)
			}
			t.Logf("alarm: %s", res.Alarm.Reason)
			if err := audit.CheckNoAlarm(ctx, a.st.DB()); !errors.Is(err, audit.ErrTamperAlarm) {
				t.Fatalf("CheckNoAlarm: %v", err)
			}
			cps := countCheckpoints(t, a)
			if err := a.log.CheckpointNow(ctx, a.st.DB()); !errors.Is(err, audit.ErrTamperAlarm) {
				t.Fatalf("checkpoint under the alarm: %v", err)
			}
			if n := countCheckpoints(t, a); n != cps {
				t.Fatalf("signed under the alarm: %d checkpoints, want %d", n, cps)
			}
			if after, _ := os.ReadFile(state); string(after) != string(before) {
				t.Fatal("the state file moved under the alarm")
			}
			var signedForgery int
			if err := a.st.DB().QueryRow(`SELECT count(*) FROM audit_checkpoints WHERE size >= 5`).Scan(&signedForgery); err != nil {
				t.Fatal(err)
			}
			if tc.name == "rewrite with the admin's user.create edited" && signedForgery != 0 {
				t.Fatalf("the forgery was signed: %d checkpoints of size >= 5", signedForgery)
			}
		})
	}
}

func execAll(t *testing.T, cfg Config, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", store.DSN(filepath.Join(cfg.DataDir, DatabaseFile), false))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// fakeNow is a settable clock.
type fakeNow struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeNow) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeNow) Add(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAuditGuardFullVerification: an edit of an old entry (before the
// trusted checkpoint, which start-ups do not re-read) raises the alarm
// from the background full verification once the day is over, without
// anyone running 'audit verify'; after the acknowledgement the guard
// verifies again at once and raises nothing for the acknowledged break.
func TestAuditGuardFullVerification(t *testing.T) {
	ctx := context.Background()
	cfg := newDataDir(t, "")
	clk := &fakeNow{t: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
	a, err := Open(ctx, cfg, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	errs := make(chan error, 100)
	go func() {
		defer close(done)
		a.runAuditGuards(rctx, auditGuard{Every: time.Hour, Poll: 5 * time.Millisecond}, func(err error) {
			select {
			case errs <- err:
			default:
			}
		})
	}()
	defer func() { cancel(); <-done }()
	time.Sleep(100 * time.Millisecond) // the first (clean) full verification
	if _, raised, _ := audit.CurrentAlarm(ctx, a.st.DB()); raised {
		t.Fatal("alarm on a clean log")
	}
	// Edit entry 2 behind the appliance's back.
	db, err := sql.Open("sqlite", store.DSN(filepath.Join(cfg.DataDir, DatabaseFile), false))
	if err != nil {
		t.Fatal(err)
	}
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
	time.Sleep(50 * time.Millisecond)
	if _, raised, _ := audit.CurrentAlarm(ctx, a.st.DB()); raised {
		t.Fatal("alarm before the day was over: the guard is not on the injected clock")
	}
	clk.Add(time.Hour)
	raised := func() bool { _, r, _ := audit.CurrentAlarm(ctx, a.st.DB()); return r }
	waitFor(t, "the alarm", raised)
	al, _, _ := audit.CurrentAlarm(ctx, a.st.DB())
	if al.BadSeq != 2 {
		t.Fatalf("alarm %+v, want bad seq 2", al)
	}
	if _, _, err := a.log.Acknowledge(ctx, a.st.DB(), audit.Acknowledgement{ActorID: "u-1", ActorName: "alice", StepUpVerified: true}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the guard re-verifies after the ack
	if raised() {
		t.Fatal("the acknowledged break raised the alarm again")
	}
	select {
	case err := <-errs:
		t.Fatalf("guard error: %v", err)
	default:
	}
}

// TestAnchorsCatchRollback: the database and the state file both replaced
// by an older genuine copy verify on their own (start-up sees nothing), but
// the checkpoint anchored in the evidence bucket since then is not in the
// log any more: serve's anchor check, run at start by the guard loop,
// raises the alarm. Local vault backend; the MinIO case is in
// appliance/evidence (TestAnchoredCheckpointsMinIO).
func TestAnchorsCatchRollback(t *testing.T) {
	ctx := context.Background()
	cfg := newDataDir(t, t.TempDir())
	dbPath, state := filepath.Join(cfg.DataDir, DatabaseFile), AuditStatePath(cfg.DataDir)
	execAll(t, cfg, `PRAGMA wal_checkpoint(TRUNCATE)`)
	old := t.TempDir()
	copyFile(t, dbPath, filepath.Join(old, "db"))
	copyFile(t, state, filepath.Join(old, "state"))

	a, err := Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	appendEntries(t, a, 3)
	if _, err := a.Evidence.AnchorNow(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Evidence.Vault().Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := a.CheckAuditAnchors(ctx); err != nil || n != 1 {
		t.Fatalf("anchor check on the intact log: %d %v", n, err)
	}
	a.Close()

	// Roll both files back.
	for _, suffix := range []string{"-wal", "-shm"} {
		_ = os.Remove(dbPath + suffix)
	}
	copyFile(t, filepath.Join(old, "db"), dbPath)
	copyFile(t, filepath.Join(old, "state"), state)
	a, err = Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.AuditStartup.Alarm != nil {
		t.Fatalf("start-up on a consistent older copy: %+v", a.AuditStartup)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.runAuditGuards(rctx, auditGuard{Every: time.Hour, Poll: 5 * time.Millisecond}, func(err error) { t.Logf("guard: %v", err) })
	}()
	defer func() { cancel(); <-done }()
	waitFor(t, "the anchor check's alarm", func() bool { _, r, _ := audit.CurrentAlarm(ctx, a.st.DB()); return r })
	al, _, _ := audit.CurrentAlarm(ctx, a.st.DB())
	t.Logf("alarm: %+v", al)
	if _, err := a.CheckAuditAnchors(ctx); !errors.Is(err, ErrAnchorsInconsistent) {
		t.Fatalf("anchor check after the rollback: %v", err)
	}
}
