package scan

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// Schedule states (scan_schedules.state).
const (
	SchedulePending  = "pending"  // waiting for its standing dual approval
	ScheduleApproved = "approved" // runs at its times until valid_until
	ScheduleVoid     = "void"     // voided by a user, an edit, or a revocation
	ScheduleExpired  = "expired"  // its validity ended
)

// MaxScheduleDays bounds a schedule's standing approval.
const MaxScheduleDays = 90

// scheduleGrace is how late a due run may still start; a run due longer
// ago (the appliance was down) is reported as missed, not run.
const scheduleGrace = 5 * time.Minute

// ErrScheduleNotFound means no schedule has that id in the caller's tenant.
var ErrScheduleNotFound = errors.New("scan schedule not found")

// ScheduleRequest is a standing scan request and when to run it.
type ScheduleRequest struct {
	ScanRequest
	// Spec is "@every DURATION" (15 minutes to 90 days) or a five-field
	// cron line in UTC (ParseSpec).
	Spec string `json:"spec"`
	// ValidDays is how long the standing approval lasts once given, 1-90
	// (default 90).
	ValidDays int `json:"valid_days,omitempty"`
}

// Schedule is a scan schedule.
type Schedule struct {
	ID            string          `json:"id"`
	Tenant        string          `json:"tenant"`
	RequesterID   string          `json:"requester_id"`
	ScopeID       string          `json:"scope_id"`
	ScopeKeyID    string          `json:"scope_key_id"`
	Spec          string          `json:"spec"`
	ValidDays     int             `json:"valid_days"`
	Request       json.RawMessage `json:"request"`
	RequestSHA256 string          `json:"request_sha256"`
	ApprovalID    string          `json:"approval_id"`
	Approvers     []string        `json:"approvers"`
	State         string          `json:"state"`
	Reason        string          `json:"reason,omitempty"`
	ValidUntil    string          `json:"valid_until,omitempty"`
	NextRun       string          `json:"next_run,omitempty"`
	LastRun       string          `json:"last_run,omitempty"`
	CreatedAt     string          `json:"created_at"`
}

const scheduleCols = `SELECT id, tenant_id, requester_id, scope_id, scope_key_id, spec, valid_days, request, request_sha256, approval_id, approvers,
	state, reason, valid_until, next_run, last_run, created_at FROM scan_schedules`

func scanSchedule(r interface{ Scan(...any) error }) (Schedule, error) {
	var sc Schedule
	var req []byte
	var approvers string
	if err := r.Scan(&sc.ID, &sc.Tenant, &sc.RequesterID, &sc.ScopeID, &sc.ScopeKeyID, &sc.Spec, &sc.ValidDays, &req, &sc.RequestSHA256,
		&sc.ApprovalID, &approvers, &sc.State, &sc.Reason, &sc.ValidUntil, &sc.NextRun, &sc.LastRun, &sc.CreatedAt); err != nil {
		return Schedule{}, err
	}
	sc.Request = req
	if err := json.Unmarshal([]byte(approvers), &sc.Approvers); err != nil {
		return Schedule{}, fmt.Errorf("schedule %s approvers: %w", sc.ID, err)
	}
	return sc, nil
}

func (s *Scans) loadSchedule(ctx context.Context, p auth.Principal, pin string, op auth.Operation, id string) (Schedule, error) {
	sc, err := scanSchedule(s.st.DB().QueryRowContext(ctx, scheduleCols+` WHERE tenant_id = ? AND id = ?`, pin, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Schedule{}, fmt.Errorf("schedule %q: %w", id, s.auth.RefuseNotFound(ctx, p, pin, op, "schedule:"+id, fmt.Errorf("%w: %w", ErrScheduleNotFound, store.ErrNotFound)))
	}
	if err != nil {
		return Schedule{}, fmt.Errorf("schedule %q: %w", id, err)
	}
	return sc, nil
}

// CreateSchedule checks r exactly as Request does (every target, port,
// probe kind, the rate) and the specification, stores the schedule and
// opens its standing dual approval (auth KindScanSchedule, bound to the
// schedule's canonical job request, whose id is the schedule's id).
// Audited as scan.schedule. It runs once two approvers approved it
// (ApproveSchedule), whatever the scope's environment.
func (s *Scans) CreateSchedule(ctx context.Context, p auth.Principal, tenant string, r ScheduleRequest) (Schedule, error) {
	return s.createSchedule(ctx, p, tenant, r, "")
}

func (s *Scans) createSchedule(ctx context.Context, p auth.Principal, tenant string, r ScheduleRequest, replaces string) (Schedule, error) {
	pin, err := s.auth.Authorize(ctx, p, auth.OpScanRequest, tenant)
	if err != nil {
		return Schedule{}, fmt.Errorf("create schedule: %w", err)
	}
	spec, err := ParseSpec(r.Spec)
	if err != nil {
		return Schedule{}, fmt.Errorf("create schedule: %w: %w", ErrBadRequest, err)
	}
	if r.ValidDays == 0 {
		r.ValidDays = MaxScheduleDays
	}
	if r.ValidDays < 1 || r.ValidDays > MaxScheduleDays {
		return Schedule{}, fmt.Errorf("create schedule: %w: valid_days %d outside 1-%d", ErrBadRequest, r.ValidDays, MaxScheduleDays)
	}
	if spec.Next(s.now()).IsZero() {
		return Schedule{}, fmt.Errorf("create schedule: %w: %q never falls due", ErrBadRequest, r.Spec)
	}
	if err := audit.CheckNoAlarm(ctx, s.st.DB()); err != nil {
		return Schedule{}, fmt.Errorf("create schedule: %w", s.refuse(ctx, p, pin, auth.OpScanRequest, "scope:"+r.ScopeID, err))
	}
	ts, err := s.st.Tenant(pin)
	if err != nil {
		return Schedule{}, err
	}
	row, err := ts.Scope(ctx, r.ScopeID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return Schedule{}, fmt.Errorf("create schedule: %w", s.auth.RefuseNotFound(ctx, p, pin, auth.OpScanRequest, "scope:"+r.ScopeID, fmt.Errorf("%w: %w", ErrNotFound, err)))
		}
		return Schedule{}, err
	}
	sc, keyID, err := s.usableScope(ctx, pin, row)
	if err != nil {
		return Schedule{}, fmt.Errorf("create schedule: %w", s.refuse(ctx, p, pin, auth.OpScanRequest, "scope:"+r.ScopeID, err))
	}
	id := store.NewID("sched")
	jr, err := s.build(ctx, p, sc, r.ScanRequest, id)
	if err != nil {
		return Schedule{}, fmt.Errorf("create schedule: %w", err)
	}
	if err := s.checkVantage(ctx, pin, jr.Vantage); err != nil {
		return Schedule{}, fmt.Errorf("create schedule: %w", err)
	}
	canonical, err := jr.Canonical()
	if err != nil {
		return Schedule{}, err
	}
	sum, _ := jr.SHA256()
	ap, err := s.auth.RequestApproval(ctx, p, auth.KindScanSchedule, canonical)
	if err != nil {
		return Schedule{}, fmt.Errorf("create schedule: %w", err)
	}
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO scan_schedules (id, tenant_id, requester_id, scope_id, scope_key_id, spec, valid_days, request, request_sha256, approval_id, state, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)`, id, pin, p.UserID, row.ID, keyID, spec.String(), r.ValidDays, canonical, sum, ap.ID,
			s.now().UTC().Format(time.RFC3339Nano)); err != nil {
			return err
		}
		det := map[string]any{"spec": spec.String(), "valid_days": r.ValidDays, "scope": row.ID, "request_sha256": sum, "approval": ap.ID,
			"targets": jr.Targets, "ports": jr.Ports, "probes": jr.Probes, "rate": jr.Rate}
		if replaces != "" {
			det["replaces"] = replaces
		}
		e := s.entry(p, pin, audit.ActScanSchedule, "", det)
		e.Object = "schedule:" + id
		_, err := s.rec.Record(ctx, tx, e)
		return err
	})
	if err != nil {
		return Schedule{}, fmt.Errorf("create schedule: %w", err)
	}
	return s.loadSchedule(ctx, p, pin, auth.OpScanRead, id)
}

// ApproveSchedule records approver p's approval of schedule id (auth
// Approve: not the requester, independent, with step-up for
// auth.ApproveRequest(approval id, request hash)). The second approval
// makes the standing approval: the approvers are kept with the schedule,
// which runs until ValidDays from now; audited as scan.approve, and the
// completion as scan.schedule (state approved, approvers, valid_until,
// next_run).
func (s *Scans) ApproveSchedule(ctx context.Context, p auth.Principal, tenant, id, code string) (Schedule, error) {
	pin, err := s.auth.Authorize(ctx, p, auth.OpApprovalGrant, tenant)
	if err != nil {
		return Schedule{}, fmt.Errorf("approve schedule: %w", err)
	}
	sc, err := s.loadSchedule(ctx, p, pin, auth.OpApprovalGrant, id)
	if err != nil {
		return Schedule{}, err
	}
	if sc.State != SchedulePending {
		return Schedule{}, fmt.Errorf("approve schedule %s: %w: it is %s", id, ErrState, sc.State)
	}
	spec, err := ParseSpec(sc.Spec)
	if err != nil {
		return Schedule{}, err
	}
	ap, err := s.auth.Approve(ctx, p, sc.ApprovalID, code)
	if err != nil {
		return Schedule{}, fmt.Errorf("approve schedule %s: %w", id, err)
	}
	var approvers []string
	if ap.Status == store.ApprovalApproved {
		// The bytes approved must be the schedule's, exactly.
		v, err := s.auth.VerifiedApproval(ctx, pin, sc.ApprovalID, sc.Request)
		if err != nil {
			return Schedule{}, fmt.Errorf("approve schedule %s: %w", id, err)
		}
		for _, a := range v.Approvers {
			approvers = append(approvers, a.UserID)
		}
	}
	now := s.now().UTC()
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		e := s.entry(p, pin, audit.ActScanApprove, "", map[string]any{"approval": sc.ApprovalID, "request_sha256": sc.RequestSHA256,
			"approvals": len(ap.Approvers), "status": ap.Status})
		e.Object = "schedule:" + id
		if _, err := s.rec.Record(ctx, tx, e); err != nil {
			return err
		}
		if approvers == nil {
			return nil
		}
		aj, _ := json.Marshal(approvers)
		until := now.Add(time.Duration(sc.ValidDays) * 24 * time.Hour).Format(time.RFC3339Nano)
		next := spec.Next(now).Format(time.RFC3339Nano)
		res, err := tx.ExecContext(ctx, `UPDATE scan_schedules SET state = 'approved', approvers = ?, valid_until = ?, next_run = ? WHERE id = ? AND state = 'pending'`,
			string(aj), until, next, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("%w: schedule %s is no longer pending", ErrState, id)
		}
		e = s.entry(p, pin, audit.ActScanSchedule, "", map[string]any{"state": ScheduleApproved, "approvers": approvers, "valid_until": until, "next_run": next})
		e.Object = "schedule:" + id
		_, err = s.rec.Record(ctx, tx, e)
		return err
	})
	if err != nil {
		return Schedule{}, fmt.Errorf("approve schedule %s: %w", id, err)
	}
	return s.loadSchedule(ctx, p, pin, auth.OpScanRead, id)
}

// VoidSchedule stops schedule id (admin, security lead, operator), voids
// its approval, audited as scan.schedule.void. Scans it already queued
// are not affected (Cancel them).
func (s *Scans) VoidSchedule(ctx context.Context, p auth.Principal, tenant, id, reason string) (Schedule, error) {
	pin, err := s.auth.Authorize(ctx, p, auth.OpScanCancel, tenant)
	if err != nil {
		return Schedule{}, fmt.Errorf("void schedule: %w", err)
	}
	sc, err := s.loadSchedule(ctx, p, pin, auth.OpScanCancel, id)
	if err != nil {
		return Schedule{}, err
	}
	if sc.State != SchedulePending && sc.State != ScheduleApproved {
		return Schedule{}, fmt.Errorf("void schedule %s: %w: it is %s", id, ErrState, sc.State)
	}
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		return s.endSchedule(ctx, tx, p, pin, id, ScheduleVoid, reason)
	})
	if err != nil {
		return Schedule{}, fmt.Errorf("void schedule %s: %w", id, err)
	}
	if sc.State == SchedulePending {
		s.voidApprovals(ctx, p, []string{sc.ApprovalID})
	}
	return s.loadSchedule(ctx, p, pin, auth.OpScanRead, id)
}

// EditSchedule replaces schedule id by a new one made from r: any edit
// voids the old schedule and its standing approval (scan.schedule.void),
// and the new schedule (scan.schedule, replaces: id) needs a new dual
// approval.
func (s *Scans) EditSchedule(ctx context.Context, p auth.Principal, tenant, id string, r ScheduleRequest) (Schedule, error) {
	pin, err := s.auth.Authorize(ctx, p, auth.OpScanRequest, tenant)
	if err != nil {
		return Schedule{}, fmt.Errorf("edit schedule: %w", err)
	}
	old, err := s.loadSchedule(ctx, p, pin, auth.OpScanRequest, id)
	if err != nil {
		return Schedule{}, err
	}
	if old.State == SchedulePending || old.State == ScheduleApproved {
		if _, err := s.VoidSchedule(ctx, p, tenant, id, "edited"); err != nil {
			return Schedule{}, err
		}
	}
	return s.createSchedule(ctx, p, tenant, r, id)
}

// GetSchedule returns schedule id; ListSchedules all of the tenant's,
// newest first (scan.read).
func (s *Scans) GetSchedule(ctx context.Context, p auth.Principal, tenant, id string) (Schedule, error) {
	pin, err := s.auth.Authorize(ctx, p, auth.OpScanRead, tenant)
	if err != nil {
		return Schedule{}, fmt.Errorf("schedule: %w", err)
	}
	return s.loadSchedule(ctx, p, pin, auth.OpScanRead, id)
}

// ListSchedules returns tenant's schedules, newest first (at most 500).
func (s *Scans) ListSchedules(ctx context.Context, p auth.Principal, tenant string) ([]Schedule, error) {
	pin, err := s.auth.Authorize(ctx, p, auth.OpScanRead, tenant)
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	rows, err := s.st.DB().QueryContext(ctx, scheduleCols+` WHERE tenant_id = ? ORDER BY created_at DESC, id DESC LIMIT 500`, pin)
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	defer rows.Close()
	out := []Schedule{}
	for rows.Next() {
		sc, err := scanSchedule(rows)
		if err != nil {
			return nil, fmt.Errorf("list schedules: %w", err)
		}
		out = append(out, sc)
	}
	return out, rows.Err()
}

// endSchedule moves schedule id to state (void or expired) in tx, audited
// as scan.schedule.void by p.
func (s *Scans) endSchedule(ctx context.Context, tx *sql.Tx, p auth.Principal, pin, id, state, reason string) error {
	res, err := tx.ExecContext(ctx, `UPDATE scan_schedules SET state = ?, reason = ? WHERE id = ? AND state IN ('pending','approved')`, state, reason, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("%w: schedule %s already ended", ErrState, id)
	}
	e := s.entry(p, pin, audit.ActScanScheduleVoid, "", map[string]any{"state": state, "reason": reason})
	e.Object = "schedule:" + id
	_, err = s.rec.Record(ctx, tx, e)
	return err
}

// TickSchedules does the scheduler's work once (Run calls it at start and
// every ScheduleTick): every approved schedule whose next run is due is
// checked and, when it may run, queued as a scan request of its requester
// (audited as scan.request and scan.start by the orchestrator, with the
// schedule id), carrying the standing approval. A schedule whose validity
// ended expires; one whose scope or key was revoked is voided. Runs that
// fell due more than 5 minutes ago (the appliance was down) are reported
// as scan.schedule.missed with their count, not run: at most one run per
// schedule per tick.
func (s *Scans) TickSchedules(ctx context.Context) error {
	now := s.now().UTC()
	rows, err := s.st.DB().QueryContext(ctx, scheduleCols+` WHERE state = 'approved' AND next_run != '' AND next_run <= ? ORDER BY next_run, id`, now.Format(time.RFC3339Nano))
	if err != nil {
		return fmt.Errorf("due schedules: %w", err)
	}
	var due []Schedule
	for rows.Next() {
		sc, err := scanSchedule(rows)
		if err != nil {
			rows.Close()
			return err
		}
		due = append(due, sc)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var errs []error
	for _, sc := range due {
		if err := s.tickSchedule(ctx, sc, now); err != nil {
			errs = append(errs, fmt.Errorf("schedule %s: %w", sc.ID, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Scans) tickSchedule(ctx context.Context, sc Schedule, now time.Time) error {
	spec, err := ParseSpec(sc.Spec)
	if err != nil {
		return err
	}
	until, err := time.Parse(time.RFC3339Nano, sc.ValidUntil)
	if err != nil {
		return err
	}
	if !now.Before(until) {
		return s.st.InTx(ctx, func(tx *sql.Tx) error {
			return s.endSchedule(ctx, tx, system, sc.Tenant, sc.ID, ScheduleExpired, "standing approval ended at "+sc.ValidUntil)
		})
	}
	next, err := time.Parse(time.RFC3339Nano, sc.NextRun)
	if err != nil {
		return err
	}
	// Due times up to now: all but one within the grace are missed.
	var missed int
	first, last := next, next
	for t := next; !t.IsZero() && !t.After(now) && missed < 100000; t = spec.Next(t) {
		last = t
		if now.Sub(t) > scheduleGrace {
			missed++
		}
	}
	runNow := now.Sub(last) <= scheduleGrace
	newNext := spec.Next(now)
	ts, err := s.st.Tenant(sc.Tenant)
	if err != nil {
		return err
	}
	row, err := ts.Scope(ctx, sc.ScopeID)
	if err != nil {
		return err
	}
	var cause error
	if _, _, err := s.usableScope(ctx, sc.Tenant, row); err != nil {
		return s.st.InTx(ctx, func(tx *sql.Tx) error {
			return s.endSchedule(ctx, tx, system, sc.Tenant, sc.ID, ScheduleVoid, err.Error())
		})
	}
	if err := audit.CheckNoAlarm(ctx, s.st.DB()); err != nil {
		cause = err // the due run is reported as missed, with the reason
		if runNow {
			missed++
			runNow = false
		}
	}
	var id string
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE scan_schedules SET next_run = ?, last_run = CASE WHEN ? THEN ? ELSE last_run END WHERE id = ? AND state = 'approved'`,
			newNext.Format(time.RFC3339Nano), runNow, now.Format(time.RFC3339Nano), sc.ID); err != nil {
			return err
		}
		if missed > 0 {
			det := map[string]any{"missed": missed, "first": first.Format(time.RFC3339), "last": last.Format(time.RFC3339), "next_run": newNext.Format(time.RFC3339)}
			if cause != nil {
				det["reason"] = cause.Error()
			}
			e := s.entry(system, sc.Tenant, audit.ActScanScheduleMissed, "", det)
			e.Object = "schedule:" + sc.ID
			if _, err := s.rec.Record(ctx, tx, e); err != nil {
				return err
			}
		}
		if !runNow {
			return nil
		}
		id = store.NewID("scan")
		if err := InsertRequest(ctx, tx, RequestRow{ID: id, TenantID: sc.Tenant, RequesterID: sc.RequesterID, ScopeID: sc.ScopeID, ScopeSHA256: scopeSHAOf(sc.Request),
			Request: sc.Request, RequestSHA256: sc.RequestSHA256, State: StateQueued, CreatedAt: now}); err != nil {
			return err
		}
		aj, _ := json.Marshal(sc.Approvers)
		if _, err := tx.ExecContext(ctx, `UPDATE scan_requests SET approval_id = ?, scope_key_id = ?, approvers = ?, schedule_id = ? WHERE id = ?`,
			sc.ApprovalID, sc.ScopeKeyID, string(aj), sc.ID, id); err != nil {
			return err
		}
		for _, a := range []audit.Action{audit.ActScanRequest, audit.ActScanStart} {
			det := map[string]any{"schedule": sc.ID, "due": last.Format(time.RFC3339), "request_sha256": sc.RequestSHA256, "approval": sc.ApprovalID}
			if a == audit.ActScanStart {
				det["state"] = StateQueued
			}
			if _, err := s.rec.Record(ctx, tx, s.entry(system, sc.Tenant, a, id, det)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if id != "" {
		s.disp.Submit(sc.Tenant, id)
	}
	return nil
}

// scopeSHAOf reads scope_sha256 from a canonical job request.
func scopeSHAOf(canonical []byte) string {
	r, err := decodeRequest(canonical)
	if err != nil {
		return ""
	}
	return r.ScopeSHA256
}

// runSchedules ticks the scheduler every tick until ctx ends.
func (s *Scans) runSchedules(ctx context.Context, tick time.Duration) {
	if err := s.TickSchedules(ctx); err != nil && ctx.Err() == nil {
		s.onErr(err)
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.TickSchedules(ctx); err != nil && ctx.Err() == nil {
				s.onErr(err)
			}
		}
	}
}
