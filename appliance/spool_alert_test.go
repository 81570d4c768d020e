package appliance_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"firewalliq/appliance"
	"firewalliq/audit"
)

// TestSpoolAlertAudited: when the evidence spool crosses its alert mark,
// the appliance records an evidence.spool.alert entry (which the SIEM outbox
// forwards), so an operator hears of it before evidence is turned away.
func TestSpoolAlertAudited(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 16, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	cfg := appliance.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Production = false
	cfg.Vault.Backend = "local"
	cfg.Vault.LocalDir = filepath.Join(t.TempDir(), "evidence")
	cfg.Vault.SpoolMaxBytes = 1 << 20
	cfg.Vault.SpoolAlertAt = 0.01 // about 10 KiB
	if _, err := appliance.Init(ctx, cfg, appliance.InitOptions{Admin: "root", Now: clock}); err != nil {
		t.Fatal(err)
	}
	a, err := appliance.Open(ctx, cfg, clock)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Evidence.Add(ctx, "t1", "scan-1", "big.pcapng", bytes.NewReader(make([]byte, 64<<10))); err != nil {
		t.Fatal(err)
	}
	var head int64
	if err := a.DB().QueryRowContext(ctx, `SELECT MAX(seq) FROM audit_entries`).Scan(&head); err != nil {
		t.Fatal(err)
	}
	entries, err := audit.ReadEntries(ctx, a.DB(), 1, head)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Action == audit.ActEvidenceSpool {
			return
		}
	}
	t.Fatalf("no %s entry among %d entries", audit.ActEvidenceSpool, len(entries))
}
