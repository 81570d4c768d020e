package evidence

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"firewalliq/audit"
	"firewalliq/vault"
)

// AnchorCheckEvery is how often the anchor loop looks whether today's
// anchor is due.
const AnchorCheckEvery = time.Hour

// LastAnchor returns the newest anchor's day and tree size (zero values
// before the first anchor).
func (s *Service) LastAnchor(ctx context.Context) (day string, size int64, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT day, to_size FROM evidence_anchors ORDER BY to_size DESC LIMIT 1`).Scan(&day, &size)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("last anchor: %w", err)
	}
	return day, size, nil
}

// AnchorNow writes (spools) the audit entries since the last anchor, the
// latest signed checkpoint and the consistency proof from the last anchor's
// tree size to the WORM bucket, then records the anchor and its audit entry
// in one transaction. vault.ErrNothingToAnchor means the log has not grown.
func (s *Service) AnchorNow(ctx context.Context) (vault.AnchorResult, error) {
	if s.ledger == nil {
		return vault.AnchorResult{}, fmt.Errorf("anchor: %w: no audit ledger configured", vault.ErrBadConfig)
	}
	_, prev, err := s.LastAnchor(ctx)
	if err != nil {
		return vault.AnchorResult{}, err
	}
	res, err := s.v.Anchor(ctx, s.ledger, s.now(), prev)
	if err != nil {
		return vault.AnchorResult{}, err
	}
	// The signed checkpoint rides in the entry's details, so a SIEM that
	// receives the audit stream holds an independent copy of it.
	det, err := json.Marshal(map[string]any{"day": res.Day, "from_size": res.FromSize, "to_size": res.ToSize, "keys": res.Keys, "checkpoint": string(res.Checkpoint)})
	if err != nil {
		return vault.AnchorResult{}, err
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.appendEntry(ctx, tx, audit.Entry{ActorID: systemID, ActorName: systemName, Action: audit.ActEvidenceAnchor, Object: res.Day, Details: det}); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO evidence_anchors (to_size, from_size, day, checkpoint, created_at) VALUES (?, ?, ?, ?, ?)`,
			res.ToSize, res.FromSize, res.Day, string(res.Checkpoint), s.now().UTC().Format(time.RFC3339Nano))
		return err
	})
	if err != nil {
		// The objects are spooled and will upload; the next anchor covers
		// the same range again, so nothing is lost, only repeated.
		return vault.AnchorResult{}, fmt.Errorf("anchor: record: %w", err)
	}
	if s.onAnchor != nil {
		s.onAnchor(ctx, res)
	}
	return res, nil
}

// runAnchors anchors once per UTC day: whenever the last anchor is from an
// earlier day (or there is none), it anchors now.
func (s *Service) runAnchors(ctx context.Context) {
	for ctx.Err() == nil {
		day, _, err := s.LastAnchor(ctx)
		if err == nil && day != s.now().UTC().Format(time.DateOnly) {
			_, err = s.AnchorNow(ctx)
			if errors.Is(err, vault.ErrNothingToAnchor) {
				err = nil
			}
		}
		if err != nil && s.onError != nil {
			s.onError(err)
		}
		s.sleep(ctx, AnchorCheckEvery)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// AnchoredCheckpoints reads back the checkpoint notes of every anchor in
// the evidence store (not the spool: only what reached the bucket). They
// are the witnesses 'audit verify --anchors' and serve's daily check prove
// the log still extends; the caller verifies them with the audit key.
func (s *Service) AnchoredCheckpoints(ctx context.Context) ([]vault.AnchorNote, error) {
	return vault.ReadAnchorCheckpoints(ctx, s.v.Store())
}

// ReadAnchors builds the configured backend (no spool, nothing written to
// the bucket) and reads the anchored checkpoint notes back, for offline
// commands such as 'audit verify --anchors'.
func ReadAnchors(ctx context.Context, cfg Config, dataDir string, now func() time.Time) ([]vault.AnchorNote, error) {
	st, err := cfg.NewStore(dataDir, now)
	if err != nil {
		return nil, err
	}
	return vault.ReadAnchorCheckpoints(ctx, st)
}
