package apiclient

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"firewalliq/appliance/auth"
)

// pinOf is the pin of a test server's certificate, as init prints pins.
func pinOf(srv *httptest.Server) string {
	s := sha256.Sum256(srv.Certificate().Raw)
	return hex.EncodeToString(s[:])
}

func newClient(t *testing.T, srv *httptest.Server, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{Addr: srv.URL, CertSHA256: pinOf(srv), Session: "sess", CSRF: "csrf"}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWireNamesMatchServer(t *testing.T) {
	if SessionCookieName != auth.SessionCookieName || CSRFHeader != auth.CSRFHeader {
		t.Fatalf("client wire names %q/%q differ from auth's %q/%q", SessionCookieName, CSRFHeader, auth.SessionCookieName, auth.CSRFHeader)
	}
}

func TestErrorDecoding(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   Error
	}{
		{name: "api error", status: 403, body: `{"error":{"code":"forbidden","message":"no","request_id":"r1"}}`,
			want: Error{Status: 403, Code: "forbidden", Message: "no", RequestID: "r1"}},
		{name: "step-up challenge", status: 401, body: `{"error":{"code":"step_up_required","message":"m","request_id":"r2","step_up":{"operation":"siem.configure","request":"{\"a\":1}"}}}`,
			want: Error{Status: 401, Code: "step_up_required", Message: "m", RequestID: "r2", StepUp: &Challenge{Operation: "siem.configure", Request: `{"a":1}`}}},
		{name: "no request id in body: header's", status: 404, body: `{"error":{"code":"not_found","message":"gone"}}`,
			want: Error{Status: 404, Code: "not_found", Message: "gone", RequestID: "from-header"}},
		{name: "not our shape", status: 502, body: `<html>bad gateway</html>`,
			want: Error{Status: 502, Code: "internal", Message: "Bad Gateway", RequestID: "from-header"}},
		{name: "empty 429", status: 429, body: ``,
			want: Error{Status: 429, Code: "rate_limited", Message: "Too Many Requests", RequestID: "from-header"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set(RequestIDHeader, "from-header")
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			err := newClient(t, srv, nil).Get(context.Background(), "/x", nil, nil)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *Error", err)
			}
			got, _ := json.Marshal(e)
			want, _ := json.Marshal(tt.want)
			if string(got) != string(want) {
				t.Fatalf("decoded %s, want %s", got, want)
			}
			if !errors.Is(err, &Error{Code: tt.want.Code}) {
				t.Fatalf("errors.Is by code %q failed", tt.want.Code)
			}
		})
	}
}

// stepUpServer answers POST /api/v1/things with a step-up challenge until a
// grant for it was made with code 123456; the grant is spent by the retry.
type stepUpServer struct {
	mu        sync.Mutex
	granted   bool
	bodies    []string
	stepUps   int
	alwaysAsk bool
}

func (s *stepUpServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	if ck, err := r.Cookie(SessionCookieName); err != nil || ck.Value != "sess" || r.Header.Get(CSRFHeader) != "csrf" || r.Header.Get(RequestIDHeader) == "" {
		w.WriteHeader(401)
		io.WriteString(w, `{"error":{"code":"unauthenticated","message":"who are you"}}`)
		return
	}
	switch r.URL.Path {
	case "/api/v1/auth/step-up":
		s.stepUps++
		var g map[string]string
		json.Unmarshal(body, &g)
		if g["code"] != "123456" || g["operation"] != "things.make" || g["request"] != `{"name":"x"}` || g["tenant"] != "t1" || len(g) != 4 {
			w.WriteHeader(401)
			io.WriteString(w, `{"error":{"code":"invalid_code","message":"invalid code"}}`)
			return
		}
		s.granted = true
		io.WriteString(w, `{"id":"g1","operation":"things.make","expires_at":"2030-01-01T00:00:00Z"}`)
	case "/api/v1/things":
		s.bodies = append(s.bodies, string(body))
		if !s.granted || s.alwaysAsk {
			w.WriteHeader(401)
			io.WriteString(w, `{"error":{"code":"step_up_required","message":"step-up","step_up":{"operation":"things.make","request":"{\"name\":\"x\"}","tenant":"t1"}}}`)
			return
		}
		s.granted = false
		io.WriteString(w, `{"id":"t1"}`)
	default:
		w.WriteHeader(404)
	}
}

func TestStepUpRetry(t *testing.T) {
	tests := []struct {
		name      string
		code      string
		codeErr   error
		token     string
		alwaysAsk bool
		wantErr   string
		wantCalls int // StepUp callback calls
		wantSends int // requests to /things
		wantGrant int // calls of /auth/step-up
	}{
		{name: "fresh code: retried once and done", code: "123456", wantCalls: 1, wantSends: 2, wantGrant: 1},
		{name: "wrong code: no retry", code: "000000", wantErr: "invalid_code", wantCalls: 1, wantSends: 1, wantGrant: 1},
		{name: "no code to be had: no step-up call", codeErr: errors.New("standard input ended"), wantErr: "standard input ended", wantCalls: 1, wantSends: 1},
		{name: "second challenge is not met again", code: "123456", alwaysAsk: true, wantErr: "step_up_required", wantCalls: 1, wantSends: 2, wantGrant: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &stepUpServer{alwaysAsk: tt.alwaysAsk}
			srv := httptest.NewTLSServer(s)
			defer srv.Close()
			calls := 0
			c := newClient(t, srv, func(cfg *Config) {
				cfg.StepUp = func(_ context.Context, ch Challenge) (string, error) {
					calls++
					if ch.Operation != "things.make" {
						t.Errorf("challenge operation %q", ch.Operation)
					}
					return tt.code, tt.codeErr
				}
			})
			var out struct{ ID string }
			err := c.Post(context.Background(), "/things", map[string]string{"name": "x"}, &out)
			if tt.wantErr == "" && (err != nil || out.ID != "t1") {
				t.Fatalf("err = %v, out = %+v", err, out)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
			if calls != tt.wantCalls || len(s.bodies) != tt.wantSends || s.stepUps != tt.wantGrant {
				t.Fatalf("callback %d, sends %d, step-ups %d; want %d, %d, %d", calls, len(s.bodies), s.stepUps, tt.wantCalls, tt.wantSends, tt.wantGrant)
			}
			for _, b := range s.bodies {
				if b != s.bodies[0] {
					t.Fatalf("retry sent a different body: %q vs %q", b, s.bodies[0])
				}
			}
		})
	}
}

func TestStepUpNotWithBearerToken(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" || r.Header.Get(CSRFHeader) != "" {
			t.Errorf("bearer request carried %q / csrf %q", r.Header.Get("Authorization"), r.Header.Get(CSRFHeader))
		}
		w.WriteHeader(401)
		io.WriteString(w, `{"error":{"code":"step_up_required","message":"m","step_up":{"operation":"o","request":"r"}}}`)
	}))
	defer srv.Close()
	c := newClient(t, srv, func(cfg *Config) {
		cfg.Token = "tok"
		cfg.StepUp = func(context.Context, Challenge) (string, error) { t.Error("asked for a code"); return "", nil }
	})
	if err := c.Post(context.Background(), "/x", struct{}{}, nil); !errors.Is(err, ErrNoStepUp) {
		t.Fatalf("err = %v, want ErrNoStepUp", err)
	}
}

func TestTLSTrust(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"ok":true}`)
	}))
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	wrong := strings.Repeat("ab", 32)
	tests := []struct {
		name    string
		pin, ca string
		want    error // nil: success; else errors.Is target
		wantMsg string
	}{
		{name: "right pin", pin: pinOf(srv)},
		{name: "right pin, upper case with colons", pin: strings.ToUpper(colons(pinOf(srv)))},
		{name: "wrong pin refused", pin: wrong, want: ErrPinMismatch},
		{name: "CA file", ca: caFile},
		{name: "CA file and wrong pin refused", ca: caFile, pin: wrong, want: ErrPinMismatch},
		{name: "neither: system roots do not know it", wantMsg: "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(Config{Addr: srv.URL, CertSHA256: tt.pin, CACertFile: tt.ca})
			if err != nil {
				t.Fatal(err)
			}
			var out map[string]bool
			err = c.Get(context.Background(), "/x", nil, &out)
			switch {
			case tt.want == nil && tt.wantMsg == "":
				if err != nil || !out["ok"] {
					t.Fatalf("err = %v, out = %v", err, out)
				}
			case tt.want != nil:
				if !errors.Is(err, tt.want) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
			default:
				if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantMsg)
				}
			}
		})
	}
}

func colons(h string) string {
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want error
	}{
		{name: "plain http", cfg: Config{Addr: "http://127.0.0.1:8443"}, want: ErrBadAddress},
		{name: "no scheme", cfg: Config{Addr: "127.0.0.1:8443"}, want: ErrBadAddress},
		{name: "short pin", cfg: Config{Addr: "https://127.0.0.1:8443", CertSHA256: "abcd"}, want: ErrBadPin},
		{name: "pin not hex", cfg: Config{Addr: "https://127.0.0.1:8443", CertSHA256: strings.Repeat("zz", 32)}, want: ErrBadPin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestList(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("after") {
		case "":
			io.WriteString(w, `{"items":[{"n":1},{"n":2}],"next":"c2"}`)
		case "c2":
			io.WriteString(w, `{"items":[{"n":3}],"next":""}`)
		default:
			w.WriteHeader(400)
		}
	}))
	defer srv.Close()
	items, err := newClient(t, srv, nil).List(context.Background(), "/users", url.Values{"tenant": {"t1"}})
	if err != nil || len(items) != 3 || string(items[2]) != `{"n":3}` {
		t.Fatalf("items %s, err %v", items, err)
	}
}

func TestCredentialsFile(t *testing.T) {
	base := t.TempDir()
	path, err := CredentialsPath(func(k string) string { return map[string]string{"XDG_CONFIG_HOME": base}[k] })
	if err != nil || path != filepath.Join(base, "firewalliq", "credentials") {
		t.Fatalf("path %q, err %v", path, err)
	}
	if _, err := LoadCredentials(path); !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("load before save: %v", err)
	}
	want := Credentials{Addr: "https://127.0.0.1:8443", CertSHA256: strings.Repeat("ab", 32), User: "alice", Token: "s", CSRF: "c"}
	if err := SaveCredentials(path, want); err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != mode {
			t.Fatalf("%s: mode %v, err %v; want %04o", p, st.Mode().Perm(), err, mode)
		}
	}
	got, err := LoadCredentials(path)
	if err != nil || got != want {
		t.Fatalf("loaded %+v, %v; want %+v", got, err, want)
	}
	// A file others can read is refused, not used.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCredentials(path); !errors.Is(err, ErrCredentialsMode) {
		t.Fatalf("load of a 0644 file: %v", err)
	}
	// Saving again puts it back to 0600.
	if err := SaveCredentials(path, want); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCredentials(path); err != nil {
		t.Fatal(err)
	}
	if err := RemoveCredentials(path); err != nil {
		t.Fatal(err)
	}
	if err := RemoveCredentials(path); err != nil {
		t.Fatalf("second remove: %v", err)
	}
}

func TestCredentialsPath(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
		err  error
	}{
		{name: "XDG", env: map[string]string{"XDG_CONFIG_HOME": "/x", "HOME": "/h"}, want: "/x/firewalliq/credentials"},
		{name: "HOME fallback", env: map[string]string{"HOME": "/h"}, want: "/h/.config/firewalliq/credentials"},
		{name: "relative XDG ignored", env: map[string]string{"XDG_CONFIG_HOME": "rel", "HOME": "/h"}, want: "/h/.config/firewalliq/credentials"},
		{name: "nothing", env: map[string]string{}, err: ErrNoConfigDir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CredentialsPath(func(k string) string { return tt.env[k] })
			if got != tt.want || !errors.Is(err, tt.err) {
				t.Fatalf("got %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

// FuzzParsePin: a pin that parses is 64 lower-case hex digits and parses to
// itself again.
func FuzzParsePin(f *testing.F) {
	f.Add(strings.Repeat("ab", 32))                          // valid
	f.Add(strings.ToUpper(colons(strings.Repeat("0f", 32)))) // openssl style
	f.Add("abcd")                                            // short
	f.Add(strings.Repeat("g", 64))                           // not hex
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePin(s)
		if err != nil {
			return
		}
		if len(p) != 64 || strings.ToLower(p) != p {
			t.Fatalf("ParsePin(%q) = %q", s, p)
		}
		if q, err := ParsePin(p); err != nil || q != p {
			t.Fatalf("not idempotent: %q -> %q, %v", p, q, err)
		}
	})
}

// FuzzDecodeError: any body with any status gives an *Error with a code and
// never panics.
func FuzzDecodeError(f *testing.F) {
	f.Add(401, `{"error":{"code":"step_up_required","message":"m","step_up":{"operation":"o","request":"r"}}}`) // challenge
	f.Add(500, `{"error":{"code":""}}`)                                                                         // empty code
	f.Add(418, `not json`)                                                                                      // foreign body
	f.Add(403, `{"error":"forbidden"}`)                                                                         // wrong shape
	f.Fuzz(func(t *testing.T, status int, body string) {
		err := decodeError(&http.Response{StatusCode: status, Header: http.Header{}}, []byte(body), "rid")
		var e *Error
		if !errors.As(err, &e) || e.Code == "" || e.RequestID == "" || e.Error() == "" {
			t.Fatalf("decodeError(%d, %q) = %#v", status, body, err)
		}
	})
}
