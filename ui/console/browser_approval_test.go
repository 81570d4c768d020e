package console_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"firewalliq/appliance"
)

// signIn signs name in through the login page of c: password, then the
// TOTP code of secret.
func (f *fixture) signIn(c *chrome, name, password, secret string) {
	c.t.Helper()
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	c.do(name+" login", chromedp.Navigate(f.srv.URL+"/console/login"), chromedp.WaitVisible(css("#name")),
		chromedp.SendKeys(css("#name"), name), chromedp.SendKeys(css("#password"), password+kb.Enter),
		chromedp.WaitVisible(css("#code")))
	c.do(name+" totp", chromedp.SendKeys(css("#code"), f.code(secret)+kb.Enter), chromedp.WaitVisible(css("#h-profile")))
	if who := c.text(".who"); !strings.Contains(who, name) {
		c.fail("signed in as", fmt.Errorf("header says %q, want %s", who, name))
	}
}

// TestBrowserApprovalStory is the two-browser approval story in real
// Chromium: a security lead and two approvers, each in their own browser
// context (own cookie jar), sign in with password and TOTP. The lead
// requests a production scan of a listener on 127.0.0.1 (pending: it needs
// two approvers other than the lead); each approver opens the scan from
// the approvals inbox, approves it and answers the step-up prompt; the
// lead, whose session was never shared, sees it approved, starts it with
// step-up and watches the live progress until it completes. Any CSP
// violation, script exception or console error in any of the three fails
// the test; a failure saves a screenshot and the page's HTML.
func TestBrowserApprovalStory(t *testing.T) {
	f := newFixture(t)
	root, rootSecret, _ := f.firstRun("root", f.init.OneTimePassword)
	w := newScanWorldOn(t, f, root, rootSecret)
	f.runScans()
	ch := newChrome(t, chromeOptions{limit: 6 * time.Minute, stepLimit: 45 * time.Second})
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	u := f.srv.URL

	lead := ch.person("lena")
	ann := ch.person("ann")
	ben := ch.person("ben")
	f.signIn(lead, "lena", "lena chooses a long passphrase", w.leadS)
	f.signIn(ann, "ann", "ann chooses a long passphrase", w.annS)
	f.signIn(ben, "ben", "ben chooses a long passphrase", w.bS)
	// Three contexts, three sessions: each tab's cookie jar holds its own.
	sessions := map[string]bool{}
	for _, c := range []*chrome{lead, ann, ben} {
		cks, err := chromedp.Call(c.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{u}})
		if err != nil || len(cks.Cookies) == 0 {
			c.fail("cookies", fmt.Errorf("%v, %d cookies", err, len(cks.Cookies)))
		}
		for _, ck := range cks.Cookies {
			sessions[ck.Value] = true
		}
	}
	if len(sessions) != 3 {
		t.Fatalf("the three browser contexts share cookies: %d distinct values", len(sessions))
	}

	// The lead requests a production scan: it waits for approvers.
	lead.do("scans page", chromedp.Navigate(u+"/console/scans"), chromedp.WaitVisible(css("#scan-request-form")))
	lead.do("request", chromedp.SetValue(css("#scan-scope"), w.prod),
		chromedp.SendKeys(css("#scan-targets"), "127.0.0.1"),
		chromedp.SendKeys(css("#scan-ports"), fmt.Sprintf("tcp:%d,%d", w.port, w.port+1)),
		chromedp.Click(css(`input[name=probes][value=tcp-connect]`)),
		chromedp.SendKeys(css("#scan-rate"), "10"+kb.Enter),
		chromedp.WaitVisible(css("#scan-state, #stepup_code")))
	if ok, _ := chromedp.Run(lead.ctx, chromedp.Evaluate[bool](`document.getElementById("stepup_code") !== null`)); ok {
		lead.do("request step-up", chromedp.SendKeys(css("#stepup_code"), f.code(w.leadS)+kb.Enter), chromedp.WaitVisible(css("#scan-state")))
	}
	if st := lead.text("#scan-state"); st != "pending" {
		lead.fail("request", fmt.Errorf("state %q, want pending", st))
	}
	scanURL, _, _ := strings.Cut(lead.location(), "?") // the redirect carries ?flash=
	id := scanURL[strings.LastIndex(scanURL, "/")+1:]
	if strings.Contains(lead.text("main"), "Approve") {
		lead.fail("own scan", fmt.Errorf("the requester is offered approval"))
	}

	// Each approver, in their own browser: the inbox, the scan, approve,
	// step-up.
	for i, ap := range []struct {
		c      *chrome
		secret string
		want   string
	}{{ann, w.annS, "pending"}, {ben, w.bS, "approved"}} {
		ap.c.do("inbox", chromedp.Navigate(u+"/console/approvals"), chromedp.WaitVisible(css(`a[href="/console/scans/`+id+`"]`)))
		ap.c.do("open scan", chromedp.Click(css(`a[href="/console/scans/`+id+`"]`)), chromedp.WaitVisible(css("#scan-approve")))
		ap.c.do("approve", chromedp.Click(css("#scan-approve button")), chromedp.WaitVisible(css("#stepup_code")))
		if op := ap.c.text("#stepup-form strong"); !strings.Contains(op, "approv") && !strings.Contains(op, "scan") {
			ap.c.fail("step-up", fmt.Errorf("prompt names %q", op))
		}
		ap.c.do("step-up", chromedp.SendKeys(css("#stepup_code"), f.code(ap.secret)+kb.Enter), chromedp.WaitVisible(css("#scan-state")))
		if st := ap.c.waitText("#scan-state", func(s string) bool { return s == ap.want }); st != ap.want {
			ap.c.fail(fmt.Sprintf("approval %d", i+1), fmt.Errorf("state %q, want %s", st, ap.want))
		}
		ap.c.shot(fmt.Sprintf("approved-%d.png", i+1))
	}

	// The lead starts the approved scan (step-up) and watches it run.
	lead.do("reload", chromedp.Navigate(scanURL), chromedp.WaitVisible(css("#scan-start")))
	if st := lead.text("#scan-state"); st != "approved" {
		lead.fail("approved", fmt.Errorf("state %q", st))
	}
	lead.do("start", chromedp.Click(css("#scan-start button")), chromedp.WaitVisible(css("#stepup_code")))
	if op := lead.text("#stepup-form strong"); op != "scan.start" {
		lead.fail("start step-up", fmt.Errorf("prompt names %q", op))
	}
	lead.do("start step-up", chromedp.SendKeys(css("#stepup_code"), f.code(w.leadS)+kb.Enter), chromedp.WaitVisible(css("#progress")))
	// (60 s at most: a busy machine slows the paced scan.)
	box := lead.waitTextFor(60*time.Second, "#progress", func(s string) bool { return strings.Contains(s, "2 results stored") })
	if !strings.Contains(box, "2 results stored") || lead.text("#scan-state") != "completed" {
		lead.fail("scan completion", fmt.Errorf("progress box: %s", box))
	}
	lead.shot("production-scan.png")
	for _, c := range []*chrome{lead, ann, ben} {
		c.clean()
	}
}

// TestBrowserSecurity checks, in real Chromium and over HTTP, what the
// console promises the browser: security headers on every page a signed-in
// admin and security lead can open (a CSP of default-src 'self' without
// unsafe-inline and with frame-ancestors 'none', X-Frame-Options DENY,
// HSTS, Referrer-Policy, nosniff); the session cookie's flags as Chromium
// stored them (Secure, HttpOnly, SameSite=Strict, __Host- prefix); that a
// state change posted from the page without the CSRF token is refused
// (403) and changes nothing; that a cross-origin page cannot frame the
// console; and that every console page loads with no JavaScript error,
// exception or CSP violation.
func TestBrowserSecurity(t *testing.T) {
	f := newFixture(t, func(c *appliance.Config) {
		c.Production, c.Vault.Backend = false, "local" // the local vault is not WORM
		c.Sensors.Advertise = "tls://127.0.0.1:4222"
	})
	root, rootSecret, rootPW := f.firstRun("root", f.init.OneTimePassword)
	w := newScanWorldOn(t, f, root, rootSecret)
	ch := newChrome(t, chromeOptions{limit: 6 * time.Minute, stepLimit: 45 * time.Second})
	u := f.srv.URL
	tenant := f.init.TenantID

	admin := ch.person("root")
	f.signIn(admin, "root", rootPW, rootSecret)
	lead := ch.person("lena")
	f.signIn(lead, "lena", "lena chooses a long passphrase", w.leadS)

	// The session cookie as the browser keeps it.
	cks, err := chromedp.Call(admin.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{u}})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, ck := range cks.Cookies {
		if !strings.HasPrefix(ck.Name, "__Host-") {
			continue
		}
		found = true
		if !ck.Secure || !ck.HTTPOnly || ck.SameSite != network.CookieSameSiteStrict || ck.Path != "/" || ck.Domain != "127.0.0.1" {
			t.Errorf("session cookie %s: secure %v httponly %v samesite %q path %q domain %q", ck.Name, ck.Secure, ck.HTTPOnly, ck.SameSite, ck.Path, ck.Domain)
		}
	}
	if !found {
		t.Fatalf("no __Host- session cookie in the browser: %+v", cks.Cookies)
	}

	// Every page of each person's menu (and the pages reached from it)
	// loads with 200, the security headers, and a clean console.
	for _, who := range []struct {
		c     *chrome
		pages []string
	}{
		// Beyond each menu: pages reached from it, and the tenant pages
		// an appliance admin opens with a tenant picked.
		{admin, []string{"/console/users?tenant=" + tenant, "/console/scans?tenant=" + tenant, "/console/keys?tenant=" + tenant,
			"/console/sensors?tenant=" + tenant, "/console/settings?tenant=" + tenant, "/console/password"}},
		{lead, []string{"/console/scopes/" + w.prod, "/console/password"}},
	} {
		menu, err := chromedp.Run(who.c.ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("header nav a")).map(a => a.getAttribute("href"))`))
		if err != nil {
			who.c.fail("menu", err)
		}
		pages := append([]string(nil), who.pages...)
		for _, m := range menu {
			if !containsPrefix(pages, m) {
				pages = append(pages, m)
			}
		}
		for _, path := range pages {
			who.c.step++
			resp, err := chromedp.RunResponse(who.c.ctx, chromedp.Navigate(u+path))
			if err != nil {
				who.c.fail("open "+path, err)
			}
			if resp.Status != http.StatusOK {
				who.c.fail("open "+path, fmt.Errorf("status %d", resp.Status))
			}
			h := map[string]string{}
			for k, v := range resp.Headers {
				h[strings.ToLower(k)] = fmt.Sprint(v)
			}
			csp := h["content-security-policy"]
			for name, want := range map[string]string{"content-security-policy": "default-src 'self'", "x-frame-options": "DENY",
				"x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "strict-transport-security": "max-age="} {
				if !strings.Contains(h[name], want) {
					t.Errorf("%s: %s = %q, want %q", path, name, h[name], want)
				}
			}
			if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || !strings.Contains(csp, "frame-ancestors 'none'") {
				t.Errorf("%s: weak CSP %q", path, csp)
			}
			// Let the page's script run, then require a clean console.
			time.Sleep(100 * time.Millisecond)
			if ps := who.c.seen.all(); len(ps) > 0 {
				who.c.fail("console of "+path, fmt.Errorf("%s", strings.Join(ps, "\n")))
			}
		}
	}

	// Readable at 768 px: no page of the admin's menu is wider than the
	// window (wide tables scroll inside themselves, console.css).
	admin.do("narrow", chromedp.EmulateViewport(768, 900))
	var wide []string
	for _, path := range append([]string{"/console/users?tenant=" + tenant, "/console/scans?tenant=" + tenant, "/console/audit"}, menuOf(t, admin)...) {
		admin.do("open "+path+" at 768 px", chromedp.Navigate(u+path), chromedp.WaitReady("main"))
		over, err := chromedp.Run(admin.ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth - document.documentElement.clientWidth`))
		if err != nil {
			admin.fail("width of "+path, err)
		}
		if over > 1 {
			wide = append(wide, fmt.Sprintf("%s (%d px too wide)", path, over))
		}
	}
	if len(wide) > 0 {
		admin.shot("narrow.png")
		t.Errorf("pages wider than 768 px: %s", strings.Join(wide, ", "))
	}
	admin.do("wide again", chromedp.EmulateViewport(windowWidth, windowHeight))

	// A state change without the CSRF token, sent by script from the
	// console's own origin with the session cookie: refused, nothing made.
	admin.do("users page", chromedp.Navigate(u+"/console/users?tenant="+tenant), chromedp.WaitVisible(chromedp.CSS("#new-name")))
	status, err := chromedp.Run(admin.ctx, chromedp.Evaluate[int](`fetch("/console/users", {method: "POST", credentials: "same-origin",
	  headers: {"Content-Type": "application/x-www-form-urlencoded"},
	  body: "tenant=`+tenant+`&name=mallory&role=admin"}).then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil || status != http.StatusForbidden {
		t.Fatalf("POST without CSRF token: status %d, %v; want 403", status, err)
	}
	if body := admin.text("main"); strings.Contains(body, "mallory") {
		t.Fatal("mallory appears on the users page")
	}
	admin.do("users again", chromedp.Navigate(u+"/console/users?tenant="+tenant), chromedp.WaitVisible(chromedp.CSS("#new-name")))
	if body := admin.text("main"); strings.Contains(body, "mallory") {
		t.Fatal("a user was created without a CSRF token")
	}

	// Framing: a page on another origin that frames the console gets an
	// empty frame (frame-ancestors 'none'); Chromium reports the refusal in
	// that page's console, so it runs in a tab of its own.
	attacker := ch.person("attacker")
	framer := httptestFramer(t, u+"/console/login")
	attacker.do("framing page", chromedp.Navigate(framer), chromedp.WaitReady(chromedp.CSS("iframe")))
	// The refusal reaches the listener some time after the load (10 s at
	// most; on a busy machine more than half a second).
	var refused bool
	for range 100 {
		for _, p := range attacker.seen.all() {
			if strings.Contains(p, "frame-ancestors") || strings.Contains(p, "X-Frame-Options") || strings.Contains(p, "Refused to display") {
				refused = true
			}
		}
		if refused {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !refused {
		t.Errorf("no framing refusal reported; the page reported: %v", attacker.seen.all())
	}

	// The failed fetch above logs a 403 in the admin's console, on purpose.
	for _, c := range []*chrome{admin, lead} {
		var left []string
		for _, p := range c.seen.all() {
			if !strings.Contains(p, "status of 403") {
				left = append(left, p)
			}
		}
		if len(left) > 0 {
			t.Fatalf("the browser reported problems:\n%s", strings.Join(left, "\n"))
		}
	}
}

func containsPrefix(list []string, s string) bool {
	for _, x := range list {
		if x == s || strings.HasPrefix(x, s+"?") {
			return true
		}
	}
	return false
}

// httptestFramer serves, on another origin (plain HTTP on 127.0.0.1), a
// page that puts target in a frame; its URL.
func httptestFramer(t *testing.T, target string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!DOCTYPE html><title>framer</title><iframe src="%s" width="800" height="600"></iframe>`, target)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// menuOf is the links of c's menu on the page it shows.
func menuOf(t *testing.T, c *chrome) []string {
	t.Helper()
	menu, err := chromedp.Run(c.ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("header nav a")).map(a => a.getAttribute("href"))`))
	if err != nil {
		c.fail("menu", err)
	}
	return menu
}
