package audit

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// testKey is a fixed audit key, so golden files are stable.
func testKey() ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	return ed25519.NewKeyFromSeed(seed)
}

func testPub() ed25519.PublicKey { return testKey().Public().(ed25519.PublicKey) }

// fakeClock ticks one millisecond per reading from a fixed start.
func fakeClock() func() time.Time {
	t := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	return func() time.Time { t = t.Add(time.Millisecond); return t }
}

// dsn mirrors appliance/store.DSN (which audit must not import): real WAL,
// fsync on every commit.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	if !readOnly {
		q.Add("_pragma", "journal_mode(WAL)")
	}
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_txlock", "immediate")
	if readOnly {
		q.Set("mode", "ro")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// newDB creates a real SQLite file with Schema applied.
func newDB(t testing.TB) (*sql.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.db")
	db := openDB(t, path)
	if _, err := db.Exec(Schema); err != nil {
		t.Fatal(err)
	}
	return db, path
}

func openDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newTestLog(every int64) *Log {
	return New(Options{Now: fakeClock(), Signer: testKey(), CheckpointEvery: every})
}

// appendN appends n entries, one transaction each.
func appendN(t testing.TB, l *Log, db *sql.DB, n int) []Entry {
	t.Helper()
	ctx := context.Background()
	var out []Entry
	for i := range n {
		err := inTx(ctx, db, func(tx *sql.Tx) error {
			e, err := l.Append(ctx, tx, Entry{
				Tenant: "t-1", ActorID: "u-1", ActorName: "alice", ActorIP: "192.0.2.7", UserAgent: "test",
				Action: ActScopeSign, Object: fmt.Sprintf("scope:%d", i), Details: []byte(fmt.Sprintf(`{"i": %d, "note": "<a&b>"}`, i)),
			})
			out = append(out, e)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// copyDB checkpoints the WAL into the main file and copies it, as an
// attacker with file access would before editing it.
func copyDB(t testing.TB, db *sql.DB, src string) string {
	t.Helper()
	if _, err := db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "copy.db")
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// dropTriggers removes the append-only triggers, as an attacker would.
func dropTriggers(t testing.TB, db *sql.DB) {
	t.Helper()
	for _, tb := range []string{"audit_entries", "audit_checkpoints", "audit_alarms", "audit_verified"} {
		for _, op := range []string{"update", "delete"} {
			if _, err := db.Exec(fmt.Sprintf("DROP TRIGGER %s_no_%s", tb, op)); err != nil {
				t.Fatal(err)
			}
		}
	}
}
