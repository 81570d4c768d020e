package vault

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// memRecorder collects receipts, as the appliance's audit recorder would.
type memRecorder struct {
	mu   sync.Mutex
	recs []Receipt
	fail error
}

func (m *memRecorder) Record(ctx context.Context, r Receipt) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.recs = append(m.recs, r)
	return nil
}

func (m *memRecorder) byKey() map[string]Receipt {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]Receipt{}
	for _, r := range m.recs {
		out[r.Key] = r
	}
	return out
}

func fastSleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(min(d, 50*time.Millisecond))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func newTestVault(t *testing.T, store Store, rec Recorder, dir string) *Vault {
	t.Helper()
	v, err := New(Config{Spool: SpoolOptions{Dir: dir, MaxBytes: 64 << 20}, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Sleep: fastSleep}, store, rec)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestUploadIsLockedAndEncrypted(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, kmsKey, wantSSE string
	}{
		{"sse-s3", "", "AES256"},
		{"sse-kms", "fiq-test-key", "aws:kms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bucket := makeBucket(t, lockCompliance)
			m, err := NewMinIO(MinIOConfig{Endpoint: srv.Addr, Bucket: bucket, RootCAs: srv.RootCAs, AccessKey: testUser, SecretKey: testPassword, Retention: 24 * time.Hour, KMSKeyID: tc.kmsKey})
			if err != nil {
				t.Fatal(err)
			}
			rec := &memRecorder{}
			v := newTestVault(t, m, rec, t.TempDir())
			key, _ := ScanKey("t1", "scan-1", "results.jsonl")
			body := []byte(`{"target":"10.0.0.1","port":22,"state":"open"}` + "\n")
			before := time.Now()
			if _, err := v.Add(ctx, key, bytes.NewReader(body)); err != nil {
				t.Fatal(err)
			}
			if err := v.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			r, ok := rec.byKey()[key]
			if !ok {
				t.Fatalf("no receipt for %s", key)
			}
			sum := sha256.Sum256(body)
			if r.SHA256 != hex.EncodeToString(sum[:]) || r.Size != int64(len(body)) || r.VersionID == "" || !r.WORM || r.SSE != tc.wantSSE {
				t.Fatalf("receipt %+v", r)
			}
			if st := v.Status(); st.Spool.Pending != 0 || !st.WORM {
				t.Fatalf("status after flush: %+v", st)
			}
			// Check through the API with the admin client, not our code.
			c := srv.admin(t)
			mode, until, err := c.GetObjectRetention(ctx, bucket, key, r.VersionID)
			if err != nil {
				t.Fatal(err)
			}
			if *mode != minio.Compliance || until.Before(before.Add(24*time.Hour-2*time.Second)) {
				t.Fatalf("retention %s until %s", *mode, until)
			}
			info, err := c.StatObject(ctx, bucket, key, minio.StatObjectOptions{VersionID: r.VersionID})
			if err != nil {
				t.Fatal(err)
			}
			if got := info.Metadata.Get("X-Amz-Server-Side-Encryption"); got != tc.wantSSE {
				t.Fatalf("SSE header %q, want %q", got, tc.wantSSE)
			}
		})
	}
}

func TestLockedVersionCannotBeDeleted(t *testing.T) {
	ctx := context.Background()
	bucket := makeBucket(t, lockCompliance)
	rec := &memRecorder{}
	v := newTestVault(t, testMinIO(t, bucket, nil), rec, t.TempDir())
	key, _ := ScanKey("t1", "scan-del", "capture.pcapng")
	if _, err := v.Add(ctx, key, strings.NewReader("evidence")); err != nil {
		t.Fatal(err)
	}
	if err := v.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	version := rec.byKey()[key].VersionID
	c := srv.admin(t)
	for _, tc := range []struct {
		name string
		opts minio.RemoveObjectOptions
	}{
		{"plain", minio.RemoveObjectOptions{VersionID: version}},
		{"governance-bypass", minio.RemoveObjectOptions{VersionID: version, GovernanceBypass: true}},
		{"force", minio.RemoveObjectOptions{VersionID: version, GovernanceBypass: true, ForceDelete: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.RemoveObject(ctx, bucket, key, tc.opts); err == nil {
				t.Fatal("deleting a compliance-locked version succeeded")
			}
			if _, err := c.StatObject(ctx, bucket, key, minio.StatObjectOptions{VersionID: version}); err != nil {
				t.Fatalf("version gone after refused delete: %v", err)
			}
		})
	}
	// Shortening the retention is refused too.
	mode := minio.Compliance
	short := time.Now().Add(time.Minute)
	if err := c.PutObjectRetention(ctx, bucket, key, minio.PutObjectRetentionOptions{VersionID: version, Mode: &mode, RetainUntilDate: &short, GovernanceBypass: true}); err == nil {
		t.Fatal("shortening compliance retention succeeded")
	}
}

func TestBucketRefused(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		mode      bucketMode
		missing   bool
		retention time.Duration
		want      error
	}{
		{"compliance", lockCompliance, false, 24 * time.Hour, nil},
		{"no-object-lock", lockNone, false, 24 * time.Hour, ErrBucketNotLocked},
		{"governance", lockGovernance, false, 24 * time.Hour, ErrGovernanceMode},
		{"lock-without-default", lockNoDefault, false, 24 * time.Hour, ErrNoDefaultRetention},
		{"retention-too-short", lockCompliance, false, 48 * time.Hour, ErrRetentionTooShort},
		{"missing", lockCompliance, true, 24 * time.Hour, ErrBucketNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bucket := "fiq-missing-" + strings.ToLower(randHex(3))
			if !tc.missing {
				bucket = makeBucket(t, tc.mode)
			}
			m, err := NewMinIO(MinIOConfig{Endpoint: srv.Addr, Bucket: bucket, RootCAs: srv.RootCAs, AccessKey: testUser, SecretKey: testPassword, Retention: tc.retention})
			if err != nil {
				t.Fatal(err)
			}
			err = m.Check(ctx)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
			if tc.want == nil {
				return
			}
			if !IsRefusal(err) {
				t.Errorf("IsRefusal(%v) = false", err)
			}
			// The vault holds evidence in the spool instead of uploading.
			v := newTestVault(t, m, &memRecorder{}, t.TempDir())
			key, _ := ScanKey("t1", "s1", "x.json")
			if _, err := v.Add(ctx, key, strings.NewReader("{}")); err != nil {
				t.Fatal(err)
			}
			if err := v.Flush(ctx); !errors.Is(err, ErrNotChecked) || !errors.Is(err, tc.want) {
				t.Fatalf("Flush = %v, want ErrNotChecked wrapping %v", err, tc.want)
			}
			if st := v.Status(); st.Spool.Pending != 1 || st.WORM || st.CheckErr == "" {
				t.Fatalf("status %+v", st)
			}
		})
	}
}

// TestStopRestart stops MinIO in the middle of a scan's uploads and starts
// it again; the vault process is restarted too while the server is down.
// Every object must arrive, recorded once, with a matching hash.
func TestStopRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts the shared MinIO server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bucket := makeBucket(t, lockCompliance)
	m := testMinIO(t, bucket, nil)
	rec := &memRecorder{}
	dir := t.TempDir()
	want := map[string]string{}
	add := func(v *Vault, i int) {
		key, _ := ScanKey("t1", "scan-outage", fmt.Sprintf("obj-%03d.bin", i))
		body := bytes.Repeat([]byte(fmt.Sprintf("evidence %d;", i)), 100+i*37)
		sum := sha256.Sum256(body)
		want[key] = hex.EncodeToString(sum[:])
		if _, err := v.Add(ctx, key, bytes.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	runVault := func(v *Vault) (stop func()) {
		rctx, rcancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = v.Run(rctx) }()
		return func() { rcancel(); <-done }
	}

	v1 := newTestVault(t, m, rec, dir)
	stop1 := runVault(v1)
	for i := 0; i < 10; i++ {
		add(v1, i)
	}
	srv.stop()
	restarted := false
	defer func() {
		if !restarted {
			if err := srv.start(); err != nil {
				t.Errorf("restart minio: %v", err)
			}
		}
	}()
	for i := 10; i < 20; i++ {
		add(v1, i)
	}
	// Let the uploader hit the outage, then restart the appliance side.
	waitFor(t, 10*time.Second, "upload error during outage", func() bool { return v1.Status().LastErr != "" })
	stop1()
	if st := v1.Status(); st.Spool.Pending == 0 {
		t.Fatalf("nothing pending during the outage: %+v", st)
	}
	v2 := newTestVault(t, m, rec, dir)
	if got := v2.Status().Spool.Pending; got != len(want)-len(rec.byKey()) {
		t.Fatalf("after restart %d pending, want %d", got, len(want)-len(rec.byKey()))
	}
	stop2 := runVault(v2)
	defer stop2()
	for i := 20; i < 25; i++ {
		add(v2, i)
	}
	if err := srv.start(); err != nil {
		t.Fatalf("restart minio: %v", err)
	}
	restarted = true
	waitFor(t, 30*time.Second, "spool to drain", func() bool { return v2.Status().Spool.Pending == 0 })

	got := rec.byKey()
	if len(got) != len(want) || len(rec.recs) != len(want) {
		t.Fatalf("%d receipts for %d keys, want one per object (%d)", len(rec.recs), len(got), len(want))
	}
	c := srv.admin(t)
	for key, sum := range want {
		r := got[key]
		if r.SHA256 != sum {
			t.Errorf("%s: receipt sha256 %s, want %s", key, r.SHA256, sum)
		}
		o, err := c.GetObject(ctx, bucket, key, minio.GetObjectOptions{VersionID: r.VersionID})
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(h, o)
		o.Close()
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if hex.EncodeToString(h.Sum(nil)) != sum {
			t.Errorf("%s: stored object hash differs", key)
		}
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPresign(t *testing.T) {
	ctx := context.Background()
	bucket := makeBucket(t, lockCompliance)
	m := testMinIO(t, bucket, nil)
	rec := &memRecorder{}
	v := newTestVault(t, m, rec, t.TempDir())
	key, _ := ScanKey("t1", "scan-p", "report.json")
	body := []byte(`{"signed":true}`)
	if _, err := v.Add(ctx, key, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if err := v.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r := rec.byKey()[key]
	get := func(u string) (int, []byte) {
		t.Helper()
		resp, err := srv.httpClient().Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if _, err := m.Presign(ctx, key, r.VersionID, 8*24*time.Hour); err == nil {
		t.Error("presign accepted an expiry over 7 days")
	}
	// A URL valid for 5 minutes works.
	u, err := m.Presign(ctx, key, r.VersionID, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, b := get(u.String()); code != http.StatusOK || !bytes.Equal(b, body) {
		t.Fatalf("GET inside lifetime: %d %q", code, b)
	}
	if u.Query().Get("X-Amz-Expires") != "300" {
		t.Errorf("X-Amz-Expires = %q", u.Query().Get("X-Amz-Expires"))
	}
	// The server checks expiry against its own clock, so the negative case
	// needs a short real lifetime and a (bounded) wait past it: 6 s, so the
	// first GET lands inside it on a loaded machine too.
	const life = 6 * time.Second
	signed := time.Now()
	short, err := m.Presign(ctx, key, r.VersionID, life)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := get(short.String()); code != http.StatusOK {
		t.Fatalf("GET of fresh short URL: %d", code)
	}
	time.Sleep(time.Until(signed.Add(life + time.Second)))
	if code, _ := get(short.String()); code != http.StatusForbidden {
		t.Fatalf("GET after expiry: %d, want 403", code)
	}
}
