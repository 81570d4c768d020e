package review

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// Due is when a tenant's (or, with Tenant "", the appliance admins') next
// access review is due.
type Due struct {
	Tenant string `json:"tenant"`
	// LastSigned is when the last review was signed (zero: never).
	LastSigned time.Time `json:"last_signed,omitzero"`
	// DueAt is LastSigned plus the interval; for a tenant never reviewed,
	// its creation plus the interval (for the appliance, the first
	// appliance admin's creation).
	DueAt   time.Time `json:"due_at"`
	Overdue bool      `json:"overdue"`
	// Open is the id of the open review, if one is under way.
	Open string `json:"open,omitempty"`
}

// due computes tenant pin's Due at now.
func (s *Service) due(ctx context.Context, pin string, now time.Time) (Due, error) {
	rs := s.st.Reviews(pin)
	d := Due{Tenant: pin}
	last, err := rs.LatestSigned(ctx, s.st.Reader())
	switch {
	case err == nil:
		d.LastSigned = last.SignedAt
		d.DueAt = last.SignedAt.Add(s.interval)
	case errors.Is(err, store.ErrNotFound):
		base, err := s.origin(ctx, pin)
		if err != nil {
			return Due{}, err
		}
		d.DueAt = base.Add(s.interval)
	default:
		return Due{}, err
	}
	d.Overdue = !now.Before(d.DueAt)
	if o, err := rs.Open(ctx, s.st.Reader()); err == nil {
		d.Open = o.ID
	} else if !errors.Is(err, store.ErrNotFound) {
		return Due{}, err
	}
	return d, nil
}

// origin is when a never-reviewed tenant's cadence starts: its creation
// (for the appliance, the first appliance admin's).
func (s *Service) origin(ctx context.Context, pin string) (time.Time, error) {
	if pin != "" {
		t, err := s.st.TenantByID(ctx, pin)
		if err != nil {
			return time.Time{}, err
		}
		return created(t.CreatedAt), nil
	}
	admins, err := s.st.ListAdmins(ctx)
	if err != nil {
		return time.Time{}, err
	}
	var first time.Time
	for _, a := range admins {
		if c := created(a.CreatedAt); first.IsZero() || c.Before(first) {
			first = c
		}
	}
	return first, nil
}

// Due reports when tenant's next review is due ("" for p's own tenant; for
// an appliance admin, the appliance-admin review).
func (s *Service) Due(ctx context.Context, p auth.Principal, tenant string) (Due, error) {
	pin, err := s.gate.Authorize(ctx, p, auth.OpReviewRead, tenant)
	if err != nil {
		return Due{}, err
	}
	return s.due(ctx, pin, s.now())
}

// Schedule reports every tenant's Due and the appliance admins' (Tenant
// ""), first. It takes no principal: it is the appliance's own view, for
// /readyz and the console's banner, and reveals only tenant ids and dates.
func (s *Service) Schedule(ctx context.Context) ([]Due, error) {
	now := s.now()
	ts, err := s.st.ListTenants(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Due, 0, len(ts)+1)
	for _, pin := range append([]string{""}, ids(ts)...) {
		d, err := s.due(ctx, pin, now)
		if err != nil {
			return nil, fmt.Errorf("review schedule %q: %w", pin, err)
		}
		out = append(out, d)
	}
	return out, nil
}

func ids(ts []store.Tenant) []string {
	out := make([]string, 0, len(ts))
	for _, t := range ts {
		out = append(out, t.ID)
	}
	return out
}

// CheckOverdue records a review.overdue audit entry (which the SIEM outbox
// forwards) for every tenant, and the appliance, whose review is overdue
// and not yet alerted in the current overdue period: once when it falls
// due, once more each further interval it stays overdue. It returns how
// many alerts it raised. It is the appliance's own housekeeping: the
// actor is "review".
func (s *Service) CheckOverdue(ctx context.Context) (int, error) {
	sched, err := s.Schedule(ctx)
	if err != nil {
		return 0, err
	}
	now := s.now()
	n := 0
	for _, d := range sched {
		if !d.Overdue {
			continue
		}
		// The current overdue period starts at DueAt + k*interval.
		k := now.Sub(d.DueAt) / s.interval
		period := d.DueAt.Add(k * s.interval)
		rs := s.st.Reviews(d.Tenant)
		err := s.st.InTx(ctx, func(tx *sql.Tx) error {
			last, err := rs.LastOverdueAlert(ctx, tx)
			if err != nil {
				return err
			}
			if !last.Before(period) {
				return nil
			}
			if err := rs.SetOverdueAlert(ctx, tx, period, now); err != nil {
				return err
			}
			det := fmt.Sprintf(`{"due_at":%q,"overdue_periods":%d,"last_signed":%q,"open_review":%q}`,
				stamp(d.DueAt), int(k)+1, stamp(d.LastSigned), d.Open)
			_, err = s.rec.Record(ctx, tx, audit.Entry{Tenant: d.Tenant, ActorID: "system", ActorName: "review", Action: audit.ActReviewOverdue,
				Object: "review-due:" + tenantLabel(d.Tenant), Details: []byte(det)})
			if err == nil {
				n++
			}
			return err
		})
		if err != nil {
			return n, fmt.Errorf("review overdue alert %q: %w", d.Tenant, err)
		}
	}
	return n, nil
}

func tenantLabel(t string) string {
	if t == "" {
		return "appliance"
	}
	return t
}

// Run checks for overdue reviews every interval until ctx ends; failures
// go to onErr and are retried at the next tick.
func (s *Service) Run(ctx context.Context, every time.Duration, onErr func(error)) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if _, err := s.CheckOverdue(ctx); err != nil && ctx.Err() == nil {
			onErr(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
