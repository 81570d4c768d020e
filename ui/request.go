package ui

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/fault"
)

const ctxPrincipal = "fiq.principal"

// authenticated resolves the caller: a bearer API token (Authorization:
// Bearer fiqt_...) or the session cookie with, on every state-changing
// method, the CSRF header. The principal is kept on the context for the
// handler; a failure goes to the error handler (401, or 403 csrf).
func (s *Server) authenticated(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		var (
			p   auth.Principal
			err error
		)
		if h := r.Header.Get("Authorization"); h != "" {
			tok, ok := bearer(h)
			if !ok {
				return auth.ErrUnauthenticated
			}
			p, err = s.d.Auth.AuthenticateToken(r.Context(), tok, auth.ClientFrom(r))
		} else {
			p, err = s.d.Auth.Authenticate(r.Context(), auth.RequestFrom(r))
		}
		if err != nil {
			return err
		}
		c.Set(ctxPrincipal, p)
		return next(c)
	}
}

// bearer returns the token of an "Authorization: Bearer <token>" header
// (the scheme is case-insensitive, RFC 9110 section 11.1).
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

func principalOf(c echo.Context) (auth.Principal, bool) {
	p, ok := c.Get(ctxPrincipal).(auth.Principal)
	return p, ok
}

// principal returns the authenticated caller; routes registered behind
// authenticated always have one.
func principal(c echo.Context) auth.Principal {
	p, _ := principalOf(c)
	return p
}

// decodeJSON reads the request body into v strictly: one JSON object,
// no unknown fields, nothing after it. An empty body is an empty object.
func decodeJSON(c echo.Context, v any) error {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return apiError(fault.CodeTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit))
		}
		return apiError(fault.CodeInvalid, "could not read the request body")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	} else if mt, _, _ := mime.ParseMediaType(c.Request().Header.Get("Content-Type")); mt != "application/json" {
		// An HTML form on another site can post text/plain or form
		// bodies without a preflight; JSON it cannot.
		return apiError(fault.CodeUnsupportedMedia, "request bodies must be sent as Content-Type: application/json")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apiError(fault.CodeInvalid, "invalid JSON body: "+jsonProblem(err))
	}
	if dec.More() {
		return apiError(fault.CodeInvalid, "invalid JSON body: data after the object")
	}
	return nil
}

// jsonProblem describes a decoding error without echoing the input back.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "syntax error at byte " + strconv.FormatInt(se.Offset, 10)
	case errors.As(err, &te):
		return "field " + strconv.Quote(te.Field) + " must be " + te.Type.String()
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	return "not a JSON object"
}

// Pagination defaults.
const (
	defaultLimit = 50
	maxLimit     = 500
)

// page is a keyset page request: at most limit items whose key sorts after
// the cursor.
type page struct {
	limit int
	after string // decoded key; "" for the first page
}

// pageOf reads ?limit= and ?after= (an opaque cursor from a previous
// answer's "next").
func pageOf(c echo.Context) (page, error) {
	pg := page{limit: defaultLimit}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return page{}, apiError(fault.CodeInvalid, fmt.Sprintf("limit must be 1 to %d", maxLimit))
		}
		pg.limit = n
	}
	if v := c.QueryParam("after"); v != "" {
		b, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || len(b) == 0 || len(b) > 256 {
			return page{}, apiError(fault.CodeInvalid, "after is not a cursor from this API")
		}
		pg.after = string(b)
	}
	return pg, nil
}

func cursor(key string) string { return base64.RawURLEncoding.EncodeToString([]byte(key)) }

// list is every list answer.
type list[T any] struct {
	Items []T `json:"items"`
	// Next is the cursor of the following page; "" on the last page.
	Next string `json:"next"`
}

// paginate pages a whole slice by a stable unique key (sorted as bytes).
// Services that return whole slices (users, tokens, tickets, approvals,
// tenants: small per tenant) are paged here until they take a cursor
// themselves; the cursor format does not change when they do.
func paginate[T any](items []T, key func(T) string, pg page) list[T] {
	sorted := make([]T, len(items))
	copy(sorted, items)
	sort.SliceStable(sorted, func(i, j int) bool { return key(sorted[i]) < key(sorted[j]) })
	start := sort.Search(len(sorted), func(i int) bool { return key(sorted[i]) > pg.after })
	if pg.after == "" {
		start = 0
	}
	end := min(start+pg.limit, len(sorted))
	out := list[T]{Items: sorted[start:end]}
	if out.Items == nil {
		out.Items = []T{}
	}
	if end < len(sorted) {
		out.Next = cursor(key(sorted[end-1]))
	}
	return out
}

// tenantParam is the ?tenant= an appliance admin names to act in a
// tenant; everyone else acts in their own (Authorize refuses another).
func tenantParam(c echo.Context) string { return c.QueryParam("tenant") }
