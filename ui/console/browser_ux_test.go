package console_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"firewalliq/appliance"
	"firewalliq/appliance/store"
	"firewalliq/probe/keys"
)

// longBanner is what the UX tests' target volunteers: a realistic
// product string with a long unbroken token (a build hash), so the
// results explorer's detail column holds text wider than any window.
var longBanner = "ACME-EdgeGateway/9.4.1 (Linux; build " + strings.Repeat("9f3c2a7b", 40) +
	") ready; maintenance window every Sunday 02:00-04:00 UTC, contact noc@example.invalid for access"

// longBannerListener is a TCP service on 127.0.0.1 that sends
// longBanner and closes; its port.
func longBannerListener(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for range 1 << 12 {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Write([]byte(longBanner + "\r\n"))
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// uxWorld is a tenant with real content on every page a security lead
// opens: a scope-signing key, a non-production and a production scope
// over 127.0.0.1, a completed scan (tcp-connect and banner probes of the
// long-banner listener and a closed port), a stored policy and a signed
// report of that scan (local vault), and a pending production request.
type uxWorld struct {
	*reportWorld
	rootS, rootPW string
	prod          string
	scanID        string
	reportID      string
}

func newUXWorld(t *testing.T) *uxWorld {
	t.Helper()
	f := newFixture(t, func(c *appliance.Config) {
		c.Production = false // the local vault is not WORM
		c.Vault.Backend = "local"
		c.Vault.LocalDir = filepath.Join(t.TempDir(), "evidence")
		c.Sensors.Advertise = "tls://127.0.0.1:4222"
	})
	root, rootS, rootPW := f.firstRun("root", f.init.OneTimePassword)
	tenant := f.init.TenantID
	rw := &reportWorld{f: f, root: root, open: longBannerListener(t), closed: closedPort(t), policyName: "edge"}
	rw.lead, rw.leadS, rw.leadPW = f.firstRun("lena", f.addUser(root, rootS, tenant, "lena", store.RoleSecurityLead))
	f.firstRun("ann", f.addUser(root, rootS, tenant, "ann", store.RoleApprover))
	w := &uxWorld{reportWorld: rw, rootS: rootS, rootPW: rootPW}

	pub, priv, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := keys.MarshalPublic(pub)
	if err != nil {
		t.Fatal(err)
	}
	a := rw.lead.post("/console/keys", url.Values{"name": {"lena's laptop"}, "public": {string(pem)}})
	wantRedirect(t, f.stepUpIfAsked(rw.lead, "/console/keys", rw.leadS, a), "/console/keys")
	rw.dev, w.prod = f.registerScopes(rw.lead, pub, priv, fmt.Sprintf("tcp:%d,%d", rw.open, rw.closed))
	f.runScans()

	w.scanID = rw.scan(rw.lead, rw.leadS)
	rw.policySrc = fmt.Sprintf(`version: 1
name: edge
vantage_point: self
description: 'Edge firewall of the data centre: what the outside may and may not reach'
default: deny
canaries:
  - {name: canary, target: 127.0.0.1, port: %d}
rules:
  - {name: web, action: allow, to: 127.0.0.1, ports: "tcp:%d", severity: high}
  - {name: gateway-admin, action: deny, to: 127.0.0.1, ports: "tcp:%d", severity: critical}
`, rw.open, rw.closed, rw.open)
	want(t, rw.lead.get("/console/policies"), http.StatusOK, `id="policy-editor"`)
	wantRedirect(t, rw.lead.post("/console/policies", url.Values{"source": {rw.policySrc}, "intent": {"save"}}), "/console/policies/edge?")
	w.reportID = rw.createReport(rw.lead, w.scanID)

	// A production request waits in the approvals inbox.
	want(t, rw.lead.get("/console/scans"), http.StatusOK, `id="scan-request-form"`)
	form := url.Values{"scope": {w.prod}, "targets": {"127.0.0.1"}, "ports": {fmt.Sprintf("tcp:%d", rw.open)}, "probes": {"tcp-connect"}, "rate": {"10"}}
	wantRedirect(t, f.stepUpIfAsked(rw.lead, "/console/scans", rw.leadS, rw.lead.post("/console/scans", form)), "/console/scans/scan_")
	return w
}

// evalIn evaluates js in c's page, failing the test on an error.
func evalIn[T any](c *chrome, what, js string) T {
	c.t.Helper()
	v, err := chromedp.Run(c.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		c.fail(what, err)
	}
	return v
}

// waitURL waits (10 s at most) until c's page is a new document (the
// marker window.__stay, set before, is gone) whose URL contains want,
// and returns the URL; it fails the test otherwise.
func waitURL(c *chrome, what, want string) string {
	c.t.Helper()
	var last string
	for range 100 {
		rctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
		v, err := chromedp.Run(rctx, chromedp.Evaluate[[]string](`[location.href, String(window.__stay), document.readyState]`))
		cancel()
		if err == nil && len(v) == 3 {
			last = v[0]
			if v[1] == "undefined" && v[2] != "loading" && strings.Contains(v[0], want) {
				return v[0]
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.fail(what, fmt.Errorf("no navigation to a URL with %q; the tab is at %s", want, last))
	return ""
}

// pageState is what the keyboard checks read off a page.
type pageState struct {
	Href  string `json:"href"`
	Stay  bool   `json:"stay"`
	Value string `json:"value"`
}

func readState(c *chrome, sel string) pageState {
	c.t.Helper()
	return evalIn[pageState](c, "state of "+sel, fmt.Sprintf(`({href: location.href, stay: window.__stay === 1, value: document.querySelector(%q).value})`, sel))
}

// TestBrowserKeyboardFilters: the filter forms (form.picker) are usable
// with the keyboard. On the results explorer, the scans list, the
// approvals inbox and the admin's audit page: arrow keys change a
// filter's select without leaving the page; the form's button, pressed
// with Enter, applies the choice; a pointer change submits at once; a
// pointerdown followed by arrow keys does not navigate; and from a fresh
// load Tab reaches the skip link first (pointing at the main content),
// then the first filter select. Any CSP violation, exception or console
// error fails the test.
func TestBrowserKeyboardFilters(t *testing.T) {
	w := newUXWorld(t)
	f := w.f
	ch := newChrome(t, chromeOptions{limit: 6 * time.Minute, stepLimit: 45 * time.Second, artifacts: "fiq-console-keyboard-"})
	u := f.srv.URL
	lead := ch.person("lena")
	f.signIn(lead, "lena", w.leadPW, w.leadS)
	admin := ch.person("root")
	f.signIn(admin, "root", w.rootPW, w.rootS)

	for _, tc := range []struct {
		name  string
		c     *chrome
		path  string
		sel   string // the select
		param string // its name in the URL
		first string // the first filter select on the page
	}{
		{"results state", lead, "/console/scans/" + w.scanID + "/results", "#f-state", "state", "f-state"},
		{"results probe", lead, "/console/scans/" + w.scanID + "/results", "#f-probe", "probe", "f-state"},
		{"scans state", lead, "/console/scans", "#state", "state", "state"},
		{"approvals status", lead, "/console/approvals", "#status", "status", "status"},
		{"audit tenant", admin, "/console/audit", "#tenant-pick", "tenant", "tenant-pick"},
	} {
		{ // one filter; c.fail names it (the tab's t is the test's, so no t.Run)
			c := tc.c
			css := chromedp.CSS(tc.sel)
			open := func(what string) {
				c.do(tc.name+" "+what, chromedp.Navigate(u+tc.path), chromedp.WaitVisible(css))
				evalIn[int](c, "mark", `window.__stay = 1`)
			}

			// a. Arrow keys change the value and stay on the page.
			open("open")
			before := readState(c, tc.sel)
			c.do(tc.name+" arrows", chromedp.Focus(css), chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent(kb.ArrowDown))
			time.Sleep(700 * time.Millisecond) // a submit would have started by now
			after := readState(c, tc.sel)
			if after.Value == before.Value {
				c.fail(tc.name+" arrows", fmt.Errorf("ArrowDown did not change the select (value %q)", after.Value))
			}
			if after.Href != before.Href || !after.Stay {
				c.fail(tc.name+" arrows", fmt.Errorf("arrow keys navigated: %s -> %s (marker kept: %v)", before.Href, after.Href, after.Stay))
			}

			// b. The form's button, pressed with Enter, applies the choice.
			evalIn[bool](c, "focus button", fmt.Sprintf(`(function () { var b = document.querySelector(%q).form.querySelector("button[type=submit]"); b.focus(); return document.activeElement === b; })()`, tc.sel))
			c.do(tc.name+" enter", chromedp.KeyEvent(kb.Enter))
			got := waitURL(c, tc.name+" enter", tc.param+"="+url.QueryEscape(after.Value))
			if v := readState(c, tc.sel).Value; v != after.Value {
				c.fail(tc.name+" enter", fmt.Errorf("after submitting, the select shows %q, want %q (%s)", v, after.Value, got))
			}

			// c. A pointer change submits at once.
			open("reopen")
			nodes, err := chromedp.Run(c.ctx, chromedp.Nodes(css))
			if err != nil || len(nodes) == 0 {
				c.fail(tc.name+" nodes", fmt.Errorf("%v, %d nodes", err, len(nodes)))
			}
			c.do(tc.name+" pointer", chromedp.MouseClickNode(nodes[0]))
			picked := evalIn[string](c, "pick", fmt.Sprintf(`(function () {
  var s = document.querySelector(%q);
  var vs = Array.from(s.options).map(function (o) { return o.value; }).filter(function (v) { return v && v !== s.value; });
  s.value = vs[vs.length - 1];
  s.dispatchEvent(new Event("change", {bubbles: true}));
  return s.value;
})()`, tc.sel))
			waitURL(c, tc.name+" pointer change", tc.param+"="+url.QueryEscape(picked))

			// d. A pointerdown, then the keyboard: no navigation.
			open("again")
			nodes, err = chromedp.Run(c.ctx, chromedp.Nodes(css))
			if err != nil || len(nodes) == 0 {
				c.fail(tc.name+" nodes", fmt.Errorf("%v, %d nodes", err, len(nodes)))
			}
			before = readState(c, tc.sel)
			// The click opens the select's list; Escape closes it.
			c.do(tc.name+" pointer then keys", chromedp.MouseClickNode(nodes[0]), chromedp.KeyEvent(kb.Escape),
				chromedp.Focus(css), chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent(kb.ArrowDown))
			time.Sleep(700 * time.Millisecond)
			after = readState(c, tc.sel)
			if after.Value == before.Value {
				c.fail(tc.name+" pointer then keys", fmt.Errorf("ArrowDown did not change the select (value %q)", after.Value))
			}
			if after.Href != before.Href || !after.Stay {
				c.fail(tc.name+" pointer then keys", fmt.Errorf("arrow keys after a pointerdown navigated: %s -> %s", before.Href, after.Href))
			}

			// e. From a fresh load, Tab reaches the skip link first, then
			// (some Tabs later) the first filter select.
			c.do(tc.name+" fresh", chromedp.Navigate(u+tc.path), chromedp.WaitVisible(css), chromedp.KeyEvent(kb.Tab))
			skip := evalIn[[]string](c, "skip link", `(function () {
  var a = document.activeElement, r = a.getBoundingClientRect();
  var target = document.querySelector(a.getAttribute("href") || "#none");
  return [a.className, a.getAttribute("href") || "", target ? target.tagName : "", String(r.left >= 0 && r.width > 0)];
})()`)
			if skip[0] != "skip" || skip[1] != "#main" || skip[2] != "MAIN" || skip[3] != "true" {
				c.fail(tc.name+" skip link", fmt.Errorf("the first Tab focuses %q", skip))
			}
			var seen []string
			for range 60 {
				c.do(tc.name+" tab", chromedp.KeyEvent(kb.Tab))
				id := evalIn[string](c, "focus", `document.activeElement.id || document.activeElement.tagName`)
				seen = append(seen, id)
				if id == tc.first {
					break
				}
			}
			if seen[len(seen)-1] != tc.first {
				c.fail(tc.name+" tab order", fmt.Errorf("Tab never reached #%s: %v", tc.first, seen))
			}
		}
	}
	lead.shot("keyboard-results.png")
	for _, c := range []*chrome{lead, admin} {
		c.clean()
	}
}

// layoutCheck is what TestBrowserLayoutWidths reads off a page.
type layoutCheck struct {
	Over    int      `json:"over"`    // px the page is wider than the window
	Heading string   `json:"heading"` // main h1's text, "" when not visible
	Zero    []string `json:"zero"`    // headings, labels, buttons with text but no width; long cells squeezed
}

const layoutJS = `(function () {
  var de = document.documentElement, h = document.querySelector("main h1"), zero = [];
  var hr = h ? h.getBoundingClientRect() : null;
  var visible = hr && hr.width > 0 && hr.height > 0 && hr.left >= 0 && hr.right <= window.innerWidth && getComputedStyle(h).visibility === "visible";
  document.querySelectorAll("h1, h2, label, button").forEach(function (el) {
    if (el.closest(".sr-only") || el.getClientRects().length === 0 || !el.textContent.trim()) { return; }
    if (el.getBoundingClientRect().width < 1) { zero.push(el.tagName + " " + el.textContent.trim().slice(0, 40)); }
  });
  // A table cell with a long text squeezed into a sliver (a few characters
  // a line) is as unreadable as a clipped one.
  document.querySelectorAll("main td").forEach(function (el) {
    var w = el.getBoundingClientRect().width;
    if (el.textContent.trim().length > 80 && w < 160) { zero.push("TD (" + Math.round(w) + " px) " + el.textContent.trim().slice(0, 40)); }
  });
  return {over: de.scrollWidth - window.innerWidth, heading: visible ? h.textContent.trim() : "", zero: zero};
})()`

// TestBrowserLayoutWidths opens a security lead's pages with real content
// (a completed scan whose results carry a long banner, a policy, a signed
// report, a pending production request) and the admin's users and audit
// pages, at 1280 and at 768 px wide: no page is wider than the window
// (wide tables scroll inside themselves), the main heading is visible,
// and no heading, label or button is squeezed to no width. It saves a
// screenshot of every page at each width (layout-WIDTH-NAME.png).
func TestBrowserLayoutWidths(t *testing.T) {
	w := newUXWorld(t)
	f := w.f
	ch := newChrome(t, chromeOptions{limit: 8 * time.Minute, stepLimit: 45 * time.Second, artifacts: "fiq-console-layout-"})
	u := f.srv.URL
	tenant := f.init.TenantID
	lead := ch.person("lena")
	f.signIn(lead, "lena", w.leadPW, w.leadS)
	admin := ch.person("root")
	f.signIn(admin, "root", w.rootPW, w.rootS)

	type page struct {
		name, path string
		c          *chrome
		wait       string // shown when the page has its content
	}
	pages := []page{
		{"dashboard", "/console/", lead, "#h-profile"},
		{"scans", "/console/scans", lead, "#scan-request-form"},
		{"scan", "/console/scans/" + w.scanID, lead, "#scan-timeline"},
		{"results", "/console/scans/" + w.scanID + "/results", lead, "#results"},
		{"policies", "/console/policies", lead, "#policy-editor"},
		{"policy", "/console/policies/edge", lead, "#policy-rules"},
		{"reports", "/console/reports", lead, "#reports"},
		{"report", "/console/reports/" + w.reportID, lead, "#report-key-id"},
		{"findings", "/console/findings", lead, "#findings"},
		{"approvals", "/console/approvals", lead, "#status"},
		{"keys", "/console/keys", lead, "#keys"},
		{"scopes", "/console/scopes", lead, "main h1"},
		{"evidence", "/console/evidence", lead, "main table"},
		{"audit", "/console/audit", lead, "table.audit"},
		{"settings", "/console/settings", lead, "main h1"},
		{"sensors", "/console/sensors", lead, "main h1"},
		{"security-keys", "/console/security-keys", lead, "main h1"},
		{"admin-users", "/console/users?tenant=" + tenant, admin, "#new-name"},
		{"admin-audit", "/console/audit", admin, "#tenant-pick"},
	}
	var bad []string
	for _, width := range []int64{1280, 768} {
		for _, c := range []*chrome{lead, admin} {
			c.do(fmt.Sprintf("viewport %d", width), chromedp.EmulateViewport(width, windowHeight))
		}
		for _, p := range pages {
			p.c.do(fmt.Sprintf("open %s at %d px", p.name, width), chromedp.Navigate(u+p.path), chromedp.WaitVisible(chromedp.CSS(p.wait)))
			got := evalIn[layoutCheck](p.c, "layout of "+p.name, layoutJS)
			p.c.shot(fmt.Sprintf("layout-%d-%s.png", width, p.name))
			if got.Over > 0 {
				bad = append(bad, fmt.Sprintf("%s at %d px: %d px wider than the window", p.name, width, got.Over))
			}
			if got.Heading == "" {
				bad = append(bad, fmt.Sprintf("%s at %d px: main heading not visible", p.name, width))
			}
			if len(got.Zero) > 0 {
				bad = append(bad, fmt.Sprintf("%s at %d px: no width or squeezed: %s", p.name, width, strings.Join(got.Zero, "; ")))
			}
		}
	}
	// The long banner is on the results page, inside its table.
	lead.do("results again", chromedp.Navigate(u+"/console/scans/"+w.scanID+"/results"), chromedp.WaitVisible(chromedp.CSS("#results")))
	if !strings.Contains(lead.text("#results tbody"), strings.Repeat("9f3c2a7b", 40)) {
		bad = append(bad, "the results page does not show the long banner")
	}
	if len(bad) > 0 {
		t.Errorf("layout problems:\n%s", strings.Join(bad, "\n"))
	}
	for _, c := range []*chrome{lead, admin} {
		c.clean()
	}
}
