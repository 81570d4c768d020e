// Package journal is the appliance's one audit write path. Every service
// records its audit entries through Journal.Record inside the transaction
// that makes the change it records, and Record both appends the entry to the
// tamper-evident audit log and queues its SIEM event, so neither can happen
// without the other or without the change. A test (TestOneAuditWritePath)
// fails when any other non-test file under appliance/ or ui/ calls the audit
// log's write methods.
package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"firewalliq/appliance/siem"
	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// errNoLog means a Journal was built without a database or audit log.
var errNoLog = errors.New("journal: audit log required")

// Journal appends audit entries and queues their SIEM events.
type Journal struct {
	db  *sql.DB
	log *audit.Log
	out *siem.Outbox
}

// New returns the journal over db's audit tables. out may be nil (tests and
// tools without SIEM forwarding); the outbox's worker still picks up every
// entry later, because it reads the audit log from its own cursor.
func New(db *sql.DB, log *audit.Log, out *siem.Outbox) (*Journal, error) {
	if db == nil || log == nil {
		return nil, errNoLog
	}
	return &Journal{db: db, log: log, out: out}, nil
}

// Record appends e to the audit log and queues its SIEM event, both inside
// tx, and returns the stored entry (with its seq, time and hashes). If
// either write fails, the caller's transaction must fail too (audit is
// fail-closed): return the error from the transaction's function.
func (j *Journal) Record(ctx context.Context, tx *sql.Tx, e audit.Entry) (audit.Entry, error) {
	stored, err := j.log.Append(ctx, tx, e)
	if err != nil {
		return audit.Entry{}, fmt.Errorf("audit %s: %w", e.Action, err)
	}
	if j.out != nil {
		if err := j.out.Enqueue(ctx, tx, stored); err != nil {
			return audit.Entry{}, fmt.Errorf("siem enqueue %s: %w", e.Action, err)
		}
	}
	return stored, nil
}

// RecordAlone records entries in a transaction of their own: for refusals
// and failures, whose own transaction (if any) was rolled back.
func (j *Journal) RecordAlone(ctx context.Context, entries ...audit.Entry) error {
	return store.InTx(ctx, j.db, func(tx *sql.Tx) error {
		for _, e := range entries {
			if _, err := j.Record(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
}

// Acknowledge records an audit tamper alarm's acknowledgement inside tx
// (audit.Log.AcknowledgeTx: the entry, the alarm row and a new signed
// checkpoint) and queues the entry's SIEM event.
func (j *Journal) Acknowledge(ctx context.Context, tx *sql.Tx, a audit.Acknowledgement) (audit.Entry, audit.Checkpoint, error) {
	e, cp, err := j.log.AcknowledgeTx(ctx, tx, a)
	if err != nil {
		return audit.Entry{}, audit.Checkpoint{}, err
	}
	if j.out != nil {
		if err := j.out.Enqueue(ctx, tx, e); err != nil {
			return audit.Entry{}, audit.Checkpoint{}, fmt.Errorf("siem enqueue %s: %w", e.Action, err)
		}
	}
	return e, cp, nil
}

// Checkpoint signs a checkpoint of the log's head in its own transaction,
// unless the latest one already covers it (then it returns that one and
// false).
func (j *Journal) Checkpoint(ctx context.Context) (audit.Checkpoint, bool, error) {
	var cp audit.Checkpoint
	var made bool
	err := store.InTx(ctx, j.db, func(tx *sql.Tx) error {
		var err error
		cp, made, err = j.log.Checkpoint(ctx, tx)
		return err
	})
	return cp, made, err
}
