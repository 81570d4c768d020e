package console_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/store"
	"firewalliq/probe/keys"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// principalOf is the signed-in user of b's session, as the services see
// it: for steps the console has no page for (registering a signed scope
// is done with the CLI).
func (f *fixture) principalOf(b *browser) auth.Principal {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.srv.URL+"/console/", nil)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, c := range b.c.Jar.Cookies(req.URL) {
		req.AddCookie(c)
	}
	p, err := f.app.Auth.Authenticate(f.ctx, auth.RequestFrom(req))
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

// hostileBanner is what the scans' target volunteers on connecting:
// markup and script, which every page must show as text.
const hostileBanner = `<script>window.pwned=1</script><img src=x id=pwned>`

// listener is a TCP service on 127.0.0.1, the scans' target, that sends
// hostileBanner and closes; its port.
func listener(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Write([]byte(hostileBanner + "\r\n"))
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// scanWorld is a tenant with a security lead (lead) whose key was added
// through the keys page, two approvers, an operator and an auditor; a
// non-production and a production scope over 127.0.0.1 (ports: the
// listener's and the next one, closed); and the scan service running.
type scanWorld struct {
	f                    *fixture
	lead, op, ann, ben   *browser
	aud                  *browser
	leadS, opS, annS, bS string
	port                 int
	dev, prod            string // scope ids
}

func newScanWorld(t *testing.T) *scanWorld {
	f := newFixture(t)
	root, rootSecret, _ := f.firstRun("root", f.init.OneTimePassword)
	tenant := f.init.TenantID
	w := &scanWorld{f: f, port: listener(t)}
	w.lead, w.leadS, _ = f.firstRun("lena", f.addUser(root, rootSecret, tenant, "lena", store.RoleSecurityLead))
	w.op, w.opS, _ = f.firstRun("otto", f.addUser(root, rootSecret, tenant, "otto", store.RoleOperator))
	w.ann, w.annS, _ = f.firstRun("ann", f.addUser(root, rootSecret, tenant, "ann", store.RoleApprover))
	w.ben, w.bS, _ = f.firstRun("ben", f.addUser(root, rootSecret, tenant, "ben", store.RoleApprover))
	w.aud, _, _ = f.firstRun("aud", f.addUser(root, rootSecret, tenant, "aud", store.RoleAuditor))

	// The lead registers a public key on the keys page (step-up).
	pub, priv, pem := signingKey(t)
	want(t, w.lead.get("/console/keys"), http.StatusOK, "No scope-signing keys", `id="key-add"`)
	form := url.Values{"name": {"lena's laptop"}, "public": {string(pem)}}
	a := w.lead.post("/console/keys", form)
	want(t, a, http.StatusUnauthorized, `id="stepup-form"`, "scope.key.add")
	wantRedirect(t, f.stepUpIfAsked(w.lead, "/console/keys", w.leadS, a), "/console/keys")
	want(t, w.lead.get("/console/keys"), http.StatusOK, keys.ID(pub), "lena&#39;s laptop", "active")

	w.dev, w.prod = f.registerScopes(w.lead, pub, priv, "tcp:"+strconv.Itoa(w.port)+","+strconv.Itoa(w.port+1))
	f.runScans()
	return w
}

// registerScopes registers a non-production and a production scope over
// 127.0.0.1/32 with ports, signed by priv (registered to lead), and
// returns their ids.
func (f *fixture) registerScopes(lead *browser, pub ed25519.PublicKey, priv ed25519.PrivateKey, ports string) (dev, prod string) {
	f.t.Helper()
	p := f.principalOf(lead)
	now := f.clk.Now()
	for _, env := range []string{scope.EnvNonProduction, scope.EnvProduction} {
		doc := scope.Document{ID: "lo-" + env, Tenant: "alpha", Name: "loopback " + env, Environment: env,
			CIDRs: []string{"127.0.0.1/32"}, Exclude: []string{}, Ports: ports,
			Probes: []safety.Kind{safety.KindTCPConnect, safety.KindBanner}, NotBefore: now.Add(-time.Hour).Truncate(time.Second),
			NotAfter: now.Add(24 * time.Hour).Truncate(time.Second), MaxPPS: 20, SignerKeyID: keys.ID(pub)}
		signed, err := scope.Sign(doc, priv)
		if err != nil {
			f.t.Fatal(err)
		}
		sc, err := f.app.Scopes.Register(f.ctx, p, "", signed)
		if err != nil {
			f.t.Fatal(err)
		}
		if env == scope.EnvProduction {
			prod = sc.ID
		} else {
			dev = sc.ID
		}
	}
	return dev, prod
}

// runScans runs the scan service's dispatcher until the test ends.
func (f *fixture) runScans() {
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = f.app.Scans.Run(ctx) }()
	f.t.Cleanup(func() { cancel(); <-done })
}

var scanIDRe = regexp.MustCompile(`/console/scans/(scan_[0-9a-z]+)`)

// request files a scan request through the form as b, answering the
// step-up prompt when asked, and returns the scan id.
func (w *scanWorld) request(b *browser, secret, scopeID string, extra url.Values) string {
	w.f.t.Helper()
	form := url.Values{"scope": {scopeID}, "targets": {"127.0.0.1"}, "ports": {"tcp:" + strconv.Itoa(w.port) + "," + strconv.Itoa(w.port+1)},
		"probes": {"tcp-connect"}, "rate": {"10"}}
	for k, v := range extra {
		form[k] = v
	}
	want(w.f.t, b.get("/console/scans"), http.StatusOK, `id="scan-request-form"`)
	a := w.f.stepUpIfAsked(b, "/console/scans", secret, b.post("/console/scans", form))
	wantRedirect(w.f.t, a, "/console/scans/scan_")
	m := scanIDRe.FindStringSubmatch(a.location())
	if m == nil {
		w.f.t.Fatalf("no scan id in %q", a.location())
	}
	return m[1]
}

// scanWait bounds the wait for a test scan's end (by the clock). The
// scans are paced and small (a few probes), a few seconds each; on a busy
// machine (load 20) the 200 polls (about 20 s) waited before were not a
// wide margin. Only a failing test waits this long.
const scanWait = 60 * time.Second

// waitState polls the scan page until the scan is in state (scanWait at
// most).
func (w *scanWorld) waitState(b *browser, id, state string) answer {
	w.f.t.Helper()
	var a answer
	for deadline := time.Now().Add(scanWait); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		a = b.get("/console/scans/" + id)
		if strings.Contains(a.body, `id="scan-state">`+state+`<`) {
			return a
		}
	}
	w.f.t.Fatalf("scan %s did not reach %s within %s:\n%s", id, state, scanWait, a.body)
	return a
}

// TestScanRequestProgressResults: an operator requests a non-production
// scan of a 127.0.0.1 listener through the form (step-up prompt naming
// scan.start); it runs; the progress feed is a text/event-stream that ends;
// the results explorer shows every probe with its reason and RTT, filters
// and pages. An auditor sees the scans but gets no form and is refused;
// a request without CSRF token is refused.
func TestScanRequestProgressResults(t *testing.T) {
	w := newScanWorld(t)
	f := w.f

	// Refusals first: no CSRF token, the auditor's role, a bad rate.
	want(t, w.op.post("/console/scans", url.Values{"csrf": {""}, "scope": {w.dev}}), http.StatusForbidden, "CSRF")
	want(t, w.aud.get("/console/"), http.StatusOK, "No scans yet")
	a := w.aud.get("/console/scans")
	want(t, a, http.StatusOK, "No scans yet")
	if strings.Contains(a.body, `id="scan-request-form"`) {
		t.Fatal("the auditor is offered the request form")
	}
	want(t, w.aud.post("/console/scans", url.Values{"scope": {w.dev}}), http.StatusForbidden)
	want(t, w.op.post("/console/scans", url.Values{"scope": {w.dev}, "rate": {"fast"}}), http.StatusBadRequest, "whole number")
	// Above the scope's cap: refused, not clamped.
	want(t, f.stepUpIfAsked(w.op, "/console/scans", w.opS, w.op.post("/console/scans", url.Values{"scope": {w.dev}, "rate": {"1000"}})), http.StatusBadRequest)

	// The step-up prompt names scan.start and keeps the fields.
	a = w.op.post("/console/scans", url.Values{"scope": {w.dev}, "targets": {"127.0.0.1"}, "probes": {"tcp-connect"}, "rate": {"10"}})
	want(t, a, http.StatusUnauthorized, `id="stepup-form"`, "scan.start", `name="probes" value="tcp-connect"`)
	id := w.request(w.op, w.opS, w.dev, nil)
	a = w.waitState(w.op, id, "completed")
	want(t, a, http.StatusOK, `data-events="/console/scans/`+id+`/events"`, "2 results stored", `id="results-link"`)

	// The progress feed of a finished scan: its state, then the end.
	resp, err := w.op.c.Get(f.srv.URL + "/console/scans/" + id + "/events")
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("events: %d %q", resp.StatusCode, ct)
	}
	var events []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && len(events) < 10 {
		if l := sc.Text(); strings.HasPrefix(l, "event: ") || strings.HasPrefix(l, "data: ") {
			events = append(events, l)
		}
	}
	resp.Body.Close()
	got := strings.Join(events, "\n")
	if !strings.Contains(got, "event: progress\ndata: {\"scan_id\":\""+id+"\",\"state\":\"completed\"") || !strings.HasSuffix(got, "event: end\ndata: {\"state\":\"completed\"}") {
		t.Fatalf("events:\n%s", got)
	}
	// Another tenant's or an unknown scan's feed is an error page.
	want(t, w.op.get("/console/scans/scan_nope/events"), http.StatusNotFound)

	// The results explorer: both ports, with reasons and RTTs.
	base := "/console/scans/" + id + "/results"
	a = w.aud.get(base)
	open, closed := strconv.Itoa(w.port), strconv.Itoa(w.port+1)
	want(t, a, http.StatusOK, "tcp/"+open, "tcp/"+closed, `state-open">open<`, `state-closed">closed<`, "tcp-connect")
	tests := []struct {
		name, query string
		status      int
		has, hasNot string
	}{
		{"state", "?state=open", 200, "tcp/" + open, "tcp/" + closed},
		{"port", "?port=" + closed, 200, "tcp/" + closed, "tcp/" + open},
		{"host", "?host=127.0.0.1&probe=tcp-connect", 200, "tcp/" + open, "No results"},
		{"no match", "?host=127.0.0.2", 200, "No results match this filter", "tcp/" + open},
		{"bad port", "?port=70000", 400, "1 to 65535", ""},
		{"bad host", "?host=%3Cb%3E", 400, "one IP address", "<b>"},
		{"bad state", "?state=weird", 400, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := w.aud.get(base + tt.query)
			want(t, a, tt.status, tt.has)
			if tt.hasNot != "" && strings.Contains(a.body, tt.hasNot) {
				t.Fatalf("body has %q:\n%s", tt.hasNot, a.body)
			}
		})
	}
	// Keyset pages of one result each.
	a = w.aud.get(base + "?limit=1")
	next := regexp.MustCompile(`href="([^"]+)" rel="next" id="results-next"`).FindStringSubmatch(a.body)
	if next == nil || strings.Count(a.body, `<tr><td>`) != 1 {
		t.Fatalf("first page:\n%s", a.body)
	}
	b := w.aud.get(strings.ReplaceAll(next[1], "&amp;", "&"))
	want(t, b, http.StatusOK, "First page")
	if strings.Count(b.body, `<tr><td>`) != 1 || strings.Contains(b.body, `id="results-next"`) {
		t.Fatalf("second page:\n%s", b.body)
	}

	// The operator's dashboard lists it; the list shows it with its
	// result count.
	want(t, w.op.get("/console/"), http.StatusOK, `id="recent-scans"`, `href="/console/scans/`+id+`"`, "2 results")
	want(t, w.aud.get("/console/scans?state=completed"), http.StatusOK, id, "/console/scans/"+id+"/results\">2<")
	if a := w.aud.get("/console/scans?state=pending"); strings.Contains(a.body, id) {
		t.Fatalf("state filter ignored:\n%s", a.body)
	}
}

// TestProductionScanApprovals: a production request waits for two
// approvers; the approvals inbox links to the scan page, where each
// approves after step-up (the requester may not); the requester starts it
// after step-up. A second request is denied with a reason.
func TestProductionScanApprovals(t *testing.T) {
	w := newScanWorld(t)
	f := w.f
	id := w.request(w.lead, w.leadS, w.prod, nil)
	a := w.lead.get("/console/scans/" + id)
	want(t, a, http.StatusOK, `id="scan-state">pending<`, `id="scan-cancel"`)
	if strings.Contains(a.body, `id="scan-approve"`) {
		t.Fatal("the requester is offered approval of their own scan")
	}
	want(t, w.lead.post("/console/scans/"+id+"/approve", nil), http.StatusForbidden) // never one's own
	a = w.ann.get("/console/approvals")
	want(t, a, http.StatusOK, "scan.production", `href="/console/scans/`+id+`"`)
	if strings.Contains(a.body, "/approve") {
		t.Fatalf("the inbox offers the generic approve button for a scan:\n%s", a.body)
	}
	for _, ap := range []struct {
		b      *browser
		secret string
	}{{w.ann, w.annS}, {w.ben, w.bS}} {
		path := "/console/scans/" + id + "/approve"
		want(t, ap.b.get("/console/scans/"+id), http.StatusOK, `id="scan-approve"`)
		want(t, ap.b.post(path, url.Values{"csrf": {""}}), http.StatusForbidden)
		a := ap.b.post(path, nil)
		want(t, a, http.StatusUnauthorized, `id="stepup-form"`)
		wantRedirect(t, f.stepUpIfAsked(ap.b, path, ap.secret, a), "/console/scans/"+id)
	}
	a = w.lead.get("/console/scans/" + id)
	want(t, a, http.StatusOK, `id="scan-state">approved<`, `id="scan-start"`)
	path := "/console/scans/" + id + "/start"
	a = w.lead.post(path, nil)
	want(t, a, http.StatusUnauthorized, "scan.start")
	wantRedirect(t, f.stepUpIfAsked(w.lead, path, w.leadS, a), "/console/scans/"+id)
	w.waitState(w.lead, id, "completed")

	// A second request: denied by an approver, with a reason.
	id2 := w.request(w.lead, w.leadS, w.prod, nil)
	want(t, w.ben.post("/console/scans/"+id2+"/deny", nil), http.StatusBadRequest, "reason")
	// A denial asks for a step-up like an approval; a wrong code is refused
	// and the scan stays pending.
	path = "/console/scans/" + id2 + "/deny"
	a = w.ben.post(path, url.Values{"reason": {"change freeze"}})
	want(t, a, http.StatusUnauthorized, `id="stepup-form"`, "approval.deny", "change freeze")
	wrong := hiddenFields(a.body)
	wrong.Set("stepup_code", "000000")
	want(t, w.ben.post(path, wrong), http.StatusUnauthorized, "not accepted")
	want(t, w.lead.get("/console/scans/"+id2), http.StatusOK, `id="scan-state">pending<`)
	wantRedirect(t, f.stepUpIfAsked(w.ben, path, w.bS, w.ben.post(path, url.Values{"reason": {"change freeze"}})), "/console/scans/"+id2)
	want(t, w.lead.get("/console/scans/"+id2), http.StatusOK, `id="scan-state">denied<`, "change freeze")
	// An auditor may not cancel.
	want(t, w.aud.post("/console/scans/"+id+"/cancel", url.Values{"reason": {"x"}}), http.StatusForbidden)
}

// TestScopeKeys: a security lead has the appliance generate a held key
// (step-up), a malformed public key is refused, an auditor sees the list
// without forms and is refused changes, and the lead revokes the key after
// step-up (a reason is required; a missing CSRF token is refused).
func TestScopeKeys(t *testing.T) {
	f := newFixture(t)
	root, rootSecret, _ := f.firstRun("root", f.init.OneTimePassword)
	tenant := f.init.TenantID
	lead, leadS, _ := f.firstRun("lena", f.addUser(root, rootSecret, tenant, "lena", store.RoleSecurityLead))
	aud, _, _ := f.firstRun("aud", f.addUser(root, rootSecret, tenant, "aud", store.RoleAuditor))

	want(t, lead.post("/console/keys", url.Values{"csrf": {""}, "name": {"k"}, "generate": {"1"}}), http.StatusForbidden, "CSRF")
	want(t, lead.post("/console/keys", url.Values{"name": {"k"}}), http.StatusBadRequest, "paste the public key")
	a := f.stepUpIfAsked(lead, "/console/keys", leadS, lead.post("/console/keys", url.Values{"name": {"bad"}, "public": {"not a key"}}))
	if a.status < 400 || a.status >= 500 {
		t.Fatalf("malformed key: %d\n%s", a.status, a.body)
	}
	a = lead.post("/console/keys", url.Values{"name": {"<held>"}, "generate": {"1"}})
	want(t, a, http.StatusUnauthorized, `id="stepup-form"`, "scope.key.add")
	wantRedirect(t, f.stepUpIfAsked(lead, "/console/keys", leadS, a), "/console/keys")
	a = lead.get("/console/keys")
	want(t, a, http.StatusOK, "&lt;held&gt;", "<td>yes</td>", "/revoke")
	m := regexp.MustCompile(`/console/keys/([^/"]+)/revoke`).FindStringSubmatch(a.body)
	if m == nil {
		t.Fatalf("no revoke form:\n%s", a.body)
	}

	a = aud.get("/console/keys")
	want(t, a, http.StatusOK, "&lt;held&gt;")
	if strings.Contains(a.body, `id="key-add"`) || strings.Contains(a.body, "/revoke") {
		t.Fatalf("the auditor is offered key changes:\n%s", a.body)
	}
	want(t, aud.post("/console/keys", url.Values{"name": {"x"}, "generate": {"1"}}), http.StatusForbidden)
	want(t, aud.post("/console/keys/"+m[1]+"/revoke", url.Values{"reason": {"x"}}), http.StatusForbidden)

	path := "/console/keys/" + m[1] + "/revoke"
	want(t, lead.post(path, nil), http.StatusBadRequest, "reason")
	a = lead.post(path, url.Values{"reason": {"laptop lost"}})
	want(t, a, http.StatusUnauthorized, "scope.key.revoke")
	wantRedirect(t, f.stepUpIfAsked(lead, path, leadS, a), "/console/keys")
	a = lead.get("/console/keys")
	want(t, a, http.StatusOK, "revoked")
	if strings.Contains(a.body, "/revoke") {
		t.Fatalf("a revoked key offers revocation:\n%s", a.body)
	}
}
