package ui

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/fault"
)

// errorBody is every non-2xx answer: {"error": {...}}.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
	// StepUp is the challenge of a step_up_required answer: what to send to
	// POST /api/v1/auth/step-up with a fresh TOTP code before retrying.
	StepUp *challenge `json:"step_up,omitempty"`
}

// challenge names the operation and the exact canonical request a step-up
// grant must be bound to (auth.StepUpChallenge).
type challenge struct {
	Operation string `json:"operation"`
	// Request is the canonical request (JSON with sorted keys), passed
	// back byte for byte.
	Request string `json:"request"`
}

// httpError is an error the HTTP layer makes itself (bad JSON, an oversized
// body, a rate limit), with its class code and a message safe to show.
type httpError struct {
	code string
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func apiError(code, msg string) error { return &httpError{code: code, msg: msg} }

// errorHandler is the one place an error becomes an answer: it classifies
// the error with package fault, answers {"error": {code, message,
// request_id}} and logs the cause of every 5xx (which the client never
// sees).
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var (
		class fault.Class
		msg   string
		he    *echo.HTTPError
		own   *httpError
	)
	switch {
	case errors.As(err, &own):
		class, msg = fault.Of(own.code), own.msg
	case errors.As(err, &he):
		// echo's own: unknown route, wrong method, and so on.
		switch he.Code {
		case http.StatusNotFound:
			class = fault.Of(fault.CodeNotFound)
		case http.StatusMethodNotAllowed:
			class = fault.Of(fault.CodeMethodNotAllowed)
		case http.StatusRequestEntityTooLarge:
			class = fault.Of(fault.CodeTooLarge)
		case http.StatusBadRequest:
			class = fault.Of(fault.CodeInvalid)
		case http.StatusUnauthorized:
			class = fault.Of(fault.CodeUnauthenticated)
		default:
			class = fault.Of(fault.CodeInternal)
		}
		msg = class.Message
	default:
		class = fault.Classify(err)
		msg = fault.Message(class, err)
	}
	id := requestIDOf(c)
	if class.HTTP >= 500 {
		s.log.LogAttrs(c.Request().Context(), slog.LevelError, "request failed",
			slog.String("request_id", id), slog.String("route", c.Path()), slog.String("code", class.Code), slog.String("error", err.Error()))
	}
	body := errorBody{Error: errorDetail{Code: class.Code, Message: msg, RequestID: id}}
	var su *auth.StepUpChallenge
	if class.Code == fault.CodeStepUpRequired && errors.As(err, &su) {
		body.Error.StepUp = &challenge{Operation: string(su.Op), Request: string(su.Request)}
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(class.HTTP)
		return
	}
	// Under /console/ the answer is the console's HTML error page, from
	// the same classification (an oversized form, a wrong method, a
	// missing static file never reach a page handler); the API keeps its
	// JSON. Should the page fail to render, the JSON below still answers.
	if consolePath(c.Request().URL.Path) {
		if p, ok := s.d.Pages.(errorPager); ok && class.Code != fault.CodeStepUpRequired {
			perr := p.ErrorPage(c, class, msg, id)
			if perr == nil {
				return
			}
			s.log.LogAttrs(c.Request().Context(), slog.LevelError, "console error page failed",
				slog.String("request_id", id), slog.String("error", perr.Error()))
		}
	}
	if c.Response().Committed {
		return
	}
	_ = c.JSON(class.HTTP, body)
}

// errorPager is what the console pages (Deps.Pages) offer to render an
// error as their HTML page.
type errorPager interface {
	ErrorPage(c echo.Context, class fault.Class, message, requestID string) error
}

// consolePath reports whether path is the console's (/console or below).
func consolePath(path string) bool {
	return path == "/console" || strings.HasPrefix(path, "/console/")
}
