package evidence

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"firewalliq/appliance/store"
	"firewalliq/audit"
	"firewalliq/vault"
)

// ErrCheckpointMoved means a newer checkpoint was signed between reading
// the checkpoint and proving consistency to it; the next anchor attempt
// succeeds.
var ErrCheckpointMoved = errors.New("audit checkpoint moved during anchoring")

// AuditLedger adapts the audit log to vault.Ledger for daily anchoring.
type AuditLedger struct {
	// DB holds the audit tables.
	DB *sql.DB
	// Log, when it has a signing key, signs a fresh checkpoint at anchor
	// time so the anchor covers everything up to now; otherwise the latest
	// stored checkpoint is used.
	Log *audit.Log
}

var _ vault.Ledger = AuditLedger{}

// LatestCheckpoint implements vault.Ledger.
func (a AuditLedger) LatestCheckpoint(ctx context.Context) (int64, []byte, error) {
	if a.Log != nil {
		var cp audit.Checkpoint
		err := store.InTx(ctx, a.DB, func(tx *sql.Tx) error {
			var err error
			cp, _, err = a.Log.Checkpoint(ctx, tx)
			return err
		})
		if err == nil {
			return cp.Size, []byte(cp.Note), nil
		}
		if !errors.Is(err, audit.ErrNoSigner) {
			return 0, nil, fmt.Errorf("checkpoint: %w", err)
		}
	}
	cp, err := audit.LatestStoredCheckpoint(ctx, a.DB)
	if err != nil {
		return 0, nil, err
	}
	return cp.Size, []byte(cp.Note), nil
}

// Entries implements vault.Ledger: entries seq from+1 .. to, one JSON
// object (audit.Entry) per line.
func (a AuditLedger) Entries(ctx context.Context, from, to int64) ([]byte, error) {
	es, err := audit.ReadEntries(ctx, a.DB, from+1, to)
	if err != nil {
		return nil, err
	}
	if int64(len(es)) != to-from {
		return nil, fmt.Errorf("audit entries %d..%d: read %d", from+1, to, len(es))
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b) // Encode appends the newline
	for _, e := range es {
		if err := enc.Encode(e); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

// ConsistencyProof implements vault.Ledger with the audit package's proof
// (JSON of audit.ConsistencyProof), which 'firewalliq audit verify-proof'
// checks offline with the audit public key.
func (a AuditLedger) ConsistencyProof(ctx context.Context, oldSize, newSize int64) ([]byte, error) {
	p, err := audit.ProveConsistency(ctx, a.DB, oldSize)
	if err != nil {
		return nil, err
	}
	if n, ok := noteSize(p.Checkpoint); !ok || n != newSize {
		return nil, fmt.Errorf("prove %d..%d: %w", oldSize, newSize, ErrCheckpointMoved)
	}
	return json.Marshal(p)
}

// noteSize reads the tree size, the second line of a checkpoint note.
func noteSize(note string) (int64, bool) {
	lines := strings.SplitN(note, "\n", 3)
	if len(lines) < 3 {
		return 0, false
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	return n, err == nil
}
