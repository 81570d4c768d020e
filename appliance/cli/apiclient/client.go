// Package apiclient is the command line's client of the appliance's /api/v1
// JSON API. Management commands go through it, so a person at the
// appliance's shell has no path around authentication, step-up, approvals or
// the audit log (docs/cli.md, "One door" in the design).
//
// It speaks HTTPS only. The console certificate is self-signed, so the
// client either pins the SHA-256 of the leaf certificate's DER (as `init`
// and `serve` print it) or trusts a CA file; with neither it uses the system
// roots. It authenticates with a session (cookie + X-CSRF-Token on every
// non-GET request) or a bearer API token, tags every request with an
// X-Request-ID, decodes `{"error":{...}}` bodies into *Error, and answers a
// step-up challenge by asking its StepUp callback for a fresh TOTP code,
// calling POST /api/v1/auth/step-up and retrying the request once.
//
// The package imports nothing of the appliance: it must not become a way
// around the API.
package apiclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"firewalliq/probe/bounded"
)

// Wire names shared with the server. They equal auth.SessionCookieName and
// auth.CSRFHeader (a test keeps them equal); this package does not import
// auth, which would pull the store into the client.
const (
	SessionCookieName = "__Host-fiq_session"
	CSRFHeader        = "X-CSRF-Token"
	RequestIDHeader   = "X-Request-ID"
	// APIPrefix is the path every route lives under.
	APIPrefix = "/api/v1"
	// StepUpPath answers a step-up challenge.
	StepUpPath = "/auth/step-up"
)

// Limits.
const (
	// MaxResponseBytes bounds a response body the client reads; a larger one
	// is refused rather than held in memory.
	MaxResponseBytes = 32 << 20
	// DefaultTimeout bounds one HTTP exchange (a SIEM test may take a
	// while; nothing else should come close).
	DefaultTimeout = 2 * time.Minute
	// MaxPages bounds how many pages List follows.
	MaxPages = 1000
)

// Sentinel errors.
var (
	// ErrPinMismatch means the server's certificate does not have the pinned
	// SHA-256: a different server, or a man in the middle.
	ErrPinMismatch = errors.New("server certificate does not match the pinned SHA-256")
	// ErrBadPin means a --cert-sha256 value is not 64 hex digits.
	ErrBadPin = errors.New("certificate pin must be the 64 hex digits of a SHA-256")
	// ErrBadAddress means the address is not an https:// URL.
	ErrBadAddress = errors.New("address must be an https:// URL")
	// ErrNoStepUp means the server asked for step-up and the client has no
	// way to ask for a code (no StepUp callback, or a bearer token, which
	// cannot step up).
	ErrNoStepUp = errors.New("step-up required and no TOTP code can be asked for")
	// ErrResponseTooLarge means a response body exceeded MaxResponseBytes.
	ErrResponseTooLarge = errors.New("response too large")
)

// Error is an error answer of the API: `{"error": {"code", "message",
// "request_id", "step_up"}}`. Code is the stable snake_case identifier
// (docs/api.md); Status the HTTP status.
type Error struct {
	Status    int
	Code      string
	Message   string
	RequestID string
	// StepUp is the challenge of a step_up_required answer.
	StepUp *Challenge
}

// Challenge is what a step_up_required answer asks to be confirmed: the
// operation and the canonical request a fresh TOTP code is bound to.
type Challenge struct {
	Operation string `json:"operation"`
	Request   string `json:"request"`
	// Tenant is where the operation acts ("" for the caller's own); it is
	// passed back with the code.
	Tenant string `json:"tenant,omitempty"`
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	s := e.Code + ": " + msg
	if e.Code == "" || strings.HasPrefix(msg, e.Code) {
		s = msg
	}
	if e.RequestID != "" {
		s += " (request " + e.RequestID + ")"
	}
	return s
}

// Is makes errors.Is(err, &Error{Code: "x"}) match on the code alone.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code != "" && t.Code == e.Code && (t.Status == 0 || t.Status == e.Status)
}

// Error codes the client acts on (the full list is the server's error
// table).
const (
	CodeStepUpRequired  = "step_up_required"
	CodeUnauthenticated = "unauthenticated"
)

// Config says how to reach and authenticate to the appliance.
type Config struct {
	// Addr is the base URL, https://host:port (a path prefix is allowed).
	Addr string
	// CertSHA256 pins the server's leaf certificate: lower- or upper-case
	// hex of the SHA-256 of its DER. Empty means no pin.
	CertSHA256 string
	// CACertFile trusts the PEM CA(s) in this file instead of the system
	// roots. With a pin as well, both must hold.
	CACertFile string
	// Token is a bearer API token; it wins over a session.
	Token string
	// Session and CSRF are a login session's token and CSRF token.
	Session, CSRF string
	// UserAgent is sent on every request.
	UserAgent string
	// StepUp asks for a fresh TOTP code to answer a challenge; nil means
	// step-up answers are returned as errors.
	StepUp func(ctx context.Context, c Challenge) (string, error)
	// Timeout bounds one exchange; DefaultTimeout when zero.
	Timeout time.Duration
}

// Client is an API client. It is not safe for concurrent use while its
// session changes (SetSession); the command line uses one per command.
type Client struct {
	base    *url.URL
	hc      *http.Client
	cfg     Config
	session string
	csrf    string
}

// New validates cfg and builds a client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.Addr, "/"))
	if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q: %w", cfg.Addr, ErrBadAddress)
	}
	tc, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "firewalliq-cli"
	}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, TLSHandshakeTimeout: 15 * time.Second, MaxIdleConns: 2, IdleConnTimeout: 30 * time.Second}
	return &Client{
		base: u,
		// No redirects: a redirect would carry the session to wherever it
		// points, and the API never redirects.
		hc: &http.Client{Transport: tr, Timeout: cfg.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
		cfg:     cfg,
		session: cfg.Session,
		csrf:    cfg.CSRF,
	}, nil
}

// ParsePin normalises a certificate pin: 64 hex digits, optionally with
// colons between bytes (as openssl prints them), to lower case.
func ParsePin(s string) (string, error) {
	p := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	if b, err := hex.DecodeString(p); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("%q: %w", s, ErrBadPin)
	}
	return p, nil
}

// tlsConfig trusts cfg's CA file (or the system roots) and, with a pin,
// accepts exactly the pinned leaf.
func tlsConfig(cfg Config) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CACertFile != "" {
		pem, err := bounded.ReadFile(cfg.CACertFile, bounded.MaxCertFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate in it", cfg.CACertFile)
		}
		tc.RootCAs = pool
	}
	if cfg.CertSHA256 == "" {
		return tc, nil
	}
	pin, err := ParsePin(cfg.CertSHA256)
	if err != nil {
		return nil, err
	}
	want, _ := hex.DecodeString(pin)
	if cfg.CACertFile == "" {
		// The console certificate is self-signed and names whatever hosts
		// init was given: the pin replaces chain and name verification,
		// as ssh's known_hosts does. VerifyConnection below still runs on
		// every handshake, resumed ones included.
		tc.InsecureSkipVerify = true //nolint:gosec // replaced by the pin check in VerifyConnection
	}
	tc.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return ErrPinMismatch
		}
		got := sha256.Sum256(cs.PeerCertificates[0].Raw)
		if subtle.ConstantTimeCompare(got[:], want) != 1 {
			return fmt.Errorf("%w (server presented %s)", ErrPinMismatch, hex.EncodeToString(got[:]))
		}
		return nil
	}
	return tc, nil
}

// SetSession replaces the session and CSRF tokens (after each login step,
// which rotates them).
func (c *Client) SetSession(session, csrf string) { c.session, c.csrf = session, csrf }

// Session returns the current session and CSRF tokens.
func (c *Client) Session() (session, csrf string) { return c.session, c.csrf }

// Addr returns the base URL.
func (c *Client) Addr() string { return c.base.String() }

// Get, Post and Delete are Do with a method.
func (c *Client) Get(ctx context.Context, path string, q url.Values, out any) error {
	return c.Do(ctx, http.MethodGet, path, q, nil, out)
}

// Post sends in as JSON and decodes the answer into out (either may be nil).
func (c *Client) Post(ctx context.Context, path string, in, out any) error {
	return c.Do(ctx, http.MethodPost, path, nil, in, out)
}

// Delete sends a DELETE and decodes the answer into out (may be nil).
func (c *Client) Delete(ctx context.Context, path string, out any) error {
	return c.Do(ctx, http.MethodDelete, path, nil, nil, out)
}

// Do sends one request to APIPrefix+path with in (when not nil) as its JSON
// body and decodes a 2xx answer into out (when not nil; a *[]byte receives
// the body as sent, for downloads). A step_up_required
// answer is met once through Config.StepUp, then the identical request is
// sent again.
func (c *Client) Do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
	}
	err := c.once(ctx, method, path, q, body, out)
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != CodeStepUpRequired {
		return err
	}
	if c.cfg.Token != "" {
		return fmt.Errorf("%w (an API token cannot step up; log in as a person): %w", ErrNoStepUp, err)
	}
	if c.cfg.StepUp == nil || ae.StepUp == nil {
		return fmt.Errorf("%w: %w", ErrNoStepUp, err)
	}
	code, serr := c.cfg.StepUp(ctx, *ae.StepUp)
	if serr != nil {
		return fmt.Errorf("step-up: %w", serr)
	}
	gb, _ := json.Marshal(struct {
		Challenge
		Code string `json:"code"`
	}{*ae.StepUp, code})
	if err := c.once(ctx, http.MethodPost, StepUpPath, nil, gb, nil); err != nil {
		return fmt.Errorf("step-up: %w", err)
	}
	// Exactly one retry: a second challenge means the request changed
	// between the two sends or the grant was refused, and asking again
	// would loop.
	return c.once(ctx, method, path, q, body, out)
}

// once is one HTTP exchange.
func (c *Client) once(ctx context.Context, method, path string, q url.Values, body []byte, out any) error {
	u := *c.base
	u.Path = strings.TrimRight(c.base.Path, "/") + APIPrefix + path
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	rid := newRequestID()
	req.Header.Set(RequestIDHeader, rid)
	switch {
	case c.cfg.Token != "":
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	case c.session != "":
		req.AddCookie(&http.Cookie{Name: SessionCookieName, Value: c.session})
		if method != http.MethodGet && method != http.MethodHead {
			req.Header.Set(CSRFHeader, c.csrf)
		}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if len(data) > MaxResponseBytes {
		return fmt.Errorf("%s %s: %w", method, path, ErrResponseTooLarge)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeError(resp, data, rid)
	}
	if raw, ok := out.(*[]byte); ok {
		// A downloaded document (report.json, HTML, PDF): the bytes as
		// sent, not decoded.
		*raw = data
		return nil
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// decodeError turns a non-2xx answer into *Error. A body that is not the
// API's error shape (a proxy's page, say) still gives an *Error with the
// status, and no body text: it could be anything.
func decodeError(resp *http.Response, data []byte, rid string) error {
	e := &Error{Status: resp.StatusCode, RequestID: resp.Header.Get(RequestIDHeader)}
	var body struct {
		Error struct {
			Code      string     `json:"code"`
			Message   string     `json:"message"`
			RequestID string     `json:"request_id"`
			StepUp    *Challenge `json:"step_up"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message, e.StepUp = body.Error.Code, body.Error.Message, body.Error.StepUp
		if body.Error.RequestID != "" {
			e.RequestID = body.Error.RequestID
		}
	} else {
		e.Code = codeForStatus(resp.StatusCode)
		e.Message = http.StatusText(resp.StatusCode)
	}
	if e.RequestID == "" {
		e.RequestID = rid
	}
	return e
}

// codeForStatus names an answer that carried no error code.
func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid_argument"
	case http.StatusUnauthorized:
		return CodeUnauthenticated
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusConflict:
		return "conflict"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusTooManyRequests:
		return "rate_limited"
	}
	return "internal"
}

// newRequestID returns 16 random hex digits.
func newRequestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

// Page is one page of a list.
type Page struct {
	Items []json.RawMessage `json:"items"`
	Next  string            `json:"next"`
}

// List follows a list's keyset pagination (?limit=&after=) and returns
// every item, up to MaxPages pages.
func (c *Client) List(ctx context.Context, path string, q url.Values) ([]json.RawMessage, error) {
	if q == nil {
		q = url.Values{}
	}
	q.Set("limit", "500")
	var all []json.RawMessage
	for range MaxPages {
		var p Page
		if err := c.Get(ctx, path, q, &p); err != nil {
			return all, err
		}
		all = append(all, p.Items...)
		if p.Next == "" {
			return all, nil
		}
		if p.Next == q.Get("after") {
			return all, fmt.Errorf("GET %s: the server returned the same cursor twice", path)
		}
		q.Set("after", p.Next)
	}
	return all, fmt.Errorf("GET %s: more than %d pages", path, MaxPages)
}
