package ui

import (
	"encoding/json"
	"net/http"
	"testing"

	"firewalliq/appliance/auth/keytest"
)

// ceremonyAnswer is a begun ceremony as the API answers it.
type ceremonyAnswer struct {
	Ceremony string          `json:"ceremony"`
	Options  json.RawMessage `json:"options"`
}

// TestSecurityKeyAPI: a security lead registers a key over the API (after
// step-up) with a software authenticator, signs in with it as the second
// factor, answers a step-up challenge with it, and lists it; another user
// cannot remove it, and only appliance admins read the key requirement.
// Every answer is validated against the OpenAPI document.
func TestSecurityKeyAPI(t *testing.T) {
	f := newFixture(t)
	key := keytest.New(f.app.Auth.KeyConfig().Origins[0])

	// Register: step-up, begin, create(), finish.
	rec, _ := f.sensitive(request{method: "POST", path: "/api/v1/auth/keys", as: "a-lead", body: `{"name":"api key"}`})
	if rec.Code != http.StatusOK {
		t.Fatalf("begin registration: %d %s", rec.Code, rec.body)
	}
	var c ceremonyAnswer
	if err := json.Unmarshal(rec.body, &c); err != nil {
		t.Fatal(err)
	}
	cred, err := key.Create(c.Options)
	if err != nil {
		t.Fatal(err)
	}
	r := f.do(request{method: "POST", path: "/api/v1/auth/keys/finish", as: "a-lead", body: jsonBody(map[string]any{"ceremony": c.Ceremony, "credential": json.RawMessage(cred)})})
	if r.Code != http.StatusCreated {
		t.Fatalf("finish registration: %d %s", r.Code, r.Body)
	}
	var sk securityKeyOut
	decode(t, r, &sk)
	// The same answer again: the ceremony is spent.
	if r := f.do(request{method: "POST", path: "/api/v1/auth/keys/finish", as: "a-lead", body: jsonBody(map[string]any{"ceremony": c.Ceremony, "credential": json.RawMessage(cred)})}); r.Code != http.StatusUnauthorized {
		t.Fatalf("replayed registration: %d %s", r.Code, r.Body)
	}

	// Login with the key as the second factor.
	u := f.users["a-lead"]
	r = f.do(request{method: "POST", path: "/api/v1/auth/login", body: jsonBody(map[string]string{"name": u.Name, "password": u.password})})
	var l loginAnswer
	decode(t, r, &l)
	r = f.do(request{method: "POST", path: "/api/v1/auth/key/begin", cookie: l.Token, body: `{}`})
	if r.Code != http.StatusOK {
		t.Fatalf("key login begin: %d %s", r.Code, r.Body)
	}
	decode(t, r, &c)
	assertion, err := key.Get(c.Options)
	if err != nil {
		t.Fatal(err)
	}
	r = f.do(request{method: "POST", path: "/api/v1/auth/key", cookie: l.Token, body: jsonBody(map[string]any{"ceremony": c.Ceremony, "credential": json.RawMessage(assertion)})})
	if r.Code != http.StatusOK {
		t.Fatalf("key login: %d %s", r.Code, r.Body)
	}
	decode(t, r, &l)
	if l.Stage != "full" {
		t.Fatalf("key login stage %s", l.Stage)
	}
	u.token, u.csrf = l.Token, l.CSRF

	// A step-up answered by the key.
	first := f.do(request{method: "POST", path: "/api/v1/auth/recovery-codes", as: "a-lead"})
	var e apiErr
	if err := json.Unmarshal(first.Body.Bytes(), &e); err != nil || e.Error.StepUp == nil {
		t.Fatalf("no challenge: %s", first.Body)
	}
	target := map[string]string{"operation": e.Error.StepUp.Operation, "request": e.Error.StepUp.Request}
	r = f.do(request{method: "POST", path: "/api/v1/auth/step-up/key/begin", as: "a-lead", body: jsonBody(target)})
	if r.Code != http.StatusOK {
		t.Fatalf("key step-up begin: %d %s", r.Code, r.Body)
	}
	decode(t, r, &c)
	if assertion, err = key.Get(c.Options); err != nil {
		t.Fatal(err)
	}
	r = f.do(request{method: "POST", path: "/api/v1/auth/step-up/key", as: "a-lead", body: jsonBody(map[string]any{
		"operation": target["operation"], "request": target["request"], "ceremony": c.Ceremony, "credential": json.RawMessage(assertion)})})
	if r.Code != http.StatusOK {
		t.Fatalf("key step-up: %d %s", r.Code, r.Body)
	}
	if r := f.do(request{method: "POST", path: "/api/v1/auth/recovery-codes", as: "a-lead"}); r.Code != http.StatusOK {
		t.Fatalf("after key step-up: %d %s", r.Code, r.Body)
	}

	// The list shows the key and its last use.
	r = f.do(request{method: "GET", path: "/api/v1/auth/keys", as: "a-lead"})
	var list struct {
		Items []securityKeyOut `json:"items"`
	}
	decode(t, r, &list)
	if len(list.Items) != 1 || list.Items[0].ID != sk.ID || list.Items[0].LastUsedAt == nil || list.Items[0].SignCount != 2 {
		t.Fatalf("keys %+v", list.Items)
	}
	// Another user cannot remove it (not found after their step-up).
	if rec, _ := f.sensitive(request{method: "DELETE", path: "/api/v1/auth/keys/" + sk.ID, as: "a-op"}); rec.Code != http.StatusNotFound {
		t.Fatalf("another user's removal: %d %s", rec.Code, rec.body)
	}
	// The key requirement: appliance admins only.
	if r := f.do(request{method: "GET", path: "/api/v1/auth/key-policy", as: "a-admin"}); r.Code != http.StatusForbidden {
		t.Fatalf("tenant admin read the key policy: %d", r.Code)
	}
	rec, _ = f.sensitive(request{method: "POST", path: "/api/v1/auth/key-policy", as: "sys", body: `{"appliance_admins":false,"security_leads":true}`})
	if rec.Code != http.StatusOK {
		t.Fatalf("set key policy: %d %s", rec.Code, rec.body)
	}
	// The lead has a key: a TOTP login is now refused.
	r = f.do(request{method: "POST", path: "/api/v1/auth/login", body: jsonBody(map[string]string{"name": u.Name, "password": u.password})})
	decode(t, r, &l)
	r = f.do(request{method: "POST", path: "/api/v1/auth/totp", cookie: l.Token, body: jsonBody(map[string]string{"code": f.code("a-lead")})})
	if e := (apiErr{}); r.Code != http.StatusForbidden || json.Unmarshal(r.Body.Bytes(), &e) != nil || e.Error.Code != "security_key_required" {
		t.Fatalf("TOTP login of a key-required lead: %d %s", r.Code, r.Body)
	}
}
