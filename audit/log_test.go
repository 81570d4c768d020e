package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/tlog"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// TestCanonicalGolden pins the canonical encoding and hash of a fixed entry:
// changing either breaks every stored log, so it must be deliberate.
func TestCanonicalGolden(t *testing.T) {
	e := Entry{
		Seq: 42, Time: time.Date(2026, 11, 27, 12, 0, 0, 123456000, time.UTC),
		Tenant: "t-1", ActorID: "u-1", ActorName: "alice", ActorIP: "192.0.2.7", UserAgent: "Mozilla/5.0",
		Action: ActScanApprove, Object: "scan:s-9", Details: json.RawMessage(`{"hash":"ab12"}`),
		PrevHash: make([]byte, HashSize),
	}
	enc := Canonical(e)
	leaf := leafHash(EntryHash(e))
	got := fmt.Sprintf("canonical %s\nhash %s\nleaf %s\n", hex.EncodeToString(enc), hex.EncodeToString(EntryHash(e)), hex.EncodeToString(leaf[:]))
	golden := filepath.Join("testdata", "canonical.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("canonical encoding changed:\n got %s\nwant %s", got, want)
	}
	back, err := ParseCanonical(enc)
	if err != nil {
		t.Fatal(err)
	}
	if string(Canonical(back)) != string(enc) || string(back.Hash) != string(EntryHash(e)) {
		t.Fatal("ParseCanonical does not round-trip")
	}
}

func TestAppendAndVerify(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	l := newTestLog(8)
	es := appendN(t, l, db, 50)
	for i, e := range es {
		if e.Seq != int64(i+1) || len(e.Hash) != HashSize {
			t.Fatalf("entry %d: seq %d", i, e.Seq)
		}
		if i > 0 && string(e.PrevHash) != string(es[i-1].Hash) {
			t.Fatalf("entry %d not chained", e.Seq)
		}
		if string(EntryHash(e)) != string(e.Hash) {
			t.Fatalf("returned entry %d does not hash to its hash", e.Seq)
		}
	}
	stored, err := ReadEntry(ctx, db, 17)
	if err != nil {
		t.Fatal(err)
	}
	if string(EntryHash(stored)) != string(es[16].Hash) || !strings.Contains(string(stored.Details), `\u003ca\u0026b\u003e`) {
		t.Fatalf("stored entry differs from returned one: %+v", stored)
	}
	rep, err := Verify(ctx, db, VerifyOptions{Public: testPub()})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Intact || rep.Entries != 50 || rep.Size != 50 || rep.Checkpoints != 6 || rep.Latest != 48 {
		t.Fatalf("report %+v", rep)
	}
	cp, err := LatestCheckpoint(ctx, db, testPub())
	if err != nil || cp.Size != 48 {
		t.Fatalf("latest checkpoint %+v %v", cp, err)
	}
}

func TestAppendRejects(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	l := newTestLog(0)
	appendN(t, l, db, 3)
	tests := []struct {
		name string
		e    Entry
		want error
	}{
		{"unknown action", Entry{Action: "scope.frobnicate"}, ErrUnknownAction},
		{"details array", Entry{Action: ActScopeSign, Details: []byte(`[1]`)}, ErrBadDetails},
		{"details not JSON", Entry{Action: ActScopeSign, Details: []byte(`{"a":`)}, ErrBadDetails},
		{"details null", Entry{Action: ActScopeSign, Details: []byte(`null`)}, ErrBadDetails},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := inTx(ctx, db, func(tx *sql.Tx) error { _, err := l.Append(ctx, tx, tc.e); return err })
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			var n int
			if err := db.QueryRow(`SELECT count(*) FROM audit_entries`).Scan(&n); err != nil || n != 3 {
				t.Fatalf("entries %d %v: a refused append changed the log", n, err)
			}
		})
	}
}

// TestRollbackKeepsChain: an action that fails after its Append rolls the
// entry back, and the next entry still chains to the last committed one.
func TestRollbackKeepsChain(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	l := newTestLog(2)
	appendN(t, l, db, 3)
	boom := errors.New("action failed")
	err := inTx(ctx, db, func(tx *sql.Tx) error {
		if _, err := l.Append(ctx, tx, Entry{Action: ActScanStart}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	es := appendN(t, l, db, 2)
	if es[0].Seq != 4 {
		t.Fatalf("seq after rollback %d, want 4", es[0].Seq)
	}
	rep, err := Verify(ctx, db, VerifyOptions{Public: testPub()})
	if err != nil || !rep.Intact {
		t.Fatalf("%+v %v", rep, err)
	}
	// A second Log (another process) appending to the same file reloads
	// the tree edge instead of trusting a stale cache.
	appendN(t, newTestLog(2), db, 3)
	appendN(t, l, db, 3)
	rep, err = Verify(ctx, db, VerifyOptions{Public: testPub()})
	if err != nil || !rep.Intact || rep.Size != 11 {
		t.Fatalf("%+v %v", rep, err)
	}
}

// TestTriggersAbort tries UPDATE and DELETE on every audit table through
// the application's own connection.
func TestTriggersAbort(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	l := newTestLog(1)
	appendN(t, l, db, 3)
	if _, err := l.Startup(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := inTx(ctx, db, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO audit_alarms (seq, kind, bad_seq, reason) VALUES (99, 'raise', 1, 'x')`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, sql string }{
		{"update entry", `UPDATE audit_entries SET hash = zeroblob(32) WHERE seq = 2`},
		{"delete entry", `DELETE FROM audit_entries WHERE seq = 3`},
		{"delete all entries", `DELETE FROM audit_entries`},
		{"update checkpoint", `UPDATE audit_checkpoints SET note = 'x'`},
		{"delete checkpoint", `DELETE FROM audit_checkpoints`},
		{"update alarm", `UPDATE audit_alarms SET kind = 'ack'`},
		{"delete alarm", `DELETE FROM audit_alarms`},
		{"update verified", `UPDATE audit_verified SET size = 99`},
		{"delete verified", `DELETE FROM audit_verified`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := db.ExecContext(ctx, tc.sql)
			if err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Fatalf("err %v, want the append-only abort", err)
			}
		})
	}
	rep, err := Verify(ctx, db, VerifyOptions{Public: testPub()})
	if err != nil || !rep.Intact || rep.Size != 3 {
		t.Fatalf("%+v %v", rep, err)
	}
}

// TestCheckpointOnDemandAndInterval: Checkpoint signs the head once and is
// idempotent; RunCheckpoints signs after new entries only.
func TestCheckpointOnDemandAndInterval(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	l := newTestLog(0) // no count-based checkpoints
	appendN(t, l, db, 5)
	for i, want := range []bool{true, false} {
		var made bool
		var cp Checkpoint
		err := inTx(ctx, db, func(tx *sql.Tx) error {
			var err error
			cp, made, err = l.Checkpoint(ctx, tx)
			return err
		})
		if err != nil || made != want || cp.Size != 5 {
			t.Fatalf("call %d: %+v made=%v %v", i, cp, made, err)
		}
	}
	if _, _, err := New(Options{}).Checkpoint(ctx, nil); !errors.Is(err, ErrNoSigner) {
		t.Fatalf("no signer: %v", err)
	}
	appendN(t, l, db, 2)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { l.RunCheckpoints(rctx, db, 5*time.Millisecond, func(err error) { t.Error(err) }); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		cp, err := LatestCheckpoint(ctx, db, testPub())
		if err == nil && cp.Size == 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no interval checkpoint: %+v %v", cp, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(30 * time.Millisecond) // several idle ticks
	cancel()
	<-done
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM audit_checkpoints`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d checkpoints, want 2 (idle ticks must not sign) %v", n, err)
	}
}

// TestFrontierMatchesTlog: the frontier's allocation-free append computes
// exactly the stored hashes tlog.StoredHashes does, and the same roots.
func TestFrontierMatchesTlog(t *testing.T) {
	var stored []tlog.Hash
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	fr := newFrontier()
	for n := int64(0); n < 300; n++ {
		h := sha256.Sum256([]byte{byte(n), byte(n >> 8)})
		want, err := tlog.StoredHashes(n, h[:], r)
		if err != nil {
			t.Fatal(err)
		}
		// tlog.StoredHashes takes record data; ours takes the entry hash
		// as the record, so hash the same bytes the same way.
		got := fr.appendAdd(nil, h[:])
		var wantB []byte
		for _, x := range want {
			wantB = append(wantB, x[:]...)
		}
		if string(got) != string(wantB) {
			t.Fatalf("record %d: stored hashes differ", n)
		}
		stored = append(stored, want...)
		root, err := tlog.TreeHash(n+1, r)
		if err != nil {
			t.Fatal(err)
		}
		if fr.root() != root {
			t.Fatalf("size %d: root differs", n+1)
		}
	}
}

// TestAppendHostileText: text fields come from outside (a login form's user
// name, a User-Agent header) and may hold invalid UTF-8 or be huge. Append
// stores them in a form every reader decodes (invalid bytes become U+FFFD,
// fields are cut to the decoder's bound at a rune boundary), so one hostile
// request can neither go unaudited nor make the entry unreadable for the
// SIEM outbox, anchors, export and proofs (all built on ReadEntries).
func TestAppendHostileText(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	l := newTestLog(0)
	long := strings.Repeat("é", maxField) // 2*maxField bytes
	var stored Entry
	err := inTx(ctx, db, func(tx *sql.Tx) error {
		var err error
		stored, err = l.Append(ctx, tx, Entry{ActorName: "mallory\xff", UserAgent: long, ActorIP: "192.0.2.1", Object: "x\xc3",
			Action: ActAuthLoginFailed, Details: []byte("{\"reason\":\"bad \xfe\"}")})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	es, err := ReadEntries(ctx, db, 1, 1)
	if err != nil || len(es) != 1 {
		t.Fatalf("read back: %d entries, %v", len(es), err)
	}
	e := es[0]
	if e.ActorName != "mallory\uFFFD" || e.Object != "x\uFFFD" || string(e.Details) != `{"reason":"bad `+"\uFFFD"+`"}` {
		t.Fatalf("stored %q %q %s", e.ActorName, e.Object, e.Details)
	}
	if len(e.UserAgent) > maxField || !utf8.ValidString(e.UserAgent) || !strings.HasPrefix(long, e.UserAgent) || len(e.UserAgent) < maxField-1 {
		t.Fatalf("user agent cut to %d bytes", len(e.UserAgent))
	}
	if !bytes.Equal(e.Hash, stored.Hash) || e.UserAgent != stored.UserAgent {
		t.Fatal("Append returned another entry than it stored")
	}
	if err := inTx(ctx, db, func(tx *sql.Tx) error { _, _, err := l.Checkpoint(ctx, tx); return err }); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(ctx, db, VerifyOptions{Public: testPub()})
	if err != nil || !rep.Intact {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	// Details are built by code, not typed: too large is refused, not cut.
	err = inTx(ctx, db, func(tx *sql.Tx) error {
		_, err := l.Append(ctx, tx, Entry{Action: ActScopeSign, Details: []byte(`{"a":"` + strings.Repeat("x", maxField) + `"}`)})
		return err
	})
	if !errors.Is(err, ErrBadDetails) {
		t.Fatalf("oversized details: %v", err)
	}
}

// TestVocabularyDocumented keeps docs/audit.md's action table equal to the
// closed vocabulary.
func TestVocabularyDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/audit.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(doc), "## Action vocabulary")
	if !ok {
		t.Fatal("docs/audit.md has no '## Action vocabulary' section")
	}
	documented := map[string]bool{}
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, "| `") {
			name, _, _ := strings.Cut(strings.TrimPrefix(line, "| `"), "`")
			documented[name] = true
		}
	}
	for _, a := range Actions() {
		if !documented[string(a)] {
			t.Errorf("action %q is not documented", a)
		}
		delete(documented, string(a))
	}
	for name := range documented {
		t.Errorf("documented action %q is not in the vocabulary", name)
	}
}

// TestVerifyChecksOrigin: a checkpoint signed with the right key but for
// another log (another origin) is not a checkpoint of this log, whether it
// is stored in the database or kept outside.
func TestVerifyChecksOrigin(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	appendN(t, newTestLog(0), db, 3)
	other := New(Options{Now: fakeClock(), Signer: testKey(), Origin: "another.log"})
	var cp Checkpoint
	// Stored directly: Checkpoint would refuse to sign a log it cannot
	// verify (its entries have no checkpoint of this origin).
	if err := inTx(ctx, db, func(tx *sql.Tx) error {
		size, head, err := readHead(ctx, tx)
		if err != nil {
			return err
		}
		fr, err := loadFrontier(ctx, tx, size, head)
		if err != nil {
			return err
		}
		cp, err = other.storeCheckpoint(ctx, tx, fr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(ctx, db, VerifyOptions{Public: testPub(), Kept: [][]byte{[]byte(cp.Note)}}); !errors.Is(err, ErrBadCheckpoint) {
		t.Fatalf("kept checkpoint of another origin: %v, want ErrBadCheckpoint", err)
	}
	rep, err := Verify(ctx, db, VerifyOptions{Public: testPub()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Intact || rep.Problem == nil || rep.Problem.Kind != KindCheckpoint {
		t.Fatalf("stored checkpoint of another origin: %+v", rep)
	}
	// Told the other origin, the same checkpoint verifies.
	rep, err = Verify(ctx, db, VerifyOptions{Public: testPub(), Origin: "another.log"})
	if err != nil || !rep.Intact {
		t.Fatalf("with its own origin: %+v %v", rep, err)
	}
}
