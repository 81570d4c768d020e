package keys

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"firewalliq/probe/bounded"
)

func TestRoundTrip(t *testing.T) {
	pub, priv, err := Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(t.TempDir(), "k")
	if err := WritePair(base, pub, priv); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(base + ".key")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode = %04o, want 0600", fi.Mode().Perm())
	}
	gotPriv, err := ReadPrivate(base + ".key")
	if err != nil {
		t.Fatal(err)
	}
	gotPub, err := ReadPublic(base + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if !gotPriv.Equal(priv) || !gotPub.Equal(pub) {
		t.Fatal("round trip changed the key")
	}
	if err := WritePair(base, pub, priv); err == nil {
		t.Fatal("WritePair overwrote an existing key")
	}
	if len(ID(pub)) != 16 {
		t.Fatalf("ID length = %d", len(ID(pub)))
	}
}

func TestReadPrivateRefusesLooseMode(t *testing.T) {
	_, priv, _ := Generate(nil)
	data, _ := MarshalPrivate(priv)
	path := filepath.Join(t.TempDir(), "loose.key")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPrivate(path); err == nil {
		t.Fatal("a 0644 private key was accepted")
	}
}

func TestParseRejects(t *testing.T) {
	pub, _, _ := Generate(bytes.NewReader(make([]byte, 64)))
	pubPEM, _ := MarshalPublic(pub)
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"garbage", []byte("not pem")},
		{"public as private", pubPEM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParsePrivate(tt.in); !errors.Is(err, ErrNoPEM) {
				t.Fatalf("err = %v, want ErrNoPEM", err)
			}
		})
	}
	if _, err := ParsePublic([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")); err == nil {
		t.Fatal("bad DER accepted")
	}
	if got := ID(ed25519.PublicKey(make([]byte, 32))); got != "66687aadf862bd77" {
		t.Fatalf("ID(zero key) = %s", got)
	}
}

// TestUnboundedReadsKeys is the key-file part of the finding "Unbounded
// reads and unchecked names" (issue 13): a key path naming /dev/zero, a FIFO,
// a directory or a huge file fails at once, naming the file.
func TestUnboundedReadsKeys(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, bounded.MaxKeyFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		want error
	}{
		{name: "/dev/zero", path: "/dev/zero", want: bounded.ErrNotRegular},
		{name: "FIFO", path: fifo, want: bounded.ErrNotRegular},
		{name: "directory", path: dir, want: bounded.ErrNotRegular},
		{name: "oversized", path: big, want: bounded.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ReadPublic(tt.path); !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.path) {
				t.Errorf("ReadPublic = %v, want %v naming the file", err, tt.want)
			}
			if _, err := ReadPrivate(tt.path); !errors.Is(err, tt.want) {
				t.Errorf("ReadPrivate = %v, want %v", err, tt.want)
			}
		})
	}
}
