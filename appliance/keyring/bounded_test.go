package keyring

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"firewalliq/probe/bounded"
)

// TestUnboundedReadsKeyring is the data-directory part of the finding
// "Unbounded reads and unchecked names" (issue 13): the master key, the
// console certificate and its key are read only from regular files within
// their limits; a device in their place is refused, not read.
func TestUnboundedReadsKeyring(t *testing.T) {
	dir := t.TempDir()
	if _, err := Create(dir, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), []string{"localhost"}); err != nil {
		t.Fatal(err)
	}
	kr, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.TLSCertificate(); err != nil {
		t.Fatalf("TLSCertificate: %v", err)
	}
	swap := func(path string) {
		t.Helper()
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/dev/zero", path); err != nil {
			t.Fatal(err)
		}
	}
	swap(kr.KeyFile)
	if _, err := kr.TLSCertificate(); !errors.Is(err, bounded.ErrNotRegular) {
		t.Errorf("TLSCertificate with /dev/zero as key: %v", err)
	}
	swap(kr.CertFile)
	if _, err := CertFingerprint(kr.CertFile); !errors.Is(err, bounded.ErrNotRegular) {
		t.Errorf("CertFingerprint of /dev/zero: %v", err)
	}
	swap(filepath.Join(dir, "keys", "master.key"))
	if _, err := Load(dir); !errors.Is(err, bounded.ErrNotRegular) {
		t.Errorf("Load with /dev/zero as master key: %v", err)
	}
}
