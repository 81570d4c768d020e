package auth

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// Activity is a per-user action counted in sliding windows for anomaly
// alerts (Params.Anomaly).
type Activity string

// Counted activities. Failed logins are recorded by the service itself;
// scan and export services call RecordActivity.
const (
	ActivityScanRequest Activity = store.EventScanRequest
	ActivityExport      Activity = store.EventExport
	ActivityLoginFailed Activity = store.EventLoginFailed
	// ActivityLoginSources is not recorded but derived: the number of
	// distinct source addresses of one account's failed logins in the
	// window (a distributed guess, which per-address throttling does not
	// stop).
	ActivityLoginSources Activity = "login.sources"
)

// RecordActivity counts one activity by p inside the caller's transaction
// (the one that performs it). When p's count in the activity's sliding
// window reaches the threshold, an anomaly.alert audit entry is written in
// the same transaction, at once: at most one per user, activity and window.
//
// The SIEM picks alerts up from the audit log like every other entry
// (action "anomaly.alert"; details: activity, count, threshold,
// window_seconds, user_id), so an alert reaches it as soon as its outbox
// reads the entry.
func (s *Service) RecordActivity(ctx context.Context, tx *sql.Tx, p Principal, a Activity) error {
	if _, ok := s.p.Anomaly[a]; !ok || a == ActivityLoginSources {
		return fmt.Errorf("activity %q: %w", a, ErrInvalid)
	}
	return s.activity(ctx, tx, p, a)
}

func (s *Service) activity(ctx context.Context, tx *sql.Tx, p Principal, a Activity) error {
	if a == ActivityLoginSources {
		return s.sources(ctx, tx, p)
	}
	rule, ok := s.p.Anomaly[a]
	if !ok || p.UserID == "" {
		return nil
	}
	now := s.now()
	// Failed logins are inserted by their callers (which also count them
	// per source address); the rest here.
	if a != ActivityLoginFailed {
		if err := s.st.AddEvent(ctx, tx, string(a), p.UserID, p.Client.IP, now); err != nil {
			return err
		}
	}
	since := now.Add(-rule.Window)
	n, err := s.st.CountUserEvents(ctx, tx, string(a), p.UserID, since)
	if err != nil {
		return err
	}
	if n < rule.Threshold {
		return nil
	}
	last, err := s.st.LastAnomalyAlert(ctx, tx, p.UserID, string(a))
	if err != nil {
		return err
	}
	if !last.IsZero() && last.After(since) {
		return nil
	}
	if err := s.st.SetAnomalyAlert(ctx, tx, p.UserID, string(a), now); err != nil {
		return err
	}
	return s.append(ctx, tx, audit.Entry{Tenant: p.HomeTenantID, ActorID: p.UserID, ActorName: p.Name, ActorIP: p.Client.IP, UserAgent: p.Client.UserAgent,
		Action: audit.ActAnomalyAlert, Object: p.UserID,
		Details: jsonDetails(fields{"activity": string(a), "count": n, "threshold": rule.Threshold, "window_seconds": int64(rule.Window / time.Second), "user_id": p.UserID})})
}

// maxAlertSources bounds the addresses listed in one alert's details.
const maxAlertSources = 20

// sources raises anomaly.alert (activity login.sources) when p's account
// saw failed logins from at least the rule's threshold of distinct
// addresses in its window: at most one alert per window.
func (s *Service) sources(ctx context.Context, tx *sql.Tx, p Principal) error {
	rule, ok := s.p.Anomaly[ActivityLoginSources]
	if !ok || p.UserID == "" {
		return nil
	}
	now := s.now()
	since := now.Add(-rule.Window)
	n, ips, err := s.st.UserEventSources(ctx, tx, store.EventLoginFailed, p.UserID, since, maxAlertSources)
	if err != nil {
		return err
	}
	if n < rule.Threshold {
		return nil
	}
	last, err := s.st.LastAnomalyAlert(ctx, tx, p.UserID, string(ActivityLoginSources))
	if err != nil {
		return err
	}
	if !last.IsZero() && last.After(since) {
		return nil
	}
	if err := s.st.SetAnomalyAlert(ctx, tx, p.UserID, string(ActivityLoginSources), now); err != nil {
		return err
	}
	return s.append(ctx, tx, audit.Entry{Tenant: p.HomeTenantID, ActorID: p.UserID, ActorName: p.Name, ActorIP: p.Client.IP, UserAgent: p.Client.UserAgent,
		Action: audit.ActAnomalyAlert, Object: p.UserID,
		Details: jsonDetails(fields{"activity": string(ActivityLoginSources), "count": n, "threshold": rule.Threshold, "window_seconds": int64(rule.Window / time.Second), "user_id": p.UserID, "sources": ips})})
}
