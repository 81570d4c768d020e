package scan

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestEvidenceReasonHidesPaths(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"full spool disk", fmt.Errorf("spool: %w", &fs.PathError{Op: "write", Path: "/var/lib/firewalliq/spool/x.tmp", Err: syscall.ENOSPC}),
			"evidence spool: write: no space left on device"},
		{"rename", fmt.Errorf("spool: %w", &os.LinkError{Op: "rename", Old: "/var/lib/a", New: "/var/lib/b", Err: syscall.EXDEV}),
			"evidence spool: rename: invalid cross-device link"},
		{"other", errors.New("vault: bucket is not locked"), "vault: bucket is not locked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := evidenceReason(tt.err)
			if got != tt.want || strings.Contains(got, "/var/lib") {
				t.Fatalf("evidenceReason = %q, want %q", got, tt.want)
			}
		})
	}
}
