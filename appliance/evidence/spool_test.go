package evidence

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"firewalliq/appliance/auth"
	"firewalliq/audit"
	"firewalliq/vault"
	"firewalliq/vault/vaulttest"
)

// tamperBackend is one evidence backend the tamper tests run against, with
// a way to list what it holds.
type tamperBackend struct {
	name       string
	config     func(t *testing.T) Config
	production bool
	// keys lists the object keys the backend holds.
	keys func(t *testing.T, c Config) []string
}

func tamperBackends() []tamperBackend {
	return []tamperBackend{
		{
			name: "local",
			config: func(t *testing.T) Config {
				c := DefaultConfig()
				c.Backend, c.LocalDir = "local", t.TempDir()
				return c
			},
			keys: func(t *testing.T, c Config) []string {
				var out []string
				err := filepath.WalkDir(c.LocalDir, func(p string, d fs.DirEntry, err error) error {
					if err != nil {
						return err
					}
					if d.IsDir() && strings.HasSuffix(p, ".v") {
						rel, _ := filepath.Rel(c.LocalDir, strings.TrimSuffix(p, ".v"))
						out = append(out, filepath.ToSlash(rel))
						return fs.SkipDir
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				return out
			},
		},
		{
			name:       "minio",
			production: true,
			config: func(t *testing.T) Config {
				bucket, err := srv.MakeBucket(context.Background(), vaulttest.Compliance)
				if err != nil {
					t.Fatal(err)
				}
				return minioConfig(t, bucket)
			},
			keys: func(t *testing.T, c Config) []string {
				cl, err := srv.Admin()
				if err != nil {
					t.Fatal(err)
				}
				var out []string
				for o := range cl.ListObjects(context.Background(), c.Bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
					if o.Err != nil {
						t.Fatal(o.Err)
					}
					out = append(out, o.Key)
				}
				return out
			},
		},
	}
}

// swapRecord rewrites the only spool record of key in place, as root on the
// appliance could: new payload, and a header recomputed to match it, so
// the record is well-formed and self-consistent.
func swapRecord(t *testing.T, spoolDir, key string, payload []byte) {
	t.Helper()
	ents, err := os.ReadDir(spoolDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".rec") {
			continue
		}
		path := filepath.Join(spoolDir, e.Name())
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		h, err := vault.DecodeRecord(f, st.Size())
		f.Close()
		if err != nil || h.Key != key {
			continue
		}
		sum := sha256.Sum256(payload)
		h.SHA256, h.Size = hex.EncodeToString(sum[:]), int64(len(payload))
		tr, err := vault.EncodeTrailer(h)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(append([]byte{}, payload...), tr...), 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no spool record for %s", key)
}

func entriesOf(t *testing.T, db *sql.DB, action audit.Action) []auditRow {
	t.Helper()
	var out []auditRow
	for _, r := range auditRows(t, db) {
		if r.Action == string(action) {
			out = append(out, r)
		}
	}
	return out
}

// TestSpooledEvidenceSwapQuarantined is the regression test of "Evidence
// is hashed into the audit log only at upload": the SHA-256 goes into an
// evidence.spool entry when evidence enters the spool, the upload entry
// refers to it, and a record whose bytes were swapped on disk before the
// upload (by the running process's uploader, or after a restart, when
// even the header is the attacker's) is never uploaded: the tamper alarm
// is raised and the record is quarantined, visible in the vault status.
func TestSpooledEvidenceSwapQuarantined(t *testing.T) {
	for _, b := range tamperBackends() {
		for _, restart := range []bool{false, true} {
			name := b.name + "/same process"
			if restart {
				name = b.name + "/after restart"
			}
			t.Run(name, func(t *testing.T) { testSwap(t, b, restart) })
		}
	}
}

func testSwap(t *testing.T, b tamperBackend, restart bool) {
	ctx := context.Background()
	db := openDB(t)
	cfg := b.config(t)
	dataDir := t.TempDir()
	open := func() *Service {
		s, err := Open(ctx, Options{DB: db, Audit: audit.New(audit.Options{}), Config: cfg, DataDir: dataDir, Production: b.production,
			Vault: vault.Config{Sleep: fastSleep}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	lead := auth.Principal{UserID: "u-lead", Name: "lead", TenantID: "t1", Client: auth.Client{IP: "192.0.2.7", UserAgent: "test"}}

	// A clean record first: its upload entry refers to its spool entry.
	var linked int64
	good := []byte("{\"port\":22,\"state\":\"open\"}\n")
	ge, err := s.Submit(ctx, lead, "t1", "scan-1", "results.jsonl", bytes.NewReader(good), func(ctx context.Context, tx *sql.Tx, e vault.SpoolEntry) error {
		linked = e.Seq // the submitter's own change commits with the entry
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	goodSum := sha256.Sum256(good)
	if ge.Seq == 0 || linked != ge.Seq || ge.SHA256 != hex.EncodeToString(goodSum[:]) {
		t.Fatalf("spool entry %+v, linked %d", ge, linked)
	}
	spooled := entriesOf(t, db, audit.ActEvidenceSpooled)
	if len(spooled) != 1 || spooled[0].Actor != "u-lead" || spooled[0].Object != ge.Key || spooled[0].Details["sha256"] != ge.SHA256 || spooled[0].Details["record"] != ge.ID {
		t.Fatalf("evidence.spool entries %+v", spooled)
	}
	if err := s.Vault().Flush(ctx); err != nil {
		t.Fatal(err)
	}
	up := entriesOf(t, db, audit.ActEvidenceUpload)
	if len(up) != 1 || up[0].Details["spool_seq"] != float64(ge.Seq) || up[0].Details["spool_record"] != ge.ID || up[0].Details["sha256"] != ge.SHA256 {
		t.Fatalf("evidence.upload entries %+v", up)
	}

	// The victim: spooled and recorded, then swapped on disk.
	original := []byte("{\"port\":23,\"state\":\"open\"}\n")
	ve, err := s.Submit(ctx, lead, "t1", "scan-1", "probes.pcapng", bytes.NewReader(original), nil)
	if err != nil {
		t.Fatal(err)
	}
	spoolDir := filepath.Join(dataDir, SpoolDirName)
	swapRecord(t, spoolDir, ve.Key, []byte("{\"port\":23,\"state\":\"filtered\"}\n"))
	if restart {
		s = open() // the header is now read from the swapped file
	}
	err = s.Vault().Flush(ctx)
	if !errors.Is(err, vault.ErrTampered) {
		t.Fatalf("flush after the swap: %v", err)
	}
	// Nothing of the victim was uploaded or recorded as uploaded.
	for _, k := range b.keys(t, cfg) {
		if k == ve.Key {
			t.Fatalf("swapped record was uploaded: backend holds %s", k)
		}
	}
	if objs, _ := s.Objects(ctx, "t1", ve.Key); len(objs) != 0 {
		t.Fatalf("swapped record recorded as uploaded: %+v", objs)
	}
	// The alarm is raised, by an audit.tamper entry naming both hashes.
	if err := audit.CheckNoAlarm(ctx, db); !errors.Is(err, audit.ErrTamperAlarm) {
		t.Fatalf("tamper alarm: %v", err)
	}
	al, _, _ := audit.CurrentAlarm(ctx, db)
	tam := entriesOf(t, db, audit.ActAuditTamper)
	if len(tam) != 1 || tam[0].Object != "evidence:"+ve.Key || tam[0].Details["recorded_sha256"] != ve.SHA256 ||
		tam[0].Details["found_sha256"] == ve.SHA256 || tam[0].Details["spool_seq"] != float64(ve.Seq) || al.BadSeq != ve.Seq {
		t.Fatalf("audit.tamper entries %+v, alarm %+v", tam, al)
	}
	// Quarantined: out of the queue, in corrupt/ with its reason, counted
	// by the status that 'vault status' reads from the directory.
	st := s.Status()
	if st.Spool.Pending != 0 || st.Spool.Corrupt != 1 || st.Tampered != 1 {
		t.Fatalf("status %+v", st)
	}
	rs, err := vault.ReadSpoolStatus(spoolDir, 0, 0, time.Now())
	if err != nil || rs.Corrupt != 1 || rs.Pending != 0 {
		t.Fatalf("ReadSpoolStatus %+v %v", rs, err)
	}
	why, err := os.ReadFile(filepath.Join(spoolDir, "corrupt", ve.ID+".reason"))
	if err != nil || !strings.Contains(string(why), ve.SHA256) {
		t.Fatalf("quarantine reason %q %v", why, err)
	}
	var state string
	if err := db.QueryRow(`SELECT state FROM evidence_spool WHERE id = ?`, ve.ID).Scan(&state); err != nil || state != "quarantined" {
		t.Fatalf("spool row state %q %v", state, err)
	}
	// A later flush has nothing left to try.
	if err := s.Vault().Flush(ctx); err != nil {
		t.Fatalf("flush after quarantine: %v", err)
	}
}

// TestUnrecordedSpoolRecordQuarantined: a well-formed record that never
// went through Submit (dropped into the spool directory by hand) has no
// evidence.spool entry and is quarantined, not uploaded.
func TestUnrecordedSpoolRecordQuarantined(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	cfg := DefaultConfig()
	cfg.Backend, cfg.LocalDir = "local", t.TempDir()
	dataDir := t.TempDir()
	spoolDir := filepath.Join(dataDir, SpoolDirName)
	// Spool a record with a bare vault.Spool: no ledger sees it.
	sp, err := vault.OpenSpool(vault.SpoolOptions{Dir: spoolDir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sp.Add(ctx, "tenants/t1/scans/s1/results.jsonl", "t1", strings.NewReader("forged\n")); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, Options{DB: db, Audit: audit.New(audit.Options{}), Config: cfg, DataDir: dataDir, Vault: vault.Config{Sleep: fastSleep}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Vault().Flush(ctx); !errors.Is(err, vault.ErrTampered) || !strings.Contains(err.Error(), "no evidence.spool entry") {
		t.Fatalf("flush: %v", err)
	}
	if st := s.Status(); st.Spool.Pending != 0 || st.Spool.Corrupt != 1 {
		t.Fatalf("status %+v", st)
	}
	if err := audit.CheckNoAlarm(ctx, db); !errors.Is(err, audit.ErrTamperAlarm) {
		t.Fatalf("alarm: %v", err)
	}
	if n := len(entriesOf(t, db, audit.ActEvidenceUpload)); n != 0 {
		t.Fatalf("%d uploads", n)
	}
}

// TestSubmitWithinFailsRemovesRecord: when the submitter's part of the
// transaction fails, neither the audit entry nor the record remains.
func TestSubmitWithinFailsRemovesRecord(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	cfg := DefaultConfig()
	cfg.Backend, cfg.LocalDir = "local", t.TempDir()
	s, err := Open(ctx, Options{DB: db, Audit: audit.New(audit.Options{}), Config: cfg, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("results not stored")
	_, err = s.Submit(ctx, auth.Principal{}, "t1", "s1", "results.jsonl", strings.NewReader("x\n"), func(context.Context, *sql.Tx, vault.SpoolEntry) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("submit: %v", err)
	}
	if st := s.Status(); st.Spool.Pending != 0 || st.Spool.Bytes != 0 {
		t.Fatalf("status %+v", st)
	}
	if n := len(entriesOf(t, db, audit.ActEvidenceSpooled)); n != 0 {
		t.Fatalf("%d evidence.spool entries after a failed submit", n)
	}
}

// TestSpoolRowEditDoesNotHelp: the evidence_spool row only locates the
// evidence.spool entry. Root who swaps a record and also edits the row's
// hash, or points the row at another record's entry, still gets the record
// quarantined, because the uploader reads the values from the hash-chained
// entry.
func TestSpoolRowEditDoesNotHelp(t *testing.T) {
	swapped := []byte("forged results\n")
	sum := sha256.Sum256(swapped)
	for _, tc := range []struct {
		name string
		edit func(db *sql.DB, victim, decoy vault.SpoolEntry) error
		want string
	}{
		{"row hash edited", func(db *sql.DB, v, _ vault.SpoolEntry) error {
			_, err := db.Exec(`UPDATE evidence_spool SET sha256 = ? WHERE id = ?`, hex.EncodeToString(sum[:]), v.ID)
			return err
		}, "recorded at spooling"},
		{"row points at another entry", func(db *sql.DB, v, d vault.SpoolEntry) error {
			_, err := db.Exec(`UPDATE evidence_spool SET seq = ? WHERE id = ?`, d.Seq, v.ID)
			return err
		}, "is not the evidence.spool entry of record"},
		{"row deleted", func(db *sql.DB, v, _ vault.SpoolEntry) error {
			_, err := db.Exec(`DELETE FROM evidence_spool WHERE id = ?`, v.ID)
			return err
		}, "no evidence.spool entry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := openDB(t)
			cfg := DefaultConfig()
			cfg.Backend, cfg.LocalDir = "local", t.TempDir()
			dataDir := t.TempDir()
			s, err := Open(ctx, Options{DB: db, Audit: audit.New(audit.Options{}), Config: cfg, DataDir: dataDir, Vault: vault.Config{Sleep: fastSleep}})
			if err != nil {
				t.Fatal(err)
			}
			victim, err := s.Submit(ctx, auth.Principal{}, "t1", "s1", "results.jsonl", strings.NewReader("real results\n"), nil)
			if err != nil {
				t.Fatal(err)
			}
			// The decoy's entry records exactly the forged bytes.
			decoy, err := s.Submit(ctx, auth.Principal{}, "t1", "s1", "decoy.jsonl", bytes.NewReader(swapped), nil)
			if err != nil {
				t.Fatal(err)
			}
			swapRecordID(t, filepath.Join(dataDir, SpoolDirName), victim.ID, swapped)
			if err := tc.edit(db, victim, decoy); err != nil {
				t.Fatal(err)
			}
			err = s.Vault().Flush(ctx)
			if !errors.Is(err, vault.ErrTampered) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("flush: %v", err)
			}
			if st := s.Status(); st.Spool.Corrupt != 1 {
				t.Fatalf("status %+v", st)
			}
			// The decoy itself is genuine and uploads (perhaps already in
			// the first flush, by another worker); the victim never does.
			if err := s.Vault().Flush(ctx); err != nil {
				t.Fatal(err)
			}
			objs, _ := s.Objects(ctx, "t1", "")
			if len(objs) != 1 || objs[0].Key != decoy.Key || objs[0].SHA256 != decoy.SHA256 {
				t.Fatalf("objects %+v", objs)
			}
		})
	}
}

// swapRecordID is swapRecord for the record with the given id.
func swapRecordID(t *testing.T, spoolDir, id string, payload []byte) {
	t.Helper()
	path := filepath.Join(spoolDir, id+".rec")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	h, err := vault.DecodeRecord(f, st.Size())
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(payload)
	h.SHA256, h.Size = hex.EncodeToString(sum[:]), int64(len(payload))
	tr, err := vault.EncodeTrailer(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(append([]byte{}, payload...), tr...), 0o600); err != nil {
		t.Fatal(err)
	}
}
