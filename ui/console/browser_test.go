package console_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"firewalliq/appliance/store"
)

// TestBrowserStory drives a real headless Chromium through the console:
// the initial admin's first run (one-time password, TOTP enrolment with the
// secret read off the page, recovery codes, new password), the dashboard
// (screenshot), adding a user with step-up, and the tamper banner once an
// alarm is raised. Forms are submitted with the keyboard. Any CSP
// violation, script exception or console error fails the test.
func TestBrowserStory(t *testing.T) {
	f := newFixture(t)
	ch := newChrome(t, chromeOptions{limit: 3 * time.Minute})
	ctx, do, text := ch.ctx, ch.do, ch.text
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	u := f.srv.URL

	// First run: the one-time password from init, submitted with Enter.
	do("login page", chromedp.Navigate(u+"/console/"), chromedp.WaitVisible(css("#name")))
	do("password", chromedp.SendKeys(css("#name"), "root"),
		chromedp.SendKeys(css("#password"), f.init.OneTimePassword+kb.Enter),
		chromedp.WaitVisible(css("#secret")))
	secret := text("#secret")
	qr, err := chromedp.Run(ctx, chromedp.AttributeValue(css("img.qr"), "src"))
	if err != nil || !strings.HasPrefix(qr.Value, "data:image/png;base64,") {
		t.Fatalf("QR code src %.40q: %v", qr.Value, err)
	}
	do("enrol", chromedp.SendKeys(css("#code"), f.code(secret)+kb.Enter), chromedp.WaitVisible(css("#recovery-codes")))
	do("continue", chromedp.Click(css("#continue")), chromedp.WaitVisible(css("#new_password")))
	newPW := "root chooses a long passphrase"
	do("change password", chromedp.SendKeys(css("#old_password"), f.init.OneTimePassword),
		chromedp.SendKeys(css("#new_password"), newPW),
		chromedp.SendKeys(css("#confirm_password"), newPW+kb.Enter),
		chromedp.WaitVisible(css("#h-profile")))

	// The dashboard, photographed for a person to look at.
	if title := text("h1"); title != "Dashboard" {
		t.Fatalf("title %q", title)
	}
	ch.shot("dashboard.png")

	// Add a user: the step-up prompt appears and re-submits the form.
	do("users page", chromedp.Navigate(u+"/console/users?tenant="+f.init.TenantID), chromedp.WaitVisible(css("#new-name")))
	do("add user", chromedp.SendKeys(css("#new-name"), "alice"),
		chromedp.SetValue(css("#new-role"), store.RoleOperator),
		chromedp.SendKeys(css("#new-approval"), kb.Enter),
		chromedp.WaitVisible(css("#stepup_code")))
	do("step-up", chromedp.SendKeys(css("#stepup_code"), f.code(secret)+kb.Enter), chromedp.WaitVisible(css("#one-time-password")))
	if otp := text("#one-time-password"); len(otp) < 12 {
		t.Fatalf("one-time password %q", otp)
	}
	if users := text("table"); !strings.Contains(users, "alice") {
		t.Fatalf("alice not listed: %s", users)
	}

	// The users page at 768 px wide, for a person to look at.
	do("narrow", chromedp.EmulateViewport(768, 900))
	ch.shot("users-768.png")
	do("wide", chromedp.EmulateViewport(windowWidth, windowHeight))

	// A raised tamper alarm shows on every page.
	f.raiseAlarm()
	for _, path := range []string{"/console/", "/console/audit", "/console/sessions"} {
		do("banner on "+path, chromedp.Navigate(u+path), chromedp.WaitVisible(css("#tamper-banner")))
		if banner := text("#tamper-banner"); !strings.Contains(banner, "tamper alarm") {
			t.Fatalf("%s: banner %q", path, banner)
		}
	}
	// The appliance admin is offered the acknowledgement on the dashboard.
	do("alarm form", chromedp.Navigate(u+"/console/"), chromedp.WaitVisible(css("#ack-comment")))

	// Require a clean console.
	ch.clean()
}

// TestBrowserScan drives Chromium through a security lead's non-production
// scan of a listener on 127.0.0.1: sign-in with password and TOTP, the
// request form (scope, targets, ports, probe, rate), the step-up prompt,
// the scan page's live progress over Server-Sent Events (probes sent, rate
// against the cap), the page reloading itself when the scan completes, and
// the results explorer with a filter. It saves scan.png and results.png.
// Any CSP violation, script exception or console error fails the test.
func TestBrowserScan(t *testing.T) {
	f := newFixture(t)
	ch := newChrome(t, chromeOptions{limit: 5 * time.Minute})
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	u := f.srv.URL

	// Set-up over HTTP: the admin adds a security lead, who registers a
	// key; two scopes over 127.0.0.1 (30 ports around a listener).
	root, rootSecret, _ := f.firstRun("root", f.init.OneTimePassword)
	lead, leadS, leadPW := f.firstRun("lena", f.addUser(root, rootSecret, f.init.TenantID, "lena", store.RoleSecurityLead))
	pub, priv, pem := signingKey(t)
	a := lead.post("/console/keys", url.Values{"name": {"laptop"}, "public": {string(pem)}})
	wantRedirect(t, f.stepUpIfAsked(lead, "/console/keys", leadS, a), "/console/keys")
	port := listener(t)
	lo := min(port, 65535-29)
	ports := fmt.Sprintf("tcp:%d-%d", lo, lo+29)
	dev, _ := f.registerScopes(lead, pub, priv, ports)
	f.runScans()

	// The lead signs in in the browser.
	ch.do("login", chromedp.Navigate(u+"/console/login"), chromedp.WaitVisible(css("#name")),
		chromedp.SendKeys(css("#name"), "lena"), chromedp.SendKeys(css("#password"), leadPW+kb.Enter),
		chromedp.WaitVisible(css("#code")))
	ch.do("totp", chromedp.SendKeys(css("#code"), f.code(leadS)+kb.Enter), chromedp.WaitVisible(css("#h-profile")))

	// The request form, submitted with Enter from the rate field.
	ch.do("scans page", chromedp.Navigate(u+"/console/scans"), chromedp.WaitVisible(css("#scan-request-form")))
	ch.do("request", chromedp.SetValue(css("#scan-scope"), dev),
		chromedp.SendKeys(css("#scan-targets"), "127.0.0.1"),
		chromedp.SendKeys(css("#scan-ports"), ports),
		chromedp.Click(css(`input[name=probes][value=tcp-connect]`)),
		chromedp.Click(css(`input[name=probes][value=banner]`)),
		chromedp.SendKeys(css("#scan-rate"), "10"+kb.Enter),
		chromedp.WaitVisible(css("#stepup_code")))
	if op := ch.text("#stepup-form strong"); op != "scan.start" {
		t.Fatalf("step-up for %q", op)
	}
	ch.do("step-up", chromedp.SendKeys(css("#stepup_code"), f.code(leadS)+kb.Enter), chromedp.WaitVisible(css("#progress")))

	// Live progress: probes sent and the rate against the cap appear
	// while it runs, then the page reloads itself on completion.
	// (60 s at most by the clock: the first probe leaves a few seconds
	// after the job starts, and three reads a round take a while on a
	// busy machine.)
	var sawRate string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		if r := ch.text("#p-rate"); strings.Contains(r, "cap") {
			sawRate = r
			if ch.text("#p-sent") != "—" {
				break
			}
		}
		if ch.text("#scan-state") == "completed" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(sawRate, "/s cap") {
		t.Fatalf("no live rate seen (last %q)", sawRate)
	}
	// The page reloads itself when the feed ends with a new state; the
	// server-rendered page then names the finished job. (60 results at 10
	// a second: 90 s at most, for a busy machine.)
	box := ch.waitTextFor(90*time.Second, "#progress", func(s string) bool {
		return strings.Contains(s, "finished") && strings.Contains(s, "60 results stored")
	})
	if !strings.Contains(box, "60 results stored") || ch.text("#scan-state") != "completed" {
		ch.fail("scan completion", fmt.Errorf("progress box: %s", box))
	}
	ch.shot("scan.png")

	// The results explorer: the listener's port is open; filter by it.
	ch.do("results", chromedp.Click(css("#results-link")), chromedp.WaitVisible(css("#results")))
	if rows := ch.text("#results tbody"); !strings.Contains(rows, "open") || !strings.Contains(rows, "closed") {
		t.Fatalf("results: %s", rows)
	}
	// The listener's banner (markup and script) is shown as text and
	// nothing of it ran.
	all := ch.location()
	ch.do("banner filter", chromedp.Navigate(all+fmt.Sprintf("?probe=banner&port=%d", port)), chromedp.WaitVisible(css("#results")))
	if rows := ch.text("#results tbody"); !strings.Contains(rows, hostileBanner) {
		t.Fatalf("banner not shown as text: %s", rows)
	}
	pwned, err := chromedp.Run(ch.ctx, chromedp.Evaluate[bool](`window.pwned === 1 || document.getElementById("pwned") !== null`))
	if err != nil || pwned {
		t.Fatalf("the banner's markup took effect (%v)", err)
	}
	ch.do("back to all", chromedp.Navigate(all), chromedp.WaitVisible(css("#f-port")))
	ch.do("filter", chromedp.SetValue(css("#f-state"), "open"), chromedp.SendKeys(css("#f-port"), fmt.Sprint(port)+kb.Enter))
	// Wait for the filtered page itself, not the one the form was on
	// (reads during the navigation may fail; they are tried again).
	rows := ch.waitText("#results tbody", func(s string) bool {
		return strings.Contains(s, fmt.Sprintf("tcp/%d", port)) && !strings.Contains(s, "closed")
	})
	if !strings.Contains(rows, fmt.Sprintf("tcp/%d", port)) || strings.Contains(rows, "closed") {
		ch.fail("filtered results", fmt.Errorf("rows: %s", rows))
	}
	ch.shot("results.png")
	ch.clean()
}

// TestBrowserPolicyReport drives Chromium through an operator's policy and
// report work: the policy editor (validate, then store), the dry run
// against the scope with its warning, a compliance report of a completed
// scan (with a deliberate exposure: the listener the policy denies
// answers), the report page with its signature key id and verify command,
// the findings page, the scan page's timeline chart, and the PDF download
// (the file Chromium saved is checked). The scanned banner's markup must
// not run. Any CSP violation, script exception or console error fails the
// test.
func TestBrowserPolicyReport(t *testing.T) {
	w := newReportWorld(t)
	f := w.f
	scanID := w.scan(w.op, w.opS)
	ch := newChrome(t, chromeOptions{limit: 3 * time.Minute})
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	u := f.srv.URL
	downloads := ch.downloadDir()

	ch.do("login", chromedp.Navigate(u+"/console/login"), chromedp.WaitVisible(css("#name")),
		chromedp.SendKeys(css("#name"), "otto"), chromedp.SendKeys(css("#password"), w.opPW+kb.Enter),
		chromedp.WaitVisible(css("#code")))
	ch.do("totp", chromedp.SendKeys(css("#code"), f.code(w.opS)+kb.Enter), chromedp.WaitVisible(css("#h-profile")))

	// The editor: validate, then store.
	ch.do("policies", chromedp.Navigate(u+"/console/policies"), chromedp.WaitVisible(css("#policy-source")))
	ch.do("validate", chromedp.SetValue(css("#policy-source"), w.policySrc), chromedp.Click(css("#policy-validate")),
		chromedp.WaitVisible(css("#policy-valid")))
	if v := ch.text("#policy-valid"); !strings.Contains(v, "3 rule(s)") {
		t.Fatalf("validation: %q", v)
	}
	ch.do("store", chromedp.Click(css("#policy-save")), chromedp.WaitVisible(css("#policy-rules")))
	if d := ch.text("#policy-description"); !strings.Contains(d, hostileMarkup) {
		t.Fatalf("description not shown as text: %q", d)
	}

	// The dry run against the scope.
	ch.do("dry run", chromedp.SetValue(css("#dryrun-scope"), w.dev), chromedp.Click(css("#dryrun-run")),
		chromedp.WaitVisible(css("#dryrun-coverage")))
	if warn := ch.text("#dryrun-warnings"); !strings.Contains(warn, "far") {
		t.Fatalf("dry-run warnings: %q", warn)
	}
	if cov := ch.text("#dryrun-coverage tbody"); !strings.Contains(cov, "listener") || !strings.Contains(cov, "web") {
		t.Fatalf("coverage: %q", cov)
	}
	ch.shot("policy.png")

	// A report of the completed scan.
	ch.do("reports", chromedp.Navigate(u+"/console/reports"), chromedp.WaitVisible(css("#report-form")))
	ch.do("create report", chromedp.SetValue(css("#report-scan"), scanID), chromedp.SetValue(css("#report-policy"), w.policyName),
		chromedp.Click(css("#report-create")), chromedp.WaitVisible(css("#report-key-id")))
	if k := ch.text("#report-key-id"); len(k) < 8 {
		t.Fatalf("key id %q", k)
	}
	if cmd := ch.text("#verify-command"); !strings.HasPrefix(cmd, "firewalliq report verify report.json") {
		t.Fatalf("verify command %q", cmd)
	}
	if fs := ch.text("#report-findings tbody"); !strings.Contains(fs, "exposure") || !strings.Contains(fs, "blocked") {
		t.Fatalf("report findings: %q", fs)
	}
	ch.shot("report.png")

	// The PDF, saved by Chromium.
	ch.do("download pdf", chromedp.Click(css(`#report-downloads a[href*="/download/pdf"]`)))
	pdf := downloaded(downloads, ".pdf")
	if !strings.HasPrefix(string(pdf), "%PDF-") {
		t.Fatalf("no PDF downloaded (%d bytes in %s)", len(pdf), downloads)
	}

	// The findings page: the exposure, linked to its scan and report.
	ch.do("findings", chromedp.Navigate(u+"/console/findings"), chromedp.WaitVisible(css("#findings")))
	rows := ch.text("#findings tbody")
	if !strings.Contains(rows, "exposure") || !strings.Contains(rows, scanID) {
		t.Fatalf("findings: %q", rows)
	}
	ch.do("findings filter", chromedp.SetValue(css("#f-kind"), "exposure"), chromedp.Click(css("#findings-filter button")))
	rows = ch.waitText("#findings-summary", func(s string) bool { return strings.HasPrefix(s, "1 finding(s)") })
	if !strings.HasPrefix(rows, "1 finding(s)") {
		ch.fail("findings filter", fmt.Errorf("summary %q", rows))
	}
	ch.shot("findings.png")

	// The scan page's timeline, and the dashboard's open exposures.
	ch.do("scan timeline", chromedp.Navigate(u+"/console/scans/"+scanID), chromedp.WaitVisible(css("#scan-timeline")))
	ch.shot("scan-timeline.png")
	ch.do("dashboard", chromedp.Navigate(u+"/console/"), chromedp.WaitVisible(css("#open-exposures")))
	if n := ch.text("#open-exposures"); n != "1" {
		t.Fatalf("open exposures %q", n)
	}
	pwned, err := chromedp.Run(ch.ctx, chromedp.Evaluate[bool](`window.pwned === 1 || document.getElementById("pwned") !== null`))
	if err != nil || pwned {
		t.Fatalf("untrusted markup took effect (%v)", err)
	}
	ch.clean()
}
