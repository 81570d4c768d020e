package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/siem"
	"firewalliq/appliance/store"
	"firewalliq/audit"
	"firewalliq/probe"
	"firewalliq/probe/scope"
)

// Gate is the identity service as the policy service needs it;
// *auth.Service implements it.
type Gate interface {
	Authorize(ctx context.Context, p auth.Principal, op auth.Operation, tenant string) (string, error)
	UseStepUp(ctx context.Context, tx *sql.Tx, p auth.Principal, op auth.Operation, canonicalRequest []byte, code string) error
	StepUpRefused(ctx context.Context, p auth.Principal, tenant string, op auth.Operation, err error) error
	RefuseNotFound(ctx context.Context, p auth.Principal, tenant string, op auth.Operation, object string, err error) error
}

// FindingSink queues findings for the SIEM inside a transaction;
// *siem.Outbox implements it.
type FindingSink interface {
	EnqueueFinding(ctx context.Context, tx *sql.Tx, tenant string, auditSeq int64, f siem.Finding) error
}

// Deps are the service's dependencies.
type Deps struct {
	Store   *store.Store
	Gate    Gate
	Journal auth.Recorder
	// Findings receives findings (the SIEM outbox); nil drops them (tools
	// and tests without SIEM).
	Findings FindingSink
}

// Service stores versioned policies and baselines per tenant and evaluates
// scans against them, on behalf of principals: every method authorises
// the caller against the permission matrix and every change is audited in
// its own transaction through the journal.
type Service struct {
	st   *store.Store
	gate Gate
	rec  auth.Recorder
	sink FindingSink
}

// NewService checks deps and returns the service.
func NewService(d Deps) (*Service, error) {
	if d.Store == nil || d.Gate == nil || d.Journal == nil {
		return nil, errors.New("policy: Store, Gate and Journal are required")
	}
	return &Service{st: d.Store, gate: d.Gate, rec: d.Journal, sink: d.Findings}, nil
}

// Stored is one stored version of a policy.
type Stored struct {
	Name         string    `json:"name"`
	Version      int       `json:"version"`
	VantagePoint string    `json:"vantage_point"`
	SHA256       string    `json:"sha256"`
	CreatedBy    string    `json:"created_by"`
	CreatedAt    string    `json:"created_at"`
	Document     *Document `json:"document"`
	// Source is the document as submitted.
	Source []byte `json:"-"`
}

func storedOf(p store.Policy) (Stored, error) {
	d, err := Parse(p.Source)
	if err != nil {
		return Stored{}, fmt.Errorf("stored policy %q version %d no longer parses: %w", p.Name, p.Version, err)
	}
	return Stored{Name: p.Name, Version: p.Version, VantagePoint: p.VantagePoint, SHA256: p.SHA256, CreatedBy: p.CreatedBy, CreatedAt: p.CreatedAt, Document: d, Source: p.Source}, nil
}

// Create validates src (YAML or JSON) and stores it as the next version of
// the policy it names (version 1 for a new name), audited as policy.create.
// An invalid document returns a *ValidationError (ErrInvalid) and stores
// nothing. Needs policy.edit.
func (s *Service) Create(ctx context.Context, p auth.Principal, tenant string, src []byte) (Stored, error) {
	pin, err := s.gate.Authorize(ctx, p, auth.OpPolicyEdit, tenant)
	if err != nil {
		return Stored{}, fmt.Errorf("create policy: %w", err)
	}
	d, err := Parse(src)
	if err != nil {
		return Stored{}, fmt.Errorf("create policy: %w", err)
	}
	ts, err := s.st.Tenant(pin)
	if err != nil {
		return Stored{}, fmt.Errorf("create policy: %w", err)
	}
	var out store.Policy
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = ts.CreatePolicyVersion(ctx, tx, store.Policy{Name: d.Name, VantagePoint: d.VantagePoint, Source: bytes.Clone(src),
			Canonical: d.Canonical(), SHA256: d.SHA256(), CreatedBy: p.UserID})
		if err != nil {
			return err
		}
		_, err = s.rec.Record(ctx, tx, entry(p, pin, audit.ActPolicyCreate, "policy:"+d.Name, map[string]any{
			"name": d.Name, "version": out.Version, "sha256": out.SHA256, "vantage_point": d.VantagePoint, "rules": len(d.Rules)}))
		return err
	})
	if err != nil {
		return Stored{}, fmt.Errorf("create policy %q: %w", d.Name, err)
	}
	return Stored{Name: out.Name, Version: out.Version, VantagePoint: out.VantagePoint, SHA256: out.SHA256, CreatedBy: out.CreatedBy, CreatedAt: out.CreatedAt, Document: d, Source: out.Source}, nil
}

// Get returns version of the caller's tenant's policy name (0: the newest).
// A name of another tenant is refused (and audited) like a missing one,
// wrapping ErrNotFound. Needs policy.read.
func (s *Service) Get(ctx context.Context, p auth.Principal, tenant, name string, version int) (Stored, error) {
	sp, _, err := s.get(ctx, p, tenant, auth.OpPolicyRead, name, version)
	return sp, err
}

// get authorises op and loads the policy; it returns the pinned tenant.
func (s *Service) get(ctx context.Context, p auth.Principal, tenant string, op auth.Operation, name string, version int) (Stored, string, error) {
	pin, err := s.gate.Authorize(ctx, p, op, tenant)
	if err != nil {
		return Stored{}, "", fmt.Errorf("policy %q: %w", name, err)
	}
	ts, err := s.st.Tenant(pin)
	if err != nil {
		return Stored{}, "", err
	}
	sp, err := ts.Policy(ctx, name, version)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return Stored{}, "", fmt.Errorf("policy %q: %w", name, s.gate.RefuseNotFound(ctx, p, pin, op, "policy:"+name, fmt.Errorf("%w: %w", ErrNotFound, err)))
		}
		return Stored{}, "", err
	}
	st, err := storedOf(sp)
	return st, pin, err
}

// List returns the newest version of each of the tenant's policies.
// Needs policy.read.
func (s *Service) List(ctx context.Context, p auth.Principal, tenant string) ([]Stored, error) {
	pin, err := s.gate.Authorize(ctx, p, auth.OpPolicyRead, tenant)
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	ts, err := s.st.Tenant(pin)
	if err != nil {
		return nil, err
	}
	ps, err := ts.ListPolicies(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Stored, 0, len(ps))
	for _, sp := range ps {
		st, err := storedOf(sp)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// DryRun plans a stored policy against a scope document (see Plan).
// Needs policy.read.
func (s *Service) DryRun(ctx context.Context, p auth.Principal, tenant, name string, version int, sd scope.Document) (DryRun, error) {
	sp, err := s.Get(ctx, p, tenant, name, version)
	if err != nil {
		return DryRun{}, err
	}
	return PlanScope(sp.Document, sd)
}

// BaselineRequest names a result set to accept as a baseline.
type BaselineRequest struct {
	ScopeID       string
	PolicyName    string
	PolicyVersion int // 0: the newest
	ScanID        string
	Results       []probe.Result
}

// ResultsJSONL is the JSON Lines form of results (as results.jsonl), the
// bytes a baseline stores and hashes.
func ResultsJSONL(results []probe.Result) ([]byte, error) {
	var buf bytes.Buffer
	w := probe.NewResultWriter(&buf)
	for _, r := range results {
		if err := w.Write(r); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// BaselineRequestBytes is the canonical request an AcceptBaseline step-up
// is bound to: the results enter by their SHA-256.
func BaselineRequestBytes(tenant string, r BaselineRequest, resultsSHA256 string) []byte {
	return auth.OpRequest(auth.OpPolicyBaseline, tenant, map[string]string{
		"scope_id": r.ScopeID, "policy": r.PolicyName, "version": strconv.Itoa(r.PolicyVersion), "scan_id": r.ScanID, "results_sha256": resultsSHA256})
}

// AcceptBaseline stores r's results as the baseline of its scope and
// policy after a step-up (code, or "" to spend a grant made for
// BaselineRequestBytes; without one the error is an *auth.StepUpChallenge),
// audited as policy.baseline.accept. Needs policy.baseline.accept.
func (s *Service) AcceptBaseline(ctx context.Context, p auth.Principal, tenant string, r BaselineRequest, code string) (store.Baseline, error) {
	sp, pin, err := s.get(ctx, p, tenant, auth.OpPolicyBaseline, r.PolicyName, r.PolicyVersion)
	if err != nil {
		return store.Baseline{}, fmt.Errorf("accept baseline: %w", err)
	}
	if !namePattern.MatchString(r.ScopeID) || !namePattern.MatchString(r.ScanID) {
		return store.Baseline{}, fmt.Errorf("accept baseline: %w: scope and scan ids must be names", ErrInvalid)
	}
	body, err := ResultsJSONL(r.Results)
	if err != nil {
		return store.Baseline{}, fmt.Errorf("accept baseline: %w", err)
	}
	sum := sha256.Sum256(body)
	hexSum := hex.EncodeToString(sum[:])
	req := BaselineRequestBytes(pin, r, hexSum)
	ts, err := s.st.Tenant(pin)
	if err != nil {
		return store.Baseline{}, err
	}
	var out store.Baseline
	var stepErr error
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.gate.UseStepUp(ctx, tx, p, auth.OpPolicyBaseline, req, code); err != nil {
			stepErr = err
			return err
		}
		var err error
		out, err = ts.CreateBaseline(ctx, tx, store.Baseline{ScopeID: r.ScopeID, PolicyName: sp.Name, PolicyVersion: sp.Version, ScanID: r.ScanID,
			Results: body, ResultsSHA256: hexSum, AcceptedBy: p.UserID})
		if err != nil {
			return err
		}
		_, err = s.rec.Record(ctx, tx, entry(p, pin, audit.ActPolicyBaselineAccept, "baseline:"+out.ID, map[string]any{
			"scope_id": r.ScopeID, "policy": sp.Name, "version": sp.Version, "scan_id": r.ScanID, "results_sha256": hexSum, "results": len(r.Results)}))
		return err
	})
	if stepErr != nil {
		return store.Baseline{}, fmt.Errorf("accept baseline: %w", s.gate.StepUpRefused(ctx, p, pin, auth.OpPolicyBaseline, stepErr))
	}
	if err != nil {
		return store.Baseline{}, fmt.Errorf("accept baseline: %w", err)
	}
	return out, nil
}

// Baseline returns the current baseline of the caller's tenant's scope and
// policy, with its results; none accepted yet wraps ErrNotFound. Needs
// policy.read.
func (s *Service) Baseline(ctx context.Context, p auth.Principal, tenant, scopeID, policyName string) (store.Baseline, []probe.Result, error) {
	pin, err := s.gate.Authorize(ctx, p, auth.OpPolicyRead, tenant)
	if err != nil {
		return store.Baseline{}, nil, fmt.Errorf("baseline: %w", err)
	}
	ts, err := s.st.Tenant(pin)
	if err != nil {
		return store.Baseline{}, nil, err
	}
	b, err := ts.CurrentBaseline(ctx, scopeID, policyName)
	if errors.Is(err, store.ErrNotFound) {
		return store.Baseline{}, nil, fmt.Errorf("%w: no baseline for scope %q and policy %q", ErrNotFound, scopeID, policyName)
	}
	if err != nil {
		return store.Baseline{}, nil, err
	}
	rs, err := ReadResults(b.Results)
	if err != nil {
		return store.Baseline{}, nil, fmt.Errorf("baseline %s: %w", b.ID, err)
	}
	return b, rs, nil
}

// EvaluateRequest is a scan to judge.
type EvaluateRequest struct {
	PolicyName    string
	PolicyVersion int // 0: the newest
	ScopeID       string
	ScanID        string
	Results       []probe.Result
	Window        Window
	// Imported marks results read from another scanner (interop): unsigned
	// evidence. The audit entry and every SIEM finding say so.
	Imported bool
}

// Outcome is an evaluation with its drift and where it was recorded.
type Outcome struct {
	Policy     Stored     `json:"policy"`
	Evaluation Evaluation `json:"evaluation"`
	// BaselineID is the baseline drift was computed against ("" when
	// none was accepted yet; Drift is empty then).
	BaselineID string    `json:"baseline_id,omitempty"`
	Drift      []Change  `json:"drift"`
	Findings   []Finding `json:"findings"`
	// AuditSeq is the seq of the policy.evaluate entry; the SIEM findings
	// carry it.
	AuditSeq int64 `json:"audit_seq"`
}

// Evaluate judges a scan's results against a stored policy and the
// current baseline of its scope and policy, records policy.evaluate and
// queues every finding (evaluation and drift) to the SIEM, with its
// severity, in the same transaction. Needs policy.evaluate.
func (s *Service) Evaluate(ctx context.Context, p auth.Principal, tenant string, r EvaluateRequest) (Outcome, error) {
	sp, pin, err := s.get(ctx, p, tenant, auth.OpPolicyEvaluate, r.PolicyName, r.PolicyVersion)
	if err != nil {
		return Outcome{}, fmt.Errorf("evaluate: %w", err)
	}
	if !namePattern.MatchString(r.ScanID) || r.ScopeID != "" && !namePattern.MatchString(r.ScopeID) {
		return Outcome{}, fmt.Errorf("evaluate: %w: scope and scan ids must be names", ErrInvalid)
	}
	if r.Window.Start.IsZero() || r.Window.End.Before(r.Window.Start) {
		// Canaries count only inside the window, so it must be real.
		return Outcome{}, fmt.Errorf("evaluate: %w: the scan window must be given and end after it starts", ErrInvalid)
	}
	out := Outcome{Policy: sp, Evaluation: Evaluate(sp.Document, r.Results, r.Window), Drift: []Change{}}
	ts, err := s.st.Tenant(pin)
	if err != nil {
		return Outcome{}, err
	}
	if r.ScopeID != "" {
		b, err := ts.CurrentBaseline(ctx, r.ScopeID, sp.Name)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return Outcome{}, fmt.Errorf("evaluate: %w", err)
		default:
			base, err := ReadResults(b.Results)
			if err != nil {
				return Outcome{}, fmt.Errorf("evaluate: baseline %s: %w", b.ID, err)
			}
			out.BaselineID = b.ID
			out.Drift = Drift(base, r.Results)
		}
	}
	out.Findings = append(append([]Finding{}, out.Evaluation.Findings...), DriftFindings(out.Drift)...)
	summary := map[string]int{}
	for _, f := range out.Findings {
		summary[f.Kind]++
	}
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		e, err := s.rec.Record(ctx, tx, entry(p, pin, audit.ActPolicyEvaluate, "scan:"+r.ScanID, map[string]any{
			"policy": sp.Name, "version": sp.Version, "sha256": sp.SHA256, "scope_id": r.ScopeID, "baseline_id": out.BaselineID,
			"findings": summary, "results": len(r.Results), "imported": r.Imported}))
		if err != nil {
			return err
		}
		out.AuditSeq = e.Seq
		if s.sink == nil {
			return nil
		}
		for _, f := range out.Findings {
			sf := SIEMFinding(r.ScanID, f)
			if r.Imported {
				sf.Title = "[unsigned imported evidence] " + sf.Title
			}
			if err := s.sink.EnqueueFinding(ctx, tx, pin, e.Seq, sf); err != nil {
				return fmt.Errorf("finding %s: %w", f.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return Outcome{}, fmt.Errorf("evaluate: %w", err)
	}
	return out, nil
}

// SIEMFinding converts a finding to the SIEM's form.
func SIEMFinding(scanID string, f Finding) siem.Finding {
	return siem.Finding{ID: f.ID, ScanID: scanID, Kind: f.Kind, Severity: string(f.Severity), Title: f.Title, Rule: f.Rule,
		Target: f.Target, Port: int(f.Port), Protocol: f.Proto, Observed: f.Observed, Expected: f.Expected}
}

// ReadResults parses JSON Lines results (as ResultsJSONL writes them).
func ReadResults(b []byte) ([]probe.Result, error) {
	var out []probe.Result
	dec := json.NewDecoder(bytes.NewReader(b))
	for i := 0; dec.More(); i++ {
		var r probe.Result
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("results line %d: %w", i+1, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// entry builds an audit entry attributed to p.
func entry(p auth.Principal, tenant string, action audit.Action, object string, details map[string]any) audit.Entry {
	d, err := json.Marshal(details)
	if err != nil {
		// Details built here are strings, numbers and maps of those.
		d = []byte(`{"error":"details not encodable"}`)
	}
	return audit.Entry{Tenant: tenant, ActorID: p.UserID, ActorName: p.Name, ActorIP: p.Client.IP, UserAgent: p.Client.UserAgent,
		Action: action, Object: object, Details: d}
}
