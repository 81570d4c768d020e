package vault

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// The integration tests run against the real MinIO server that
// scripts/deps.sh builds. TestMain starts one server per test binary on a
// random loopback port with TLS (a certificate made here) and a static KMS
// key (needed for SSE-S3), in a fresh data directory: object-locked buckets
// cannot be emptied, so nothing is reused between runs. The server's log is
// printed only when a test failed.

const (
	testUser     = "fiq-test-admin"
	testPassword = "fiq-test-password-0123"
)

// testServer is the MinIO process shared by this package's tests.
var srv *minioServer

type minioServer struct {
	bin, dataDir, certsDir, addr, kmsKey string
	roots                                *x509.CertPool
	log                                  *lockedBuffer

	mu  sync.Mutex
	cmd *exec.Cmd
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// findMinIO looks for the server binary: $FIQ_MINIO_BIN, then PATH, then
// GOPATH/bin where scripts/deps.sh installs it.
func findMinIO() (string, error) {
	if p := os.Getenv("FIQ_MINIO_BIN"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "minio")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("minio server binary not found: run scripts/deps.sh (or set FIQ_MINIO_BIN)")
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	bin, err := findMinIO()
	if err != nil {
		// Not a skip: CI installs MinIO, so its absence is a broken setup.
		fmt.Fprintln(os.Stderr, "vault tests:", err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "fiq-vault-minio-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	s, err := newMinIOServer(bin, tmp)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vault tests: start minio:", err)
		return 1
	}
	srv = s
	code := m.Run()
	s.stop()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "---- minio server log ----\n%s\n---- end minio log ----\n", s.log.String())
	}
	return code
}

func newMinIOServer(bin, tmp string) (*minioServer, error) {
	s := &minioServer{bin: bin, dataDir: filepath.Join(tmp, "data"), certsDir: filepath.Join(tmp, "certs"), log: &lockedBuffer{}}
	if err := os.MkdirAll(s.certsDir, 0o700); err != nil {
		return nil, err
	}
	pool, err := writeCert(s.certsDir)
	if err != nil {
		return nil, err
	}
	s.roots = pool
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	s.kmsKey = "fiq-test-key:" + base64.StdEncoding.EncodeToString(key)
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s.addr = fmt.Sprintf("127.0.0.1:%d", port)
	return s, s.start()
}

// writeCert makes a self-signed ECDSA certificate for 127.0.0.1 where MinIO
// looks for it (public.crt, private.key) and returns a pool trusting it.
func writeCert(dir string) (*x509.CertPool, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "fiq-test-minio"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		return nil, err
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "public.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "private.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start runs the server and waits until it answers its health check.
func (s *minioServer) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cport, err := freePort()
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "server", "--quiet", "--address", s.addr,
		"--console-address", fmt.Sprintf("127.0.0.1:%d", cport), "--certs-dir", s.certsDir, s.dataDir)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+testUser,
		"MINIO_ROOT_PASSWORD="+testPassword,
		"MINIO_KMS_SECRET_KEY="+s.kmsKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CI_CD=1",
	)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd = cmd
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.roots}}, Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("minio exited: %v\n%s", err, s.log.String())
		default:
		}
		resp, err := hc.Get("https://" + s.addr + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				go func() { <-exited }()
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return fmt.Errorf("minio did not become ready in 30s\n%s", s.log.String())
}

// stop kills the server (SIGKILL: the stop/restart test wants an abrupt
// outage, not a graceful drain).
func (s *minioServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		// Wait until the port is free so a restart can bind it again.
		for i := 0; i < 50; i++ {
			c, err := net.DialTimeout("tcp", s.addr, 100*time.Millisecond)
			if err != nil {
				break
			}
			c.Close()
			time.Sleep(100 * time.Millisecond)
		}
		s.cmd = nil
	}
}

// admin returns a minio-go client with the root credentials.
func (s *minioServer) admin(t testing.TB) *minio.Client {
	t.Helper()
	tr, err := minio.DefaultTransport(true)
	if err != nil {
		t.Fatal(err)
	}
	tr.TLSClientConfig = &tls.Config{RootCAs: s.roots}
	c, err := minio.New(s.addr, &minio.Options{Creds: credentials.NewStaticV4(testUser, testPassword, ""), Secure: true, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// bucketMode says how makeBucket configures object lock.
type bucketMode int

const (
	lockCompliance bucketMode = iota
	lockGovernance
	lockNoDefault
	lockNone
)

var bucketSeq struct {
	mu sync.Mutex
	n  int
}

// makeBucket creates a fresh bucket with the given lock setup and a 1-day
// default retention (the shortest a bucket rule allows).
func makeBucket(t testing.TB, mode bucketMode) string {
	t.Helper()
	bucketSeq.mu.Lock()
	bucketSeq.n++
	name := fmt.Sprintf("fiq-%d-%s", bucketSeq.n, strings.ToLower(randHex(3)))
	bucketSeq.mu.Unlock()
	c := srv.admin(t)
	ctx := context.Background()
	if err := c.MakeBucket(ctx, name, minio.MakeBucketOptions{ObjectLocking: mode != lockNone}); err != nil {
		t.Fatalf("make bucket: %v", err)
	}
	var rm minio.RetentionMode
	switch mode {
	case lockCompliance:
		rm = minio.Compliance
	case lockGovernance:
		rm = minio.Governance
	default:
		return name
	}
	days, unit := uint(1), minio.Days
	if err := c.SetObjectLockConfig(ctx, name, &rm, &days, &unit); err != nil {
		t.Fatalf("set object lock: %v", err)
	}
	return name
}

// testMinIO returns the backend for bucket with test settings.
func testMinIO(t testing.TB, bucket string, now func() time.Time) *MinIO {
	t.Helper()
	m, err := NewMinIO(MinIOConfig{
		Endpoint: srv.addr, Bucket: bucket, RootCAs: srv.roots,
		AccessKey: testUser, SecretKey: testPassword,
		Retention: 24 * time.Hour, Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// httpClient trusts the test server's certificate.
func (s *minioServer) httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.roots}}, Timeout: 10 * time.Second}
}
