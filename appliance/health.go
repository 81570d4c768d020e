package appliance

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"firewalliq/appliance/siem"
	"firewalliq/audit"
	"firewalliq/vault"
)

// Health is the appliance's state for readiness probes and metrics. It
// holds no tenant data, so the HTTP layer may serve it without a principal
// (/readyz) or to loopback and token holders (/metrics).
type Health struct {
	// StoreErr is set when the database does not answer.
	StoreErr string `json:"store_error,omitempty"`
	// AuditIntact is the start-up verification's verdict (a broken log
	// raised the alarm, which an acknowledgement may since have cleared).
	AuditIntact bool `json:"audit_intact"`
	// Alarm is the unacknowledged tamper alarm, if any.
	Alarm *audit.Alarm `json:"alarm,omitempty"`
	// AuditSize is the number of audit entries; CheckpointSize and
	// CheckpointAge describe the latest signed checkpoint.
	AuditSize      int64         `json:"audit_size"`
	CheckpointSize int64         `json:"checkpoint_size"`
	CheckpointAge  time.Duration `json:"checkpoint_age_ns"`
	// Vault is the evidence vault's state; nil without a vault.
	Vault *vault.Status `json:"vault,omitempty"`
	// SIEM is every destination's delivery state (no secrets).
	SIEM []siem.Status `json:"siem"`
}

// Ready reports whether the appliance can do its work: the store answers
// and no tamper alarm is raised (start-up verification raises one when the
// log is broken; only an acknowledgement clears it).
func (h Health) Ready() bool { return h.StoreErr == "" && h.Alarm == nil }

// Health collects the appliance's state. Errors of individual parts are
// reported in the result; the error return is for a canceled context.
func (a *Appliance) Health(ctx context.Context) (Health, error) {
	h := Health{AuditIntact: a.AuditStartup.Report.Intact}
	db := a.st.DB()
	if err := db.PingContext(ctx); err != nil {
		if ctx.Err() != nil {
			return Health{}, ctx.Err()
		}
		h.StoreErr = err.Error()
		return h, nil
	}
	// The reads go through the store's prepared statements: every
	// dashboard and /readyz request makes them.
	rd := a.st.Reader()
	al, raised, err := audit.CurrentAlarm(ctx, rd)
	if err != nil {
		return Health{}, fmt.Errorf("health: %w", err)
	}
	if raised {
		h.Alarm = &al
	}
	var size sql.NullInt64
	if err := rd.QueryRowContext(ctx, `SELECT MAX(seq) FROM audit_entries`).Scan(&size); err != nil {
		return Health{}, fmt.Errorf("health: %w", err)
	}
	h.AuditSize = size.Int64
	var cpTime string
	err = rd.QueryRowContext(ctx, `SELECT size, time FROM audit_checkpoints ORDER BY id DESC LIMIT 1`).Scan(&h.CheckpointSize, &cpTime)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Health{}, fmt.Errorf("health: %w", err)
	}
	if t, perr := time.Parse(time.RFC3339Nano, cpTime); err == nil && perr == nil {
		h.CheckpointAge = a.Now().Sub(t)
	}
	if a.Evidence != nil {
		st := a.Evidence.Status()
		h.Vault = &st
	}
	if h.SIEM, err = a.outbox.Statuses(ctx); err != nil {
		return Health{}, fmt.Errorf("health: %w", err)
	}
	return h, nil
}
