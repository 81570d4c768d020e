// Package console is the web console: server-rendered HTML pages over the
// same services as the JSON API (package ui), registered on the API's echo
// server so they share its middleware (request ids, access log, security
// headers with a strict CSP, body limit).
//
// Templates and static assets are embedded and parsed once, in New, so a
// broken template fails the boot instead of the first request. Pages carry
// no inline script or style (the CSP is default-src 'self'); forms post
// with the session's CSRF token in the field "csrf", which
// auth.RequestFrom reads. A sensitive form whose service answers with an
// *auth.StepUpChallenge is shown again as a TOTP prompt that re-submits
// the same fields (see stepUp).
package console

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auditlog"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/evidence"
	"firewalliq/appliance/policy"
	"firewalliq/appliance/report"
	"firewalliq/appliance/report/review"
	"firewalliq/appliance/scan"
	"firewalliq/appliance/sensor"
	"firewalliq/appliance/siem"
	"firewalliq/appliance/siem/destinations"
	"firewalliq/audit"
	"firewalliq/probe/safety"
	"firewalliq/vault"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the console's pages live.
const Prefix = "/console"

// Health is the appliance's state as the dashboard shows it: the same
// fields as appliance.Health (which this package may not import; the
// composition root converts one into the other).
type Health struct {
	StoreErr       string
	AuditIntact    bool
	Alarm          *audit.Alarm
	AuditSize      int64
	CheckpointSize int64
	CheckpointAge  time.Duration
	Vault          *vault.Status
	SIEM           []siem.Status
}

// Deps are the services the pages call. Auth and Health are required; a
// nil optional service shows its pages as "not available".
type Deps struct {
	Auth *auth.Service
	// Audit reads the audit log and its alerts.
	Audit *auditlog.Service
	// SIEM manages SIEM destinations.
	SIEM *destinations.Service
	// Scopes is the scope registry.
	Scopes *scan.Scopes
	// ScopeKeys is the registry of scope-signing keys; nil shows its page
	// as not available.
	ScopeKeys *scan.Keys
	// Scans is the scan service (requests, approvals, progress,
	// results); nil shows the scan pages as not available.
	Scans *scan.Scans
	// Reviews runs access reviews; nil shows their pages as not
	// available.
	Reviews *review.Service
	// Evidence is the evidence vault; nil when none is configured.
	Evidence *evidence.Service
	// Policies stores expected policies; nil shows their pages as not
	// available.
	Policies *policy.Service
	// Reports creates, lists and downloads compliance reports and reads
	// their findings; nil (no evidence vault) shows those pages as not
	// available.
	Reports *report.Reports
	// Sensors is the sensor fleet; nil shows the sensors page as not
	// available.
	Sensors *sensor.Service
	// Health reports the appliance's state (no tenant data): the tamper
	// banner on every page, and the dashboard.
	Health func(ctx context.Context) (Health, error)
	// Profile is the verified safety profile the binary runs with.
	Profile safety.Profile
	// Logger receives the causes of 5xx pages; slog.Default() when nil.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// PagesInFlight is how many signed-in page requests (GET) are worked
	// on at once, from authentication to the rendered page; the others
	// wait their turn in arrival order (see queued). 0 means
	// DefaultPagesInFlight.
	PagesInFlight int
}

// DefaultPagesInFlight is PagesInFlight's default: enough to keep two
// cores busy while some requests wait for SQLite or the network, few
// enough that the pages' SQLite reads do not pile up on the driver's
// shared locks (see queued; measured in docs/benchmarks.md).
const DefaultPagesInFlight = 8

// Console is the set of pages.
type Console struct {
	d     Deps
	log   *slog.Logger
	pages map[string]*template.Template
	// perms is the permission matrix as a set of "role\x00operation",
	// built once: auth.Allowed rebuilds the matrix on every call, and a
	// page asks a dozen times.
	perms map[string]bool
	// cache keeps service reads that stay exact while the audit log has
	// not grown (cache.go): the dashboard's and results explorer's.
	cache readCache
	// slots holds one token per page request being worked on (queued).
	slots chan struct{}
	// stopping is closed by EndStreams: open progress streams end.
	stopping chan struct{}
	stopOnce sync.Once
}

// EndStreams ends every open progress stream (scanEvents), and any that
// starts afterwards, with a last "shutdown" event. serve calls it when its
// graceful shutdown begins (http.Server.RegisterOnShutdown): Shutdown
// waits for active requests, and a stream otherwise lasts until the scan
// ends or for up to 30 minutes, far beyond serve's 5 s for the shutdown.
// It is safe to call more than once.
func (c *Console) EndStreams() { c.stopOnce.Do(func() { close(c.stopping) }) }

// New parses every template and checks the static assets. An error here
// means the build is broken; serve refuses to start.
func New(d Deps) (*Console, error) {
	if d.Auth == nil || d.Health == nil {
		return nil, errors.New("console: Auth and Health are required")
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.PagesInFlight <= 0 {
		d.PagesInFlight = DefaultPagesInFlight
	}
	c := &Console{d: d, log: d.Logger, perms: map[string]bool{}, slots: make(chan struct{}, d.PagesInFlight), stopping: make(chan struct{})}
	for _, p := range auth.Permissions() {
		for _, r := range p.Roles {
			c.perms[r+"\x00"+string(p.Op)] = true
		}
	}
	pages, err := parseTemplates(templateFS, funcs(c.allowed))
	if err != nil {
		return nil, err
	}
	if _, err := fs.Stat(staticFS, "static/console.css"); err != nil {
		return nil, fmt.Errorf("console: static assets: %w", err)
	}
	c.pages = pages
	return c, nil
}

// allowed is auth.Allowed from the table built in New. It only decides
// what to show: every service checks the matrix again.
func (c *Console) allowed(role string, op auth.Operation) bool {
	return c.perms[role+"\x00"+string(op)]
}

// parseTemplates parses layout.html with each page template into its own
// set, so each page defines "title" and "content" without clashing.
func parseTemplates(fsys fs.FS, fm template.FuncMap) (map[string]*template.Template, error) {
	base, err := template.New("layout.html").Funcs(fm).ParseFS(fsys, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("console: parse layout: %w", err)
	}
	names, err := fs.Glob(fsys, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if name == "layout" {
			continue
		}
		t, err := base.Clone()
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		if _, err := t.ParseFS(fsys, n); err != nil {
			return nil, fmt.Errorf("console: parse %s: %w", name, err)
		}
		if t.Lookup("content") == nil {
			return nil, fmt.Errorf("console: template %s defines no content", name)
		}
		// html/template escapes a set, and finds its escaping errors (an
		// unclosed attribute quote, an action inside a comment), only at
		// its first Execute. Execute each page once now, as render does
		// (layout.html with a view), so such a page fails the boot. The
		// zero view makes ordinary execution errors (a field of nil Data)
		// likely: those say nothing about the template and are ignored;
		// only an escaping error (*template.Error) counts.
		if err := t.ExecuteTemplate(io.Discard, "layout.html", view{}); err != nil {
			var te *template.Error
			if errors.As(err, &te) {
				return nil, fmt.Errorf("console: template %s: %w", name, err)
			}
		}
		pages[name] = t
	}
	return pages, nil
}

// Register adds the console's routes to e (the API server's echo, whose
// middleware then applies to the pages too). limit, if not nil, is the API
// server's per-address rate limit for credential-checking routes (bucket
// name in, middleware out); the sign-in forms share its buckets with the
// API's login routes, so a flood of either never reaches argon2.
func (c *Console) Register(e *echo.Echo, limit func(name string) echo.MiddlewareFunc) {
	if limit == nil {
		limit = func(string) echo.MiddlewareFunc { return func(h echo.HandlerFunc) echo.HandlerFunc { return h } }
	}
	e.GET("/", func(ec echo.Context) error { return ec.Redirect(http.StatusSeeOther, Prefix+"/") })
	static := echo.MustSubFS(staticFS, "static")
	e.StaticFS(Prefix+"/static", static)

	g := e.Group(Prefix)
	// Public steps of signing in.
	g.GET("/login", c.page(c.loginForm))
	g.POST("/login", c.page(c.limited(limit("login"), c.loginPost)))
	g.GET("/login/totp", c.page(c.totpForm))
	g.POST("/login/totp", c.page(c.limited(limit("totp"), c.totpPost)))
	g.POST("/login/recovery", c.page(c.limited(limit("recovery"), c.recoveryPost)))
	g.GET("/enrol", c.page(c.enrolForm))
	g.POST("/enrol", c.page(c.limited(limit("totp"), c.enrolPost)))

	// Signed-in pages. The middleware is per route (not per group) so
	// unknown paths stay 404s.
	a := func(method, p string, h handler, mw ...echo.MiddlewareFunc) {
		h = c.signedIn(h)
		if method == http.MethodGet && !unqueued[p] {
			h = c.queued(h)
		}
		g.Add(method, p, c.page(h), mw...)
	}
	a(http.MethodGet, "/", c.dashboard)
	a(http.MethodGet, "/password", c.passwordForm)
	a(http.MethodPost, "/password", c.limited(limit("password"), c.passwordPost))
	a(http.MethodPost, "/logout", c.logoutPost)
	a(http.MethodPost, "/logout-all", c.logoutAllPost)
	a(http.MethodGet, "/sessions", c.sessionsPage)
	a(http.MethodPost, "/recovery-codes", c.stepUp(c.recoveryCodesPost))

	a(http.MethodGet, "/users", c.usersPage)
	a(http.MethodPost, "/users", c.stepUp(c.userCreate))
	a(http.MethodPost, "/users/approval", c.roleGrantRequest)
	a(http.MethodPost, "/users/:id/role", c.stepUp(c.userRole))
	a(http.MethodPost, "/users/:id/disable", c.stepUp(c.userDisable))
	a(http.MethodPost, "/users/:id/reset-totp", c.stepUp(c.userResetTOTP))
	a(http.MethodGet, "/tokens", c.tokensPage)
	a(http.MethodPost, "/tokens", c.stepUp(c.tokenCreate))
	a(http.MethodPost, "/tokens/:id/revoke", c.stepUp(c.tokenRevoke))
	a(http.MethodGet, "/support", c.supportPage)
	a(http.MethodPost, "/support", c.stepUp(c.supportOpen))
	a(http.MethodPost, "/support/:id/close", c.stepUp(c.supportClose))
	a(http.MethodGet, "/approvals", c.approvalsPage)
	a(http.MethodPost, "/approvals/:id/approve", c.stepUp(c.approve))
	a(http.MethodPost, "/approvals/:id/deny", c.stepUp(c.deny))
	a(http.MethodPost, "/approvals/:id/void", c.stepUp(c.void))
	a(http.MethodGet, "/alerts", c.alertsPage)
	a(http.MethodPost, "/alerts/:seq/ack", c.stepUp(c.alertAck))
	a(http.MethodPost, "/alarm/ack", c.stepUp(c.alarmAck))
	a(http.MethodGet, "/siem", c.siemPage)
	a(http.MethodPost, "/siem", c.siemAdd)
	a(http.MethodPost, "/siem/:name/remove", c.stepUp(c.siemRemove))
	a(http.MethodPost, "/siem/:name/test", c.stepUp(c.siemTest))
	a(http.MethodGet, "/audit", c.auditPage)
	a(http.MethodGet, "/audit/proof/:seq", c.auditProofPage)
	a(http.MethodGet, "/evidence", c.evidencePage)
	a(http.MethodPost, "/evidence/export", c.exportRequest)
	a(http.MethodPost, "/evidence/export/:id/link", c.stepUp(c.exportLink))
	a(http.MethodGet, "/scopes", c.scopesPage)
	a(http.MethodPost, "/scopes", c.scopeRegister)
	a(http.MethodPost, "/scopes/sign", c.stepUp(c.scopeSign))
	a(http.MethodGet, "/scopes/:id", c.scopePage)
	a(http.MethodGet, "/scans", c.scansPage)
	a(http.MethodPost, "/scans", c.stepUp(c.scanRequest))
	a(http.MethodGet, "/scans/:id", c.scanPage)
	a(http.MethodGet, "/scans/:id/events", c.scanEvents)
	a(http.MethodGet, "/scans/:id/results", c.resultsPage)
	a(http.MethodPost, "/scans/:id/approve", c.stepUp(c.scanApprove))
	a(http.MethodPost, "/scans/:id/deny", c.stepUp(c.scanDeny))
	a(http.MethodPost, "/scans/:id/start", c.stepUp(c.scanStart))
	a(http.MethodPost, "/scans/:id/cancel", c.scanCancel)
	a(http.MethodGet, "/reviews", c.reviewsPage)
	a(http.MethodPost, "/reviews", c.reviewStart)
	a(http.MethodGet, "/reviews/:id", c.reviewPage)
	a(http.MethodPost, "/reviews/:id/decide", c.reviewDecide)
	a(http.MethodPost, "/reviews/:id/sign", c.stepUp(c.reviewSign))
	a(http.MethodGet, "/reviews/:id/download/:format", c.reviewDownload)
	a(http.MethodGet, "/keys", c.keysPage)
	a(http.MethodPost, "/keys", c.stepUp(c.keyAdd))
	a(http.MethodPost, "/keys/:id/revoke", c.stepUp(c.keyRevoke))
	a(http.MethodGet, "/policies", c.policiesPage)
	a(http.MethodPost, "/policies", c.policyPost)
	a(http.MethodGet, "/policies/:name", c.policyPage)
	a(http.MethodPost, "/policies/:name/baseline", c.stepUp(c.policyBaseline))
	a(http.MethodGet, "/reports", c.reportsPage)
	a(http.MethodPost, "/reports", c.reportCreate)
	a(http.MethodGet, "/reports/:id", c.reportPage)
	a(http.MethodGet, "/reports/:id/download/:format", c.reportDownload)
	a(http.MethodGet, "/findings", c.findingsPage)
	a(http.MethodGet, "/settings", c.settingsPage)
	a(http.MethodPost, "/schedules", c.scheduleCreate)
	a(http.MethodPost, "/schedules/:id/approve", c.stepUp(c.scheduleApprove))
	a(http.MethodPost, "/schedules/:id/void", c.scheduleVoid)
	a(http.MethodGet, "/sensors", c.sensorsPage)
	a(http.MethodPost, "/sensors/tokens", c.stepUp(c.sensorTokenCreate))
	a(http.MethodPost, "/sensors/:id/revoke", c.stepUp(c.sensorRevoke))
	c.registerKeys(g, a, limit) // security keys (webauthn.go)
	// Anything else under the console is a page that does not exist.
	g.GET("/*", c.page(func(echo.Context) error { return errPageNotFound }))
}

// limited runs h behind the API's rate limit mw. The limiter answers with
// its own error, which only the API's error handler can classify; it sets
// Retry-After first, so a refusal is recognised by that header and shown as
// a page.
func (c *Console) limited(mw echo.MiddlewareFunc, h handler) handler {
	wrapped := mw(echo.HandlerFunc(h))
	return func(ec echo.Context) error {
		err := wrapped(ec)
		if err != nil && ec.Response().Header().Get("Retry-After") != "" && !ec.Response().Committed {
			return c.render(ec, http.StatusTooManyRequests, "error", view{Title: "Too many attempts",
				Data: errorData{Status: http.StatusTooManyRequests, Code: "rate_limited",
					Message:   "Too many attempts from this address; wait " + ec.Response().Header().Get("Retry-After") + " seconds and try again.",
					RequestID: ec.Response().Header().Get("X-Request-ID")}})
		}
		return err
	}
}

// unqueued are the GET routes that do not wait for a slot (queued): the
// scan event stream holds its request open for up to maxStream, and a
// download is written while the handler runs.
var unqueued = map[string]bool{
	"/scans/:id/events":             true,
	"/reports/:id/download/:format": true,
	"/reviews/:id/download/:format": true,
}

// ctxRelease is the echo context key of the function that gives a queued
// request's slot back.
const ctxRelease = "fiq.console.release"

// queued runs next once one of the PagesInFlight slots is free, waiting in
// arrival order as far as the runtime gives it (Go's runtime today wakes a
// channel's blocked senders in the order they blocked; the language does
// not promise it), and gives the slot back when the page is rendered, before it
// is written to the client (render), so a slow reader holds no slot.
//
// Why: under wrk with 50 connections on two cores, the dashboard's p99
// was 20 times its p50, and the slow requests spent their time in their
// first SQLite read (the session lookup) waiting for locks the pure-Go
// driver shares between all connections of a database (the WAL's
// shared-memory lock, the page cache, database/sql's pool): 50 requests
// at once queued there in no fair order. Admitting a few at a time in
// arrival order keeps the rest waiting in a FIFO instead (measured in
// docs/benchmarks.md). Authentication and authorisation still run for
// every request, inside the slot.
func (c *Console) queued(next handler) handler {
	return func(ec echo.Context) error {
		select {
		case c.slots <- struct{}{}:
		case <-ec.Request().Context().Done():
			// The client went away while waiting: nothing to render or
			// log as a failure. The access log shows 499 (nginx's "client
			// closed request").
			return ec.NoContent(statusClientClosed)
		}
		var once sync.Once
		release := func() { once.Do(func() { <-c.slots }) }
		ec.Set(ctxRelease, release)
		defer release()
		return next(ec)
	}
}

// statusClientClosed is what the access log shows for a request whose
// client left while it waited for a slot.
const statusClientClosed = 499

// releaseSlot gives ec's slot back, if it holds one (queued).
func releaseSlot(ec echo.Context) {
	if f, ok := ec.Get(ctxRelease).(func()); ok {
		f()
	}
}

// handler is a page handler: it renders or redirects, or returns an error
// that page turns into an error page.
type handler func(ec echo.Context) error

// ctxPrincipal is the echo context key of the signed-in principal: the
// same key the API's middleware uses, so the access log names the user of
// page requests too.
const ctxPrincipal = "fiq.principal"

// principal is the signed-in user of a page behind signedIn.
func principal(ec echo.Context) (auth.Principal, bool) {
	p, ok := ec.Get(ctxPrincipal).(auth.Principal)
	return p, ok
}

// sessionToken is the session cookie's value, "" without one.
func sessionToken(ec echo.Context) string {
	if ck, err := ec.Cookie(auth.SessionCookieName); err == nil {
		return ck.Value
	}
	return ""
}

// signedIn resolves the session (and, on POST, checks the CSRF field)
// through auth.Service.Authenticate. Without a session a GET goes to the
// login page; a user who must replace a one-time password may reach only
// the password page, the session list and logout.
func (c *Console) signedIn(next handler) handler {
	return func(ec echo.Context) error {
		r := ec.Request()
		p, err := c.d.Auth.Authenticate(r.Context(), auth.RequestFrom(r))
		if err != nil {
			if errors.Is(err, auth.ErrUnauthenticated) && r.Method == http.MethodGet {
				return ec.Redirect(http.StatusSeeOther, Prefix+"/login")
			}
			return err
		}
		if p.MustChangePassword {
			switch ec.Path() {
			case Prefix + "/password", Prefix + "/logout", Prefix + "/logout-all", Prefix + "/sessions":
			default:
				return ec.Redirect(http.StatusSeeOther, Prefix+"/password")
			}
		}
		if p.MustRegisterKey && !strings.HasPrefix(ec.Path(), Prefix+"/security-keys") {
			switch ec.Path() {
			case Prefix + "/password", Prefix + "/logout", Prefix + "/logout-all", Prefix + "/sessions":
			default:
				return redirectFlash(ec, Prefix+"/security-keys", "Your role must use a security key: register one to continue.")
			}
		}
		ec.Set(ctxPrincipal, p)
		return next(ec)
	}
}

// view is what every page template receives.
type view struct {
	Title string
	// Nav names the active menu entry.
	Nav string
	// P is the signed-in user; nil on the login pages.
	P    *auth.Principal
	CSRF string
	// Alarm is the raised tamper alarm, shown as a banner on every page;
	// AlarmUnknown says the state could not be read.
	Alarm        *audit.Alarm
	AlarmUnknown bool
	// Menu is what the user's role may open.
	Menu []menuItem
	// Flash is a one-off notice, Error a refusal to show above the page.
	Flash, Error string
	// Tenant is the tenant an appliance admin picked (?tenant=);
	// Tenants the choice.
	Tenant  string
	Tenants []tenantOption
	Data    any
	// health, when a handler already read it, saves render a second read.
	health *Health
}

type menuItem struct {
	Href, Label, Key string
}

type tenantOption struct {
	ID, Name string
}

// menu lists the pages p's role may open, in a fixed order.
func (c *Console) menu(p auth.Principal) []menuItem {
	// own marks pages whose service acts in the caller's own tenant only
	// (no tenant argument): not for appliance admins, nor for support
	// users without a ticket.
	all := []struct {
		item menuItem
		op   auth.Operation
		own  bool
	}{
		{menuItem{Prefix + "/", "Dashboard", "dashboard"}, "", false},
		{menuItem{Prefix + "/users", "Users", "users"}, auth.OpUserList, false},
		{menuItem{Prefix + "/tokens", "API tokens", "tokens"}, auth.OpTokenList, true},
		{menuItem{Prefix + "/support", "Support", "support"}, auth.OpSupportList, true},
		{menuItem{Prefix + "/approvals", "Approvals", "approvals"}, auth.OpApprovalList, true},
		{menuItem{Prefix + "/alerts", "Alerts", "alerts"}, auth.OpAnomalyRead, false},
		{menuItem{Prefix + "/siem", "SIEM", "siem"}, auth.OpSIEMRead, false},
		{menuItem{Prefix + "/audit", "Audit log", "audit"}, auth.OpAuditRead, false},
		{menuItem{Prefix + "/scans", "Scans", "scans"}, auth.OpScanRead, false},
		{menuItem{Prefix + "/scopes", "Scopes", "scopes"}, auth.OpScopeRead, false},
		{menuItem{Prefix + "/keys", "Scope keys", "keys"}, auth.OpScopeKeyList, false},
		{menuItem{Prefix + "/policies", "Policies", "policies"}, auth.OpPolicyRead, false},
		{menuItem{Prefix + "/findings", "Findings", "findings"}, auth.OpReportRead, false},
		{menuItem{Prefix + "/reports", "Reports", "reports"}, auth.OpReportRead, false},
		{menuItem{Prefix + "/evidence", "Evidence", "evidence"}, auth.OpEvidenceRead, false},
		{menuItem{Prefix + "/reviews", "Access reviews", "reviews"}, auth.OpReviewRead, false},
		{menuItem{Prefix + "/sensors", "Sensors", "sensors"}, auth.OpSensorRead, false},
		{menuItem{Prefix + "/settings", "Settings", "settings"}, "", false},
		{menuItem{Prefix + "/sessions", "Sessions", "sessions"}, auth.OpSessionList, false},
		{menuItem{Prefix + "/security-keys", "Security keys", "securitykeys"}, auth.OpKeyList, false},
	}
	var out []menuItem
	for _, m := range all {
		if m.own && p.TenantID == "" {
			continue
		}
		if m.op == "" || c.allowed(p.Role, m.op) {
			out = append(out, m.item)
		}
	}
	return out
}

// render executes page name into a buffer first, so a template error
// becomes a clean 500 instead of half a page.
func (c *Console) render(ec echo.Context, status int, name string, v view) error {
	t, ok := c.pages[name]
	if !ok {
		return fmt.Errorf("console: no template %q", name)
	}
	ctx := ec.Request().Context()
	if p, ok := principal(ec); ok {
		v.P = &p
		v.Menu = c.menu(p)
		if v.CSRF == "" {
			v.CSRF, _ = auth.CSRFToken(sessionToken(ec))
		}
	}
	if v.health != nil {
		v.Alarm = v.health.Alarm
	} else if h, err := c.d.Health(ctx); err != nil {
		v.AlarmUnknown = true
	} else {
		v.Alarm = h.Alarm
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		return fmt.Errorf("console: render %s: %w", name, err)
	}
	releaseSlot(ec)
	return ec.HTMLBlob(status, buf.Bytes())
}
