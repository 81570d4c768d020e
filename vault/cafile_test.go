package vault

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestUnboundedReadsCAFile is the vault part of the finding "Unbounded reads
// and unchecked names" (issue 13): a CA file that is a device, a FIFO, a
// directory or larger than 1 MiB is a configuration error, refused at once.
func TestUnboundedReadsCAFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.pem")
	if err := os.WriteFile(big, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 1<<20+1); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, path, msg string }{
		{"/dev/zero", "/dev/zero", "not a regular file"},
		{"FIFO", fifo, "not a regular file"},
		{"directory", dir, "not a regular file"},
		{"oversized", big, "file too large (limit 1 MiB)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewMinIO(MinIOConfig{Endpoint: "127.0.0.1:9", Bucket: "b", AccessKey: "a", SecretKey: "s", CAFile: tt.path})
			if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("NewMinIO = %v, want ErrBadConfig saying %q", err, tt.msg)
			}
		})
	}
}
