// Package ui is the web console and JSON API: an echo server with
// server-rendered templates and embedded static assets. It imports the
// appliance's services; nothing below imports it.
package ui

import (
	"context"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"
)

// Deps are the services the console uses.
type Deps struct {
	// Ping checks that the appliance's store answers
	// (appliance.Appliance.Ping).
	Ping func(context.Context) error
}

// Server is the console's HTTP handler.
type Server struct {
	e *echo.Echo
}

// New builds the console. It fails if a template or asset cannot be parsed,
// so a broken build fails at boot, not on first request.
func New(d Deps) (*Server, error) {
	if d.Ping == nil {
		return nil, errors.New("ui: Ping is required")
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler
	e.Use(securityHeaders)
	e.GET("/healthz", func(c echo.Context) error {
		if err := d.Ping(c.Request().Context()); err != nil {
			return echo.NewHTTPError(http.StatusServiceUnavailable, "store unavailable")
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	return &Server{e: e}, nil
}

// Handler returns the console as an http.Handler.
func (s *Server) Handler() http.Handler { return s.e }

// securityHeaders sets a strict CSP (no inline script) and related headers on
// every response.
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Strict-Transport-Security", "max-age=31536000")
		return next(c)
	}
}

// errorHandler maps errors to status codes without leaking internals: only
// echo.HTTPError messages (which we write) reach the client.
func errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code := http.StatusInternalServerError
	msg := http.StatusText(code)
	var he *echo.HTTPError
	switch {
	case errors.As(err, &he):
		code = he.Code
		if m, ok := he.Message.(string); ok {
			msg = m
		} else {
			msg = http.StatusText(code)
		}
	}
	_ = c.JSON(code, map[string]string{"error": msg})
}
