package console_test

import (
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"firewalliq/appliance"
	"firewalliq/appliance/store"
)

// TestFirstRunLoginLogout walks the initial admin through first run
// (one-time password, TOTP enrolment from the page's secret, recovery
// codes, new password), then a later login with TOTP, the session list,
// logout, a recovery-code login and logout everywhere.
func TestFirstRunLoginLogout(t *testing.T) {
	f := newFixture(t)
	admin, secret, pw := f.firstRun("root", f.init.OneTimePassword)

	// A second browser signs in with password and TOTP.
	other := f.login("root", pw, secret)
	a := other.get("/console/sessions")
	want(t, a, http.StatusOK, "this one")
	if n := strings.Count(a.body, "<tr><td class=\"mono\">ses_"); n != 2 {
		t.Fatalf("sessions listed: %d, want 2:\n%s", n, a.body)
	}

	// Logout ends only that session.
	wantRedirect(t, other.post("/console/logout", nil), "/console/login")
	wantRedirect(t, other.get("/console/"), "/console/login")
	want(t, admin.get("/console/"), http.StatusOK, "<h1>Dashboard</h1>")

	// A wrong password and a wrong code are refused on the form.
	b := f.browser()
	want(t, b.post("/console/login", url.Values{"name": {"root"}, "password": {"wrong"}}), http.StatusUnauthorized, `class="error"`, "not authenticated")
	wantRedirect(t, b.post("/console/login", url.Values{"name": {"root"}, "password": {pw}}), "/console/login/totp")
	want(t, b.post("/console/login/totp", url.Values{"code": {"000000"}}), http.StatusUnauthorized, `class="error"`)

	// Logout everywhere ends the first browser's session too.
	third := f.login("root", pw, secret)
	wantRedirect(t, third.post("/console/logout-all", nil), "/console/login")
	wantRedirect(t, admin.get("/console/"), "/console/login")
}

var codesRe = regexp.MustCompile(`<ul class="codes mono" id="recovery-codes"><li>([^<]+)</li>`)

// TestRecoveryCodeLogin signs in with a recovery code shown at enrolment.
func TestRecoveryCodeLogin(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	wantRedirect(t, b.post("/console/login", url.Values{"name": {"root"}, "password": {f.init.OneTimePassword}}), "/console/enrol")
	a := b.get("/console/enrol")
	secret := secretRe.FindStringSubmatch(a.body)[1]
	a = b.post("/console/enrol", url.Values{"code": {f.code(secret)}})
	m := codesRe.FindStringSubmatch(a.body)
	if m == nil {
		t.Fatalf("no recovery codes:\n%s", a.body)
	}
	c := f.browser()
	wantRedirect(t, c.post("/console/login", url.Values{"name": {"root"}, "password": {f.init.OneTimePassword}}), "/console/login/totp")
	wantRedirect(t, c.post("/console/login/recovery", url.Values{"code": {m[1]}}), "/console/password")
	// The same code does not work twice.
	d := f.browser()
	wantRedirect(t, d.post("/console/login", url.Values{"name": {"root"}, "password": {f.init.OneTimePassword}}), "/console/login/totp")
	want(t, d.post("/console/login/recovery", url.Values{"code": {m[1]}}), http.StatusUnauthorized, `class="error"`)
}

// TestSecurityHeaders checks the headers and cookie flags of pages and
// static assets.
func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	for _, path := range []string{"/console/login", "/console/static/console.css", "/console/static/console.js"} {
		a := b.get(path)
		if a.status != http.StatusOK {
			t.Fatalf("%s: %d", path, a.status)
		}
		for h, wantV := range map[string]string{
			"Content-Security-Policy": "default-src 'self'", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
			"Referrer-Policy": "no-referrer", "Strict-Transport-Security": "max-age=",
		} {
			if got := a.header.Get(h); !strings.Contains(got, wantV) {
				t.Errorf("%s: %s = %q, want %q", path, h, got, wantV)
			}
		}
		if csp := a.header.Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: weak CSP %q", path, csp)
		}
	}
	// No page carries inline script or style.
	a := b.get("/console/login")
	for _, bad := range []string{"<script>", "style=", "<style", "onclick=", "onload=", "javascript:"} {
		if strings.Contains(a.body, bad) {
			t.Errorf("login page contains %q", bad)
		}
	}
	// The session cookie is HttpOnly, Secure, SameSite=Strict.
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/console/login", strings.NewReader(url.Values{"name": {"root"}, "password": {f.init.OneTimePassword}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ck := resp.Header.Get("Set-Cookie")
	for _, flag := range []string{"__Host-", "HttpOnly", "Secure", "SameSite=Strict"} {
		if !strings.Contains(ck, flag) {
			t.Errorf("session cookie %q lacks %s", ck, flag)
		}
	}
}

// TestCSRFRefused posts state changes without the session's CSRF token,
// and with another session's: both are refused with 403 and change
// nothing.
func TestCSRFRefused(t *testing.T) {
	f := newFixture(t)
	admin, secret, pw := f.firstRun("root", f.init.OneTimePassword)
	other := f.login("root", pw, secret)
	tests := []struct {
		name string
		csrf string
	}{
		{"missing", ""},
		{"other session's", other.csrf},
		{"garbage", "not-a-token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := admin.post("/console/users", url.Values{"csrf": {tt.csrf}, "tenant": {f.init.TenantID}, "name": {"mallory"}, "role": {store.RoleAdmin}})
			want(t, a, http.StatusForbidden, `id="request-id"`, "CSRF")
			wantRequestID(t, a)
			a = admin.post("/console/logout-all", url.Values{"csrf": {tt.csrf}})
			want(t, a, http.StatusForbidden)
			wantRequestID(t, a)
		})
	}
	a := admin.get("/console/users?tenant=" + f.init.TenantID)
	want(t, a, http.StatusOK)
	if strings.Contains(a.body, "mallory") {
		t.Fatal("a user was created without a CSRF token")
	}
	want(t, other.get("/console/"), http.StatusOK, "<h1>Dashboard</h1>")
}

// TestUsersStepUpAndRoles adds users through the console (step-up prompt
// answered with a fresh code; a wrong code shows the prompt again), lets a
// new operator sign in, and checks that pages the operator's role may not
// open are refused and left out of the menu.
func TestUsersStepUpAndRoles(t *testing.T) {
	f := newFixture(t)
	admin, secret, _ := f.firstRun("root", f.init.OneTimePassword)
	tenant := f.init.TenantID

	// An appliance admin's change must name its tenant.
	want(t, admin.post("/console/users", url.Values{"name": {"olga"}, "role": {store.RoleOperator}}), http.StatusBadRequest, "choose the tenant")

	// A wrong code shows the prompt again, with the fields kept.
	a := admin.post("/console/users", url.Values{"tenant": {tenant}, "name": {"olga"}, "role": {store.RoleOperator}})
	want(t, a, http.StatusUnauthorized, `id="stepup-form"`, `value="olga"`)
	form := hiddenFields(a.body)
	form.Set("stepup_code", "000000")
	a = admin.post("/console/users", form)
	want(t, a, http.StatusUnauthorized, `id="stepup-form"`, "not accepted")

	otp := f.addUser(admin, secret, tenant, "olga", store.RoleOperator)
	a = admin.get("/console/users?tenant=" + tenant)
	want(t, a, http.StatusOK, "olga", "one-time password")

	op, _, _ := f.firstRun("olga", otp)
	a = op.get("/console/")
	if strings.Contains(a.body, `href="/console/users"`) || strings.Contains(a.body, `href="/console/audit"`) {
		t.Fatalf("operator's menu offers admin pages:\n%s", a.body)
	}
	for _, path := range []string{"/console/users", "/console/audit", "/console/siem"} {
		want(t, op.get(path), http.StatusForbidden, `id="request-id"`)
	}
	want(t, op.post("/console/users", url.Values{"name": {"eve"}, "role": {store.RoleAdmin}}), http.StatusForbidden)

	// Disabling the operator (step-up again) ends their session.
	users := admin.get("/console/users?tenant=" + tenant)
	id := regexp.MustCompile(`/console/users/(u_[0-9a-f]+)/disable`).FindStringSubmatch(users.body)
	if id == nil {
		t.Fatalf("no disable button:\n%s", users.body)
	}
	a = admin.post("/console/users/"+id[1]+"/disable", url.Values{"tenant": {tenant}})
	want(t, a, http.StatusUnauthorized, "user.disable")
	form = hiddenFields(a.body)
	form.Set("stepup_code", f.code(secret))
	wantRedirect(t, admin.post("/console/users/"+id[1]+"/disable", form), "/console/users")
	wantRedirect(t, op.get("/console/"), "/console/login")
}

// TestDashboardAndBanner checks the dashboard's panels and that a raised
// tamper alarm shows as a banner on every page, signed in or not.
func TestDashboardAndBanner(t *testing.T) {
	f := newFixture(t)
	admin, _, _ := f.firstRun("root", f.init.OneTimePassword)
	a := admin.get("/console/")
	want(t, a, http.StatusOK, "Audit log", "intact", "Safety profile", "packets/s", "No SIEM destination", `<svg class="chart"`, "auth.login")
	if strings.Contains(a.body, "tamper-banner") {
		t.Fatal("banner without an alarm")
	}
	f.raiseAlarm()
	for _, path := range []string{"/console/", "/console/users", "/console/audit", "/console/sessions", "/console/siem", "/console/alerts", "/console/scopes"} {
		want(t, admin.get(path), http.StatusOK, `id="tamper-banner"`, "entry hash mismatch")
	}
	want(t, f.browser().get("/console/login"), http.StatusOK, `id="tamper-banner"`)
	want(t, admin.get("/console/"), http.StatusOK, `action="/console/alarm/ack"`)
}

// TestAdminPages renders every administration page for the appliance
// admin, and exercises tokens (secret shown once) and the audit filter.
func TestAdminPages(t *testing.T) {
	f := newFixture(t)
	admin, secret, _ := f.firstRun("root", f.init.OneTimePassword)
	tenant := f.init.TenantID
	// A tenant admin (a privileged grant in a tenant without another
	// admin: allowed, and flagged with an anomaly alert).
	otp := f.addUser(admin, secret, tenant, "tina", store.RoleAdmin)
	tadmin, tsecret, _ := f.firstRun("tina", otp)
	pages := []struct {
		b     *browser
		path  string
		texts []string
	}{
		{admin, "/console/users", []string{"root", "tina", "Add a user"}},
		{tadmin, "/console/users", []string{"tina", "Add a user"}},
		{tadmin, "/console/tokens", []string{"Create a token"}},
		{tadmin, "/console/support", []string{"Open a ticket"}},
		{tadmin, "/console/approvals", []string{"No requests."}},
		{admin, "/console/alerts", []string{"Anomaly alerts", "role.grant.unapproved"}},
		{tadmin, "/console/alerts", []string{"Anomaly alerts", "Acknowledge"}},
		{admin, "/console/siem", []string{"No destinations.", "Add a destination"}},
		{admin, "/console/audit", []string{"appliance.init", "Latest checkpoint", "Signed note"}},
		{tadmin, "/console/audit", []string{"auth.login"}},
		{admin, "/console/audit?action=auth.login", []string{"auth.login"}},
		{admin, "/console/scopes?tenant=" + tenant, []string{"No scopes are registered"}},
		{tadmin, "/console/scopes", []string{"No scopes are registered"}},
		{admin, "/console/sessions", []string{"Sign out everywhere"}},
	}
	for _, p := range pages {
		t.Run(p.path, func(t *testing.T) {
			a := p.b.get(p.path)
			want(t, a, http.StatusOK, p.texts...)
			for _, label := range regexp.MustCompile(`<(?:input|select|textarea) id="([^"]+)"`).FindAllStringSubmatch(a.body, -1) {
				if !strings.Contains(a.body, `for="`+label[1]+`"`) {
					t.Errorf("input %s has no label", label[1])
				}
			}
		})
	}
	a := admin.get("/console/audit?action=auth.login")
	if strings.Contains(a.body, "appliance.init") {
		t.Fatal("audit filter kept other actions")
	}
	want(t, admin.get("/console/audit?after=x"), http.StatusBadRequest)
	if a := admin.get("/console/"); strings.Contains(a.body, `href="/console/tokens"`) {
		t.Fatal("appliance admin's menu offers tenant-only pages")
	}

	// A token's secret is shown once, after step-up.
	a = tadmin.post("/console/tokens", url.Values{"name": {"ci"}, "role": {store.RoleAuditor}, "ttl": {"24h"}})
	want(t, a, http.StatusUnauthorized, "token.create")
	form := hiddenFields(a.body)
	form.Set("stepup_code", f.code(tsecret))
	a = tadmin.post("/console/tokens", form)
	want(t, a, http.StatusOK, `id="token-secret">fiqt_`)
	a = tadmin.get("/console/tokens")
	want(t, a, http.StatusOK, "ci")
	if strings.Contains(a.body, "fiqt_") {
		t.Fatal("token secret shown again")
	}

	// The tenant admin acknowledges the alert about their own grant.
	a = tadmin.get("/console/alerts")
	seq := regexp.MustCompile(`/console/alerts/([0-9]+)/ack`).FindStringSubmatch(a.body)
	if seq == nil {
		t.Fatalf("no alert to acknowledge:\n%s", a.body)
	}
	wantRedirect(t, tadmin.post("/console/alerts/"+seq[1]+"/ack", url.Values{"comment": {"expected: first tenant admin"}}), "/console/alerts")
	want(t, tadmin.get("/console/alerts"), http.StatusOK, "by ")
}

// TestUntrustedTextEscaped shows a user name and a filter value that
// carry markup: they appear escaped, never as elements.
func TestUntrustedTextEscaped(t *testing.T) {
	f := newFixture(t)
	admin, _, _ := f.firstRun("root", f.init.OneTimePassword)
	a := admin.get("/console/audit?actor=" + url.QueryEscape(`"><script>alert(1)</script>`))
	want(t, a, http.StatusOK, "&lt;script&gt;")
	if strings.Contains(a.body, "<script>alert") {
		t.Fatal("markup from the query was not escaped")
	}
	// Stored: a sign-in attempt whose user name is markup lands in the
	// audit log, which the audit page shows escaped.
	f.browser().post("/console/login", url.Values{"name": {`<script>alert("stored")</script>`}, "password": {"x"}})
	a = admin.get("/console/audit?action=auth.login.failed")
	want(t, a, http.StatusOK, "auth.login.failed", "&lt;script&gt;alert(")
	if strings.Contains(a.body, `<script>alert(`) {
		t.Fatal("stored markup from the audit log was not escaped")
	}
	a = admin.get("/console/?flash=" + url.QueryEscape(`<img src=x onerror=alert(1)>`))
	if strings.Contains(a.body, "<img src=x") {
		t.Fatal("flash markup was not escaped")
	}
}

// stepUpIfAsked answers a step-up prompt when the answer is one, and
// returns the final answer.
func (f *fixture) stepUpIfAsked(b *browser, path, secret string, a answer) answer {
	f.t.Helper()
	if a.status != http.StatusUnauthorized || !strings.Contains(a.body, `id="stepup-form"`) {
		return a
	}
	form := hiddenFields(a.body)
	form.Set("stepup_code", f.code(secret))
	return b.post(path, form)
}

// TestRoleGrantApproval grants a privileged role in a tenant that has
// another admin: refused, an approval request filed from the refusal page,
// approved by the other admin in the inbox after step-up, then granted
// with the request id.
func TestRoleGrantApproval(t *testing.T) {
	f := newFixture(t)
	root, rootSecret, _ := f.firstRun("root", f.init.OneTimePassword)
	tenant := f.init.TenantID
	tina, tinaSecret, _ := f.firstRun("tina", f.addUser(root, rootSecret, tenant, "tina", store.RoleAdmin))
	tom, tomSecret, _ := f.firstRun("tom", f.addUser(root, rootSecret, tenant, "tom", store.RoleAdmin))

	add := url.Values{"name": {"amy"}, "role": {store.RoleApprover}}
	a := f.stepUpIfAsked(tina, "/console/users", tinaSecret, tina.post("/console/users", add))
	want(t, a, http.StatusForbidden, `id="request-approval"`, "another admin")
	form := hiddenFields(a.body)
	a = tina.post("/console/users/approval", form)
	wantRedirect(t, a, "/console/users")
	id := regexp.MustCompile(`apr_[0-9a-f]+`).FindString(a.location())
	if id == "" {
		t.Fatalf("no request id in %q", a.location())
	}

	// The requester may not approve their own request; the other admin may.
	a = tina.get("/console/approvals")
	want(t, a, http.StatusOK, id, "Withdraw")
	if strings.Contains(a.body, "/console/approvals/"+id+"/approve") {
		t.Fatal("requester offered to approve their own request")
	}
	want(t, tom.get("/console/approvals?status=pending"), http.StatusOK, "/console/approvals/"+id+"/approve")
	a = f.stepUpIfAsked(tom, "/console/approvals/"+id+"/approve", tomSecret, tom.post("/console/approvals/"+id+"/approve", nil))
	wantRedirect(t, a, "/console/approvals")
	want(t, tom.get("/console/approvals?status=approved"), http.StatusOK, id)

	add.Set("approval_id", id)
	a = f.stepUpIfAsked(tina, "/console/users", tinaSecret, tina.post("/console/users", add))
	want(t, a, http.StatusOK, `id="one-time-password"`, "amy")
}

// TestSIEMDestination adds a TCP syslog destination with step-up, sends
// it a test event that a listener on 127.0.0.1 receives, and removes it.
func TestSIEMDestination(t *testing.T) {
	f := newFixture(t)
	root, secret, _ := f.firstRun("root", f.init.OneTimePassword)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The receiver keeps the connection open (the sender treats a close
	// right after its write as an unconfirmed delivery).
	got := make(chan string, 1)
	done := make(chan struct{})
	defer close(done)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4096)
		n, _ := c.Read(buf)
		got <- string(buf[:n])
		<-done
	}()
	form := url.Values{"name": {"lab-syslog"}, "kind": {"tcp"}, "address": {ln.Addr().String()}, "format": {"ocsf"}, "hmac_key": {"not-echoed-secret"}}
	want(t, root.post("/console/siem", form), http.StatusBadRequest, "authenticator")
	form.Set("code", "000000")
	a := root.post("/console/siem", form)
	want(t, a, http.StatusUnauthorized)
	if strings.Contains(a.body, "not-echoed-secret") {
		t.Fatal("a refused form echoed the HMAC key")
	}
	form.Del("hmac_key")
	form.Set("code", f.code(secret))
	wantRedirect(t, root.post("/console/siem", form), "/console/siem")
	want(t, root.get("/console/siem"), http.StatusOK, "lab-syslog", ln.Addr().String())
	want(t, root.get("/console/"), http.StatusOK, "lab-syslog")

	a = root.post("/console/siem/lab-syslog/test", url.Values{"tenant": {""}})
	wantRedirect(t, a, "/console/siem")
	if !strings.Contains(a.location(), "delivered") {
		t.Fatalf("test delivery: %s", a.location())
	}
	select {
	case msg := <-got:
		if !strings.Contains(msg, "firewalliq") && !strings.Contains(msg, "FirewallIQ") {
			t.Fatalf("listener got %q", msg)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the listener received nothing")
	}

	a = root.post("/console/siem/lab-syslog/remove", url.Values{"tenant": {""}})
	a = f.stepUpIfAsked(root, "/console/siem/lab-syslog/remove", secret, a)
	wantRedirect(t, a, "/console/siem")
	want(t, root.get("/console/siem"), http.StatusOK, "No destinations.")
}

// TestNotFoundAndRateLimit checks the console's 404 page and that the
// sign-in form shares the API's per-address rate limit (10 a minute).
func TestNotFoundAndRateLimit(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	a := b.get("/console/no-such-page")
	want(t, a, http.StatusNotFound, `id="request-id"`, "<!DOCTYPE html>")
	wantRequestID(t, a)
	// The TOTP step without a pending session: refused by the service
	// without counting a failure, so only the HTTP limiter can say 429.
	var last answer
	for i := 0; i < 12; i++ {
		last = b.post("/console/login/totp", url.Values{"code": {"123456"}})
		if last.status == http.StatusTooManyRequests {
			break
		}
	}
	want(t, last, http.StatusTooManyRequests, "Too many attempts", `id="request-id"`)
	wantRequestID(t, last)
	if last.header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
}

// TestRecoveryCodesReplaced replaces the recovery codes from the sessions
// page after step-up; an old code no longer signs in.
func TestRecoveryCodesReplaced(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	wantRedirect(t, b.post("/console/login", url.Values{"name": {"root"}, "password": {f.init.OneTimePassword}}), "/console/enrol")
	secret := secretRe.FindStringSubmatch(b.get("/console/enrol").body)[1]
	old := codesRe.FindStringSubmatch(b.post("/console/enrol", url.Values{"code": {f.code(secret)}}).body)[1]
	pw := "root chooses a long passphrase"
	want(t, b.get("/console/password"), http.StatusOK)
	wantRedirect(t, b.post("/console/password", url.Values{"old_password": {f.init.OneTimePassword}, "new_password": {pw}, "confirm_password": {pw}}), "/console/")
	want(t, b.get("/console/sessions"), http.StatusOK, "Replace my recovery codes")
	a := f.stepUpIfAsked(b, "/console/recovery-codes", secret, b.post("/console/recovery-codes", nil))
	want(t, a, http.StatusOK, `id="recovery-codes"`, "replaced")
	c := f.browser()
	wantRedirect(t, c.post("/console/login", url.Values{"name": {"root"}, "password": {pw}}), "/console/login/totp")
	want(t, c.post("/console/login/recovery", url.Values{"code": {old}}), http.StatusUnauthorized)
}

// TestEvidenceExport records an evidence object in a local vault, lists
// it, files an export request, has two approvers approve it in their
// inboxes after step-up, and asks for the link: the local backend cannot
// sign URLs, which the page says (a MinIO vault would give the link).
func TestEvidenceExport(t *testing.T) {
	f := newFixture(t, func(c *appliance.Config) {
		c.Production = false // the local vault is not WORM
		c.Vault.Backend = "local"
		c.Vault.LocalDir = filepath.Join(t.TempDir(), "evidence")
	})
	root, rootSecret, _ := f.firstRun("root", f.init.OneTimePassword)
	tenant := f.init.TenantID
	ann, annSecret, _ := f.firstRun("ann", f.addUser(root, rootSecret, tenant, "ann", store.RoleApprover))
	ben, benSecret, _ := f.firstRun("ben", f.addUser(root, rootSecret, tenant, "ben", store.RoleApprover))
	aud, audSecret, _ := f.firstRun("aud", f.addUser(root, rootSecret, tenant, "aud", store.RoleAuditor))

	a := f.uploadedEvidence(aud, tenant, `{"probe":"tcp-syn"}`+"\n", 100)
	want(t, a, http.StatusOK, "results.jsonl", "Request export")
	form := hiddenFields(a.body[strings.Index(a.body, `action="/console/evidence/export"`):])
	wantRedirect(t, aud.post("/console/evidence/export", form), "/console/evidence")
	a = aud.get("/console/evidence")
	id := regexp.MustCompile(`<td class="mono small">(apr_[0-9a-f]+)</td>`).FindStringSubmatch(a.body)
	if id == nil {
		t.Fatalf("no export request listed:\n%s", a.body)
	}
	f.approveInInbox(ann, annSecret, id[1])
	f.approveInInbox(ben, benSecret, id[1])
	a = aud.get("/console/evidence")
	want(t, a, http.StatusOK, "approved", "Get 5-minute link")
	path := "/console/evidence/export/" + id[1] + "/link"
	form = hiddenFields(a.body[strings.Index(a.body, `action="`+path+`"`):])
	a = f.stepUpIfAsked(aud, path, audSecret, aud.post(path, form))
	// The approval and the step-up were accepted; only the local backend's
	// lack of URL signing stops it.
	want(t, a, http.StatusNotImplemented, "cannot issue pre-signed URLs", `id="request-id"`)
}
