package probe

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"firewalliq/probe/bounded"
)

// TestUnboundedReadsScanCheckpoint is the scan-directory part of the finding
// "Unbounded reads and unchecked names" (issue 13): resuming from an output
// directory whose checkpoint.json is a FIFO, a directory or oversized fails
// at once instead of blocking or reading it whole.
func TestUnboundedReadsScanCheckpoint(t *testing.T) {
	tests := []struct {
		name string
		make func(path string) error
		want error
	}{
		{name: "FIFO", make: func(p string) error { return syscall.Mkfifo(p, 0o600) }, want: bounded.ErrNotRegular},
		{name: "directory", make: func(p string) error { return os.Mkdir(p, 0o700) }, want: bounded.ErrNotRegular},
		{name: "symlink to /dev/zero", make: func(p string) error { return os.Symlink("/dev/zero", p) }, want: bounded.ErrNotRegular},
		{name: "oversized", make: func(p string) error {
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				return err
			}
			return os.Truncate(p, bounded.MaxScanCheckpoint+1)
		}, want: bounded.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := tt.make(filepath.Join(dir, CheckpointFile)); err != nil {
				t.Fatal(err)
			}
			d, err := OpenDir(dir, Checkpoint{ScanID: "s", Fingerprint: "f"}, true)
			if err == nil {
				d.Close()
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("OpenDir(resume) = %v, want %v", err, tt.want)
			}
		})
	}
}
