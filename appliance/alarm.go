package appliance

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"firewalliq/appliance/keyring"
	"firewalliq/audit"
)

// AuditStatePath is the audit state file of a data directory,
// keys/audit.state: the last signed checkpoint note, next to the key that
// signed it (see audit.ReadState and docs/audit.md).
func AuditStatePath(dataDir string) string {
	return filepath.Join(dataDir, "keys", audit.StateFileName)
}

// AuditGuardEvery is how often serve re-verifies the whole audit log and
// checks it against the anchors in the evidence bucket.
const AuditGuardEvery = 24 * time.Hour

// auditGuard times the guard loop: Every is measured on the appliance's
// clock (a.Now), Poll is how often the loop looks (real time).
type auditGuard struct {
	Every, Poll time.Duration
}

// RunAuditGuards runs, until ctx ends, the checks that catch what the
// incremental start-up verification cannot: a full verification from seq 1
// (at start, daily and after each acknowledgement of the alarm) and the
// anchor check (at start and daily, when an evidence vault is configured).
// Either raises the tamper alarm on a problem; other failures go to onErr
// and are retried at the next poll.
func (a *Appliance) RunAuditGuards(ctx context.Context, onErr func(error)) {
	a.runAuditGuards(ctx, auditGuard{Every: AuditGuardEvery, Poll: time.Minute}, onErr)
}

func (a *Appliance) runAuditGuards(ctx context.Context, g auditGuard, onErr func(error)) {
	var lastFull, lastAnchors time.Time
	lastAck := int64(-1)
	t := time.NewTicker(g.Poll)
	defer t.Stop()
	for {
		now := a.Now()
		ack, err := latestAck(ctx, a.st.DB())
		if err != nil && ctx.Err() == nil {
			onErr(fmt.Errorf("audit guard: %w", err))
		}
		if err == nil && (lastFull.IsZero() || now.Sub(lastFull) >= g.Every || ack != lastAck) {
			if _, err := a.VerifyAuditLog(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				onErr(fmt.Errorf("audit full verification: %w", err))
			} else {
				lastFull, lastAck = now, ack
			}
		}
		if a.Evidence != nil && (lastAnchors.IsZero() || now.Sub(lastAnchors) >= g.Every) {
			if _, err := a.CheckAuditAnchors(ctx); err != nil && !errors.Is(err, ErrAnchorsInconsistent) {
				if ctx.Err() != nil {
					return
				}
				onErr(fmt.Errorf("audit anchor check: %w", err))
			} else {
				lastAnchors = now
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// latestAck is the seq of the newest acknowledgement (0 without one).
func latestAck(ctx context.Context, db *sql.DB) (int64, error) {
	var seq int64
	err := db.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM audit_alarms WHERE kind = 'ack'`).Scan(&seq)
	return seq, err
}

// VerifyAuditLog verifies the whole audit log from seq 1 with the state
// file (audit.Log.VerifyAll; acknowledged breaks are not reported again)
// and raises the tamper alarm when it finds a problem.
func (a *Appliance) VerifyAuditLog(ctx context.Context) (audit.Report, error) {
	db := a.st.DB()
	rep, err := a.log.VerifyAll(ctx, db)
	if err != nil {
		return rep, err
	}
	if !rep.Intact {
		if _, _, err := a.log.RaiseAlarm(ctx, db, *rep.Problem, 0); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// ErrAnchorsInconsistent means the audit log does not extend a checkpoint
// anchored in the evidence bucket: history was rewritten or rolled back.
// The tamper alarm is raised with it.
var ErrAnchorsInconsistent = errors.New("audit log is not consistent with an anchored checkpoint")

// CheckAuditAnchors reads every checkpoint anchored in the evidence bucket
// and proves the log extends each (audit.CheckWitnesses). On a problem it
// raises the tamper alarm and returns an error wrapping
// ErrAnchorsInconsistent. It returns how many anchors it checked.
func (a *Appliance) CheckAuditAnchors(ctx context.Context) (int, error) {
	if a.Evidence == nil {
		return 0, nil
	}
	anchors, err := a.Evidence.AnchoredCheckpoints(ctx)
	if err != nil {
		return 0, err
	}
	pub, err := a.Keys.Public(keyring.Audit)
	if err != nil {
		return 0, err
	}
	notes := make([][]byte, len(anchors))
	for i, an := range anchors {
		notes[i] = an.Note
	}
	db := a.st.DB()
	n, p, err := audit.CheckWitnesses(ctx, db, pub, a.log.Origin(), notes)
	if err != nil {
		return n, err
	}
	if p != nil {
		p.Reason = anchors[n].Key + ": " + p.Reason
		if _, _, err := a.log.RaiseAlarm(ctx, db, *p, 0); err != nil {
			return n, err
		}
		return n, fmt.Errorf("%w: %v", ErrAnchorsInconsistent, p)
	}
	return n, nil
}
