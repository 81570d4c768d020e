package appliance

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestInitIntoEmptyDir: the deb and rpm packages create the data directory
// empty (owned by the service user) before anyone runs init, so init must
// accept an existing empty directory, and still refuse a non-empty one
// without touching it.
func TestInitIntoEmptyDir(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string)
		wantErr error
	}{
		{name: "missing directory", prepare: func(t *testing.T, dir string) {}},
		{name: "existing empty directory", prepare: func(t *testing.T, dir string) {
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "existing non-empty directory", wantErr: ErrAlreadyInitialized, prepare: func(t *testing.T, dir string) {
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "evidence"), []byte("keep"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			tt.prepare(t, dir)
			cfg := DefaultConfig()
			cfg.DataDir = dir
			_, err := Init(context.Background(), cfg, InitOptions{Admin: "alice"})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Init = %v, want %v", err, tt.wantErr)
				}
				if b, err := os.ReadFile(filepath.Join(dir, "evidence")); err != nil || string(b) != "keep" {
					t.Fatalf("refused init touched the directory: %q %v", b, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Init: %v", err)
			}
			fi, err := os.Stat(filepath.Join(dir, "firewalliq.db"))
			if err != nil || !fi.Mode().IsRegular() {
				t.Fatalf("no database after init: %v", err)
			}
			if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
				t.Fatalf("data dir mode after init: %v %v", fi.Mode(), err)
			}
		})
	}
}
