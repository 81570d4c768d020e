package audit

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Action is what an entry records. The vocabulary is closed: Append refuses
// an action that is not listed in Actions, so a typo cannot create a new kind
// of event that no auditor or SIEM rule knows about.
type Action string

// The action vocabulary. docs/audit.md describes each; keep them in step.
const (
	ActApplianceInit  Action = "appliance.init"
	ActApplianceStart Action = "appliance.start"
	ActConfigChange   Action = "config.change"

	ActAuthLogin          Action = "auth.login"
	ActAuthLoginFailed    Action = "auth.login.failed"
	ActAuthLogout         Action = "auth.logout"
	ActAuthLockout        Action = "auth.lockout"
	ActAuthPasswordChange Action = "auth.password.change"
	ActAuthTOTPEnrol      Action = "auth.totp.enrol"
	ActAuthTOTPConfirm    Action = "auth.totp.confirm"
	ActAuthTOTPFailed     Action = "auth.totp.failed"
	ActAuthRecoveryUse    Action = "auth.recovery.use"
	ActAuthStepUp         Action = "auth.stepup"
	ActAuthStepUpFailed   Action = "auth.stepup.failed"
	ActAuthSessionRevoke  Action = "auth.session.revoke"

	ActTenantCreate     Action = "tenant.create"
	ActUserCreate       Action = "user.create"
	ActUserUpdate       Action = "user.update"
	ActUserRoleChange   Action = "user.role.change"
	ActUserDisable      Action = "user.disable"
	ActTokenCreate      Action = "token.create"
	ActTokenRevoke      Action = "token.revoke"
	ActAccessDenied     Action = "access.denied"
	ActSupportOpen      Action = "support.open"
	ActSupportClose     Action = "support.close"
	ActAnomalyAlert     Action = "anomaly.alert"
	ActApprovalRequest  Action = "approval.request"
	ActApprovalGrant    Action = "approval.grant"
	ActApprovalDeny     Action = "approval.deny"
	ActApprovalVoid     Action = "approval.void"
	ActApprovalComplete Action = "approval.complete"

	ActScopeSign     Action = "scope.sign"
	ActScopeRegister Action = "scope.register"
	ActScopeDelete   Action = "scope.delete"

	ActScanRequest  Action = "scan.request"
	ActScanApprove  Action = "scan.approve"
	ActScanStart    Action = "scan.start"
	ActScanComplete Action = "scan.complete"
	ActScanFail     Action = "scan.fail"
	ActScanCancel   Action = "scan.cancel"

	ActEvidenceUpload Action = "evidence.upload"
	ActEvidenceExport Action = "evidence.export"
	ActEvidenceAnchor Action = "evidence.anchor"
	ActReportSign     Action = "report.sign"

	ActSIEMDestinationCreate Action = "siem.destination.create"
	ActSIEMDestinationDelete Action = "siem.destination.delete"
	ActSIEMDeliveryFailed    Action = "siem.delivery.failed"

	ActAuditCheckpoint Action = "audit.checkpoint"
	ActAuditTamper     Action = "audit.tamper"
	ActAuditTamperAck  Action = "audit.tamper.ack"
)

// Actions returns the closed vocabulary.
func Actions() []Action {
	return []Action{
		ActApplianceInit, ActApplianceStart, ActConfigChange,
		ActAuthLogin, ActAuthLoginFailed, ActAuthLogout, ActAuthLockout, ActAuthPasswordChange,
		ActAuthTOTPEnrol, ActAuthTOTPConfirm, ActAuthTOTPFailed, ActAuthRecoveryUse,
		ActAuthStepUp, ActAuthStepUpFailed, ActAuthSessionRevoke,
		ActTenantCreate, ActUserCreate, ActUserUpdate, ActUserRoleChange, ActUserDisable,
		ActTokenCreate, ActTokenRevoke, ActAccessDenied, ActSupportOpen, ActSupportClose, ActAnomalyAlert,
		ActApprovalRequest, ActApprovalGrant, ActApprovalDeny, ActApprovalVoid, ActApprovalComplete,
		ActScopeSign, ActScopeRegister, ActScopeDelete,
		ActScanRequest, ActScanApprove, ActScanStart, ActScanComplete, ActScanFail, ActScanCancel,
		ActEvidenceUpload, ActEvidenceExport, ActEvidenceAnchor, ActReportSign,
		ActSIEMDestinationCreate, ActSIEMDestinationDelete, ActSIEMDeliveryFailed,
		ActAuditCheckpoint, ActAuditTamper, ActAuditTamperAck,
	}
}

// Entry is one audit record. Append fills Seq, Time, PrevHash and Hash.
type Entry struct {
	Seq       int64           `json:"seq"`
	Time      time.Time       `json:"time"`
	Tenant    string          `json:"tenant"` // "" for appliance-wide events
	ActorID   string          `json:"actor_id"`
	ActorName string          `json:"actor_name"`
	ActorIP   string          `json:"actor_ip"`
	UserAgent string          `json:"user_agent"`
	Action    Action          `json:"action"`
	Object    string          `json:"object"`
	Details   json.RawMessage `json:"details,omitempty"` // a JSON object, or empty
	PrevHash  []byte          `json:"prev_hash"`
	Hash      []byte          `json:"hash"`
}

// Errors returned by Append.
var (
	// ErrUnknownAction means the action is not in the closed vocabulary.
	ErrUnknownAction = errors.New("unknown audit action")
	// ErrBadDetails means Details is not a JSON object.
	ErrBadDetails = errors.New("audit details must be a JSON object")
)

// Options configure a Log.
type Options struct {
	// Now is the clock for entry times; time.Now when nil.
	Now func() time.Time
}

// Log appends entries to the audit tables of a database that has Schema.
type Log struct {
	now     func() time.Time
	actions map[Action]bool
}

// New returns a Log.
func New(opts Options) *Log {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	l := &Log{now: opts.Now, actions: map[Action]bool{}}
	for _, a := range Actions() {
		l.actions[a] = true
	}
	return l
}

// Append writes e inside the caller's transaction tx, so the state change it
// records and the entry commit together or not at all. If Append fails, the
// caller must fail its action (the log is fail-closed). It returns the entry
// as stored, with Seq, Time, PrevHash and Hash set.
func (l *Log) Append(ctx context.Context, tx *sql.Tx, e Entry) (Entry, error) {
	if !l.actions[e.Action] {
		return Entry{}, fmt.Errorf("audit append %q: %w", e.Action, ErrUnknownAction)
	}
	if len(e.Details) == 0 {
		e.Details = json.RawMessage("{}")
	}
	var obj map[string]any
	if err := json.Unmarshal(e.Details, &obj); err != nil || obj == nil {
		return Entry{}, fmt.Errorf("audit append %q: %w", e.Action, ErrBadDetails)
	}
	e.Time = l.now().UTC()
	var prevSeq int64
	var prev []byte
	err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1`).Scan(&prevSeq, &prev)
	if errors.Is(err, sql.ErrNoRows) {
		prev = make([]byte, sha256.Size)
	} else if err != nil {
		return Entry{}, fmt.Errorf("audit append: %w", err)
	}
	e.Seq = prevSeq + 1
	e.PrevHash = prev
	sum := sha256.Sum256(append(append([]byte{}, prev...), []byte(fmt.Sprint(e.Seq, e.Time.Format(time.RFC3339Nano), e.Tenant, e.ActorID, e.ActorName, e.ActorIP, e.UserAgent, e.Action, e.Object, string(e.Details)))...))
	e.Hash = sum[:]
	_, err = tx.ExecContext(ctx, `INSERT INTO audit_entries (seq, time, tenant, actor_id, actor_name, actor_ip, user_agent, action, object, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Seq, e.Time.Format(time.RFC3339Nano), e.Tenant, e.ActorID, e.ActorName, e.ActorIP, e.UserAgent, string(e.Action), e.Object, string(e.Details), e.PrevHash, e.Hash)
	if err != nil {
		return Entry{}, fmt.Errorf("audit append: %w", err)
	}
	return e, nil
}

// Schema creates the audit tables. The appliance's store applies it as a
// migration; verification tools read the same tables from the file alone.
const Schema = `
CREATE TABLE audit_entries (
    seq        INTEGER PRIMARY KEY,
    time       TEXT NOT NULL,
    tenant     TEXT NOT NULL,
    actor_id   TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    actor_ip   TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    action     TEXT NOT NULL,
    object     TEXT NOT NULL,
    details    TEXT NOT NULL,
    prev_hash  BLOB NOT NULL,
    hash       BLOB NOT NULL
) STRICT;
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
`
