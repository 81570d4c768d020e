package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Stats is the log's size and how far signed checkpoints cover it, for
// health checks and metrics.
type Stats struct {
	// Size is the number of entries (the last seq).
	Size int64 `json:"size"`
	// CheckpointSize is the tree size of the latest stored checkpoint and
	// CheckpointTime when it was made; zero when there is none yet.
	CheckpointSize int64     `json:"checkpoint_size"`
	CheckpointTime time.Time `json:"checkpoint_time,omitzero"`
}

// ReadStats reads Stats with two indexed lookups (no scan), so /metrics and
// /readyz can call it on every request.
func ReadStats(ctx context.Context, q Queryer) (Stats, error) {
	var st Stats
	size, _, err := readHead(ctx, q)
	if err != nil {
		return Stats{}, err
	}
	st.Size = size
	var when string
	err = q.QueryRowContext(ctx, `SELECT size, time FROM audit_checkpoints ORDER BY id DESC LIMIT 1`).Scan(&st.CheckpointSize, &when)
	if errors.Is(err, sql.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return Stats{}, fmt.Errorf("read audit checkpoint: %w", err)
	}
	if t, err := time.Parse(timeFormat, when); err == nil {
		st.CheckpointTime = t
	}
	return st, nil
}
