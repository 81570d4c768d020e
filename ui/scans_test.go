package ui

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/scan"
	"firewalliq/audit"
	"firewalliq/probe/keys"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// scanEnv is the fixture with the scan dispatcher running, a TCP listener
// on 127.0.0.1 (open) and a port nobody listens on (closed).
type scanEnv struct {
	*fixture
	open, closed int
}

func newScanEnv(t *testing.T) *scanEnv {
	t.Helper()
	f := newFixture(t)
	f.clk.flow() // a running scan paces itself by the clock
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = f.app.Scans.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for range 1 << 16 {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	cl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := cl.Addr().(*net.TCPAddr).Port
	cl.Close()
	return &scanEnv{fixture: f, open: ln.Addr().(*net.TCPAddr).Port, closed: closed}
}

// doc is a loopback scope document of tenant "default" (the fixture's a).
func (e *scanEnv) doc(id, environment string) scope.Document {
	now := e.clk.now()
	return scope.Document{ID: id, Tenant: "default", Name: "loopback " + id, Environment: environment,
		CIDRs: []string{"127.0.0.1/32"}, Exclude: []string{}, Ports: fmt.Sprintf("tcp:%d,%d", e.open, e.closed), Probes: []safety.Kind{safety.KindTCPConnect},
		NotBefore: now.Add(-time.Hour).Truncate(time.Second), NotAfter: now.Add(24 * time.Hour).Truncate(time.Second), MaxPPS: 50}
}

// ok fails unless rec has status want, and decodes its body into v.
func ok(t *testing.T, rec *httpRecorder, want int, v any) {
	t.Helper()
	if rec.Code != want {
		t.Fatalf("status %d, want %d: %s", rec.Code, want, rec.body)
	}
	if v != nil {
		if err := json.Unmarshal(rec.body, v); err != nil {
			t.Fatalf("decode %s: %v", rec.body, err)
		}
	}
}

func rec(r *httptest.ResponseRecorder) *httpRecorder { return &httpRecorder{r.Code, r.Body.Bytes()} }

// objectActions are the actions of entries after mark about object.
func (e *scanEnv) objectActions(mark int64, object string) []string {
	out := []string{}
	for _, en := range e.since(mark) {
		if en.Object == object {
			out = append(out, string(en.Action))
		}
	}
	return out
}

// scanWait bounds the wait for a test scan's end: the scans are paced and
// small, a few seconds each, slower on a busy machine. Only a failing test
// waits this long.
const scanWait = 60 * time.Second

// events reads scan id's event stream to its end (scanWait at most) and
// returns the progress events, each checked against the Progress schema.
func (e *scanEnv) events(t *testing.T, as, id string) []scan.Progress {
	t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, scanWait)
	defer cancel()
	u := e.users[as]
	req := httptest.NewRequest("GET", "/api/v1/scans/"+id+"/events", nil).WithContext(ctx)
	req.AddCookie(&http.Cookie{Name: auth.SessionCookieName, Value: u.token})
	r := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(r, req)
	e.validate(request{method: "GET", path: "/api/v1/scans/" + id + "/events"}, r)
	if r.Code != 200 || r.Header().Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s %s", r.Code, r.Header().Get("Content-Type"), r.Body)
	}
	var out []scan.Progress
	sc := bufio.NewScanner(strings.NewReader(r.Body.String()))
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if event != "progress" {
				t.Fatalf("data of event %q", event)
			}
			data := strings.TrimPrefix(line, "data: ")
			var p scan.Progress
			dec := json.NewDecoder(strings.NewReader(data))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&p); err != nil {
				t.Fatalf("event data %s: %v", data, err)
			}
			out = append(out, p)
		}
	}
	if ctx.Err() != nil {
		t.Fatalf("the event stream did not end within %s", scanWait)
	}
	return out
}

// waitScan polls scan id over the API until it is in one of states
// (scanWait at most).
func (e *scanEnv) waitScan(t *testing.T, id string, states ...string) scan.Scan {
	t.Helper()
	var sc scan.Scan
	for deadline := time.Now().Add(scanWait); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ok(t, rec(e.do(request{method: "GET", path: "/api/v1/scans/" + id, as: "a-aud"})), 200, &sc)
		if slices.Contains(states, sc.State) {
			return sc
		}
	}
	t.Fatalf("scan %s is %s (%s), want %v", id, sc.State, sc.Reason, states)
	return sc
}

// TestScopeKeyRoutes: a security lead adds a public key and generates a
// held one with step-up (the challenge round trip), signs a scope with the
// held key and registers it; readers list keys; other roles and tenants
// are refused; revocation needs step-up and is audited.
func TestScopeKeyRoutes(t *testing.T) {
	e := newScanEnv(t)
	pub, _, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	addBody := jsonBody(map[string]string{"name": "lead key", "public": string(pemPublic(t, pub))})
	if r := e.do(request{method: "POST", path: "/api/v1/scope-keys", as: "a-op", body: addBody}); r.Code != 403 {
		t.Fatalf("operator adds a key: %d %s", r.Code, r.Body)
	}
	r, acts := e.sensitive(request{method: "POST", path: "/api/v1/scope-keys", as: "a-lead", body: addBody})
	var k scan.SigningKey
	ok(t, r, 201, &k)
	if k.ID != keys.ID(pub) || k.Held || k.State != "active" || !slices.Contains(acts, "scope.key.add") {
		t.Fatalf("added %+v, audit %v", k, acts)
	}
	if r := e.do(request{method: "POST", path: "/api/v1/scope-keys", as: "a-lead", body: addBody}); r.Code != 401 {
		// The same key again: the step-up is checked first.
		t.Fatalf("again: %d %s", r.Code, r.Body)
	}
	var page list[scan.SigningKey]
	ok(t, rec(e.do(request{method: "GET", path: "/api/v1/scope-keys", as: "a-aud"})), 200, &page)
	if len(page.Items) != 1 || page.Items[0].ID != k.ID {
		t.Fatalf("list %+v", page)
	}
	ok(t, rec(e.do(request{method: "GET", path: "/api/v1/scope-keys", as: "b-admin"})), 200, &page)
	if len(page.Items) != 0 {
		t.Fatalf("other tenant sees %+v", page)
	}
	if r := e.do(request{method: "GET", path: "/api/v1/scope-keys?tenant=" + e.a, as: "b-admin"}); r.Code != 403 {
		t.Fatalf("cross-tenant list: %d %s", r.Code, r.Body)
	}

	r, acts = e.sensitive(request{method: "POST", path: "/api/v1/scope-keys/generate", as: "a-lead", body: `{"name":"held"}`})
	var held scan.SigningKey
	ok(t, r, 201, &held)
	if !held.Held || !slices.Contains(acts, "scope.key.add") {
		t.Fatalf("generated %+v, audit %v", held, acts)
	}
	docBody := jsonBody(e.doc("signed-here", scope.EnvNonProduction))
	r, acts = e.sensitive(request{method: "POST", path: "/api/v1/scope-keys/" + held.ID + "/sign", as: "a-lead", body: docBody})
	ok(t, r, 200, nil)
	if !slices.Contains(acts, "scope.sign") {
		t.Fatalf("sign audit %v", acts)
	}
	var sc scopeOut
	ok(t, rec(e.do(request{method: "POST", path: "/api/v1/scopes", as: "a-lead", body: string(r.body)})), 201, &sc)
	if sc.SignerKeyID != held.ID {
		t.Fatalf("registered %+v", sc)
	}
	// Signing with a key that is not held answers 409 after nothing is
	// spent: the key is checked before the step-up.
	if r := e.do(request{method: "POST", path: "/api/v1/scope-keys/" + k.ID + "/sign", as: "a-lead", body: docBody}); r.Code != 409 {
		t.Fatalf("sign with a public-only key: %d %s", r.Code, r.Body)
	}

	if r := e.do(request{method: "DELETE", path: "/api/v1/scope-keys/" + k.ID, as: "b-admin", body: `{"reason":"x"}`}); r.Code != 404 {
		t.Fatalf("other tenant revokes: %d %s", r.Code, r.Body)
	}
	mark := e.head()
	r, _ = e.sensitive(request{method: "DELETE", path: "/api/v1/scope-keys/" + k.ID, as: "a-lead", body: `{"reason":"rotated"}`})
	ok(t, r, 200, &k)
	if k.State != "revoked" || !slices.Contains(actions(e.since(mark)), "scope.key.revoke") {
		t.Fatalf("revoked %+v, audit %v", k, actions(e.since(mark)))
	}
}

// TestScanRoutes: the whole life of scans over the API. A non-production
// request needs the requester's step-up and runs against a 127.0.0.1
// listener; its event stream ends with the final state; results filter and
// page; a production request waits for two approvers' step-ups and the
// requester's start; deny and cancel; another tenant sees nothing; a
// revoked scope takes no new request.
func TestScanRoutes(t *testing.T) {
	e := newScanEnv(t)
	pub, priv, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.app.ScopeKeys.Add(e.ctx, e.principal("a-lead"), "", "lead key", pemPublic(t, pub), e.code("a-lead")); err != nil {
		t.Fatal(err)
	}
	register := func(id, env string) scopeOut {
		d := e.doc(id, env)
		d.SignerKeyID = keys.ID(pub)
		b, err := scope.Sign(d, priv)
		if err != nil {
			t.Fatal(err)
		}
		var sc scopeOut
		ok(t, rec(e.do(request{method: "POST", path: "/api/v1/scopes", as: "a-lead", body: string(b)})), 201, &sc)
		return sc
	}
	lab, prod := register("lab", scope.EnvNonProduction), register("prod", scope.EnvProduction)

	// Non-production: refused requests store nothing and write no
	// scan.request; the step-up round trip queues it; it runs.
	if r := e.do(request{method: "POST", path: "/api/v1/scans", as: "a-op", body: `{"scope_id":"` + lab.ID + `","rate":51}`}); r.Code != 400 || !strings.Contains(r.Body.String(), "rate") {
		t.Fatalf("rate above the cap: %d %s", r.Code, r.Body)
	}
	if r := e.do(request{method: "POST", path: "/api/v1/scans", as: "a-aud", body: `{"scope_id":"` + lab.ID + `"}`}); r.Code != 403 {
		t.Fatalf("auditor requests: %d %s", r.Code, r.Body)
	}
	body := jsonBody(scan.ScanRequest{ScopeID: lab.ID, Targets: []string{"127.0.0.1"}, Rate: 40})
	mark := e.head()
	r, _ := e.sensitive(request{method: "POST", path: "/api/v1/scans", as: "a-op", body: body})
	var sc scan.Scan
	ok(t, r, 201, &sc)
	if sc.State != scan.StateQueued && sc.State != scan.StateRunning {
		t.Fatalf("requested %+v", sc)
	}
	evs := e.events(t, "a-aud", sc.ID)
	if len(evs) == 0 || evs[len(evs)-1].State != scan.StateCompleted {
		t.Fatalf("events %+v", evs)
	}
	sc = e.waitScan(t, sc.ID, scan.StateCompleted, scan.StateFailed)
	if sc.State != scan.StateCompleted || sc.Job == nil || sc.Job.Results != 2 {
		t.Fatalf("scan %+v job %+v", sc, sc.Job)
	}
	if got := e.objectActions(mark, "scan:"+sc.ID); !slices.Contains(got, "scan.request") || !slices.Contains(got, "scan.start") || !slices.Contains(got, "scan.complete") {
		t.Fatalf("audit %v", got)
	}
	for _, en := range e.since(mark) {
		if en.Action == audit.ActScanRequest && (en.ActorID != e.users["a-op"].ID || en.UserAgent != "ui-test/1.0") {
			t.Fatalf("scan.request entry %+v", en)
		}
	}

	// Results: filters, keyset pages, bad filters.
	var res list[scan.Result]
	ok(t, rec(e.do(request{method: "GET", path: "/api/v1/scans/" + sc.ID + "/results?state=open", as: "a-aud"})), 200, &res)
	if len(res.Items) != 1 || res.Items[0].Port != e.open || res.Items[0].Target != "127.0.0.1" {
		t.Fatalf("open results %+v", res)
	}
	ok(t, rec(e.do(request{method: "GET", path: fmt.Sprintf("/api/v1/scans/%s/results?port=%d&host=127.0.0.1&probe=tcp-connect", sc.ID, e.closed), as: "a-op"})), 200, &res)
	if len(res.Items) != 1 || res.Items[0].State != "closed" {
		t.Fatalf("closed port %+v", res)
	}
	ok(t, rec(e.do(request{method: "GET", path: "/api/v1/scans/" + sc.ID + "/results?limit=1", as: "a-op"})), 200, &res)
	first := res.Items[0]
	if len(res.Items) != 1 || res.Next == "" {
		t.Fatalf("page 1 %+v", res)
	}
	ok(t, rec(e.do(request{method: "GET", path: "/api/v1/scans/" + sc.ID + "/results?limit=1&after=" + url.QueryEscape(res.Next), as: "a-op"})), 200, &res)
	if len(res.Items) != 1 || res.Items[0].Seq == first.Seq || res.Next != "" {
		t.Fatalf("page 2 %+v", res)
	}
	for _, q := range []string{"port=0", "port=x", "host=nope", "state=weird", "probe=laser", "after=" + cursor("junk")} {
		if r := e.do(request{method: "GET", path: "/api/v1/scans/" + sc.ID + "/results?" + q, as: "a-op"}); r.Code != 400 {
			t.Fatalf("%s: %d %s", q, r.Code, r.Body)
		}
	}

	// Another tenant: 404 and an access.denied entry; an appliance admin
	// names the tenant.
	mark = e.head()
	for _, p := range []string{"", "/results", "/events"} {
		if r := e.do(request{method: "GET", path: "/api/v1/scans/" + sc.ID + p, as: "b-admin"}); r.Code != 404 {
			t.Fatalf("other tenant %s: %d %s", p, r.Code, r.Body)
		}
	}
	if got := actions(e.since(mark)); len(got) != 3 || got[0] != "access.denied" {
		t.Fatalf("cross-tenant audit %v", got)
	}
	if r := e.do(request{method: "GET", path: "/api/v1/scans?tenant=" + e.a, as: "sys"}); r.Code != 200 || !strings.Contains(r.Body.String(), sc.ID) {
		t.Fatalf("appliance admin: %d %s", r.Code, r.Body)
	}

	// Production: pending without step-up; the requester cannot approve;
	// two approvers with step-up; the requester starts with step-up.
	mark = e.head()
	var ps scan.Scan
	ok(t, rec(e.do(request{method: "POST", path: "/api/v1/scans", as: "a-op", body: `{"scope_id":"` + prod.ID + `"}`})), 201, &ps)
	if ps.State != scan.StatePending || ps.ApprovalID == "" {
		t.Fatalf("production request %+v", ps)
	}
	if r := e.do(request{method: "POST", path: "/api/v1/scans/" + ps.ID + "/start", as: "a-op"}); r.Code != 409 {
		t.Fatalf("start before approval: %d %s", r.Code, r.Body)
	}
	if r := e.do(request{method: "POST", path: "/api/v1/scans/" + ps.ID + "/approve", as: "a-op"}); r.Code != 403 {
		t.Fatalf("requester approves: %d %s", r.Code, r.Body)
	}
	for _, who := range []string{"a-appr", "a-appr2"} {
		r, _ := e.sensitive(request{method: "POST", path: "/api/v1/scans/" + ps.ID + "/approve", as: who})
		ok(t, r, 200, &ps)
	}
	if ps.State != scan.StateApproved {
		t.Fatalf("approved %+v", ps)
	}
	r, _ = e.sensitive(request{method: "POST", path: "/api/v1/scans/" + ps.ID + "/start", as: "a-op"})
	ok(t, r, 200, &ps)
	ps = e.waitScan(t, ps.ID, scan.StateCompleted, scan.StateFailed)
	if ps.State != scan.StateCompleted || len(ps.Approvers) != 2 {
		t.Fatalf("production scan %+v", ps)
	}
	if got, want := e.objectActions(mark, "scan:"+ps.ID), []string{"scan.request", "scan.approve", "scan.approve"}; len(got) < 3 || !slices.Equal(got[:3], want) || !slices.Contains(got, "scan.complete") {
		t.Fatalf("production audit %v", got)
	}

	// Deny and cancel.
	var ds, cs scan.Scan
	ok(t, rec(e.do(request{method: "POST", path: "/api/v1/scans", as: "a-op", body: `{"scope_id":"` + prod.ID + `"}`})), 201, &ds)
	mark = e.head()
	// A denial needs the denier's step-up, as an approval does.
	r, _ = e.sensitive(request{method: "POST", path: "/api/v1/scans/" + ds.ID + "/deny", as: "a-appr", body: `{"reason":"not this week"}`})
	ok(t, r, 200, &ds)
	if ds.State != scan.StateDenied || !slices.Contains(actions(e.since(mark)), "scan.deny") {
		t.Fatalf("denied %+v, audit %v", ds, actions(e.since(mark)))
	}
	ok(t, rec(e.do(request{method: "POST", path: "/api/v1/scans", as: "a-op", body: `{"scope_id":"` + prod.ID + `"}`})), 201, &cs)
	mark = e.head()
	ok(t, rec(e.do(request{method: "POST", path: "/api/v1/scans/" + cs.ID + "/cancel", as: "a-op", body: `{"reason":"changed plans"}`})), 200, &cs)
	if cs.State != scan.StateCancelled || !slices.Contains(actions(e.since(mark)), "scan.cancel") {
		t.Fatalf("cancelled %+v, audit %v", cs, actions(e.since(mark)))
	}
	if r := e.do(request{method: "POST", path: "/api/v1/scans/" + cs.ID + "/cancel", as: "a-op"}); r.Code != 409 {
		t.Fatalf("cancel twice: %d %s", r.Code, r.Body)
	}

	// List: newest first, state filter, keyset pages.
	var sp list[scan.Scan]
	ok(t, rec(e.do(request{method: "GET", path: "/api/v1/scans?state=completed", as: "a-aud"})), 200, &sp)
	if len(sp.Items) != 2 {
		t.Fatalf("completed %+v", sp)
	}
	ok(t, rec(e.do(request{method: "GET", path: "/api/v1/scans?limit=3", as: "a-aud"})), 200, &sp)
	if len(sp.Items) != 3 || sp.Next == "" {
		t.Fatalf("page 1 %+v", sp)
	}
	ok(t, rec(e.do(request{method: "GET", path: "/api/v1/scans?limit=3&after=" + url.QueryEscape(sp.Next), as: "a-aud"})), 200, &sp)
	if len(sp.Items) != 1 || sp.Next != "" {
		t.Fatalf("page 2 %+v", sp)
	}
	if r := e.do(request{method: "GET", path: "/api/v1/scans?state=weird", as: "a-aud"}); r.Code != 400 {
		t.Fatalf("bad state: %d %s", r.Code, r.Body)
	}

	// Scope revocation: step-up, audited, and no new request under it.
	if r := e.do(request{method: "POST", path: "/api/v1/scopes/" + lab.ID + "/revoke", as: "a-op", body: `{"reason":"x"}`}); r.Code != 403 {
		t.Fatalf("operator revokes: %d %s", r.Code, r.Body)
	}
	mark = e.head()
	r, _ = e.sensitive(request{method: "POST", path: "/api/v1/scopes/" + lab.ID + "/revoke", as: "a-lead", body: `{"reason":"engagement over"}`})
	var rv scopeOut
	ok(t, r, 200, &rv)
	if rv.RevokedAt == "" || !slices.Contains(actions(e.since(mark)), "scope.revoke") {
		t.Fatalf("revoked %+v, audit %v", rv, actions(e.since(mark)))
	}
	if r := e.do(request{method: "POST", path: "/api/v1/scans", as: "a-op", body: body}); r.Code != 409 || !strings.Contains(r.Body.String(), "scope_revoked") {
		t.Fatalf("request under a revoked scope: %d %s", r.Code, r.Body)
	}
}

// TestScheduleRoutes: a schedule is proposed, approved by two approvers
// with step-up (a standing approval), edited (which voids it and answers
// the pending replacement) and voided; each step is audited.
func TestScheduleRoutes(t *testing.T) {
	e := newScanEnv(t)
	pub, priv, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.app.ScopeKeys.Add(e.ctx, e.principal("a-lead"), "", "lead key", pemPublic(t, pub), e.code("a-lead")); err != nil {
		t.Fatal(err)
	}
	d := e.doc("lab", scope.EnvNonProduction)
	d.SignerKeyID = keys.ID(pub)
	b, err := scope.Sign(d, priv)
	if err != nil {
		t.Fatal(err)
	}
	var lab scopeOut
	ok(t, rec(e.do(request{method: "POST", path: "/api/v1/scopes", as: "a-lead", body: string(b)})), 201, &lab)

	if r := e.do(request{method: "POST", path: "/api/v1/scan-schedules", as: "a-op", body: `{"scope_id":"` + lab.ID + `","spec":"every day"}`}); r.Code != 400 {
		t.Fatalf("bad spec: %d %s", r.Code, r.Body)
	}
	mark := e.head()
	var sc scan.Schedule
	ok(t, rec(e.do(request{method: "POST", path: "/api/v1/scan-schedules", as: "a-op", body: `{"scope_id":"` + lab.ID + `","spec":"@every 6h","valid_days":30}`})), 201, &sc)
	if sc.State != "pending" || sc.Spec != "@every 6h" || !slices.Contains(actions(e.since(mark)), "scan.schedule") {
		t.Fatalf("created %+v, audit %v", sc, actions(e.since(mark)))
	}
	if r := e.do(request{method: "POST", path: "/api/v1/scan-schedules/" + sc.ID + "/approve", as: "a-op"}); r.Code != 403 {
		t.Fatalf("requester approves: %d %s", r.Code, r.Body)
	}
	for _, who := range []string{"a-appr", "a-appr2"} {
		r, _ := e.sensitive(request{method: "POST", path: "/api/v1/scan-schedules/" + sc.ID + "/approve", as: who})
		ok(t, r, 200, &sc)
	}
	if sc.State != "approved" || sc.ValidUntil == "" {
		t.Fatalf("approved %+v", sc)
	}
	if r := e.do(request{method: "GET", path: "/api/v1/scan-schedules/" + sc.ID, as: "b-admin"}); r.Code != 404 {
		t.Fatalf("other tenant: %d %s", r.Code, r.Body)
	}
	var edited scan.Schedule
	ok(t, rec(e.do(request{method: "POST", path: "/api/v1/scan-schedules/" + sc.ID + "/edit", as: "a-op", body: `{"scope_id":"` + lab.ID + `","spec":"0 3 * * 1"}`})), 201, &edited)
	if edited.ID == sc.ID || edited.State != "pending" {
		t.Fatalf("edited %+v", edited)
	}
	ok(t, rec(e.do(request{method: "GET", path: "/api/v1/scan-schedules/" + sc.ID, as: "a-aud"})), 200, &sc)
	if sc.State != "void" {
		t.Fatalf("the edited schedule is %s, want void", sc.State)
	}
	mark = e.head()
	ok(t, rec(e.do(request{method: "POST", path: "/api/v1/scan-schedules/" + edited.ID + "/void", as: "a-op", body: `{"reason":"not needed"}`})), 200, &edited)
	if edited.State != "void" || !slices.Contains(actions(e.since(mark)), "scan.schedule.void") {
		t.Fatalf("voided %+v, audit %v", edited, actions(e.since(mark)))
	}
	var page list[scan.Schedule]
	ok(t, rec(e.do(request{method: "GET", path: "/api/v1/scan-schedules", as: "a-aud"})), 200, &page)
	if len(page.Items) != 2 {
		t.Fatalf("list %+v", page)
	}
}
