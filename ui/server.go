// Package ui is the web console and JSON API: an echo server with
// server-rendered templates and embedded static assets. It imports the
// appliance's services; nothing below imports it.
//
// The API under /api/v1 is a thin adapter: a handler authenticates the
// caller (session cookie with CSRF, or a bearer API token), builds the
// principal, calls exactly one service method and renders its result. It
// never opens a transaction and never writes an audit entry; the services
// do both. Errors are classified once, by package fault.
package ui

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"firewalliq/appliance/auditlog"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/buildinfo"
	"firewalliq/appliance/evidence"
	"firewalliq/appliance/policy"
	"firewalliq/appliance/report"
	"firewalliq/appliance/report/review"
	"firewalliq/appliance/scan"
	"firewalliq/appliance/sensor"
	"firewalliq/appliance/siem/destinations"
)

// Deps are the services the console uses. Auth is required; a nil optional
// service leaves its routes answering 503 unavailable.
type Deps struct {
	Auth *auth.Service
	// SIEM manages SIEM destinations; Audit reads the audit log, its
	// checkpoint and alarm, and anomaly alerts; Scopes is the scope
	// registry. Evidence may be nil (no vault configured): its routes then
	// answer 503 vault_unavailable.
	SIEM   *destinations.Service
	Audit  *auditlog.Service
	Scopes *scan.Scopes
	// ScopeKeys are the scope-signing keys; Scans the scan requests,
	// approvals, runs and results.
	ScopeKeys *scan.Keys
	Scans     *scan.Scans
	Evidence  *evidence.Service
	// Policies stores expected policies; Reports creates, lists and
	// downloads compliance reports (nil without a vault); Reviews runs
	// access reviews. A nil one leaves its routes answering 503.
	Policies *policy.Service
	Reports  *report.Reports
	Reviews  *review.Service
	// Sensors is the sensor fleet (tokens, enrolment, list, revoke); nil:
	// its routes answer 503 fleet_off.
	Sensors *sensor.Service
	// Status reports the appliance's health for /readyz and /metrics.
	Status func(ctx context.Context) Status
	// Version is the build information served at /api/v1/version.
	Version buildinfo.Info
	// Logger receives the access log and the causes of 5xx answers;
	// slog.Default() when nil.
	Logger *slog.Logger
	// Now is the clock (rate limits); time.Now when nil.
	Now func() time.Time
	// Limits tune request limits; zero fields take DefaultLimits' values.
	Limits Limits
	// Gatherer, if set, adds to what /metrics serves (the Go runtime and
	// process collectors are always there).
	Gatherer prometheus.Gatherer
	// Pages, if set, registers the web console's pages (package ui/console).
	Pages interface {
		Register(e *echo.Echo, limit func(name string) echo.MiddlewareFunc)
	}
}

// Limits bound what one request or one client may do.
type Limits struct {
	// BodyBytes caps a request body: 1 MiB. Larger bodies get 413
	// too_large before a handler reads them.
	BodyBytes int64
	// AuthPerMinute caps requests per client address to each of the
	// credential-checking routes (login, TOTP, recovery, enrolment,
	// password change, step-up): 10 a minute, as a burst refilled evenly.
	// It stands in front of the service's own failure counting (lockout,
	// per-address failure limit), so a flood never reaches argon2.
	AuthPerMinute int
	// MaxClients bounds the rate limiter's memory: 10,000 addresses.
	MaxClients int
}

// DefaultLimits returns the documented defaults.
func DefaultLimits() Limits {
	return Limits{BodyBytes: 1 << 20, AuthPerMinute: 10, MaxClients: 10000}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.BodyBytes <= 0 {
		l.BodyBytes = d.BodyBytes
	}
	if l.AuthPerMinute <= 0 {
		l.AuthPerMinute = d.AuthPerMinute
	}
	if l.MaxClients <= 0 {
		l.MaxClients = d.MaxClients
	}
	return l
}

// Server is the console's HTTP handler.
type Server struct {
	e       *echo.Echo
	d       Deps
	log     *slog.Logger
	limits  Limits
	limiter *limiter
	metrics *metrics
	openAPI []byte
	// stopping is closed by EndStreams: open event streams end.
	stopping chan struct{}
	stopOnce sync.Once
}

// EndStreams ends every open event stream (the API's and, when Pages has
// them, the console's) and any that starts afterwards. Call it when a
// graceful shutdown begins (http.Server.RegisterOnShutdown): Shutdown
// waits for active requests, and a scan's event stream otherwise lasts as
// long as the scan runs. It is safe to call more than once.
func (s *Server) EndStreams() {
	s.stopOnce.Do(func() {
		close(s.stopping)
		if p, ok := s.d.Pages.(interface{ EndStreams() }); ok {
			p.EndStreams()
		}
	})
}

// New builds the console. It fails if a template, an asset or the OpenAPI
// document cannot be parsed, so a broken build fails at boot, not on first
// request.
func New(d Deps) (*Server, error) {
	if d.Auth == nil || d.SIEM == nil || d.Audit == nil || d.Scopes == nil || d.ScopeKeys == nil || d.Scans == nil {
		return nil, errors.New("ui: the auth, SIEM, audit, scope, scope-key and scan services are required")
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Status == nil {
		d.Status = func(context.Context) Status { return Status{StoreError: "no status source"} }
	}
	doc, err := loadOpenAPI()
	if err != nil {
		return nil, err
	}
	s := &Server{d: d, log: d.Logger, limits: d.Limits.withDefaults(), openAPI: doc, stopping: make(chan struct{})}
	s.limiter = newLimiter(s.limits.AuthPerMinute, time.Minute, s.limits.MaxClients, d.Now)
	m, err := newMetrics(d.Status, d.Gatherer)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.errorHandler
	e.Use(s.requestID, s.accessLog, s.recover, securityHeaders, s.bodyLimit)
	s.e = e
	s.routes()
	return s, nil
}

// Handler returns the console as an http.Handler.
func (s *Server) Handler() http.Handler { return s.e }

// securityHeaders sets a strict CSP (no inline script) and related headers on
// every response. API answers are never cached: they carry secrets (tokens,
// one-time passwords) and per-user data.
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Strict-Transport-Security", "max-age=31536000")
		h.Set("Cache-Control", "no-store")
		return next(c)
	}
}
