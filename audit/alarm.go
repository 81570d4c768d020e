package audit

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Errors about the tamper alarm.
var (
	// ErrTamperAlarm means a tamper alarm is raised and not acknowledged:
	// scans and evidence exports must refuse to run (see CheckNoAlarm).
	ErrTamperAlarm = errors.New("audit tamper alarm raised; an admin must acknowledge it with step-up MFA")
	// ErrNoAlarm means there is no unacknowledged alarm to acknowledge.
	ErrNoAlarm = errors.New("no unacknowledged audit tamper alarm")
	// ErrStepUpRequired means an acknowledgement came without a verified
	// step-up MFA.
	ErrStepUpRequired = errors.New("acknowledging a tamper alarm requires step-up MFA")
)

// Alarm is a raised tamper alarm: the audit.tamper entry at Seq recorded
// that verification found BadSeq broken for Reason.
type Alarm struct {
	Seq    int64  `json:"seq"`
	BadSeq int64  `json:"bad_seq"`
	Reason string `json:"reason"`
}

// CurrentAlarm returns the unacknowledged alarm, if any.
func CurrentAlarm(ctx context.Context, q Queryer) (Alarm, bool, error) {
	var a Alarm
	var kind string
	err := q.QueryRowContext(ctx, `SELECT seq, kind, bad_seq, reason FROM audit_alarms ORDER BY seq DESC LIMIT 1`).Scan(&a.Seq, &kind, &a.BadSeq, &a.Reason)
	if errors.Is(err, sql.ErrNoRows) {
		return Alarm{}, false, nil
	} else if err != nil {
		return Alarm{}, false, fmt.Errorf("read audit alarm: %w", err)
	}
	if kind == "raise" {
		return a, true, nil
	}
	// An 'ack' row counts only when the log itself records the
	// acknowledgement: its seq is an audit.tamper.ack entry naming the
	// alarm, and a stored checkpoint covers it (the acknowledgement signs
	// one in its transaction). A row inserted by someone with write access
	// to the file but not the key therefore leaves the alarm raised.
	raise, err := lastRaise(ctx, q, a.Seq)
	if errors.Is(err, sql.ErrNoRows) {
		return Alarm{}, false, nil // an ack with no alarm before it clears nothing
	} else if err != nil {
		return Alarm{}, false, err
	}
	if err := ackRecorded(ctx, q, a.Seq, raise.Seq); err != nil {
		raise.Reason += "; acknowledgement at seq " + strconv.FormatInt(a.Seq, 10) + " not recorded in the log: " + err.Error()
		return raise, true, nil
	}
	return Alarm{}, false, nil
}

// lastRaise is the newest 'raise' row before seq.
func lastRaise(ctx context.Context, q Queryer, before int64) (Alarm, error) {
	var a Alarm
	err := q.QueryRowContext(ctx, `SELECT seq, bad_seq, reason FROM audit_alarms WHERE kind = 'raise' AND seq < ? ORDER BY seq DESC LIMIT 1`, before).Scan(&a.Seq, &a.BadSeq, &a.Reason)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Alarm{}, fmt.Errorf("read audit alarm: %w", err)
	}
	return a, err
}

// ackRecorded checks that entry ackSeq acknowledges alarm alarmSeq and that
// a stored checkpoint covers it.
func ackRecorded(ctx context.Context, q Queryer, ackSeq, alarmSeq int64) error {
	e, err := ReadEntry(ctx, q, ackSeq)
	if err != nil {
		return fmt.Errorf("entry %d: %w", ackSeq, err)
	}
	var d struct {
		AlarmSeq int64 `json:"alarm_seq"`
	}
	if e.Action != ActAuditTamperAck || json.Unmarshal(e.Details, &d) != nil || d.AlarmSeq != alarmSeq {
		return fmt.Errorf("entry %d is not the acknowledgement of alarm %d", ackSeq, alarmSeq)
	}
	var n int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM audit_checkpoints WHERE size >= ?`, ackSeq).Scan(&n); err != nil {
		return fmt.Errorf("read audit checkpoints: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("no signed checkpoint covers entry %d", ackSeq)
	}
	return nil
}

// CheckNoAlarm returns an error wrapping ErrTamperAlarm while an alarm is
// raised and not acknowledged. Scan and evidence-export code calls it (in
// its own transaction) and refuses to work when it fails; a read error also
// refuses, fail-closed.
func CheckNoAlarm(ctx context.Context, q Queryer) error {
	a, raised, err := CurrentAlarm(ctx, q)
	if err != nil {
		return err
	}
	if raised {
		return fmt.Errorf("%w (entry %d: seq %d: %s)", ErrTamperAlarm, a.Seq, a.BadSeq, a.Reason)
	}
	return nil
}

// StartupResult is what Startup found and did.
type StartupResult struct {
	Report Report `json:"report"`
	// Alarm is set while an alarm is raised (new or from before).
	Alarm *Alarm `json:"alarm,omitempty"`
	// Raised is true when this start-up raised the alarm.
	Raised bool `json:"raised"`
}

// Startup verifies the log incrementally and signs nothing it has not
// verified. With a state file (Options.StatePath) it starts at the state
// file's signed checkpoint, whose root the stored tree must reproduce, and
// checks that no stored checkpoint or verified point vanished (none at all
// while entries exist, a gap, a size below an earlier one or below the
// state file's). Without one it starts where the last start-up
// verification ended (audit_verified). When the log is intact it signs a
// checkpoint of the head (if it grew), records it as the new verified
// point and writes it to the state file. When it is broken it repairs
// nothing and signs nothing: it raises the tamper alarm, an audit.tamper
// entry of its own plus an audit_alarms row, unless an alarm is already
// raised.
//
// It needs a Log with a Signer. Only an I/O or signing failure is an error.
func (l *Log) Startup(ctx context.Context, db *sql.DB) (StartupResult, error) {
	var res StartupResult
	if l.signer == nil {
		return res, ErrNoSigner
	}
	pub := l.signer.key.Public().(ed25519.PublicKey)
	opts := VerifyOptions{Public: pub, Origin: l.origin, RequireState: l.state != ""}
	var from int64
	if l.state != "" {
		note, ok, err := ReadStateNote(l.state)
		if err != nil && !errors.Is(err, ErrBadState) {
			return res, fmt.Errorf("audit start-up: %w", err)
		}
		if ok {
			// A state file that is not a verifying note is reported by
			// the verification (KindVanished), like a missing one.
			opts.State = note
			if err == nil {
				if cp, err := openOrigin(note, pub, l.origin); err == nil {
					l.mu.Lock()
					if l.trusted == nil || l.trusted.Size <= cp.Size {
						l.trusted = &cp
					}
					l.mu.Unlock()
				}
			}
		}
		// A checkpoint this Log signed and committed (init's) moves the
		// trust forward before verifying from it.
		if err := l.SyncState(ctx, db); err != nil {
			var ue *UnverifiedError
			if !errors.As(err, &ue) {
				return res, fmt.Errorf("audit start-up: %w", err)
			}
		}
		l.mu.Lock()
		if l.trusted != nil {
			opts.State, from = []byte(l.trusted.Note), l.trusted.Size
		}
		l.mu.Unlock()
	} else {
		err := db.QueryRowContext(ctx, `SELECT size FROM audit_verified ORDER BY id DESC LIMIT 1`).Scan(&from)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return res, fmt.Errorf("audit start-up: %w", err)
		}
	}
	rep, fr, err := verifyFromFrontier(ctx, db, opts, from)
	if errors.Is(err, ErrNoCheckpoint) {
		// The verified point names no valid checkpoint any more: someone
		// removed it, or its signature broke. Verify everything instead.
		rep, fr, err = verifyFromFrontier(ctx, db, opts, 0)
	}
	if err != nil {
		return res, fmt.Errorf("audit start-up: %w", err)
	}
	res.Report = rep
	a, raised, err := CurrentAlarm(ctx, db)
	if err != nil {
		return res, err
	}
	if raised {
		res.Alarm = &a
	}
	if !rep.Intact {
		if raised {
			return res, nil
		}
		al, _, err := l.RaiseAlarm(ctx, db, *rep.Problem, rep.From)
		if err != nil {
			return res, fmt.Errorf("audit start-up: %w", err)
		}
		res.Alarm, res.Raised = &al, true
		return res, nil
	}
	if raised {
		// Intact from the verified point, but the break found earlier
		// is still unacknowledged: keep the alarm, sign nothing.
		return res, nil
	}
	l.mu.Lock()
	l.fr, l.frVerified = fr, true
	l.cur.tx, l.cur.ins = nil, nil
	l.mu.Unlock()
	err = inTx(ctx, db, func(tx *sql.Tx) error { return l.markVerified(ctx, tx, from) })
	if err == nil {
		err = l.SyncState(ctx, db)
	}
	if err != nil {
		return res, fmt.Errorf("audit start-up: %w", err)
	}
	return res, nil
}

// RaiseAlarm records that verification found p, unless an alarm is
// already raised (then it returns that one and false): an audit.tamper
// entry (details bad_seq, bad_seq_end, kind, reason, verified_from) and an
// audit_alarms row in one transaction. From then on nothing is signed
// until an admin acknowledges it.
func (l *Log) RaiseAlarm(ctx context.Context, db *sql.DB, p Problem, verifiedFrom int64) (Alarm, bool, error) {
	l.mu.Lock()
	l.frVerified = false
	l.mu.Unlock()
	var al Alarm
	raisedNow := false
	err := inTx(ctx, db, func(tx *sql.Tx) error {
		cur, raised, err := CurrentAlarm(ctx, tx)
		if err != nil || raised {
			al = cur
			return err
		}
		d, _ := json.Marshal(map[string]any{"bad_seq": p.Seq, "bad_seq_end": p.SeqEnd, "kind": p.Kind, "reason": p.Reason, "verified_from": verifiedFrom})
		e, err := l.Append(ctx, tx, Entry{ActorID: "system", ActorName: "appliance", Action: ActAuditTamper, Object: fmt.Sprintf("audit:%d", p.Seq), Details: d})
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_alarms (seq, kind, bad_seq, reason) VALUES (?, 'raise', ?, ?)`, e.Seq, p.Seq, p.Reason); err != nil {
			return fmt.Errorf("raise audit alarm: %w", err)
		}
		al, raisedNow = Alarm{Seq: e.Seq, BadSeq: p.Seq, Reason: p.Reason}, true
		return nil
	})
	if err != nil {
		return Alarm{}, false, fmt.Errorf("raise alarm: %w", err)
	}
	// The tamper entry was appended to an unverified frontier: it stays
	// unverified (nothing signs it) until the acknowledgement.
	l.mu.Lock()
	l.frVerified = false
	l.mu.Unlock()
	return al, raisedNow, nil
}

// markVerified checkpoints the head and records it as verified, unless the
// verified point is already the head.
func (l *Log) markVerified(ctx context.Context, tx *sql.Tx, from int64) error {
	cp, _, err := l.Checkpoint(ctx, tx)
	if err != nil {
		return err
	}
	if cp.Size == from {
		return nil
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO audit_verified (size, time) VALUES (?, ?)`, cp.Size, l.now().UTC().Format(timeFormat))
	if err != nil {
		return fmt.Errorf("mark audit verified: %w", err)
	}
	return nil
}

// Acknowledgement is an admin's acknowledgement of the tamper alarm. The
// caller (the identity layer) authenticates the admin and runs the step-up
// MFA check; it sets StepUpVerified only when that check passed just now.
type Acknowledgement struct {
	Tenant, ActorID, ActorName, ActorIP, UserAgent string
	// StepUpVerified must be true: the caller verified a fresh TOTP.
	StepUpVerified bool
	// Comment is the admin's explanation, kept in the entry.
	Comment string
	// AlarmSeq, when set, is the alarm the step-up was given for; if the
	// raised alarm is another one, nothing is acknowledged.
	AlarmSeq int64
}

// Acknowledge clears the tamper alarm and opens a new segment: in one
// transaction it appends an audit.tamper.ack entry that references the
// alarm's entry and the broken seq, records the acknowledgement, signs a
// checkpoint that covers it and makes that checkpoint the start of future
// start-up verification. The break itself stays in the log, and a full
// 'audit verify' keeps reporting it.
func (l *Log) Acknowledge(ctx context.Context, db *sql.DB, a Acknowledgement) (Entry, Checkpoint, error) {
	var e Entry
	var cp Checkpoint
	err := inTx(ctx, db, func(tx *sql.Tx) error {
		var err error
		e, cp, err = l.AcknowledgeTx(ctx, tx, a)
		return err
	})
	if err == nil {
		err = l.SyncState(ctx, db)
	}
	return e, cp, err
}

// AcknowledgeTx is Acknowledge inside the caller's transaction, so the
// identity layer can consume the step-up grant and acknowledge in one
// commit (auth.Service.UseStepUp(ctx, tx, ...) then AcknowledgeTx). The
// caller must call SyncState after the commit, so the state file holds the
// new segment's checkpoint.
func (l *Log) AcknowledgeTx(ctx context.Context, tx *sql.Tx, a Acknowledgement) (Entry, Checkpoint, error) {
	if !a.StepUpVerified {
		return Entry{}, Checkpoint{}, ErrStepUpRequired
	}
	if l.signer == nil {
		return Entry{}, Checkpoint{}, ErrNoSigner
	}
	fail := func(err error) (Entry, Checkpoint, error) {
		return Entry{}, Checkpoint{}, fmt.Errorf("acknowledge audit alarm: %w", err)
	}
	al, raised, err := CurrentAlarm(ctx, tx)
	if err != nil {
		return fail(err)
	}
	if !raised {
		return fail(ErrNoAlarm)
	}
	if a.AlarmSeq != 0 && a.AlarmSeq != al.Seq {
		return fail(fmt.Errorf("%w: the step-up was for alarm %d, the raised alarm is %d", ErrStepUpRequired, a.AlarmSeq, al.Seq))
	}
	d, _ := json.Marshal(map[string]any{"alarm_seq": al.Seq, "bad_seq": al.BadSeq, "reason": al.Reason, "step_up": true, "comment": a.Comment})
	e, err := l.Append(ctx, tx, Entry{Tenant: a.Tenant, ActorID: a.ActorID, ActorName: a.ActorName, ActorIP: a.ActorIP, UserAgent: a.UserAgent,
		Action: ActAuditTamperAck, Object: fmt.Sprintf("audit:%d", al.BadSeq), Details: d})
	if err != nil {
		return fail(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_alarms (seq, kind, bad_seq, reason) VALUES (?, 'ack', ?, ?)`, e.Seq, al.BadSeq, al.Reason); err != nil {
		return fail(err)
	}
	// The one signature over what was not verified: the admin has seen
	// the break and accepts the log as it stands as the start of a new
	// segment. The frontier is the stored one, up to the ack entry.
	size, head, err := readHead(ctx, tx)
	if err != nil {
		return fail(err)
	}
	l.mu.Lock()
	fr, err := loadFrontier(ctx, tx, size, head)
	if err == nil {
		l.fr, l.frVerified = fr, true
		l.cur.tx, l.cur.ins = nil, nil
	}
	l.mu.Unlock()
	if err != nil {
		return fail(err)
	}
	cp, _, err := l.checkpoint(ctx, tx)
	if err != nil {
		return fail(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_verified (size, time) VALUES (?, ?)`, cp.Size, l.now().UTC().Format(timeFormat)); err != nil {
		return fail(err)
	}
	return e, cp, nil
}
