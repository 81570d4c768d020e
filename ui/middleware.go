package ui

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/fault"
)

// RequestIDHeader carries the request id both ways.
const RequestIDHeader = "X-Request-ID"

// ctxRequestID is the echo context key of the request id.
const ctxRequestID = "fiq.request_id"

// requestID echoes a client's X-Request-ID when it is a short token of safe
// characters (so it cannot inject into logs) and makes one otherwise.
func (s *Server) requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(RequestIDHeader)
		if !safeID(id) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Set(ctxRequestID, id)
		c.Response().Header().Set(RequestIDHeader, id)
		return next(c)
	}
}

// safeID accepts 1 to 64 characters of [A-Za-z0-9._-].
func safeID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '_' || ch == '-') {
			return false
		}
	}
	return true
}

func requestIDOf(c echo.Context) string {
	id, _ := c.Get(ctxRequestID).(string)
	return id
}

// accessLog writes one structured line per request and observes its
// latency for /metrics, by route template (not by path, which would make
// one series per object id).
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			// Let the error handler write the answer now, so the status
			// logged is the one sent.
			c.Error(err)
		}
		d := time.Since(start)
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		status := c.Response().Status
		s.metrics.observe(c.Request().Method, route, status, d)
		attrs := []slog.Attr{
			slog.String("request_id", requestIDOf(c)),
			slog.String("method", c.Request().Method),
			slog.String("route", route),
			slog.String("path", c.Request().URL.Path),
			slog.Int("status", status),
			slog.Int64("bytes", c.Response().Size),
			slog.Duration("duration", d),
			slog.String("ip", auth.ClientFrom(c.Request()).IP),
		}
		if p, ok := principalOf(c); ok {
			attrs = append(attrs, slog.String("user", p.UserID))
		}
		s.log.LogAttrs(c.Request().Context(), slog.LevelInfo, "http", attrs...)
		return nil
	}
}

// recover turns a handler panic into a logged 500 with the request id.
func (s *Server) recover(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return next(c)
	}
}

// bodyLimit refuses a body larger than Limits.BodyBytes: at once when
// Content-Length says so, else when the handler reads past the limit
// (http.MaxBytesReader; decodeJSON turns that into 413 too_large).
func (s *Server) bodyLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.ContentLength > s.limits.BodyBytes {
			return apiError(fault.CodeTooLarge, fmt.Sprintf("request body larger than %d bytes", s.limits.BodyBytes))
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(c.Response(), r.Body, s.limits.BodyBytes)
		}
		return next(c)
	}
}

// rateLimited limits each client address to Limits.AuthPerMinute requests
// a minute to the routes it wraps, answering 429 rate_limited with
// Retry-After. Buckets are per route group (name), so a burst of logins
// does not use up step-ups.
func (s *Server) rateLimited(name string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			ip := auth.ClientFrom(c.Request()).IP
			if wait, ok := s.limiter.allow(name + "\x00" + ip); !ok {
				secs := int((wait + time.Second - 1) / time.Second)
				c.Response().Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
				return apiError(fault.CodeRateLimited, "too many requests from this address; retry later")
			}
			return next(c)
		}
	}
}

// limiter is a token bucket per key: capacity n, refilled evenly over per.
// It holds at most maxKeys buckets; when full it drops the buckets that have
// refilled completely (they are equivalent to a new one), and if none has,
// it refuses new keys rather than grow, so a spray of addresses cannot
// exhaust memory.
type limiter struct {
	mu      sync.Mutex
	n       float64
	per     time.Duration
	maxKeys int
	now     func() time.Time
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(n int, per time.Duration, maxKeys int, now func() time.Time) *limiter {
	return &limiter{n: float64(n), per: per, maxKeys: maxKeys, now: now, buckets: map[string]*bucket{}}
}

// allow spends a token of key, or reports how long until one is there.
func (l *limiter) allow(key string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	rate := l.n / l.per.Seconds() // tokens per second
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.maxKeys {
			l.prune(now, rate)
			if len(l.buckets) >= l.maxKeys {
				return l.per, false
			}
		}
		b = &bucket{tokens: l.n, at: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.n, b.tokens+now.Sub(b.at).Seconds()*rate)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	return time.Duration((1 - b.tokens) / rate * float64(time.Second)), false
}

// prune drops buckets that are full again.
func (l *limiter) prune(now time.Time, rate float64) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*rate >= l.n {
			delete(l.buckets, k)
		}
	}
}
