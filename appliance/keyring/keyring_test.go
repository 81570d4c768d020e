package keyring

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCreateLoadSeal(t *testing.T) {
	dir := t.TempDir()
	fp, err := Create(dir, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if len(fp) != 64 {
		t.Fatalf("fingerprint %q", fp)
	}
	kr, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := CertFingerprint(kr.CertFile)
	if err != nil || got != fp {
		t.Fatalf("CertFingerprint = %q, %v; want %q", got, err, fp)
	}
	seen := map[string]bool{}
	for _, p := range []string{Audit, Job, Report} {
		pub, err := kr.Public(p)
		if err != nil {
			t.Fatal(err)
		}
		if seen[string(pub)] {
			t.Fatalf("%s key reused", p)
		}
		seen[string(pub)] = true
		priv, _ := kr.Signer(p)
		if !ed25519.Verify(pub, []byte("m"), ed25519.Sign(priv, []byte("m"))) {
			t.Fatalf("%s key pair does not match", p)
		}
	}
	for _, name := range []string{"keys/master.key", "keys/audit.key", "keys/job.key", "keys/report.key", "tls/console.key"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %04o, want 0600", name, fi.Mode().Perm())
		}
	}

	sealed, err := kr.Seal([]byte("secret"), []byte("totp:u1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("secret")) {
		t.Fatal("plaintext visible in sealed data")
	}
	pt, err := kr.Open(sealed, []byte("totp:u1"))
	if err != nil || string(pt) != "secret" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	if _, err := kr.Open(sealed, []byte("totp:u2")); !errors.Is(err, ErrSealed) {
		t.Fatalf("Open with other ad: %v, want ErrSealed", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := kr.Open(sealed, []byte("totp:u1")); !errors.Is(err, ErrSealed) {
		t.Fatalf("Open of flipped data: %v, want ErrSealed", err)
	}
	if _, err := Create(dir, time.Now(), nil); err == nil {
		t.Fatal("Create overwrote existing key material")
	}
}
