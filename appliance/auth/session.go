package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// Secret formats. A session id or API token is a prefix and 32 random bytes
// in unpadded base64url. The prefix tells them apart (a token pasted into a
// cookie is refused) and lets secret scanners recognise a leaked token.
const (
	sessionPrefix = "fiqs_"
	tokenPrefix   = "fiqt_"
	secretBytes   = 32
)

// SessionCookieName is the console's session cookie. The __Host- prefix makes
// browsers refuse it unless it is Secure, has Path=/ and no Domain, so a
// sibling host cannot plant or overwrite it (one half of fixation defence;
// the other is a new id at every login step).
const SessionCookieName = "__Host-fiq_session"

// CSRFHeader is the header (or form field "csrf") carrying the CSRF token.
const CSRFHeader = "X-CSRF-Token"

// newSecret returns a new secret with prefix and the SHA-256 it is stored as.
func newSecret(prefix string) (string, []byte, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("new secret: %w", err)
	}
	h := sha256.Sum256(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b), h[:], nil
}

// parseSecret checks s has prefix and exactly secretBytes of base64url, and
// returns the raw bytes. Anything else, including padding, whitespace or a
// longer value, is ErrUnauthenticated.
func parseSecret(prefix, s string) ([]byte, error) {
	if len(s) != len(prefix)+base64.RawURLEncoding.EncodedLen(secretBytes) || !strings.HasPrefix(s, prefix) {
		return nil, ErrUnauthenticated
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s[len(prefix):])
	if err != nil || len(b) != secretBytes {
		return nil, ErrUnauthenticated
	}
	return b, nil
}

// hashSecret returns the stored form of a parsed secret.
func hashSecret(raw []byte) []byte { h := sha256.Sum256(raw); return h[:] }

// SessionCookie returns the cookie carrying a session token: HttpOnly (no
// script can read it), Secure, SameSite=Strict (not sent on cross-site
// requests), Path=/ and no Expires, so it dies with the browser; the
// server enforces idle and absolute timeouts on its own.
func SessionCookie(token string) *http.Cookie {
	return &http.Cookie{Name: SessionCookieName, Value: token, Path: "/", HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode}
}

// ClearSessionCookie returns a cookie that deletes the session cookie.
func ClearSessionCookie() *http.Cookie {
	c := SessionCookie("")
	c.MaxAge = -1
	c.Expires = time.Unix(0, 0)
	return c
}

// CSRFToken returns the CSRF token of a session: an HMAC of a fixed label
// keyed with the session secret. It needs no storage, changes whenever the
// session id rotates, and cannot be computed without the cookie, which
// other sites cannot read. The console puts it in every form and in a
// meta tag for fetch().
func CSRFToken(sessionToken string) (string, error) {
	raw, err := parseSecret(sessionPrefix, sessionToken)
	if err != nil {
		return "", err
	}
	return csrfFor(raw), nil
}

func csrfFor(raw []byte) string {
	m := hmac.New(sha256.New, raw)
	m.Write([]byte("firewalliq csrf v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CheckCSRF compares token with the session's CSRF token in constant time.
func CheckCSRF(sessionToken, token string) error {
	raw, err := parseSecret(sessionPrefix, sessionToken)
	if err != nil {
		return ErrCSRF
	}
	if subtle.ConstantTimeCompare([]byte(csrfFor(raw)), []byte(token)) != 1 {
		return ErrCSRF
	}
	return nil
}

// stateChanging reports whether an HTTP method may change state; RFC 9110
// safe methods do not, every other method (including unknown ones) does.
func stateChanging(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// Login is the state of a login after a step.
type Login struct {
	// Token is the new session secret: set it with SessionCookie. Every
	// step issues a new one and deletes the previous session (rotation).
	Token string
	// Stage is "password" (send a TOTP to VerifyTOTP or a recovery code to
	// UseRecoveryCode), "enrol" (BeginEnrolment, ConfirmEnrolment) or
	// "full" (signed in).
	Stage string
	// CSRF is the session's CSRF token.
	CSRF string
	// SessionID is the session's public id.
	SessionID string
	// MustChangePassword means the user must call ChangePassword before
	// anything else.
	MustChangePassword bool
	ExpiresAt          time.Time
}

// principalOf builds the principal of user u (before support pinning).
func principalOf(u store.User, sessionID string, c Client) Principal {
	return Principal{UserID: u.ID, Name: u.Name, Role: u.Role, TenantID: u.TenantID, HomeTenantID: u.TenantID,
		SessionID: sessionID, MustChangePassword: u.MustChangePassword, Client: c}
}

// newSession inserts a session for u at stage and returns its Login.
func (s *Service) newSession(ctx context.Context, tx *sql.Tx, u store.User, stage string, c Client) (Login, error) {
	tok, h, err := newSecret(sessionPrefix)
	if err != nil {
		return Login{}, err
	}
	now := s.now()
	ttl := s.p.SessionAbsolute
	if stage != "full" {
		ttl = s.p.PendingTTL
	}
	se := store.Session{ID: store.NewID("ses"), IDHash: h, UserID: u.ID, Stage: stage, CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(ttl), IP: c.IP, UserAgent: c.UserAgent}
	if err := s.st.CreateSession(ctx, tx, se); err != nil {
		return Login{}, err
	}
	raw, _ := parseSecret(sessionPrefix, tok)
	return Login{Token: tok, Stage: stage, CSRF: csrfFor(raw), SessionID: se.ID, MustChangePassword: u.MustChangePassword, ExpiresAt: se.ExpiresAt}, nil
}

// promote replaces pending session se with a full session (a new id) and
// audits the completed login.
func (s *Service) promote(ctx context.Context, tx *sql.Tx, se store.Session, u store.User, c Client, factor string) (Login, error) {
	if err := s.st.DeleteSession(ctx, tx, se.ID); err != nil {
		return Login{}, err
	}
	l, err := s.newSession(ctx, tx, u, "full", c)
	if err != nil {
		return Login{}, err
	}
	// A completed login clears the failure count and the lockout backoff.
	if err := s.st.SetLoginState(ctx, tx, store.AuthState{UserID: u.ID}); err != nil {
		return Login{}, err
	}
	// The access review shows each user's last login (at most one write
	// per completed login, which is rare).
	if err := s.st.RecordLogin(ctx, tx, u.ID, c.IP, s.now()); err != nil {
		return Login{}, err
	}
	p := principalOf(u, l.SessionID, c)
	return l, s.append(ctx, tx, p.entry(u.TenantID, audit.ActAuthLogin, u.ID, fields{"factor": factor, "complete": true, "session": l.SessionID}))
}

// pending returns the pending session of token at stage and its user.
func (s *Service) pending(ctx context.Context, token, stage string, c Client) (store.Session, store.User, error) {
	raw, err := parseSecret(sessionPrefix, token)
	if err != nil {
		return store.Session{}, store.User{}, err
	}
	se, err := s.st.SessionByHash(ctx, s.st.Reader(), hashSecret(raw))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return store.Session{}, store.User{}, ErrUnauthenticated
		}
		return store.Session{}, store.User{}, err
	}
	if se.Stage != stage || !s.now().Before(se.ExpiresAt) {
		return store.Session{}, store.User{}, ErrUnauthenticated
	}
	u, err := s.st.UserByID(ctx, se.UserID)
	if err != nil || u.Disabled {
		return store.Session{}, store.User{}, ErrUnauthenticated
	}
	// A lockout earned by wrong codes stops the second factor too.
	st, err := s.st.AuthState(ctx, s.st.Reader(), u.ID)
	if err != nil {
		return store.Session{}, store.User{}, err
	}
	if s.now().Before(st.LockedUntil) {
		return store.Session{}, store.User{}, fmt.Errorf("%w until %s", ErrLockedOut, st.LockedUntil.Format(time.RFC3339))
	}
	return se, u, nil
}

// Login checks a password. previousToken is the session cookie the browser
// sent, if any: it is deleted, never promoted, so an id planted by an
// attacker (session fixation) is worthless. On success the returned Login
// is at stage "password" (TOTP next) or "enrol" (TOTP not yet enrolled).
//
// Refusals: ErrRateLimited (too many failures from c.IP across names, or
// from c.IP for this name: the per pair throttle), ErrUnauthenticated
// (unknown user, disabled user or wrong password: the same answer after
// the same work, one argon2 run), and, only after a right password,
// ErrLockedOut (a lockout earned by wrong second-factor codes). Every
// attempt is audited with c's address and user agent.
func (s *Service) Login(ctx context.Context, name, password string, c Client, previousToken string) (Login, error) {
	now := s.now()
	if previousToken != "" {
		if raw, err := parseSecret(sessionPrefix, previousToken); err == nil {
			if old, err := s.st.SessionByHash(ctx, s.st.Reader(), hashSecret(raw)); err == nil {
				// The browser's previous session ends here (a new login never
				// reuses a session: fixation defence); the end is audited like
				// any other revocation.
				err := s.st.InTx(ctx, func(tx *sql.Tx) error {
					if err := s.st.DeleteSession(ctx, tx, old.ID); err != nil {
						return err
					}
					return s.append(ctx, tx, audit.Entry{ActorID: old.UserID, ActorName: loginObject(name), ActorIP: c.IP, UserAgent: c.UserAgent,
						Action: audit.ActAuthSessionRevoke, Object: "session:" + old.ID,
						Details: jsonDetails(fields{"reason": "replaced by a new login from the same browser"})})
				})
				if err != nil {
					return Login{}, err
				}
			}
		}
	}
	anon := Principal{Name: loginObject(name), Client: c}
	fail := func(u store.User, reason string, cause error) error {
		p := anon
		if u.ID != "" {
			p = principalOf(u, "", c)
		}
		return s.record(ctx, cause, p.entry(u.TenantID, audit.ActAuthLoginFailed, loginObject(name), fields{"reason": reason}))
	}
	n, err := s.st.CountIPEvents(ctx, s.st.Reader(), store.EventLoginFailed, c.IP, now.Add(-s.p.IPWindow))
	if err != nil {
		return Login{}, err
	}
	if n >= s.p.IPMaxFailures {
		return Login{}, fail(store.User{}, "source address rate limited", ErrRateLimited)
	}
	// The dummy hash is made on the first login of any name, so that
	// one-time cost says nothing about the name either.
	dummy := s.dummyHash()
	u, err := s.st.UserByLoginName(ctx, name)
	known := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Login{}, err
	}
	// The (name, address) throttle comes before any password check, and
	// treats unknown names exactly like known ones: the answer and the
	// work are the same, so neither tells which names exist.
	th, err := s.st.LoginThrottle(ctx, s.st.Reader(), nameKey(name), c.IP)
	if err != nil {
		return Login{}, err
	}
	if now.Before(th.BlockedUntil) {
		until := th.BlockedUntil.Format(time.RFC3339)
		return Login{}, fail(u, "name and address throttled until "+until, fmt.Errorf("%w: retry after %s", ErrRateLimited, until))
	}
	// Exactly one argon2 run whatever the name: the user's hash, or for
	// unknown and disabled users a dummy one with the same parameters.
	hash := dummy
	if known && !u.Disabled {
		hash = u.PasswordHash
	}
	verr := s.verify(hash, password)
	switch {
	case !known:
		return Login{}, s.loginFailed(ctx, anon, name, store.User{}, "unknown user", ErrUnauthenticated)
	case u.Disabled:
		return Login{}, s.loginFailed(ctx, anon, name, u, "user disabled", ErrUnauthenticated)
	case verr != nil:
		return Login{}, s.loginFailed(ctx, anon, name, u, "wrong password", ErrUnauthenticated)
	}
	// Only now, to someone who knows the password, does a lockout earned
	// by wrong second-factor codes show.
	st, err := s.st.AuthState(ctx, s.st.Reader(), u.ID)
	if err != nil {
		return Login{}, err
	}
	if now.Before(st.LockedUntil) {
		return Login{}, fail(u, "locked until "+st.LockedUntil.Format(time.RFC3339), fmt.Errorf("%w until %s", ErrLockedOut, st.LockedUntil.Format(time.RFC3339)))
	}
	stage := "password"
	if !u.TOTPConfirmed {
		stage = "enrol"
		// A role that must use a security key, with one, signs in with
		// it even after a TOTP reset: enrolling a new TOTP would be a way
		// around the key (ConfirmEnrolment refuses it too).
		if required, n, err := s.keyState(ctx, s.st.Reader(), u); err != nil {
			return Login{}, err
		} else if required && n > 0 {
			stage = "password"
		}
	}
	// A hash made with other cost parameters (raised since) is replaced
	// now, while the password is at hand.
	var rehash string
	if ap, ok := hashParams(u.PasswordHash); ok && ap != s.p.Argon {
		if rehash, err = HashPasswordWith(s.p.Argon, password); err != nil {
			rehash = "" // a password shorter than today's minimum keeps its hash until changed
		}
	}
	var l Login
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		if rehash != "" {
			if err := s.st.SetUserPassword(ctx, tx, u.ID, rehash, u.MustChangePassword); err != nil {
				return err
			}
		}
		// A right password clears this pair's failures (others' stay).
		if err := s.st.ClearLoginThrottle(ctx, tx, nameKey(name), c.IP); err != nil {
			return err
		}
		var err error
		if l, err = s.newSession(ctx, tx, u, stage, c); err != nil {
			return err
		}
		p := principalOf(u, l.SessionID, c)
		return s.append(ctx, tx, p.entry(u.TenantID, audit.ActAuthLogin, u.ID, fields{"factor": "password", "complete": false, "next": stage}))
	})
	if err != nil {
		return Login{}, err
	}
	return l, nil
}

// nameKey is how a login name is stored in the throttle: its SHA-256, so
// the table holds nothing a client typed.
func nameKey(name string) []byte { h := sha256.Sum256([]byte(name)); return h[:] }

// maxLoginObject bounds the login name copied into audit entries: any
// client can type any name, and a valid one has at most MaxNameLength
// characters.
const maxLoginObject = 4 * MaxNameLength

// loginObject is the login name as recorded in audit entries, cut to
// maxLoginObject bytes at a character boundary.
func loginObject(name string) string {
	if len(name) <= maxLoginObject {
		return name
	}
	cut := maxLoginObject
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	return name[:cut] + "…"
}

// throttled returns the (name, address) pair's refusal if it is blocked
// now, else nil.
func (s *Service) throttled(ctx context.Context, name, ip string) error {
	th, err := s.st.LoginThrottle(ctx, s.st.Reader(), nameKey(name), ip)
	if err != nil {
		return err
	}
	if s.now().Before(th.BlockedUntil) {
		return fmt.Errorf("%w: retry after %s", ErrRateLimited, th.BlockedUntil.Format(time.RFC3339))
	}
	return nil
}

// loginFailed records a failed password attempt for name: the audit entry,
// the event for the per-address limit and anomaly counts, and the failure
// of the (name, address) pair, which at Params.ThrottleThreshold blocks
// the pair for a delay that doubles with each further failure. Unknown
// names go through the same steps (the anomaly checks need a user, and
// write nothing without one), and the answer is cause either way.
func (s *Service) loginFailed(ctx context.Context, anon Principal, name string, u store.User, reason string, cause error) error {
	now := s.now()
	err := s.st.InTx(ctx, func(tx *sql.Tx) error {
		p := anon
		if u.ID != "" {
			p = principalOf(u, "", anon.Client)
		}
		if err := s.append(ctx, tx, p.entry(u.TenantID, audit.ActAuthLoginFailed, anon.Name, fields{"reason": reason})); err != nil {
			return err
		}
		if err := s.st.AddEvent(ctx, tx, store.EventLoginFailed, u.ID, anon.Client.IP, now); err != nil {
			return err
		}
		if err := s.throttleFailure(ctx, tx, p, u.TenantID, name); err != nil {
			return err
		}
		if err := s.activity(ctx, tx, p, ActivityLoginFailed); err != nil {
			return err
		}
		return s.activity(ctx, tx, p, ActivityLoginSources)
	})
	if err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// throttleFailure counts one failure of the (name, p's address) pair and,
// from Params.ThrottleThreshold on, blocks the pair: ThrottleBase, doubled
// for every failure beyond the threshold, at most ThrottleMax. The block is
// audited as auth.lockout with scope "name+address".
func (s *Service) throttleFailure(ctx context.Context, tx *sql.Tx, p Principal, tenant, name string) error {
	now := s.now()
	th, err := s.st.LoginThrottle(ctx, tx, nameKey(name), p.Client.IP)
	if err != nil {
		return err
	}
	if now.Sub(th.LastFailure) > s.p.ThrottleForget {
		th.Failures = 0
	}
	th.Failures++
	th.LastFailure = now
	if th.Failures >= s.p.ThrottleThreshold {
		d := s.p.ThrottleBase
		for i := s.p.ThrottleThreshold; i < th.Failures && d < s.p.ThrottleMax; i++ {
			d *= 2
		}
		d = min(d, s.p.ThrottleMax)
		th.BlockedUntil = now.Add(d)
		if err := s.append(ctx, tx, p.entry(tenant, audit.ActAuthLockout, loginObject(name), fields{"scope": "name+address", "ip": p.Client.IP,
			"failures": th.Failures, "seconds": int64(d / time.Second), "until": th.BlockedUntil.Format(time.RFC3339)})); err != nil {
			return err
		}
	}
	return s.st.SetLoginThrottle(ctx, tx, th)
}

// countFailure adds a failed second-factor attempt (TOTP, recovery or
// step-up code: the password was right) to u's count and, at
// Params.LockoutThreshold, locks the account: LockoutBase, doubled
// for each further lockout up to LockoutMax (backoff). It returns the
// ErrLockedOut to report when it locked. The count is reset only by a
// completed login (promote), so alternating a right password with wrong
// TOTP codes still ends in a lockout.
func (s *Service) countFailure(ctx context.Context, tx *sql.Tx, p Principal, u store.User) (error, error) {
	now := s.now()
	st, err := s.st.AuthState(ctx, tx, u.ID)
	if err != nil {
		return nil, err
	}
	var locked error
	st.FailedLogins++
	if st.FailedLogins >= s.p.LockoutThreshold {
		st.Lockouts++
		d := s.p.LockoutBase
		for i := 1; i < st.Lockouts && d < s.p.LockoutMax; i++ {
			d *= 2
		}
		d = min(d, s.p.LockoutMax)
		st.LockedUntil = now.Add(d)
		st.FailedLogins = 0
		locked = fmt.Errorf("%w until %s", ErrLockedOut, st.LockedUntil.Format(time.RFC3339))
		if err := s.append(ctx, tx, p.entry(u.TenantID, audit.ActAuthLockout, u.ID, fields{"lockout": st.Lockouts, "seconds": int64(d / time.Second), "until": st.LockedUntil.Format(time.RFC3339)})); err != nil {
			return nil, err
		}
	}
	return locked, s.st.SetLoginState(ctx, tx, st)
}

// VerifyTOTP completes a login at stage password with a TOTP code; the
// session id is replaced by a new one.
func (s *Service) VerifyTOTP(ctx context.Context, token, code string, c Client) (Login, error) {
	se, u, err := s.pending(ctx, token, "password", c)
	if err != nil {
		return Login{}, err
	}
	var l Login
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		// A role that must use a security key signs in with one.
		if err := s.totpAllowed(ctx, tx, u); err != nil {
			return err
		}
		if err := s.verifyTOTP(ctx, tx, u, code); err != nil {
			return err
		}
		l, err = s.promote(ctx, tx, se, u, c, "totp")
		return err
	})
	if err != nil {
		return Login{}, s.secondFactorFailed(ctx, u, c, "login", err)
	}
	return l, nil
}

// Request is what Authenticate needs from an HTTP request.
type Request struct {
	// SessionToken is the session cookie's value.
	SessionToken string
	// Method is the HTTP method; every method but GET, HEAD, OPTIONS and
	// TRACE must carry CSRFToken.
	Method    string
	CSRFToken string
	Client    Client
}

// RequestFrom extracts what Authenticate needs from an HTTP request: the
// session cookie, the method, the CSRF token (header X-CSRF-Token, else
// form field "csrf"), and the client. The address is the TCP peer
// (RemoteAddr): the appliance is reached directly, so forwarding headers,
// which any client can set, are not trusted.
func RequestFrom(r *http.Request) Request {
	req := Request{Method: r.Method, CSRFToken: r.Header.Get(CSRFHeader), Client: ClientFrom(r)}
	if c, err := r.Cookie(SessionCookieName); err == nil {
		req.SessionToken = c.Value
	}
	if req.CSRFToken == "" && stateChanging(r.Method) {
		req.CSRFToken = r.PostFormValue("csrf")
	}
	return req
}

// ClientFrom returns the peer address (without port) and user agent of r.
func ClientFrom(r *http.Request) Client {
	ip := r.RemoteAddr
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		ip = host
	}
	return Client{IP: ip, UserAgent: r.UserAgent()}
}

// Authenticate resolves a full session to its principal, enforcing idle and
// absolute timeouts, the disabled flag, CSRF on state-changing methods and
// support-ticket pinning. A CSRF refusal is audited.
func (s *Service) Authenticate(ctx context.Context, r Request) (Principal, error) {
	raw, err := parseSecret(sessionPrefix, r.SessionToken)
	if err != nil {
		return Principal{}, ErrUnauthenticated
	}
	se, err := s.st.SessionByHash(ctx, s.st.Reader(), hashSecret(raw))
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrUnauthenticated
	}
	if err != nil {
		return Principal{}, err
	}
	if se.Stage != "full" {
		return Principal{}, ErrUnauthenticated
	}
	u, err := s.st.UserByID(ctx, se.UserID)
	if err != nil {
		return Principal{}, err
	}
	p := principalOf(u, se.ID, r.Client)
	now := s.now()
	var why string
	switch {
	case !now.Before(se.ExpiresAt):
		why = "absolute timeout"
	case now.Sub(se.LastSeen) >= s.p.SessionIdle:
		why = "idle timeout"
	case u.Disabled:
		why = "user disabled"
	}
	if why != "" {
		err := s.st.InTx(ctx, func(tx *sql.Tx) error {
			if err := s.st.DeleteSession(ctx, tx, se.ID); err != nil {
				return err
			}
			return s.append(ctx, tx, p.entry(u.TenantID, audit.ActAuthSessionRevoke, se.ID, fields{"reason": why}))
		})
		return Principal{}, errors.Join(fmt.Errorf("%w: %s", ErrUnauthenticated, why), err)
	}
	if stateChanging(r.Method) && subtle.ConstantTimeCompare([]byte(csrfFor(raw)), []byte(r.CSRFToken)) != 1 {
		return Principal{}, s.deny(ctx, p, u.TenantID, "", r.Method, "csrf token missing or wrong", ErrCSRF)
	}
	if p, err = s.pin(ctx, p); err != nil {
		return Principal{}, err
	}
	// A role that must use a security key, without one: only registering
	// one is open (check refuses the rest).
	if u.Role == store.RoleAdmin || u.Role == store.RoleSecurityLead {
		required, n, err := s.keyState(ctx, s.st.Reader(), u)
		if err != nil {
			return Principal{}, err
		}
		p.MustRegisterKey = required && n == 0
	}
	// Record activity at most once a minute: enough for a 15-minute idle
	// timeout, without a write on every page load.
	if now.Sub(se.LastSeen) >= time.Minute {
		if err := s.touch(ctx, func(tx *sql.Tx) error { return s.st.TouchSession(ctx, tx, se.ID, now, now.Add(-time.Minute)) }); err != nil {
			return Principal{}, err
		}
	}
	return p, nil
}

// touch runs a last-seen/last-used write (fn) in its own transaction,
// unless another one is running: when a minute has passed, every request in
// flight sees a stale timestamp at once (50 under the API benchmark), and
// each would queue for SQLite's write lock and an fsync, which showed as
// p99 spikes once a minute. A skipped touch costs nothing: the timestamp is
// still stale, so the session's next request writes it (the idle timeout
// is 15 minutes, the touch interval one).
func (s *Service) touch(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if !s.touching.TryLock() {
		return nil
	}
	defer s.touching.Unlock()
	return s.st.InTx(ctx, fn)
}

// pin applies a support ticket: a support user with an open ticket acts in
// the ticket's tenant and nowhere else; without one, in no tenant.
func (s *Service) pin(ctx context.Context, p Principal) (Principal, error) {
	if p.Role != store.RoleSupport {
		return p, nil
	}
	p.TenantID = ""
	t, err := s.st.ActiveSupportTicket(ctx, p.UserID, s.now())
	if errors.Is(err, store.ErrNotFound) {
		return p, nil
	}
	if err != nil {
		return Principal{}, err
	}
	p.TenantID, p.SupportTicketID = t.TenantID, t.ID
	return p, nil
}

// Logout ends p's current session.
func (s *Service) Logout(ctx context.Context, p Principal) error {
	if p.SessionID == "" {
		return fmt.Errorf("logout: %w", ErrInvalid)
	}
	return s.st.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.st.DeleteSession(ctx, tx, p.SessionID); err != nil {
			return err
		}
		return s.append(ctx, tx, p.entry(p.HomeTenantID, audit.ActAuthLogout, p.SessionID, nil))
	})
}

// LogoutEverywhere ends every session of p's user, this one included.
func (s *Service) LogoutEverywhere(ctx context.Context, p Principal) error {
	if _, err := s.Authorize(ctx, p, OpLogoutAll, ""); err != nil {
		return err
	}
	return s.st.InTx(ctx, func(tx *sql.Tx) error {
		n, err := s.st.DeleteUserSessions(ctx, tx, p.UserID)
		if err != nil {
			return err
		}
		return s.append(ctx, tx, p.entry(p.HomeTenantID, audit.ActAuthLogout, p.UserID, fields{"everywhere": true, "sessions": n}))
	})
}

// SessionInfo describes a session for "your sessions" (never its secret).
type SessionInfo struct {
	ID                            string
	Current                       bool
	IP, UserAgent                 string
	CreatedAt, LastSeen, ExpireAt time.Time
}

// Sessions lists p's own sessions.
func (s *Service) Sessions(ctx context.Context, p Principal) ([]SessionInfo, error) {
	if _, err := s.Authorize(ctx, p, OpSessionList, ""); err != nil {
		return nil, err
	}
	ss, err := s.st.UserSessions(ctx, p.UserID)
	if err != nil {
		return nil, err
	}
	out := make([]SessionInfo, 0, len(ss))
	for _, se := range ss {
		out = append(out, SessionInfo{ID: se.ID, Current: se.ID == p.SessionID, IP: se.IP, UserAgent: se.UserAgent, CreatedAt: se.CreatedAt, LastSeen: se.LastSeen, ExpireAt: se.ExpiresAt})
	}
	return out, nil
}

// ChangePassword replaces p's password (checking the old one) and, because a
// password change is a privilege change, ends every session of the user and
// returns a new one.
func (s *Service) ChangePassword(ctx context.Context, p Principal, oldPassword, newPassword string) (Login, error) {
	if _, err := s.Authorize(ctx, p, OpPasswordChange, ""); err != nil {
		return Login{}, err
	}
	u, err := s.st.UserByID(ctx, p.UserID)
	if err != nil {
		return Login{}, err
	}
	// The old password is guessed under the same (name, address)
	// throttle as at login: a stolen session is no way around it.
	if err := s.throttled(ctx, u.Name, p.Client.IP); err != nil {
		return Login{}, s.record(ctx, err, p.entry(u.TenantID, audit.ActAuthLoginFailed, u.Name, fields{"reason": "password change throttled"}))
	}
	if err := s.verify(u.PasswordHash, oldPassword); err != nil {
		return Login{}, s.loginFailed(ctx, Principal{Name: u.Name, Client: p.Client}, u.Name, u, "wrong password on password change", ErrUnauthenticated)
	}
	if oldPassword == newPassword {
		return Login{}, fmt.Errorf("new password equals the old one: %w", ErrInvalid)
	}
	hash, err := HashPasswordWith(s.p.Argon, newPassword)
	if err != nil {
		return Login{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var l Login
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.st.SetUserPassword(ctx, tx, u.ID, hash, false); err != nil {
			return err
		}
		n, err := s.st.DeleteUserSessions(ctx, tx, u.ID)
		if err != nil {
			return err
		}
		u.MustChangePassword = false
		if l, err = s.newSession(ctx, tx, u, "full", p.Client); err != nil {
			return err
		}
		return s.append(ctx, tx, p.entry(u.TenantID, audit.ActAuthPasswordChange, u.ID, fields{"sessions_ended": n, "session": l.SessionID}))
	})
	return l, err
}
