package console_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"firewalliq/appliance/store"
)

// chromiumPath finds Debian's chromium; "" when it is not installed.
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// problems collects what the page reported that a test must fail on:
// CSP violations, JavaScript exceptions and console errors.
type problems struct {
	mu   sync.Mutex
	list []string
}

func (p *problems) add(s string) { p.mu.Lock(); defer p.mu.Unlock(); p.list = append(p.list, s) }
func (p *problems) all() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.list...)
}

// reportViolations runs in every document before its own scripts (from
// the DevTools protocol, so the page's CSP does not apply to it) and turns
// each CSP violation into a console error the test collects.
const reportViolations = `document.addEventListener("securitypolicyviolation", function (e) {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + e.blockedURI);
});`

// TestBrowserStory drives a real headless Chromium through the console:
// the initial admin's first run (one-time password, TOTP enrolment with the
// secret read off the page, recovery codes, new password), the dashboard
// (screenshot), adding a user with step-up, and the tamper banner once an
// alarm is raised. Forms are submitted with the keyboard. Any CSP
// violation, script exception or console error fails the test.
func TestBrowserStory(t *testing.T) {
	exe := chromiumPath()
	if exe == "" {
		t.Skip("chromium is not installed (Debian: apt-get install -y chromium); skipping the browser test")
	}
	f := newFixture(t)
	artifacts, err := os.MkdirTemp("", "fiq-console-browser-")
	if err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// The test server's certificate is self-signed for 127.0.0.1.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	var seen problems
	// The listener is added before the first command, so it sees every
	// event of the tab; it only records (it must return fast).
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			seen.add("exception: " + ev.ExceptionDetails.Text)
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, strings.Trim(string(a.Value), `"`))
				}
				seen.add("console " + string(ev.Type) + ": " + strings.Join(parts, " "))
			}
		case *cdplog.EventEntryAdded:
			// The step-up prompt is answered with 401 on purpose (the
			// action has not run); Chromium logs every 4xx document.
			if ev.Entry.Source == cdplog.EntrySourceNetwork && strings.Contains(ev.Entry.Text, "status of 401") {
				return
			}
			if ev.Entry.Level == cdplog.EntryLevelError || ev.Entry.Source == cdplog.EntrySourceSecurity || ev.Entry.Source == cdplog.EntrySourceViolation {
				seen.add("log " + string(ev.Entry.Source) + ": " + ev.Entry.Text)
			}
		}
	}))
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelTimeout()

	// fail saves a screenshot and the page's HTML, then fails the test.
	step := 0
	fail := func(what string, err error) {
		t.Helper()
		dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
		png, _ := chromedp.Run(dctx, chromedp.FullScreenshot(100))
		html, _ := chromedp.Run(dctx, chromedp.OuterHTML(chromedp.CSS("html")))
		dcancel()
		base := filepath.Join(artifacts, fmt.Sprintf("step%02d", step))
		_ = os.WriteFile(base+".png", png, 0o600)
		_ = os.WriteFile(base+".html", []byte(html), 0o600)
		t.Fatalf("%s: %v (screenshot and HTML in %s.*)", what, err, base)
	}
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		step++
		if err := chromedp.Do(ctx, actions...); err != nil {
			fail(what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			fail("read "+sel, err)
		}
		return strings.TrimSpace(v)
	}
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	u := f.srv.URL

	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: reportViolations}); err != nil {
		t.Fatal(err)
	}

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
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(artifacts, "dashboard.png")
	if err := os.WriteFile(shot, png, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("dashboard screenshot: %s", shot)

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
	narrow, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(artifacts, "users-768.png"), narrow, 0o600); err != nil {
		t.Fatal(err)
	}
	do("wide", chromedp.EmulateViewport(1280, 900))

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

	// Let late reports arrive, then require a clean console.
	time.Sleep(200 * time.Millisecond)
	if ps := seen.all(); len(ps) > 0 {
		t.Fatalf("the browser reported problems:\n%s", strings.Join(ps, "\n"))
	}
}
