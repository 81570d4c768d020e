package ui

import (
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestOverTLS runs the console on a real HTTPS listener on 127.0.0.1 and
// logs in with a real client and cookie jar: the __Host- cookie is Secure,
// so it only comes back over TLS, and the CSRF token from the body makes a
// state-changing call succeed.
func TestOverTLS(t *testing.T) {
	f := newFixture(t)
	ts := httptest.NewTLSServer(f.srv.Handler())
	defer ts.Close()
	jar, _ := cookiejar.New(nil)
	c := ts.Client()
	c.Jar = jar
	post := func(path, body, csrf string) (*http.Response, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("POST", ts.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if csrf != "" {
			req.Header.Set("X-CSRF-Token", csrf)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp, m
	}
	u := f.users["a-op"]
	if resp, m := post("/api/v1/auth/login", jsonBody(map[string]string{"name": u.Name, "password": u.password}), ""); resp.StatusCode != 200 || m["stage"] != "password" {
		t.Fatalf("login: %d %v", resp.StatusCode, m)
	}
	resp, m := post("/api/v1/auth/totp", jsonBody(map[string]string{"code": f.code("a-op")}), "")
	if resp.StatusCode != 200 || m["stage"] != "full" {
		t.Fatalf("totp: %d %v", resp.StatusCode, m)
	}
	base, _ := url.Parse(ts.URL)
	if ck := jar.Cookies(base); len(ck) != 1 || ck[0].Value != m["token"] {
		t.Fatalf("jar holds %v", ck)
	}
	r, err := c.Get(ts.URL + "/api/v1/auth/whoami")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 200 || r.Header.Get("Strict-Transport-Security") == "" {
		t.Fatalf("whoami over TLS: %d", r.StatusCode)
	}
	if resp, _ := post("/api/v1/auth/logout", "", ""); resp.StatusCode != 403 {
		t.Fatalf("logout without CSRF: %d", resp.StatusCode)
	}
	if resp, _ := post("/api/v1/auth/logout", "", m["csrf"].(string)); resp.StatusCode != 204 {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
}
