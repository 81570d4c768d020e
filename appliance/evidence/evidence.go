// Package evidence is the appliance side of the evidence vault: it opens the
// configured vault.Store behind a durable spool, records every verified
// upload in the audit log (and an index table) in one transaction, issues
// pre-signed exports only after dual approval and step-up, and anchors the
// audit log in the WORM bucket once a day.
//
// The vault package imports nothing of ours; this package is the glue that
// gives it the audit log and the database.
package evidence

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"time"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/journal"
	"firewalliq/appliance/store"
	"firewalliq/audit"
	"firewalliq/vault"
)

// ExportTTL is the lifetime of an export URL. It is not configurable: a
// longer-lived URL is a bearer credential for evidence.
const ExportTTL = 5 * time.Minute

// Sentinel errors.
var (
	// ErrNotApproved means an export lacks its dual approval or step-up, or
	// the approval is not for this exact export.
	ErrNotApproved = errors.New("evidence export is not approved")
	// ErrNotFound means no recorded evidence object matches (within the
	// caller's tenant).
	ErrNotFound = errors.New("evidence object not found")
)

// The actor of background work (uploads, anchors).
const (
	systemID   = "appliance"
	systemName = "vault"
)

// Gate is the identity service as exports need it; *auth.Service
// implements it. Export calls Authorize first, then VerifiedApproval on the
// canonical request, and spends the step-up inside the transaction that
// writes the export's audit entry.
type Gate interface {
	Authorize(ctx context.Context, p auth.Principal, op auth.Operation, tenant string) (string, error)
	VerifiedApprovalFor(ctx context.Context, tenant, requesterID, requestID string, canonicalRequest []byte) (auth.Approval, error)
	SpendApproval(ctx context.Context, tx *sql.Tx, tenant, requestID string) error
	ConsumeStepUp(ctx context.Context, tx *sql.Tx, p auth.Principal, op auth.Operation, canonicalRequest []byte) error
	StepUpRefused(ctx context.Context, p auth.Principal, tenant string, op auth.Operation, err error) error
}

// Options configure Open.
type Options struct {
	// DB is the appliance database (with migration 0005 applied).
	DB *sql.DB
	// Audit appends the evidence.* entries.
	Audit *audit.Log
	// Append, when set, replaces Audit.Append for the evidence.* entries;
	// the appliance passes the SIEM outbox's Append (bound to the log) so
	// uploads, exports and anchors (with their checkpoint) reach the SIEM
	// in the same transaction.
	Append func(ctx context.Context, tx *sql.Tx, e audit.Entry) (audit.Entry, error)
	// Config is the vault section; DataDir places the spool.
	Config  Config
	DataDir string
	// Production refuses a non-WORM backend.
	Production bool
	// Store overrides the backend built from Config (tests).
	Store vault.Store
	// Gate checks role, dual approval and step-up for exports; Export
	// refuses everything when it is nil.
	Gate Gate
	// Ledger is the audit log as anchoring needs it; nil disables anchors.
	Ledger vault.Ledger
	// OnAnchor is called after each anchor is spooled, e.g. to send the
	// checkpoint to the SIEM.
	OnAnchor func(ctx context.Context, a vault.AnchorResult)
	// OnAlert is told when the spool nears or hits its bound.
	OnAlert func(vault.SpoolStatus)
	// OnError is told about failed uploads and checks (for the log).
	OnError func(error)
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Vault tunes the uploader (backoff, workers, sleep); its Spool,
	// Production and Now fields are set from the options above.
	Vault vault.Config
}

// Service is the opened evidence vault.
type Service struct {
	db          *sql.DB
	appendEntry func(context.Context, *sql.Tx, audit.Entry) (audit.Entry, error)
	log         *audit.Log
	v           *vault.Vault
	now         func() time.Time
	gate        Gate
	ledger      vault.Ledger
	onAnchor    func(context.Context, vault.AnchorResult)
	sleep       func(context.Context, time.Duration)
	onError     func(error)
}

// Open builds the backend and the spool and checks the bucket once. A
// definitive refusal (bucket missing, not locked, GOVERNANCE mode,
// retention too short, not WORM in production) fails Open; an unreachable
// server does not: evidence is spooled and uploaded once the bucket
// verifies (Status shows the error meanwhile).
func Open(ctx context.Context, opts Options) (*Service, error) {
	if opts.DB == nil || opts.Audit == nil {
		return nil, fmt.Errorf("evidence: %w: database and audit log are required", vault.ErrBadConfig)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	store := opts.Store
	if store == nil {
		if err := opts.Config.Validate(opts.Production); err != nil {
			return nil, err
		}
		var err error
		if store, err = opts.Config.NewStore(opts.DataDir, opts.Now); err != nil {
			return nil, err
		}
	}
	s := &Service{db: opts.DB, log: opts.Audit, now: opts.Now, gate: opts.Gate, ledger: opts.Ledger, onAnchor: opts.OnAnchor, onError: opts.OnError}
	vc := opts.Vault
	vc.Production = opts.Production
	vc.Now = opts.Now
	if vc.Spool.Dir == "" {
		vc.Spool = opts.Config.SpoolOptions(opts.DataDir, opts.Now)
	}
	if vc.Spool.OnAlert == nil {
		vc.Spool.OnAlert = opts.OnAlert
	}
	if vc.CheckEvery == 0 {
		vc.CheckEvery = opts.Config.CheckInterval
	}
	if vc.OnError == nil {
		vc.OnError = opts.OnError
	}
	s.appendEntry = opts.Append
	if s.appendEntry == nil {
		jr, err := journal.New(opts.DB, opts.Audit, nil)
		if err != nil {
			return nil, err
		}
		s.appendEntry = jr.Record
	}
	s.sleep = vc.Sleep
	if s.sleep == nil {
		s.sleep = sleepCtx
	}
	v, err := vault.New(vc, store, vault.RecorderFunc(s.record))
	if err != nil {
		return nil, err
	}
	s.v = v
	// Bounded, so a server that accepts connections but never answers
	// cannot hold up start-up. Other failures (unreachable, TLS, bad
	// credentials) are left to Status and the retry loop: refusing to start
	// would not protect evidence, spooling it does.
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := v.Check(cctx); err != nil && vault.IsRefusal(err) {
		return nil, fmt.Errorf("evidence vault refused: %w", err)
	}
	return s, nil
}

// Vault returns the underlying vault (status, tests).
func (s *Service) Vault() *vault.Vault { return s.v }

// Status returns the vault's status.
func (s *Service) Status() vault.Status { return s.v.Status() }

// Add spools one evidence object of a scan; it is durable when Add returns.
func (s *Service) Add(ctx context.Context, tenant, scan, name string, r io.Reader) (vault.RecordHeader, error) {
	key, err := vault.ScanKey(tenant, scan, name)
	if err != nil {
		return vault.RecordHeader{}, err
	}
	return s.v.Add(ctx, key, r)
}

// Run uploads in the background, and anchors the audit log daily when a
// Ledger was given, until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if s.ledger != nil {
			s.runAnchors(ctx)
		}
	}()
	err := s.v.Run(ctx)
	<-done
	return err
}

// uploadDetails is the evidence.upload audit entry's details.
type uploadDetails struct {
	SHA256      string `json:"sha256"`
	VersionID   string `json:"version_id"`
	Size        int64  `json:"size"`
	Mode        string `json:"mode"`
	RetainUntil string `json:"retain_until"`
	SSE         string `json:"sse"`
	Backend     string `json:"backend"`
	WORM        bool   `json:"worm"`
}

// record is the vault's Recorder: the index row and the audit entry commit
// together, or the object stays in the spool.
func (s *Service) record(ctx context.Context, r vault.Receipt) error {
	until := ""
	if !r.Until.IsZero() {
		until = r.Until.UTC().Format(time.RFC3339)
	}
	det, err := json.Marshal(uploadDetails{SHA256: r.SHA256, VersionID: r.VersionID, Size: r.Size, Mode: r.Mode, RetainUntil: until, SSE: r.SSE, Backend: r.Backend, WORM: r.WORM})
	if err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		e, err := s.appendEntry(ctx, tx, audit.Entry{Tenant: r.Tenant, ActorID: systemID, ActorName: systemName, Action: audit.ActEvidenceUpload, Object: r.Key, Details: det})
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO evidence_objects (key, version_id, tenant, sha256, size, mode, retain_until, sse, backend, worm, spooled_at, verified_at, audit_seq)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.Key, r.VersionID, r.Tenant, r.SHA256, r.Size, r.Mode, until, r.SSE, r.Backend, boolInt(r.WORM),
			r.Spooled.UTC().Format(time.RFC3339Nano), r.Verified.UTC().Format(time.RFC3339Nano), e.Seq)
		if err != nil {
			return fmt.Errorf("record evidence %s: %w", r.Key, err)
		}
		return nil
	})
}

func (s *Service) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	return store.InTx(ctx, s.db, fn)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Object is one recorded evidence object version.
type Object struct {
	Key         string    `json:"key"`
	VersionID   string    `json:"version_id"`
	Tenant      string    `json:"tenant"`
	SHA256      string    `json:"sha256"`
	Size        int64     `json:"size"`
	Mode        string    `json:"mode"`
	RetainUntil string    `json:"retain_until"`
	WORM        bool      `json:"worm"`
	Verified    time.Time `json:"verified"`
	AuditSeq    int64     `json:"audit_seq"`
}

// Objects lists the recorded objects of a tenant under prefix (a key
// prefix inside the tenant's own tenants/<tenant>/ space).
func (s *Service) Objects(ctx context.Context, tenant, prefix string) ([]Object, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT key, version_id, tenant, sha256, size, mode, retain_until, worm, verified_at, audit_seq
		FROM evidence_objects WHERE tenant = ? AND substr(key, 1, length(?)) = ? ORDER BY key, verified_at`, tenant, prefix, prefix)
	if err != nil {
		return nil, fmt.Errorf("list evidence: %w", err)
	}
	defer rows.Close()
	var out []Object
	for rows.Next() {
		var o Object
		var worm int
		var verified string
		if err := rows.Scan(&o.Key, &o.VersionID, &o.Tenant, &o.SHA256, &o.Size, &o.Mode, &o.RetainUntil, &worm, &verified, &o.AuditSeq); err != nil {
			return nil, fmt.Errorf("list evidence: %w", err)
		}
		o.WORM = worm == 1
		o.Verified, _ = time.Parse(time.RFC3339Nano, verified)
		out = append(out, o)
	}
	return out, rows.Err()
}

// ExportRequest asks for a pre-signed URL to one object version.
type ExportRequest struct {
	// Principal is who asks (from the session), with client IP and agent.
	Principal auth.Principal
	// Tenant is where the object lives; "" means the principal's own.
	Tenant    string
	Key       string
	VersionID string
	// RequestID names the dual-approval request (kind evidence.export)
	// opened on ExportCanonical of this export.
	RequestID string
}

// ExportCanonical is the exact byte string an export's approval request and
// step-up are bound to: JSON with sorted keys and no insignificant
// whitespace. The console calls it to open the approval request
// (auth.RequestApproval with auth.KindEvidenceExport); any change of tenant,
// requester, key or version afterwards voids the approvals.
func ExportCanonical(tenant, requesterID, key, versionID string) []byte {
	b, _ := json.Marshal(map[string]string{ // map keys marshal sorted
		"action": string(audit.ActEvidenceExport), "tenant": tenant, "requester": requesterID,
		"key": key, "version_id": versionID,
	})
	return b
}

// ExportResult is the URL and what it is for.
type ExportResult struct {
	URL       string    `json:"url"`
	Expires   time.Time `json:"expires"`
	Key       string    `json:"key"`
	VersionID string    `json:"version_id"`
	SHA256    string    `json:"sha256"`
	Approvers []string  `json:"approvers"`
}

// Export returns a pre-signed GET URL valid for ExportTTL. In order: the
// principal must be allowed evidence.export in the tenant; the approval
// request must be a complete evidence.export dual approval of this exact
// export by two approvers other than the requester; the object must be
// recorded in that tenant; and the requester's step-up for this export is
// spent in the same transaction that audits who, what, the approvers and
// the expiry. If any step fails, no URL is returned.
func (s *Service) Export(ctx context.Context, req ExportRequest) (ExportResult, error) {
	if s.gate == nil {
		return ExportResult{}, fmt.Errorf("export %s: %w: no identity service configured", req.Key, ErrNotApproved)
	}
	// An unacknowledged audit tamper alarm stops every export: evidence
	// whose audit trail may be forged must not leave the appliance.
	if err := audit.CheckNoAlarm(ctx, s.db); err != nil {
		return ExportResult{}, fmt.Errorf("export %s: %w", req.Key, err)
	}
	p := req.Principal
	tenant, err := s.gate.Authorize(ctx, p, auth.OpEvidenceExport, req.Tenant)
	if err != nil {
		return ExportResult{}, fmt.Errorf("export %s: %w", req.Key, err)
	}
	canon := ExportCanonical(tenant, p.UserID, req.Key, req.VersionID)
	ap, err := s.gate.VerifiedApprovalFor(ctx, tenant, p.UserID, req.RequestID, canon)
	if err != nil {
		return ExportResult{}, fmt.Errorf("export %s: %w: %w", req.Key, ErrNotApproved, err)
	}
	// Defence in depth: the identity service enforces these too.
	var approvers []string
	for _, a := range ap.Approvers {
		if a.UserID != p.UserID && !slices.Contains(approvers, a.UserID) {
			approvers = append(approvers, a.UserID)
		}
	}
	slices.Sort(approvers)
	if ap.Kind != auth.KindEvidenceExport || ap.TenantID != tenant || ap.RequesterID != p.UserID || len(approvers) < auth.RequiredApprovals {
		return ExportResult{}, fmt.Errorf("export %s: %w: needs an evidence.export approval by two others, for this requester and tenant", req.Key, ErrNotApproved)
	}
	var sha string
	err = s.db.QueryRowContext(ctx, `SELECT sha256 FROM evidence_objects WHERE tenant = ? AND key = ? AND version_id = ?`,
		tenant, req.Key, req.VersionID).Scan(&sha)
	if errors.Is(err, sql.ErrNoRows) {
		return ExportResult{}, fmt.Errorf("export %s: %w", req.Key, ErrNotFound)
	} else if err != nil {
		return ExportResult{}, fmt.Errorf("export %s: %w", req.Key, err)
	}
	expires := s.now().Add(ExportTTL).UTC()
	u, err := s.v.Store().Presign(ctx, req.Key, req.VersionID, ExportTTL)
	if err != nil {
		return ExportResult{}, err
	}
	det, err := json.Marshal(map[string]any{
		"version_id": req.VersionID, "sha256": sha, "request_id": req.RequestID,
		"approvers": approvers, "expires": expires.Format(time.RFC3339), "url_host": hostOf(u),
	})
	if err != nil {
		return ExportResult{}, err
	}
	var stepErr error
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.gate.ConsumeStepUp(ctx, tx, p, auth.OpEvidenceExport, canon); err != nil {
			stepErr = err
			return err
		}
		// One approval, one export: the URL is minted once.
		if err := s.gate.SpendApproval(ctx, tx, tenant, req.RequestID); err != nil {
			return fmt.Errorf("%w: %w", ErrNotApproved, err)
		}
		_, err := s.appendEntry(ctx, tx, audit.Entry{Tenant: tenant, ActorID: p.UserID, ActorName: p.Name, ActorIP: p.Client.IP, UserAgent: p.Client.UserAgent,
			Action: audit.ActEvidenceExport, Object: req.Key, Details: det})
		return err
	})
	if stepErr != nil {
		return ExportResult{}, fmt.Errorf("export %s: %w: %w", req.Key, ErrNotApproved, s.gate.StepUpRefused(ctx, p, tenant, auth.OpEvidenceExport, stepErr))
	}
	if err != nil {
		return ExportResult{}, fmt.Errorf("export %s: %w", req.Key, err)
	}
	return ExportResult{URL: u.String(), Expires: expires, Key: req.Key, VersionID: req.VersionID, SHA256: sha, Approvers: approvers}, nil
}

// hostOf keeps the URL's host (not its signature) for the audit entry: the
// signed URL itself is a bearer credential and must not sit in the log.
func hostOf(u *url.URL) string { return u.Host }
