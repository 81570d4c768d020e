package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/fault"
)

// page turns a handler's error into an HTML answer, classified once by
// package fault like the API's errors: the status and the safe message
// (never an internal cause, which is logged with the request id instead).
// A step-up challenge becomes the TOTP prompt.
func (c *Console) page(h handler) echo.HandlerFunc {
	return func(ec echo.Context) error {
		err := parseBody(ec.Request())
		if err == nil {
			err = h(ec)
		}
		if err == nil || ec.Response().Committed {
			return err
		}
		var su *auth.StepUpChallenge
		if errors.As(err, &su) {
			return c.renderStepUp(ec, su, "")
		}
		class := fault.Classify(err)
		var mbe *http.MaxBytesError
		switch {
		case errors.Is(err, errPageNotFound):
			class = fault.Of(fault.CodeNotFound)
		case errors.As(err, &mbe):
			// The form was larger than the API server's body limit.
			class = fault.Of(fault.CodeTooLarge)
		}
		id := ec.Response().Header().Get("X-Request-ID")
		if class.HTTP >= 500 {
			c.log.LogAttrs(ec.Request().Context(), slog.LevelError, "console page failed",
				slog.String("request_id", id), slog.String("route", ec.Path()), slog.String("error", err.Error()))
		}
		if class.Code == fault.CodeUnauthenticated {
			// The session ended (timeout, logout elsewhere): sign in again.
			return c.render(ec, class.HTTP, "login", view{Title: "Sign in", Error: "Your session has ended; please sign in again."})
		}
		return c.ErrorPage(ec, class, fault.Message(class, err), id)
	}
}

// ErrorPage answers with the console's error page: class's status and
// code, message (already made safe to show by the caller, through the
// fault table) and the request id. The API server's error handler calls it
// for errors under /console/ that never reached a page handler (an
// oversized body, a wrong method, a missing static file), so every answer
// under /console/ is a page, classified by the same table.
func (c *Console) ErrorPage(ec echo.Context, class fault.Class, message, requestID string) error {
	return c.render(ec, class.HTTP, "error", view{Title: http.StatusText(class.HTTP),
		Data: errorData{Status: class.HTTP, Code: class.Code, Message: message, RequestID: requestID}})
}

// parseBody reads a POSTed form before the handler runs, so a form larger
// than the body limit (http.MaxBytesReader, set by the API server; a body
// sent without Content-Length) is refused as too large instead of being
// read as an empty form. Other parse errors are left to the handler,
// which sees the fields it could read, as before.
func parseBody(r *http.Request) error {
	if r.Method != http.MethodPost {
		return nil
	}
	var err error
	if strings.HasPrefix(r.Header.Get(echo.HeaderContentType), echo.MIMEMultipartForm) {
		err = r.ParseMultipartForm(maxFormMemory)
	} else {
		err = r.ParseForm()
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	return nil
}

// maxFormMemory is what a multipart form may keep in memory (the rest
// goes to temporary files); the body limit is smaller anyway.
const maxFormMemory = 32 << 20

type errorData struct {
	Status          int
	Code, Message   string
	RequestID       string
	PasswordChange  bool
	StepUpOperation string
}

// Form fields of the step-up prompt; every other posted field is carried
// over unchanged so the original action can run again.
const (
	fieldStepUpOp      = "stepup_op"
	fieldStepUpRequest = "stepup_request"
	fieldStepUpCode    = "stepup_code"
)

// stepUpData is the TOTP prompt: the operation, the exact canonical
// request the grant will be bound to (shown so the user sees what they
// confirm), and the original form's fields as hidden inputs.
type stepUpData struct {
	Operation string
	Request   string
	Action    string
	Fields    []formField
	// KeyCeremony and KeyOptions are set when the prompt asks for a
	// security key instead of a code (webauthn.go).
	KeyCeremony, KeyOptions string
}

type formField struct{ Name, Value string }

// renderStepUp shows the TOTP prompt for challenge su, re-posting to the
// same URL with the request's form fields.
func (c *Console) renderStepUp(ec echo.Context, su *auth.StepUpChallenge, problem string) error {
	status := http.StatusUnauthorized
	return c.render(ec, status, "stepup", view{Title: "Confirm with your authenticator", Error: problem, Data: c.stepUpData(ec, su)})
}

// stepUpData is the prompt for challenge su, re-posting to the same URL
// with the request's form fields.
func (c *Console) stepUpData(ec echo.Context, su *auth.StepUpChallenge) stepUpData {
	r := ec.Request()
	var fields []formField
	for k, vs := range r.PostForm {
		if k == "csrf" || keyField(k) {
			continue
		}
		for _, v := range vs {
			fields = append(fields, formField{k, v})
		}
	}
	sort.Slice(fields, func(i, j int) bool { return fields[i].Name < fields[j].Name })
	action := r.URL.Path
	if r.URL.RawQuery != "" {
		action += "?" + r.URL.RawQuery
	}
	return stepUpData{Operation: string(su.Op), Request: string(su.Request), Action: action, Fields: fields}
}

// stepUp wraps a sensitive form's handler: when the form carries an
// answer to a step-up prompt, the grant is recorded first
// (auth.Service.StepUpFor, bound to the challenge's exact request) and the
// handler then runs as the original submission did, spending it. A wrong
// code shows the prompt again.
func (c *Console) stepUp(next handler) handler {
	return func(ec echo.Context) error {
		r := ec.Request()
		// A security key instead of a code (webauthn.go).
		if r.PostFormValue(fieldStepUpKey) != "" || r.PostFormValue(fieldStepUpCredential) != "" {
			if done, err := c.keyStepUp(ec); done || err != nil {
				return err
			}
			return next(ec)
		}
		code := strings.TrimSpace(r.PostFormValue(fieldStepUpCode))
		op, req := r.PostFormValue(fieldStepUpOp), r.PostFormValue(fieldStepUpRequest)
		if code != "" || op != "" {
			p, _ := principal(ec)
			// StepUp with the request's own tenant, not StepUpFor: the
			// challenge of a role-grant approval names user.role.approve
			// while its request says "op":"approval.grant"
			// (auth.ApproveRequest), which StepUpFor refuses. The grant is
			// bound to the operation and the request's digest either way.
			var rt struct {
				Tenant string `json:"tenant"`
			}
			if err := json.Unmarshal([]byte(req), &rt); err != nil {
				return fmt.Errorf("step-up request is not a JSON object: %w", auth.ErrInvalid)
			}
			if _, err := c.d.Auth.StepUp(r.Context(), p, auth.Operation(op), rt.Tenant, []byte(req), code); err != nil {
				if errors.Is(err, auth.ErrKeyRequired) {
					return c.renderStepUp(ec, &auth.StepUpChallenge{Op: auth.Operation(op), Request: []byte(req)}, "Your role must confirm with a security key: use the security key button.")
				}
				if errors.Is(err, auth.ErrInvalidCode) || errors.Is(err, auth.ErrReplay) || errors.Is(err, auth.ErrStepUpRequired) {
					return c.renderStepUp(ec, &auth.StepUpChallenge{Op: auth.Operation(op), Request: []byte(req)}, "That code was not accepted; wait for the next one and try again.")
				}
				return err
			}
		}
		return next(ec)
	}
}

// redirectFlash sends the browser to target with a notice in ?flash=
// (post/redirect/get, so a reload does not post twice).
func redirectFlash(ec echo.Context, target, flash string) error {
	u, _ := url.Parse(target)
	q := u.Query()
	if flash != "" {
		q.Set("flash", flash)
	}
	u.RawQuery = q.Encode()
	return ec.Redirect(http.StatusSeeOther, u.String())
}

// flashOf reads the notice of redirectFlash. It is shown escaped like
// any other text, so a crafted link can only show words, not markup.
func flashOf(ec echo.Context) string {
	f := ec.QueryParam("flash")
	if len(f) > 200 {
		f = f[:200]
	}
	return f
}

// funcs are the templates' helpers; allowed answers "has".
func funcs(allowed func(role string, op auth.Operation) bool) template.FuncMap {
	return template.FuncMap{
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04:05Z")
		},
		"ago": func(d time.Duration) string {
			switch {
			case d <= 0:
				return "just now"
			case d < time.Minute:
				return d.Round(time.Second).String() + " ago"
			case d < time.Hour:
				return d.Round(time.Minute).String() + " ago"
			}
			return d.Round(time.Hour).String() + " ago"
		},
		"has": func(p *auth.Principal, op string) bool {
			return p != nil && allowed(p.Role, auth.Operation(op))
		},
		"bytes": func(n int64) string {
			switch {
			case n >= 1<<30:
				return trimFloat(float64(n)/(1<<30)) + " GiB"
			case n >= 1<<20:
				return trimFloat(float64(n)/(1<<20)) + " MiB"
			case n >= 1<<10:
				return trimFloat(float64(n)/(1<<10)) + " KiB"
			}
			return itoa(n) + " B"
		},
		"str": func(b []byte) string { return string(b) },
	}
}

// errPageNotFound answers a path the console does not have (a 404 page,
// classified as the fault table's not_found).
var errPageNotFound = errors.New("page not found")
