package appliance

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate for 127.0.0.1, valid from
// notBefore to notAfter, and its key into dir as name.crt and name.key
// (0600), and returns their paths.
func writeCert(t *testing.T, dir, name string, notBefore, notAfter time.Time) (string, string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: notBefore, NotAfter: notAfter, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestTLSConfig: tls.cert_file and tls.key_file come from the file and
// FIQ_TLS_* variables, must be set together, and Load refuses a file
// that is missing or not PEM, a key of another certificate, a key others
// may read, and a certificate outside its validity, each naming the key.
func TestTLSConfig(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	cert, key := writeCert(t, dir, "good", now.Add(-time.Hour), now.AddDate(1, 0, 0))
	_, otherKey := writeCert(t, dir, "other", now.Add(-time.Hour), now.AddDate(1, 0, 0))
	expired, expiredKey := writeCert(t, dir, "expired", now.AddDate(-2, 0, 0), now.AddDate(-1, 0, 0))
	future, futureKey := writeCert(t, dir, "future", now.Add(time.Hour), now.AddDate(1, 0, 0))
	loose := filepath.Join(dir, "loose.key")
	data, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(loose, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Sources and the both-or-neither rule.
	file := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(file, []byte("tls:\n  cert_file: "+cert+"\n  key_file: "+key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	if c.TLS != (TLSConfig{}) {
		t.Fatalf("default: %+v", c.TLS)
	}
	if err := c.LoadFile(file); err != nil || c.TLS.CertFile != cert || c.TLS.KeyFile != key || c.Validate() != nil {
		t.Fatalf("file: %+v %v %v", c.TLS, err, c.Validate())
	}
	env := map[string]string{"FIQ_TLS_CERT_FILE": expired, "FIQ_TLS_KEY_FILE": expiredKey}
	if err := c.LoadEnv(func(k string) string { return env[k] }, nil); err != nil || c.TLS.CertFile != expired || c.TLS.KeyFile != expiredKey {
		t.Fatalf("env over file: %+v %v", c.TLS, err)
	}
	for _, half := range []TLSConfig{{CertFile: cert}, {KeyFile: key}} {
		c := DefaultConfig()
		c.TLS = half
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "tls.cert_file and tls.key_file") {
			t.Fatalf("%+v: %v", half, err)
		}
	}

	tests := []struct {
		name string
		tls  TLSConfig
		want string // "" for success, else a part of the error
	}{
		{"good", TLSConfig{cert, key}, ""},
		{"missing certificate", TLSConfig{filepath.Join(dir, "nope.crt"), key}, "tls.cert_file"},
		{"certificate not PEM", TLSConfig{notPEM, key}, "tls.cert_file " + notPEM + ": no PEM certificate"},
		{"missing key", TLSConfig{cert, filepath.Join(dir, "nope.key")}, "tls.key_file"},
		{"key of another certificate", TLSConfig{cert, otherKey}, "tls.key_file " + otherKey + " is not the private key of tls.cert_file"},
		{"key not PEM", TLSConfig{cert, notPEM}, "tls.key_file " + notPEM + " is not the private key"},
		{"key readable by others", TLSConfig{cert, loose}, "tls.key_file " + loose + ": mode 0644"},
		{"expired", TLSConfig{expired, expiredKey}, "tls.cert_file " + expired + ": expired at"},
		{"not yet valid", TLSConfig{future, futureKey}, "tls.cert_file " + future + ": not valid before"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.tls.Load(now)
			if tc.want == "" {
				if err != nil || got.Leaf == nil || got.Leaf.Subject.CommonName != "good" {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v, want invalid configuration with %q", err, tc.want)
			}
		})
	}
}
