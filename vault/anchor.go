package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrNothingToAnchor means the audit log has not grown since the previous
// anchor, so there is nothing new to write.
var ErrNothingToAnchor = errors.New("audit log has not grown since the last anchor")

// Ledger is what daily anchoring needs from the audit log. The appliance
// adapts the audit package to it; vault does not import audit.
type Ledger interface {
	// LatestCheckpoint returns the newest signed checkpoint: the tree size
	// it covers and its signed-note text.
	LatestCheckpoint(ctx context.Context) (size int64, note []byte, err error)
	// Entries returns the entries at tree indexes [from, to) (sequence
	// numbers from+1 .. to) as JSON Lines, one entry per line.
	Entries(ctx context.Context, from, to int64) ([]byte, error)
	// ConsistencyProof returns, as a self-describing JSON document in the
	// ledger's own proof format (the appliance uses the audit package's, so
	// 'firewalliq audit verify-proof' checks it offline), the RFC 6962
	// consistency proof from tree size oldSize (>= 1) to newSize.
	ConsistencyProof(ctx context.Context, oldSize, newSize int64) ([]byte, error)
}

// AnchorResult describes what Anchor spooled.
type AnchorResult struct {
	Day        string   `json:"day"`       // YYYY-MM-DD (UTC)
	FromSize   int64    `json:"from_size"` // previous anchor's tree size
	ToSize     int64    `json:"to_size"`   // this checkpoint's tree size
	Checkpoint []byte   `json:"checkpoint"`
	Keys       []string `json:"keys"`
}

// Anchor spools the audit entries added since prevSize, the latest signed
// checkpoint and (unless prevSize is 0) the consistency proof from prevSize
// to it, under
// appliance/anchors/<day>/. Names carry the tree sizes, so a second anchor
// on the same day adds objects rather than replacing any. The objects are
// uploaded (and each recorded) like any evidence; Anchor returns once they
// are durable in the spool.
func (v *Vault) Anchor(ctx context.Context, l Ledger, day time.Time, prevSize int64) (AnchorResult, error) {
	size, note, err := l.LatestCheckpoint(ctx)
	if err != nil {
		return AnchorResult{}, fmt.Errorf("anchor: checkpoint: %w", err)
	}
	if size < prevSize {
		// The log shrank: a rolled-back database. Never paper over it.
		return AnchorResult{}, fmt.Errorf("anchor: checkpoint size %d is below the previous anchor's %d", size, prevSize)
	}
	if size == prevSize {
		return AnchorResult{}, ErrNothingToAnchor
	}
	entries, err := l.Entries(ctx, prevSize, size)
	if err != nil {
		return AnchorResult{}, fmt.Errorf("anchor: entries: %w", err)
	}
	type object struct {
		name string
		body []byte
	}
	objs := []object{{fmt.Sprintf("entries-%d-%d.jsonl", prevSize, size), entries}}
	// The first anchor has nothing to be consistent with.
	if prevSize > 0 {
		proof, err := l.ConsistencyProof(ctx, prevSize, size)
		if err != nil {
			return AnchorResult{}, fmt.Errorf("anchor: consistency proof: %w", err)
		}
		if !json.Valid(proof) {
			return AnchorResult{}, fmt.Errorf("anchor: consistency proof is not JSON")
		}
		objs = append(objs, object{fmt.Sprintf("consistency-%d-%d.json", prevSize, size), proof})
	}
	objs = append(objs, object{fmt.Sprintf("checkpoint-%d.txt", size), note})
	res := AnchorResult{Day: day.UTC().Format(time.DateOnly), FromSize: prevSize, ToSize: size, Checkpoint: note}
	for _, o := range objs {
		key, err := AnchorKey(day, o.name)
		if err != nil {
			return AnchorResult{}, err
		}
		if _, err := v.Add(ctx, key, bytes.NewReader(o.body)); err != nil {
			return AnchorResult{}, fmt.Errorf("anchor: %w", err)
		}
		res.Keys = append(res.Keys, key)
	}
	return res, nil
}
