package report

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/policy"
	"firewalliq/appliance/report/verify"
	"firewalliq/appliance/scan"
	"firewalliq/appliance/store"
	"firewalliq/audit"
	"firewalliq/probe"
	"firewalliq/probe/job"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
	"firewalliq/vault"
)

// ErrNotFound means no report has that id in the caller's tenant (or its
// working copy is gone; the WORM copy stays in the evidence vault).
var ErrNotFound = errors.New("report not found")

// ScanDeps are what Reports needs to build a report from a scan of the
// scan service.
type ScanDeps struct {
	// Service signs and spools the report (NewService).
	Service  *Service
	Scans    *scan.Scans
	Scopes   *scan.Scopes
	Policies *policy.Service
	// DB is read only: the scan's signed job, its evidence records and
	// their audit entries, user names for the operators, the audit log.
	DB *sql.DB
	// Checkpoint signs an audit checkpoint of the head (when the newest
	// does not cover it), so every evidence proof leads to one.
	Checkpoint func(ctx context.Context) (audit.Checkpoint, bool, error)
	Profile    safety.Profile
	Appliance  verify.Appliance
	// AuditKeyID names the audit key a reader verifies the checkpoint with.
	AuditKeyID string
	// Dir holds a working copy of each signed report
	// (<Dir>/<tenant>/<id>.json) for download; the copy of record is the
	// evidence object. Download checks the copy against the SHA-256 in the
	// report.sign audit entry.
	Dir string
	Now func() time.Time
}

// Reports creates compliance reports from completed scans and lists, shows
// and downloads them, for principals. Creation authorises report.create
// (Service.Create), reading report.read.
type Reports struct {
	d      ScanDeps
	render *Renderer
}

// NewReports checks deps and returns the service.
func NewReports(d ScanDeps) (*Reports, error) {
	if d.Service == nil || d.Scans == nil || d.Scopes == nil || d.Policies == nil || d.DB == nil || d.Checkpoint == nil || d.Dir == "" {
		return nil, errors.New("report: Service, Scans, Scopes, Policies, DB, Checkpoint and Dir are required")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	rd, err := NewRenderer()
	if err != nil {
		return nil, err
	}
	return &Reports{d: d, render: rd}, nil
}

// CreateRequest names the scan and the policy to judge it against; or,
// in Parts, several scans (typically from several vantage points), each
// with its own policy, for one combined report.
type CreateRequest struct {
	ScanID        string `json:"scan_id"`
	Policy        string `json:"policy"`
	PolicyVersion int    `json:"policy_version"` // 0: the newest
	// Parts, when given (ScanID and Policy then empty), makes a combined
	// report (format firewalliq.report.combined/v1) of these scans.
	Parts []Part `json:"parts,omitempty"`
}

// Part is one scan of a combined report and the policy it is judged
// against.
type Part struct {
	ScanID        string `json:"scan_id"`
	Policy        string `json:"policy"`
	PolicyVersion int    `json:"policy_version"`
}

// Input assembles report.Build's input from completed scan req.ScanID of
// tenant ("" for p's own): its scope, signed job (profile, approvals),
// operators, window, measured rate against the cap, results and evidence
// objects with the audit entries that recorded them (proved against a
// fresh checkpoint), and evaluates the results against the policy named in
// req (policy.evaluate, audited; findings go to the SIEM). It reads as p:
// p needs scan.read, scope.read and policy.evaluate. ID and Tenant are left
// for Create.
func (r *Reports) Input(ctx context.Context, p auth.Principal, tenant string, req CreateRequest) (Input, error) {
	if req.Policy == "" || req.ScanID == "" {
		return Input{}, fmt.Errorf("report input: %w: scan_id and policy are required", ErrIncomplete)
	}
	sc, err := r.d.Scans.Get(ctx, p, tenant, req.ScanID)
	if err != nil {
		return Input{}, fmt.Errorf("report input: %w", err)
	}
	if sc.State != scan.StateCompleted || sc.Job == nil {
		return Input{}, fmt.Errorf("report input: %w: scan %s is %s, not completed", scan.ErrState, sc.ID, sc.State)
	}
	in := Input{CreatedAt: r.d.Now().UTC(), Appliance: r.d.Appliance, AuditKeyID: r.d.AuditKeyID,
		Scan: verify.Scan{ID: sc.ID, Vantage: sc.Job.Vantage, VantageLabel: sc.Job.VantageLabel}}
	if in.Scan.Vantage == "" {
		in.Scan.Vantage = job.VantageLocal
	}
	if in.Scan.VantageLabel == "" {
		in.Scan.VantageLabel = in.Scan.Vantage
	}

	// The scope, as registered and signed.
	sco, err := r.d.Scopes.Get(ctx, p, sc.Tenant, sc.ScopeID)
	if err != nil {
		return Input{}, fmt.Errorf("report input: %w", err)
	}
	doc, _, err := scope.Open(sco.Document)
	if err != nil {
		return Input{}, fmt.Errorf("report input: scope %s: %w", sco.ID, err)
	}
	in.Scope = verify.Scope{ID: sco.ID, Name: sco.Name, Environment: sco.Environment, SHA256: sc.ScopeSHA256, SignerKeyID: sco.SignerKeyID,
		CIDRs: doc.CIDRs, Exclude: doc.Exclude, Ports: doc.Ports}

	// The signed job: profile, approvals, rate asked for.
	var signed []byte
	if err := r.d.DB.QueryRowContext(ctx, `SELECT signed FROM scan_jobs WHERE scan_id = ? AND tenant_id = ?`, sc.ID, sc.Tenant).Scan(&signed); err != nil {
		return Input{}, fmt.Errorf("report input: job of %s: %w", sc.ID, err)
	}
	j, sig, err := job.Open(signed)
	if err != nil {
		return Input{}, fmt.Errorf("report input: job of %s: %w", sc.ID, err)
	}
	in.Job = verify.Job{ID: j.ID, SHA256: sc.Job.SHA256, KeyID: sig.KeyID}
	in.Profile = verify.Profile{ID: j.Profile.ID, SHA256: j.Profile.SHA256, MaxPPS: r.d.Profile.GlobalPPS}
	people := map[string]verify.Operator{}
	person := func(id string) verify.Operator {
		if o, ok := people[id]; ok {
			return o
		}
		o := verify.Operator{ID: id, Name: id}
		_ = r.d.DB.QueryRowContext(ctx, `SELECT name, role FROM users WHERE id = ?`, id).Scan(&o.Name, &o.Role)
		people[id] = o
		return o
	}
	approvalID := sc.ApprovalID
	for _, a := range j.Approvals {
		o := person(a.Approver)
		ap := verify.Approval{Approver: o.Name, Role: o.Role}
		var at int64
		if err := r.d.DB.QueryRowContext(ctx, `SELECT granted_at FROM auth_approval_grants WHERE approval_id = ? AND approver_id = ?`, approvalID, a.Approver).Scan(&at); err == nil {
			ap.Time = stamp(grantTime(at))
		}
		in.Approvals = append(in.Approvals, ap)
	}
	in.Operators = append(in.Operators, person(j.Request.Requester))
	for _, a := range j.Approvals {
		in.Operators = append(in.Operators, person(a.Approver))
	}
	in.Operators = append(in.Operators, verify.Operator{ID: p.UserID, Name: p.Name, Role: p.Role})
	in.Operators = dedupe(in.Operators)

	// The completion entry: measured rate and the evidence keys.
	done, err := r.completion(ctx, sc)
	if err != nil {
		return Input{}, err
	}
	in.Rate = verify.Rate{RequestedPPS: j.Request.Rate, CapPPS: r.d.Profile.GlobalPPS, MeasuredMilliPPS: int(done.MeasuredPPS*1000 + 0.5),
		Worst100ms: done.Worst100ms, WindowLimit: (r.d.Profile.GlobalPPS + 9) / 10, PacketsSent: int(done.Packets)}
	if in.Rate.RequestedPPS == 0 {
		in.Rate.RequestedPPS = in.Rate.CapPPS
	}

	// Results.
	if in.Results, err = r.results(ctx, p, sc); err != nil {
		return Input{}, err
	}
	in.Window = window(sc.Job, in.Results)

	// Evidence objects and the audit entries that recorded their SHA-256.
	var items []Evidence
	seqs := map[string]int64{}
	for _, key := range done.Evidence {
		var e Evidence
		var seq int64
		err := r.d.DB.QueryRowContext(ctx, `SELECT seq, sha256, size FROM evidence_spool WHERE key = ? AND tenant = ? ORDER BY seq DESC LIMIT 1`, key, sc.Tenant).
			Scan(&seq, &e.SHA256, &e.Size)
		if err != nil {
			return Input{}, fmt.Errorf("report input: evidence %s: %w", key, err)
		}
		e.Name = key
		items = append(items, e)
		seqs[key] = seq
	}
	if len(items) == 0 {
		return Input{}, fmt.Errorf("report input: %w: scan %s has no recorded evidence (no vault when it ran?)", ErrIncomplete, sc.ID)
	}
	if _, _, err := r.d.Checkpoint(ctx); err != nil {
		return Input{}, fmt.Errorf("report input: checkpoint: %w", err)
	}
	if in.Evidence, in.Checkpoint, err = Prove(ctx, r.d.DB, items, seqs); err != nil {
		return Input{}, err
	}
	if in.Anchor, err = r.anchor(ctx, in.Checkpoint); err != nil {
		return Input{}, err
	}

	// The evaluation against the named policy (audited, findings to the
	// SIEM).
	out, err := r.d.Policies.Evaluate(ctx, p, sc.Tenant, policy.EvaluateRequest{PolicyName: req.Policy, PolicyVersion: req.PolicyVersion,
		ScopeID: sc.ScopeID, ScanID: sc.ID, Results: in.Results, Window: in.Window})
	if err != nil {
		return Input{}, fmt.Errorf("report input: %w", err)
	}
	in.Policy, in.Outcome = out.Policy, out
	return in, nil
}

// anchor returns the newest daily anchor the appliance recorded whose tree
// the report's checkpoint extends, with the consistency proof from the
// anchored checkpoint to cp; nil when there is none yet, or when a newer
// checkpoint was signed between the proofs (the report then says no anchor
// rather than carry a proof to another checkpoint).
func (r *Reports) anchor(ctx context.Context, cp audit.Checkpoint) (*Anchor, error) {
	var day, note string
	var size int64
	err := r.d.DB.QueryRowContext(ctx, `SELECT day, to_size, checkpoint FROM evidence_anchors WHERE to_size <= ? ORDER BY to_size DESC LIMIT 1`, cp.Size).
		Scan(&day, &size, &note)
	if errors.Is(err, sql.ErrNoRows) || size < 1 {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("report input: anchor: %w", err)
	}
	p, err := audit.ProveConsistency(ctx, r.d.DB, size)
	if err != nil {
		return nil, fmt.Errorf("report input: anchor %s: %w", day, err)
	}
	if p.Checkpoint != cp.Note {
		return nil, nil
	}
	// The anchored note signs the same tree (size and root) the proof
	// starts from; the verifier checks its signature and that it does.
	p.OldCheckpoint = note
	return &Anchor{Day: day, Checkpoint: note, Consistency: p}, nil
}

// grantTime reads auth_approval_grants.granted_at (Unix nanoseconds).
func grantTime(v int64) time.Time { return time.Unix(0, v).UTC() }

func dedupe(ops []verify.Operator) []verify.Operator {
	seen := map[string]bool{}
	out := ops[:0]
	for _, o := range ops {
		if o.ID == "" || seen[o.ID] {
			continue
		}
		seen[o.ID] = true
		out = append(out, o)
	}
	return out
}

// completed is what the scan.complete entry recorded.
type completed struct {
	Packets     uint64   `json:"packets"`
	MeasuredPPS float64  `json:"measured_pps"`
	Worst100ms  int      `json:"worst_100ms_window"`
	Evidence    []string `json:"evidence"`
	// Sent is the final run's packets over time (absent in completions
	// recorded before it was kept).
	Sent *probe.SendSeries `json:"sent"`
}

// near is how many entries after an evidence.spool entry the entry its
// submitter recorded in the same transaction (scan.complete, report.sign)
// is looked for: that transaction appends nothing else in between.
const near = 8

// following returns the first entry with action and object among the
// near entries after seq (an evidence.spool entry whose transaction also
// recorded it). The audit log has no index by action; the evidence_spool
// table locates the entry, and the entry itself (hash-chained) is what is
// read.
func following(ctx context.Context, db *sql.DB, seq int64, action audit.Action, object string) (audit.Entry, error) {
	es, err := audit.ReadEntries(ctx, db, seq+1, seq+near)
	if err != nil {
		return audit.Entry{}, err
	}
	for _, e := range es {
		if e.Action == action && e.Object == object {
			return e, nil
		}
	}
	return audit.Entry{}, fmt.Errorf("no %s entry for %s after audit entry %d", action, object, seq)
}

// completion reads scan sc's scan.complete audit entry: it follows the
// evidence.spool entry of the scan's manifest, in the same transaction.
func (r *Reports) completion(ctx context.Context, sc scan.Scan) (completed, error) {
	key, err := vault.ScanKey(sc.Tenant, sc.ID, "manifest.json")
	if err != nil {
		return completed{}, fmt.Errorf("report input: %w", err)
	}
	var seq int64
	err = r.d.DB.QueryRowContext(ctx, `SELECT seq FROM evidence_spool WHERE tenant = ? AND key = ? ORDER BY seq DESC LIMIT 1`, sc.Tenant, key).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return completed{}, fmt.Errorf("report input: %w: scan %s has no recorded evidence (no vault when it ran?)", ErrIncomplete, sc.ID)
	}
	if err != nil {
		return completed{}, fmt.Errorf("report input: manifest of %s: %w", sc.ID, err)
	}
	e, err := following(ctx, r.d.DB, seq, audit.ActScanComplete, "scan:"+sc.ID)
	if err != nil {
		return completed{}, fmt.Errorf("report input: completion of %s: %w", sc.ID, err)
	}
	var c completed
	if err := json.Unmarshal(e.Details, &c); err != nil {
		return completed{}, fmt.Errorf("report input: completion of %s: %w", sc.ID, err)
	}
	return c, nil
}

// results reads every stored result of sc, as the engine reported them.
func (r *Reports) results(ctx context.Context, p auth.Principal, sc scan.Scan) ([]probe.Result, error) {
	var out []probe.Result
	f := scan.ResultFilter{Limit: scan.MaxPageSize}
	for range 1 << 16 {
		page, err := r.d.Scans.Results(ctx, p, sc.Tenant, sc.ID, f)
		if err != nil {
			return nil, fmt.Errorf("report input: %w", err)
		}
		for _, s := range page.Items {
			pr, err := ProbeResult(s)
			if err != nil {
				return nil, fmt.Errorf("report input: result %d: %w", s.Seq, err)
			}
			out = append(out, pr)
		}
		if page.Next == "" {
			return out, nil
		}
		f.After = page.Next
	}
	return nil, errors.New("report input: too many result pages")
}

// ProbeResult converts a stored result back to the engine's form (the
// ICMP sender is not stored).
func ProbeResult(s scan.Result) (probe.Result, error) {
	r := probe.Result{Target: s.Target, Proto: s.Proto, Port: uint16(s.Port), Probe: probe.Kind(s.Probe), State: probe.State(s.State),
		Reason: s.Reason, TTL: s.TTL, Time: s.Time, RTTms: -1}
	if s.RTTus >= 0 {
		r.RTTms = float64(s.RTTus) / 1000
	}
	if s.ICMPType != nil && s.ICMPCode != nil {
		r.ICMP = &probe.ICMP{Type: *s.ICMPType, Code: *s.ICMPCode}
	}
	if len(s.Detail) > 0 {
		var d struct {
			Retries  int           `json:"retries"`
			Fallback probe.Kind    `json:"fallback_from"`
			TLS      *probe.TLS    `json:"tls"`
			Banner   *probe.Banner `json:"banner"`
			Error    string        `json:"error"`
		}
		if err := json.Unmarshal(s.Detail, &d); err != nil {
			return probe.Result{}, err
		}
		r.Retries, r.Fallback, r.TLS, r.Banner, r.Error = d.Retries, d.Fallback, d.TLS, d.Banner, d.Error
	}
	return r, nil
}

// window is the scan's time window: the job's start and finish, widened
// to every result's time (results are stamped by the engine's clock).
func window(j *scan.JobInfo, rs []probe.Result) policy.Window {
	var w policy.Window
	w.Start, _ = time.Parse(time.RFC3339Nano, j.StartedAt)
	w.End, _ = time.Parse(time.RFC3339Nano, j.FinishedAt)
	if w.Start.IsZero() {
		w.Start, _ = time.Parse(time.RFC3339Nano, j.IssuedAt)
	}
	for _, r := range rs {
		if t := r.Time; !t.IsZero() {
			if w.Start.IsZero() || t.Before(w.Start) {
				w.Start = t
			}
			if t.After(w.End) {
				w.End = t
			}
		}
	}
	w.Start, w.End = w.Start.UTC().Truncate(time.Second), w.End.UTC().Truncate(time.Second).Add(time.Second)
	return w
}

// Create builds the report of req's scan (Input), signs it, spools it as
// evidence of the scan and records report.sign (Service.Create), then keeps
// a working copy for Download. Needs report.create (and what Input needs).
func (r *Reports) Create(ctx context.Context, p auth.Principal, tenant string, req CreateRequest) (Created, error) {
	// Authorise first, so a caller who may not create reports does not
	// get an evaluation recorded on their behalf.
	if _, err := r.d.Service.gate.Authorize(ctx, p, auth.OpReportCreate, tenant); err != nil {
		return Created{}, fmt.Errorf("create report: %w", err)
	}
	if len(req.Parts) > 0 {
		return r.createCombined(ctx, p, tenant, req)
	}
	in, err := r.Input(ctx, p, tenant, req)
	if err != nil {
		return Created{}, err
	}
	in.ID = store.NewID("rpt")
	c, err := r.d.Service.Create(ctx, p, tenant, req.ScanID, in)
	if err != nil {
		return Created{}, err
	}
	if err := r.keep(c, in.Tenant, p); err != nil {
		return c, fmt.Errorf("report %s is signed and stored as evidence, but its working copy was not written: %w", c.ID, err)
	}
	return c, nil
}

// createCombined builds the input of each part (Input: its own
// evaluation, proofs and checkpoint) and signs them as one combined
// report.
func (r *Reports) createCombined(ctx context.Context, p auth.Principal, tenant string, req CreateRequest) (Created, error) {
	if req.ScanID != "" || req.Policy != "" {
		return Created{}, fmt.Errorf("create report: %w: give either scan_id and policy or parts, not both", ErrIncomplete)
	}
	if len(req.Parts) > verify.MaxParts {
		return Created{}, fmt.Errorf("create report: %w: %d scans, at most %d", ErrIncomplete, len(req.Parts), verify.MaxParts)
	}
	seen := map[string]bool{}
	var ins []Input
	for _, pt := range req.Parts {
		if seen[pt.ScanID] {
			return Created{}, fmt.Errorf("create report: %w: scan %s given twice", ErrIncomplete, pt.ScanID)
		}
		seen[pt.ScanID] = true
		in, err := r.Input(ctx, p, tenant, CreateRequest{ScanID: pt.ScanID, Policy: pt.Policy, PolicyVersion: pt.PolicyVersion})
		if err != nil {
			return Created{}, err
		}
		ins = append(ins, in)
	}
	c, err := r.d.Service.CreateCombined(ctx, p, tenant, store.NewID("rpt"), r.d.Now().UTC(), r.d.Appliance, ins)
	if err != nil {
		return Created{}, err
	}
	if err := r.keep(c, tenant, p); err != nil {
		return c, fmt.Errorf("report %s is signed and stored as evidence, but its working copy was not written: %w", c.ID, err)
	}
	return c, nil
}

// keep writes the working copy of c.
func (r *Reports) keep(c Created, tenant string, p auth.Principal) error {
	if tenant == "" {
		tenant = p.TenantID
	}
	dir := filepath.Join(r.d.Dir, filepath.Base(tenant))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".report-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(c.Signed); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, filepath.Base(c.ID)+".json"))
}

// Stored describes a created report, as its report.sign audit entry
// recorded it.
type Stored struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	ScanID string `json:"scan_id"`
	// ScanIDs lists every scan of a combined report (nil otherwise);
	// Vantages the vantage label of each scan, in order.
	ScanIDs       []string       `json:"scan_ids,omitempty"`
	Vantages      []string       `json:"vantages"`
	Policy        string         `json:"policy"`
	PolicyVersion int            `json:"policy_version"`
	SHA256        string         `json:"sha256"`
	KeyID         string         `json:"key_id"`
	EvidenceKey   string         `json:"evidence_key"`
	Findings      map[string]int `json:"findings"`
	Imported      bool           `json:"imported"`
	CreatedBy     string         `json:"created_by"`
	CreatedAt     time.Time      `json:"created_at"`
	AuditSeq      int64          `json:"audit_seq"`
}

func storedOf(e audit.Entry) (Stored, error) {
	var d struct {
		ReportID      string         `json:"report_id"`
		SHA256        string         `json:"sha256"`
		KeyID         string         `json:"key_id"`
		ScanID        string         `json:"scan_id"`
		ScanIDs       []string       `json:"scan_ids"`
		Vantages      []string       `json:"vantages"`
		Policy        string         `json:"policy"`
		PolicyVersion int            `json:"policy_version"`
		Findings      map[string]int `json:"findings"`
		Imported      bool           `json:"imported"`
		EvidenceKey   string         `json:"evidence_key"`
	}
	if err := json.Unmarshal(e.Details, &d); err != nil {
		return Stored{}, fmt.Errorf("report.sign entry %d: %w", e.Seq, err)
	}
	if d.Findings == nil {
		d.Findings = map[string]int{}
	}
	if d.Vantages == nil {
		d.Vantages = []string{}
	}
	return Stored{ID: d.ReportID, Tenant: e.Tenant, ScanID: d.ScanID, ScanIDs: d.ScanIDs, Vantages: d.Vantages, Policy: d.Policy, PolicyVersion: d.PolicyVersion, SHA256: d.SHA256, KeyID: d.KeyID,
		EvidenceKey: d.EvidenceKey, Findings: d.Findings, Imported: d.Imported, CreatedBy: e.ActorName, CreatedAt: e.Time.UTC(), AuditSeq: e.Seq}, nil
}

// MaxList bounds List.
const MaxList = 10000

// List returns the reports of tenant ("" for p's own), newest first, from
// the report.sign entries of the audit log (the index that cannot be
// edited). Needs report.read.
func (r *Reports) List(ctx context.Context, p auth.Principal, tenant string) ([]Stored, error) {
	pin, err := r.d.Service.gate.Authorize(ctx, p, auth.OpReportRead, tenant)
	if err != nil {
		return nil, fmt.Errorf("list reports: %w", err)
	}
	return r.entries(ctx, pin, "")
}

// entries reads the report.sign entries of tenant pin, newest first (of
// report id only, when id is not ""): each follows the evidence.spool entry
// of its report file, in the same transaction.
func (r *Reports) entries(ctx context.Context, pin, id string) ([]Stored, error) {
	return r.entriesUpTo(ctx, pin, id, MaxList)
}

// entriesUpTo is entries with at most limit reports: each costs one read of
// the audit entries after its evidence record, so short pages read few.
func (r *Reports) entriesUpTo(ctx context.Context, pin, id string, limit int) ([]Stored, error) {
	like := "tenants/" + pin + "/scans/%/report-%.json"
	if id != "" {
		like = "tenants/" + pin + "/scans/%/report-" + id + ".json"
	}
	rows, err := r.d.DB.QueryContext(ctx, `SELECT seq, key FROM evidence_spool WHERE tenant = ? AND key LIKE ? ESCAPE '\' ORDER BY seq DESC LIMIT ?`,
		pin, strings.ReplaceAll(like, "_", `\_`), limit)
	if err != nil {
		return nil, fmt.Errorf("list reports: %w", err)
	}
	type rec struct {
		seq int64
		key string
	}
	var recs []rec
	for rows.Next() {
		var x rec
		if err := rows.Scan(&x.seq, &x.key); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list reports: %w", err)
		}
		recs = append(recs, x)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list reports: %w", err)
	}
	out := make([]Stored, 0, len(recs))
	for _, x := range recs {
		name := x.key[strings.LastIndex(x.key, "/")+1:]
		rid := strings.TrimSuffix(strings.TrimPrefix(name, "report-"), ".json")
		e, err := following(ctx, r.d.DB, x.seq, audit.ActReportSign, "report:"+rid)
		if err != nil {
			return nil, fmt.Errorf("list reports: %w", err)
		}
		st, err := storedOf(e)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// Get returns report id of tenant ("" for p's own); another tenant's id
// is refused like a missing one (ErrNotFound). Needs report.read.
func (r *Reports) Get(ctx context.Context, p auth.Principal, tenant, id string) (Stored, error) {
	pin, err := r.d.Service.gate.Authorize(ctx, p, auth.OpReportRead, tenant)
	if err != nil {
		return Stored{}, fmt.Errorf("report %q: %w", id, err)
	}
	return r.get(ctx, pin, id)
}

func (r *Reports) get(ctx context.Context, pin, id string) (Stored, error) {
	if !idPattern.MatchString(id) {
		return Stored{}, fmt.Errorf("report %q: %w", id, ErrNotFound)
	}
	st, err := r.entries(ctx, pin, id)
	if err != nil {
		return Stored{}, err
	}
	if len(st) == 0 {
		return Stored{}, fmt.Errorf("report %q: %w", id, ErrNotFound)
	}
	return st[0], nil
}

// Download returns report id as "json" (the signed file, report.json),
// "html" or "pdf", with its media type. The working copy must have the
// SHA-256 its report.sign entry recorded, or it is refused. Needs
// report.read.
func (r *Reports) Download(ctx context.Context, p auth.Principal, tenant, id, format string) ([]byte, string, error) {
	pin, err := r.d.Service.gate.Authorize(ctx, p, auth.OpReportRead, tenant)
	if err != nil {
		return nil, "", fmt.Errorf("report %q: %w", id, err)
	}
	st, err := r.get(ctx, pin, id)
	if err != nil {
		return nil, "", err
	}
	signed, err := os.ReadFile(filepath.Join(r.d.Dir, filepath.Base(pin), filepath.Base(st.ID)+".json"))
	if err != nil {
		return nil, "", fmt.Errorf("report %s: %w: its working copy is not readable (%v); export %s from the evidence vault", id, ErrNotFound, err, st.EvidenceKey)
	}
	sum := sha256.Sum256(signed)
	if hex.EncodeToString(sum[:]) != st.SHA256 {
		return nil, "", fmt.Errorf("report %s: %w: its working copy does not have the SHA-256 the audit log recorded; export %s from the evidence vault", id, verify.ErrSignature, st.EvidenceKey)
	}
	var buf bytes.Buffer
	switch strings.ToLower(format) {
	case "json", "":
		return signed, "application/json", nil
	case "html":
		err = r.render.HTML(&buf, signed)
		return buf.Bytes(), "text/html; charset=utf-8", err
	case "pdf":
		err = r.render.PDF(&buf, signed)
		return buf.Bytes(), "application/pdf", err
	}
	return nil, "", fmt.Errorf("report %s: %w: format %q (want json, html or pdf)", id, ErrIncomplete, format)
}

// scanResults loads completed scan id of tenant ("" for p's own) with its
// results and window, as p (scan.read).
func (r *Reports) scanResults(ctx context.Context, p auth.Principal, tenant, id string) (scan.Scan, []probe.Result, policy.Window, error) {
	sc, err := r.d.Scans.Get(ctx, p, tenant, id)
	if err != nil {
		return scan.Scan{}, nil, policy.Window{}, err
	}
	if sc.State != scan.StateCompleted || sc.Job == nil {
		return scan.Scan{}, nil, policy.Window{}, fmt.Errorf("%w: scan %s is %s, not completed", scan.ErrState, sc.ID, sc.State)
	}
	rs, err := r.results(ctx, p, sc)
	if err != nil {
		return scan.Scan{}, nil, policy.Window{}, err
	}
	return sc, rs, window(sc.Job, rs), nil
}

// Evaluate judges completed scan scanID's stored results against policy
// name (version 0: the newest) and the current baseline of the scan's
// scope (policy.Service.Evaluate: audited, findings to the SIEM). Needs
// scan.read and policy.evaluate.
func (r *Reports) Evaluate(ctx context.Context, p auth.Principal, tenant, scanID, name string, version int) (policy.Outcome, error) {
	sc, rs, w, err := r.scanResults(ctx, p, tenant, scanID)
	if err != nil {
		return policy.Outcome{}, fmt.Errorf("evaluate: %w", err)
	}
	return r.d.Policies.Evaluate(ctx, p, sc.Tenant, policy.EvaluateRequest{PolicyName: name, PolicyVersion: version, ScopeID: sc.ScopeID,
		ScanID: sc.ID, Results: rs, Window: w})
}

// AcceptBaseline accepts completed scan scanID's stored results as the
// baseline of its scope and policy name (policy.Service.AcceptBaseline:
// step-up, or an *auth.StepUpChallenge; audited). Needs scan.read and
// policy.baseline.accept.
func (r *Reports) AcceptBaseline(ctx context.Context, p auth.Principal, tenant, scanID, name string, version int, code string) (store.Baseline, error) {
	sc, rs, _, err := r.scanResults(ctx, p, tenant, scanID)
	if err != nil {
		return store.Baseline{}, fmt.Errorf("accept baseline: %w", err)
	}
	return r.d.Policies.AcceptBaseline(ctx, p, sc.Tenant, policy.BaselineRequest{ScopeID: sc.ScopeID, PolicyName: name, PolicyVersion: version,
		ScanID: sc.ID, Results: rs}, code)
}
