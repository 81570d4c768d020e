package vault

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"firewalliq/vault/vaulttest"
)

// The integration tests run against the real MinIO server that
// scripts/deps.sh builds; TestMain starts one per test binary (see
// vaulttest) and prints its log only when a test failed.

// srv is the MinIO server shared by this package's tests (set once by
// TestMain before any test runs).
var srv *testServer

type testServer struct{ *vaulttest.Server }

const (
	testUser     = vaulttest.User
	testPassword = vaulttest.Password
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "fiq-vault-minio-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	s, err := vaulttest.Start(tmp)
	if err != nil {
		// Not a skip: CI installs MinIO, so its absence is a broken setup.
		fmt.Fprintln(os.Stderr, "vault tests: start minio:", err)
		return 1
	}
	srv = &testServer{s}
	code := m.Run()
	s.Stop()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "---- minio server log ----\n%s\n---- end minio log ----\n", s.Log())
	}
	return code
}

func (s *testServer) httpClient() *http.Client { return s.HTTPClient() }
func (s *testServer) stop()                    { s.Stop() }
func (s *testServer) start() error             { return s.Restart() }

func (s *testServer) admin(t testing.TB) *minio.Client {
	t.Helper()
	c, err := s.Admin()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type bucketMode = vaulttest.Lock

const (
	lockCompliance = vaulttest.Compliance
	lockGovernance = vaulttest.Governance
	lockNoDefault  = vaulttest.NoDefault
	lockNone       = vaulttest.None
)

func makeBucket(t testing.TB, mode bucketMode) string {
	t.Helper()
	name, err := srv.MakeBucket(context.Background(), mode)
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// testMinIO returns the backend for bucket with test settings.
func testMinIO(t testing.TB, bucket string, now func() time.Time) *MinIO {
	t.Helper()
	m, err := NewMinIO(MinIOConfig{
		Endpoint: srv.Addr, Bucket: bucket, RootCAs: srv.RootCAs,
		AccessKey: testUser, SecretKey: testPassword,
		Retention: 24 * time.Hour, Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
