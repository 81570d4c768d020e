package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// This file holds the queries of the auth tables (migrations 0003 and
// 0005_auth_hardening). Two kinds:
//
//   - Queries keyed by a user id or a secret's hash (sessions, TOTP state,
//     recovery codes, step-ups, events) are methods of Store. They run before
//     the caller's tenant is known (login, cookie lookup) or on the
//     authenticated user's own rows; appliance admins, who have no tenant,
//     use them too. They never list another tenant's rows.
//   - Tenant-owned rows (API tokens, approvals, support tickets) are reached
//     only through an AuthTenant handle, which binds "tenant_id = ?" to every
//     statement, like TenantStore. TestAuthTenantIsolation proves it for
//     every method.

// nanos converts an instant to the INTEGER stored in auth tables.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromNanos converts a stored INTEGER back; 0 is the zero time.
func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// UserByID returns any user by id, whatever the tenant. The auth service uses
// it to resolve an authenticated session or token to its user; it never
// returns rows to another tenant's caller.
func (s *Store) UserByID(ctx context.Context, id string) (User, error) {
	return s.scanUser(s.reads.QueryRowContext(ctx, userCols+` WHERE id = ?`, id))
}

// UserByLoginName returns the user with the (appliance-wide unique) name, for
// the login form, which comes before any tenant is known.
func (s *Store) UserByLoginName(ctx context.Context, name string) (User, error) {
	return s.scanUser(s.reads.QueryRowContext(ctx, userCols+` WHERE name = ?`, name))
}

// SetUserTOTP stores a sealed TOTP secret for user id and marks it confirmed
// or not.
func (s *Store) SetUserTOTP(ctx context.Context, tx *sql.Tx, id string, sealed []byte, confirmed bool) error {
	res, err := tx.ExecContext(ctx, `UPDATE users SET totp_sealed = ?, totp_confirmed = ? WHERE id = ?`, sealed, confirmed, id)
	return affected("set totp", res, err)
}

// SetUserPassword replaces user id's password hash.
func (s *Store) SetUserPassword(ctx context.Context, tx *sql.Tx, id, hash string, mustChange bool) error {
	res, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ?, must_change_password = ? WHERE id = ?`, hash, mustChange, id)
	return affected("set password", res, err)
}

// AuthState is a user's login and TOTP bookkeeping.
type AuthState struct {
	UserID       string
	TOTPLastStep int64
	FailedLogins int
	Lockouts     int
	LockedUntil  time.Time
}

// AuthState returns user id's state; a user never seen has the zero state.
func (s *Store) AuthState(ctx context.Context, q Querier, id string) (AuthState, error) {
	st := AuthState{UserID: id}
	var locked int64
	err := q.QueryRowContext(ctx, `SELECT totp_last_step, failed_logins, lockouts, locked_until FROM auth_user_state WHERE user_id = ?`, id).
		Scan(&st.TOTPLastStep, &st.FailedLogins, &st.Lockouts, &locked)
	if errors.Is(err, sql.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return AuthState{}, fmt.Errorf("auth state: %w", err)
	}
	st.LockedUntil = fromNanos(locked)
	return st, nil
}

// SetLoginState records failed-login bookkeeping for a user.
func (s *Store) SetLoginState(ctx context.Context, tx *sql.Tx, st AuthState) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO auth_user_state (user_id, failed_logins, lockouts, locked_until) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET failed_logins = excluded.failed_logins, lockouts = excluded.lockouts, locked_until = excluded.locked_until`,
		st.UserID, st.FailedLogins, st.Lockouts, nanos(st.LockedUntil))
	if err != nil {
		return fmt.Errorf("set login state: %w", err)
	}
	return nil
}

// ErrStale means a compare-and-set found newer state: a TOTP step at or
// before the last accepted one, a step-up already used, a security key's
// signature counter at or below the stored one.
var ErrStale = errors.New("already used")

// AdvanceTOTPStep records step as user id's last accepted TOTP step, only if
// it is later than the stored one. The check and the write are one statement
// inside the caller's transaction, so two concurrent uses of one code cannot
// both succeed.
func (s *Store) AdvanceTOTPStep(ctx context.Context, tx *sql.Tx, id string, step int64) error {
	res, err := tx.ExecContext(ctx, `INSERT INTO auth_user_state (user_id, totp_last_step) VALUES (?, ?)
		ON CONFLICT (user_id) DO UPDATE SET totp_last_step = excluded.totp_last_step WHERE totp_last_step < excluded.totp_last_step`, id, step)
	if err != nil {
		return fmt.Errorf("advance totp step: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("advance totp step: %w", ErrStale)
	}
	return nil
}

// ReplaceRecoveryCodes replaces user id's recovery codes with hashes.
func (s *Store) ReplaceRecoveryCodes(ctx context.Context, tx *sql.Tx, id string, hashes [][]byte) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM auth_recovery_codes WHERE user_id = ?`, id); err != nil {
		return fmt.Errorf("replace recovery codes: %w", err)
	}
	for _, h := range hashes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO auth_recovery_codes (user_id, code_hash) VALUES (?, ?)`, id, h); err != nil {
			return fmt.Errorf("replace recovery codes: %w", err)
		}
	}
	return nil
}

// UseRecoveryCode marks user id's unused code with hash as used at now. It
// returns ErrNotFound for an unknown or already used code.
func (s *Store) UseRecoveryCode(ctx context.Context, tx *sql.Tx, id string, hash []byte, now time.Time) error {
	res, err := tx.ExecContext(ctx, `UPDATE auth_recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at = 0`, nanos(now), id, hash)
	return affected("use recovery code", res, err)
}

// RecoveryCodesLeft counts user id's unused recovery codes.
func (s *Store) RecoveryCodesLeft(ctx context.Context, id string) (int, error) {
	var n int
	err := s.reads.QueryRowContext(ctx, `SELECT count(*) FROM auth_recovery_codes WHERE user_id = ? AND used_at = 0`, id).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("recovery codes: %w", err)
	}
	return n, nil
}

// Session is a console session row.
type Session struct {
	ID        string
	IDHash    []byte
	UserID    string
	Stage     string
	CreatedAt time.Time
	LastSeen  time.Time
	ExpiresAt time.Time
	IP        string
	UserAgent string
}

// CreateSession inserts a session.
func (s *Store) CreateSession(ctx context.Context, tx *sql.Tx, se Session) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO auth_sessions (id, id_hash, user_id, stage, created_at, last_seen, expires_at, ip, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		se.ID, se.IDHash, se.UserID, se.Stage, nanos(se.CreatedAt), nanos(se.LastSeen), nanos(se.ExpiresAt), se.IP, se.UserAgent)
	if err != nil {
		return fmt.Errorf("create session: %w", conflict(err))
	}
	return nil
}

// SessionByHash finds the session whose secret hashes to h.
func (s *Store) SessionByHash(ctx context.Context, q Querier, h []byte) (Session, error) {
	var se Session
	var created, seen, expires int64
	err := q.QueryRowContext(ctx, `SELECT id, id_hash, user_id, stage, created_at, last_seen, expires_at, ip, user_agent FROM auth_sessions WHERE id_hash = ?`, h).
		Scan(&se.ID, &se.IDHash, &se.UserID, &se.Stage, &created, &seen, &expires, &se.IP, &se.UserAgent)
	if err != nil {
		return Session{}, fmt.Errorf("session: %w", notFound(err))
	}
	se.CreatedAt, se.LastSeen, se.ExpiresAt = fromNanos(created), fromNanos(seen), fromNanos(expires)
	return se, nil
}

// TouchSession records activity on session id at now, unless activity
// after notBefore is already recorded (the caller passes now minus a
// minute): concurrent requests of one session that all saw an old
// last_seen then write it once, not once each. A session that no longer
// exists is not an error here; the next request will not find it.
func (s *Store) TouchSession(ctx context.Context, tx *sql.Tx, id string, now, notBefore time.Time) error {
	if _, err := tx.ExecContext(ctx, `UPDATE auth_sessions SET last_seen = ? WHERE id = ? AND last_seen <= ?`, nanos(now), id, nanos(notBefore)); err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	return nil
}

// DeleteSession removes session id.
func (s *Store) DeleteSession(ctx context.Context, tx *sql.Tx, id string) error {
	res, err := tx.ExecContext(ctx, `DELETE FROM auth_sessions WHERE id = ?`, id)
	return affected("delete session", res, err)
}

// DeleteUserSessions removes every session of user id and returns how many.
func (s *Store) DeleteUserSessions(ctx context.Context, tx *sql.Tx, id string) (int64, error) {
	res, err := tx.ExecContext(ctx, `DELETE FROM auth_sessions WHERE user_id = ?`, id)
	if err != nil {
		return 0, fmt.Errorf("delete sessions: %w", err)
	}
	return res.RowsAffected()
}

// UserSessions lists user id's sessions, newest first.
func (s *Store) UserSessions(ctx context.Context, id string) ([]Session, error) {
	rows, err := s.reads.QueryContext(ctx, `SELECT id, id_hash, user_id, stage, created_at, last_seen, expires_at, ip, user_agent FROM auth_sessions WHERE user_id = ? ORDER BY created_at DESC`, id)
	if err != nil {
		return nil, fmt.Errorf("sessions: %w", err)
	}
	defer rows.Close()
	var out []Session
	for rows.Next() {
		var se Session
		var created, seen, expires int64
		if err := rows.Scan(&se.ID, &se.IDHash, &se.UserID, &se.Stage, &created, &seen, &expires, &se.IP, &se.UserAgent); err != nil {
			return nil, fmt.Errorf("sessions: %w", err)
		}
		se.CreatedAt, se.LastSeen, se.ExpiresAt = fromNanos(created), fromNanos(seen), fromNanos(expires)
		out = append(out, se)
	}
	return out, rows.Err()
}

// DeleteExpiredSessions removes sessions past their absolute expiry or idle
// since before idleBefore.
func (s *Store) DeleteExpiredSessions(ctx context.Context, tx *sql.Tx, now, idleBefore time.Time) (int64, error) {
	res, err := tx.ExecContext(ctx, `DELETE FROM auth_sessions WHERE expires_at <= ? OR last_seen < ?`, nanos(now), nanos(idleBefore))
	if err != nil {
		return 0, fmt.Errorf("expire sessions: %w", err)
	}
	return res.RowsAffected()
}

// StepUp is a step-up grant row.
type StepUp struct {
	ID            string
	UserID        string
	Operation     string
	RequestSHA256 []byte
	CreatedAt     time.Time
	ExpiresAt     time.Time
	UsedAt        time.Time
}

// CreateStepUp inserts a step-up grant.
func (s *Store) CreateStepUp(ctx context.Context, tx *sql.Tx, g StepUp) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO auth_stepups (id, user_id, operation, request_sha256, created_at, expires_at, used_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		g.ID, g.UserID, g.Operation, g.RequestSHA256, nanos(g.CreatedAt), nanos(g.ExpiresAt), nanos(g.UsedAt))
	if err != nil {
		return fmt.Errorf("create step-up: %w", conflict(err))
	}
	return nil
}

// ConsumeStepUp marks one unused, unexpired grant of user id for operation
// and request hash as used at now, and returns its id. ErrNotFound means
// there is none.
func (s *Store) ConsumeStepUp(ctx context.Context, tx *sql.Tx, userID, operation string, requestSHA256 []byte, now time.Time) (string, error) {
	var id string
	err := tx.QueryRowContext(ctx, `SELECT id FROM auth_stepups WHERE user_id = ? AND operation = ? AND request_sha256 = ? AND used_at = 0 AND expires_at > ? ORDER BY created_at LIMIT 1`,
		userID, operation, requestSHA256, nanos(now)).Scan(&id)
	if err != nil {
		return "", fmt.Errorf("step-up: %w", notFound(err))
	}
	res, err := tx.ExecContext(ctx, `UPDATE auth_stepups SET used_at = ? WHERE id = ? AND used_at = 0`, nanos(now), id)
	if err := affected("consume step-up", res, err); err != nil {
		return "", err
	}
	return id, nil
}

// Event kinds counted in auth_events.
const (
	EventLoginFailed = "login.failed"
	EventScanRequest = "scan.request"
	EventExport      = "evidence.export"
)

// AddEvent records one activity event.
func (s *Store) AddEvent(ctx context.Context, tx *sql.Tx, kind, userID, ip string, at time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO auth_events (kind, user_id, ip, at) VALUES (?, ?, ?, ?)`, kind, userID, ip, nanos(at))
	if err != nil {
		return fmt.Errorf("add event: %w", err)
	}
	return nil
}

// CountUserEvents counts user id's events of kind at or after since.
func (s *Store) CountUserEvents(ctx context.Context, q Querier, kind, userID string, since time.Time) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM auth_events WHERE kind = ? AND user_id = ? AND at >= ?`, kind, userID, nanos(since)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}

// CountIPEvents counts events of kind from ip at or after since.
func (s *Store) CountIPEvents(ctx context.Context, q Querier, kind, ip string, since time.Time) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM auth_events WHERE kind = ? AND ip = ? AND at >= ?`, kind, ip, nanos(since)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}

// PruneEvents deletes events before cutoff and step-up grants expired before
// cutoff.
func (s *Store) PruneEvents(ctx context.Context, tx *sql.Tx, cutoff time.Time) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM auth_events WHERE at < ?`, nanos(cutoff)); err != nil {
		return fmt.Errorf("prune events: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM auth_stepups WHERE expires_at < ?`, nanos(cutoff)); err != nil {
		return fmt.Errorf("prune step-ups: %w", err)
	}
	return nil
}

// LastAnomalyAlert returns when user id was last alerted for kind (zero if
// never).
func (s *Store) LastAnomalyAlert(ctx context.Context, tx *sql.Tx, userID, kind string) (time.Time, error) {
	var n int64
	err := tx.QueryRowContext(ctx, `SELECT alerted_at FROM auth_anomaly_alerts WHERE user_id = ? AND kind = ?`, userID, kind).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("last anomaly alert: %w", err)
	}
	return fromNanos(n), nil
}

// SetAnomalyAlert records an alert for user id and kind at at.
func (s *Store) SetAnomalyAlert(ctx context.Context, tx *sql.Tx, userID, kind string, at time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO auth_anomaly_alerts (user_id, kind, alerted_at) VALUES (?, ?, ?)
		ON CONFLICT (user_id, kind) DO UPDATE SET alerted_at = excluded.alerted_at`, userID, kind, nanos(at))
	if err != nil {
		return fmt.Errorf("set anomaly alert: %w", err)
	}
	return nil
}

// TokenByHash finds the API token whose secret hashes to h. The caller checks
// expiry and revocation, so that it can say why a token was refused.
func (s *Store) TokenByHash(ctx context.Context, h []byte) (Token, error) {
	return scanToken(s.reads.QueryRowContext(ctx, tokenCols+` WHERE token_hash = ?`, h))
}

// ApprovalTenant returns the tenant that owns approval id. It lets a caller
// that holds only the request id (the scan worker, the evidence exporter)
// open the right tenant handle; it reveals nothing else.
func (s *Store) ApprovalTenant(ctx context.Context, id string) (string, error) {
	var t string
	if err := s.reads.QueryRowContext(ctx, `SELECT tenant_id FROM auth_approvals WHERE id = ?`, id).Scan(&t); err != nil {
		return "", fmt.Errorf("approval %q: %w", id, notFound(err))
	}
	return t, nil
}

// ActiveSupportTicket returns the open, unexpired support ticket granted to
// support user userID at now, whatever its tenant: the ticket is what pins
// the support user to a tenant.
func (s *Store) ActiveSupportTicket(ctx context.Context, userID string, now time.Time) (SupportTicket, error) {
	return scanTicket(s.reads.QueryRowContext(ctx, ticketCols+` WHERE support_user_id = ? AND closed_at = 0 AND expires_at > ? ORDER BY opened_at DESC LIMIT 1`, userID, nanos(now)))
}

// ExpiredSupportTickets lists tickets still open but past their expiry at now,
// so the service can close them and audit the end.
func (s *Store) ExpiredSupportTickets(ctx context.Context, now time.Time) ([]SupportTicket, error) {
	rows, err := s.reads.QueryContext(ctx, ticketCols+` WHERE closed_at = 0 AND expires_at <= ? ORDER BY expires_at`, nanos(now))
	if err != nil {
		return nil, fmt.Errorf("expired tickets: %w", err)
	}
	defer rows.Close()
	return collect(rows, scanTicket)
}

// Querier is a *sql.DB or *sql.Tx: reads that must see the caller's
// transaction take one.
type Querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Reader returns the database as a Querier for reads outside a
// transaction; its statements are prepared once and reused (StmtCache).
func (s *Store) Reader() Querier { return s.reads }

// AuthTenant returns the handle for the auth tables' tenant-owned rows
// (API tokens, approvals, support tickets) of tenant id.
func (s *Store) AuthTenant(id string) (*AuthTenant, error) {
	if strings.TrimSpace(id) == "" {
		return nil, ErrNoTenant
	}
	return &AuthTenant{s: s, id: id}, nil
}

// AuthTenant runs auth queries confined to one tenant: every statement
// carries "tenant_id = ?" bound to the handle's tenant, and no method takes a
// tenant id.
type AuthTenant struct {
	s  *Store
	id string
}

// ID is the tenant this handle is confined to.
func (a *AuthTenant) ID() string { return a.id }

// Token is an API token row (never the secret).
type Token struct {
	ID, TenantID, UserID, Name, Role string
	TokenHash                        []byte
	CreatedAt, ExpiresAt, RevokedAt  time.Time
	// LastUsedAt is the token's last use, kept to the minute (migration
	// 0012_access_reviews); zero if never used.
	LastUsedAt time.Time
}

const tokenCols = `SELECT id, tenant_id, user_id, name, role, token_hash, created_at, expires_at, revoked_at, last_used_at FROM auth_tokens`

func scanToken(r scanner) (Token, error) {
	var t Token
	var c, e, rv, lu int64
	if err := r.Scan(&t.ID, &t.TenantID, &t.UserID, &t.Name, &t.Role, &t.TokenHash, &c, &e, &rv, &lu); err != nil {
		return Token{}, fmt.Errorf("token: %w", notFound(err))
	}
	t.CreatedAt, t.ExpiresAt, t.RevokedAt, t.LastUsedAt = fromNanos(c), fromNanos(e), fromNanos(rv), fromNanos(lu)
	return t, nil
}

// CreateToken inserts an API token in the tenant.
func (a *AuthTenant) CreateToken(ctx context.Context, tx *sql.Tx, t Token) (Token, error) {
	t.TenantID = a.id
	_, err := tx.ExecContext(ctx, `INSERT INTO auth_tokens (id, tenant_id, user_id, name, role, token_hash, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.TenantID, t.UserID, t.Name, t.Role, t.TokenHash, nanos(t.CreatedAt), nanos(t.ExpiresAt), nanos(t.RevokedAt))
	if err != nil {
		return Token{}, fmt.Errorf("create token: %w", conflict(err))
	}
	return t, nil
}

// Token returns the tenant's token id.
func (a *AuthTenant) Token(ctx context.Context, id string) (Token, error) {
	return scanToken(a.s.reads.QueryRowContext(ctx, tokenCols+` WHERE tenant_id = ? AND id = ?`, a.id, id))
}

// ListTokens lists the tenant's tokens, newest first.
func (a *AuthTenant) ListTokens(ctx context.Context) ([]Token, error) {
	rows, err := a.s.reads.QueryContext(ctx, tokenCols+` WHERE tenant_id = ? ORDER BY created_at DESC, id`, a.id)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	return collect(rows, scanToken)
}

// RevokeToken marks the tenant's unrevoked token id revoked at now.
func (a *AuthTenant) RevokeToken(ctx context.Context, tx *sql.Tx, id string, now time.Time) error {
	res, err := tx.ExecContext(ctx, `UPDATE auth_tokens SET revoked_at = ? WHERE tenant_id = ? AND id = ? AND revoked_at = 0`, nanos(now), a.id, id)
	return affected("revoke token", res, err)
}

// Approval statuses.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalDenied   = "denied"
	ApprovalVoid     = "void"
	// ApprovalUsed: the approved action ran; an approval authorises one
	// action, never a second.
	ApprovalUsed = "used"
)

// Approval is a dual-approval request row.
type Approval struct {
	ID, TenantID, Kind, RequesterID string
	Request                         []byte
	RequestSHA256                   []byte
	Status                          string
	CreatedAt, ExpiresAt, ClosedAt  time.Time
}

// Grant is one approver's approval of a request.
type Grant struct {
	ApprovalID, TenantID, ApproverID string
	RequestSHA256                    []byte
	GrantedAt                        time.Time
}

const approvalCols = `SELECT id, tenant_id, kind, requester_id, request, request_sha256, status, created_at, expires_at, closed_at FROM auth_approvals`

func scanApproval(r scanner) (Approval, error) {
	var ap Approval
	var c, e, cl int64
	if err := r.Scan(&ap.ID, &ap.TenantID, &ap.Kind, &ap.RequesterID, &ap.Request, &ap.RequestSHA256, &ap.Status, &c, &e, &cl); err != nil {
		return Approval{}, fmt.Errorf("approval: %w", notFound(err))
	}
	ap.CreatedAt, ap.ExpiresAt, ap.ClosedAt = fromNanos(c), fromNanos(e), fromNanos(cl)
	return ap, nil
}

// CreateApproval inserts an approval request in the tenant.
func (a *AuthTenant) CreateApproval(ctx context.Context, tx *sql.Tx, ap Approval) (Approval, error) {
	ap.TenantID = a.id
	_, err := tx.ExecContext(ctx, `INSERT INTO auth_approvals (id, tenant_id, kind, requester_id, request, request_sha256, status, created_at, expires_at, closed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ap.ID, ap.TenantID, ap.Kind, ap.RequesterID, ap.Request, ap.RequestSHA256, ap.Status, nanos(ap.CreatedAt), nanos(ap.ExpiresAt), nanos(ap.ClosedAt))
	if err != nil {
		return Approval{}, fmt.Errorf("create approval: %w", conflict(err))
	}
	return ap, nil
}

// Approval returns the tenant's approval id, read through q (a transaction
// when the caller is about to change it).
func (a *AuthTenant) Approval(ctx context.Context, q Querier, id string) (Approval, error) {
	return scanApproval(q.QueryRowContext(ctx, approvalCols+` WHERE tenant_id = ? AND id = ?`, a.id, id))
}

// ListApprovals lists the tenant's approvals with status (all when empty),
// newest first.
func (a *AuthTenant) ListApprovals(ctx context.Context, status string) ([]Approval, error) {
	rows, err := a.s.reads.QueryContext(ctx, approvalCols+` WHERE tenant_id = ? AND (? = '' OR status = ?) ORDER BY created_at DESC, id`, a.id, status, status)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	defer rows.Close()
	return collect(rows, scanApproval)
}

// CloseApproval moves the tenant's pending approval id to status at now.
func (a *AuthTenant) CloseApproval(ctx context.Context, tx *sql.Tx, id, status string, now time.Time) error {
	res, err := tx.ExecContext(ctx, `UPDATE auth_approvals SET status = ?, closed_at = ? WHERE tenant_id = ? AND id = ? AND status IN ('pending','approved')`, status, nanos(now), a.id, id)
	return affected("close approval", res, err)
}

// UseApproval moves the tenant's approved approval id to used, in the
// transaction of the action it authorises. A request that is no longer
// approved (used by a concurrent action, voided, denied) is ErrNotFound.
func (a *AuthTenant) UseApproval(ctx context.Context, tx *sql.Tx, id string, now time.Time) error {
	res, err := tx.ExecContext(ctx, `UPDATE auth_approvals SET status = 'used', closed_at = ? WHERE tenant_id = ? AND id = ? AND status = 'approved'`, nanos(now), a.id, id)
	return affected("use approval", res, err)
}

// MarkApproved moves the tenant's pending approval id to approved. The
// request stays open (closed_at 0) until it is used, voided or expires.
func (a *AuthTenant) MarkApproved(ctx context.Context, tx *sql.Tx, id string) error {
	res, err := tx.ExecContext(ctx, `UPDATE auth_approvals SET status = 'approved' WHERE tenant_id = ? AND id = ? AND status = 'pending'`, a.id, id)
	return affected("approve", res, err)
}

// AddGrant records an approver's grant on the tenant's approval. A second
// grant by the same approver is ErrConflict.
func (a *AuthTenant) AddGrant(ctx context.Context, tx *sql.Tx, g Grant) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM auth_approvals WHERE tenant_id = ? AND id = ?`, a.id, g.ApprovalID).Scan(&n); err != nil {
		return fmt.Errorf("add grant: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("add grant: %w", ErrNotFound)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO auth_approval_grants (approval_id, tenant_id, approver_id, request_sha256, granted_at) VALUES (?, ?, ?, ?, ?)`,
		g.ApprovalID, a.id, g.ApproverID, g.RequestSHA256, nanos(g.GrantedAt))
	if err != nil {
		return fmt.Errorf("add grant: %w", conflict(err))
	}
	return nil
}

// Grants lists the grants on the tenant's approval id, oldest first.
func (a *AuthTenant) Grants(ctx context.Context, q Querier, id string) ([]Grant, error) {
	rows, err := q.QueryContext(ctx, `SELECT approval_id, tenant_id, approver_id, request_sha256, granted_at FROM auth_approval_grants WHERE tenant_id = ? AND approval_id = ? ORDER BY granted_at, approver_id`, a.id, id)
	if err != nil {
		return nil, fmt.Errorf("grants: %w", err)
	}
	defer rows.Close()
	return collect(rows, func(r scanner) (Grant, error) {
		var g Grant
		var at int64
		if err := r.Scan(&g.ApprovalID, &g.TenantID, &g.ApproverID, &g.RequestSHA256, &at); err != nil {
			return Grant{}, fmt.Errorf("grants: %w", err)
		}
		g.GrantedAt = fromNanos(at)
		return g, nil
	})
}

// SupportTicket grants one support user access to one tenant until ExpiresAt.
type SupportTicket struct {
	ID, TenantID, SupportUserID, OpenedBy, Reason string
	OpenedAt, ExpiresAt, ClosedAt                 time.Time
}

const ticketCols = `SELECT id, tenant_id, support_user_id, opened_by, reason, opened_at, expires_at, closed_at FROM auth_support_tickets`

func scanTicket(r scanner) (SupportTicket, error) {
	var st SupportTicket
	var o, e, c int64
	if err := r.Scan(&st.ID, &st.TenantID, &st.SupportUserID, &st.OpenedBy, &st.Reason, &o, &e, &c); err != nil {
		return SupportTicket{}, fmt.Errorf("support ticket: %w", notFound(err))
	}
	st.OpenedAt, st.ExpiresAt, st.ClosedAt = fromNanos(o), fromNanos(e), fromNanos(c)
	return st, nil
}

// CreateSupportTicket inserts a ticket for the tenant.
func (a *AuthTenant) CreateSupportTicket(ctx context.Context, tx *sql.Tx, st SupportTicket) (SupportTicket, error) {
	st.TenantID = a.id
	_, err := tx.ExecContext(ctx, `INSERT INTO auth_support_tickets (id, tenant_id, support_user_id, opened_by, reason, opened_at, expires_at, closed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		st.ID, st.TenantID, st.SupportUserID, st.OpenedBy, st.Reason, nanos(st.OpenedAt), nanos(st.ExpiresAt), nanos(st.ClosedAt))
	if err != nil {
		return SupportTicket{}, fmt.Errorf("create support ticket: %w", conflict(err))
	}
	return st, nil
}

// SupportTicket returns the tenant's ticket id.
func (a *AuthTenant) SupportTicket(ctx context.Context, id string) (SupportTicket, error) {
	return scanTicket(a.s.reads.QueryRowContext(ctx, ticketCols+` WHERE tenant_id = ? AND id = ?`, a.id, id))
}

// ListSupportTickets lists the tenant's tickets, newest first.
func (a *AuthTenant) ListSupportTickets(ctx context.Context) ([]SupportTicket, error) {
	rows, err := a.s.reads.QueryContext(ctx, ticketCols+` WHERE tenant_id = ? ORDER BY opened_at DESC, id`, a.id)
	if err != nil {
		return nil, fmt.Errorf("list support tickets: %w", err)
	}
	defer rows.Close()
	return collect(rows, scanTicket)
}

// CloseSupportTicket closes the tenant's open ticket id at now.
func (a *AuthTenant) CloseSupportTicket(ctx context.Context, tx *sql.Tx, id string, now time.Time) error {
	res, err := tx.ExecContext(ctx, `UPDATE auth_support_tickets SET closed_at = ? WHERE tenant_id = ? AND id = ? AND closed_at = 0`, nanos(now), a.id, id)
	return affected("close support ticket", res, err)
}

func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// User changes (migration 0005_auth_hardening).
const (
	ChangeCreate    = "create"
	ChangeRole      = "role"
	ChangeDisable   = "disable"
	ChangeTOTPReset = "totp_reset"
)

// UserChange is one change to a user's account or role made by somebody
// else: who (ChangedBy, a user id) and when.
type UserChange struct {
	UserID, TenantID, Change, Role, ChangedBy string
	ChangedAt                                 time.Time
}

// AddUserChange records a change to user c.UserID's account, in the
// transaction that makes it.
func (s *Store) AddUserChange(ctx context.Context, tx *sql.Tx, c UserChange) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO auth_user_changes (user_id, tenant_id, change, role, changed_by, changed_at) VALUES (?, ?, ?, ?, ?, ?)`,
		c.UserID, c.TenantID, c.Change, c.Role, c.ChangedBy, nanos(c.ChangedAt))
	if err != nil {
		return fmt.Errorf("add user change: %w", err)
	}
	return nil
}

// UserChanges lists the recorded changes of user id, oldest first.
func (s *Store) UserChanges(ctx context.Context, q Querier, id string) ([]UserChange, error) {
	rows, err := q.QueryContext(ctx, `SELECT user_id, tenant_id, change, role, changed_by, changed_at FROM auth_user_changes WHERE user_id = ? ORDER BY changed_at, rowid`, id)
	if err != nil {
		return nil, fmt.Errorf("user changes: %w", err)
	}
	defer rows.Close()
	return collect(rows, func(r scanner) (UserChange, error) {
		var c UserChange
		var at int64
		if err := r.Scan(&c.UserID, &c.TenantID, &c.Change, &c.Role, &c.ChangedBy, &at); err != nil {
			return UserChange{}, fmt.Errorf("user changes: %w", err)
		}
		c.ChangedAt = fromNanos(at)
		return c, nil
	})
}

// Throttle is the failed-password state of one (login name, source
// address) pair; NameSHA256 is the SHA-256 of the name as typed.
type Throttle struct {
	NameSHA256   []byte
	IP           string
	Failures     int
	LastFailure  time.Time
	BlockedUntil time.Time
}

// LoginThrottle returns the pair's state; a pair never seen has the zero
// state (with the key filled in).
func (s *Store) LoginThrottle(ctx context.Context, q Querier, nameSHA256 []byte, ip string) (Throttle, error) {
	th := Throttle{NameSHA256: nameSHA256, IP: ip}
	var last, blocked int64
	err := q.QueryRowContext(ctx, `SELECT failures, last_failure, blocked_until FROM auth_login_throttle WHERE name_sha256 = ? AND ip = ?`, nameSHA256, ip).
		Scan(&th.Failures, &last, &blocked)
	if errors.Is(err, sql.ErrNoRows) {
		return th, nil
	}
	if err != nil {
		return Throttle{}, fmt.Errorf("login throttle: %w", err)
	}
	th.LastFailure, th.BlockedUntil = fromNanos(last), fromNanos(blocked)
	return th, nil
}

// SetLoginThrottle stores the pair's state.
func (s *Store) SetLoginThrottle(ctx context.Context, tx *sql.Tx, th Throttle) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO auth_login_throttle (name_sha256, ip, failures, last_failure, blocked_until) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (name_sha256, ip) DO UPDATE SET failures = excluded.failures, last_failure = excluded.last_failure, blocked_until = excluded.blocked_until`,
		th.NameSHA256, th.IP, th.Failures, nanos(th.LastFailure), nanos(th.BlockedUntil))
	if err != nil {
		return fmt.Errorf("set login throttle: %w", err)
	}
	return nil
}

// ClearLoginThrottle forgets the pair's failures (after a right password
// from it).
func (s *Store) ClearLoginThrottle(ctx context.Context, tx *sql.Tx, nameSHA256 []byte, ip string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM auth_login_throttle WHERE name_sha256 = ? AND ip = ?`, nameSHA256, ip); err != nil {
		return fmt.Errorf("clear login throttle: %w", err)
	}
	return nil
}

// PruneLoginThrottle deletes pairs whose last failure is before cutoff and
// which are no longer blocked at now.
func (s *Store) PruneLoginThrottle(ctx context.Context, tx *sql.Tx, cutoff, now time.Time) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM auth_login_throttle WHERE last_failure < ? AND blocked_until <= ?`, nanos(cutoff), nanos(now)); err != nil {
		return fmt.Errorf("prune login throttle: %w", err)
	}
	return nil
}

// UserEventSources returns the distinct source addresses of user id's
// events of kind at or after since: how many, and up to limit of them
// (sorted), for the alert's details.
func (s *Store) UserEventSources(ctx context.Context, q Querier, kind, userID string, since time.Time, limit int) (int, []string, error) {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT count(DISTINCT ip) FROM auth_events WHERE kind = ? AND user_id = ? AND at >= ?`, kind, userID, nanos(since)).Scan(&n); err != nil {
		return 0, nil, fmt.Errorf("event sources: %w", err)
	}
	rows, err := q.QueryContext(ctx, `SELECT DISTINCT ip FROM auth_events WHERE kind = ? AND user_id = ? AND at >= ? ORDER BY ip LIMIT ?`, kind, userID, nanos(since), limit)
	if err != nil {
		return 0, nil, fmt.Errorf("event sources: %w", err)
	}
	defer rows.Close()
	ips, err := collect(rows, func(r scanner) (string, error) {
		var ip string
		err := r.Scan(&ip)
		return ip, err
	})
	if err != nil {
		return 0, nil, fmt.Errorf("event sources: %w", err)
	}
	return n, ips, nil
}

// CountAdmins counts the tenant's enabled admins other than except (a user
// id, or "").
func (a *AuthTenant) CountAdmins(ctx context.Context, q Querier, except string) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE tenant_id = ? AND role = 'admin' AND disabled = 0 AND id <> ?`, a.id, except).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count admins: %w", err)
	}
	return n, nil
}

// ReviewFlag marks a privileged role grant for the next access review: it
// was made without a second admin's approval because the tenant had no
// other admin. ReviewedAt is zero while the flag is open.
type ReviewFlag struct {
	ID, TenantID, UserID, Role, GrantedBy, Reason string
	FlaggedAt                                     time.Time
	ReviewedAt                                    time.Time
	ReviewedBy                                    string
}

const reviewFlagCols = `SELECT id, tenant_id, user_id, role, granted_by, reason, flagged_at, reviewed_at, reviewed_by FROM auth_review_flags`

// AddReviewFlag inserts a flag for the tenant.
func (a *AuthTenant) AddReviewFlag(ctx context.Context, tx *sql.Tx, f ReviewFlag) (ReviewFlag, error) {
	f.TenantID = a.id
	_, err := tx.ExecContext(ctx, `INSERT INTO auth_review_flags (id, tenant_id, user_id, role, granted_by, reason, flagged_at, reviewed_at, reviewed_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		f.ID, f.TenantID, f.UserID, f.Role, f.GrantedBy, f.Reason, nanos(f.FlaggedAt), nanos(f.ReviewedAt), f.ReviewedBy)
	if err != nil {
		return ReviewFlag{}, fmt.Errorf("add review flag: %w", conflict(err))
	}
	return f, nil
}

// ReviewFlags lists the tenant's flags, oldest first; open only: those not
// yet reviewed.
func (a *AuthTenant) ReviewFlags(ctx context.Context, q Querier, open bool) ([]ReviewFlag, error) {
	rows, err := q.QueryContext(ctx, reviewFlagCols+` WHERE tenant_id = ? AND (? = 0 OR reviewed_at = 0) ORDER BY flagged_at, id`, a.id, open)
	if err != nil {
		return nil, fmt.Errorf("review flags: %w", err)
	}
	defer rows.Close()
	return collect(rows, func(r scanner) (ReviewFlag, error) {
		var f ReviewFlag
		var fl, rv int64
		if err := r.Scan(&f.ID, &f.TenantID, &f.UserID, &f.Role, &f.GrantedBy, &f.Reason, &fl, &rv, &f.ReviewedBy); err != nil {
			return ReviewFlag{}, fmt.Errorf("review flags: %w", err)
		}
		f.FlaggedAt, f.ReviewedAt = fromNanos(fl), fromNanos(rv)
		return f, nil
	})
}
