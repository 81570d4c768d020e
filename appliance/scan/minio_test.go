package scan_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/minio/minio-go/v7"

	"firewalliq/appliance"
	"firewalliq/appliance/scan"
	"firewalliq/audit"
	"firewalliq/probe"
	"firewalliq/probe/scope"
	"firewalliq/vault/vaulttest"
)

// TestEvidenceInMinIO runs one scan end to end with the real MinIO WORM
// vault (object lock in compliance mode, TLS, SSE): the results file and
// the manifest are spooled in the scan's transaction, uploaded, verified
// (evidence.upload) and locked in the bucket.
func TestEvidenceInMinIO(t *testing.T) {
	ctx := context.Background()
	srv, err := vaulttest.Start(t.TempDir())
	if err != nil {
		t.Fatalf("start minio: %v", err)
	}
	t.Cleanup(func() {
		srv.Stop()
		if t.Failed() {
			t.Logf("minio log:\n%s", srv.Log())
		}
	})
	bucket, err := srv.MakeBucket(ctx, vaulttest.Compliance)
	if err != nil {
		t.Fatal(err)
	}
	// Retention counts from the appliance's clock, which the fixture sets
	// to a fixed day in the past: 5 days from it are still in the future.
	admin, err := srv.Admin()
	if err != nil {
		t.Fatal(err)
	}
	mode, days, unit := minio.Compliance, uint(5), minio.Days
	if err := admin.SetObjectLockConfig(ctx, bucket, &mode, &days, &unit); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(vaulttest.Password), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *appliance.Config) {
		c.Vault.Backend, c.Vault.Endpoint, c.Vault.Bucket = "minio", srv.Addr, bucket
		c.Vault.CAFile, c.Vault.AccessKey, c.Vault.SecretKeyFile, c.Vault.RetentionDays = srv.CAFile(), vaulttest.User, secret, 5
	})
	f := e.f
	e.scope(t, "lab", scope.EnvNonProduction)
	sc, err := f.App.Scans.Request(f.Ctx, e.op.P, "", scan.ScanRequest{ScopeID: "lab"}, f.Code(e.op))
	if err != nil {
		t.Fatal(err)
	}
	mark := f.Head()
	e.dispatch(t)
	e.wait(t, sc.ID, scan.StateCompleted)
	if err := f.App.Evidence.Vault().Flush(ctx); err != nil {
		t.Fatal(err)
	}
	ups := f.Entries(mark, audit.ActEvidenceUpload)
	want := 2 // results.jsonl, manifest.json
	if probe.RawAvailable() {
		want = 3 // and probes.pcapng
	}
	if len(ups) != want {
		t.Fatalf("%d evidence.upload entries", len(ups))
	}
	for _, u := range ups {
		mode, until, err := admin.GetObjectRetention(ctx, bucket, u.Object, "")
		if err != nil || mode == nil || *mode != minio.Compliance || until == nil {
			t.Fatalf("%s retention: %v %v %v", u.Object, mode, until, err)
		}
	}
}
