package ui

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/pquerna/otp/totp"

	"firewalliq/appliance"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/buildinfo"
	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// cheapArgon keeps password hashing fast in tests that do not measure it.
var cheapArgon = auth.ArgonParams{Time: 1, MemoryKiB: 64, Threads: 1}

type clock struct {
	mu sync.Mutex
	t  time.Time
	// flowing, once set by flow, adds real time elapsed since then (a
	// running scan paces itself by the clock).
	flowing time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.flowing.IsZero() {
		return c.t.Add(time.Since(c.flowing))
	}
	return c.t
}

// flow makes the clock follow real time from now on.
func (c *clock) flow() { c.mu.Lock(); defer c.mu.Unlock(); c.flowing = time.Now() }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testUser is a user the fixture made, with its signed-in session.
type testUser struct {
	store.User
	password, secret string
	token, csrf      string // session cookie value and CSRF token
}

// fixture is an initialised appliance (appliance.Init in a temporary
// directory, real SQLite, the real audit log) behind the console's
// handler, with users of every role signed in over the API.
type fixture struct {
	t      *testing.T
	ctx    context.Context
	clk    *clock
	app    *appliance.Appliance
	st     *store.Store
	svc    *auth.Service
	srv    *Server
	logs   *syncBuffer
	init   appliance.InitResult
	a, b   string // tenant ids: "default" (from init) and "bravo"
	users  map[string]*testUser
	router routers.Router
}

// syncBuffer collects the server's log; dumped when a test fails.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// users the fixture creates: key -> tenant ("a", "b" or "" for an
// appliance admin) and role.
var fixtureUsers = []struct{ key, tenant, role string }{
	{"sys", "", store.RoleAdmin},
	{"a-admin", "a", store.RoleAdmin},
	{"a-lead", "a", store.RoleSecurityLead},
	{"a-appr", "a", store.RoleApprover},
	{"a-appr2", "a", store.RoleApprover},
	{"a-op", "a", store.RoleOperator},
	{"a-aud", "a", store.RoleAuditor},
	{"a-sup", "a", store.RoleSupport},
	{"b-admin", "b", store.RoleAdmin},
}

func newFixture(t *testing.T, mod ...func(*Deps)) *fixture {
	t.Helper()
	return newFixtureWith(t, nil, mod...)
}

// newFixtureWith is newFixture with a hook that runs on the initialised
// data directory before the appliance is opened (to tamper with it).
func newFixtureWith(t *testing.T, beforeOpen func(appliance.Config, func() time.Time), mod ...func(*Deps)) *fixture {
	t.Helper()
	ctx := context.Background()
	// 5 s into a 30 s TOTP step, so each code() lands in a fresh step.
	clk := &clock{t: time.Date(2026, 11, 27, 14, 0, 5, 0, time.UTC)}
	cfg := appliance.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	// A local (not WORM) evidence vault, so the evidence routes have a
	// service behind them; production mode would refuse it.
	cfg.Production = false
	cfg.Vault.Backend = "local"
	res, err := appliance.Init(ctx, cfg, appliance.InitOptions{Admin: "root", Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	if beforeOpen != nil {
		beforeOpen(cfg, clk.now)
	}
	logs := &syncBuffer{}
	app, err := appliance.OpenWith(ctx, cfg, clk.now, appliance.Options{LogOutput: logs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	// A second connection for set-up (users with known secrets) and for
	// reading the audit log in assertions.
	st, err := store.Open(ctx, filepath.Join(cfg.DataDir, appliance.DatabaseFile), store.Options{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc := app.Auth
	d := Deps{Auth: svc, SIEM: app.SIEM, Audit: app.Audit, Scopes: app.Scopes, ScopeKeys: app.ScopeKeys, Scans: app.Scans, Evidence: app.Evidence,
		Policies: app.Policies, Reports: app.Reports, Reviews: app.Reviews, Sensors: app.Sensors, Logger: slog.New(slog.NewJSONHandler(logs, nil)), Now: clk.now,
		Limits: Limits{AuthPerMinute: 10000}, Version: buildinfo.Get(),
		Status: func(ctx context.Context) Status { return Status{AuditSize: 1} }}
	for _, m := range mod {
		m(&d)
	}
	srv, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ctx: ctx, clk: clk, app: app, st: st, svc: svc, srv: srv, logs: logs, init: res, a: res.TenantID, users: map[string]*testUser{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	err = st.InTx(ctx, func(tx *sql.Tx) error {
		b, err := st.CreateTenant(ctx, tx, "bravo")
		f.b = b.ID
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range fixtureUsers {
		tenant := map[string]string{"a": f.a, "b": f.b}[u.tenant]
		f.users[u.key] = f.makeUser(tenant, u.key, u.role)
	}
	for _, u := range fixtureUsers {
		f.login(u.key)
	}
	doc, err := openapi3.NewLoader().LoadFromData(srv.openAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(ctx); err != nil {
		t.Fatalf("openapi document invalid: %v", err)
	}
	if f.router, err = legacy.NewRouter(doc); err != nil {
		t.Fatal(err)
	}
	return f
}

// makeUser writes a user with a password and a confirmed TOTP secret
// straight into the store (test set-up, not an API action).
func (f *fixture) makeUser(tenant, name, role string) *testUser {
	f.t.Helper()
	pw := name + "-correct-horse-battery"
	hash, err := auth.HashPasswordWith(cheapArgon, pw)
	if err != nil {
		f.t.Fatal(err)
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "FirewallIQ Secure", AccountName: name})
	if err != nil {
		f.t.Fatal(err)
	}
	id := store.NewID("u")
	sealed, err := f.app.Keys.Seal([]byte(key.Secret()), []byte("totp:"+id))
	if err != nil {
		f.t.Fatal(err)
	}
	var u store.User
	err = f.st.InTx(f.ctx, func(tx *sql.Tx) error {
		nu := store.User{ID: id, Name: name, Role: role, PasswordHash: hash, TOTPSealed: sealed, TOTPConfirmed: true}
		if tenant == "" {
			u, err = f.st.CreateAdmin(f.ctx, tx, nu)
			return err
		}
		ts, err := f.st.Tenant(tenant)
		if err != nil {
			return err
		}
		u, err = ts.CreateUser(f.ctx, tx, nu)
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return &testUser{User: u, password: pw, secret: key.Secret()}
}

// code moves the clock to the next TOTP step and returns the user's code
// there, so every call yields an unused code.
func (f *fixture) code(key string) string {
	f.t.Helper()
	f.clk.advance(30 * time.Second)
	c, err := auth.TOTPCode(f.users[key].secret, f.clk.now())
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// login signs the user in over the API (password, then TOTP).
func (f *fixture) login(key string) {
	f.t.Helper()
	u := f.users[key]
	rec := f.do(request{method: "POST", path: "/api/v1/auth/login", body: jsonBody(map[string]string{"name": u.Name, "password": u.password})})
	if rec.Code != 200 {
		f.t.Fatalf("login %s: %d %s", key, rec.Code, rec.Body)
	}
	var l loginAnswer
	decode(f.t, rec, &l)
	rec = f.do(request{method: "POST", path: "/api/v1/auth/totp", cookie: l.Token, body: jsonBody(map[string]string{"code": f.code(key)})})
	if rec.Code != 200 {
		f.t.Fatalf("totp %s: %d %s", key, rec.Code, rec.Body)
	}
	decode(f.t, rec, &l)
	if l.Stage != "full" {
		f.t.Fatalf("login %s: stage %s", key, l.Stage)
	}
	u.token, u.csrf = l.Token, l.CSRF
}

// principal resolves a signed-in fixture user's session to its principal,
// for set-up through a service that has no route yet.
func (f *fixture) principal(key string) auth.Principal {
	f.t.Helper()
	p, err := f.svc.Authenticate(f.ctx, auth.Request{SessionToken: f.users[key].token, Method: "GET", Client: auth.Client{IP: "192.0.2.1", UserAgent: "fixture"}})
	if err != nil {
		f.t.Fatalf("principal %s: %v", key, err)
	}
	return p
}

// request is one HTTP request to the handler.
type request struct {
	method, path, body string
	as                 string // fixture user whose session to send; "" for none
	cookie             string // a raw session cookie (login steps)
	bearer             string // an API token instead of a session
	noCSRF             bool   // leave out the CSRF header
	badCSRF            bool   // send a wrong one
	remote             string // RemoteAddr; 192.0.2.1:1234 by default
	header             map[string]string
}

func jsonBody(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func decode(t *testing.T, rec *httptest.ResponseRecorder, v any) {
	t.Helper()
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		t.Fatalf("decode %q: %v", rec.Body.String(), err)
	}
}

// do sends r and validates the answer against the OpenAPI document.
func (f *fixture) do(r request) *httptest.ResponseRecorder {
	f.t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req := httptest.NewRequest(r.method, r.path, body)
	if r.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.remote != "" {
		req.RemoteAddr = r.remote
	}
	req.Header.Set("User-Agent", "ui-test/1.0")
	cookie, csrf := r.cookie, ""
	if r.as != "" {
		u := f.users[r.as]
		if u == nil {
			f.t.Fatalf("no fixture user %q", r.as)
		}
		cookie, csrf = u.token, u.csrf
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: auth.SessionCookieName, Value: cookie})
	}
	switch {
	case r.badCSRF:
		req.Header.Set(auth.CSRFHeader, "not-the-token")
	case csrf != "" && !r.noCSRF:
		req.Header.Set(auth.CSRFHeader, csrf)
	}
	if r.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+r.bearer)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(rec, req)
	f.validate(r, rec)
	return rec
}

// validate checks an answer against the OpenAPI document: the documented
// status, content type and body schema.
func (f *fixture) validate(r request, rec *httptest.ResponseRecorder) {
	f.t.Helper()
	if f.router == nil {
		return // during set-up
	}
	req := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
	route, params, err := f.router.FindRoute(req)
	if err != nil {
		return // an undocumented path: the 404 tests cover it
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status: rec.Code,
		Header: rec.Header(),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true,
			// An event stream's body is checked by the SSE tests, event by
			// event against the Progress schema.
			ExcludeResponseBody: strings.HasPrefix(rec.Header().Get("Content-Type"), "text/event-stream")},
	}
	if ct := rec.Header().Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		// A downloaded document (HTML, PDF): its media type is checked
		// against the document; its bytes are the renderer's tests' job.
		in.Options.ExcludeResponseBody = true
	}
	in.SetBodyBytes(rec.Body.Bytes())
	if err := openapi3filter.ValidateResponse(f.ctx, in); err != nil {
		f.t.Errorf("%s %s answered %d, not as documented: %v\nbody: %s", r.method, r.path, rec.Code, err, rec.Body)
	}
}

// head is the last audit sequence number.
func (f *fixture) head() int64 {
	f.t.Helper()
	var n sql.NullInt64
	if err := f.st.DB().QueryRowContext(f.ctx, `SELECT max(seq) FROM audit_entries`).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n.Int64
}

// since returns the audit entries written after seq.
func (f *fixture) since(seq int64) []audit.Entry {
	f.t.Helper()
	es, err := audit.ReadEntries(f.ctx, f.st.DB(), seq+1, 1<<62)
	if err != nil {
		f.t.Fatal(err)
	}
	return es
}

// actions lists entries' actions.
func actions(es []audit.Entry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, string(e.Action))
	}
	return out
}

// apiErr is an error answer.
type apiErr struct {
	Error struct {
		Code      string     `json:"code"`
		Message   string     `json:"message"`
		RequestID string     `json:"request_id"`
		StepUp    *challenge `json:"step_up"`
	} `json:"error"`
}
