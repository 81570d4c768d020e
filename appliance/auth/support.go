package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// OpenSupport opens a support ticket: a tenant admin (step-up) grants the
// support user supportUserID access to p's tenant, read-only and only that
// tenant, for ttl (at most Params.SupportMaxTTL). While it is open the
// support user's principal is pinned to the tenant (Authenticate); it ends
// by itself at expiry. The support user's sessions are ended on open and
// close, so the change of rights takes effect from a fresh login.
func (s *Service) OpenSupport(ctx context.Context, p Principal, supportUserID string, ttl time.Duration, reason, stepUpCode string) (store.SupportTicket, error) {
	reason = strings.TrimSpace(reason)
	if ttl <= 0 || ttl > s.p.SupportMaxTTL || reason == "" {
		return store.SupportTicket{}, fmt.Errorf("support ticket ttl %s reason %q: %w", ttl, reason, ErrInvalid)
	}
	var t store.SupportTicket
	args := map[string]string{"id": supportUserID, "ttl": ttl.String(), "reason": reason}
	err := s.sensitive(ctx, p, OpSupportOpen, "", args, stepUpCode, func(tx *sql.Tx, pin string) error {
		su, err := s.st.UserByID(ctx, supportUserID)
		if err != nil {
			return err
		}
		if su.Role != store.RoleSupport || su.Disabled {
			return fmt.Errorf("user %s is not an active support user: %w", supportUserID, ErrInvalid)
		}
		if cur, err := s.st.ActiveSupportTicket(ctx, supportUserID, s.now()); err == nil {
			// One ticket at a time, so the pinned tenant is never ambiguous.
			return fmt.Errorf("support user already holds ticket %s: %w", cur.ID, ErrInvalid)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		at, err := s.st.AuthTenant(pin)
		if err != nil {
			return err
		}
		now := s.now()
		t, err = at.CreateSupportTicket(ctx, tx, store.SupportTicket{ID: store.NewID("sup"), SupportUserID: supportUserID, OpenedBy: p.UserID, Reason: reason, OpenedAt: now, ExpiresAt: now.Add(ttl)})
		if err != nil {
			return err
		}
		if _, err := s.st.DeleteUserSessions(ctx, tx, supportUserID); err != nil {
			return err
		}
		return s.append(ctx, tx, p.entry(pin, audit.ActSupportOpen, t.ID, fields{"support_user": supportUserID, "support_name": su.Name, "expires": t.ExpiresAt.Format(time.RFC3339), "reason": reason}))
	})
	return t, err
}

// CloseSupport ends a ticket of p's tenant early.
func (s *Service) CloseSupport(ctx context.Context, p Principal, ticketID string) error {
	pin, err := s.Authorize(ctx, p, OpSupportClose, "")
	if err != nil {
		return err
	}
	at, err := s.st.AuthTenant(pin)
	if err != nil {
		return err
	}
	t, err := at.SupportTicket(ctx, ticketID)
	if err != nil {
		return s.notInTenant(ctx, p, pin, OpSupportClose, ticketID, err)
	}
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		return s.closeTicket(ctx, tx, at, t, p.entry(pin, audit.ActSupportClose, t.ID, fields{"support_user": t.SupportUserID, "reason": "closed by admin"}))
	})
	return s.notInTenant(ctx, p, pin, OpSupportClose, ticketID, err)
}

func (s *Service) closeTicket(ctx context.Context, tx *sql.Tx, at *store.AuthTenant, t store.SupportTicket, e audit.Entry) error {
	if err := at.CloseSupportTicket(ctx, tx, t.ID, s.now()); err != nil {
		return err
	}
	if _, err := s.st.DeleteUserSessions(ctx, tx, t.SupportUserID); err != nil {
		return err
	}
	return s.append(ctx, tx, e)
}

// ListSupport lists p's tenant's tickets.
func (s *Service) ListSupport(ctx context.Context, p Principal) ([]store.SupportTicket, error) {
	pin, err := s.Authorize(ctx, p, OpSupportList, "")
	if err != nil {
		return nil, err
	}
	at, err := s.st.AuthTenant(pin)
	if err != nil {
		return nil, err
	}
	return at.ListSupportTickets(ctx)
}

// Sweep does the service's timed work; the appliance runs it every 30
// seconds (an alert or an expiry is never more than a minute late):
// closes expired support tickets (audited, sessions ended), deletes
// expired sessions, prunes activity events older than the longest window
// and login throttle state quiet for Params.ThrottleForget. Access never depends on Sweep having run: every check compares
// expiry times itself.
func (s *Service) Sweep(ctx context.Context) error {
	now := s.now()
	ts, err := s.st.ExpiredSupportTickets(ctx, now)
	if err != nil {
		return err
	}
	for _, t := range ts {
		at, err := s.st.AuthTenant(t.TenantID)
		if err != nil {
			return err
		}
		e := audit.Entry{Tenant: t.TenantID, ActorName: "system", Action: audit.ActSupportClose, Object: t.ID,
			Details: jsonDetails(fields{"support_user": t.SupportUserID, "reason": "expired", "expired": t.ExpiresAt.Format(time.RFC3339)})}
		err = s.st.InTx(ctx, func(tx *sql.Tx) error { return s.closeTicket(ctx, tx, at, t, e) })
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("sweep ticket %s: %w", t.ID, err)
		}
	}
	keep := s.p.IPWindow
	for _, r := range s.p.Anomaly {
		keep = max(keep, r.Window)
	}
	return s.st.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.st.DeleteExpiredSessions(ctx, tx, now, now.Add(-s.p.SessionIdle)); err != nil {
			return err
		}
		// Throttled pairs are forgotten once quiet for ThrottleForget and
		// no longer blocked.
		if err := s.st.PruneLoginThrottle(ctx, tx, now.Add(-s.p.ThrottleForget), now); err != nil {
			return err
		}
		return s.st.PruneEvents(ctx, tx, now.Add(-keep))
	})
}

// Run calls Sweep every interval until ctx ends, reporting errors to
// onError (which may be nil).
func (s *Service) Run(ctx context.Context, interval time.Duration, onError func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Sweep(ctx); err != nil && onError != nil {
				onError(err)
			}
		}
	}
}
