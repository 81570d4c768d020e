package evidence

import (
	"context"
	"database/sql"
	"log/slog"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/journal"
	"firewalliq/appliance/siem"
	"firewalliq/audit"
	"firewalliq/vault"
)

// wire shows (and compile-checks) how the composition root opens the
// evidence service with the real identity service, SIEM outbox and audit
// log. appliance.Open does this; it is not called by the tests.
func wire(ctx context.Context, db *sql.DB, log *audit.Log, authSvc *auth.Service, outbox *siem.Outbox, cfg Config, dataDir string, production bool, logger *slog.Logger) (*Service, error) {
	jr, err := journal.New(db, log, outbox)
	if err != nil {
		return nil, err
	}
	return Open(ctx, Options{
		DB:         db,
		Audit:      log,
		Config:     cfg, // appliance.Config.Vault
		DataDir:    dataDir,
		Production: production,
		Gate:       authSvc,
		Ledger:     AuditLedger{DB: db, Log: log},
		Append:     jr.Record,
		OnAlert: func(st vault.SpoolStatus) {
			logger.Warn("evidence spool near its bound", "bytes", st.Bytes, "max", st.MaxBytes, "full", st.Full)
		},
		OnError: func(err error) { logger.Error("evidence vault", "err", err) },
	})
	// Then: go svc.Run(ctx) next to the other background loops, and
	// svc.Add(ctx, tenant, scan, name, r) for every evidence object.
}

var _ = wire
