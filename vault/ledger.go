package vault

import (
	"context"
	"errors"
	"time"
)

// ErrNotRecorded means a spool record has no entry in the spool ledger (the
// audit log): it was not spooled through Add, or its entry no longer
// matches. Such a record is quarantined, never uploaded.
var ErrNotRecorded = errors.New("spool record not recorded in the audit log")

// ErrTampered means a spool record's bytes or header differ from what was
// recorded when it entered the spool. The record is quarantined (moved to
// corrupt/, never uploaded) and the ledger raises the tamper alarm.
var ErrTampered = errors.New("spooled evidence differs from what was recorded at spooling")

// SpoolEntry is what the ledger recorded when a record entered the spool:
// its SHA-256 and size, fixed before the uploader can see the record.
type SpoolEntry struct {
	// ID is the spool record's id (its file name without .rec).
	ID     string `json:"record"`
	Key    string `json:"key"`
	Tenant string `json:"tenant"`
	SHA256 string `json:"sha256"` // hex
	Size   int64  `json:"size"`
	// Seq is the sequence number of the evidence.spool audit entry.
	Seq int64 `json:"seq"`
	// Spooled is when the record entered the spool.
	Spooled time.Time `json:"spooled"`
}

// Quarantine describes a record moved aside instead of being uploaded.
type Quarantine struct {
	// Recorded is what the ledger holds for the record (zero when the
	// record was never recorded).
	Recorded SpoolEntry
	// Found is the record's header as it is now on disk, and FoundSHA256
	// the hash of its payload as it is now ("" when it could not be read).
	Found       RecordHeader
	FoundSHA256 string
	// ID is the record's id.
	ID string
	// Reason says what differs.
	Reason string
}

// SpoolLedger is the audit log's record of what entered the spool. When a
// Vault has one, a record becomes visible to the uploader only after its
// hash was recorded, and the uploader uploads only a record whose header
// and payload match that entry; anything else is quarantined and reported.
// The appliance implements it with evidence.spool audit entries; vault
// imports nothing of ours.
type SpoolLedger interface {
	// Spooled records e (its Seq unset) and returns the entry's sequence
	// number. It is called once the record is durable under a temporary
	// name and before it becomes visible; an error discards the record.
	Spooled(ctx context.Context, e SpoolEntry) (int64, error)
	// Recorded returns what Spooled recorded for the record id, or an
	// error wrapping ErrNotRecorded.
	Recorded(ctx context.Context, id string) (SpoolEntry, error)
	// Quarantined reports (raises the alarm for) a record that differs from
	// its entry. It is called before the record is moved aside; an error
	// leaves the record where it is, and the next upload attempt reports
	// it again.
	Quarantined(ctx context.Context, q Quarantine) error
}
