package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// rewrite recomputes hash and prev_hash of entries from..to after an edit,
// and with tree also their Merkle hashes, as a thorough attacker would.
func rewrite(t *testing.T, db *sql.DB, from, to int64, tree bool) {
	t.Helper()
	ctx := context.Background()
	es, err := ReadEntries(ctx, db, from, to)
	if err != nil {
		t.Fatal(err)
	}
	prev, err := ReadEntry(ctx, db, from-1)
	if err != nil {
		t.Fatal(err)
	}
	fr, err := loadFrontier(ctx, db, from-1, prev.Hash)
	if err != nil {
		t.Fatal(err)
	}
	head := prev.Hash
	for _, e := range es {
		e.PrevHash = head
		e.Hash = EntryHash(e)
		head = e.Hash
		stored, err := fr.add(e.Hash)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`UPDATE audit_entries SET entry = ?, hash = ? WHERE seq = ?`, Canonical(e), e.Hash, e.Seq); err != nil {
			t.Fatal(err)
		}
		if tree {
			if _, err := db.Exec(`UPDATE audit_entries SET tree = ? WHERE seq = ?`, stored, e.Seq); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// editEntry changes fields of a stored entry and writes its encoding back,
// leaving hash, chain and tree as they were.
func editEntry(t *testing.T, db *sql.DB, seq int64, edit func(e *Entry)) {
	t.Helper()
	e, err := ReadEntry(context.Background(), db, seq)
	if err != nil {
		t.Fatal(err)
	}
	edit(&e)
	if _, err := db.Exec(`UPDATE audit_entries SET entry = ? WHERE seq = ?`, Canonical(e), seq); err != nil {
		t.Fatal(err)
	}
}

func mustExec(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// TestTamperSuite copies a real audit database, edits the copy as an
// attacker with file access would (triggers dropped first), and checks that
// verification names the right seq. The log has 20 entries and a signed
// checkpoint every 4 (sizes 4, 8, 12, 16, 20).
func TestTamperSuite(t *testing.T) {
	ctx := context.Background()
	db, path := newDB(t)
	l := newTestLog(4)
	appendN(t, l, db, 12)
	older := copyDB(t, db, path) // a copy of the database at 12 entries
	appendN(t, l, db, 8)
	kept, err := LatestCheckpoint(ctx, db, testPub()) // an auditor keeps the size-20 note
	if err != nil || kept.Size != 20 {
		t.Fatalf("%+v %v", kept, err)
	}

	tests := []struct {
		name    string
		older   bool // start from the older copy instead
		tamper  func(t *testing.T, db *sql.DB)
		kept    bool // verify with the kept checkpoint
		kind    string
		seq     int64
		seqEnd  int64
		reaches int64 // for ranges: the edited seq must be inside
	}{
		{name: "edit a field", kind: KindHash, seq: 7, tamper: func(t *testing.T, db *sql.DB) {
			editEntry(t, db, 7, func(e *Entry) { e.ActorName = "mallory" })
		}},
		{name: "edit details", kind: KindHash, seq: 3, tamper: func(t *testing.T, db *sql.DB) {
			editEntry(t, db, 3, func(e *Entry) { e.Details = []byte(`{"i":99}`) })
		}},
		{name: "delete a middle row", kind: KindMissing, seq: 7, tamper: func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `DELETE FROM audit_entries WHERE seq = 7`)
		}},
		{name: "delete the last rows", kind: KindTruncated, seq: 18, seqEnd: 20, tamper: func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `DELETE FROM audit_entries WHERE seq >= 18`)
		}},
		{name: "delete the last rows and their checkpoint", kept: true, kind: KindRollback, seq: 17, seqEnd: 20, tamper: func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `DELETE FROM audit_entries WHERE seq >= 17`, `DELETE FROM audit_checkpoints WHERE size > 16`)
		}},
		{name: "swap two rows", kind: KindChain, seq: 5, tamper: func(t *testing.T, db *sql.DB) {
			mustExec(t, db,
				`UPDATE audit_entries SET seq = 1005 WHERE seq = 5`,
				`UPDATE audit_entries SET seq = 5 WHERE seq = 6`,
				`UPDATE audit_entries SET seq = 6 WHERE seq = 1005`)
		}},
		{name: "insert a forged row", kind: KindHash, seq: 9, tamper: func(t *testing.T, db *sql.DB) {
			// Make room at 9, then insert a well-chained forged entry
			// there; its tree column is the old entry 9's.
			mustExec(t, db,
				`UPDATE audit_entries SET seq = seq + 1000 WHERE seq >= 9`,
				`UPDATE audit_entries SET seq = seq - 999 WHERE seq >= 1000`)
			prev, err := ReadEntry(ctx, db, 8)
			if err != nil {
				t.Fatal(err)
			}
			f := Entry{Seq: 9, Time: prev.Time, ActorID: "u-1", ActorName: "alice", Action: ActScanApprove, Object: "scan:forged", Details: []byte(`{}`), PrevHash: prev.Hash}
			f.Hash = EntryHash(f)
			if _, err := db.Exec(`INSERT INTO audit_entries SELECT 9, ?, ?, tree FROM audit_entries WHERE seq = 10`, Canonical(f), f.Hash); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "insert a forged row at the tail with a bad hash", kind: KindHash, seq: 21, tamper: func(t *testing.T, db *sql.DB) {
			prev, err := ReadEntry(ctx, db, 20)
			if err != nil {
				t.Fatal(err)
			}
			f := prev
			f.Seq, f.ActorName, f.PrevHash = 21, "mallory", prev.Hash
			if _, err := db.Exec(`INSERT INTO audit_entries SELECT 21, ?, hash, tree FROM audit_entries WHERE seq = 20`, Canonical(f)); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "edit a row and recompute the chain after it", kind: KindHash, seq: 10, tamper: func(t *testing.T, db *sql.DB) {
			editEntry(t, db, 10, func(e *Entry) { e.Object = "scope:other" })
			rewrite(t, db, 10, 20, false)
		}},
		{name: "edit a row and recompute chain and tree after it", kind: KindRoot, seq: 9, seqEnd: 12, reaches: 10, tamper: func(t *testing.T, db *sql.DB) {
			editEntry(t, db, 10, func(e *Entry) { e.Object = "scope:other" })
			rewrite(t, db, 10, 20, true)
		}},
		{name: "rewrite everything and drop the checkpoints", kept: true, kind: KindVanished, seq: 1, seqEnd: 20, reaches: 10, tamper: func(t *testing.T, db *sql.DB) {
			editEntry(t, db, 10, func(e *Entry) { e.Object = "scope:other" })
			mustExec(t, db, `DELETE FROM audit_checkpoints`)
			rewrite(t, db, 10, 20, true)
		}},
		{name: "replace the database with an older copy", older: true, kept: true, kind: KindRollback, seq: 13, seqEnd: 20, tamper: func(*testing.T, *sql.DB) {}},
		{name: "edit the head's hash column", kind: KindHash, seq: 20, tamper: func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE audit_entries SET hash = zeroblob(32) WHERE seq = 20`)
		}},
		{name: "flip a bit in a stored checkpoint", kind: KindCheckpoint, seq: 8, tamper: func(t *testing.T, db *sql.DB) {
			var note string
			if err := db.QueryRow(`SELECT note FROM audit_checkpoints WHERE size = 8`).Scan(&note); err != nil {
				t.Fatal(err)
			}
			b := []byte(note)
			b[len(b)-10] ^= 0x01 // inside the base64 signature
			if _, err := db.Exec(`UPDATE audit_checkpoints SET note = ? WHERE size = 8`, string(b)); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "change a checkpoint's size column", kind: KindCheckpoint, seq: 11, tamper: func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE audit_checkpoints SET size = 11 WHERE size = 12`)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := path
			if tc.older {
				src = older
			}
			cdb := openDB(t, copyDB(t, db, src))
			dropTriggers(t, cdb)
			tc.tamper(t, cdb)
			opts := VerifyOptions{Public: testPub()}
			if tc.kept {
				opts.Kept = [][]byte{[]byte(kept.Note)}
			}
			rep, err := Verify(ctx, cdb, opts)
			if err != nil {
				t.Fatal(err)
			}
			p := rep.Problem
			if rep.Intact || p == nil {
				t.Fatalf("tampering not detected: %+v", rep)
			}
			if p.Kind != tc.kind || p.Seq != tc.seq || p.SeqEnd != tc.seqEnd {
				t.Fatalf("problem %+v, want kind %s at seq %d..%d", p, tc.kind, tc.seq, tc.seqEnd)
			}
			if tc.reaches != 0 && (tc.reaches < p.Seq || tc.reaches > p.SeqEnd) {
				t.Fatalf("edited seq %d is outside the reported range %d..%d", tc.reaches, p.Seq, p.SeqEnd)
			}
			t.Logf("%s", p.Error())
		})
	}

	// The untouched original still verifies, also against the kept note.
	rep, err := Verify(ctx, db, VerifyOptions{Public: testPub(), Kept: [][]byte{[]byte(kept.Note)}})
	if err != nil || !rep.Intact || rep.Kept != 1 {
		t.Fatalf("original: %+v %v", rep, err)
	}
}

// TestStartupAlarm: a tampered log raises the alarm once at start-up, work
// is refused until an admin acknowledges with step-up, and the
// acknowledgement opens a new segment that later start-ups verify from.
func TestStartupAlarm(t *testing.T) {
	ctx := context.Background()
	db, path := newDB(t)
	l := newTestLog(4)
	appendN(t, l, db, 10)
	res, err := l.Startup(ctx, db)
	if err != nil || !res.Report.Intact || res.Alarm != nil {
		t.Fatalf("clean start-up: %+v %v", res, err)
	}
	appendN(t, l, db, 5) // 15 entries; start-up verified up to 10

	// The attacker edits entry 12 (after the verified point) in a copy.
	cdb := openDB(t, copyDB(t, db, path))
	dropTriggers(t, cdb)
	editEntry(t, cdb, 12, func(e *Entry) { e.ActorIP = "203.0.113.9" })
	// Put the triggers back, as the running appliance would have them.
	if _, err := cdb.Exec(Schema[strings.Index(Schema, "CREATE TRIGGER"):]); err != nil {
		t.Fatal(err)
	}
	l2 := newTestLog(4)
	res, err = l2.Startup(ctx, cdb)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Raised || res.Alarm == nil || res.Alarm.BadSeq != 12 || res.Report.From != 10 {
		t.Fatalf("start-up on tampered log: %+v", res)
	}
	if err := CheckNoAlarm(ctx, cdb); !errors.Is(err, ErrTamperAlarm) {
		t.Fatalf("CheckNoAlarm = %v, want ErrTamperAlarm", err)
	}
	tamper, err := ReadEntry(ctx, cdb, res.Alarm.Seq)
	if err != nil || tamper.Action != ActAuditTamper {
		t.Fatalf("tamper entry %+v %v", tamper, err)
	}
	// A second start-up does not raise again.
	res, err = l2.Startup(ctx, cdb)
	if err != nil || res.Raised || res.Alarm == nil {
		t.Fatalf("second start-up: %+v %v", res, err)
	}
	if _, _, err := l2.Acknowledge(ctx, cdb, Acknowledgement{ActorID: "u-1", ActorName: "alice"}); !errors.Is(err, ErrStepUpRequired) {
		t.Fatalf("ack without step-up: %v", err)
	}
	ack, cp, err := l2.Acknowledge(ctx, cdb, Acknowledgement{ActorID: "u-1", ActorName: "alice", StepUpVerified: true, Comment: "restored from backup"})
	if err != nil {
		t.Fatal(err)
	}
	if ack.Action != ActAuditTamperAck || cp.Size != ack.Seq {
		t.Fatalf("ack %+v checkpoint %+v", ack, cp)
	}
	if err := CheckNoAlarm(ctx, cdb); err != nil {
		t.Fatalf("after ack: %v", err)
	}
	if _, _, err := l2.Acknowledge(ctx, cdb, Acknowledgement{StepUpVerified: true}); !errors.Is(err, ErrNoAlarm) {
		t.Fatalf("second ack: %v", err)
	}
	appendN(t, l2, cdb, 3)
	res, err = l2.Startup(ctx, cdb)
	if err != nil || !res.Report.Intact || res.Raised || res.Alarm != nil || res.Report.From != ack.Seq {
		t.Fatalf("start-up after ack: %+v %v", res, err)
	}
	// The full verification still reports the break.
	rep, err := Verify(ctx, cdb, VerifyOptions{Public: testPub()})
	if err != nil || rep.Intact || rep.Problem.Seq != 12 {
		t.Fatalf("full verify after ack: %+v %v", rep, err)
	}
}

// TestVerifyAcrossChunks covers logs longer than one reader chunk: the two
// readers' chunks must be consumed in order, and an edit, or a whole chunk
// deleted, is reported at the right seq.
func TestVerifyAcrossChunks(t *testing.T) {
	ctx := context.Background()
	db, path := newDB(t)
	l := newTestLog(1000)
	n := 3*chunkSeqs + 100
	err := inTx(ctx, db, func(tx *sql.Tx) error {
		for i := range n {
			if _, err := l.Append(ctx, tx, Entry{ActorID: "u-1", Action: ActScanStart, Object: fmt.Sprintf("scan:%d", i)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(ctx, db, VerifyOptions{Public: testPub()})
	if err != nil || !rep.Intact || rep.Size != int64(n) || rep.Entries != int64(n) {
		t.Fatalf("%+v %v", rep, err)
	}
	tests := []struct {
		name   string
		tamper func(t *testing.T, db *sql.DB)
		kind   string
		seq    int64
	}{
		{"edit in the third chunk", func(t *testing.T, db *sql.DB) {
			editEntry(t, db, 2*chunkSeqs+17, func(e *Entry) { e.Object = "scan:x" })
		}, KindHash, 2*chunkSeqs + 17},
		{"delete a whole chunk", func(t *testing.T, db *sql.DB) {
			mustExec(t, db, fmt.Sprintf(`DELETE FROM audit_entries WHERE seq > %d AND seq <= %d`, chunkSeqs, 2*chunkSeqs))
		}, KindMissing, chunkSeqs + 1},
		{"delete the last row of a chunk", func(t *testing.T, db *sql.DB) {
			mustExec(t, db, fmt.Sprintf(`DELETE FROM audit_entries WHERE seq = %d`, 2*chunkSeqs))
		}, KindMissing, 2 * chunkSeqs},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cdb := openDB(t, copyDB(t, db, path))
			dropTriggers(t, cdb)
			tc.tamper(t, cdb)
			rep, err := Verify(ctx, cdb, VerifyOptions{Public: testPub()})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Intact || rep.Problem.Kind != tc.kind || rep.Problem.Seq != tc.seq {
				t.Fatalf("%+v, want %s at %d", rep.Problem, tc.kind, tc.seq)
			}
		})
	}
}

// TestForgedAckRowLeavesAlarmRaised: someone with write access to the
// database but not the key inserts an 'ack' row into audit_alarms (pointing
// at no entry, or at an unrelated one) to silence a raised alarm; the alarm
// stays raised, because an acknowledgement counts only when the log records
// it (an audit.tamper.ack entry naming the alarm) and a signed checkpoint
// covers it. TestStartupAlarm covers the real acknowledgement.
func TestForgedAckRowLeavesAlarmRaised(t *testing.T) {
	for _, tc := range []struct {
		name string
		seq  func(alarm Alarm) int64
	}{
		{"no entry at its seq", func(Alarm) int64 { return 1000 }},
		{"an unrelated entry", func(al Alarm) int64 { return al.Seq + 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db, _ := newDB(t)
			l := newTestLog(0)
			appendN(t, l, db, 5)
			if _, err := l.Startup(ctx, db); err != nil {
				t.Fatal(err)
			}
			if _, _, err := l.RaiseAlarm(ctx, db, Problem{Seq: 3, Kind: KindHash, Reason: "test break"}, 0); err != nil {
				t.Fatal(err)
			}
			al, raised, err := CurrentAlarm(ctx, db)
			if err != nil || !raised {
				t.Fatalf("alarm: %v %v", raised, err)
			}
			appendN(t, l, db, 1) // an ordinary entry after the alarm
			if _, err := db.Exec(`INSERT INTO audit_alarms (seq, kind, bad_seq, reason) VALUES (?, 'ack', ?, 'forged')`, tc.seq(al), al.BadSeq); err != nil {
				t.Fatal(err)
			}
			if err := CheckNoAlarm(ctx, db); !errors.Is(err, ErrTamperAlarm) {
				t.Fatalf("CheckNoAlarm after a forged ack row = %v, want ErrTamperAlarm", err)
			}
		})
	}
}
