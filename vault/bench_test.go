package vault

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/encrypt"
)

// BenchmarkUploadVsPutObject compares, on the same files and the same
// server, the vault's full path (spool with fsync while the background
// uploader runs, upload, read-back
// verification of retention, encryption and SHA-256, spool removal) with a
// plain sequential minio-go PutObject loop. The plain loop sends the same
// retention, Content-MD5 and SSE options, so the ratio is the cost of the
// spool and the verification, not of the server's locking or encryption.
// Metrics: plain_MB/s, vault_MB/s and ratio (vault/plain, higher is better).
//
//	go test ./vault -run '^$' -bench UploadVsPutObject -benchtime 3x -count 5
func BenchmarkUploadVsPutObject(b *testing.B) {
	for _, bc := range []struct {
		files   int
		size    int
		workers int
	}{
		{200, 16 << 10, 1},
		{200, 16 << 10, 4},
		{20, 1 << 20, 1},
		{20, 1 << 20, 4},
	} {
		b.Run(fmt.Sprintf("files=%d/size=%dKiB/workers=%d", bc.files, bc.size>>10, bc.workers), func(b *testing.B) {
			ctx := context.Background()
			dir := b.TempDir()
			paths := make([]string, bc.files)
			for i := range paths {
				buf := make([]byte, bc.size)
				_, _ = rand.Read(buf)
				paths[i] = filepath.Join(dir, fmt.Sprintf("f%04d", i))
				if err := os.WriteFile(paths[i], buf, 0o600); err != nil {
					b.Fatal(err)
				}
			}
			bucket := makeBucket(b, lockCompliance)
			m := testMinIO(b, bucket, nil)
			c := m.Client()
			total := float64(bc.files * bc.size)
			// Each iteration runs both, back to back, alternating which
			// goes first, so load from other processes hits both alike; the
			// reported figures are medians over iterations.
			var plainMBs, vaultMBs, ratios []float64
			b.ResetTimer()
			for it := 0; it < b.N; it++ {
				plain := func() time.Duration {
					start := time.Now()
					for i, p := range paths {
						f, err := os.Open(p)
						if err != nil {
							b.Fatal(err)
						}
						_, err = c.PutObject(ctx, bucket, fmt.Sprintf("plain/%d/%d", it, i), f, int64(bc.size), minio.PutObjectOptions{
							Mode: minio.Compliance, RetainUntilDate: time.Now().Add(24 * time.Hour), SendContentMd5: true,
							ServerSideEncryption: encrypt.NewSSE(), ContentType: "application/octet-stream",
						})
						f.Close()
						if err != nil {
							b.Fatal(err)
						}
					}
					return time.Since(start)
				}
				viaVault := func() time.Duration {
					v, err := New(Config{Spool: SpoolOptions{Dir: filepath.Join(b.TempDir(), "spool")}, Workers: bc.workers}, m, RecorderFunc(func(context.Context, Receipt) error { return nil }))
					if err != nil {
						b.Fatal(err)
					}
					if err := v.Check(ctx); err != nil {
						b.Fatal(err)
					}
					// The uploader runs while evidence is spooled, as in a
					// scan; the clock stops when the spool is empty again.
					rctx, cancel := context.WithCancel(ctx)
					done := make(chan struct{})
					start := time.Now()
					go func() { defer close(done); _ = v.Run(rctx) }()
					for i, p := range paths {
						f, err := os.Open(p)
						if err != nil {
							b.Fatal(err)
						}
						key, _ := ScanKey("bench", fmt.Sprintf("it%d", it), fmt.Sprintf("f%04d", i))
						_, err = v.Add(ctx, key, f)
						f.Close()
						if err != nil {
							b.Fatal(err)
						}
					}
					for v.Status().Uploaded < int64(bc.files) {
						if st := v.Status(); st.LastErr != "" {
							b.Fatal(st.LastErr)
						}
						time.Sleep(time.Millisecond)
					}
					d := time.Since(start)
					cancel()
					<-done
					if st := v.Status(); st.Spool.Pending != 0 || st.Uploaded != int64(bc.files) {
						b.Fatalf("status %+v", st)
					}
					return d
				}
				var pd, vd time.Duration
				if it%2 == 0 {
					pd, vd = plain(), viaVault()
				} else {
					vd, pd = viaVault(), plain()
				}
				plainMBs = append(plainMBs, total/pd.Seconds()/1e6)
				vaultMBs = append(vaultMBs, total/vd.Seconds()/1e6)
				ratios = append(ratios, pd.Seconds()/vd.Seconds())
			}
			b.ReportMetric(median(plainMBs), "plain_MB/s")
			b.ReportMetric(median(vaultMBs), "vault_MB/s")
			b.ReportMetric(median(ratios), "ratio")
		})
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkSpoolAdd measures making one 16 KiB object durable in the spool
// (write, fsync, rename, directory fsync): the floor of the vault's
// per-object cost before any network traffic.
//
//	go test ./vault -run '^$' -bench SpoolAdd -benchtime 200x
func BenchmarkSpoolAdd(b *testing.B) {
	sp, err := OpenSpool(SpoolOptions{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 16<<10)
	_, _ = rand.Read(buf)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := sp.Add(context.Background(), fmt.Sprintf("tenants/t/scans/s/f%d", i), "t", bytes.NewReader(buf)); err != nil {
			b.Fatal(err)
		}
	}
}
