package console_test

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"firewalliq/appliance"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/store"
)

// reportWorld is a tenant with a local evidence vault (reports are
// evidence), a security lead, an operator and an auditor, a
// non-production scope over two ports of 127.0.0.1 (a listener whose
// banner carries markup and changes on every connection, and a closed
// port), and the scan service running.
type reportWorld struct {
	f              *fixture
	root           *browser
	lead, op, aud  *browser
	leadS, opS     string
	leadPW, opPW   string
	open, closed   int
	dev            string
	policySrc      string
	policyName     string
	hostileDescrip string
}

// hostileMarkup is what untrusted fields in this file's tests carry.
const hostileMarkup = `<script>window.pwned=1</script><img src=x id=pwned>`

// changingListener is a TCP service on 127.0.0.1 that volunteers a banner
// of markup ending in a connection counter, so two scans read different
// banners (banner drift); its port.
func changingListener(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for range 1 << 14 {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = fmt.Fprintf(c, "%s v%d\r\n", hostileMarkup, n.Add(1))
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// closedPort is a port of 127.0.0.1 nothing listens on (at the time).
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return p
}

func newReportWorld(t *testing.T) *reportWorld {
	t.Helper()
	f := newFixture(t, func(c *appliance.Config) {
		c.Production = false // the local vault is not WORM
		c.Vault.Backend = "local"
		c.Vault.LocalDir = filepath.Join(t.TempDir(), "evidence")
	})
	root, rootS, _ := f.firstRun("root", f.init.OneTimePassword)
	tenant := f.init.TenantID
	w := &reportWorld{f: f, root: root, open: changingListener(t), closed: closedPort(t), policyName: "edge"}
	w.lead, w.leadS, w.leadPW = f.firstRun("lena", f.addUser(root, rootS, tenant, "lena", store.RoleSecurityLead))
	w.op, w.opS, w.opPW = f.firstRun("otto", f.addUser(root, rootS, tenant, "otto", store.RoleOperator))
	w.aud, _, _ = f.firstRun("aud", f.addUser(root, rootS, tenant, "aud", store.RoleAuditor))
	pub, priv, pem := signingKey(t)
	a := w.lead.post("/console/keys", url.Values{"name": {"laptop"}, "public": {string(pem)}})
	wantRedirect(t, f.stepUpIfAsked(w.lead, "/console/keys", w.leadS, a), "/console/keys")
	w.dev, _ = f.registerScopes(w.lead, pub, priv, fmt.Sprintf("tcp:%d,%d", w.open, w.closed))
	f.runScans()
	w.hostileDescrip = "Edge " + hostileMarkup
	// web must be reachable but is closed (a blocked service); the
	// listener must be denied but answers (the exposure); far can never
	// match the scope (a dry-run warning).
	w.policySrc = fmt.Sprintf(`version: 1
name: edge
vantage_point: self
description: '%s'
default: deny
canaries:
  - {name: canary, target: 127.0.0.1, port: %d}
rules:
  - {name: web, action: allow, to: 127.0.0.1, ports: "tcp:%d", severity: high}
  - {name: listener, action: deny, to: 127.0.0.1, ports: "tcp:%d", severity: critical}
  - {name: far, action: deny, to: 10.0.0.0/8, ports: "tcp:22", severity: low}
`, w.hostileDescrip, w.open, w.closed, w.open)
	return w
}

// scan requests a non-production scan of both ports as b (step-up) and
// waits until it completed; its id.
func (w *reportWorld) scan(b *browser, secret string) string {
	w.f.t.Helper()
	t := w.f.t
	form := url.Values{"scope": {w.dev}, "targets": {"127.0.0.1"}, "ports": {fmt.Sprintf("tcp:%d,%d", w.open, w.closed)},
		"probes": {"tcp-connect", "banner"}, "rate": {"20"}}
	want(t, b.get("/console/scans"), http.StatusOK, `id="scan-request-form"`)
	a := w.f.stepUpIfAsked(b, "/console/scans", secret, b.post("/console/scans", form))
	wantRedirect(t, a, "/console/scans/scan_")
	m := scanIDRe.FindStringSubmatch(a.location())
	if m == nil {
		t.Fatalf("no scan id in %q", a.location())
	}
	for deadline := time.Now().Add(scanWait); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		a = b.get("/console/scans/" + m[1])
		if strings.Contains(a.body, `id="scan-state">completed<`) {
			return m[1]
		}
		if strings.Contains(a.body, `id="scan-state">failed<`) {
			t.Fatalf("scan failed:\n%s", a.body)
		}
	}
	t.Fatalf("scan %s did not complete within %s", m[1], scanWait)
	return ""
}

var reportIDRe = regexp.MustCompile(`/console/reports/(rpt_[0-9a-z]+)`)

// createReport creates a report of scanID against the world's policy as
// b and returns its id.
func (w *reportWorld) createReport(b *browser, scanID string) string {
	w.f.t.Helper()
	want(w.f.t, b.get("/console/reports"), http.StatusOK, `id="report-form"`)
	a := b.post("/console/reports", url.Values{"scan": {scanID}, "policy": {w.policyName}})
	wantRedirect(w.f.t, a, "/console/reports/rpt_")
	m := reportIDRe.FindStringSubmatch(a.location())
	if m == nil {
		w.f.t.Fatalf("no report id in %q", a.location())
	}
	return m[1]
}

// TestPolicyReportPages walks the policy, report and findings pages with
// the roles that may use them and the ones that may not: an invalid
// policy keeps its text, names line and field and stores nothing;
// validation stores nothing; storing makes a version; the dry run lists
// coverage and warns about a rule that cannot match; accepting a baseline
// needs a security lead's step-up; a report of a completed scan shows its
// signature key id, the verify command and the exposure, and downloads as
// PDF, HTML and signed JSON; findings and drift are listed and filtered,
// the dashboard counts the open exposures, the scan page has its
// timeline; untrusted text (the policy's description, the scanned
// service's banner in banner drift) is shown escaped everywhere; POSTs
// without the CSRF token change nothing.
func TestPolicyReportPages(t *testing.T) {
	w := newReportWorld(t)
	f := w.f

	// Reading is for everyone; the editor only for leads and operators.
	a := w.aud.get("/console/policies")
	want(t, a, http.StatusOK, "<h1>Policies</h1>", "No policies yet", `href="/console/policies"`, `href="/console/findings"`, `href="/console/reports"`)
	if strings.Contains(a.body, `id="policy-editor"`) {
		t.Fatal("the auditor is offered the policy editor")
	}
	want(t, w.aud.post("/console/policies", url.Values{"source": {w.policySrc}, "intent": {"save"}}), http.StatusForbidden)
	want(t, w.aud.post("/console/policies", url.Values{"source": {w.policySrc}, "intent": {"validate"}}), http.StatusForbidden)
	want(t, w.op.get("/console/policies"), http.StatusOK, `id="policy-editor"`, `id="policy-source"`)

	// An invalid document: every error with line and field, the text
	// kept as typed (escaped), nothing stored.
	bad := strings.Replace(w.policySrc, "action: allow", "action: permit", 1)
	bad = strings.Replace(bad, "severity: low", "severity: dire", 1)
	for _, intent := range []string{"save", "validate"} {
		a = w.op.post("/console/policies", url.Values{"source": {bad}, "intent": {intent}})
		want(t, a, http.StatusUnprocessableEntity, `id="policy-errors"`, "line 9", "line 11", "field <code>", "nothing was stored",
			"action: permit", "severity: dire", "&lt;script&gt;window.pwned=1&lt;/script&gt;")
	}
	want(t, w.op.get("/console/policies"), http.StatusOK, "No policies yet")
	// Validating a good document stores nothing either.
	a = w.op.post("/console/policies", url.Values{"source": {w.policySrc}, "intent": {"validate"}})
	want(t, a, http.StatusOK, `id="policy-valid"`, "3 rule(s)", "Nothing was stored")
	want(t, w.op.get("/console/policies"), http.StatusOK, "No policies yet")
	// Without the CSRF token nothing is stored.
	want(t, w.op.post("/console/policies", url.Values{"source": {w.policySrc}, "intent": {"save"}, "csrf": {""}}), http.StatusForbidden)
	want(t, w.op.get("/console/policies"), http.StatusOK, "No policies yet")

	// Store two versions.
	for v := 1; v <= 2; v++ {
		w.op.get("/console/policies")
		a = w.op.post("/console/policies", url.Values{"source": {w.policySrc}, "intent": {"save"}})
		wantRedirect(t, a, "/console/policies/edge?")
		if !strings.Contains(a.location(), "version="+strconv.Itoa(v)) {
			t.Fatalf("version %d: redirected to %s", v, a.location())
		}
	}
	// The list and the page show the description as text.
	for _, path := range []string{"/console/policies", "/console/policies/edge", "/console/policies/edge?version=1"} {
		a = w.aud.get(path)
		want(t, a, http.StatusOK, "Edge &lt;script&gt;window.pwned=1&lt;/script&gt;&lt;img src=x id=pwned&gt;")
		if strings.Contains(a.body, hostileMarkup) || strings.Contains(a.body, `id=pwned>`) {
			t.Fatalf("%s: the description's markup is in the page unescaped", path)
		}
	}
	a = w.aud.get("/console/policies/edge?version=1")
	want(t, a, http.StatusOK, "Version 1", `id="policy-versions"`, `href="/console/policies/edge?version=2"`, `id="policy-rules"`, "listener", "critical")
	want(t, w.aud.get("/console/policies/nope"), http.StatusNotFound)
	// "Edit" opens a version's source in the editor.
	a = w.op.get("/console/policies/edge?version=1")
	want(t, a, http.StatusOK, `id="policy-edit"`)
	want(t, w.op.get("/console/policies?edit=edge&version=1"), http.StatusOK, `id="policy-source"`, "name: edge", fmt.Sprintf("ports: &#34;tcp:%d&#34;", w.closed))

	// The dry run against the scope: coverage, and far can never match.
	a = w.aud.get("/console/policies/edge?scope=" + url.QueryEscape(w.dev))
	want(t, a, http.StatusOK, `id="dryrun-coverage"`, `id="dryrun-warnings"`, "rule <code>far</code>", fmt.Sprintf("tcp:%d", w.open))
	want(t, w.aud.get("/console/policies/edge?scope=nope"), http.StatusNotFound)

	// A completed scan; the operator may not accept a baseline, the
	// security lead may, after step-up.
	first := w.scan(w.op, w.opS)
	want(t, w.op.get("/console/policies/edge"), http.StatusOK)
	if strings.Contains(w.op.get("/console/policies/edge").body, `id="baseline-form"`) {
		t.Fatal("the operator is offered the baseline form")
	}
	want(t, w.op.post("/console/policies/edge/baseline", url.Values{"scan": {first}}), http.StatusForbidden)
	want(t, w.lead.get("/console/policies/edge"), http.StatusOK, `id="baseline-form"`, first)
	a = w.lead.post("/console/policies/edge/baseline", url.Values{"scan": {first}, "version": {"2"}})
	want(t, a, http.StatusUnauthorized, `id="stepup-form"`, "policy.baseline.accept")
	wantRedirect(t, f.stepUpIfAsked(w.lead, "/console/policies/edge/baseline", w.leadS, a), "/console/policies/edge?")

	// Reports: the auditor reads but may not create; a form without a
	// policy is refused with its choice kept and nothing created.
	second := w.scan(w.op, w.opS)
	a = w.aud.get("/console/reports")
	want(t, a, http.StatusOK, "No reports yet")
	if strings.Contains(a.body, `id="report-form"`) {
		t.Fatal("the auditor is offered the report form")
	}
	want(t, w.aud.post("/console/reports", url.Values{"scan": {second}, "policy": {"edge"}}), http.StatusForbidden)
	w.op.get("/console/reports")
	a = w.op.post("/console/reports", url.Values{"scan": {second}})
	want(t, a, http.StatusBadRequest, "Choose a completed scan and a policy", `<option value="`+second+`" selected>`)
	want(t, w.op.post("/console/reports", url.Values{"scan": {second}, "policy": {"edge"}, "csrf": {""}}), http.StatusForbidden)
	want(t, w.aud.get("/console/reports"), http.StatusOK, "No reports yet")

	id := w.createReport(w.op, second)
	a = w.aud.get("/console/reports/" + id)
	want(t, a, http.StatusOK, `id="report-key-id"`, `id="verify-command"`, "firewalliq report verify report.json --pub report.pub",
		"exposure", "blocked", `id="report-drift"`, "banner", "/console/reports/"+id+"/download/pdf", "/console/scans/"+second)
	if strings.Contains(a.body, hostileMarkup) {
		t.Fatal("the report page shows the banner's markup unescaped")
	}
	keyID := regexp.MustCompile(`id="report-key-id">([^<]+)<`).FindStringSubmatch(a.body)
	if keyID == nil || len(strings.TrimSpace(keyID[1])) < 8 {
		t.Fatalf("report key id: %v", keyID)
	}
	for _, tc := range []struct {
		format, media, start string
	}{
		{"pdf", "application/pdf", "%PDF-"},
		{"html", "text/html", "<!DOCTYPE html>"},
		{"json", "application/json", `{"report":`},
	} {
		a = w.aud.get("/console/reports/" + id + "/download/" + tc.format)
		if a.status != http.StatusOK || !strings.HasPrefix(a.header.Get("Content-Type"), tc.media) ||
			a.header.Get("Content-Disposition") != `attachment; filename="report-`+id+`.`+tc.format+`"` || !strings.HasPrefix(strings.TrimSpace(a.body), tc.start) {
			t.Fatalf("download %s: %d %v %.80q", tc.format, a.status, a.header, a.body)
		}
	}
	want(t, w.aud.get("/console/reports/"+id+"/download/exe"), http.StatusNotFound)
	want(t, w.aud.get("/console/reports/rpt_nope"), http.StatusNotFound)
	a = w.aud.get("/console/reports")
	want(t, a, http.StatusOK, id, "exposure: 1")

	// Findings: the open ones (newest report of each policy), filters,
	// links to scan and report; the drift's banners as text.
	a = w.aud.get("/console/findings")
	want(t, a, http.StatusOK, `id="findings-chart"`, "exposure", "blocked", "drift", "/console/scans/"+second, "/console/reports/"+id,
		"before: <span class=\"mono\">&lt;script&gt;window.pwned=1&lt;/script&gt;")
	if strings.Contains(a.body, hostileMarkup) {
		t.Fatal("the findings page shows the banner's markup unescaped")
	}
	a = w.aud.get("/console/findings?kind=exposure")
	want(t, a, http.StatusOK, "1 finding(s) from 1 report(s)")
	if strings.Contains(a.body, "<td>blocked</td>") {
		t.Fatal("the kind filter let a blocked service through")
	}
	want(t, w.aud.get("/console/findings?severity=info&kind=exposure"), http.StatusOK, "No findings match")
	want(t, w.aud.get("/console/findings?scan="+first), http.StatusOK, "No findings match")

	// The dashboard counts the open exposures and drift and links them.
	a = w.aud.get("/console/")
	want(t, a, http.StatusOK, `id="open-exposures">1<`, `id="open-drift">1<`, `id="findings-chart"`)
	// The scan page draws its timeline (the packets its run sent per
	// second, from the audited completion) and links findings and reports.
	a = w.op.get("/console/scans/" + second)
	want(t, a, http.StatusOK, `id="scan-timeline"`, "cap 20/s", "Packets sent per second over", `id="findings-link"`, `id="report-link"`)

	// An appliance admin reads the tenant's pages it picks, without the
	// forms of tenant users.
	tq := "?tenant=" + url.QueryEscape(f.init.TenantID)
	for _, path := range []string{"/console/policies" + tq, "/console/policies/edge" + tq, "/console/reports" + tq, "/console/reports/" + id + tq, "/console/findings" + tq} {
		a = w.root.get(path)
		want(t, a, http.StatusOK, `id="tenant-pick"`)
		if strings.Contains(a.body, `id="policy-editor"`) || strings.Contains(a.body, `id="report-form"`) || strings.Contains(a.body, `id="baseline-form"`) {
			t.Fatalf("%s: the appliance admin is offered a tenant user's form", path)
		}
	}
	want(t, w.root.get("/console/reports/"+id+"/download/pdf"+tq), http.StatusOK, "%PDF-")
}

// TestFindingsPagesLoad runs wrk against the dashboard and the findings
// page of an auditor whose tenant has a signed report (the dashboard then
// reads the newest reports' audit entries for its open findings; the
// findings page parses the report file). Opt-in, like TestDashboardLoad:
//
//	FIQ_CONSOLE_WRK=1 go test ./ui/console -run TestFindingsPagesLoad -v
func TestFindingsPagesLoad(t *testing.T) {
	if os.Getenv("FIQ_CONSOLE_WRK") == "" {
		t.Skip("set FIQ_CONSOLE_WRK=1 to measure the findings pages with wrk")
	}
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		t.Skip("wrk is not installed (Debian: apt-get install -y wrk)")
	}
	w := newReportWorld(t)
	w.op.get("/console/policies")
	wantRedirect(t, w.op.post("/console/policies", url.Values{"source": {w.policySrc}, "intent": {"save"}}), "/console/policies/edge")
	w.createReport(w.op, w.scan(w.op, w.opS))
	u, _ := url.Parse(w.f.srv.URL)
	var cookie string
	for _, c := range w.aud.c.Jar.Cookies(u) {
		if c.Name == auth.SessionCookieName {
			cookie = c.Name + "=" + c.Value
		}
	}
	for _, path := range []string{"/console/", "/console/findings"} {
		out, err := exec.Command(wrk, "-t2", "-c50", "-d10s", "--latency", "-H", "Cookie: "+cookie, w.f.srv.URL+path).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Requests/sec") {
			t.Fatalf("wrk %s: %v\n%s", path, err, out)
		}
		t.Logf("wrk GET %s (auditor, one report):\n%s", path, out)
	}
}
