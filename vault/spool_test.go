package vault

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		key     string
		wantErr bool
		want    Key
	}{
		{"tenants/t1/scans/s1/results.jsonl", false, Key{Tenant: "t1", Scan: "s1", Name: "results.jsonl"}},
		{"tenants/t1/scans/s1/pcap/probe-1.pcapng", false, Key{Tenant: "t1", Scan: "s1", Name: "pcap/probe-1.pcapng"}},
		{"appliance/anchors/2026-11-27/checkpoint.txt", false, Key{Day: "2026-11-27", Name: "checkpoint.txt"}},
		{"appliance/reviews/review-rev_1.json", false, Key{Review: true, Name: "review-rev_1.json"}},
		{"appliance/reviews/", true, Key{}},
		{"appliance/reviews/../anchors/x", true, Key{}},
		{"tenants/t1/scans/s1/../../t2/scans/x/y", true, Key{}},
		{"tenants/t1/scans/s1/.hidden", true, Key{}},
		{"tenants/t1/scans/s1/", true, Key{}},
		{"tenants/t1/scans/s1", true, Key{}},
		{"tenants//scans/s1/x", true, Key{}},
		{"tenants/t 1/scans/s1/x", true, Key{}},
		{"/tenants/t1/scans/s1/x", true, Key{}},
		{"tenants/t1/reports/s1/x", true, Key{}},
		{"appliance/anchors/2026-13-01/x", true, Key{}},
		{"appliance/anchors/today/x", true, Key{}},
		{"", true, Key{}},
	} {
		t.Run(tc.key, func(t *testing.T) {
			got, err := ParseKey(tc.key)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseKey(%q) error %v, want error %v", tc.key, err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, ErrBadKey) {
				t.Fatalf("error %v is not ErrBadKey", err)
			}
			if got != tc.want {
				t.Fatalf("ParseKey(%q) = %+v, want %+v", tc.key, got, tc.want)
			}
		})
	}
}

// FuzzParseKey checks that every accepted key stays inside its prefix and
// round-trips through ScanKey/AnchorKey.
func FuzzParseKey(f *testing.F) {
	// Seeds: both layouts, traversal, empty segments, odd characters.
	for _, s := range []string{"tenants/t1/scans/s1/a.json", "appliance/anchors/2026-01-02/entries.jsonl", "appliance/reviews/review-rev_1.json", "tenants/t/scans/s/../x", "tenants/t/scans/s//x", "tenants/\x00/scans/s/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			return
		}
		if strings.Contains(s, "..") && strings.Contains(s, "/../") || strings.Contains(s, "//") || strings.HasPrefix(s, "/") {
			t.Fatalf("accepted %q", s)
		}
		var again string
		if k.Tenant != "" {
			again, err = ScanKey(k.Tenant, k.Scan, k.Name)
		} else if k.Review {
			again, err = ReviewKey(k.Name)
		} else {
			day, _ := time.Parse(time.DateOnly, k.Day)
			again, err = AnchorKey(day, k.Name)
		}
		if err != nil || again != s {
			t.Fatalf("round trip %q -> %+v -> %q, %v", s, k, again, err)
		}
	})
}

func validRecord(t testing.TB, payload []byte) []byte {
	sum := sha256.Sum256(payload)
	tr, err := EncodeTrailer(RecordHeader{Key: "tenants/t1/scans/s1/x.bin", Tenant: "t1", Size: int64(len(payload)), SHA256: hex.EncodeToString(sum[:]), Spooled: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	return append(append([]byte{}, payload...), tr...)
}

func TestDecodeRecord(t *testing.T) {
	good := validRecord(t, []byte("payload"))
	for _, tc := range []struct {
		name string
		rec  []byte
		ok   bool
	}{
		{"valid", good, true},
		{"empty payload", validRecord(t, nil), true},
		{"empty file", nil, false},
		{"truncated", good[:len(good)-1], false},
		{"payload byte lost", good[1:], false},
		{"bad magic", append(append([]byte{}, good[:len(good)-1]...), 'X'), false},
		{"extra byte before", append([]byte("x"), good...), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeRecord(bytes.NewReader(tc.rec), int64(len(tc.rec)))
			if (err == nil) != tc.ok {
				t.Fatalf("DecodeRecord error %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadRecord) && !errors.Is(err, ErrBadKey) {
				t.Fatalf("error %v is neither ErrBadRecord nor ErrBadKey", err)
			}
		})
	}
	// A header whose tenant does not own the key is refused: a spool file
	// cannot move evidence into another tenant's prefix.
	sum := sha256.Sum256(nil)
	if _, err := EncodeTrailer(RecordHeader{Key: "tenants/t1/scans/s1/x", Tenant: "t2", SHA256: hex.EncodeToString(sum[:]), Spooled: time.Now()}); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("foreign tenant header: %v", err)
	}
}

// FuzzDecodeRecord feeds arbitrary files to the spool decoder: it must not
// panic, and anything it accepts must re-encode to the same trailer.
func FuzzDecodeRecord(f *testing.F) {
	// Seeds: a valid record, an empty-payload record, a truncated one, and
	// a bare magic with a huge header length.
	f.Add(validRecord(f, []byte("payload")))
	f.Add(validRecord(f, nil))
	f.Add(validRecord(f, []byte("abc"))[:20])
	f.Add([]byte("\xff\xff\xff\xff" + recordMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeRecord(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		tr, err := EncodeTrailer(h)
		if err != nil {
			t.Fatalf("accepted header does not re-encode: %v", err)
		}
		if int64(len(tr))+h.Size != int64(len(b)) {
			// JSON may be spelt differently (spacing, escapes); the decoder
			// must still have checked the sizes add up.
			n := int64(len(b)) - int64(trailerLen) - h.Size
			if n <= 0 || n > maxHeaderLen {
				t.Fatalf("sizes do not add up: file %d, payload %d", len(b), h.Size)
			}
		}
	})
}

func TestSpoolSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenSpool(SpoolOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"a.json", "b.json", "c.json"} {
		if _, err := s.Add(ctx, "tenants/t1/scans/s1/"+name, "t1", strings.NewReader(strings.Repeat("x", i+1))); err != nil {
			t.Fatal(err)
		}
	}
	// A write interrupted before its rename, and a corrupted record.
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000001-aa.tmp"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000002-bb.rec"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenSpool(SpoolOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	st := s2.Status()
	if st.Pending != 3 || st.Corrupt != 1 || st.Bytes != s.Status().Bytes {
		t.Fatalf("after reopen: %+v (before %+v)", st, s.Status())
	}
	if _, err := os.Stat(filepath.Join(dir, "00000000000000000001-aa.tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("temporary file survived reopen")
	}
	if _, err := os.Stat(filepath.Join(dir, quarantineDir, "00000000000000000002-bb.rec")); err != nil {
		t.Fatalf("corrupt record not quarantined: %v", err)
	}
	ro, err := ReadSpoolStatus(dir, 0, 0, time.Now())
	if err != nil || ro.Pending != 3 || ro.Corrupt != 1 || ro.Bytes != st.Bytes {
		t.Fatalf("ReadSpoolStatus = %+v, %v", ro, err)
	}
	claimed := s2.claim(0)
	if len(claimed) != 3 || claimed[0].hdr.Key != "tenants/t1/scans/s1/a.json" || claimed[2].hdr.Key != "tenants/t1/scans/s1/c.json" {
		t.Fatalf("claim order: %v", claimed)
	}
}

func TestSpoolBoundAndAlert(t *testing.T) {
	ctx := context.Background()
	var alerts []SpoolStatus
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	s, err := OpenSpool(SpoolOptions{Dir: t.TempDir(), MaxBytes: 1000, AlertAt: 0.5, OnAlert: func(st SpoolStatus) { alerts = append(alerts, st) }, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	add := func(n int) error {
		_, err := s.Add(ctx, "tenants/t1/scans/s1/f"+randHex(2), "t1", bytes.NewReader(make([]byte, n)))
		return err
	}
	if err := add(100); err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 0 {
		t.Fatalf("alert below the mark: %+v", alerts)
	}
	now = now.Add(time.Minute)
	if err := add(300); err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 1 || !alerts[0].Alert || alerts[0].Full {
		t.Fatalf("alerts after crossing the mark: %+v", alerts)
	}
	if err := add(50); err != nil { // still above: no repeat
		t.Fatal(err)
	}
	if len(alerts) != 1 {
		t.Fatalf("alert repeated: %d", len(alerts))
	}
	before := s.Status()
	if err := add(600); !errors.Is(err, ErrSpoolFull) {
		t.Fatalf("Add over the bound: %v", err)
	}
	if len(alerts) != 2 || !alerts[1].Full {
		t.Fatalf("no full alert on refusal: %+v", alerts)
	}
	after := s.Status()
	if after.Pending != before.Pending || after.Bytes != before.Bytes {
		t.Fatalf("refused Add changed the spool: %+v -> %+v", before, after)
	}
	if after.Age != time.Minute {
		t.Fatalf("oldest age %s, want 1m", after.Age)
	}
	// Nothing was dropped to make room.
	if entries, _ := os.ReadDir(s.dir); len(entries) != 3 {
		t.Fatalf("%d files in spool, want 3", len(entries))
	}
}

func TestLocalBackend(t *testing.T) {
	ctx := context.Background()
	l, err := NewLocal(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.WORM() || !strings.Contains(l.Backend(), "not WORM") {
		t.Fatalf("local backend claims WORM: %s", l.Backend())
	}
	if _, err := New(Config{Production: true, Spool: SpoolOptions{Dir: t.TempDir()}}, l, &memRecorder{}); !errors.Is(err, ErrNotWORM) {
		t.Fatalf("production vault on local backend: %v", err)
	}
	rec := &memRecorder{}
	v := newTestVault(t, l, rec, t.TempDir())
	key, _ := ScanKey("t1", "s1", "r.json")
	for i := 0; i < 2; i++ { // a second upload is a new version, not an overwrite
		if _, err := v.Add(ctx, key, strings.NewReader("{}")); err != nil {
			t.Fatal(err)
		}
		if err := v.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if len(rec.recs) != 2 || rec.recs[0].VersionID == rec.recs[1].VersionID || rec.recs[0].WORM {
		t.Fatalf("receipts %+v", rec.recs)
	}
	if st := v.Status(); st.WORM || st.Spool.Pending != 0 {
		t.Fatalf("status %+v", st)
	}
	if _, err := l.Presign(ctx, key, "", time.Minute); !errors.Is(err, ErrNoPresign) {
		t.Fatalf("local presign: %v", err)
	}
}

// TestRecorderFailureKeepsEvidence: if the audit entry cannot be written,
// the object stays in the spool and is uploaded again later.
func TestRecorderFailureKeepsEvidence(t *testing.T) {
	ctx := context.Background()
	l, err := NewLocal(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := &memRecorder{fail: errors.New("database is locked")}
	v := newTestVault(t, l, rec, t.TempDir())
	key, _ := ScanKey("t1", "s1", "r.json")
	if _, err := v.Add(ctx, key, strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}
	if err := v.Flush(ctx); err == nil {
		t.Fatal("Flush succeeded with a failing recorder")
	}
	if st := v.Status(); st.Spool.Pending != 1 || st.LastErr == "" {
		t.Fatalf("status %+v", st)
	}
	rec.fail = nil
	if err := v.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := v.Status(); st.Spool.Pending != 0 || len(rec.recs) != 1 {
		t.Fatalf("status %+v, receipts %d", st, len(rec.recs))
	}
}

// TestCorruptPayloadQuarantined: a record whose payload changed on disk is
// moved aside, never uploaded as evidence.
func TestCorruptPayloadQuarantined(t *testing.T) {
	ctx := context.Background()
	l, _ := NewLocal(t.TempDir(), nil)
	rec := &memRecorder{}
	dir := t.TempDir()
	v := newTestVault(t, l, rec, dir)
	key, _ := ScanKey("t1", "s1", "r.json")
	if _, err := v.Add(ctx, key, strings.NewReader("original")); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"+recordExt))
	f, err := os.OpenFile(files[0], os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("X"), 0)
	f.Close()
	if err := v.Flush(ctx); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("Flush = %v, want ErrBadRecord", err)
	}
	if st := v.Status(); st.Spool.Pending != 0 || st.Spool.Corrupt != 1 || len(rec.recs) != 0 {
		t.Fatalf("status %+v, receipts %d", st, len(rec.recs))
	}
}

// failingCheck wraps a store whose Check can be made to fail, as if the
// bucket's lock configuration changed under a running appliance.
type failingCheck struct {
	Store
	err error
}

func (f *failingCheck) Check(ctx context.Context) error {
	if f.err != nil {
		return f.err
	}
	return f.Store.Check(ctx)
}

// TestPeriodicCheckHaltsUploads: the bucket is re-verified every
// CheckEvery; while the check fails nothing is uploaded, and uploads resume
// once it passes again.
func TestPeriodicCheckHaltsUploads(t *testing.T) {
	ctx := context.Background()
	l, _ := NewLocal(t.TempDir(), nil)
	st := &failingCheck{Store: l}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	rec := &memRecorder{}
	v, err := New(Config{Spool: SpoolOptions{Dir: t.TempDir()}, CheckEvery: time.Minute, Now: func() time.Time { return now }}, st, rec)
	if err != nil {
		t.Fatal(err)
	}
	add := func(name string) {
		key, _ := ScanKey("t1", "s1", name)
		if _, err := v.Add(ctx, key, strings.NewReader(name)); err != nil {
			t.Fatal(err)
		}
	}
	add("a")
	if err := v.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st.err = ErrGovernanceMode
	add("b")
	now = now.Add(30 * time.Second) // not due yet: the last check stands
	if err := v.Flush(ctx); err != nil {
		t.Fatalf("flush before the check is due: %v", err)
	}
	add("c")
	now = now.Add(time.Minute)
	if err := v.Flush(ctx); !errors.Is(err, ErrNotChecked) || !errors.Is(err, ErrGovernanceMode) {
		t.Fatalf("flush with a failing check: %v", err)
	}
	if s := v.Status(); s.Spool.Pending != 1 || s.CheckErr == "" || len(rec.recs) != 2 {
		t.Fatalf("status %+v, %d receipts", s, len(rec.recs))
	}
	st.err = nil
	if err := v.Flush(ctx); err != nil { // a failed check is retried at once
		t.Fatal(err)
	}
	if s := v.Status(); s.Spool.Pending != 0 || s.CheckErr != "" || len(rec.recs) != 3 {
		t.Fatalf("status %+v, %d receipts", s, len(rec.recs))
	}
}
