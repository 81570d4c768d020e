package appliance

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"

	"firewalliq/appliance/auth"
	"firewalliq/audit"
)

// AlarmAckCanonical is the canonical request a tamper-alarm acknowledgement's
// step-up is bound to: the alarm's entry and the admin's comment, so a code
// given for one acknowledgement cannot be replayed for another. It is an
// auth.OpRequest (JSON, tenant ""), so a client can answer the step-up
// challenge with auth.Service.StepUpFor.
func AlarmAckCanonical(alarmSeq int64, comment string) []byte {
	return auth.OpRequest(auth.OpAuditAlarmAck, "", map[string]string{"alarm": strconv.FormatInt(alarmSeq, 10), "comment": comment})
}

// AcknowledgeTamperAlarm lets an appliance admin acknowledge the
// raised audit tamper alarm with a fresh step-up TOTP code. The identity
// service checks the role and spends the code (auditing success or
// failure); the audit log then records the acknowledgement and opens a new
// signed segment that references the break. Scans and evidence exports work
// again afterwards. Nothing in the broken history is repaired.
func (a *Appliance) AcknowledgeTamperAlarm(ctx context.Context, p auth.Principal, code, comment string) (audit.Entry, audit.Checkpoint, error) {
	alarm, raised, err := audit.CurrentAlarm(ctx, a.Store.DB())
	if err != nil {
		return audit.Entry{}, audit.Checkpoint{}, err
	}
	if !raised {
		return audit.Entry{}, audit.Checkpoint{}, fmt.Errorf("acknowledge: %w", audit.ErrNoAlarm)
	}
	canonical := AlarmAckCanonical(alarm.Seq, comment)
	// StepUp checks the role and the code (and audits a refusal); the
	// grant it records is then spent in the same transaction as the
	// acknowledgement, so neither commits without the other.
	if _, err := a.Auth.StepUp(ctx, p, auth.OpAuditAlarmAck, p.TenantID, canonical, code); err != nil {
		return audit.Entry{}, audit.Checkpoint{}, fmt.Errorf("acknowledge: %w", err)
	}
	var e audit.Entry
	var cp audit.Checkpoint
	err = a.Store.InTx(ctx, func(tx *sql.Tx) error {
		if err := a.Auth.UseStepUp(ctx, tx, p, auth.OpAuditAlarmAck, canonical, ""); err != nil {
			return fmt.Errorf("acknowledge: %w", err)
		}
		var err error
		e, cp, err = a.Audit.AcknowledgeTx(ctx, tx, audit.Acknowledgement{
			Tenant: p.TenantID, ActorID: p.UserID, ActorName: p.Name, ActorIP: p.Client.IP, UserAgent: p.Client.UserAgent,
			StepUpVerified: true, Comment: comment, AlarmSeq: alarm.Seq,
		})
		return err
	})
	return e, cp, err
}
