package console_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"firewalliq/appliance/auth"
)

// logFields parses one line of the text log (key=value, values quoted
// when they hold spaces) into its fields.
func logFields(line string) map[string]string {
	out := map[string]string{}
	for rest := line; rest != ""; {
		rest = strings.TrimLeft(rest, " ")
		k, v, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		if strings.HasPrefix(v, `"`) {
			end := 1
			for end < len(v) && (v[end] != '"' || v[end-1] == '\\') {
				end++
			}
			out[k], rest = strings.ReplaceAll(v[1:min(end, len(v))], `\"`, `"`), v[min(end+1, len(v)):]
			continue
		}
		val, next, _ := strings.Cut(v, " ")
		out[k], rest = val, next
	}
	return out
}

// accessLine finds the access-log line of the request with id.
func (f *fixture) accessLine(id string) map[string]string {
	f.t.Helper()
	for _, l := range strings.Split(f.logs.String(), "\n") {
		if m := logFields(l); m["msg"] == "http" && m["request_id"] == id {
			return m
		}
	}
	f.t.Fatalf("no access-log line with request_id=%s in:\n%s", id, f.logs.String())
	return nil
}

// TestAccessLog checks the access log's line for console and API
// requests: method, route and path, status, request id (the one in the
// X-Request-ID header), duration, client address and, for a signed-in
// caller, the user id; and that no secret the requests carried (session
// cookie, CSRF token, bearer token, password) is anywhere in the log.
func TestAccessLog(t *testing.T) {
	f := newFixture(t)
	b, _, pw := f.firstRun("root", f.init.OneTimePassword)
	u, _ := url.Parse(f.srv.URL)
	var session string
	for _, ck := range b.c.Jar.Cookies(u) {
		if ck.Name == auth.SessionCookieName {
			session = ck.Value
		}
	}
	if session == "" {
		t.Fatal("no session cookie")
	}
	who := b.get("/api/v1/auth/whoami")
	var me struct {
		UserID string `json:"user_id"`
	}
	if err := json.Unmarshal([]byte(who.body), &me); err != nil || me.UserID == "" {
		t.Fatalf("whoami: %s %v", who.body, err)
	}
	const bearer = "fiqt_not-a-real-token-but-secret-all-the-same"
	apiWithToken := func() answer {
		req, err := http.NewRequest(http.MethodGet, f.srv.URL+"/api/v1/auth/whoami", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+bearer)
		return f.browser().do(req)
	}
	tests := []struct {
		name                string
		do                  func() answer
		method, route, path string
		status              int
		user                string
	}{
		{"console page, signed in", func() answer { return b.get("/console/sessions") }, "GET", "/console/sessions", "/console/sessions", 200, me.UserID},
		{"console form with its CSRF token", func() answer {
			return b.post("/console/users", url.Values{"name": {"olga"}, "role": {"operator"}})
		}, "POST", "/console/users", "/console/users", 400, me.UserID},
		{"console page, signed out", func() answer { return f.browser().get("/console/login") }, "GET", "/console/login", "/console/login", 200, ""},
		{"console error page", func() answer { return f.browser().get("/console/static/no-such.css") }, "GET", "/console/static*", "/console/static/no-such.css", 404, ""},
		{"API, session cookie", func() answer { return b.get("/api/v1/auth/whoami") }, "GET", "/api/v1/auth/whoami", "/api/v1/auth/whoami", 200, me.UserID},
		{"API, bad bearer token", apiWithToken, "GET", "/api/v1/auth/whoami", "/api/v1/auth/whoami", 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.do()
			if a.status != tt.status {
				t.Fatalf("status %d, want %d: %s", a.status, tt.status, a.body)
			}
			id := a.header.Get("X-Request-ID")
			if id == "" {
				t.Fatal("no X-Request-ID")
			}
			// The line is written after the answer: wait for it (10 s
			// at most by the clock; the writing goroutine may wait for a
			// CPU on a busy machine).
			var m map[string]string
			for deadline := time.Now().Add(10 * time.Second); m == nil && time.Now().Before(deadline); {
				if strings.Contains(f.logs.String(), "request_id="+id) {
					m = f.accessLine(id)
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if m == nil {
				m = f.accessLine(id)
			}
			for k, v := range map[string]string{"method": tt.method, "path": tt.path, "status": strconv.Itoa(tt.status)} {
				if m[k] != v {
					t.Errorf("%s=%q, want %q; line %v", k, m[k], v, m)
				}
			}
			if !strings.HasPrefix(m["route"], strings.TrimSuffix(tt.route, "*")) {
				t.Errorf("route=%q, want %q", m["route"], tt.route)
			}
			if d, err := time.ParseDuration(m["duration"]); err != nil || d <= 0 {
				t.Errorf("duration=%q: %v", m["duration"], err)
			}
			if m["ip"] != "127.0.0.1" {
				t.Errorf("ip=%q", m["ip"])
			}
			if m["user"] != tt.user {
				t.Errorf("user=%q, want %q", m["user"], tt.user)
			}
		})
	}
	logs := f.logs.String()
	for name, secret := range map[string]string{"session cookie": session, "CSRF token": b.csrf, "bearer token": bearer,
		"password": pw, "one-time password": f.init.OneTimePassword} {
		if secret != "" && strings.Contains(logs, secret) {
			t.Errorf("the log holds the %s", name)
		}
	}
	if b.csrf == "" {
		t.Error("no CSRF token was sent")
	}
}
