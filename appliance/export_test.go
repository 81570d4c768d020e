package appliance

import (
	"context"
	"database/sql"

	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// DB exposes the database to this directory's tests (the appliance_test
// package too); other code reaches state only through the services.
func (a *Appliance) DB() *sql.DB { return a.st.DB() }

// RecordForTest writes e through the journal in its own transaction.
func (a *Appliance) RecordForTest(ctx context.Context, e audit.Entry) error {
	return store.InTx(ctx, a.st.DB(), func(tx *sql.Tx) error {
		_, err := a.journal.Record(ctx, tx, e)
		return err
	})
}
