package scan

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"firewalliq/appliance/store"
)

// Job states (scan_jobs.state).
const (
	JobIssued    = "issued"
	JobRunning   = "running"
	JobCompleted = "completed"
	JobFailed    = "failed"
	JobCancelled = "cancelled"
	JobRefused   = "refused"
)

// transitions lists, per state, the states a job may move to. A finished
// job (completed, failed, cancelled, refused) never moves again.
var transitions = map[string][]string{
	JobIssued:  {JobRunning, JobRefused, JobCancelled, JobFailed},
	JobRunning: {JobCompleted, JobFailed, JobCancelled},
}

// ErrTransition means a job cannot move from its current state to the one
// asked for (it already finished, or was never started).
var ErrTransition = errors.New("job state transition not allowed")

// SetJobState moves job jobNo to state to, in the caller's transaction
// (with the audit entry of the change), recording reason (a refusal or
// failure code and message). Entering running sets started_at; entering a
// final state sets finished_at.
func SetJobState(ctx context.Context, tx *sql.Tx, jobNo int64, to, reason string, at time.Time) error {
	var cur string
	if err := tx.QueryRowContext(ctx, `SELECT state FROM scan_jobs WHERE no = ?`, jobNo).Scan(&cur); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("scan job %d: %w", jobNo, store.ErrNotFound)
		}
		return fmt.Errorf("scan job %d: %w", jobNo, err)
	}
	if !slices.Contains(transitions[cur], to) {
		return fmt.Errorf("%w: job %d is %s, cannot become %s", ErrTransition, jobNo, cur, to)
	}
	col := "finished_at"
	if to == JobRunning {
		col = "started_at"
	}
	// col is one of two fixed names.
	_, err := tx.ExecContext(ctx, `UPDATE scan_jobs SET state = ?, reason = ?, `+col+` = ? WHERE no = ? AND state = ?`,
		to, reason, at.UTC().Format(time.RFC3339Nano), jobNo, cur)
	if err != nil {
		return fmt.Errorf("scan job %d: %w", jobNo, err)
	}
	return nil
}

// Unfinished is a job that was issued or running when the appliance
// stopped: recovery resumes it from NextBatch under the same signed job,
// or fails it with a reason; it never starts over silently.
type Unfinished struct {
	No        int64
	ID        string
	ScanID    string
	TenantID  string
	State     string
	Signed    []byte
	NextBatch int
}

// UnfinishedJobs lists the jobs left issued or running, oldest first.
func UnfinishedJobs(ctx context.Context, db *sql.DB) ([]Unfinished, error) {
	rows, err := db.QueryContext(ctx, `SELECT no, id, scan_id, tenant_id, state, signed, next_batch FROM scan_jobs
		WHERE state IN ('issued','running') ORDER BY no`)
	if err != nil {
		return nil, fmt.Errorf("unfinished jobs: %w", err)
	}
	defer rows.Close()
	var out []Unfinished
	for rows.Next() {
		var u Unfinished
		if err := rows.Scan(&u.No, &u.ID, &u.ScanID, &u.TenantID, &u.State, &u.Signed, &u.NextBatch); err != nil {
			return nil, fmt.Errorf("unfinished jobs: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("unfinished jobs: %w", err)
	}
	return out, nil
}
