package ui

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// stepUp answers the step_up_required answer rec with a fresh code of the
// user and returns the grant's answer.
func (f *fixture) stepUp(as string, rec interface{ Bytes() []byte }) {
	f.t.Helper()
	var e apiErr
	if err := json.Unmarshal(rec.Bytes(), &e); err != nil || e.Error.Code != "step_up_required" || e.Error.StepUp == nil {
		f.t.Fatalf("want a step_up_required challenge, got %s", rec.Bytes())
	}
	ch := e.Error.StepUp
	r := f.do(request{method: "POST", path: "/api/v1/auth/step-up", as: as,
		body: jsonBody(map[string]string{"operation": ch.Operation, "request": ch.Request, "code": f.code(as)})})
	if r.Code != 200 {
		f.t.Fatalf("step-up: %d %s", r.Code, r.Body)
	}
}

// sensitive sends r, expects the step-up challenge, steps up, and sends r
// again; it returns the second answer.
func (f *fixture) sensitive(r request) (*httpRecorder, []string) {
	f.t.Helper()
	before := f.head()
	first := f.do(r)
	if first.Code != http.StatusUnauthorized {
		f.t.Fatalf("%s %s without step-up: %d %s", r.method, r.path, first.Code, first.Body)
	}
	f.stepUp(r.as, first.Body)
	second := f.do(r)
	return &httpRecorder{second.Code, second.Body.Bytes()}, actions(f.since(before))
}

type httpRecorder struct {
	Code int
	body []byte
}

func (h *httpRecorder) Bytes() []byte { return h.body }

// createToken makes an API token for user as with role through the API.
func (f *fixture) createToken(as, role string) string {
	f.t.Helper()
	rec, _ := f.sensitive(request{method: "POST", path: "/api/v1/tokens", as: as, body: jsonBody(map[string]string{"name": as + "-" + role + "-token", "role": role})})
	if rec.Code != 201 {
		f.t.Fatalf("create token: %d %s", rec.Code, rec.body)
	}
	var out tokenOut
	if err := json.Unmarshal(rec.body, &out); err != nil {
		f.t.Fatal(err)
	}
	return out.Token
}

const noSuchID = "zz_0000000000000000"

// TestStepUpFlow walks every step-up route: the first attempt answers 401
// step_up_required with the challenge (and audits auth.stepup.failed), the
// step-up with a fresh TOTP grants (auth.stepup), and the identical retry
// succeeds and writes the operation's own entry.
func TestStepUpFlow(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name   string
		req    func() request
		status int
		action audit.Action
	}{
		{"create tenant", func() request {
			return request{method: "POST", path: "/api/v1/tenants", as: "sys", body: `{"name":"charlie"}`}
		}, 201, audit.ActTenantCreate},
		{"create user as tenant admin", func() request {
			return request{method: "POST", path: "/api/v1/users", as: "a-admin", body: `{"name":"newbie","role":"operator"}`}
		}, 201, audit.ActUserCreate},
		{"create user as appliance admin in a named tenant", func() request {
			return request{method: "POST", path: "/api/v1/users?tenant=" + f.b, as: "sys", body: `{"name":"b-newbie","role":"auditor"}`}
		}, 201, audit.ActUserCreate},
		{"set role", func() request {
			return request{method: "POST", path: "/api/v1/users/" + f.users["a-op"].ID + "/role", as: "a-admin", body: `{"role":"auditor"}`}
		}, 204, audit.ActUserRoleChange},
		{"reset totp", func() request {
			return request{method: "POST", path: "/api/v1/users/" + f.users["a-op"].ID + "/reset-totp", as: "a-admin"}
		}, 204, audit.ActUserUpdate},
		{"disable user", func() request {
			return request{method: "POST", path: "/api/v1/users/" + f.users["a-op"].ID + "/disable", as: "a-admin"}
		}, 204, audit.ActUserDisable},
		{"create token", func() request {
			return request{method: "POST", path: "/api/v1/tokens", as: "a-aud", body: `{"name":"ci","role":"auditor","ttl":"24h"}`}
		}, 201, audit.ActTokenCreate},
		{"open support ticket", func() request {
			return request{method: "POST", path: "/api/v1/support", as: "a-admin", body: jsonBody(map[string]string{"support_user": f.users["a-sup"].ID, "ttl": "1h", "reason": "case 42"})}
		}, 201, audit.ActSupportOpen},
		{"recovery codes", func() request {
			return request{method: "POST", path: "/api/v1/auth/recovery-codes", as: "a-lead"}
		}, 200, audit.ActUserUpdate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.t = t
			rec, got := f.sensitive(tt.req())
			if rec.Code != tt.status {
				t.Fatalf("after step-up: %d %s", rec.Code, rec.body)
			}
			want := []string{string(audit.ActAuthStepUpFailed), string(audit.ActAuthStepUp), string(tt.action)}
			if !slices.Equal(got, want) {
				t.Fatalf("audit %v, want %v", got, want)
			}
		})
	}
}

// TestStepUpGrantIsBound checks that a grant serves only the exact request
// it was made for, and only once.
func TestStepUpGrantIsBound(t *testing.T) {
	f := newFixture(t)
	r := request{method: "POST", path: "/api/v1/users", as: "a-admin", body: `{"name":"one","role":"operator"}`}
	first := f.do(r)
	f.stepUp("a-admin", first.Body)
	other := r
	other.body = `{"name":"one","role":"admin"}`
	if rec := f.do(other); rec.Code != 401 || !strings.Contains(rec.Body.String(), `"step_up_required"`) {
		t.Fatalf("a grant for another request was accepted: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(r); rec.Code != 201 {
		t.Fatalf("the bound request: %d %s", rec.Code, rec.Body)
	}
	again := r
	again.body = `{"name":"two","role":"operator"}`
	if rec := f.do(again); rec.Code != 401 {
		t.Fatalf("grant reused: %d %s", rec.Code, rec.Body)
	}
	// A wrong code is invalid_code, audited as auth.stepup.failed.
	before := f.head()
	rec := f.do(request{method: "POST", path: "/api/v1/auth/step-up", as: "a-admin", body: `{"operation":"user.create","request":"{}","code":"000000"}`})
	if rec.Code != 401 || !strings.Contains(rec.Body.String(), `"invalid_code"`) {
		t.Fatalf("wrong code: %d %s", rec.Code, rec.Body)
	}
	if got := actions(f.since(before)); !slices.Equal(got, []string{"auth.stepup.failed"}) {
		t.Fatalf("audit %v", got)
	}
}

// TestScenarios are single requests with their expected answer and the
// exact audit entries they write.
func TestScenarios(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name   string
		req    request
		status int
		code   string   // error code, "" for success
		audit  []string // actions written, in order
		body   []string // substrings of the answer
	}{
		{name: "whoami", req: request{method: "GET", path: "/api/v1/auth/whoami", as: "a-op"}, status: 200, audit: []string{}, body: []string{`"role":"operator"`, `"tenant_id":"` + f.a + `"`}},
		{name: "no credentials", req: request{method: "GET", path: "/api/v1/users"}, status: 401, code: "unauthenticated", audit: []string{}},
		{name: "garbage cookie", req: request{method: "GET", path: "/api/v1/users", cookie: "fiqs_nope"}, status: 401, code: "unauthenticated", audit: []string{}},
		{name: "garbage bearer", req: request{method: "GET", path: "/api/v1/users", bearer: "fiqt_nope"}, status: 401, code: "unauthenticated", audit: []string{}},
		{name: "csrf missing", req: request{method: "POST", path: "/api/v1/tenants", as: "sys", body: `{"name":"x"}`, noCSRF: true}, status: 403, code: "csrf", audit: []string{"access.denied"}},
		{name: "csrf wrong", req: request{method: "DELETE", path: "/api/v1/tokens/" + noSuchID, as: "a-admin", badCSRF: true}, status: 403, code: "csrf", audit: []string{"access.denied"}},
		{name: "csrf not needed to read", req: request{method: "GET", path: "/api/v1/auth/sessions", as: "a-admin", noCSRF: true}, status: 200, audit: []string{}},
		{name: "oversized body", req: request{method: "POST", path: "/api/v1/tenants", as: "sys", body: `{"name":"` + strings.Repeat("x", 2<<20) + `"}`}, status: 413, code: "too_large", audit: []string{}},
		{name: "oversized login", req: request{method: "POST", path: "/api/v1/auth/login", body: `{"name":"` + strings.Repeat("x", 2<<20) + `"}`}, status: 413, code: "too_large", audit: []string{}},
		{name: "form body", req: request{method: "POST", path: "/api/v1/auth/login", body: `{"name":"a-op","password":"x"}`, header: map[string]string{"Content-Type": "text/plain"}}, status: 415, code: "unsupported_media_type", audit: []string{}},
		{name: "bad json", req: request{method: "POST", path: "/api/v1/tenants", as: "sys", body: `{"name":`}, status: 400, code: "invalid_argument", audit: []string{}},
		{name: "unknown field", req: request{method: "POST", path: "/api/v1/tenants", as: "sys", body: `{"name":"x","admin":true}`}, status: 400, code: "invalid_argument", audit: []string{}, body: []string{`unknown field \"admin\"`}},
		{name: "invalid role", req: request{method: "POST", path: "/api/v1/users", as: "a-admin", body: `{"name":"x","role":"god"}`}, status: 400, code: "invalid_argument", audit: []string{}},
		{name: "wrong role", req: request{method: "GET", path: "/api/v1/users", as: "a-op"}, status: 403, code: "forbidden", audit: []string{"access.denied"}},
		{name: "cross-tenant list", req: request{method: "GET", path: "/api/v1/users?tenant=" + f.b, as: "a-admin"}, status: 403, code: "forbidden", audit: []string{"access.denied"}},
		{name: "cross-tenant object", req: request{method: "GET", path: "/api/v1/approvals/" + noSuchID, as: "b-admin"}, status: 404, code: "not_found", audit: []string{"access.denied"}},
		{name: "appliance admin must name a tenant", req: request{method: "GET", path: "/api/v1/users", as: "sys"}, status: 403, code: "forbidden", audit: []string{"access.denied"}},
		{name: "appliance admin in a tenant", req: request{method: "GET", path: "/api/v1/users?tenant=" + f.b, as: "sys"}, status: 200, audit: []string{}, body: []string{`"name":"b-admin"`}},
		{name: "tenant admin may not list tenants", req: request{method: "GET", path: "/api/v1/tenants", as: "a-admin"}, status: 403, code: "forbidden", audit: []string{"access.denied"}},
		{name: "bad limit", req: request{method: "GET", path: "/api/v1/users?limit=0", as: "a-admin"}, status: 400, code: "invalid_argument", audit: []string{}},
		{name: "bad cursor", req: request{method: "GET", path: "/api/v1/users?after=***", as: "a-admin"}, status: 400, code: "invalid_argument", audit: []string{}},
		{name: "unknown route", req: request{method: "GET", path: "/api/v1/nope", as: "a-admin"}, status: 404, code: "not_found", audit: []string{}},
		{name: "wrong method", req: request{method: "PUT", path: "/api/v1/users", as: "a-admin"}, status: 405, code: "method_not_allowed", audit: []string{}},
		{name: "wrong password", req: request{method: "POST", path: "/api/v1/auth/login", body: `{"name":"a-op","password":"not it at all"}`}, status: 401, code: "unauthenticated", audit: []string{"auth.login.failed"}},
		{name: "unknown user", req: request{method: "POST", path: "/api/v1/auth/login", body: `{"name":"ghost","password":"not it at all"}`}, status: 401, code: "unauthenticated", audit: []string{"auth.login.failed"}},
		{name: "totp without pending session", req: request{method: "POST", path: "/api/v1/auth/totp", body: `{"code":"123456"}`}, status: 401, code: "unauthenticated", audit: []string{}},
		{name: "a full session is not a pending one", req: request{method: "POST", path: "/api/v1/auth/totp", cookie: "", as: "a-op", body: `{"code":"123456"}`}, status: 401, code: "unauthenticated", audit: []string{}},
		{name: "revoke unknown token", req: request{method: "DELETE", path: "/api/v1/tokens/" + noSuchID, as: "a-admin"}, status: 404, code: "not_found", audit: []string{"access.denied"}},
		{name: "self approval of nothing", req: request{method: "POST", path: "/api/v1/approvals/" + noSuchID + "/approve", as: "a-appr"}, status: 404, code: "not_found", audit: []string{"access.denied"}},
		{name: "version", req: request{method: "GET", path: "/api/v1/version"}, status: 200, audit: []string{}, body: []string{`"go_version":"go`}},
		{name: "openapi", req: request{method: "GET", path: "/api/v1/openapi.json"}, status: 200, audit: []string{}, body: []string{`"openapi": "3.1.0"`}},
		{name: "healthz", req: request{method: "GET", path: "/healthz"}, status: 200, audit: []string{}},
		{name: "readyz", req: request{method: "GET", path: "/readyz"}, status: 200, audit: []string{}, body: []string{`"status":"ready"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.t = t
			before := f.head()
			rec := f.do(tt.req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if tt.code != "" {
				var e apiErr
				decode(t, rec, &e)
				if e.Error.Code != tt.code || e.Error.RequestID == "" || e.Error.RequestID != rec.Header().Get(RequestIDHeader) {
					t.Fatalf("error %+v, want code %s with the request id %s", e.Error, tt.code, rec.Header().Get(RequestIDHeader))
				}
			}
			for _, s := range tt.body {
				if !strings.Contains(rec.Body.String(), s) {
					t.Errorf("answer lacks %s: %s", s, rec.Body)
				}
			}
			if got := actions(f.since(before)); !slices.Equal(got, tt.audit) {
				t.Fatalf("audit %v, want %v", got, tt.audit)
			}
		})
	}
}

// route of the role matrix: the operation it performs and a request body
// valid for the role, so only authorisation decides.
type matrixRoute struct {
	method, path string
	op           auth.Operation
	body         func(role string) string
	// tenant: the route takes ?tenant= (appliance admins can act in a
	// tenant); without it, an appliance admin is refused for tenant
	// operations.
	tenant bool
}

func matrixRoutes(f *fixture) []matrixRoute {
	none := func(string) string { return "" }
	return []matrixRoute{
		{"GET", "/api/v1/auth/sessions", auth.OpSessionList, none, false},
		{"POST", "/api/v1/auth/recovery-codes", auth.OpRecoveryCodes, none, false},
		{"GET", "/api/v1/tenants", auth.OpTenantList, none, false},
		{"POST", "/api/v1/tenants", auth.OpTenantCreate, func(string) string { return `{"name":"t"}` }, false},
		{"GET", "/api/v1/users", auth.OpUserList, none, true},
		{"POST", "/api/v1/users", auth.OpUserCreate, func(string) string { return `{"name":"m","role":"operator"}` }, true},
		{"POST", "/api/v1/users/" + noSuchID + "/role", auth.OpUserRoleChange, func(string) string { return `{"role":"operator"}` }, true},
		{"POST", "/api/v1/users/" + noSuchID + "/disable", auth.OpUserDisable, none, true},
		{"POST", "/api/v1/users/" + noSuchID + "/reset-totp", auth.OpUserTOTPReset, none, true},
		{"GET", "/api/v1/tokens", auth.OpTokenList, none, false},
		{"POST", "/api/v1/tokens", auth.OpTokenCreate, func(role string) string { return jsonBody(map[string]string{"name": "m", "role": role}) }, false},
		{"DELETE", "/api/v1/tokens/" + noSuchID, auth.OpTokenRevoke, none, false},
		{"GET", "/api/v1/support", auth.OpSupportList, none, false},
		{"POST", "/api/v1/support", auth.OpSupportOpen, func(string) string {
			return jsonBody(map[string]string{"support_user": f.users["a-sup"].ID, "ttl": "1h", "reason": "r"})
		}, false},
		{"POST", "/api/v1/support/" + noSuchID + "/close", auth.OpSupportClose, none, false},
		{"GET", "/api/v1/approvals", auth.OpApprovalList, none, false},
		{"GET", "/api/v1/approvals/" + noSuchID, auth.OpApprovalList, none, false},
		{"POST", "/api/v1/approvals/" + noSuchID + "/approve", auth.OpApprovalGrant, none, false},
		{"POST", "/api/v1/approvals/" + noSuchID + "/deny", auth.OpApprovalDeny, func(string) string { return `{"reason":"no"}` }, false},
		{"POST", "/api/v1/approvals/" + noSuchID + "/void", auth.OpApprovalVoid, func(string) string { return `{"reason":"no"}` }, false},
		{"GET", "/api/v1/alerts", auth.OpAnomalyRead, none, true},
		{"POST", "/api/v1/alerts/99999/ack", auth.OpAnomalyAck, func(string) string { return `{"comment":"seen"}` }, true},
		{"GET", "/api/v1/siem/destinations", auth.OpSIEMRead, none, true},
		{"POST", "/api/v1/siem/destinations", auth.OpSIEMConfigure, func(string) string { return `{"name":"m","kind":"udp","address":"127.0.0.1:514"}` }, true},
		{"DELETE", "/api/v1/siem/destinations/" + noSuchID, auth.OpSIEMConfigure, none, true},
		{"POST", "/api/v1/siem/destinations/" + noSuchID + "/test", auth.OpSIEMTest, none, true},
		{"GET", "/api/v1/siem/status", auth.OpSIEMRead, none, true},
		{"GET", "/api/v1/audit/entries", auth.OpAuditRead, none, true},
		{"GET", "/api/v1/audit/checkpoint", auth.OpAuditRead, none, true},
		{"GET", "/api/v1/audit/alarm", auth.OpAuditRead, none, true},
		{"POST", "/api/v1/audit/alarm/ack", auth.OpAuditAlarmAck, func(string) string { return `{"comment":"seen"}` }, false},
		{"GET", "/api/v1/scopes", auth.OpScopeRead, none, true},
		{"POST", "/api/v1/scopes", auth.OpScopeRegister, func(string) string { return `{"document":{}}` }, true},
		{"GET", "/api/v1/scopes/" + noSuchID, auth.OpScopeRead, none, true},
		{"POST", "/api/v1/scopes/" + noSuchID + "/revoke", auth.OpScopeRevoke, func(string) string { return `{"reason":"r"}` }, true},
		{"GET", "/api/v1/scope-keys", auth.OpScopeKeyList, none, true},
		{"POST", "/api/v1/scope-keys", auth.OpScopeKeyAdd, func(string) string { return `{"name":"k","public":"x"}` }, true},
		{"POST", "/api/v1/scope-keys/generate", auth.OpScopeKeyAdd, func(string) string { return `{"name":"k"}` }, true},
		{"DELETE", "/api/v1/scope-keys/" + noSuchID, auth.OpScopeKeyRevoke, none, true},
		{"POST", "/api/v1/scope-keys/" + noSuchID + "/sign", auth.OpScopeSign, func(string) string { return `{"id":"s"}` }, true},
		{"GET", "/api/v1/scans", auth.OpScanRead, none, true},
		{"POST", "/api/v1/scans", auth.OpScanRequest, func(string) string { return `{"scope_id":"` + noSuchID + `"}` }, true},
		{"GET", "/api/v1/scans/" + noSuchID, auth.OpScanRead, none, true},
		{"POST", "/api/v1/scans/" + noSuchID + "/approve", auth.OpApprovalGrant, none, true},
		{"POST", "/api/v1/scans/" + noSuchID + "/deny", auth.OpApprovalDeny, func(string) string { return `{"reason":"no"}` }, true},
		{"POST", "/api/v1/scans/" + noSuchID + "/start", auth.OpScanStart, none, true},
		{"POST", "/api/v1/scans/" + noSuchID + "/cancel", auth.OpScanCancel, none, true},
		{"GET", "/api/v1/scans/" + noSuchID + "/results", auth.OpScanRead, none, true},
		{"GET", "/api/v1/scans/" + noSuchID + "/events", auth.OpScanRead, none, true},
		{"GET", "/api/v1/scan-schedules", auth.OpScanRead, none, true},
		{"POST", "/api/v1/scan-schedules", auth.OpScanRequest, func(string) string { return `{"scope_id":"` + noSuchID + `","spec":"@every 6h"}` }, true},
		{"GET", "/api/v1/scan-schedules/" + noSuchID, auth.OpScanRead, none, true},
		{"POST", "/api/v1/scan-schedules/" + noSuchID + "/approve", auth.OpApprovalGrant, none, true},
		{"POST", "/api/v1/scan-schedules/" + noSuchID + "/edit", auth.OpScanRequest, func(string) string { return `{"scope_id":"` + noSuchID + `","spec":"@every 6h"}` }, true},
		{"POST", "/api/v1/scan-schedules/" + noSuchID + "/void", auth.OpScanCancel, func(string) string { return `{"reason":"r"}` }, true},
		{"GET", "/api/v1/evidence", auth.OpEvidenceRead, none, true},
		{"POST", "/api/v1/evidence/exports", auth.OpEvidenceExport, func(string) string { return `{"key":"k","version_id":"v"}` }, false},
		{"GET", "/api/v1/evidence/exports/" + noSuchID, auth.OpApprovalList, none, false},
		{"POST", "/api/v1/evidence/exports/" + noSuchID + "/url", auth.OpEvidenceExport, func(string) string { return `{"key":"k","version_id":"v"}` }, true},
	}
}

// TestRoleMatrix sends every route as every role and checks the answer
// against the permission matrix (auth.Permissions): a role the matrix
// does not allow gets 403 forbidden and an access.denied entry naming the
// operation; an allowed role is never refused as forbidden.
func TestRoleMatrix(t *testing.T) {
	f := newFixture(t)
	perms := map[auth.Operation]auth.Permission{}
	for _, p := range auth.Permissions() {
		perms[p.Op] = p
	}
	for _, rt := range matrixRoutes(f) {
		for _, u := range fixtureUsers {
			t.Run(rt.method+" "+rt.path+" as "+u.key, func(t *testing.T) {
				f.t = t
				perm := perms[rt.op]
				applianceAdmin := u.tenant == ""
				selfService := rt.op == auth.OpSessionList || rt.op == auth.OpRecoveryCodes
				allowed := auth.Allowed(u.role, rt.op)
				switch {
				case perm.ApplianceOnly && !applianceAdmin:
					allowed = false
				case applianceAdmin && !perm.ApplianceOnly && !perm.ApplianceWide && !selfService && !rt.tenant:
					allowed = false // must name a tenant, and this route cannot
				case u.role == store.RoleSupport && !selfService:
					allowed = false // no open ticket
				}
				path := rt.path
				if rt.tenant && applianceAdmin {
					path += "?tenant=" + f.a
				}
				before := f.head()
				rec := f.do(request{method: rt.method, path: path, as: u.key, body: rt.body(u.role)})
				var e apiErr
				_ = json.Unmarshal(rec.Body.Bytes(), &e)
				denied := slices.ContainsFunc(f.since(before), func(en audit.Entry) bool {
					return en.Action == audit.ActAccessDenied && strings.Contains(string(en.Details), `"operation":"`+string(rt.op)+`"`)
				})
				if allowed {
					if e.Error.Code == "forbidden" {
						t.Fatalf("allowed role refused: %d %s", rec.Code, rec.Body)
					}
					return
				}
				if rec.Code != 403 || e.Error.Code != "forbidden" {
					t.Fatalf("want 403 forbidden, got %d %s", rec.Code, rec.Body)
				}
				if !denied {
					t.Fatalf("no access.denied entry for %s: %v", rt.op, actions(f.since(before)))
				}
			})
		}
	}
}

// TestUnauthenticated sends every route that needs a principal without
// credentials: 401 and no audit entry.
func TestUnauthenticated(t *testing.T) {
	f := newFixture(t)
	for _, op := range apiOps() {
		if op.auth != "session" {
			continue
		}
		path := pathParam.ReplaceAllString(op.path, noSuchID)
		t.Run(op.method+" "+path, func(t *testing.T) {
			f.t = t
			before := f.head()
			rec := f.do(request{method: op.method, path: path, body: "{}"})
			if rec.Code != 401 || !strings.Contains(rec.Body.String(), `"unauthenticated"`) {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			if got := f.since(before); len(got) != 0 {
				t.Fatalf("audit %v", actions(got))
			}
		})
	}
}

// TestOpenAPICoversRoutes: every registered route is documented and every
// documented route is registered.
func TestOpenAPICoversRoutes(t *testing.T) {
	f := newFixture(t)
	var registered []string
	for _, r := range f.srv.e.Routes() {
		if r.Method == echo.RouteNotFound {
			continue
		}
		registered = append(registered, r.Method+" "+r.Path)
	}
	slices.Sort(registered)
	documented := documentedRoutes()
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not in the OpenAPI document", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(registered, d) {
			t.Errorf("documented %s is not registered", d)
		}
	}
}

// TestFirstRun is the story after 'firewalliq init': the first admin logs
// in with the one-time password, enrols TOTP with the secret init printed,
// must change the password before anything else, and then works.
func TestFirstRun(t *testing.T) {
	f := newFixture(t)
	before := f.head()
	rec := f.do(request{method: "POST", path: "/api/v1/auth/login", body: jsonBody(map[string]string{"name": "root", "password": f.init.OneTimePassword})})
	var l loginAnswer
	decode(t, rec, &l)
	if rec.Code != 200 || l.Stage != "enrol" || !l.MustChangePassword {
		t.Fatalf("login: %d %s", rec.Code, rec.Body)
	}
	if ck := rec.Result().Cookies(); len(ck) != 1 || ck[0].Name != auth.SessionCookieName || !ck[0].HttpOnly || !ck[0].Secure || ck[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie %+v", ck)
	}
	rec = f.do(request{method: "POST", path: "/api/v1/auth/enrol", cookie: l.Token})
	var en struct {
		TOTPSecret string `json:"totp_secret"`
	}
	decode(t, rec, &en)
	if rec.Code != 200 || en.TOTPSecret != f.init.TOTPSecret {
		t.Fatalf("enrol: %d %s", rec.Code, rec.Body)
	}
	f.clk.advance(30e9)
	code, _ := auth.TOTPCode(f.init.TOTPSecret, f.clk.now())
	rec = f.do(request{method: "POST", path: "/api/v1/auth/enrol/confirm", cookie: l.Token, body: jsonBody(map[string]string{"code": code})})
	decode(t, rec, &l)
	if rec.Code != 200 || l.Stage != "full" || len(l.RecoveryCodes) == 0 {
		t.Fatalf("confirm: %d %s", rec.Code, rec.Body)
	}
	f.users["root"] = &testUser{token: l.Token, csrf: l.CSRF, secret: f.init.TOTPSecret}
	// Until the password changes, everything but self-service is refused.
	rec = f.do(request{method: "GET", path: "/api/v1/tenants", as: "root"})
	if rec.Code != 403 || !strings.Contains(rec.Body.String(), `"password_change_required"`) {
		t.Fatalf("before password change: %d %s", rec.Code, rec.Body)
	}
	rec = f.do(request{method: "POST", path: "/api/v1/auth/password", as: "root", body: jsonBody(map[string]string{"old_password": f.init.OneTimePassword, "new_password": "a long new passphrase for root"})})
	decode(t, rec, &l)
	if rec.Code != 200 || l.MustChangePassword {
		t.Fatalf("password: %d %s", rec.Code, rec.Body)
	}
	f.users["root"].token, f.users["root"].csrf = l.Token, l.CSRF
	rec = f.do(request{method: "GET", path: "/api/v1/tenants", as: "root"})
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"name":"bravo"`) {
		t.Fatalf("tenants: %d %s", rec.Code, rec.Body)
	}
	want := []string{"auth.login", "auth.totp.confirm", "auth.login", "access.denied", "auth.password.change"}
	if got := actions(f.since(before)); !slices.Equal(got, want) {
		t.Fatalf("audit %v, want %v", got, want)
	}
	// Logout ends the session: the cookie no longer works.
	if rec := f.do(request{method: "POST", path: "/api/v1/auth/logout", as: "root"}); rec.Code != 204 {
		t.Fatalf("logout: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/auth/whoami", as: "root"}); rec.Code != 401 {
		t.Fatalf("after logout: %d %s", rec.Code, rec.Body)
	}
}

// TestTokens: a bearer token authenticates without CSRF and acts with its
// role in its tenant; it cannot step up; revoked, it stops working.
func TestTokens(t *testing.T) {
	f := newFixture(t)
	tok := f.createToken("a-admin", store.RoleAdmin)
	rec := f.do(request{method: "GET", path: "/api/v1/users", bearer: tok})
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"a-op"`) {
		t.Fatalf("list with token: %d %s", rec.Code, rec.Body)
	}
	rec = f.do(request{method: "GET", path: "/api/v1/users?tenant=" + f.b, bearer: tok})
	if rec.Code != 403 {
		t.Fatalf("cross-tenant with token: %d %s", rec.Code, rec.Body)
	}
	// A sensitive operation answers step_up_required; the token cannot
	// answer it.
	rec = f.do(request{method: "POST", path: "/api/v1/users", bearer: tok, body: `{"name":"x","role":"operator"}`})
	var e apiErr
	decode(t, rec, &e)
	if rec.Code != 401 || e.Error.StepUp == nil {
		t.Fatalf("token sensitive op: %d %s", rec.Code, rec.Body)
	}
	rec = f.do(request{method: "POST", path: "/api/v1/auth/step-up", bearer: tok, body: jsonBody(map[string]string{"operation": e.Error.StepUp.Operation, "request": e.Error.StepUp.Request, "code": f.code("a-admin")})})
	if rec.Code != 401 {
		t.Fatalf("token step-up: %d %s", rec.Code, rec.Body)
	}
	rec = f.do(request{method: "GET", path: "/api/v1/tokens", as: "a-admin"})
	var tl list[tokenOut]
	decode(t, rec, &tl)
	if len(tl.Items) != 1 || tl.Items[0].Token != "" {
		t.Fatalf("token list %s", rec.Body)
	}
	before := f.head()
	if rec := f.do(request{method: "DELETE", path: "/api/v1/tokens/" + tl.Items[0].ID, as: "a-admin"}); rec.Code != 204 {
		t.Fatalf("revoke: %d %s", rec.Code, rec.Body)
	}
	if got := actions(f.since(before)); !slices.Equal(got, []string{"token.revoke"}) {
		t.Fatalf("audit %v", got)
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/users", bearer: tok}); rec.Code != 401 {
		t.Fatalf("revoked token: %d %s", rec.Code, rec.Body)
	}
}

// TestApprovals: dual approval through the API, with two approvers of the
// request's tenant; the requester cannot approve; other tenants cannot
// see it.
func TestApprovals(t *testing.T) {
	f := newFixture(t)
	lead, err := f.svc.Authenticate(f.ctx, auth.Request{SessionToken: f.users["a-lead"].token, Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	// A request is opened by the owning service (scans, exports); here the
	// auth service directly, as those services would.
	a, err := f.svc.RequestApproval(f.ctx, lead, auth.KindProductionScan, []byte(`{"scope":"s1"}`))
	if err != nil {
		t.Fatal(err)
	}
	path := "/api/v1/approvals/" + a.ID
	if rec := f.do(request{method: "GET", path: path, as: "b-admin"}); rec.Code != 404 {
		t.Fatalf("other tenant sees it: %d %s", rec.Code, rec.Body)
	}
	rec := f.do(request{method: "POST", path: path + "/approve", as: "a-lead"})
	if rec.Code != 403 || !strings.Contains(rec.Body.String(), `"self_approval"`) {
		t.Fatalf("self approval: %d %s", rec.Code, rec.Body)
	}
	for i, who := range []string{"a-appr", "a-appr2"} {
		rec, got := f.sensitive(request{method: "POST", path: path + "/approve", as: who})
		if rec.Code != 200 {
			t.Fatalf("approve %s: %d %s", who, rec.Code, rec.body)
		}
		want := []string{"auth.stepup.failed", "auth.stepup", "approval.grant"}
		if i == 1 {
			want = append(want, "approval.complete")
		}
		if !slices.Equal(got, want) {
			t.Fatalf("audit %v, want %v", got, want)
		}
	}
	rec = f.do(request{method: "GET", path: "/api/v1/approvals?status=approved", as: "a-aud"})
	var al list[approvalOut]
	decode(t, rec, &al)
	if len(al.Items) != 1 || len(al.Items[0].Approvers) != 2 || al.Items[0].Status != "approved" {
		t.Fatalf("list: %s", rec.Body)
	}
}

// TestPagination pages a list with limit and the next cursor.
func TestPagination(t *testing.T) {
	f := newFixture(t)
	var seen []string
	path := "/api/v1/users?limit=3"
	for i := 0; i < 10; i++ {
		rec := f.do(request{method: "GET", path: path, as: "a-admin"})
		var l list[userOut]
		decode(t, rec, &l)
		if rec.Code != 200 || len(l.Items) > 3 {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		for _, u := range l.Items {
			seen = append(seen, u.ID)
		}
		if l.Next == "" {
			break
		}
		path = "/api/v1/users?limit=3&after=" + l.Next
	}
	// The fixture made 7 users in tenant a (init's root is an appliance
	// admin, in no tenant).
	if len(seen) != 7 || !slices.IsSorted(seen) {
		t.Fatalf("paged %d users %v", len(seen), seen)
	}
}

// TestRateLimit: the credential routes refuse a burst from one address
// with 429 and Retry-After, without reaching the service (no audit entry).
func TestRateLimit(t *testing.T) {
	f := newFixture(t, func(d *Deps) { d.Limits.AuthPerMinute = 3 })
	body := `{"name":"nobody-here","password":"wrong wrong wrong"}`
	for i := 0; i < 3; i++ {
		if rec := f.do(request{method: "POST", path: "/api/v1/auth/login", body: body, remote: "198.51.100.7:4000"}); rec.Code != 401 {
			t.Fatalf("attempt %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	before := f.head()
	rec := f.do(request{method: "POST", path: "/api/v1/auth/login", body: body, remote: "198.51.100.7:4000"})
	if rec.Code != 429 || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), `"rate_limited"`) {
		t.Fatalf("burst: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	if got := f.since(before); len(got) != 0 {
		t.Fatalf("a limited request reached the service: %v", actions(got))
	}
	// Another address is not affected; and the bucket refills.
	if rec := f.do(request{method: "POST", path: "/api/v1/auth/login", body: body, remote: "198.51.100.8:4000"}); rec.Code != 401 {
		t.Fatalf("other address: %d", rec.Code)
	}
	f.clk.advance(60e9)
	if rec := f.do(request{method: "POST", path: "/api/v1/auth/login", body: body, remote: "198.51.100.7:4000"}); rec.Code != 401 {
		t.Fatalf("after refill: %d", rec.Code)
	}
}

func TestLimiterBounded(t *testing.T) {
	clk := &clock{}
	l := newLimiter(1, 60e9, 2, clk.now)
	for _, k := range []string{"a", "b"} {
		if _, ok := l.allow(k); !ok {
			t.Fatal(k)
		}
	}
	if _, ok := l.allow("c"); ok {
		t.Fatal("a third key was admitted while both buckets are in use")
	}
	clk.advance(60e9)
	if _, ok := l.allow("c"); !ok || len(l.buckets) > 2 {
		t.Fatalf("refilled buckets were not pruned: %d", len(l.buckets))
	}
}

// TestInternalErrors: a 5xx says "internal error" with the request id and
// logs the cause; a client's safe request id is echoed, an unsafe one
// replaced.
func TestInternalErrors(t *testing.T) {
	f := newFixture(t)
	f.srv.e.GET("/boom", func(echo.Context) error { return errors.New("secret internal detail /var/lib/x") })
	f.srv.e.GET("/panic", func(echo.Context) error { panic("secret panic detail") })
	for _, path := range []string{"/boom", "/panic"} {
		rec := f.do(request{method: "GET", path: path, header: map[string]string{RequestIDHeader: "cli-1234"}})
		var e apiErr
		decode(t, rec, &e)
		if rec.Code != 500 || e.Error.Code != "internal" || e.Error.Message != "internal error" || e.Error.RequestID != "cli-1234" || strings.Contains(rec.Body.String(), "secret") {
			t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
		}
	}
	if !strings.Contains(f.logs.String(), "secret internal detail") || !strings.Contains(f.logs.String(), `"request_id":"cli-1234"`) {
		t.Fatalf("cause not logged: %s", f.logs.String())
	}
	rec := f.do(request{method: "GET", path: "/healthz", header: map[string]string{RequestIDHeader: "bad id\nwith newline"}})
	if id := rec.Header().Get(RequestIDHeader); id == "" || strings.ContainsAny(id, " \n") {
		t.Fatalf("unsafe id kept: %q", id)
	}
	if !strings.Contains(rec.Header().Get("Content-Security-Policy"), "script-src 'self'") || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("headers %v", rec.Header())
	}
}

// TestReadyAndMetrics: /readyz is 503 with the reason while a tamper alarm
// is raised; /metrics answers loopback, refuses others without an admin
// or auditor token.
func TestReadyAndMetrics(t *testing.T) {
	st := Status{AuditSize: 10, AuditCheckpointSize: 8, SIEM: []SIEMStatus{{Name: "soc", Pending: 3, Lag: 5e9}}}
	f := newFixture(t, func(d *Deps) {
		d.Status = func(context.Context) Status { return st }
	})
	if rec := f.do(request{method: "GET", path: "/readyz"}); rec.Code != 200 {
		t.Fatalf("ready: %d %s", rec.Code, rec.Body)
	}
	st.AuditAlarm = "entry 7 is broken"
	rec := f.do(request{method: "GET", path: "/readyz"})
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), "audit tamper alarm: entry 7 is broken") {
		t.Fatalf("not ready: %d %s", rec.Code, rec.Body)
	}
	rec = f.do(request{method: "GET", path: "/metrics", remote: "127.0.0.1:5555"})
	for _, want := range []string{"fiq_http_request_duration_seconds_bucket", `fiq_siem_pending_events{destination="soc"} 3`, "fiq_audit_entries 10", "fiq_audit_tamper_alarm 1", "fiq_audit_unsigned_entries 2", "fiq_scans_running 0", "fiq_probe_packets_sent_total 0", "fiq_probe_cap_pps 0"} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if rec := f.do(request{method: "GET", path: "/metrics"}); rec.Code != 401 {
		t.Fatalf("remote without token: %d", rec.Code)
	}
	if rec := f.do(request{method: "GET", path: "/metrics", bearer: f.createToken("a-aud", store.RoleAuditor)}); rec.Code != 200 {
		t.Fatalf("auditor token: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "GET", path: "/metrics", bearer: f.createToken("a-op", store.RoleOperator)}); rec.Code != 403 {
		t.Fatalf("operator token: %d %s", rec.Code, rec.Body)
	}
}

// TestEveryRouteRefusesCSRFAndOversize: every state-changing route with a
// session refuses a request without the CSRF token (403 csrf, audited), and
// every route refuses a body over the limit (413 too_large, nothing
// audited) before its handler runs.
func TestEveryRouteRefusesCSRFAndOversize(t *testing.T) {
	f := newFixture(t)
	big := `{"name":"` + strings.Repeat("x", 1<<20) + `"}`
	for _, op := range apiOps() {
		path := pathParam.ReplaceAllString(op.path, noSuchID)
		if op.auth == "session" && op.method != "GET" {
			t.Run("csrf "+op.method+" "+path, func(t *testing.T) {
				f.t = t
				before := f.head()
				rec := f.do(request{method: op.method, path: path, as: "a-admin", body: "{}", noCSRF: true})
				if rec.Code != 403 || !strings.Contains(rec.Body.String(), `"csrf"`) {
					t.Fatalf("%d %s", rec.Code, rec.Body)
				}
				if got := actions(f.since(before)); !slices.Equal(got, []string{"access.denied"}) {
					t.Fatalf("audit %v", got)
				}
			})
		}
		if op.method != "GET" {
			t.Run("oversized "+op.method+" "+path, func(t *testing.T) {
				f.t = t
				before := f.head()
				rec := f.do(request{method: op.method, path: path, as: "a-admin", body: big})
				if rec.Code != 413 || !strings.Contains(rec.Body.String(), `"too_large"`) {
					t.Fatalf("%d %s", rec.Code, rec.Body)
				}
				if got := f.since(before); len(got) != 0 {
					t.Fatalf("audit %v", actions(got))
				}
			})
		}
	}
}
