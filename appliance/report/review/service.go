// Package review is the periodic access review: a snapshot of who can do
// what in a tenant (or, for appliance admins, on the appliance), the
// changes since the previous review, a reviewer's keep or revoke decision
// on every line, and a signing step that applies the revocations, closes
// the access-review flags it covers and stores a document signed by the
// appliance report key (canonical JSON, rendered as HTML and PDF), which
// `firewalliq report verify` checks offline like a compliance report. A
// cadence says when the next review is due; an overdue review raises a
// review.overdue audit entry (and so a SIEM event) once per overdue
// period. The document format lives in report/verify; docs/access-review.md
// describes it.
package review

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
	"slices"
	"strings"
	"time"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/report/verify"
	"firewalliq/appliance/store"
	"firewalliq/audit"
	"firewalliq/probe/keys"
	"firewalliq/vault"
)

// Sentinel errors.
var (
	// ErrOpen means the tenant already has an open review (HTTP 409).
	ErrOpen = errors.New("an access review is already open")
	// ErrNotOpen means the review is already signed: decisions and
	// signing need an open one (HTTP 409).
	ErrNotOpen = errors.New("access review is not open")
	// ErrNotSigned means the review has no signed document yet (HTTP 409).
	ErrNotSigned = errors.New("access review is not signed yet")
	// ErrUndecided means a line has no keep or revoke decision, so the
	// review cannot be signed (HTTP 409).
	ErrUndecided = errors.New("access review has undecided lines")
	// ErrChanged means the decisions changed while the review was being
	// signed (HTTP 409; sign again).
	ErrChanged = errors.New("access review decisions changed during signing")
	// ErrInvalid means a malformed decision: an unknown line, a decision
	// other than keep or revoke, a note too long, or a reviewer revoking
	// their own account (HTTP 400).
	ErrInvalid = errors.New("invalid access review decision")
	// ErrNotFound means no review with that id in the caller's tenant
	// (HTTP 404).
	ErrNotFound = errors.New("access review not found")
)

// Defaults.
const (
	// DefaultInterval is the cadence: quarterly (config review.interval).
	DefaultInterval = 91 * 24 * time.Hour
	// DefaultUnused is how long without a login makes an account
	// "unused".
	DefaultUnused = 90 * 24 * time.Hour
	// MaxNote bounds a decision's note.
	MaxNote = 500
	// MaxDecisions bounds the decisions of one Decide call (and so the
	// size of its audit entry).
	MaxDecisions = 1000
	// EvidenceScan is the evidence "scan" folder signed reviews are
	// stored under: tenants/<tenant>/scans/access-reviews/review-<id>.json.
	EvidenceScan = "access-reviews"
	// VerifyCommand is how a reader checks a review offline.
	VerifyCommand = "firewalliq report verify review.json --pub report.pub"
)

// Gate is the identity service as reviews need it; *auth.Service
// implements it.
type Gate interface {
	Authorize(ctx context.Context, p auth.Principal, op auth.Operation, tenant string) (string, error)
	RefuseNotFound(ctx context.Context, p auth.Principal, tenant string, op auth.Operation, object string, err error) error
	UseStepUp(ctx context.Context, tx *sql.Tx, p auth.Principal, op auth.Operation, canonicalRequest []byte, code string) error
	StepUpRefused(ctx context.Context, p auth.Principal, tenant string, op auth.Operation, err error) error
}

// Spooler stores evidence and records it in the audit log, running within
// in the same transaction; *evidence.Service implements it.
type Spooler interface {
	Submit(ctx context.Context, p auth.Principal, tenant, scan, name string, r io.Reader,
		within func(ctx context.Context, tx *sql.Tx, e vault.SpoolEntry) error) (vault.SpoolEntry, error)
	// SubmitAppliance stores an object of no tenant (the appliance-admin
	// review) under appliance/reviews/<name>.
	SubmitAppliance(ctx context.Context, p auth.Principal, name string, r io.Reader,
		within func(ctx context.Context, tx *sql.Tx, e vault.SpoolEntry) error) (vault.SpoolEntry, error)
}

// Deps are the service's dependencies.
type Deps struct {
	Store   *store.Store
	Gate    Gate
	Journal auth.Recorder
	// Spool stores signed tenant reviews as evidence; nil when no vault is
	// configured (the signed document then stays in the database only).
	Spool Spooler
	// Key is the appliance report key (keys/report.key).
	Key ed25519.PrivateKey
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Interval is the cadence; DefaultInterval when zero.
	Interval time.Duration
	// Unused is the no-login threshold; DefaultUnused when zero.
	Unused time.Duration
	// Signers lists the keys trusted to sign a tenant's scope documents
	// (scan.Keys.Trusted: active keys of the tenant's security leads);
	// SignersSource says where they come from. Nil: none listed.
	Signers       func(ctx context.Context, tenant string) ([]ed25519.PublicKey, error)
	SignersSource string
	// Appliance identifies the appliance in documents.
	Appliance verify.Appliance
}

// Service runs access reviews.
type Service struct {
	st            *store.Store
	gate          Gate
	rec           auth.Recorder
	spool         Spooler
	key           ed25519.PrivateKey
	now           func() time.Time
	interval      time.Duration
	unused        time.Duration
	signers       func(ctx context.Context, tenant string) ([]ed25519.PublicKey, error)
	signersSource string
	appliance     verify.Appliance
	render        *Renderer
}

// New checks deps and returns the service.
func New(d Deps) (*Service, error) {
	if d.Store == nil || d.Gate == nil || d.Journal == nil || len(d.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("review: Store, Gate, Journal and an Ed25519 Key are required")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Interval == 0 {
		d.Interval = DefaultInterval
	}
	if d.Unused == 0 {
		d.Unused = DefaultUnused
	}
	if d.Interval < time.Hour || d.Unused < 0 {
		return nil, fmt.Errorf("review: interval %s must be at least 1h", d.Interval)
	}
	rd, err := NewRenderer()
	if err != nil {
		return nil, err
	}
	return &Service{st: d.Store, gate: d.Gate, rec: d.Journal, spool: d.Spool, key: d.Key, now: d.Now, interval: d.Interval,
		unused: d.Unused, signers: d.Signers, signersSource: d.SignersSource, appliance: d.Appliance, render: rd}, nil
}

// Interval is the configured cadence.
func (s *Service) Interval() time.Duration { return s.interval }

// Review is a review as shown to its readers.
type Review struct {
	ID string `json:"id"`
	// Tenant is "" for the appliance-admin review.
	Tenant    string    `json:"tenant"`
	Status    string    `json:"status"`
	StartedBy string    `json:"started_by"`
	StartedAt time.Time `json:"started_at"`
	SignedBy  string    `json:"signed_by,omitempty"`
	SignedAt  time.Time `json:"signed_at,omitzero"`
	// Document is the review with the decisions so far (signed: exactly
	// the signed body).
	Document verify.AccessReview `json:"document"`
	// Undecided lists the lines still without a decision.
	Undecided []string `json:"undecided"`
	// SHA256 is the signed file's SHA-256; EvidenceKey its vault key
	// (empty without a vault, or for the appliance-admin review).
	SHA256      string `json:"sha256,omitempty"`
	EvidenceKey string `json:"evidence_key,omitempty"`
}

// entry builds an audit entry attributed to p.
func entry(p auth.Principal, tenant string, action audit.Action, object string, details map[string]any) audit.Entry {
	e := audit.Entry{Tenant: tenant, ActorID: p.UserID, ActorName: p.Name, ActorIP: p.Client.IP, UserAgent: p.Client.UserAgent, Action: action, Object: object}
	if details != nil {
		// Maps of strings, numbers and string lists built here always
		// encode.
		e.Details, _ = json.Marshal(details)
	}
	return e
}

// previous returns the latest signed review's document and reference
// (nil, nil when there is none).
func (s *Service) previous(ctx context.Context, q store.Querier, rs *store.ReviewStore) (*verify.AccessReview, *verify.ReviewRef, error) {
	ar, err := rs.LatestSigned(ctx, q)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var f verify.File
	if err := json.Unmarshal(ar.Document, &f); err != nil {
		return nil, nil, fmt.Errorf("previous review %s: %w", ar.ID, err)
	}
	var doc verify.AccessReview
	if err := json.Unmarshal(f.Report, &doc); err != nil {
		return nil, nil, fmt.Errorf("previous review %s: %w", ar.ID, err)
	}
	return &doc, &verify.ReviewRef{ID: ar.ID, SignedAt: stamp(ar.SignedAt), SHA256: ar.SHA256}, nil
}

// Start snapshots tenant's access ("" for p's own tenant; for an
// appliance admin, the appliance-admin review) into a new open review and
// records review.create. A tenant has at most one open review (ErrOpen).
func (s *Service) Start(ctx context.Context, p auth.Principal, tenant string) (Review, error) {
	pin, err := s.gate.Authorize(ctx, p, auth.OpReviewStart, tenant)
	if err != nil {
		return Review{}, err
	}
	rs := s.st.Reviews(pin)
	now := s.now()
	prev, ref, err := s.previous(ctx, s.st.Reader(), rs)
	if err != nil {
		return Review{}, err
	}
	doc, err := s.snapshot(ctx, pin, now, prev, ref)
	if err != nil {
		return Review{}, fmt.Errorf("start review: %w", err)
	}
	doc.ID = store.NewID("rev")
	doc.StartedBy = verify.Operator{ID: p.UserID, Name: p.Name, Role: p.Role}
	snap, err := json.Marshal(doc)
	if err != nil {
		return Review{}, err
	}
	var ar store.AccessReview
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		ar, err = rs.Create(ctx, tx, store.AccessReview{ID: doc.ID, StartedBy: p.UserID, StartedAt: now, Snapshot: snap})
		if errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("start review: %w", ErrOpen)
		}
		if err != nil {
			return err
		}
		sum := verify.Summarize(doc)
		_, err = s.rec.Record(ctx, tx, entry(p, pin, audit.ActReviewCreate, "review:"+doc.ID, map[string]any{
			"users": sum.Users, "tokens": sum.Tokens, "open_tickets": sum.OpenTickets, "flags": sum.Flags, "lines": sum.Lines,
			"new_users": sum.NewUsers, "role_changes": sum.RoleChanges, "new_tokens": sum.NewTokens, "unused": sum.Unused, "previous": prevID(ref)}))
		return err
	})
	if err != nil {
		return Review{}, err
	}
	return s.view(ctx, s.st.Reader(), rs, ar)
}

func prevID(ref *verify.ReviewRef) string {
	if ref == nil {
		return ""
	}
	return ref.ID
}

// view turns a stored review into a Review with its decisions merged.
func (s *Service) view(ctx context.Context, q store.Querier, rs *store.ReviewStore, ar store.AccessReview) (Review, error) {
	r := Review{ID: ar.ID, Tenant: ar.TenantID, Status: ar.Status, StartedBy: ar.StartedBy, StartedAt: ar.StartedAt, SignedBy: ar.SignedBy,
		SignedAt: ar.SignedAt, SHA256: ar.SHA256, EvidenceKey: ar.EvidenceKey, Undecided: []string{}}
	if ar.Status == store.ReviewSigned {
		var f verify.File
		if err := json.Unmarshal(ar.Document, &f); err != nil {
			return Review{}, fmt.Errorf("review %s: %w", ar.ID, err)
		}
		if err := json.Unmarshal(f.Report, &r.Document); err != nil {
			return Review{}, fmt.Errorf("review %s: %w", ar.ID, err)
		}
		return r, nil
	}
	if err := json.Unmarshal(ar.Snapshot, &r.Document); err != nil {
		return Review{}, fmt.Errorf("review %s: %w", ar.ID, err)
	}
	ds, err := rs.Decisions(ctx, q, ar.ID)
	if err != nil {
		return Review{}, err
	}
	und, err := merge(&r.Document, ds)
	if err != nil {
		return Review{}, err
	}
	if und != nil {
		r.Undecided = und
	}
	r.Document.Summary = verify.Summarize(r.Document)
	return r, nil
}

// get reads review id of pin, auditing a miss as access.denied (an id of
// another tenant looks exactly like a missing one).
func (s *Service) get(ctx context.Context, p auth.Principal, pin string, op auth.Operation, id string) (*store.ReviewStore, store.AccessReview, error) {
	rs := s.st.Reviews(pin)
	ar, err := rs.Get(ctx, s.st.Reader(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, store.AccessReview{}, s.gate.RefuseNotFound(ctx, p, pin, op, "review:"+id, fmt.Errorf("review %s: %w (%w)", id, ErrNotFound, err))
	}
	return rs, ar, err
}

// Show returns review id of tenant with its decisions so far.
func (s *Service) Show(ctx context.Context, p auth.Principal, tenant, id string) (Review, error) {
	pin, err := s.gate.Authorize(ctx, p, auth.OpReviewRead, tenant)
	if err != nil {
		return Review{}, err
	}
	rs, ar, err := s.get(ctx, p, pin, auth.OpReviewRead, id)
	if err != nil {
		return Review{}, err
	}
	return s.view(ctx, s.st.Reader(), rs, ar)
}

// List lists tenant's reviews, newest first (at most 100), without their
// documents' lines.
func (s *Service) List(ctx context.Context, p auth.Principal, tenant string) ([]Review, error) {
	pin, err := s.gate.Authorize(ctx, p, auth.OpReviewRead, tenant)
	if err != nil {
		return nil, err
	}
	rs := s.st.Reviews(pin)
	ars, err := rs.List(ctx, 100)
	if err != nil {
		return nil, err
	}
	out := make([]Review, 0, len(ars))
	for _, ar := range ars {
		r, err := s.view(ctx, s.st.Reader(), rs, ar)
		if err != nil {
			return nil, err
		}
		r.Document.Users, r.Document.Tokens, r.Document.Tickets, r.Document.Flags, r.Document.Lines, r.Document.SecurityKeys = nil, nil, nil, nil, nil, nil
		out = append(out, r)
	}
	return out, nil
}

// Decision is a reviewer's decision on one line.
type Decision struct {
	// Item is the line's item ("user:ID", "token:ID", "ticket:ID",
	// "flag:ID").
	Item string `json:"item"`
	// Decision is "keep" or "revoke".
	Decision string `json:"decision"`
	Note     string `json:"note"`
}

// Decide records decisions on lines of open review id (a later decision on
// a line replaces an earlier one) and records review.decide. Nothing is
// revoked yet: revocations take effect when the review is signed. A
// reviewer may not revoke their own account (ErrInvalid).
func (s *Service) Decide(ctx context.Context, p auth.Principal, tenant, id string, ds []Decision) (Review, error) {
	pin, err := s.gate.Authorize(ctx, p, auth.OpReviewDecide, tenant)
	if err != nil {
		return Review{}, err
	}
	if len(ds) == 0 || len(ds) > MaxDecisions {
		return Review{}, fmt.Errorf("decide: %w: %d decisions (1 to %d per call)", ErrInvalid, len(ds), MaxDecisions)
	}
	rs, ar, err := s.get(ctx, p, pin, auth.OpReviewDecide, id)
	if err != nil {
		return Review{}, err
	}
	if ar.Status != store.ReviewOpen {
		return Review{}, fmt.Errorf("decide on review %s: %w", id, ErrNotOpen)
	}
	var doc verify.AccessReview
	if err := json.Unmarshal(ar.Snapshot, &doc); err != nil {
		return Review{}, fmt.Errorf("review %s: %w", id, err)
	}
	idx := lineIndex(doc)
	seen := map[string]bool{}
	counts := map[string]int{}
	items := []string{}
	for _, d := range ds {
		d.Note = strings.TrimSpace(d.Note)
		_, known := idx[d.Item]
		switch {
		case !known:
			return Review{}, fmt.Errorf("decide %q: %w: no such line in review %s", d.Item, ErrInvalid, id)
		case d.Decision != verify.DecisionKeep && d.Decision != verify.DecisionRevoke:
			return Review{}, fmt.Errorf("decide %q: %w: decision %q (want keep or revoke)", d.Item, ErrInvalid, d.Decision)
		case len(d.Note) > MaxNote:
			return Review{}, fmt.Errorf("decide %q: %w: note longer than %d bytes", d.Item, ErrInvalid, MaxNote)
		case seen[d.Item]:
			return Review{}, fmt.Errorf("decide %q: %w: listed twice", d.Item, ErrInvalid)
		case d.Decision == verify.DecisionRevoke && d.Item == ItemUser+p.UserID:
			return Review{}, fmt.Errorf("decide %q: %w: a reviewer cannot revoke their own account", d.Item, ErrInvalid)
		}
		seen[d.Item] = true
		counts[d.Decision]++
		items = append(items, d.Item+"="+d.Decision)
	}
	now := s.now()
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		for _, d := range ds {
			err := rs.Decide(ctx, tx, store.ReviewDecision{ReviewID: id, Item: d.Item, Decision: d.Decision, Note: strings.TrimSpace(d.Note), DecidedBy: p.UserID, DecidedAt: now})
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("decide on review %s: %w", id, ErrNotOpen)
			}
			if err != nil {
				return err
			}
		}
		_, err := s.rec.Record(ctx, tx, entry(p, pin, audit.ActReviewDecide, "review:"+id, map[string]any{"keep": counts[verify.DecisionKeep], "revoke": counts[verify.DecisionRevoke], "items": items}))
		return err
	})
	if err != nil {
		return Review{}, err
	}
	ar, err = rs.Get(ctx, s.st.Reader(), id)
	if err != nil {
		return Review{}, err
	}
	return s.view(ctx, s.st.Reader(), rs, ar)
}

// decisionsDigest is the SHA-256 (hex) of a review's decisions: what the
// signing step-up binds to, so a code given for one set of decisions
// cannot sign another.
func decisionsDigest(ds []store.ReviewDecision) string {
	h := sha256.New()
	for _, d := range ds {
		// Item ids and decisions hold no NUL; the note is length-prefixed.
		fmt.Fprintf(h, "%s\x00%s\x00%d:%s\n", d.Item, d.Decision, len(d.Note), d.Note)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// SignRequest is the canonical request the signing step-up binds to: the
// review in the pinned tenant and the SHA-256 of its decisions. A client
// gets it in the *auth.StepUpChallenge that Sign returns without a code.
func SignRequest(tenant, id, decisions string) []byte {
	return auth.OpRequest(auth.OpReviewSign, tenant, map[string]string{"id": id, "decisions_sha256": decisions})
}

// Signed is a signed review.
type Signed struct {
	ID          string `json:"id"`
	SHA256      string `json:"sha256"`
	KeyID       string `json:"key_id"`
	EvidenceKey string `json:"evidence_key,omitempty"`
	AuditSeq    int64  `json:"audit_seq"`
	Revoked     int    `json:"revoked"`
	FlagsClosed int    `json:"flags_closed"`
	// File is the signed document (review.json).
	File []byte `json:"-"`
}

// Sign signs open review id (step-up: a fresh TOTP as stepUpCode, or ""
// to spend a grant made by auth.Service.StepUpFor on SignRequest). Every
// line must be decided (ErrUndecided). In one transaction it applies every
// revocation (disable the user, revoke the token, close the support
// ticket, restore the role before an unapproved grant), each audited with
// its usual action and the review's id, closes the review flags the
// review covers, stores the signed document and records review.sign; with
// a vault, that transaction is the one that records the document as
// evidence (tenants/<tenant>/scans/access-reviews/review-<id>.json).
func (s *Service) Sign(ctx context.Context, p auth.Principal, tenant, id, stepUpCode string) (Signed, error) {
	pin, err := s.gate.Authorize(ctx, p, auth.OpReviewSign, tenant)
	if err != nil {
		return Signed{}, err
	}
	rs, ar, err := s.get(ctx, p, pin, auth.OpReviewSign, id)
	if err != nil {
		return Signed{}, err
	}
	if ar.Status != store.ReviewOpen {
		return Signed{}, fmt.Errorf("sign review %s: %w", id, ErrNotOpen)
	}
	var doc verify.AccessReview
	if err := json.Unmarshal(ar.Snapshot, &doc); err != nil {
		return Signed{}, fmt.Errorf("review %s: %w", id, err)
	}
	ds, err := rs.Decisions(ctx, s.st.Reader(), id)
	if err != nil {
		return Signed{}, err
	}
	und, err := merge(&doc, ds)
	if err != nil {
		return Signed{}, err
	}
	if len(und) > 0 {
		return Signed{}, fmt.Errorf("sign review %s: %w: %s", id, ErrUndecided, strings.Join(und, ", "))
	}
	digest := decisionsDigest(ds)
	now := s.now()
	doc.SignedAt = stamp(now)
	doc.Reviewer = verify.Operator{ID: p.UserID, Name: p.Name, Role: p.Role}
	doc.Summary = verify.Summarize(doc)
	doc.Verification = verify.Verification{Command: VerifyCommand, ReportKeyID: keys.ID(s.key.Public().(ed25519.PublicKey))}
	file, err := verify.SignReview(doc, s.key)
	if err != nil {
		return Signed{}, fmt.Errorf("sign review %s: %w", id, err)
	}
	sum := sha256.Sum256(file)
	out := Signed{ID: id, SHA256: hex.EncodeToString(sum[:]), KeyID: doc.Verification.ReportKeyID, File: file}
	apply := func(ctx context.Context, tx *sql.Tx, evidenceKey string) error {
		if err := s.gate.UseStepUp(ctx, tx, p, auth.OpReviewSign, SignRequest(pin, id, digest), stepUpCode); err != nil {
			return err
		}
		// The decisions signed must be the decisions applied.
		cur, err := rs.Decisions(ctx, tx, id)
		if err != nil {
			return err
		}
		if decisionsDigest(cur) != digest {
			return fmt.Errorf("sign review %s: %w", id, ErrChanged)
		}
		if out.Revoked, out.FlagsClosed, err = s.apply(ctx, tx, p, pin, doc); err != nil {
			return err
		}
		err = rs.MarkSigned(ctx, tx, store.AccessReview{ID: id, SignedBy: p.UserID, SignedAt: now, Document: file, SHA256: out.SHA256, EvidenceKey: evidenceKey})
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("sign review %s: %w", id, ErrNotOpen)
		}
		if err != nil {
			return err
		}
		e, err := s.rec.Record(ctx, tx, entry(p, pin, audit.ActReviewSign, "review:"+id, map[string]any{
			"sha256": out.SHA256, "key_id": out.KeyID, "keep": doc.Summary.Keep, "revoke": doc.Summary.Revoke,
			"revocations_applied": out.Revoked, "flags_closed": out.FlagsClosed, "evidence_key": evidenceKey}))
		out.AuditSeq = e.Seq
		return err
	}
	within := func(ctx context.Context, tx *sql.Tx, e vault.SpoolEntry) error {
		out.EvidenceKey = e.Key
		return apply(ctx, tx, e.Key)
	}
	switch {
	case s.spool != nil && pin != "":
		_, err = s.spool.Submit(ctx, p, pin, EvidenceScan, "review-"+id+".json", bytes.NewReader(file), within)
	case s.spool != nil:
		// The appliance-admin review belongs to no tenant:
		// appliance/reviews/review-<id>.json.
		_, err = s.spool.SubmitAppliance(ctx, p, "review-"+id+".json", bytes.NewReader(file), within)
	default:
		err = s.st.InTx(ctx, func(tx *sql.Tx) error { return apply(ctx, tx, "") })
	}
	if err != nil {
		return Signed{}, s.gate.StepUpRefused(ctx, p, pin, auth.OpReviewSign, err)
	}
	return out, nil
}

// apply carries out doc's revocations and closes its flags in tx, each
// audited with the action such a change always has and the review's id.
// Something already gone (a user disabled, a token revoked or a ticket
// closed since the snapshot) is skipped: the decision still stands in
// the document.
func (s *Service) apply(ctx context.Context, tx *sql.Tx, p auth.Principal, pin string, doc verify.AccessReview) (revoked, closed int, err error) {
	tokens := map[string]verify.ReviewToken{}
	for _, t := range doc.Tokens {
		tokens[t.ID] = t
	}
	keys := map[string]verify.ReviewSecurityKey{}
	for _, k := range doc.SecurityKeys {
		keys[k.ID] = k
	}
	now := s.now()
	why := map[string]any{"review": doc.ID}
	with := func(k string, v any) map[string]any { m := map[string]any{"review": doc.ID}; m[k] = v; return m }
	// Flags first: restoring a role and then disabling the same user (both
	// revoked) leaves the user disabled either way.
	lines := slices.Clone(doc.Lines)
	slices.SortStableFunc(lines, func(a, b verify.ReviewLine) int {
		return strings.Compare(order(a.Item), order(b.Item))
	})
	for _, l := range lines {
		kind, obj, _ := strings.Cut(l.Item, ":")
		switch kind + ":" {
		case ItemFlag:
			did, err := s.applyFlag(ctx, tx, p, pin, obj, l.Decision == verify.DecisionRevoke, doc.ID)
			if err != nil {
				return 0, 0, err
			}
			closed++
			if did {
				revoked++
			}
			continue
		}
		if l.Decision != verify.DecisionRevoke {
			continue
		}
		switch kind + ":" {
		case ItemUser:
			u, err := s.st.UserByID(ctx, obj)
			if err != nil {
				return 0, 0, err
			}
			if u.Disabled || u.TenantID != pin {
				continue
			}
			if pin == "" {
				err = s.st.DisableAdmin(ctx, tx, obj)
			} else {
				ts, terr := s.st.Tenant(pin)
				if terr != nil {
					return 0, 0, terr
				}
				err = ts.DisableUser(ctx, tx, obj)
			}
			if err != nil {
				return 0, 0, err
			}
			if err := s.st.AddUserChange(ctx, tx, store.UserChange{UserID: obj, TenantID: pin, Change: store.ChangeDisable, Role: u.Role, ChangedBy: p.UserID, ChangedAt: now}); err != nil {
				return 0, 0, err
			}
			n, err := s.st.DeleteUserSessions(ctx, tx, obj)
			if err != nil {
				return 0, 0, err
			}
			if _, err := s.rec.Record(ctx, tx, entry(p, pin, audit.ActUserDisable, obj, with("sessions_ended", n))); err != nil {
				return 0, 0, err
			}
		case ItemToken:
			t, ok := tokens[obj]
			if !ok {
				return 0, 0, fmt.Errorf("token %s: %w", obj, errUnknownItem)
			}
			at, err := s.st.AuthTenant(t.Tenant)
			if err != nil {
				return 0, 0, err
			}
			if err := at.RevokeToken(ctx, tx, obj, now); errors.Is(err, store.ErrNotFound) {
				continue
			} else if err != nil {
				return 0, 0, err
			}
			if _, err := s.rec.Record(ctx, tx, entry(p, t.Tenant, audit.ActTokenRevoke, obj, with("name", t.Name))); err != nil {
				return 0, 0, err
			}
		case ItemSecurityKey:
			k, ok := keys[obj]
			if !ok {
				return 0, 0, fmt.Errorf("security key %s: %w", obj, errUnknownItem)
			}
			if err := s.st.DeleteWebAuthnKey(ctx, tx, k.UserID, obj); errors.Is(err, store.ErrNotFound) {
				continue
			} else if err != nil {
				return 0, 0, err
			}
			det := with("user", k.UserID)
			det["name"] = k.Name
			if _, err := s.rec.Record(ctx, tx, entry(p, pin, audit.ActAuthKeyRemove, obj, det)); err != nil {
				return 0, 0, err
			}
		case ItemTicket:
			at, err := s.st.AuthTenant(pin)
			if err != nil {
				return 0, 0, err
			}
			if err := at.CloseSupportTicket(ctx, tx, obj, now); errors.Is(err, store.ErrNotFound) {
				continue
			} else if err != nil {
				return 0, 0, err
			}
			if _, err := s.rec.Record(ctx, tx, entry(p, pin, audit.ActSupportClose, obj, why)); err != nil {
				return 0, 0, err
			}
		default:
			return 0, 0, fmt.Errorf("line %q: %w", l.Item, errUnknownItem)
		}
		revoked++
	}
	return revoked, closed, nil
}

// order sorts flags before everything else in apply.
func order(item string) string {
	if strings.HasPrefix(item, ItemFlag) {
		return "0" + item
	}
	return "1" + item
}

// applyFlag closes review flag id; with revoke, it first undoes the
// flagged grant (restores the role held before it, or disables a user
// created with it), unless the user no longer holds that role.
func (s *Service) applyFlag(ctx context.Context, tx *sql.Tx, p auth.Principal, pin, id string, revoke bool, reviewID string) (bool, error) {
	at, err := s.st.AuthTenant(pin)
	if err != nil {
		return false, err
	}
	did := false
	if revoke {
		fs, err := at.ReviewFlags(ctx, tx, true)
		if err != nil {
			return false, err
		}
		i := slices.IndexFunc(fs, func(f store.ReviewFlag) bool { return f.ID == id })
		if i < 0 {
			return false, fmt.Errorf("review flag %s: %w", id, store.ErrNotFound)
		}
		f := fs[i]
		ts, err := s.st.Tenant(pin)
		if err != nil {
			return false, err
		}
		u, err := ts.User(ctx, f.UserID)
		if err != nil {
			return false, err
		}
		if u.Role == f.Role && !u.Disabled {
			to, err := s.revertRole(ctx, f)
			if err != nil {
				return false, err
			}
			now := s.now()
			change, action, det := store.ChangeRole, audit.ActUserRoleChange, map[string]any{"review": reviewID, "flag": id, "from": u.Role, "to": to}
			if to == "" {
				change, action, det = store.ChangeDisable, audit.ActUserDisable, map[string]any{"review": reviewID, "flag": id}
				err = ts.DisableUser(ctx, tx, u.ID)
			} else {
				err = ts.SetUserRole(ctx, tx, u.ID, to)
			}
			if err != nil {
				return false, err
			}
			role := to
			if role == "" {
				role = u.Role
			}
			if err := s.st.AddUserChange(ctx, tx, store.UserChange{UserID: u.ID, TenantID: pin, Change: change, Role: role, ChangedBy: p.UserID, ChangedAt: now}); err != nil {
				return false, err
			}
			n, err := s.st.DeleteUserSessions(ctx, tx, u.ID)
			if err != nil {
				return false, err
			}
			det["sessions_ended"] = n
			if _, err := s.rec.Record(ctx, tx, entry(p, pin, action, u.ID, det)); err != nil {
				return false, err
			}
			did = true
		}
	}
	if err := at.CloseReviewFlag(ctx, tx, id, p.UserID, s.now()); err != nil {
		return false, err
	}
	return did, nil
}

// Download returns signed review id as "json" (the signed file), "html"
// or "pdf", with its media type.
func (s *Service) Download(ctx context.Context, p auth.Principal, tenant, id, format string) ([]byte, string, error) {
	pin, err := s.gate.Authorize(ctx, p, auth.OpReviewRead, tenant)
	if err != nil {
		return nil, "", err
	}
	_, ar, err := s.get(ctx, p, pin, auth.OpReviewRead, id)
	if err != nil {
		return nil, "", err
	}
	if ar.Status != store.ReviewSigned {
		return nil, "", fmt.Errorf("download review %s: %w", id, ErrNotSigned)
	}
	var buf bytes.Buffer
	switch format {
	case "json", "":
		return ar.Document, "application/json", nil
	case "html":
		err = s.render.HTML(&buf, ar.Document)
		return buf.Bytes(), "text/html; charset=utf-8", err
	case "pdf":
		err = s.render.PDF(&buf, ar.Document)
		return buf.Bytes(), "application/pdf", err
	}
	return nil, "", fmt.Errorf("download review %s: %w: format %q (want json, html or pdf)", id, ErrInvalid, format)
}
