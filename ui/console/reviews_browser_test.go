package console_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"firewalliq/appliance/keyring"
	"firewalliq/appliance/report/verify"
	"firewalliq/appliance/store"
)

// TestBrowserAccessReview drives Chromium through a tenant admin's access
// review: start it, keep every line but the operator's account (revoke),
// record the decisions, sign with the step-up prompt (TOTP), and download
// the signed JSON in the same session; the download verifies offline with
// appliance/report/verify against the appliance's report key, and the
// revocation took effect at signing. Any CSP violation, script exception
// or console error fails the test.
func TestBrowserAccessReview(t *testing.T) {
	f := newFixture(t)
	ch := newChrome(t, chromeOptions{limit: 3 * time.Minute})
	ctx, do, text := ch.ctx, ch.do, ch.text
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	u := f.srv.URL

	root, rootSecret, _ := f.firstRun("root", f.init.OneTimePassword)
	tenant := f.init.TenantID
	_, adminSecret, adminPW := f.firstRun("tara", f.addUser(root, rootSecret, tenant, "tara", store.RoleAdmin))
	op, _, _ := f.firstRun("otto", f.addUser(root, rootSecret, tenant, "otto", store.RoleOperator))
	opID := f.principalOf(op).UserID

	do("login page", chromedp.Navigate(u+"/console/login"), chromedp.WaitVisible(css("#name")))
	do("password", chromedp.SendKeys(css("#name"), "tara"), chromedp.SendKeys(css("#password"), adminPW+kb.Enter), chromedp.WaitVisible(css("#code")))
	do("totp", chromedp.SendKeys(css("#code"), f.code(adminSecret)+kb.Enter), chromedp.WaitVisible(css("#h-profile")))

	// Start the review.
	do("reviews", chromedp.Navigate(u+"/console/reviews"), chromedp.WaitVisible(css("#review-start")))
	ch.click("start", "#review-start button")
	do("review page", chromedp.WaitVisible(css("#review-lines select")))
	lines := text("#review-lines")
	if !strings.Contains(lines, "user:"+opID) {
		t.Fatalf("no line for the operator: %s", lines)
	}

	// Decide: revoke the operator's account, keep the rest.
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`(function () {
	  var n = 0;
	  document.querySelectorAll("#review-lines select").forEach(function (s) {
	    s.value = s.name === "d:user:`+opID+`" ? "revoke" : "keep"; n++;
	  });
	  return n;
	})()`))
	if err != nil || n < 3 {
		t.Fatalf("set %d decisions: %v", n, err)
	}
	ch.click("decide", "#review-decide button[type=submit]")
	// The same page comes back with the decisions (wait for the reload).
	if lines := ch.waitText("#review-lines caption", func(s string) bool { return s != "" && !strings.Contains(s, "undecided") }); strings.Contains(lines, "undecided") {
		t.Fatalf("lines still undecided: %s", lines)
	}
	ch.shot("review-decided.png")

	// Sign: the step-up prompt, then the signed review's downloads. (The
	// form is submitted without its "danger" button, whose confirm()
	// dialog a headless tab would have to answer.)
	do("sign", chromedp.Evaluate[chromedp.Void](`document.getElementById("review-sign").requestSubmit()`), chromedp.WaitVisible(css("#stepup_code")))
	if op := text("#stepup-form strong"); op != "review.sign" {
		t.Fatalf("step-up for %q", op)
	}
	do("step-up", chromedp.SendKeys(css("#stepup_code"), f.code(adminSecret)+kb.Enter), chromedp.WaitVisible(css("#review-downloads")))
	if status := text("#review-status"); status != "signed" {
		t.Fatalf("status %q", status)
	}

	// Download the signed JSON in the browser's session and verify it.
	file, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch(document.querySelector("#review-downloads a").href).then(function (r) { return r.text(); })`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := f.app.Keys.Public(keyring.Report)
	if err != nil {
		t.Fatal(err)
	}
	res, err := verify.Verify([]byte(file), verify.Options{ReportKey: pub})
	if err != nil || res.Review == nil {
		t.Fatalf("downloaded review does not verify: %v\n%.300s", err, file)
	}
	revoked := 0
	for _, l := range res.Review.Lines {
		if l.Decision == verify.DecisionRevoke {
			revoked++
			if l.Item != "user:"+opID {
				t.Fatalf("revoked %s", l.Item)
			}
		}
	}
	if revoked != 1 || res.Review.Reviewer.Name != "tara" {
		t.Fatalf("signed review: %d revoked, reviewer %+v", revoked, res.Review.Reviewer)
	}
	// The operator's account was disabled at signing: their session ended.
	wantRedirect(t, op.get("/console/"), "/console/login")
	ch.clean()
}
