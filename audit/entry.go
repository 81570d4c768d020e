package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/tlog"
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
	// Security keys (WebAuthn, appliance/auth/webauthn.go).
	ActAuthKeyRegister Action = "auth.key.register"
	ActAuthKeyUse      Action = "auth.key.use"
	ActAuthKeyFailed   Action = "auth.key.failed"
	ActAuthKeyClone    Action = "auth.key.clone"
	ActAuthKeyRemove   Action = "auth.key.remove"
	ActAuthKeyPolicy   Action = "auth.key.policy"

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
	ActApprovalUse      Action = "approval.use"

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
	ActEvidenceSpool  Action = "evidence.spool.alert"
	// ActEvidenceSpooled records an evidence object's SHA-256 as it enters
	// the spool, before the uploader can see it.
	ActEvidenceSpooled Action = "evidence.spool"
	ActReportSign      Action = "report.sign"

	ActSIEMDestinationCreate Action = "siem.destination.create"
	ActSIEMDestinationDelete Action = "siem.destination.delete"
	ActSIEMDeliveryFailed    Action = "siem.delivery.failed"

	ActAuditCheckpoint Action = "audit.checkpoint"
	ActAuditTamper     Action = "audit.tamper"
	ActAuditTamperAck  Action = "audit.tamper.ack"

	ActAlertAck Action = "alert.ack"

	ActPolicyCreate         Action = "policy.create"
	ActPolicyEvaluate       Action = "policy.evaluate"
	ActPolicyBaselineAccept Action = "policy.baseline.accept"
	// Scan service (appliance/scan, docs/scans.md).
	ActScanDeny   Action = "scan.deny"
	ActScanRefuse Action = "scan.refuse"
	ActScanResume Action = "scan.resume"
	// ActScanStop records the end of a cancelled scan's run: its job
	// became cancelled (scan.cancel records the user's request).
	ActScanStop       Action = "scan.stop"
	ActScopeKeyAdd    Action = "scope.key.add"
	ActScopeKeyRevoke Action = "scope.key.revoke"
	ActScopeRevoke    Action = "scope.revoke"
	// Scan schedules.
	ActScanSchedule       Action = "scan.schedule"
	ActScanScheduleVoid   Action = "scan.schedule.void"
	ActScanScheduleMissed Action = "scan.schedule.missed"

	// Access reviews (appliance/report/review).
	ActReviewCreate      Action = "review.create"
	ActReviewDecide      Action = "review.decide"
	ActReviewSign        Action = "review.sign"
	ActReviewOverdue     Action = "review.overdue"
	ActSensorTokenCreate Action = "sensor.token.create"
	ActSensorEnroll      Action = "sensor.enroll"
	ActSensorRevoke      Action = "sensor.revoke"
	ActSensorSilent      Action = "sensor.silent"
)

// Actions returns the closed vocabulary.
func Actions() []Action {
	return []Action{
		ActApplianceInit, ActApplianceStart, ActConfigChange,
		ActAuthLogin, ActAuthLoginFailed, ActAuthLogout, ActAuthLockout, ActAuthPasswordChange,
		ActAuthTOTPEnrol, ActAuthTOTPConfirm, ActAuthTOTPFailed, ActAuthRecoveryUse,
		ActAuthStepUp, ActAuthStepUpFailed, ActAuthSessionRevoke,
		ActAuthKeyRegister, ActAuthKeyUse, ActAuthKeyFailed, ActAuthKeyClone, ActAuthKeyRemove, ActAuthKeyPolicy,
		ActTenantCreate, ActUserCreate, ActUserUpdate, ActUserRoleChange, ActUserDisable,
		ActTokenCreate, ActTokenRevoke, ActAccessDenied, ActSupportOpen, ActSupportClose, ActAnomalyAlert,
		ActApprovalRequest, ActApprovalGrant, ActApprovalDeny, ActApprovalVoid, ActApprovalComplete, ActApprovalUse,
		ActScopeSign, ActScopeRegister, ActScopeDelete,
		ActScanRequest, ActScanApprove, ActScanStart, ActScanComplete, ActScanFail, ActScanCancel,
		ActEvidenceUpload, ActEvidenceExport, ActEvidenceAnchor, ActEvidenceSpool, ActReportSign,
		ActEvidenceSpooled,
		ActSIEMDestinationCreate, ActSIEMDestinationDelete, ActSIEMDeliveryFailed,
		ActAuditCheckpoint, ActAuditTamper, ActAuditTamperAck,
		ActAlertAck,
		ActPolicyCreate, ActPolicyEvaluate, ActPolicyBaselineAccept,
		ActScanDeny, ActScanRefuse, ActScanResume, ActScanStop, ActScopeKeyAdd, ActScopeKeyRevoke, ActScopeRevoke,
		ActScanSchedule, ActScanScheduleVoid, ActScanScheduleMissed,
		ActReviewCreate, ActReviewDecide, ActReviewSign, ActReviewOverdue,
		ActSensorTokenCreate, ActSensorEnroll, ActSensorRevoke, ActSensorSilent,
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

// Errors returned by Append and the other Log methods.
var (
	// ErrUnknownAction means the action is not in the closed vocabulary.
	ErrUnknownAction = errors.New("unknown audit action")
	// ErrBadDetails means Details is not a JSON object.
	ErrBadDetails = errors.New("audit details must be a JSON object")
	// ErrNoSigner means a checkpoint was requested from a Log made without
	// a signing key.
	ErrNoSigner = errors.New("audit log has no checkpoint signing key")
)

// DefaultOrigin names the log in checkpoints when Options.Origin is empty.
const DefaultOrigin = "firewalliq.audit"

// Options configure a Log. The zero value appends without checkpoints.
type Options struct {
	// Now is the clock for entry times; time.Now when nil.
	Now func() time.Time
	// Signer is the appliance audit key (keys/audit.key). Without it the
	// Log appends entries but signs no checkpoints.
	Signer ed25519.PrivateKey
	// Origin names the log in every checkpoint and is the signed note's key
	// name: no spaces, no '+'. DefaultOrigin when empty.
	Origin string
	// CheckpointEvery signs a checkpoint, inside the appending transaction,
	// whenever the tree size reaches a multiple of it (config
	// audit.checkpoint_every). 0 disables count-based checkpoints.
	CheckpointEvery int64
	// StatePath is the state file (keys/audit.state; see ReadState) that
	// holds the last checkpoint this appliance signed. With it, Startup
	// verifies from that checkpoint, a log with entries but no state file
	// raises the alarm, and every checkpoint committed is written to it
	// (SyncState). Empty: no state file (tools and tests).
	StatePath string
}

// Log appends entries to the audit tables of a database that has Schema. It
// is safe for concurrent use; SQLite serialises the appending transactions.
type Log struct {
	now     func() time.Time
	actions map[Action]bool
	signer  *noteSigner // nil without Options.Signer
	origin  string
	every   int64
	state   string // StatePath

	mu sync.Mutex
	// frVerified says l.fr was verified: recomputed from the entries by a
	// verification, or grown only by this Log's own appends from such a
	// frontier (or from the empty log). Only a verified frontier is ever
	// signed; a frontier reloaded from the database's tree column is not
	// one until a verification from the trusted checkpoint vouches for it.
	frVerified bool
	// trusted is the newest checkpoint known to be committed and verified:
	// the state file's, then each one SyncState accepts. nil before
	// Startup (or without a state file until the first sign).
	trusted *Checkpoint
	// lastSigned is the note of the last checkpoint this Log signed; once
	// it is the database's newest, SyncState accepts it without a proof.
	lastSigned string
	// fr caches the right edge of the tree after the last Append, keyed by
	// the head entry's seq and hash. Append checks the key against the
	// database at the start of every transaction, so a rolled-back
	// transaction or another writer only costs a reload, never a wrong hash.
	fr frontier
	// cur is the transaction of the last successful Append. Within it the
	// head is already known and the INSERT already prepared: parsing SQL
	// was the largest cost of a batched append. Holding tx also keeps its
	// address from being reused by a later transaction.
	cur struct {
		tx  *sql.Tx
		ins *sql.Stmt
	}
}

const insertEntrySQL = `INSERT INTO audit_entries (seq, entry, hash, tree) VALUES (?, ?, ?, ?)`

// New returns a Log. It panics only on an invalid Origin with a Signer set,
// a programming error caught by the first test that builds one.
func New(opts Options) *Log {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Origin == "" {
		opts.Origin = DefaultOrigin
	}
	l := &Log{now: opts.Now, actions: map[Action]bool{}, origin: opts.Origin, every: opts.CheckpointEvery, state: opts.StatePath}
	for _, a := range Actions() {
		l.actions[a] = true
	}
	if opts.Signer != nil {
		s, err := newNoteSigner(opts.Origin, opts.Signer)
		if err != nil {
			panic("audit.New: " + err.Error())
		}
		l.signer = s
	}
	return l
}

// Origin returns the name the Log's checkpoints carry.
func (l *Log) Origin() string { return l.origin }

// Append writes e inside the caller's transaction tx, so the state change it
// records and the entry commit together or not at all. If Append fails, the
// caller must fail its action (the log is fail-closed). It returns the entry
// as stored, with Seq, Time, PrevHash and Hash set.
//
// Append also stores the Merkle hashes the entry completes and, every
// CheckpointEvery entries, a signed checkpoint in the same transaction.
func (l *Log) Append(ctx context.Context, tx *sql.Tx, e Entry) (Entry, error) {
	if !l.actions[e.Action] {
		return Entry{}, fmt.Errorf("audit append %q: %w", e.Action, ErrUnknownAction)
	}
	if len(e.Details) == 0 {
		e.Details = json.RawMessage("{}")
	}
	if !isJSONObject(e.Details) {
		return Entry{}, fmt.Errorf("audit append %q: %w", e.Action, ErrBadDetails)
	}
	// Bytes >= 0x80 occur only inside JSON strings, so replacing invalid
	// UTF-8 keeps the JSON valid and makes it decodable (ParseCanonical
	// requires UTF-8); encoding/json does the same when it marshals.
	d, err := normalizeDetails(bytes.ToValidUTF8(e.Details, []byte("\uFFFD")))
	if err != nil || len(d) > maxField {
		return Entry{}, fmt.Errorf("audit append %q: %w", e.Action, ErrBadDetails)
	}
	e.Details = d
	// Text fields often come from outside (a login form's user name, a
	// User-Agent header). Store them in a form ParseCanonical accepts, or
	// one hostile request would make its entry unreadable for every reader
	// built on ReadEntries (SIEM outbox, anchors, export, proofs), while
	// refusing the append would let such a request go unaudited.
	e.Tenant, e.ActorID, e.ActorName = textField(e.Tenant), textField(e.ActorID), textField(e.ActorName)
	e.ActorIP, e.UserAgent, e.Object = textField(e.ActorIP), textField(e.UserAgent), textField(e.Object)
	// Truncate to what the text column keeps, so the returned entry hashes
	// to the stored one: RFC3339Nano keeps nanoseconds, drops the monotonic
	// clock reading and the zone (UTC).
	e.Time = l.now().UTC().Round(0)

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cur.tx != tx {
		// A new transaction: anything may have happened since the last
		// one (rollback, another process), so check the cache key.
		l.cur.tx, l.cur.ins = nil, nil
		headSeq, head, err := readHead(ctx, tx)
		if err != nil {
			return Entry{}, fmt.Errorf("audit append: %w", err)
		}
		if l.fr.size != headSeq || !bytes.Equal(l.fr.head, head) {
			fr, err := loadFrontier(ctx, tx, headSeq, head)
			if err != nil {
				return Entry{}, fmt.Errorf("audit append: %w", err)
			}
			// Someone else wrote (or a transaction rolled back): the
			// stored edge is only trusted again after verification. An
			// empty log has nothing to verify.
			l.fr, l.frVerified = fr, headSeq == 0
		}
		ins, err := tx.PrepareContext(ctx, insertEntrySQL)
		if err != nil {
			return Entry{}, fmt.Errorf("audit append: %w", err)
		}
		l.cur.tx, l.cur.ins = tx, ins
	}
	e.Seq = l.fr.size + 1
	e.PrevHash = append([]byte(nil), l.fr.head...)
	enc := Canonical(e)
	sum := sha256.Sum256(enc)
	e.Hash = sum[:]
	next := l.fr.clone()
	stored, err := next.add(e.Hash)
	if err == nil {
		_, err = l.cur.ins.ExecContext(ctx, e.Seq, enc, e.Hash, stored)
	}
	if err == nil && l.signer != nil && l.every > 0 && e.Seq%l.every == 0 && l.frVerified {
		// Only over a verified frontier and never while the alarm is
		// raised; otherwise skip: the checkpoint loop verifies first.
		var raised bool
		if _, raised, err = CurrentAlarm(ctx, tx); err == nil && !raised {
			_, err = l.storeCheckpoint(ctx, tx, next)
		}
	}
	if err != nil {
		// The transaction is in an unknown state; start over next time.
		l.cur.tx, l.cur.ins = nil, nil
		return Entry{}, fmt.Errorf("audit append: %w", err)
	}
	l.fr = next
	return e, nil
}

// textField returns s as Append stores a text field: invalid UTF-8
// replaced by U+FFFD, then cut to maxField bytes at a rune boundary.
func textField(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) > maxField {
		cut := maxField
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

// leafHash is the Merkle leaf for an entry: tlog.RecordHash over the entry
// hash, that is SHA-256(0x00 || entry hash) as RFC 6962 specifies for leaves.
func leafHash(entryHash []byte) tlog.Hash { return tlog.RecordHash(entryHash) }

// normalizeDetails returns details compact and with <, >, & (and U+2028/9)
// escaped: exactly what encoding/json emits for a RawMessage, so an entry
// re-hashes byte for byte after any JSON round trip, indented or not.
// Whitespace is not evidence.
func normalizeDetails(d json.RawMessage) (json.RawMessage, error) {
	var buf, esc bytes.Buffer
	if err := json.Compact(&buf, d); err != nil {
		return nil, err
	}
	json.HTMLEscape(&esc, buf.Bytes())
	return json.RawMessage(esc.Bytes()), nil
}
