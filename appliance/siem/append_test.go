package siem

import (
	"context"
	"database/sql"

	"firewalliq/audit"
)

// Append is what journal.Journal.Record does, for this package's tests
// (which cannot import journal: it imports siem).
func (o *Outbox) Append(ctx context.Context, tx *sql.Tx, log *audit.Log, e audit.Entry) (audit.Entry, error) {
	stored, err := log.Append(ctx, tx, e)
	if err != nil {
		return audit.Entry{}, err
	}
	if err := o.Enqueue(ctx, tx, stored); err != nil {
		return audit.Entry{}, err
	}
	return stored, nil
}

// Recorder adapts Append to WorkerOptions.Record.
func (o *Outbox) Recorder(log *audit.Log) func(ctx context.Context, tx *sql.Tx, e audit.Entry) error {
	return func(ctx context.Context, tx *sql.Tx, e audit.Entry) error {
		_, err := o.Append(ctx, tx, log, e)
		return err
	}
}
