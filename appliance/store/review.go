package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// This file holds the queries of access reviews (migration
// 0012_access_reviews): last login and last token use, the reviews
// themselves, their decisions and overdue alerts, and the few account
// changes a signed review applies that no other file needed yet.

// RecordLogin stores a completed login of user id from ip at now, in the
// login's transaction.
func (s *Store) RecordLogin(ctx context.Context, tx *sql.Tx, id, ip string, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO auth_user_state (user_id, last_login_at, last_login_ip) VALUES (?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET last_login_at = excluded.last_login_at, last_login_ip = excluded.last_login_ip`, id, nanos(now), ip)
	if err != nil {
		return fmt.Errorf("record login: %w", err)
	}
	return nil
}

// LastLogin returns user id's last completed login and its address (zero
// and "" if never).
func (s *Store) LastLogin(ctx context.Context, q Querier, id string) (time.Time, string, error) {
	var at int64
	var ip string
	err := q.QueryRowContext(ctx, `SELECT last_login_at, last_login_ip FROM auth_user_state WHERE user_id = ?`, id).Scan(&at, &ip)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, "", nil
	}
	if err != nil {
		return time.Time{}, "", fmt.Errorf("last login: %w", err)
	}
	return fromNanos(at), ip, nil
}

// TouchToken records a use of token id at now, unless a use after
// notBefore is already recorded: the caller passes now minus a minute, so
// a busy token costs one write a minute, not one per request.
func (s *Store) TouchToken(ctx context.Context, tx *sql.Tx, id string, now, notBefore time.Time) error {
	if _, err := tx.ExecContext(ctx, `UPDATE auth_tokens SET last_used_at = ? WHERE id = ? AND last_used_at <= ?`, nanos(now), id, nanos(notBefore)); err != nil {
		return fmt.Errorf("touch token: %w", err)
	}
	return nil
}

// ListAdmins lists the appliance admins (users of no tenant) by name.
func (s *Store) ListAdmins(ctx context.Context) ([]User, error) {
	rows, err := s.reads.QueryContext(ctx, userCols+` WHERE tenant_id IS NULL ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list admins: %w", err)
	}
	defer rows.Close()
	return collect(rows, s.scanUser)
}

// DisableAdmin disables appliance admin id.
func (s *Store) DisableAdmin(ctx context.Context, tx *sql.Tx, id string) error {
	res, err := tx.ExecContext(ctx, `UPDATE users SET disabled = 1 WHERE tenant_id IS NULL AND id = ?`, id)
	return affected("disable admin", res, err)
}

// TokensOfUsers lists the API tokens (of any tenant) held by the users in
// ids, newest first: the appliance-admin review lists the appliance
// admins' tokens wherever they are bound.
func (s *Store) TokensOfUsers(ctx context.Context, ids []string) ([]Token, error) {
	var out []Token
	for _, id := range ids {
		rows, err := s.reads.QueryContext(ctx, tokenCols+` WHERE user_id = ? ORDER BY created_at DESC, id`, id)
		if err != nil {
			return nil, fmt.Errorf("tokens of user: %w", err)
		}
		ts, err := collect(rows, scanToken)
		rows.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, ts...)
	}
	return out, nil
}

// TenantByID returns tenant id.
func (s *Store) TenantByID(ctx context.Context, id string) (Tenant, error) {
	var t Tenant
	err := s.reads.QueryRowContext(ctx, `SELECT id, name, created_at FROM tenants WHERE id = ?`, id).Scan(&t.ID, &t.Name, &t.CreatedAt)
	if err != nil {
		return Tenant{}, fmt.Errorf("tenant %q: %w", id, notFound(err))
	}
	return t, nil
}

// CloseReviewFlag marks the tenant's open review flag id reviewed by user
// by at now, in the signing transaction of the review that covered it.
func (a *AuthTenant) CloseReviewFlag(ctx context.Context, tx *sql.Tx, id, by string, now time.Time) error {
	res, err := tx.ExecContext(ctx, `UPDATE auth_review_flags SET reviewed_at = ?, reviewed_by = ? WHERE tenant_id = ? AND id = ? AND reviewed_at = 0`, nanos(now), by, a.id, id)
	return affected("close review flag", res, err)
}

// Review statuses.
const (
	ReviewOpen   = "open"
	ReviewSigned = "signed"
)

// AccessReview is an access review row.
type AccessReview struct {
	ID, TenantID, Status, StartedBy string
	StartedAt                       time.Time
	Snapshot                        []byte
	SignedBy                        string
	SignedAt                        time.Time
	Document                        []byte
	SHA256, EvidenceKey             string
}

// ReviewDecision is a reviewer's decision on one line of a review.
type ReviewDecision struct {
	ReviewID, Item, Decision, Note, DecidedBy string
	DecidedAt                                 time.Time
}

// Reviews returns the handle for the access reviews of tenant id; "" is
// the appliance-admin review, which belongs to no tenant. Unlike Tenant,
// it accepts "" on purpose: the caller (the review service) has pinned the
// tenant with the permission matrix, which gives "" only to appliance
// admins.
func (s *Store) Reviews(tenant string) *ReviewStore { return &ReviewStore{s: s, id: tenant} }

// ReviewStore runs access-review queries confined to one tenant (or the
// appliance, ""): every statement binds "tenant_id = ?".
type ReviewStore struct {
	s  *Store
	id string
}

// Tenant is the tenant the handle is confined to ("" for the appliance).
func (r *ReviewStore) Tenant() string { return r.id }

const reviewCols = `SELECT id, tenant_id, status, started_by, started_at, snapshot, signed_by, signed_at, COALESCE(document, X''), sha256, evidence_key FROM access_reviews`

func scanReview(r scanner) (AccessReview, error) {
	var ar AccessReview
	var st, sg int64
	if err := r.Scan(&ar.ID, &ar.TenantID, &ar.Status, &ar.StartedBy, &st, &ar.Snapshot, &ar.SignedBy, &sg, &ar.Document, &ar.SHA256, &ar.EvidenceKey); err != nil {
		return AccessReview{}, fmt.Errorf("access review: %w", notFound(err))
	}
	ar.StartedAt, ar.SignedAt = fromNanos(st), fromNanos(sg)
	return ar, nil
}

// Create inserts an open review. A second open review of the same tenant
// is ErrConflict.
func (r *ReviewStore) Create(ctx context.Context, tx *sql.Tx, ar AccessReview) (AccessReview, error) {
	ar.TenantID, ar.Status = r.id, ReviewOpen
	_, err := tx.ExecContext(ctx, `INSERT INTO access_reviews (id, tenant_id, status, started_by, started_at, snapshot) VALUES (?, ?, ?, ?, ?, ?)`,
		ar.ID, ar.TenantID, ar.Status, ar.StartedBy, nanos(ar.StartedAt), ar.Snapshot)
	if err != nil {
		return AccessReview{}, fmt.Errorf("create access review: %w", conflict(err))
	}
	return ar, nil
}

// Get returns review id, read through q.
func (r *ReviewStore) Get(ctx context.Context, q Querier, id string) (AccessReview, error) {
	return scanReview(q.QueryRowContext(ctx, reviewCols+` WHERE tenant_id = ? AND id = ?`, r.id, id))
}

// LatestSigned returns the most recently signed review (ErrNotFound if
// none).
func (r *ReviewStore) LatestSigned(ctx context.Context, q Querier) (AccessReview, error) {
	return scanReview(q.QueryRowContext(ctx, reviewCols+` WHERE tenant_id = ? AND status = 'signed' ORDER BY signed_at DESC, id LIMIT 1`, r.id))
}

// Open returns the open review (ErrNotFound if none).
func (r *ReviewStore) Open(ctx context.Context, q Querier) (AccessReview, error) {
	return scanReview(q.QueryRowContext(ctx, reviewCols+` WHERE tenant_id = ? AND status = 'open'`, r.id))
}

// List lists the reviews, newest first, at most limit.
func (r *ReviewStore) List(ctx context.Context, limit int) ([]AccessReview, error) {
	rows, err := r.s.reads.QueryContext(ctx, reviewCols+` WHERE tenant_id = ? ORDER BY started_at DESC, id LIMIT ?`, r.id, limit)
	if err != nil {
		return nil, fmt.Errorf("list access reviews: %w", err)
	}
	defer rows.Close()
	return collect(rows, scanReview)
}

// Decide stores (or replaces) a decision on an open review's line.
func (r *ReviewStore) Decide(ctx context.Context, tx *sql.Tx, d ReviewDecision) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM access_reviews WHERE tenant_id = ? AND id = ? AND status = 'open'`, r.id, d.ReviewID).Scan(&n); err != nil {
		return fmt.Errorf("decide: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("decide: open review %s: %w", d.ReviewID, ErrNotFound)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO access_review_decisions (review_id, item, decision, note, decided_by, decided_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (review_id, item) DO UPDATE SET decision = excluded.decision, note = excluded.note, decided_by = excluded.decided_by, decided_at = excluded.decided_at`,
		d.ReviewID, d.Item, d.Decision, d.Note, d.DecidedBy, nanos(d.DecidedAt))
	if err != nil {
		return fmt.Errorf("decide: %w", err)
	}
	return nil
}

// Decisions lists review id's decisions by item, read through q.
func (r *ReviewStore) Decisions(ctx context.Context, q Querier, id string) ([]ReviewDecision, error) {
	rows, err := q.QueryContext(ctx, `SELECT d.review_id, d.item, d.decision, d.note, d.decided_by, d.decided_at FROM access_review_decisions d
		JOIN access_reviews r ON r.id = d.review_id WHERE r.tenant_id = ? AND d.review_id = ? ORDER BY d.item`, r.id, id)
	if err != nil {
		return nil, fmt.Errorf("review decisions: %w", err)
	}
	defer rows.Close()
	return collect(rows, func(sc scanner) (ReviewDecision, error) {
		var d ReviewDecision
		var at int64
		if err := sc.Scan(&d.ReviewID, &d.Item, &d.Decision, &d.Note, &d.DecidedBy, &at); err != nil {
			return ReviewDecision{}, fmt.Errorf("review decisions: %w", err)
		}
		d.DecidedAt = fromNanos(at)
		return d, nil
	})
}

// MarkSigned moves open review ar.ID to signed with its document, in the
// signing transaction. A review no longer open is ErrNotFound.
func (r *ReviewStore) MarkSigned(ctx context.Context, tx *sql.Tx, ar AccessReview) error {
	res, err := tx.ExecContext(ctx, `UPDATE access_reviews SET status = 'signed', signed_by = ?, signed_at = ?, document = ?, sha256 = ?, evidence_key = ?
		WHERE tenant_id = ? AND id = ? AND status = 'open'`, ar.SignedBy, nanos(ar.SignedAt), ar.Document, ar.SHA256, ar.EvidenceKey, r.id, ar.ID)
	return affected("sign access review", res, err)
}

// LastOverdueAlert returns the due instant of the last overdue period
// alerted (zero if none).
func (r *ReviewStore) LastOverdueAlert(ctx context.Context, q Querier) (time.Time, error) {
	var n int64
	err := q.QueryRowContext(ctx, `SELECT period_due FROM access_review_alerts WHERE tenant_id = ?`, r.id).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("overdue alert: %w", err)
	}
	return fromNanos(n), nil
}

// SetOverdueAlert records that the overdue period due at periodDue was
// alerted at now.
func (r *ReviewStore) SetOverdueAlert(ctx context.Context, tx *sql.Tx, periodDue, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO access_review_alerts (tenant_id, period_due, alerted_at) VALUES (?, ?, ?)
		ON CONFLICT (tenant_id) DO UPDATE SET period_due = excluded.period_due, alerted_at = excluded.alerted_at`, r.id, nanos(periodDue), nanos(now))
	if err != nil {
		return fmt.Errorf("set overdue alert: %w", err)
	}
	return nil
}
