package scan

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/store"
	"firewalliq/audit"
	"firewalliq/probe/job"
	"firewalliq/probe/runner"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
	"firewalliq/vault"
)

// Scan request states (scan_requests.state), docs/scans.md.
const (
	StatePending   = "pending"   // production: waiting for two approvals
	StateApproved  = "approved"  // production: approved; waits for the requester's start
	StateDenied    = "denied"    // an approver denied it
	StateQueued    = "queued"    // started; waits for a slot and its tenant's turn
	StateRunning   = "running"   // a job was issued and handed to the runner
	StateCompleted = "completed" // the runner finished; results and evidence stored
	StateFailed    = "failed"    // refused by the runner, failed, or not resumable
	StateCancelled = "cancelled" // cancelled by a user, or its scope or key was revoked
)

// Errors of the scan service.
var (
	// ErrScanNotFound means no scan request has that id in the caller's
	// tenant.
	ErrScanNotFound = errors.New("scan not found")
	// ErrBadRequest means a scan request does not fit its scope or the
	// safety profile (a target outside the scope or inside an exclude, too
	// many targets, a port or probe kind not in the scope, a rate above
	// the cap); the wrapped error says exactly why. Nothing was stored.
	ErrBadRequest = errors.New("invalid scan request")
	// ErrState means the scan is not in a state that allows the action
	// (starting a scan still pending approval, cancelling a finished one).
	ErrState = errors.New("scan state does not allow this")
)

// EvidenceSink is the evidence vault as the scan service uses it;
// *evidence.Service implements it (Submit: spool an object and record its
// SHA-256, with within in the same transaction).
type EvidenceSink interface {
	Submit(ctx context.Context, p auth.Principal, tenant, scan, name string, r io.Reader, within func(ctx context.Context, tx *sql.Tx, e vault.SpoolEntry) error) (vault.SpoolEntry, error)
}

// ScansDeps are the scan service's dependencies.
type ScansDeps struct {
	Deps
	// Keys and Scopes are the registries (NewKeys, NewScopes); the scan
	// service hooks revocations into them.
	Keys   *Keys
	Scopes *Scopes
	// JobKey signs jobs (keyring.Job).
	JobKey ed25519.PrivateKey
	// Runner runs signed jobs (the local engine: runner.Local).
	Runner runner.Runner
	// Fleet runs the jobs whose vantage names a sensor (the sensor
	// service's RemoteRunner); nil: no sensors, and a job naming another
	// vantage goes to Runner, which refuses it.
	Fleet Fleet
	// Evidence receives each completed scan's results file and manifest;
	// nil when no vault is configured.
	Evidence EvidenceSink
	// Resolve resolves hostname targets once, at request time (pinned);
	// scope.SystemResolver when nil.
	Resolve scope.Resolver
	// JobValidity is a job's validity window (default 6 hours, at most
	// job.MaxValidity). A job is verified before its first packet and again
	// before a resumed run: an expired one is not resumed.
	JobValidity time.Duration
	// BatchTargets is the targets per batch written into jobs (0: the
	// engine's default of about one second of sending).
	BatchTargets int
	// CaptureFile names the file a scan's packet capture is written to
	// (the local runner's Capture opens it); when it exists at completion
	// it goes to the vault as probes.pcapng and is then removed. nil: no
	// capture.
	CaptureFile func(scanID string) string
	// ScheduleTick is how often the scheduler looks for due schedules
	// (default 30 s).
	ScheduleTick time.Duration
	// OnError receives errors of background work (nil: dropped).
	OnError func(error)
}

// Fleet is the sensor fleet as the scan service uses it:
// *sensor.RemoteRunner implements it.
type Fleet interface {
	runner.Runner
	// Vantage returns the vantage label of tenant's (an id) sensor id and
	// whether it is active (enrolled, not revoked); an error when id is
	// no sensor of tenant.
	Vantage(ctx context.Context, tenant, id string) (label string, active bool, err error)
}

// maxResumes bounds how often one scan's remote run is dispatched again
// after its sensor reported it interrupted (restarted mid-run).
const maxResumes = 3

// Scans is the scan service: requests, approvals, start, cancel, the
// dispatcher that issues signed jobs to the runner, results, progress and
// recovery. Every state change is a method that authorises the acting
// principal and writes its audit entry in the same transaction.
type Scans struct {
	st       *store.Store
	auth     *auth.Service
	rec      auth.Recorder
	profile  safety.Profile
	now      func() time.Time
	keys     *Keys
	scopes   *Scopes
	jobKey   ed25519.PrivateKey
	runner   runner.Runner
	fleet    Fleet
	evidence EvidenceSink
	resolve  scope.Resolver
	validity time.Duration
	batch    int
	onErr    func(error)
	capture  func(scanID string) string
	tick     time.Duration
	disp     *Dispatcher[string]

	mu      sync.Mutex
	claimed map[string]bool        // scans an execute call is handling
	active  map[string]*activeScan // running scans by id
	hubs    map[string]*hub        // progress subscribers by scan id
}

// activeScan is a scan the dispatcher is running.
type activeScan struct {
	cancel    context.CancelFunc
	cancelled bool // by a user (Cancel), not by the appliance stopping
}

// NewScans checks deps and returns the scan service. It hooks key and
// scope revocation into the registries, so revoking stops requests.
func NewScans(d ScansDeps) (*Scans, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	switch {
	case d.Auth == nil || d.Keys == nil || d.Scopes == nil:
		return nil, errors.New("scan: Auth, Keys and Scopes are required")
	case len(d.JobKey) != ed25519.PrivateKeySize:
		return nil, errors.New("scan: a job key is required")
	case d.Runner == nil:
		return nil, errors.New("scan: a runner is required")
	}
	if d.Resolve == nil {
		d.Resolve = scope.SystemResolver
	}
	if d.JobValidity <= 0 {
		d.JobValidity = 6 * time.Hour
	}
	if d.JobValidity > job.MaxValidity {
		return nil, fmt.Errorf("scan: job validity %s above %s", d.JobValidity, job.MaxValidity)
	}
	if d.OnError == nil {
		d.OnError = func(error) {}
	}
	if d.ScheduleTick <= 0 {
		d.ScheduleTick = 30 * time.Second
	}
	s := &Scans{st: d.Store, auth: d.Auth, rec: d.Journal, profile: d.Profile, now: d.Now, keys: d.Keys, scopes: d.Scopes,
		jobKey: d.JobKey, runner: d.Runner, fleet: d.Fleet, evidence: d.Evidence, resolve: d.Resolve, validity: d.JobValidity, batch: d.BatchTargets,
		onErr: d.OnError, capture: d.CaptureFile, tick: d.ScheduleTick, claimed: map[string]bool{}, active: map[string]*activeScan{}, hubs: map[string]*hub{}}
	disp, err := NewDispatcher(d.Profile, s.execute)
	if err != nil {
		return nil, err
	}
	s.disp = disp
	d.Keys.onRevoke = func(ctx context.Context, tx *sql.Tx, tenant, keyID string) ([]string, error) {
		return s.stopWhere(ctx, tx, tenant, "scope_key_id = ?", keyID, "scope-signing key "+keyID+" revoked")
	}
	d.Keys.afterRevoke = s.voidApprovals
	d.Scopes.stop = func(ctx context.Context, tx *sql.Tx, tenant, scopeID string) ([]string, []string, error) {
		approvals, err := pendingApprovals(ctx, tx, tenant, "scope_id = ?", scopeID)
		if err != nil {
			return nil, nil, err
		}
		stopped, err := s.stopWhere(ctx, tx, tenant, "scope_id = ?", scopeID, "scope "+scopeID+" revoked")
		return stopped, approvals, err
	}
	d.Scopes.voidAll = s.voidApprovals
	return s, nil
}

// ScanRequest is what a user asks for. Zero values take the defaults.
type ScanRequest struct {
	// ScopeID names a registered scope of the tenant.
	ScopeID string `json:"scope_id"`
	// Targets are addresses, CIDRs or hostnames, each wholly inside the
	// scope and outside its excludes (hostnames are resolved now and every
	// answer pinned). Default: the whole scope, when it fits the profile's
	// max_targets.
	Targets []string `json:"targets,omitempty"`
	// Ports is a port specification ("tcp:22,443 udp:53"), a subset of the
	// scope's. Default: the scope's ports.
	Ports string `json:"ports,omitempty"`
	// Probes are probe kinds, a subset of the scope's and the profile's.
	// Default: the scope's kinds that the profile allows.
	Probes []string `json:"probes,omitempty"`
	// Rate is packets per second, at most the scope's max_pps and the
	// profile's global_pps (refused above, never clamped). Default: that
	// cap.
	Rate int `json:"rate,omitempty"`
	// PolicySHA256 is the SHA-256 of the expected policy the results will
	// be judged against, or "".
	PolicySHA256 string `json:"policy_sha256,omitempty"`
	// Vantage is the runner: "local" (default) or a sensor id.
	Vantage string `json:"vantage,omitempty"`
}

// Scan is a scan request and its run.
type Scan struct {
	ID          string `json:"id"`
	Tenant      string `json:"tenant"`
	RequesterID string `json:"requester_id"`
	ScopeID     string `json:"scope_id"`
	ScopeSHA256 string `json:"scope_sha256"`
	ScopeKeyID  string `json:"scope_key_id"`
	// Request is the canonical request (docs/job.md); RequestSHA256 is
	// what approvals bind to.
	Request       json.RawMessage `json:"request"`
	RequestSHA256 string          `json:"request_sha256"`
	// ApprovalID is the dual-approval request (production scopes), or "".
	ApprovalID string   `json:"approval_id,omitempty"`
	Approvers  []string `json:"approvers,omitempty"`
	State      string   `json:"state"`
	Reason     string   `json:"reason,omitempty"`
	CreatedAt  string   `json:"created_at"`
	UpdatedAt  string   `json:"updated_at"`
	// Job is the signed job of the run, once issued.
	Job *JobInfo `json:"job,omitempty"`
}

// JobInfo describes a scan's signed job.
type JobInfo struct {
	ID      string `json:"id"`
	SHA256  string `json:"sha256"`
	Vantage string `json:"vantage"`
	// VantageLabel is the sensor's vantage label ("local" for the
	// appliance itself).
	VantageLabel string `json:"vantage_label,omitempty"`
	State        string `json:"state"`
	Reason       string `json:"reason,omitempty"`
	NextBatch    int    `json:"next_batch"`
	Results      int64  `json:"results"`
	IssuedAt     string `json:"issued_at"`
	StartedAt    string `json:"started_at,omitempty"`
	FinishedAt   string `json:"finished_at,omitempty"`
}

// requestRow is a scan_requests row with the service's columns.
type requestRow struct {
	Scan
	environment string
}

const requestCols = `SELECT id, tenant_id, requester_id, scope_id, scope_sha256, request, request_sha256, state, created_at, updated_at,
	approval_id, scope_key_id, reason, approvers FROM scan_requests`

func scanRequest(r interface{ Scan(...any) error }) (Scan, error) {
	var sc Scan
	var req []byte
	var approvers string
	if err := r.Scan(&sc.ID, &sc.Tenant, &sc.RequesterID, &sc.ScopeID, &sc.ScopeSHA256, &req, &sc.RequestSHA256, &sc.State,
		&sc.CreatedAt, &sc.UpdatedAt, &sc.ApprovalID, &sc.ScopeKeyID, &sc.Reason, &approvers); err != nil {
		return Scan{}, err
	}
	sc.Request = req
	if err := json.Unmarshal([]byte(approvers), &sc.Approvers); err != nil {
		return Scan{}, fmt.Errorf("scan %s approvers: %w", sc.ID, err)
	}
	return sc, nil
}

// load reads scan id of tenant pin with its job; a missing one is refused
// through RefuseNotFound (audited, so probing for other tenants' ids shows).
func (s *Scans) load(ctx context.Context, p auth.Principal, pin string, op auth.Operation, id string) (Scan, error) {
	sc, err := scanRequest(s.st.DB().QueryRowContext(ctx, requestCols+` WHERE tenant_id = ? AND id = ?`, pin, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Scan{}, fmt.Errorf("scan %q: %w", id, s.auth.RefuseNotFound(ctx, p, pin, op, "scan:"+id, fmt.Errorf("%w: %w", ErrScanNotFound, store.ErrNotFound)))
	}
	if err != nil {
		return Scan{}, fmt.Errorf("scan %q: %w", id, err)
	}
	if err := s.withJob(ctx, &sc); err != nil {
		return Scan{}, err
	}
	return sc, nil
}

// withJob fills sc.Job from scan_jobs.
func (s *Scans) withJob(ctx context.Context, sc *Scan) error {
	var j JobInfo
	var no int64
	err := s.st.DB().QueryRowContext(ctx, `SELECT no, id, job_sha256, vantage, state, reason, next_batch, issued_at, started_at, finished_at FROM scan_jobs WHERE scan_id = ?`, sc.ID).
		Scan(&no, &j.ID, &j.SHA256, &j.Vantage, &j.State, &j.Reason, &j.NextBatch, &j.IssuedAt, &j.StartedAt, &j.FinishedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("scan %s job: %w", sc.ID, err)
	}
	if err := s.st.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM scan_results WHERE job_no = ?`, no).Scan(&j.Results); err != nil {
		return fmt.Errorf("scan %s results: %w", sc.ID, err)
	}
	j.VantageLabel = s.vantageLabel(ctx, sc.Tenant, j.Vantage)
	sc.Job = &j
	return nil
}

func (s *Scans) entry(p auth.Principal, tenant string, action audit.Action, scanID string, details map[string]any) audit.Entry {
	d, _ := json.Marshal(details)
	return audit.Entry{Tenant: tenant, ActorID: p.UserID, ActorName: p.Name, ActorIP: p.Client.IP, UserAgent: p.Client.UserAgent,
		Action: action, Object: "scan:" + scanID, Details: d}
}

// system is the actor of the orchestrator's own entries (dispatch,
// runner events, recovery).
var system = auth.Principal{UserID: "system", Name: "orchestrator"}

// refuse audits a refusal that no transaction recorded (a tamper alarm, a
// revoked scope or key) as access.denied with the operation and reason,
// and returns err.
func (s *Scans) refuse(ctx context.Context, p auth.Principal, pin string, op auth.Operation, object string, err error) error {
	d, _ := json.Marshal(map[string]string{"operation": string(op), "reason": err.Error()})
	aerr := s.st.InTx(ctx, func(tx *sql.Tx) error {
		_, err := s.rec.Record(ctx, tx, audit.Entry{Tenant: pin, ActorID: p.UserID, ActorName: p.Name, ActorIP: p.Client.IP, UserAgent: p.Client.UserAgent,
			Action: audit.ActAccessDenied, Object: object, Details: d})
		return err
	})
	return errors.Join(err, aerr)
}

// RequestStepUp is the canonical request the requester's step-up binds to
// when a non-production scan runs on the step-up given at Request: the
// tenant and the SHA-256 of the canonical request without its (random) id,
// so the same request, repeated after answering the challenge, matches.
func RequestStepUp(tenant string, r job.Request) ([]byte, error) {
	r.ID = ""
	c, err := r.Canonical()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(c)
	return auth.OpRequest(auth.OpScanStart, tenant, map[string]string{"request_sha256": hex.EncodeToString(sum[:]), "scope_sha256": r.ScopeSHA256}), nil
}

// StartStepUp is the canonical request the requester's step-up binds to
// when starting an approved scan (Start).
func StartStepUp(tenant, scanID, requestSHA256 string) []byte {
	return auth.OpRequest(auth.OpScanStart, tenant, map[string]string{"scan": scanID, "request_sha256": requestSHA256})
}

// usableScope checks that tenant's scope row may run a scan now: not
// revoked, signed by a trusted key, valid; it returns the verified scope
// and the signer's key id.
func (s *Scans) usableScope(ctx context.Context, pin string, row store.Scope) (*scope.Scope, string, error) {
	if at, err := revokedAt(ctx, s.st.DB(), pin, row.ID); err != nil {
		return nil, "", err
	} else if at != "" {
		return nil, "", fmt.Errorf("%w: scope %s revoked at %s", ErrScopeRevoked, row.ID, at)
	}
	_, sig, err := scope.Open(row.Document)
	if err != nil {
		return nil, "", err
	}
	pub, err := trustedKey(ctx, s.st, pin, sig.KeyID)
	if err != nil {
		return nil, sig.KeyID, err
	}
	sc, err := scope.Verify(row.Document, pub, s.now(), s.profile)
	if err != nil {
		return nil, sig.KeyID, err
	}
	return sc, sig.KeyID, nil
}

// Request checks r against its scope and the safety profile and records
// it, audited as scan.request. Every target is checked before anything is
// stored; a refusal wraps ErrBadRequest with the exact reason. A raised
// tamper alarm refuses (audit.ErrTamperAlarm).
//
// A production scope's request opens a dual approval (auth
// KindProductionScan, bound to the canonical request) and waits in
// "pending"; Approve, then the requester's Start, run it. A non-production
// request runs on the requester's step-up given here (code, or a grant for
// RequestStepUp): it is queued at once, audited as scan.start too. Without
// a code or grant it is refused with an *auth.StepUpChallenge and nothing
// is stored; repeating the same call after StepUpFor succeeds.
func (s *Scans) Request(ctx context.Context, p auth.Principal, tenant string, r ScanRequest, code string) (Scan, error) {
	pin, err := s.auth.Authorize(ctx, p, auth.OpScanRequest, tenant)
	if err != nil {
		return Scan{}, fmt.Errorf("request scan: %w", err)
	}
	if err := audit.CheckNoAlarm(ctx, s.st.DB()); err != nil {
		return Scan{}, fmt.Errorf("request scan: %w", s.refuse(ctx, p, pin, auth.OpScanRequest, "scope:"+r.ScopeID, err))
	}
	ts, err := s.st.Tenant(pin)
	if err != nil {
		return Scan{}, err
	}
	row, err := ts.Scope(ctx, r.ScopeID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return Scan{}, fmt.Errorf("request scan: %w", s.auth.RefuseNotFound(ctx, p, pin, auth.OpScanRequest, "scope:"+r.ScopeID, fmt.Errorf("%w: %w", ErrNotFound, err)))
		}
		return Scan{}, err
	}
	sc, keyID, err := s.usableScope(ctx, pin, row)
	if err != nil {
		return Scan{}, fmt.Errorf("request scan: %w", s.refuse(ctx, p, pin, auth.OpScanRequest, "scope:"+r.ScopeID, err))
	}
	id := store.NewID("scan")
	jr, err := s.build(ctx, p, sc, r, id)
	if err != nil {
		return Scan{}, fmt.Errorf("request scan: %w", err)
	}
	if err := s.checkVantage(ctx, pin, jr.Vantage); err != nil {
		return Scan{}, fmt.Errorf("request scan: %w", err)
	}
	canonical, err := jr.Canonical()
	if err != nil {
		return Scan{}, err
	}
	sum, _ := jr.SHA256()
	prod := sc.Doc.Environment == scope.EnvProduction
	var approvalID string
	if prod {
		ap, err := s.auth.RequestApproval(ctx, p, auth.KindProductionScan, canonical)
		if err != nil {
			return Scan{}, fmt.Errorf("request scan: %w", err)
		}
		approvalID = ap.ID
	}
	stepReq, err := RequestStepUp(pin, jr)
	if err != nil {
		return Scan{}, err
	}
	state := StateQueued
	if prod {
		state = StatePending
	}
	now := s.now()
	var stepErr error
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		if !prod {
			if err := s.auth.UseStepUp(ctx, tx, p, auth.OpScanStart, stepReq, code); err != nil {
				stepErr = err
				return err
			}
		}
		if err := InsertRequest(ctx, tx, RequestRow{ID: id, TenantID: pin, RequesterID: p.UserID, ScopeID: row.ID, ScopeSHA256: sc.SHA256(),
			Request: canonical, RequestSHA256: sum, State: state, CreatedAt: now}); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE scan_requests SET approval_id = ?, scope_key_id = ? WHERE id = ?`, approvalID, keyID, id); err != nil {
			return err
		}
		if err := s.auth.RecordActivity(ctx, tx, p, auth.ActivityScanRequest); err != nil {
			return err
		}
		det := map[string]any{"scope": row.ID, "scope_sha256": sc.SHA256(), "environment": sc.Doc.Environment, "request_sha256": sum,
			"targets": jr.Targets, "ports": jr.Ports, "probes": jr.Probes, "rate": jr.Rate, "vantage": jr.Vantage, "policy_sha256": jr.PolicySHA256}
		if prod {
			det["approval"] = approvalID
		}
		if _, err := s.rec.Record(ctx, tx, s.entry(p, pin, audit.ActScanRequest, id, det)); err != nil {
			return err
		}
		if !prod {
			_, err := s.rec.Record(ctx, tx, s.entry(p, pin, audit.ActScanStart, id, map[string]any{"state": StateQueued, "request_sha256": sum}))
			return err
		}
		return nil
	})
	if stepErr != nil {
		return Scan{}, fmt.Errorf("request scan: %w", s.auth.StepUpRefused(ctx, p, pin, auth.OpScanStart, stepErr))
	}
	if err != nil {
		return Scan{}, fmt.Errorf("request scan: %w", err)
	}
	if !prod {
		s.disp.Submit(pin, id)
	}
	return s.load(ctx, p, pin, auth.OpScanRead, id)
}

// build turns r into the canonical job request, checking every part
// against the verified scope and the profile.
func (s *Scans) build(ctx context.Context, p auth.Principal, sc *scope.Scope, r ScanRequest, id string) (job.Request, error) {
	bad := func(format string, a ...any) (job.Request, error) {
		return job.Request{}, fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, a...))
	}
	if len(r.Targets) > job.MaxTargets {
		return bad("at most %d targets, got %d", job.MaxTargets, len(r.Targets))
	}
	var targets []scope.Target
	if len(r.Targets) == 0 {
		if _, err := sc.ExpandAll(s.profile); err != nil {
			return bad("the whole scope does not fit one scan (%v): name targets", err)
		}
		for _, pfx := range wholeScope(sc) {
			targets = append(targets, scope.Target{Input: pfx.String(), Prefix: pfx})
		}
		if len(targets) > job.MaxTargets {
			return bad("the whole scope is %d CIDRs after its excludes, a job takes %d: name targets", len(targets), job.MaxTargets)
		}
	} else {
		for _, t := range r.Targets {
			rt, err := sc.Resolve(ctx, strings.TrimSpace(t), s.resolve)
			if err != nil {
				return job.Request{}, fmt.Errorf("%w: target %q: %w", ErrBadRequest, t, err)
			}
			targets = append(targets, rt)
		}
		if _, err := sc.Expand(targets, s.profile); err != nil {
			return job.Request{}, fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
	}
	list := job.TargetsOf(targets)
	if len(list) > job.MaxTargets {
		return bad("the targets make %d entries, a job takes %d", len(list), job.MaxTargets)
	}
	var kinds []safety.Kind
	if len(r.Probes) == 0 {
		for _, k := range sc.Doc.Probes {
			if s.profile.Allows(k) {
				kinds = append(kinds, k)
			}
		}
	} else {
		for _, name := range r.Probes {
			k, err := safety.ParseKind(name)
			if err != nil {
				return job.Request{}, fmt.Errorf("%w: %w", ErrBadRequest, err)
			}
			switch {
			case !sc.Allows(k):
				return bad("probe kind %s is not in scope %s (%v)", k, sc.Doc.ID, sc.Doc.Probes)
			case !s.profile.Allows(k):
				return bad("probe kind %s is not allowed by the safety profile %s", k, s.profile.ID)
			case slices.Contains(kinds, k):
				return bad("probe kind %s named twice", k)
			}
			kinds = append(kinds, k)
		}
	}
	if len(kinds) == 0 {
		return bad("no probe kind of scope %s is allowed by the profile", sc.Doc.ID)
	}
	needPorts := slices.ContainsFunc(kinds, func(k safety.Kind) bool { return k != safety.KindICMPEcho })
	ports := ""
	switch {
	case !needPorts && r.Ports != "":
		return bad("ports %q given but only icmp-echo is requested", r.Ports)
	case needPorts && r.Ports == "":
		ports = scope.FormatPorts(sc.Ports())
	case needPorts:
		ps, err := scope.ParsePorts(r.Ports)
		if err != nil {
			return job.Request{}, fmt.Errorf("%w: ports: %w", ErrBadRequest, err)
		}
		allowed := sc.Ports()
		for _, pt := range ps {
			if !slices.Contains(allowed, pt) {
				return bad("port %s is not in scope %s (%s)", pt, sc.Doc.ID, sc.Doc.Ports)
			}
		}
		ports = scope.FormatPorts(ps)
	}
	limit := min(sc.Doc.MaxPPS, s.profile.GlobalPPS)
	rate := r.Rate
	switch {
	case rate == 0:
		rate = limit
	case rate < 0:
		return bad("rate %d is negative", rate)
	case rate > limit:
		return bad("requested rate above cap: %d pps, the cap is %d (scope %d, profile %d); refused, not lowered", rate, limit, sc.Doc.MaxPPS, s.profile.GlobalPPS)
	}
	vantage := r.Vantage
	if vantage == "" {
		vantage = job.VantageLocal
	}
	jr := job.Request{ID: id, Tenant: sc.Doc.Tenant, Requester: p.UserID, ScopeSHA256: sc.SHA256(), Targets: list, Ports: ports,
		Probes: kinds, Rate: rate, Vantage: vantage, PolicySHA256: r.PolicySHA256}
	if err := jr.Validate(); err != nil {
		return job.Request{}, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return jr, nil
}

// checkVantage refuses a request whose vantage is neither the appliance
// nor, when a fleet is configured, an active sensor of tenant pin.
// Without a fleet a sensor vantage is accepted and the local runner
// refuses the job (audited as scan.refuse, code vantage-mismatch).
func (s *Scans) checkVantage(ctx context.Context, pin, vantage string) error {
	if vantage == job.VantageLocal || s.fleet == nil {
		return nil
	}
	_, active, err := s.fleet.Vantage(ctx, pin, vantage)
	if err != nil {
		return fmt.Errorf("%w: vantage %q is not a sensor of the tenant: %w", ErrBadRequest, vantage, err)
	}
	if !active {
		return fmt.Errorf("%w: vantage %q is a revoked sensor", ErrBadRequest, vantage)
	}
	return nil
}

// vantageLabel is the label of a job's vantage: "local", the sensor's
// vantage label, or "" when the sensor is unknown.
func (s *Scans) vantageLabel(ctx context.Context, pin, vantage string) string {
	if vantage == job.VantageLocal || s.fleet == nil {
		return vantage
	}
	label, _, err := s.fleet.Vantage(ctx, pin, vantage)
	if err != nil {
		return ""
	}
	return label
}

// wholeScope returns the scope's CIDRs minus its excludes as prefixes.
func wholeScope(sc *scope.Scope) []netip.Prefix {
	var ex []netip.Prefix
	for _, e := range sc.Doc.Exclude {
		if p, err := netip.ParsePrefix(e); err == nil {
			ex = append(ex, p.Masked())
		} else if a, err := netip.ParseAddr(e); err == nil {
			ex = append(ex, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	var out []netip.Prefix
	for _, c := range sc.Doc.CIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			a, err := netip.ParseAddr(c)
			if err != nil {
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = subtract(p.Masked(), ex, out, job.MaxTargets+1)
	}
	return out
}

// subtract appends to out the parts of p outside every prefix of ex,
// splitting p in halves where it overlaps one; it stops growing out past
// limit (the caller refuses that many).
func subtract(p netip.Prefix, ex []netip.Prefix, out []netip.Prefix, limit int) []netip.Prefix {
	if len(out) > limit {
		return out
	}
	overlaps := false
	for _, e := range ex {
		if e.Bits() <= p.Bits() && e.Contains(p.Addr()) {
			return out // wholly excluded
		}
		if p.Overlaps(e) {
			overlaps = true
		}
	}
	if !overlaps || p.Bits() == p.Addr().BitLen() {
		return append(out, p)
	}
	lo := netip.PrefixFrom(p.Addr(), p.Bits()+1)
	hiAddr := p.Addr().AsSlice()
	bit := p.Bits()
	hiAddr[bit/8] |= 0x80 >> (bit % 8)
	ha, _ := netip.AddrFromSlice(hiAddr)
	hi := netip.PrefixFrom(ha, p.Bits()+1)
	out = subtract(lo, ex, out, limit)
	return subtract(hi, ex, out, limit)
}

// Approve records approver p's approval of production scan id (tenant ""
// for p's own) through the dual-approval service (auth.Approve: the
// approver is not the requester, is independent of them, and steps up:
// code, or a grant for auth.ApproveRequest(approval id, request hash)).
// The second approval makes the scan "approved"; audited as scan.approve.
func (s *Scans) Approve(ctx context.Context, p auth.Principal, tenant, id, code string) (Scan, error) {
	pin, err := s.auth.Authorize(ctx, p, auth.OpApprovalGrant, tenant)
	if err != nil {
		return Scan{}, fmt.Errorf("approve scan: %w", err)
	}
	sc, err := s.load(ctx, p, pin, auth.OpApprovalGrant, id)
	if err != nil {
		return Scan{}, err
	}
	if sc.State != StatePending || sc.ApprovalID == "" {
		return Scan{}, fmt.Errorf("approve scan %s: %w: it is %s", id, ErrState, sc.State)
	}
	ap, err := s.auth.Approve(ctx, p, sc.ApprovalID, code)
	if err != nil {
		return Scan{}, fmt.Errorf("approve scan %s: %w", id, err)
	}
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		if ap.Status == store.ApprovalApproved {
			if err := setState(ctx, tx, id, StatePending, StateApproved, "", s.now()); err != nil {
				return err
			}
		}
		_, err := s.rec.Record(ctx, tx, s.entry(p, pin, audit.ActScanApprove, id, map[string]any{"approval": sc.ApprovalID, "request_sha256": sc.RequestSHA256,
			"approvals": len(ap.Approvers), "status": ap.Status}))
		return err
	})
	if err != nil {
		return Scan{}, fmt.Errorf("approve scan %s: %w", id, err)
	}
	return s.load(ctx, p, pin, auth.OpScanRead, id)
}

// Deny closes production scan id as denied by approver p (auth.Deny; not
// the requester), audited as scan.deny with the reason. Like Approve it
// needs p's step-up (code, or a grant for auth.DenyRequest(approval id,
// request hash)); without one it returns an *auth.StepUpChallenge and
// changes nothing.
func (s *Scans) Deny(ctx context.Context, p auth.Principal, tenant, id, reason, code string) (Scan, error) {
	pin, err := s.auth.Authorize(ctx, p, auth.OpApprovalDeny, tenant)
	if err != nil {
		return Scan{}, fmt.Errorf("deny scan: %w", err)
	}
	sc, err := s.load(ctx, p, pin, auth.OpApprovalDeny, id)
	if err != nil {
		return Scan{}, err
	}
	if (sc.State != StatePending && sc.State != StateApproved) || sc.ApprovalID == "" {
		return Scan{}, fmt.Errorf("deny scan %s: %w: it is %s", id, ErrState, sc.State)
	}
	if err := s.auth.Deny(ctx, p, sc.ApprovalID, reason, code); err != nil {
		return Scan{}, fmt.Errorf("deny scan %s: %w", id, err)
	}
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		if err := setState(ctx, tx, id, sc.State, StateDenied, reason, s.now()); err != nil {
			return err
		}
		_, err := s.rec.Record(ctx, tx, s.entry(p, pin, audit.ActScanDeny, id, map[string]any{"approval": sc.ApprovalID, "reason": reason}))
		return err
	})
	if err != nil {
		return Scan{}, fmt.Errorf("deny scan %s: %w", id, err)
	}
	return s.load(ctx, p, pin, auth.OpScanRead, id)
}

// Start queues approved production scan id: the requester only, with a
// step-up (code, or a grant for StartStepUp(tenant id, id, request
// hash)). Right before, the approval is checked against the exact
// canonical request (two approvers who still count; any change voids it)
// and spent in the same transaction that queues the scan, audited as
// scan.start (and approval.use). A tamper alarm, a revoked scope or key
// refuse.
func (s *Scans) Start(ctx context.Context, p auth.Principal, tenant, id, code string) (Scan, error) {
	pin, err := s.auth.Authorize(ctx, p, auth.OpScanStart, tenant)
	if err != nil {
		return Scan{}, fmt.Errorf("start scan: %w", err)
	}
	sc, err := s.load(ctx, p, pin, auth.OpScanStart, id)
	if err != nil {
		return Scan{}, err
	}
	if sc.RequesterID != p.UserID {
		return Scan{}, fmt.Errorf("start scan %s: %w", id, s.refuse(ctx, p, pin, auth.OpScanStart, "scan:"+id, fmt.Errorf("%w: only the requester starts a scan", auth.ErrForbidden)))
	}
	// A scan whose two approvals were granted through the generic
	// approvals route (auth.Approve, not Scans.Approve) is still pending
	// here although its approval is complete; VerifiedApprovalFor below
	// decides, so such a scan starts like one approved through Scans.
	if sc.State != StateApproved && !(sc.State == StatePending && sc.ApprovalID != "") {
		return Scan{}, fmt.Errorf("start scan %s: %w: it is %s (a production scan starts once approved)", id, ErrState, sc.State)
	}
	if sc.State == StatePending {
		if _, err := s.auth.VerifiedApprovalFor(ctx, pin, p.UserID, sc.ApprovalID, sc.Request); err != nil {
			return Scan{}, fmt.Errorf("start scan %s: %w: it is pending (%w)", id, ErrState, err)
		}
	}
	if err := audit.CheckNoAlarm(ctx, s.st.DB()); err != nil {
		return Scan{}, fmt.Errorf("start scan: %w", s.refuse(ctx, p, pin, auth.OpScanStart, "scan:"+id, err))
	}
	ts, err := s.st.Tenant(pin)
	if err != nil {
		return Scan{}, err
	}
	row, err := ts.Scope(ctx, sc.ScopeID)
	if err != nil {
		return Scan{}, err
	}
	if _, _, err := s.usableScope(ctx, pin, row); err != nil {
		return Scan{}, fmt.Errorf("start scan %s: %w", id, s.refuse(ctx, p, pin, auth.OpScanStart, "scan:"+id, err))
	}
	ap, err := s.auth.VerifiedApprovalFor(ctx, pin, p.UserID, sc.ApprovalID, sc.Request)
	if err != nil {
		return Scan{}, fmt.Errorf("start scan %s: %w", id, err)
	}
	approvers := make([]string, 0, len(ap.Approvers))
	for _, a := range ap.Approvers {
		approvers = append(approvers, a.UserID)
	}
	aj, _ := json.Marshal(approvers)
	var stepErr error
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.auth.UseStepUp(ctx, tx, p, auth.OpScanStart, StartStepUp(pin, id, sc.RequestSHA256), code); err != nil {
			stepErr = err
			return err
		}
		if err := s.auth.SpendApproval(ctx, tx, pin, sc.ApprovalID); err != nil {
			return err
		}
		if err := setState(ctx, tx, id, sc.State, StateQueued, "", s.now()); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE scan_requests SET approvers = ? WHERE id = ?`, string(aj), id); err != nil {
			return err
		}
		_, err := s.rec.Record(ctx, tx, s.entry(p, pin, audit.ActScanStart, id, map[string]any{"state": StateQueued, "request_sha256": sc.RequestSHA256,
			"approval": sc.ApprovalID, "approvers": approvers}))
		return err
	})
	if stepErr != nil {
		return Scan{}, fmt.Errorf("start scan %s: %w", id, s.auth.StepUpRefused(ctx, p, pin, auth.OpScanStart, stepErr))
	}
	if err != nil {
		return Scan{}, fmt.Errorf("start scan %s: %w", id, err)
	}
	s.disp.Submit(pin, id)
	return s.load(ctx, p, pin, auth.OpScanRead, id)
}

// Cancel cancels scan id: a pending or approved one (its approval is
// voided), a queued one (taken off the queue), or a running one (the
// runner stops within about 100 ms; results stored so far stay). Audited
// as scan.cancel with the reason; the end of a running scan's job is
// audited as scan.stop when the run stops (or here, when no run holds
// the job). A finished scan is ErrState.
func (s *Scans) Cancel(ctx context.Context, p auth.Principal, tenant, id, reason string) (Scan, error) {
	pin, err := s.auth.Authorize(ctx, p, auth.OpScanCancel, tenant)
	if err != nil {
		return Scan{}, fmt.Errorf("cancel scan: %w", err)
	}
	sc, err := s.load(ctx, p, pin, auth.OpScanCancel, id)
	if err != nil {
		return Scan{}, err
	}
	switch sc.State {
	case StatePending, StateApproved, StateQueued, StateRunning:
	default:
		return Scan{}, fmt.Errorf("cancel scan %s: %w: it is %s", id, ErrState, sc.State)
	}
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		if err := setState(ctx, tx, id, sc.State, StateCancelled, reason, s.now()); err != nil {
			return err
		}
		_, err := s.rec.Record(ctx, tx, s.entry(p, pin, audit.ActScanCancel, id, map[string]any{"reason": reason, "was": sc.State}))
		return err
	})
	if err != nil {
		return Scan{}, fmt.Errorf("cancel scan %s: %w", id, err)
	}
	s.disp.Queue().Remove(pin, func(x string) bool { return x == id })
	s.mu.Lock()
	a := s.active[id]
	if a != nil {
		a.cancelled = true
		a.cancel()
	}
	s.mu.Unlock()
	if a == nil && sc.State == StateRunning {
		// No run of this process is consuming its job (the appliance is
		// stopping, or the job waits in the queue to resume): the job
		// ends here, audited as scan.stop. A run that starts meanwhile
		// finds the request cancelled and ends before any packet.
		if err := s.stopUnfinished(ctx, pin, id, "cancelled by a user"); err != nil {
			return Scan{}, fmt.Errorf("cancel scan %s: %w", id, err)
		}
	}
	if a == nil {
		s.endWatch(id, &Progress{ScanID: id, State: StateCancelled, Time: s.now()})
	}
	if sc.State == StatePending || sc.State == StateApproved {
		s.voidApprovals(ctx, p, []string{sc.ApprovalID})
	}
	return s.load(ctx, p, pin, auth.OpScanRead, id)
}

// Get returns scan id of tenant ("" for p's own).
func (s *Scans) Get(ctx context.Context, p auth.Principal, tenant, id string) (Scan, error) {
	pin, err := s.auth.Authorize(ctx, p, auth.OpScanRead, tenant)
	if err != nil {
		return Scan{}, fmt.Errorf("scan: %w", err)
	}
	return s.load(ctx, p, pin, auth.OpScanRead, id)
}

// ListFilter selects scans; zero values match all.
type ListFilter struct {
	State string // one of the State* values
	Limit int    // 1-500; 0 for 50
	// Before is the Next of the previous page ("" for the newest).
	Before string
}

// ScanPage is a page of scans, newest first; Next is "" on the last.
type ScanPage struct {
	Items []Scan `json:"items"`
	Next  string `json:"next"`
}

// List returns tenant's ("" for p's own) scans, newest first, keyset-paged
// on (created_at, id).
func (s *Scans) List(ctx context.Context, p auth.Principal, tenant string, f ListFilter) (ScanPage, error) {
	pin, err := s.auth.Authorize(ctx, p, auth.OpScanRead, tenant)
	if err != nil {
		return ScanPage{}, fmt.Errorf("list scans: %w", err)
	}
	switch {
	case f.Limit == 0:
		f.Limit = 50
	case f.Limit < 0 || f.Limit > 500:
		return ScanPage{}, fmt.Errorf("list scans: %w: limit %d outside 1-500", ErrBadFilter, f.Limit)
	}
	q := requestCols + ` WHERE tenant_id = ?`
	args := []any{pin}
	if f.State != "" {
		if !slices.Contains([]string{StatePending, StateApproved, StateDenied, StateQueued, StateRunning, StateCompleted, StateFailed, StateCancelled}, f.State) {
			return ScanPage{}, fmt.Errorf("list scans: %w: state %q", ErrBadFilter, f.State)
		}
		q += ` AND state = ?`
		args = append(args, f.State)
	}
	if f.Before != "" {
		at, id, ok := strings.Cut(f.Before, "|")
		if !ok {
			return ScanPage{}, fmt.Errorf("list scans: %w", ErrBadCursor)
		}
		q += ` AND (created_at, id) < (?, ?)`
		args = append(args, at, id)
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	args = append(args, f.Limit+1)
	rows, err := s.st.DB().QueryContext(ctx, q, args...)
	if err != nil {
		return ScanPage{}, fmt.Errorf("list scans: %w", err)
	}
	page := ScanPage{Items: []Scan{}}
	for rows.Next() {
		sc, err := scanRequest(rows)
		if err != nil {
			rows.Close()
			return ScanPage{}, fmt.Errorf("list scans: %w", err)
		}
		page.Items = append(page.Items, sc)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return ScanPage{}, fmt.Errorf("list scans: %w", err)
	}
	if len(page.Items) > f.Limit {
		page.Items = page.Items[:f.Limit]
		last := page.Items[f.Limit-1]
		page.Next = last.CreatedAt + "|" + last.ID
	}
	for i := range page.Items {
		if err := s.withJob(ctx, &page.Items[i]); err != nil {
			return ScanPage{}, err
		}
	}
	return page, nil
}

// Results returns one page of scan id's stored results (QueryResults:
// filters by state, port, host and probe; keyset pages).
func (s *Scans) Results(ctx context.Context, p auth.Principal, tenant, id string, f ResultFilter) (ResultPage, error) {
	pin, err := s.auth.Authorize(ctx, p, auth.OpScanRead, tenant)
	if err != nil {
		return ResultPage{}, fmt.Errorf("scan results: %w", err)
	}
	// Only the job's id is needed: load would also count the job's
	// results (a COUNT over up to 10^6 rows) on every page.
	var jobID sql.NullString
	err = s.st.DB().QueryRowContext(ctx, `SELECT j.id FROM scan_requests r LEFT JOIN scan_jobs j ON j.scan_id = r.id WHERE r.tenant_id = ? AND r.id = ?`, pin, id).Scan(&jobID)
	if errors.Is(err, sql.ErrNoRows) {
		return ResultPage{}, fmt.Errorf("scan %q: %w", id, s.auth.RefuseNotFound(ctx, p, pin, auth.OpScanRead, "scan:"+id, fmt.Errorf("%w: %w", ErrScanNotFound, store.ErrNotFound)))
	}
	if err != nil {
		return ResultPage{}, fmt.Errorf("scan %q: %w", id, err)
	}
	if !jobID.Valid {
		return ResultPage{Items: []Result{}}, nil
	}
	return QueryResults(ctx, s.st.DB(), pin, jobID.String, f)
}

// setState moves request id from state from to to, with reason.
func setState(ctx context.Context, tx *sql.Tx, id, from, to, reason string, at time.Time) error {
	res, err := tx.ExecContext(ctx, `UPDATE scan_requests SET state = ?, reason = ?, updated_at = ? WHERE id = ? AND state = ?`,
		to, reason, at.UTC().Format(time.RFC3339Nano), id, from)
	if err != nil {
		return fmt.Errorf("scan %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("scan %s: %w: no longer %s", id, ErrState, from)
	}
	return nil
}

// pendingApprovals lists the approval ids of tenant's requests matching
// where (with arg) that still wait for approval or start.
func pendingApprovals(ctx context.Context, tx *sql.Tx, tenant, where string, arg any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT approval_id FROM scan_requests WHERE tenant_id = ? AND `+where+` AND state IN ('pending','approved') AND approval_id != ''
		UNION ALL SELECT approval_id FROM scan_schedules WHERE tenant_id = ? AND `+where+` AND state = 'pending'`, tenant, arg, tenant, arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// stopWhere cancels tenant's requests matching where that are not yet
// running (pending, approved, queued), inside tx, and returns their ids.
// where is a fixed fragment chosen by the caller, never input.
func (s *Scans) stopWhere(ctx context.Context, tx *sql.Tx, tenant, where string, arg any, reason string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id FROM scan_requests WHERE tenant_id = ? AND `+where+` AND state IN ('pending','approved','queued')`, tenant, arg)
	if err != nil {
		return nil, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	at := s.now().UTC().Format(time.RFC3339Nano)
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, `UPDATE scan_requests SET state = 'cancelled', reason = ?, updated_at = ? WHERE id = ?`, reason, at, id); err != nil {
			return nil, err
		}
		s.disp.Queue().Remove(tenant, func(x string) bool { return x == id })
	}
	// Schedules of the same scope or key stop too.
	srows, err := tx.QueryContext(ctx, `SELECT id FROM scan_schedules WHERE tenant_id = ? AND `+where+` AND state IN ('pending','approved')`, tenant, arg)
	if err != nil {
		return nil, err
	}
	var sched []string
	for srows.Next() {
		var id string
		if err := srows.Scan(&id); err != nil {
			srows.Close()
			return nil, err
		}
		sched = append(sched, id)
	}
	srows.Close()
	for _, id := range sched {
		if _, err := tx.ExecContext(ctx, `UPDATE scan_schedules SET state = 'void', reason = ? WHERE id = ?`, reason, id); err != nil {
			return nil, err
		}
		ids = append(ids, "schedule:"+id)
	}
	if ids == nil {
		ids = []string{}
	}
	return ids, nil
}

// voidApprovals voids approval requests after what they approved was
// cancelled or lost its scope or key (each void audited as approval.void
// by auth). Failures go to OnError: the requests are already cancelled, so
// a surviving approval has nothing left to start.
func (s *Scans) voidApprovals(ctx context.Context, p auth.Principal, ids []string) {
	for _, id := range ids {
		if id == "" {
			continue
		}
		if err := s.auth.VoidApproval(ctx, p, id, "scan request stopped"); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.onErr(fmt.Errorf("void approval %s: %w", id, err))
		}
	}
}

// decodeRequest reads a stored canonical request back and checks that it
// re-encodes to the same bytes.
func decodeRequest(b []byte) (job.Request, error) {
	var m struct {
		ID           string   `json:"id"`
		Tenant       string   `json:"tenant"`
		Requester    string   `json:"requester"`
		ScopeSHA256  string   `json:"scope_sha256"`
		Targets      []string `json:"targets"`
		Ports        string   `json:"ports"`
		Probes       []string `json:"probes"`
		Rate         int      `json:"rate"`
		Vantage      string   `json:"vantage"`
		PolicySHA256 string   `json:"policy_sha256"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return job.Request{}, fmt.Errorf("stored request: %w", err)
	}
	r := job.Request{ID: m.ID, Tenant: m.Tenant, Requester: m.Requester, ScopeSHA256: m.ScopeSHA256, Targets: m.Targets, Ports: m.Ports,
		Rate: m.Rate, Vantage: m.Vantage, PolicySHA256: m.PolicySHA256}
	for _, k := range m.Probes {
		r.Probes = append(r.Probes, safety.Kind(k))
	}
	c, err := r.Canonical()
	if err != nil {
		return job.Request{}, err
	}
	if !bytes.Equal(c, b) {
		return job.Request{}, errors.New("stored request is not in canonical form")
	}
	return r, nil
}
