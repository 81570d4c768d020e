package appliance

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestHealth: a fresh appliance is ready, with init's entries and a signed
// checkpoint covering them.
func TestHealth(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 14, 0, 5, 0, time.UTC)
	cfg := DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	if _, err := Init(ctx, cfg, InitOptions{Admin: "alice", Now: func() time.Time { return now }}); err != nil {
		t.Fatal(err)
	}
	a, err := Open(ctx, cfg, func() time.Time { return now.Add(time.Minute) })
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	h, err := a.Health(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Ready() || !h.AuditIntact || h.AuditSize != 3 || h.CheckpointSize != 3 || h.CheckpointAge != time.Minute || h.Vault != nil || len(h.SIEM) != 0 {
		t.Fatalf("health %+v", h)
	}
	if err := a.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}
