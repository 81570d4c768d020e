package scan_test

import (
	"context"
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
	srv := vaulttest.StartFor(t)
	// Retention counts from the appliance's clock, which the fixture sets
	// to a fixed day in the past: 5 days from it are still in the future.
	bucket, secret := srv.LockedBucket(ctx, t, 5), vaulttest.SecretKeyFile(t)
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
	admin, err := srv.Admin()
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range ups {
		mode, until, err := admin.GetObjectRetention(ctx, bucket, u.Object, "")
		if err != nil || mode == nil || *mode != minio.Compliance || until == nil {
			t.Fatalf("%s retention: %v %v %v", u.Object, mode, until, err)
		}
	}
}
