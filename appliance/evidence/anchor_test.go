package evidence

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"firewalliq/audit"
	"firewalliq/vault"
	"firewalliq/vault/vaulttest"
)

// fakeLedger reports a growing log; proofs are placeholders (the vault
// tests check real RFC 6962 proofs).
type fakeLedger struct {
	mu   sync.Mutex
	size int64
}

func (f *fakeLedger) grow(n int64) { f.mu.Lock(); f.size += n; f.mu.Unlock() }

func (f *fakeLedger) LatestCheckpoint(ctx context.Context) (int64, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.size, []byte(fmt.Sprintf("firewalliq.audit\n%d\nroot\n", f.size)), nil
}

func (f *fakeLedger) Entries(ctx context.Context, from, to int64) ([]byte, error) {
	return []byte(fmt.Sprintf("{\"from\":%d,\"to\":%d}\n", from, to)), nil
}

func (f *fakeLedger) ConsistencyProof(ctx context.Context, oldSize, newSize int64) ([]byte, error) {
	return []byte(fmt.Sprintf(`{"old_size":%d,"new_size":%d}`, oldSize, newSize)), nil
}

func TestAnchorDaily(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	cfg := DefaultConfig()
	cfg.Backend, cfg.LocalDir = "local", t.TempDir()
	led := &fakeLedger{size: 10}
	now := time.Date(2026, 11, 27, 0, 5, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	var anchored []vault.AnchorResult
	s, err := Open(ctx, Options{DB: db, Audit: audit.New(audit.Options{}), Config: cfg, DataDir: t.TempDir(), Ledger: led, Now: clock,
		OnAnchor: func(_ context.Context, a vault.AnchorResult) { mu.Lock(); anchored = append(anchored, a); mu.Unlock() },
		Vault:    vault.Config{Sleep: fastSleep, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(rctx) }()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(anchored) }
	wait := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for count() < n || s.Status().Spool.Pending > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %d anchors: have %d, status %+v", n, count(), s.Status())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait(1)
	time.Sleep(100 * time.Millisecond) // several loop turns on the same day
	if count() != 1 {
		t.Fatalf("%d anchors on one day", count())
	}
	led.grow(5)
	mu.Lock()
	now = now.Add(24 * time.Hour)
	mu.Unlock()
	wait(2)
	cancel()
	<-done
	mu.Lock()
	a, b := anchored[0], anchored[1]
	mu.Unlock()
	if a.Day != "2026-11-27" || a.FromSize != 0 || a.ToSize != 10 || b.Day != "2026-11-28" || b.FromSize != 10 || b.ToSize != 15 {
		t.Fatalf("anchors %+v %+v", a, b)
	}
	day, size, err := s.LastAnchor(ctx)
	if err != nil || day != "2026-11-28" || size != 15 {
		t.Fatalf("LastAnchor = %s %d %v", day, size, err)
	}
	var anchors, uploads int
	for _, r := range auditRows(t, db) {
		switch r.Action {
		case string(audit.ActEvidenceAnchor):
			anchors++
			if cp, _ := r.Details["checkpoint"].(string); !strings.HasPrefix(cp, "firewalliq.audit\n") {
				t.Errorf("anchor entry lacks the checkpoint: %+v", r.Details)
			}
		case string(audit.ActEvidenceUpload):
			uploads++
			if r.Tenant != "" || r.Details["worm"] != false {
				t.Errorf("anchor upload row %+v", r)
			}
		}
	}
	if anchors != 2 || uploads != 5 {
		t.Fatalf("%d anchor and %d upload entries, want 2 and 5", anchors, uploads)
	}
	if _, err := s.AnchorNow(ctx); !errors.Is(err, vault.ErrNothingToAnchor) {
		t.Fatalf("AnchorNow without growth: %v", err)
	}
}

// TestAnchorRealAuditLog anchors the real audit log twice and checks the
// stored consistency proof with the audit package's offline verifier.
func TestAnchorRealAuditLog(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	log := audit.New(audit.Options{Signer: priv})
	appendN := func(n int) {
		for i := 0; i < n; i++ {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := log.Append(ctx, tx, audit.Entry{Tenant: "t1", ActorID: "u1", Action: audit.ActScanStart, Object: fmt.Sprintf("scan-%d", i)}); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg := DefaultConfig()
	cfg.Backend, cfg.LocalDir = "local", t.TempDir()
	var hooked int // the SIEM outbox's Append stands here
	hook := func(ctx context.Context, tx *sql.Tx, e audit.Entry) (audit.Entry, error) {
		hooked++
		return log.Append(ctx, tx, e)
	}
	s, err := Open(ctx, Options{DB: db, Audit: log, Append: hook, Config: cfg, DataDir: t.TempDir(), Ledger: AuditLedger{DB: db, Log: log}})
	if err != nil {
		t.Fatal(err)
	}
	appendN(4)
	a1, err := s.AnchorNow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a1.FromSize != 0 || a1.ToSize != 4 {
		t.Fatalf("first anchor %+v", a1)
	}
	if err := s.Vault().Flush(ctx); err != nil {
		t.Fatal(err)
	}
	appendN(3)
	a2, err := s.AnchorNow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 4 entries + 2 evidence.spool entries + anchor entry + 2 upload
	// entries + 3 = 12.
	if a2.FromSize != 4 || a2.ToSize != 12 || len(a2.Keys) != 3 {
		t.Fatalf("second anchor %+v", a2)
	}
	if err := s.Vault().Flush(ctx); err != nil {
		t.Fatal(err)
	}
	m, _ := filepath.Glob(filepath.Join(cfg.LocalDir, filepath.FromSlash(a2.Keys[1])+".v", "*"))
	if len(m) != 1 {
		t.Fatalf("consistency object versions: %v", m)
	}
	b, err := os.ReadFile(m[0])
	if err != nil {
		t.Fatal(err)
	}
	var p audit.ConsistencyProof
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	cp, err := audit.VerifyConsistency(p, pub)
	if err != nil {
		t.Fatalf("anchored consistency proof does not verify: %v", err)
	}
	if hooked != 2+1+2+3+1+3 { // 2 spooled, anchor, 2 uploads, 3 spooled, anchor, 3 uploads
		t.Errorf("Append hook called %d times, want 12", hooked)
	}
	if cp.Size != 12 || p.OldSize != 4 || cp.Note != string(a2.Checkpoint) {
		t.Fatalf("proof covers %d..%d", p.OldSize, cp.Size)
	}
	m, _ = filepath.Glob(filepath.Join(cfg.LocalDir, filepath.FromSlash(a2.Keys[0])+".v", "*"))
	lines, _ := os.ReadFile(m[0])
	if n := strings.Count(string(lines), "\n"); n != 8 {
		t.Fatalf("entries object has %d lines, want 8", n)
	}
}

// TestAnchoredCheckpointsMinIO anchors a real audit log twice into the real
// MinIO (compliance-locked bucket) and into the local backend, reads the
// anchored checkpoints back and proves the log extends them; after the
// keyless rewrite of security finding 1 (every entry re-appended with one
// edited, by a Log without the key) the same check fails.
func TestAnchoredCheckpointsMinIO(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		cfg  func(t *testing.T) Config
	}{
		{"minio", func(t *testing.T) Config {
			bucket, err := srv.MakeBucket(ctx, vaulttest.Compliance)
			if err != nil {
				t.Fatal(err)
			}
			return minioConfig(t, bucket)
		}},
		{"local", func(t *testing.T) Config {
			c := DefaultConfig()
			c.Backend, c.LocalDir = "local", t.TempDir()
			return c
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openDB(t)
			pub, priv, err := ed25519.GenerateKey(nil)
			if err != nil {
				t.Fatal(err)
			}
			log := audit.New(audit.Options{Signer: priv})
			add := func(n int) {
				for i := range n {
					tx, err := db.BeginTx(ctx, nil)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := log.Append(ctx, tx, audit.Entry{Tenant: "t1", ActorID: "u1", Action: audit.ActScanStart, Object: fmt.Sprintf("scan-%d", i)}); err != nil {
						t.Fatal(err)
					}
					if err := tx.Commit(); err != nil {
						t.Fatal(err)
					}
				}
			}
			s, err := Open(ctx, Options{DB: db, Audit: log, Config: tc.cfg(t), DataDir: t.TempDir(), Ledger: AuditLedger{DB: db, Log: log}})
			if err != nil {
				t.Fatal(err)
			}
			add(4)
			if _, err := s.AnchorNow(ctx); err != nil {
				t.Fatal(err)
			}
			add(3)
			if _, err := s.AnchorNow(ctx); err != nil {
				t.Fatal(err)
			}
			if err := s.Vault().Flush(ctx); err != nil {
				t.Fatal(err)
			}
			anchors, err := s.AnchoredCheckpoints(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(anchors) != 2 {
				t.Fatalf("%d anchors read back, want 2: %+v", len(anchors), anchors)
			}
			notes := [][]byte{anchors[0].Note, anchors[1].Note}
			if n, p, err := audit.CheckWitnesses(ctx, db, pub, "", notes); err != nil || p != nil || n != 2 {
				t.Fatalf("intact log against its anchors: %d %v %v", n, p, err)
			}

			// The keyless rewrite, with the public code only.
			es, err := audit.ReadEntries(ctx, db, 1, 1<<40)
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{`DROP TRIGGER audit_entries_no_delete`, `DROP TRIGGER audit_checkpoints_no_delete`,
				`DELETE FROM audit_entries`, `DELETE FROM audit_checkpoints`} {
				if _, err := db.Exec(q); err != nil {
					t.Fatal(err)
				}
			}
			i := 0
			forger := audit.New(audit.Options{Now: func() time.Time { return es[i].Time }})
			for i = range es {
				e := es[i]
				if e.Seq == 2 {
					e.Object = "scan-forged"
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
			_, p, err := audit.CheckWitnesses(ctx, db, pub, "", notes)
			if err != nil || p == nil || p.Kind != audit.KindRollback {
				t.Fatalf("rewritten log against its anchors: %v %v", p, err)
			}
			t.Log(p)
		})
	}
}
