// Package vaulttest starts the real MinIO server for tests: on a random
// 127.0.0.1 port, with TLS (a self-signed certificate it makes) and a
// static KMS key (needed for SSE-S3 and SSE-KMS), in a fresh data
// directory. Object-locked buckets cannot be emptied, so nothing is reused
// between runs. It is imported only by tests.
package vaulttest

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
	"encoding/hex"
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
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Root credentials of the test server.
const (
	User     = "fiq-test-admin"
	Password = "fiq-test-password-0123"
	// KMSKeyName is the server's static KMS key, usable as an SSE-KMS key id.
	KMSKeyName = "fiq-test-key"
)

// FindBinary looks for the server binary: $FIQ_MINIO_BIN, then PATH, then
// GOPATH/bin where scripts/deps.sh installs it. Tests fail (not skip) when
// it is missing: CI installs it, so its absence is a broken setup.
func FindBinary() (string, error) {
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

// Server is a running MinIO process.
type Server struct {
	// Addr is host:port of the S3 API.
	Addr string
	// RootCAs trusts the server's certificate.
	RootCAs *x509.CertPool

	bin, dataDir, certsDir, kmsKey string
	log                            lockedBuffer

	mu      sync.Mutex
	cmd     *exec.Cmd
	buckets int
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

// Start makes a certificate and a KMS key under dir and starts the server.
func Start(dir string) (*Server, error) {
	bin, err := FindBinary()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, dataDir: filepath.Join(dir, "data"), certsDir: filepath.Join(dir, "certs")}
	if err := os.MkdirAll(s.certsDir, 0o700); err != nil {
		return nil, err
	}
	if s.RootCAs, err = writeCert(s.certsDir); err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	s.kmsKey = KMSKeyName + ":" + base64.StdEncoding.EncodeToString(key)
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	return s, s.Restart()
}

// Log returns what the server printed.
func (s *Server) Log() string { return s.log.String() }

// CAFile is the PEM file of the server's (self-signed) certificate.
func (s *Server) CAFile() string { return filepath.Join(s.certsDir, "public.crt") }

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

// Restart starts the (stopped) server again on the same address, data and
// keys, and waits until it reports ready (at most 30 s).
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("minio is already running")
	}
	cport, err := freePort()
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "server", "--quiet", "--address", s.Addr,
		"--console-address", fmt.Sprintf("127.0.0.1:%d", cport), "--certs-dir", s.certsDir, s.dataDir)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+User,
		"MINIO_ROOT_PASSWORD="+Password,
		"MINIO_KMS_SECRET_KEY="+s.kmsKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	cmd.Stdout, cmd.Stderr = &s.log, &s.log
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	hc := s.HTTPClient()
	hc.Timeout = time.Second
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("minio exited: %v\n%s", err, s.log.String())
		default:
		}
		resp, err := hc.Get("https://" + s.Addr + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.cmd = cmd
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-exited
	return fmt.Errorf("minio did not become ready in 30s\n%s", s.log.String())
}

// Stop kills the server (SIGKILL: tests want an abrupt outage, not a
// graceful drain) and waits until its port is closed.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	for i := 0; i < 50; i++ {
		c, err := net.DialTimeout("tcp", s.Addr, 100*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(100 * time.Millisecond)
	}
	s.cmd = nil
}

// HTTPClient trusts the server's certificate.
func (s *Server) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.RootCAs}}, Timeout: 10 * time.Second}
}

// Admin returns a minio-go client with the root credentials.
func (s *Server) Admin() (*minio.Client, error) {
	tr, err := minio.DefaultTransport(true)
	if err != nil {
		return nil, err
	}
	tr.TLSClientConfig = &tls.Config{RootCAs: s.RootCAs}
	return minio.New(s.Addr, &minio.Options{Creds: credentials.NewStaticV4(User, Password, ""), Secure: true, Transport: tr})
}

// Lock says how MakeBucket configures object lock.
type Lock int

// Bucket lock setups.
const (
	Compliance Lock = iota // object lock, COMPLIANCE default retention of 1 day
	Governance             // object lock, GOVERNANCE default retention of 1 day
	NoDefault              // object lock, no default retention rule
	None                   // no object lock
)

// MakeBucket creates a fresh bucket. The default retention is 1 day, the
// shortest a bucket rule allows.
func (s *Server) MakeBucket(ctx context.Context, lock Lock) (string, error) {
	s.mu.Lock()
	s.buckets++
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := fmt.Sprintf("fiq-%d-%s", s.buckets, hex.EncodeToString(b))
	s.mu.Unlock()
	c, err := s.Admin()
	if err != nil {
		return "", err
	}
	if err := c.MakeBucket(ctx, name, minio.MakeBucketOptions{ObjectLocking: lock != None}); err != nil {
		return "", fmt.Errorf("make bucket: %w", err)
	}
	var rm minio.RetentionMode
	switch lock {
	case Compliance:
		rm = minio.Compliance
	case Governance:
		rm = minio.Governance
	default:
		return name, nil
	}
	days, unit := uint(1), minio.Days
	if err := c.SetObjectLockConfig(ctx, name, &rm, &days, &unit); err != nil {
		return "", fmt.Errorf("set object lock: %w", err)
	}
	return name, nil
}

// TB is the part of testing.TB the helpers below use (this package does
// not import testing, so production code cannot link it in by accident).
type TB interface {
	Helper()
	TempDir() string
	Cleanup(func())
	Failed() bool
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// StartFor starts a server for one test in a temporary directory of t,
// stops it when t ends and logs its output when t failed.
func StartFor(t TB) *Server {
	t.Helper()
	s, err := Start(t.TempDir())
	if err != nil {
		t.Fatalf("start minio: %v", err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("minio log:\n%s", s.Log())
		}
	})
	return s
}

// LockedBucket makes a fresh bucket with object lock in compliance mode
// and a default retention of days (the appliance refuses a retention
// shorter than its own retention_days).
func (s *Server) LockedBucket(ctx context.Context, t TB, days uint) string {
	t.Helper()
	name, err := s.MakeBucket(ctx, Compliance)
	if err != nil {
		t.Fatalf("%v", err)
	}
	c, err := s.Admin()
	if err != nil {
		t.Fatalf("%v", err)
	}
	mode, unit := minio.Compliance, minio.Days
	if err := c.SetObjectLockConfig(ctx, name, &mode, &days, &unit); err != nil {
		t.Fatalf("set object lock: %v", err)
	}
	return name
}

// SecretKeyFile writes the server's secret key to a 0600 file in a
// temporary directory of t, as the appliance's vault.secret_key_file
// reads it, and returns its path.
func SecretKeyFile(t TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(Password), 0o600); err != nil {
		t.Fatalf("%v", err)
	}
	return p
}
