package console_test

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

var requestIDRe = regexp.MustCompile(`id="request-id">([^<]*)<`)

// wantRequestID fails unless a is the console's HTML error page whose
// request id is the one in the X-Request-ID header.
func wantRequestID(t *testing.T, a answer) {
	t.Helper()
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("Content-Type %q, want the HTML error page; body:\n%s", ct, a.body)
	}
	m := requestIDRe.FindStringSubmatch(a.body)
	if m == nil {
		t.Fatalf("no request id on the page:\n%s", a.body)
	}
	if id, h := html.UnescapeString(m[1]), a.header.Get("X-Request-ID"); id == "" || id != h {
		t.Fatalf("page shows request id %q, header says %q", id, h)
	}
}

// TestErrorPagesUnderConsole checks that errors the API server answers
// itself, before any page handler runs (an oversized body, a wrong method,
// a missing static file), are the console's HTML error page under
// /console/ (status, code, the request id of the X-Request-ID header) and
// stay JSON under /api/.
func TestErrorPagesUnderConsole(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	big := strings.Repeat("a", 1<<20+1)
	// chunked hides the length: the limit is found while the form is read.
	chunked := func(r io.Reader) io.Reader { return struct{ io.Reader }{r} }
	tests := []struct {
		name   string
		method string
		path   string
		body   io.Reader
		status int
		code   string
	}{
		{"form over the body limit", http.MethodPost, "/console/login", strings.NewReader("name=" + big), http.StatusRequestEntityTooLarge, "too_large"},
		{"form over the body limit without a length", http.MethodPost, "/console/login", chunked(strings.NewReader("name=" + big)), http.StatusRequestEntityTooLarge, "too_large"},
		{"signed-in form over the limit without a length", http.MethodPost, "/console/users", chunked(strings.NewReader("name=" + big)), http.StatusRequestEntityTooLarge, "too_large"},
		{"wrong method", http.MethodPut, "/console/login", strings.NewReader("x=1"), http.StatusMethodNotAllowed, "method_not_allowed"},
		{"wrong method, signed-in route", http.MethodDelete, "/console/users", nil, http.StatusMethodNotAllowed, "method_not_allowed"},
		{"missing static file", http.MethodGet, "/console/static/no-such.css", nil, http.StatusNotFound, "not_found"},
		{"unknown page", http.MethodGet, "/console/no-such-page", nil, http.StatusNotFound, "not_found"},
		{"API: body over the limit", http.MethodPost, "/api/v1/auth/login", strings.NewReader(`{"name":"` + big + `"}`), http.StatusRequestEntityTooLarge, "too_large"},
		{"API: wrong method", http.MethodPut, "/api/v1/auth/login", strings.NewReader("{}"), http.StatusMethodNotAllowed, "method_not_allowed"},
		{"API: unknown route", http.MethodGet, "/api/v1/no-such-route", nil, http.StatusNotFound, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, f.srv.URL+tt.path, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if tt.body != nil {
				ct := "application/x-www-form-urlencoded"
				if strings.HasPrefix(tt.path, "/api/") {
					ct = "application/json"
				}
				req.Header.Set("Content-Type", ct)
			}
			a := b.do(req)
			if a.status != tt.status {
				t.Fatalf("status %d, want %d; body:\n%s", a.status, tt.status, a.body)
			}
			if strings.HasPrefix(tt.path, "/api/") {
				var e struct {
					Error struct {
						Code      string `json:"code"`
						RequestID string `json:"request_id"`
					} `json:"error"`
				}
				if err := json.Unmarshal([]byte(a.body), &e); err != nil || e.Error.Code != tt.code || e.Error.RequestID != a.header.Get("X-Request-ID") {
					t.Fatalf("API answer %q (%v), want JSON %s with the header's request id", a.body, err, tt.code)
				}
				return
			}
			want(t, a, tt.status, "<!DOCTYPE html>", "("+tt.code+")")
			wantRequestID(t, a)
		})
	}
}
