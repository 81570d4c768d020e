// Package auditlog is the audit log as principals see it: reading entries
// (keyset-paginated by seq, confined to the caller's tenant), the latest
// signed checkpoint, the tamper alarm and its acknowledgement (appliance
// admin, step-up), and the anomaly alerts with their acknowledgement.
//
// Reads are authorised by audit.read / anomaly.read; the two
// acknowledgements are state changes, audited in their own transaction
// through the journal.
package auditlog

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/journal"
	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// Sentinel errors.
var (
	// ErrNotFound means no anomaly alert has that seq in the caller's tenant.
	ErrNotFound = errors.New("alert not found")
	// ErrAlreadyAcknowledged means the alert was acknowledged before.
	ErrAlreadyAcknowledged = errors.New("alert already acknowledged")
)

// Limits of one page.
const (
	// DefaultLimit is a page's size when the caller asks for 0.
	DefaultLimit = 50
	// MaxLimit is the largest page.
	MaxLimit = 500
	// scanBudget bounds the entries one call reads while filtering (by
	// tenant or action), so a page costs bounded time even when few
	// entries match; the cursor then points past what was read.
	scanBudget = 10000
)

// Gate is the identity service as this package needs it; *auth.Service
// implements it.
type Gate interface {
	Authorize(ctx context.Context, p auth.Principal, op auth.Operation, tenant string) (string, error)
	UseStepUp(ctx context.Context, tx *sql.Tx, p auth.Principal, op auth.Operation, canonicalRequest []byte, code string) error
	StepUpRefused(ctx context.Context, p auth.Principal, tenant string, op auth.Operation, err error) error
	RefuseNotFound(ctx context.Context, p auth.Principal, tenant string, op auth.Operation, object string, err error) error
}

// Service is the audit log's service.
type Service struct {
	db *sql.DB
	// reads runs the page queries through prepared statements.
	reads *store.StmtCache
	gate  Gate
	jr    *journal.Journal
	now   func() time.Time
	// pub and statePath: see Deps.
	pub       ed25519.PublicKey
	statePath string
}

// Deps are the service's dependencies.
type Deps struct {
	DB      *sql.DB
	Gate    Gate
	Journal *journal.Journal
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Public is the audit public key (keys/audit.pub) and StatePath the
	// audit state file (keys/audit.state) a full verification checks the
	// log against; Verify is refused without a key.
	Public    ed25519.PublicKey
	StatePath string
}

// New checks deps and returns the service.
func New(d Deps) (*Service, error) {
	if d.DB == nil || d.Gate == nil || d.Journal == nil {
		return nil, errors.New("auditlog: DB, Gate and Journal are required")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Service{db: d.DB, reads: store.NewStmtCache(d.DB), gate: d.Gate, jr: d.Journal, now: d.Now, pub: d.Public, statePath: d.StatePath}, nil
}

// Page is one page of entries; Next is the cursor for the following page
// (the last seq read), 0 at the end of the log.
type Page struct {
	Entries []audit.Entry `json:"items"`
	Next    int64         `json:"next"`
}

// clampLimit applies DefaultLimit and MaxLimit.
func clampLimit(n int) int {
	switch {
	case n <= 0:
		return DefaultLimit
	case n > MaxLimit:
		return MaxLimit
	}
	return n
}

// Entries returns up to limit entries after seq after, oldest first. Tenant
// users see their tenant's entries only; an appliance admin passing tenant
// "" sees all of them, or one tenant's when it names one.
func (s *Service) Entries(ctx context.Context, p auth.Principal, tenant string, after int64, limit int) (Page, error) {
	pin, err := s.gate.Authorize(ctx, p, auth.OpAuditRead, tenant)
	if err != nil {
		return Page{}, fmt.Errorf("audit entries: %w", err)
	}
	f := filter{}
	if pin != "" || !p.ApplianceAdmin() {
		// A tenant user always has pin set; a principal with neither
		// (which Authorize should not let through) gets the entries of
		// tenant "", never everyone's.
		f.tenant, f.byTenant = pin, true
	}
	return s.scan(ctx, after, clampLimit(limit), f)
}

// filter is what a page keeps: entries of one tenant (byTenant), of one
// action (action != ""), or both.
type filter struct {
	tenant   string
	byTenant bool
	action   audit.Action
}

func (f filter) keep(e audit.Entry) bool {
	return (!f.byTenant || e.Tenant == f.tenant) && (f.action == "" || e.Action == f.action)
}

// needles returns, for each field f filters on, the bytes that field
// contributes to an entry's canonical encoding (its u32 big-endian length,
// then the text; see audit.Canonical). A stored entry of that tenant or
// action contains them, so SQL can skip most other entries with instr()
// before any is decoded. Another field may contain the same bytes by
// chance, so this is only a pre-filter: keep decides on the decoded entry.
func (f filter) needles() [][]byte {
	var ns [][]byte
	field := func(v string) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(v))), v...)
	}
	if f.byTenant {
		ns = append(ns, field(f.tenant))
	}
	if f.action != "" {
		ns = append(ns, field(string(f.action)))
	}
	return ns
}

// scan returns up to limit entries after seq after that f keeps.
//
// Without a filter it reads exactly the page (plus one row to know whether
// more follow). With one, SQLite pre-filters rows by their canonical bytes
// (see filter.needles) within the next scanBudget seqs, so a page costs
// bounded time even when few entries match, and only candidate rows are
// decoded; the cursor then points past what was examined.
func (s *Service) scan(ctx context.Context, after int64, limit int, f filter) (Page, error) {
	if after < 0 {
		return Page{}, fmt.Errorf("audit entries: %w: negative cursor", auth.ErrInvalid)
	}
	pg := Page{Entries: []audit.Entry{}}
	ns := f.needles()
	if len(ns) == 0 {
		es, err := s.read(ctx, `SELECT seq, entry FROM audit_entries WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit+1)
		if err != nil {
			return Page{}, err
		}
		if len(es) > limit {
			es = es[:limit]
			pg.Next = es[limit-1].Seq
		}
		pg.Entries = append(pg.Entries, es...)
		return pg, nil
	}
	var head sql.NullInt64
	if err := s.reads.QueryRowContext(ctx, `SELECT MAX(seq) FROM audit_entries`).Scan(&head); err != nil {
		return Page{}, fmt.Errorf("audit entries: %w", err)
	}
	upper := min(after+scanBudget, head.Int64)
	q := `SELECT seq, entry FROM audit_entries WHERE seq > ? AND seq <= ?` +
		strings.Repeat(` AND instr(entry, ?) > 0`, len(ns)) + ` ORDER BY seq LIMIT ?`
	cur := after
	// Each round reads at least one row past cur or ends, so the loop is
	// bounded by the scanBudget rows of the range; the count is a backstop.
	for round := 0; cur < upper && round < scanBudget; round++ {
		want := limit - len(pg.Entries)
		args := []any{cur, upper}
		for _, n := range ns {
			args = append(args, n)
		}
		es, err := s.read(ctx, q, append(args, want)...)
		if err != nil {
			return Page{}, err
		}
		for _, e := range es {
			cur = e.Seq
			if f.keep(e) {
				pg.Entries = append(pg.Entries, e)
			}
		}
		if len(pg.Entries) == limit {
			break
		}
		if len(es) < want {
			cur = upper // no more candidates in the range
		}
	}
	if cur < head.Int64 {
		pg.Next = cur
	}
	return pg, nil
}

// read runs q (selecting seq, entry) and decodes the rows.
func (s *Service) read(ctx context.Context, q string, args ...any) ([]audit.Entry, error) {
	rows, err := s.reads.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("audit entries: %w", err)
	}
	defer rows.Close()
	var out []audit.Entry
	for rows.Next() {
		var seq int64
		var enc []byte
		if err := rows.Scan(&seq, &enc); err != nil {
			return nil, fmt.Errorf("audit entries: %w", err)
		}
		e, err := audit.ParseCanonical(enc)
		if err != nil {
			return nil, fmt.Errorf("audit entry %d: %w", seq, err)
		}
		if e.Seq != seq {
			return nil, fmt.Errorf("audit entry %d: %w: row holds entry %d", seq, audit.ErrBadEncoding, e.Seq)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit entries: %w", err)
	}
	return out, nil
}

// Checkpoint returns the latest signed checkpoint (tree size, root and the
// signed note), which any reader may check against the audit public key.
func (s *Service) Checkpoint(ctx context.Context, p auth.Principal) (audit.Checkpoint, error) {
	if _, err := s.gate.Authorize(ctx, p, auth.OpAuditRead, ""); err != nil {
		return audit.Checkpoint{}, fmt.Errorf("audit checkpoint: %w", err)
	}
	cp, err := audit.LatestStoredCheckpoint(ctx, s.db)
	if err != nil {
		return audit.Checkpoint{}, fmt.Errorf("audit checkpoint: %w", err)
	}
	return cp, nil
}

// Alarm returns the unacknowledged tamper alarm, if one is raised.
func (s *Service) Alarm(ctx context.Context, p auth.Principal) (audit.Alarm, bool, error) {
	if _, err := s.gate.Authorize(ctx, p, auth.OpAuditRead, ""); err != nil {
		return audit.Alarm{}, false, fmt.Errorf("audit alarm: %w", err)
	}
	return audit.CurrentAlarm(ctx, s.db)
}

// AlarmAckRequest is the canonical request a tamper-alarm acknowledgement's
// step-up is bound to: the alarm's entry and the admin's comment, so a code
// given for one acknowledgement cannot be replayed for another. It is an
// auth.OpRequest (JSON, tenant ""), so a client answers the step-up
// challenge with auth.Service.StepUpFor.
func AlarmAckRequest(alarmSeq int64, comment string) []byte {
	return auth.OpRequest(auth.OpAuditAlarmAck, "", map[string]string{"alarm": strconv.FormatInt(alarmSeq, 10), "comment": comment})
}

// AcknowledgeAlarm lets an appliance admin acknowledge the raised audit
// tamper alarm after a step-up: code, or "" to spend a grant made for
// AlarmAckRequest (without one, an *auth.StepUpChallenge). In one
// transaction the step-up is spent, the acknowledgement entry is written
// (and queued for the SIEM), and a new signed segment starts that
// references the break. Scans and evidence exports work again afterwards;
// nothing in the broken history is repaired. No alarm: audit.ErrNoAlarm.
func (s *Service) AcknowledgeAlarm(ctx context.Context, p auth.Principal, comment, code string) (audit.Entry, audit.Checkpoint, error) {
	fail := func(err error) (audit.Entry, audit.Checkpoint, error) {
		return audit.Entry{}, audit.Checkpoint{}, fmt.Errorf("acknowledge: %w", err)
	}
	if _, err := s.gate.Authorize(ctx, p, auth.OpAuditAlarmAck, ""); err != nil {
		return fail(err)
	}
	if strings.TrimSpace(comment) == "" {
		return fail(fmt.Errorf("%w: a comment saying what was found is required", auth.ErrInvalid))
	}
	alarm, raised, err := audit.CurrentAlarm(ctx, s.db)
	if err != nil {
		return fail(err)
	}
	if !raised {
		return fail(audit.ErrNoAlarm)
	}
	req := AlarmAckRequest(alarm.Seq, comment)
	var e audit.Entry
	var cp audit.Checkpoint
	var stepErr error
	err = store.InTx(ctx, s.db, func(tx *sql.Tx) error {
		if err := s.gate.UseStepUp(ctx, tx, p, auth.OpAuditAlarmAck, req, code); err != nil {
			stepErr = err
			return err
		}
		var err error
		e, cp, err = s.jr.Acknowledge(ctx, tx, audit.Acknowledgement{
			Tenant: p.TenantID, ActorID: p.UserID, ActorName: p.Name, ActorIP: p.Client.IP, UserAgent: p.Client.UserAgent,
			StepUpVerified: true, Comment: comment, AlarmSeq: alarm.Seq,
		})
		return err
	})
	if stepErr != nil {
		return fail(s.gate.StepUpRefused(ctx, p, "", auth.OpAuditAlarmAck, stepErr))
	}
	if err != nil {
		return fail(err)
	}
	// The new segment's checkpoint becomes the state file's.
	if err := s.jr.SyncState(ctx); err != nil {
		return fail(err)
	}
	return e, cp, nil
}

// Alert is an anomaly alert (an anomaly.alert audit entry) and its
// acknowledgement, if any.
type Alert struct {
	Seq       int64           `json:"seq"`
	Time      time.Time       `json:"time"`
	Tenant    string          `json:"tenant"`
	UserID    string          `json:"user_id"`
	UserName  string          `json:"user_name"`
	Details   json.RawMessage `json:"details"`
	AckedBy   string          `json:"acked_by,omitempty"`
	AckedAt   string          `json:"acked_at,omitempty"`
	AckSeq    int64           `json:"ack_seq,omitempty"`
	Activity  string          `json:"activity"`
	Threshold int64           `json:"threshold"`
}

// AlertPage is one page of alerts; Next as in Page.
type AlertPage struct {
	Alerts []Alert `json:"items"`
	Next   int64   `json:"next"`
}

// Alerts returns up to limit anomaly alerts after seq after, oldest first,
// with their acknowledgements: the caller's tenant's, or for an appliance
// admin passing "" all of them.
func (s *Service) Alerts(ctx context.Context, p auth.Principal, tenant string, after int64, limit int) (AlertPage, error) {
	pin, err := s.gate.Authorize(ctx, p, auth.OpAnomalyRead, tenant)
	if err != nil {
		return AlertPage{}, fmt.Errorf("alerts: %w", err)
	}
	f := filter{action: audit.ActAnomalyAlert}
	if pin != "" || !p.ApplianceAdmin() {
		f.tenant, f.byTenant = pin, true
	}
	pg, err := s.scan(ctx, after, clampLimit(limit), f)
	if err != nil {
		return AlertPage{}, err
	}
	out := AlertPage{Alerts: []Alert{}, Next: pg.Next}
	for _, e := range pg.Entries {
		a, err := s.alertOf(ctx, s.db, e)
		if err != nil {
			return AlertPage{}, err
		}
		out.Alerts = append(out.Alerts, a)
	}
	return out, nil
}

// alertOf decodes an anomaly.alert entry and joins its acknowledgement.
func (s *Service) alertOf(ctx context.Context, q audit.Queryer, e audit.Entry) (Alert, error) {
	a := Alert{Seq: e.Seq, Time: e.Time, Tenant: e.Tenant, UserID: e.Object, UserName: e.ActorName, Details: e.Details}
	var d struct {
		Activity  string `json:"activity"`
		Threshold int64  `json:"threshold"`
	}
	_ = json.Unmarshal(e.Details, &d) // written by auth; a bad one shows empty
	a.Activity, a.Threshold = d.Activity, d.Threshold
	err := q.QueryRowContext(ctx, `SELECT acked_by, acked_at, ack_seq FROM alert_acks WHERE alert_seq = ?`, e.Seq).Scan(&a.AckedBy, &a.AckedAt, &a.AckSeq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Alert{}, fmt.Errorf("alert %d: %w", e.Seq, err)
	}
	return a, nil
}

// AckAlert records that p has seen anomaly alert seq, audited as alert.ack
// in the same transaction. The alert must be in the caller's tenant (an
// appliance admin passing "" may acknowledge any); once only.
func (s *Service) AckAlert(ctx context.Context, p auth.Principal, tenant string, seq int64, comment string) (Alert, error) {
	pin, err := s.gate.Authorize(ctx, p, auth.OpAnomalyAck, tenant)
	if err != nil {
		return Alert{}, fmt.Errorf("acknowledge alert: %w", err)
	}
	object := "audit:" + strconv.FormatInt(seq, 10)
	if len(comment) > 1024 || strings.ContainsFunc(comment, func(r rune) bool { return r < 0x20 && r != '\t' }) {
		return Alert{}, fmt.Errorf("acknowledge alert: %w: comment must be at most 1024 bytes without control characters", auth.ErrInvalid)
	}
	e, err := audit.ReadEntry(ctx, s.db, seq)
	if err == nil && (e.Action != audit.ActAnomalyAlert || !(pin == "" && p.ApplianceAdmin()) && e.Tenant != pin) {
		err = sql.ErrNoRows
	}
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			// Another tenant's alert looks exactly like a missing one.
			return Alert{}, fmt.Errorf("acknowledge alert %d: %w", seq,
				s.gate.RefuseNotFound(ctx, p, pin, auth.OpAnomalyAck, object, fmt.Errorf("%w: %w", ErrNotFound, store.ErrNotFound)))
		}
		return Alert{}, fmt.Errorf("acknowledge alert %d: %w", seq, err)
	}
	var a Alert
	err = store.InTx(ctx, s.db, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM alert_acks WHERE alert_seq = ?`, seq).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return ErrAlreadyAcknowledged
		}
		var det struct {
			Activity string `json:"activity"`
			UserID   string `json:"user_id"`
		}
		_ = json.Unmarshal(e.Details, &det)
		d, _ := json.Marshal(map[string]any{"alert_seq": seq, "activity": det.Activity, "user_id": det.UserID, "comment": comment})
		ack, err := s.jr.Record(ctx, tx, audit.Entry{Tenant: e.Tenant, ActorID: p.UserID, ActorName: p.Name, ActorIP: p.Client.IP, UserAgent: p.Client.UserAgent,
			Action: audit.ActAlertAck, Object: object, Details: d})
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO alert_acks (alert_seq, tenant, acked_by, acked_at, ack_seq) VALUES (?, ?, ?, ?, ?)`,
			seq, e.Tenant, p.UserID, s.now().UTC().Format(time.RFC3339), ack.Seq); err != nil {
			return err
		}
		a, err = s.alertOf(ctx, tx, e)
		return err
	})
	if err != nil {
		return Alert{}, fmt.Errorf("acknowledge alert %d: %w", seq, err)
	}
	return a, nil
}
