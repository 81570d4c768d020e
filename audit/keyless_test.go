package audit

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// keylessRewrite is the attack of security finding 1, done with nothing but
// the public code and write access to the file: read every entry, edit one,
// delete everything (triggers dropped first), re-append every entry through
// a Log without a key (which recomputes the chain and the tree; a clock
// replays the original times), and delete the rows of audit_checkpoints
// and audit_verified.
func keylessRewrite(t *testing.T, db *sql.DB, editSeq int64) {
	t.Helper()
	ctx := context.Background()
	var head int64
	if err := db.QueryRow(`SELECT max(seq) FROM audit_entries`).Scan(&head); err != nil {
		t.Fatal(err)
	}
	es, err := ReadEntries(ctx, db, 1, head)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range []string{"audit_entries", "audit_checkpoints", "audit_verified"} {
		mustExec(t, db, "DROP TRIGGER IF EXISTS "+tb+"_no_delete")
	}
	mustExec(t, db, `DELETE FROM audit_entries`, `DELETE FROM audit_checkpoints`, `DELETE FROM audit_verified`)
	i := 0
	forger := New(Options{Now: func() time.Time { return es[i].Time }})
	for i = range es {
		e := es[i]
		if e.Seq == editSeq {
			e.Object = "scope:forged"
		}
		if err := inTx(ctx, db, func(tx *sql.Tx) error { _, err := forger.Append(ctx, tx, e); return err }); err != nil {
			t.Fatal(err)
		}
	}
	// The forgery is self-consistent: without the state file, the file
	// alone shows nothing wrong, which is the finding.
	rep, err := Verify(ctx, db, VerifyOptions{Public: testPub()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Problem == nil || rep.Problem.Kind != KindVanished {
		t.Fatalf("forged log, file alone: %+v (want only the vanished checkpoints reported)", rep)
	}
}

// stateFixture is a real SQLite audit database with a state file: 10
// entries with a checkpoint every 4, a start-up (checkpoint 10), 5 more and
// a checkpoint turn (15). Checkpoints: 4, 8, 10, 12, 15; verified: 10.
func stateFixture(t *testing.T) (db *sql.DB, path, state string) {
	t.Helper()
	ctx := context.Background()
	db, path = newDB(t)
	state = filepath.Join(t.TempDir(), StateFileName)
	l := New(Options{Now: fakeClock(), Signer: testKey(), CheckpointEvery: 4, StatePath: state})
	appendN(t, l, db, 10)
	if res, err := l.Startup(ctx, db); err != nil || res.Alarm != nil {
		t.Fatalf("first start-up: %+v %v", res, err)
	}
	appendN(t, l, db, 5)
	if err := l.CheckpointNow(ctx, db); err != nil {
		t.Fatal(err)
	}
	cp, ok, err := ReadState(state, testPub(), "")
	if err != nil || !ok || cp.Size != 15 {
		t.Fatalf("state file after the checkpoint turn: %+v %v %v", cp, ok, err)
	}
	return db, path, state
}

func countRows(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestKeylessRewriteRaisesAlarm is the regression test for security
// finding 1 ("the audit log can be rewritten without the key, and the
// appliance then signs the forgery"): after each variant of the attack the
// next start-up raises the tamper alarm and signs nothing (no checkpoint
// row, state file unchanged), a checkpoint turn refuses to sign, and
// Verify with the state file fails.
func TestKeylessRewriteRaisesAlarm(t *testing.T) {
	ctx := context.Background()
	db, path, state := stateFixture(t)
	for _, tc := range []struct {
		name   string
		attack func(t *testing.T, db *sql.DB, state string)
		kind   string
	}{
		{name: "rewrite with one entry edited, checkpoints and verified points deleted", kind: KindVanished, attack: func(t *testing.T, db *sql.DB, _ string) {
			keylessRewrite(t, db, 6)
		}},
		{name: "rewrite after the last signed point, newest checkpoint deleted", kind: KindRoot, attack: func(t *testing.T, db *sql.DB, _ string) {
			// Only the tail after checkpoint 12 changes; rows 1..4 of
			// audit_checkpoints (sizes 4, 8, 10, 12) stay, no gap.
			editEntry(t, db, 14, func(e *Entry) { e.Object = "scope:forged" })
			rewrite(t, db, 14, 15, true)
			mustExec(t, db, `DELETE FROM audit_checkpoints WHERE size = 15`)
		}},
		{name: "a gap: one checkpoint deleted", kind: KindVanished, attack: func(t *testing.T, db *sql.DB, _ string) {
			mustExec(t, db, `DELETE FROM audit_checkpoints WHERE size = 8`)
		}},
		{name: "a lower tree size: an old checkpoint stored again as the newest", kind: KindVanished, attack: func(t *testing.T, db *sql.DB, _ string) {
			mustExec(t, db, `INSERT INTO audit_checkpoints (size, time, note) SELECT size, time, note FROM audit_checkpoints WHERE size = 8`)
		}},
		{name: "a lower verified point", kind: KindVanished, attack: func(t *testing.T, db *sql.DB, _ string) {
			mustExec(t, db, `INSERT INTO audit_verified (size, time) VALUES (4, '2026-11-27T12:00:00Z')`)
		}},
		{name: "checkpoints and verified points deleted, entries intact", kind: KindVanished, attack: func(t *testing.T, db *sql.DB, _ string) {
			mustExec(t, db, `DELETE FROM audit_checkpoints`, `DELETE FROM audit_verified`)
		}},
		{name: "state file deleted", kind: KindVanished, attack: func(t *testing.T, _ *sql.DB, state string) {
			if err := os.Remove(state); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "state file forged", kind: KindVanished, attack: func(t *testing.T, _ *sql.DB, state string) {
			if err := os.WriteFile(state, []byte("firewalliq.audit\n15\nAAAA\n\n— firewalliq.audit AAAA\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cdb := openDB(t, copyDB(t, db, path))
			cstate := filepath.Join(t.TempDir(), StateFileName)
			b, err := os.ReadFile(state)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(cstate, b, 0o600); err != nil {
				t.Fatal(err)
			}
			dropTriggers(t, cdb)
			tc.attack(t, cdb, cstate)
			before, _ := os.ReadFile(cstate)
			cps := countRows(t, cdb, "audit_checkpoints")

			// The next start (a new process: a new Log with the key).
			l := New(Options{Now: fakeClock(), Signer: testKey(), CheckpointEvery: 4, StatePath: cstate})
			res, err := l.Startup(ctx, cdb)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Raised || res.Alarm == nil || res.Report.Problem == nil || res.Report.Problem.Kind != tc.kind {
				t.Fatalf("start-up after the attack: %+v (problem %v)", res, res.Report.Problem)
			}
			t.Logf("alarm: %v", res.Report.Problem)
			// Nothing signed, now or on the next checkpoint turn or start.
			if err := l.CheckpointNow(ctx, cdb); !errors.Is(err, ErrTamperAlarm) {
				t.Fatalf("checkpoint turn under the alarm: %v, want ErrTamperAlarm", err)
			}
			appendN(t, l, cdb, 8) // crosses two count-based checkpoint sizes
			if res, err := New(Options{Signer: testKey(), StatePath: cstate}).Startup(ctx, cdb); err != nil || res.Raised || res.Alarm == nil {
				t.Fatalf("second start-up: %+v %v", res, err)
			}
			if n := countRows(t, cdb, "audit_checkpoints"); n != cps {
				t.Fatalf("%d checkpoints stored under the alarm, want %d", n, cps)
			}
			if after, _ := os.ReadFile(cstate); string(after) != string(before) {
				t.Fatal("state file changed under the alarm")
			}
			// 'audit verify' with the state file fails too.
			note, ok, _ := ReadStateNote(cstate)
			opts := VerifyOptions{Public: testPub(), RequireState: true}
			if ok {
				opts.State = note
			}
			rep, err := Verify(ctx, cdb, opts)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Intact {
				t.Fatalf("verify after the attack: %+v", rep)
			}
		})
	}

	// The untouched original: start-up clean, verify intact.
	l := New(Options{Now: fakeClock(), Signer: testKey(), CheckpointEvery: 4, StatePath: state})
	if res, err := l.Startup(ctx, db); err != nil || res.Alarm != nil {
		t.Fatalf("original start-up: %+v %v", res, err)
	}
	note, _, _ := ReadStateNote(state)
	if rep, err := Verify(ctx, db, VerifyOptions{Public: testPub(), State: note, RequireState: true}); err != nil || !rep.Intact {
		t.Fatalf("original verify: %+v %v", rep, err)
	}
}

// TestKeylessRewriteWhileRunning: the attack on a running appliance's
// file. The Log notices that the head is not the one it appended, verifies
// from the trusted checkpoint before signing, finds the rewrite and raises
// the alarm instead of signing.
func TestKeylessRewriteWhileRunning(t *testing.T) {
	ctx := context.Background()
	db, path, state := stateFixture(t)
	l := New(Options{Now: fakeClock(), Signer: testKey(), CheckpointEvery: 4, StatePath: state})
	if res, err := l.Startup(ctx, db); err != nil || res.Alarm != nil {
		t.Fatalf("start-up: %+v %v", res, err)
	}
	// The attacker's own connection to the same file.
	adb := openDB(t, path)
	keylessRewrite(t, adb, 3)
	cps := countRows(t, db, "audit_checkpoints")
	appendN(t, l, db, 1)
	err := l.CheckpointNow(ctx, db)
	if !errors.Is(err, ErrUnverified) {
		t.Fatalf("checkpoint after the rewrite: %v, want ErrUnverified", err)
	}
	if _, raised, _ := CurrentAlarm(ctx, db); !raised {
		t.Fatal("no alarm raised")
	}
	if n := countRows(t, db, "audit_checkpoints"); n != cps {
		t.Fatalf("%d checkpoints after the rewrite, want %d", n, cps)
	}
}

// TestFullVerificationFindsOldEdit: an edit before the trusted checkpoint
// is not re-read by the incremental start-up, but VerifyAll (the
// background full verification) finds it; once that break is acknowledged
// it is not reported again, while a new edit is.
func TestFullVerificationFindsOldEdit(t *testing.T) {
	ctx := context.Background()
	db, _, state := stateFixture(t)
	dropTriggers(t, db)
	editEntry(t, db, 2, func(e *Entry) { e.Object = "scope:forged" })
	l := New(Options{Now: fakeClock(), Signer: testKey(), CheckpointEvery: 4, StatePath: state})
	if res, err := l.Startup(ctx, db); err != nil || res.Alarm != nil {
		t.Fatalf("incremental start-up does not re-read entry 2: %+v %v", res, err)
	}
	rep, err := l.VerifyAll(ctx, db)
	if err != nil || rep.Intact || rep.Problem.Seq != 2 {
		t.Fatalf("full verification: %+v %v", rep, err)
	}
	if _, raised, err := l.RaiseAlarm(ctx, db, *rep.Problem, 0); err != nil || !raised {
		t.Fatalf("raise: %v %v", raised, err)
	}
	if _, _, err := l.Acknowledge(ctx, db, Acknowledgement{ActorID: "u-1", StepUpVerified: true, Comment: "seen"}); err != nil {
		t.Fatal(err)
	}
	if rep, err := l.VerifyAll(ctx, db); err != nil || !rep.Intact {
		t.Fatalf("after the acknowledgement: %+v %v", rep, err)
	}
	if res, err := New(Options{Signer: testKey(), StatePath: state}).Startup(ctx, db); err != nil || res.Alarm != nil {
		t.Fatalf("start-up after the acknowledgement: %+v %v", res, err)
	}
	editEntry(t, db, 1, func(e *Entry) { e.Object = "scope:forged-too" })
	if rep, err := l.VerifyAll(ctx, db); err != nil || rep.Intact || rep.Problem.Seq != 1 {
		t.Fatalf("a new edit after the acknowledgement: %+v %v", rep, err)
	}
}

// TestCheckWitnesses: every witnessed (anchored) checkpoint must be a
// prefix of the head's tree; a keyless rewrite and a rollback below a
// witness fail.
func TestCheckWitnesses(t *testing.T) {
	ctx := context.Background()
	db, path, _ := stateFixture(t)
	var notes [][]byte
	rows, err := db.Query(`SELECT note FROM audit_checkpoints ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		notes = append(notes, []byte(n))
	}
	rows.Close()
	n, p, err := CheckWitnesses(ctx, db, testPub(), "", notes)
	if err != nil || p != nil || n != len(notes) {
		t.Fatalf("intact log: %d %v %v", n, p, err)
	}
	for _, tc := range []struct {
		name   string
		attack func(t *testing.T, db *sql.DB)
		kind   string
	}{
		{"keyless rewrite", func(t *testing.T, db *sql.DB) { keylessRewrite(t, db, 9) }, KindRollback},
		{"tail deleted below a witness", func(t *testing.T, db *sql.DB) {
			dropTriggers(t, db)
			mustExec(t, db, `DELETE FROM audit_entries WHERE seq > 13`)
		}, KindRollback},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cdb := openDB(t, copyDB(t, db, path))
			tc.attack(t, cdb)
			_, p, err := CheckWitnesses(ctx, cdb, testPub(), "", notes)
			if err != nil || p == nil || p.Kind != tc.kind {
				t.Fatalf("problem %v, err %v, want kind %s", p, err, tc.kind)
			}
			t.Log(p)
		})
	}
	if _, p, _ := CheckWitnesses(ctx, db, testPub(), "", [][]byte{[]byte("not a note")}); p == nil || p.Kind != KindCheckpoint {
		t.Fatalf("garbage witness: %v", p)
	}
}

// TestAcknowledgedVanishingStaysQuiet: after an admin acknowledges an
// alarm about deleted checkpoints, the new segment starts clean: start-ups
// and the background full verification do not raise it again, and signing
// resumes; a new deletion in the new segment raises it again.
func TestAcknowledgedVanishingStaysQuiet(t *testing.T) {
	ctx := context.Background()
	db, _, state := stateFixture(t)
	dropTriggers(t, db)
	mustExec(t, db, `DELETE FROM audit_checkpoints WHERE size = 8`)
	l := New(Options{Now: fakeClock(), Signer: testKey(), CheckpointEvery: 4, StatePath: state})
	if res, err := l.Startup(ctx, db); err != nil || !res.Raised {
		t.Fatalf("start-up after the deletion: %+v %v", res, err)
	}
	if _, _, err := l.Acknowledge(ctx, db, Acknowledgement{ActorID: "u-1", StepUpVerified: true}); err != nil {
		t.Fatal(err)
	}
	if rep, err := l.VerifyAll(ctx, db); err != nil || !rep.Intact {
		t.Fatalf("full verification after the acknowledgement: %+v %v", rep, err)
	}
	l2 := New(Options{Now: fakeClock(), Signer: testKey(), CheckpointEvery: 4, StatePath: state})
	if res, err := l2.Startup(ctx, db); err != nil || res.Alarm != nil {
		t.Fatalf("start-up after the acknowledgement: %+v %v", res, err)
	}
	appendN(t, l2, db, 3)
	if err := l2.CheckpointNow(ctx, db); err != nil {
		t.Fatalf("signing after the acknowledgement: %v", err)
	}
	mustExec(t, db, `DELETE FROM audit_checkpoints WHERE id = (SELECT max(id) FROM audit_checkpoints)`)
	if res, err := New(Options{Signer: testKey(), StatePath: state}).Startup(ctx, db); err != nil || !res.Raised {
		t.Fatalf("a deletion in the new segment: %+v %v", res, err)
	}
}

// TestAcknowledgedInAnotherProcess: serve keeps running while an admin
// acknowledges a rewrite alarm from the shell (another Log on the same
// files); serve's next checkpoint turn moves to the new segment instead of
// raising the alarm again, and signs.
func TestAcknowledgedInAnotherProcess(t *testing.T) {
	ctx := context.Background()
	db, path, state := stateFixture(t)
	serve := New(Options{Now: fakeClock(), Signer: testKey(), CheckpointEvery: 4, StatePath: state})
	if res, err := serve.Startup(ctx, db); err != nil || res.Alarm != nil {
		t.Fatalf("start-up: %+v %v", res, err)
	}
	adb := openDB(t, path)
	keylessRewrite(t, adb, 3)
	shell := New(Options{Now: fakeClock(), Signer: testKey(), StatePath: state})
	if res, err := shell.Startup(ctx, adb); err != nil || !res.Raised {
		t.Fatalf("shell start-up: %+v %v", res, err)
	}
	if _, _, err := shell.Acknowledge(ctx, adb, Acknowledgement{ActorID: "u-1", StepUpVerified: true}); err != nil {
		t.Fatal(err)
	}
	appendN(t, serve, db, 2)
	if err := serve.CheckpointNow(ctx, db); err != nil {
		t.Fatalf("serve's checkpoint turn after the acknowledgement: %v", err)
	}
	if _, raised, _ := CurrentAlarm(ctx, db); raised {
		t.Fatal("the alarm was raised again")
	}
	cp, _, err := ReadState(state, testPub(), "")
	if err != nil {
		t.Fatal(err)
	}
	var head int64
	if err := db.QueryRow(`SELECT max(seq) FROM audit_entries`).Scan(&head); err != nil || cp.Size != head {
		t.Fatalf("state file at %d, head %d (%v)", cp.Size, head, err)
	}
}
