package audit

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Benchmarks run on real SQLite files in WAL mode with synchronous=FULL:
// every commit is fsync'd. Record results in docs/benchmarks.md with the
// command that produced them, e.g.
//
//	go test ./audit -run '^$' -bench . -benchtime 3s

func benchEntry(i int) Entry {
	return Entry{Tenant: "t-1", ActorID: "u-1", ActorName: "alice", ActorIP: "192.0.2.7", UserAgent: "Mozilla/5.0 (X11; Linux x86_64)",
		Action: ActScanApprove, Object: fmt.Sprintf("scan:s-%d", i), Details: []byte(`{"request_hash":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}`)}
}

func benchAppend(b *testing.B, perTx int) {
	ctx := context.Background()
	db, _ := newDB(b)
	l := New(Options{Signer: testKey(), CheckpointEvery: 1000})
	b.ResetTimer()
	n := 0
	for b.Loop() {
		err := inTx(ctx, db, func(tx *sql.Tx) error {
			for range perTx {
				if _, err := l.Append(ctx, tx, benchEntry(n)); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkAppendSingle: one entry per fsync'd transaction.
func BenchmarkAppendSingle(b *testing.B) { benchAppend(b, 1) }

// BenchmarkAppendBatch100: 100 entries per fsync'd transaction.
func BenchmarkAppendBatch100(b *testing.B) { benchAppend(b, 100) }

// bigLog builds (once per process) a log of n entries in a file under the
// system temp dir, in batches of 1000, with a checkpoint every 1000.
var bigLogs sync.Map

func bigLog(b *testing.B, n int) *sql.DB {
	b.Helper()
	v, _ := bigLogs.LoadOrStore(n, &sync.Once{})
	path := filepath.Join(os.TempDir(), fmt.Sprintf("fiq-audit-bench-%d.db", n))
	v.(*sync.Once).Do(func() {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(path + suffix)
		}
		db, err := sql.Open("sqlite", dsn(path, false))
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(Schema); err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		l := New(Options{Signer: testKey(), CheckpointEvery: 1000})
		start := time.Now()
		for i := 0; i < n; i += 1000 {
			err := inTx(ctx, db, func(tx *sql.Tx) error {
				for j := i; j < min(i+1000, n); j++ {
					if _, err := l.Append(ctx, tx, benchEntry(j)); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		if _, err := db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			b.Fatal(err)
		}
		b.Logf("built %d-entry log in %v", n, time.Since(start))
	})
	db, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

func benchVerify(b *testing.B, n int) {
	db := bigLog(b, n)
	ctx := context.Background()
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		rep, err := Verify(ctx, db, VerifyOptions{Public: testPub()})
		if err != nil || !rep.Intact || rep.Size != int64(n) {
			b.Fatalf("%+v %v", rep, err)
		}
	}
	total := float64(n) * float64(b.N)
	b.ReportMetric(total/b.Elapsed().Seconds(), "entries/s")
	// On a shared machine wall time depends on the neighbours; CPU time
	// per entry (both goroutines together) does much less.
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/total, "cpu-ns/entry")
}

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkVerify100k / 1M: full verification from the file (read every
// row, recompute chain and tree, check every checkpoint signature).
func BenchmarkVerify100k(b *testing.B) { benchVerify(b, 100_000) }
func BenchmarkVerify1M(b *testing.B)   { benchVerify(b, 1_000_000) }

// BenchmarkProveInclusion1M / BenchmarkProveConsistency1M: building a proof
// from the stored tree hashes of a 10^6-entry log; the Check variants time
// the offline verification of one.
func BenchmarkProveInclusion1M(b *testing.B) {
	db := bigLog(b, 1_000_000)
	ctx := context.Background()
	seq := int64(1)
	for b.Loop() {
		if _, err := ProveInclusion(ctx, db, seq); err != nil {
			b.Fatal(err)
		}
		seq = seq*7919%1_000_000 + 1
	}
}

func BenchmarkProveConsistency1M(b *testing.B) {
	db := bigLog(b, 1_000_000)
	ctx := context.Background()
	old := int64(1)
	for b.Loop() {
		if _, err := ProveConsistency(ctx, db, old); err != nil {
			b.Fatal(err)
		}
		old = old*7919%999_999 + 1
	}
}

func BenchmarkVerifyInclusion1M(b *testing.B) {
	db := bigLog(b, 1_000_000)
	p, err := ProveInclusion(context.Background(), db, 123_457)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := VerifyInclusion(p, testPub()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyConsistency1M(b *testing.B) {
	db := bigLog(b, 1_000_000)
	p, err := ProveConsistency(context.Background(), db, 123_457)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := VerifyConsistency(p, testPub()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBaselineInsertSingle is the floor the audit append sits on: a
// plain INSERT of a row of the same shape, one fsync'd transaction each, no
// hashing. Compare it with BenchmarkAppendSingle in the same run.
func BenchmarkBaselineInsertSingle(b *testing.B) {
	ctx := context.Background()
	db, _ := newDB(b)
	e := benchEntry(0)
	e.Seq, e.PrevHash = 1, make([]byte, HashSize)
	enc := Canonical(e)
	n := 0
	for b.Loop() {
		n++
		err := inTx(ctx, db, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, insertEntrySQL, n, enc, make([]byte, 32), make([]byte, 64))
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkStartupVerify1M is what start-up verification costs on a 10^6
// entry log whose last verified point is 1,000 entries (one checkpoint
// interval) behind the head: authenticate the stored tree edge against the
// signed checkpoint, then recompute the last 1,000 entries.
func BenchmarkStartupVerify1M(b *testing.B) {
	db := bigLog(b, 1_000_000)
	ctx := context.Background()
	for b.Loop() {
		rep, err := verifyFrom(ctx, db, VerifyOptions{Public: testPub()}, 999_000)
		if err != nil || !rep.Intact || rep.Entries != 1000 {
			b.Fatalf("%+v %v", rep, err)
		}
	}
}
