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
	"firewalliq/probe/scope"
)

// ErrNeedsApproval means a run on a production scope was started without
// the dual approval such scans need (the approval flow for runs arrives
// with scan requests, issue 12; until then production runs are refused).
var ErrNeedsApproval = errors.New("production scope: scan needs dual approval")

// Runs records scans that run on this appliance: their start and their
// completion, each an audited state change (scan.start, scan.complete) by
// the principal that runs them.
type Runs struct {
	st   *store.Store
	gate Gate
	rec  auth.Recorder
	now  func() time.Time
}

// NewRuns checks deps and returns the service (Trust and Profile unused).
func NewRuns(d Deps) (*Runs, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	return &Runs{st: d.Store, gate: d.Gate, rec: d.Journal, now: d.Now}, nil
}

// Run names one scan.
type Run struct {
	// ID is the caller's name for the scan (the results directory's, the
	// evidence objects' prefix).
	ID string
	// ScopeID is the registered scope it runs under.
	ScopeID string
	// Rate is the requested packets per second.
	Rate int
}

// Start records that p starts run r in tenant: r's scope must be
// registered there and be non-production. Audited as scan.start.
func (r *Runs) Start(ctx context.Context, p auth.Principal, tenant string, run Run) error {
	return r.record(ctx, p, tenant, run, audit.ActScanStart, map[string]any{"rate": run.Rate})
}

// Complete records that run finished with results rows and findings,
// audited as scan.complete.
func (r *Runs) Complete(ctx context.Context, p auth.Principal, tenant string, run Run, results, findings int) error {
	return r.record(ctx, p, tenant, run, audit.ActScanComplete, map[string]any{"results": results, "findings": findings})
}

func (r *Runs) record(ctx context.Context, p auth.Principal, tenant string, run Run, action audit.Action, details map[string]any) error {
	pin, err := r.gate.Authorize(ctx, p, auth.OpScanRequest, tenant)
	if err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	if run.ID == "" || len(run.ID) > 128 || run.Rate < 0 {
		return fmt.Errorf("%s: %w: scan id must be 1..128 bytes, rate not negative", action, auth.ErrInvalid)
	}
	ts, err := r.st.Tenant(pin)
	if err != nil {
		return err
	}
	sc, err := ts.Scope(ctx, run.ScopeID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%s: %w", action, r.gate.RefuseNotFound(ctx, p, pin, auth.OpScanRequest, "scope:"+run.ScopeID, fmt.Errorf("%w: %w", ErrNotFound, err)))
		}
		return err
	}
	if sc.Environment == scope.EnvProduction {
		return fmt.Errorf("%s %s: %w", action, run.ID, ErrNeedsApproval)
	}
	details["scope"] = run.ScopeID
	details["scope_sha256"] = sc.SHA256
	d, err := json.Marshal(details)
	if err != nil {
		return err
	}
	return r.st.InTx(ctx, func(tx *sql.Tx) error {
		_, err := r.rec.Record(ctx, tx, audit.Entry{Tenant: pin, ActorID: p.UserID, ActorName: p.Name, ActorIP: p.Client.IP, UserAgent: p.Client.UserAgent,
			Action: action, Object: "scan:" + run.ID, Details: d})
		return err
	})
}
