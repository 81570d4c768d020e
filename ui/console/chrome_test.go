package console_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto"
	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// The window every browser test starts with; the 768 px checks narrow the
// viewport and put it back to this.
const (
	windowWidth  = 1280
	windowHeight = 900
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

// chromeOptions is how a test's Chromium differs from the default one.
// The zero value is the default: 3 minutes for the whole browser, no
// bound on a single step, every certificate error ignored, artifacts in
// a fresh fiq-console-browser-* directory.
type chromeOptions struct {
	// limit bounds the browser and every tab in it (default 3 minutes).
	limit time.Duration
	// stepLimit bounds each do step, so a stuck wait fails that step with
	// a screenshot instead of using up the whole limit; 0: only limit.
	stepLimit time.Duration
	// spki, when set, is the base64 SHA-256 of the one certificate key
	// Chromium trusts (--ignore-certificate-errors-spki-list, keyServer)
	// instead of ignoring every certificate error: WebAuthn works only on
	// a page without certificate errors.
	spki string
	// artifacts is the prefix of the temporary directory screenshots and
	// failure pages are saved in (default "fiq-console-browser-").
	artifacts string
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

// listen is a tab's event listener: it records exceptions, console errors
// and warnings, and browser log errors (it must return fast).
func (p *problems) listen(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		p.add("exception: " + ev.ExceptionDetails.Text)
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, strings.Trim(string(a.Value), `"`))
			}
			p.add("console " + string(ev.Type) + ": " + strings.Join(parts, " "))
		}
	case *cdplog.EventEntryAdded:
		// The step-up prompt is answered with 401 on purpose (the
		// action has not run); Chromium logs every 4xx document.
		if ev.Entry.Source == cdplog.EntrySourceNetwork && strings.Contains(ev.Entry.Text, "status of 401") {
			return
		}
		if ev.Entry.Level == cdplog.EntryLevelError || ev.Entry.Source == cdplog.EntrySourceSecurity || ev.Entry.Source == cdplog.EntrySourceViolation {
			p.add("log " + string(ev.Entry.Source) + ": " + ev.Entry.Text)
		}
	}
}

// reportViolations runs in every document before its own scripts (from
// the DevTools protocol, so the page's CSP does not apply to it) and turns
// each CSP violation into a console error the test collects.
const reportViolations = `document.addEventListener("securitypolicyviolation", function (e) {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + e.blockedURI);
});`

// chrome is a headless Chromium tab, with what the tab reported (CSP
// violations, exceptions, console errors and warnings, browser log
// errors) collected, and a directory for screenshots and failure pages.
type chrome struct {
	t *testing.T
	// ctx is the tab's, bounded by the browser's limit: every step runs
	// in it. tab is the same tab without that bound, which the browser
	// and the tab live on until t ends, so that a step that used up the
	// limit can still be photographed (fail).
	ctx, tab  context.Context
	seen      *problems
	artifacts string
	step      int
	stepLimit time.Duration
	// root is the browser's artifacts directory (person's tabs save
	// theirs below it).
	root string
	// saved is set once the tab's failure page is saved (fail), so the
	// cleanup of a failed test does not save it again.
	saved bool
}

// newChrome starts Chromium for t (skipping t when it is not installed)
// with the flags DESIGN.md names, a fresh user-data-dir and the window
// size above, and returns its first tab; person opens more tabs in the
// same browser. Everything is closed when t ends.
func newChrome(t *testing.T, o chromeOptions) *chrome {
	t.Helper()
	exe := chromiumPath()
	if exe == "" {
		t.Skip("chromium is not installed (Debian: apt-get install -y chromium); skipping the browser test")
	}
	if o.limit == 0 {
		o.limit = 3 * time.Minute
	}
	if o.artifacts == "" {
		o.artifacts = "fiq-console-browser-"
	}
	artifacts, err := os.MkdirTemp("", o.artifacts)
	if err != nil {
		t.Fatal(err)
	}
	// The test server's certificate is self-signed for 127.0.0.1.
	cert := chromedp.Flag("ignore-certificate-errors", true)
	if o.spki != "" {
		cert = chromedp.Flag("ignore-certificate-errors-spki-list", o.spki)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		cert,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(windowWidth, windowHeight),
	)
	t.Cleanup(cancelAlloc)
	c := openTab(t, actx, time.Now().Add(o.limit), artifacts)
	c.stepLimit, c.root = o.stepLimit, artifacts
	t.Logf("browser artifacts (screenshots, failure pages): %s", artifacts)
	return c
}

// person opens a tab in a new browser context of c's Chromium (its own
// cookie jar, storage and cache, like a separate browser profile), with
// what its pages report collected as in every tab. Its failures are saved
// under the browser's artifacts directory, in name.
func (c *chrome) person(name string) *chrome {
	c.t.Helper()
	dir := filepath.Join(c.root, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		c.t.Fatal(err)
	}
	deadline, _ := c.ctx.Deadline()
	p := openTab(c.t, c.tab, deadline, dir, chromedp.WithNewBrowserContext())
	p.stepLimit, p.root = c.stepLimit, c.root
	return p
}

// openTab opens a tab in parent (the allocator for the browser's first
// tab), its steps bounded by deadline. Its listener is added before the
// first command, so it sees every event of the tab.
func openTab(t *testing.T, parent context.Context, deadline time.Time, artifacts string, opts ...chromedp.ContextOption) *chrome {
	t.Helper()
	seen := &problems{}
	tab, cancel := chromedp.NewContext(parent, append(opts, chromedp.WithListener(seen.listen))...)
	t.Cleanup(cancel)
	// The first command of the first tab starts the browser, and chromedp
	// ties the browser process (and a tab) to the context of its first
	// command: that is tab, which ends with t, not with the deadline.
	// Starting is bounded by chromedp (20 s for the browser's address).
	if _, err := chromedp.Call(tab, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(tab, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: reportViolations}); err != nil {
		t.Fatal(err)
	}
	ctx, cancelDeadline := context.WithDeadline(tab, deadline)
	t.Cleanup(cancelDeadline)
	c := &chrome{t: t, ctx: ctx, tab: tab, seen: seen, artifacts: artifacts}
	// A test that fails by its own check rather than through fail (a
	// t.Fatalf after reading the page) still leaves the tab's screenshot
	// and HTML: cleanups run last first, so this runs before the tab is
	// closed.
	t.Cleanup(func() {
		if t.Failed() && !c.saved {
			base := c.save("failed")
			t.Logf("the test failed: this tab's screenshot and HTML are in %s.*", base)
		}
	})
	return c
}

// save writes a screenshot and the page's HTML of c's tab to
// artifacts/name.{png,html} and returns that path without extension. They
// are taken in c.tab, so they are there after a step that used up the
// browser's whole limit too.
func (c *chrome) save(name string) string {
	c.saved = true
	dctx, dcancel := context.WithTimeout(c.tab, 10*time.Second)
	defer dcancel()
	png, _ := chromedp.Run(dctx, chromedp.FullScreenshot(100))
	html, _ := chromedp.Run(dctx, chromedp.OuterHTML(chromedp.CSS("html")))
	base := filepath.Join(c.artifacts, name)
	_ = os.WriteFile(base+".png", png, 0o600)
	_ = os.WriteFile(base+".html", []byte(html), 0o600)
	return base
}

// fail saves a screenshot and the page's HTML of the step, then fails the
// test.
func (c *chrome) fail(what string, err error) {
	c.t.Helper()
	base := c.save(fmt.Sprintf("step%02d", c.step))
	c.t.Fatalf("%s: %v (screenshot and HTML in %s.*)", what, err, base)
}

// do runs one step's actions (within stepLimit, when set), failing the
// test with a screenshot.
func (c *chrome) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	c.step++
	ctx := c.ctx
	if c.stepLimit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(c.ctx, c.stepLimit)
		defer cancel()
	}
	if err := chromedp.Do(ctx, actions...); err != nil {
		c.fail(what, err)
	}
	c.settle()
}

// settle waits until the tab's document has loaded (readyState
// "complete"), 10 s at most, each look bounded by 2 s. Chromium hands
// DevTools the document again at DOMContentLoaded and forgets every node
// id it gave out before. A page reached by submitting a form shows its
// elements (WaitVisible finds them) while its deferred scripts still
// load; a read or click of such a node after DOMContentLoaded fails with
// "No node with given id found" (or "Could not find node with given
// id"), the more often the busier the machine. Once the document is
// complete its node ids stay valid until the next navigation. settle
// does not fail the test: a page that never loads fails the next step.
func (c *chrome) settle() {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && c.ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
		state, err := chromedp.Run(rctx, chromedp.Evaluate[string](`document.readyState`))
		cancel()
		if err == nil && state == "complete" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nodeGone is true for the errors of a read or click whose node (or
// script context) the tab dropped since it was found: its document was
// handed over again (settle) or replaced by a navigation.
func nodeGone(err error) bool {
	var e *cdproto.Error
	if !errors.As(err, &e) {
		return false
	}
	for _, m := range []string{"No node with given id", "Could not find node with given id", "Node with given id does not belong to the document",
		"Cannot find context with specified id", "Execution context was destroyed", "Inspected target navigated or closed"} {
		if strings.Contains(e.Message, m) {
			return true
		}
	}
	return false
}

// text is the text of the first element matching sel. A read whose node
// the tab dropped in between (nodeGone) is tried again once the document
// has loaded, at most five times.
func (c *chrome) text(sel string) string {
	c.t.Helper()
	var err error
	for range 5 {
		var v string
		v, err = chromedp.Run(c.ctx, chromedp.Text(chromedp.CSS(sel)))
		if err == nil {
			return strings.TrimSpace(v)
		}
		if !nodeGone(err) {
			break
		}
		c.settle()
	}
	c.fail("read "+sel, err)
	return ""
}

// waitText reads sel's text until ok accepts it (10 s at most, each read
// bounded) and returns the last text read.
func (c *chrome) waitText(sel string, ok func(string) bool) string {
	c.t.Helper()
	return c.waitTextFor(10*time.Second, sel, ok)
}

// waitTextFor is waitText for about d: a read every 100 ms, each bounded
// by 2 s (reads while the tab navigates may fail; they are tried again).
func (c *chrome) waitTextFor(d time.Duration, sel string, ok func(string) bool) string {
	c.t.Helper()
	var last string
	for range int(d / (100 * time.Millisecond)) {
		rctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
		v, err := chromedp.Run(rctx, chromedp.Text(chromedp.CSS(sel)))
		cancel()
		if err == nil {
			last = strings.TrimSpace(v)
			if ok(last) {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

// location is the tab's URL.
func (c *chrome) location() string {
	c.t.Helper()
	loc, err := chromedp.Run(c.ctx, chromedp.Location())
	if err != nil {
		c.fail("location", err)
	}
	return loc
}

// click clicks sel once it is visible. A node found while the tab was
// still replacing its document is gone by the time of the click ("Could
// not find node with given id"): the click is tried again, at most five
// times, each bounded.
func (c *chrome) click(what, sel string) {
	c.t.Helper()
	var err error
	for range 5 {
		cctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		_, err = chromedp.Run(cctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
		cancel()
		if err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
		c.settle()
	}
	c.fail(what, err)
}

// addAuthenticator gives the tab a DevTools virtual authenticator (CTAP2
// over USB, resident keys, user verification, presence simulated) and
// returns its id.
func (c *chrome) addAuthenticator() webauthn.AuthenticatorID {
	c.t.Helper()
	if _, err := chromedp.Call(c.ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		c.t.Fatal(err)
	}
	added, err := chromedp.Call(c.ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
		Protocol: webauthn.AuthenticatorProtocolCtap2, Transport: webauthn.AuthenticatorTransportUsb,
		HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true}})
	if err != nil {
		c.t.Fatal(err)
	}
	return added.AuthenticatorID
}

// keyAnswered waits (20 s at most, in looks bounded by 2 s: a look is a
// few DevTools round trips, slow on a busy machine) for sel, the page
// after the key's answer was posted; if the page still shows the key
// prompt, the test fails with what webauthn.js said there (the browser's
// refusal).
func (c *chrome) keyAnswered(sel string) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && c.ctx.Err() == nil {
		wctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
		_, err := chromedp.Run(wctx, chromedp.WaitVisible(chromedp.CSS(sel)))
		cancel()
		if err == nil {
			c.settle()
			return
		}
	}
	c.fail("security key answer", fmt.Errorf("%s not shown; the prompt says %q", sel, c.text(".webauthn-status")))
}

// downloadDir makes Chromium save the downloads of c's browser context
// in a new directory, and returns it.
func (c *chrome) downloadDir() string {
	c.t.Helper()
	dir := c.t.TempDir()
	if _, err := chromedp.Call(c.ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir,
		// Empty for the first tab: the default browser context.
		BrowserContextID: chromedp.FromContext(c.ctx).BrowserContextID}); err != nil {
		c.t.Fatal(err)
	}
	return dir
}

// downloaded waits (30 s at most: the server renders the file first,
// slowly on a busy machine) for a non-empty file whose name ends in
// suffix in dir, and returns its content; nil when none came.
func downloaded(dir, suffix string) []byte {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		es, _ := os.ReadDir(dir)
		for _, e := range es {
			if strings.HasSuffix(e.Name(), suffix) {
				if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil && len(b) > 0 {
					return b
				}
			}
		}
	}
	return nil
}

// shot saves a full-page screenshot as name in the artifacts directory.
// A capture can stall while the tab navigates, so each attempt is bounded
// and a stalled one is tried again.
func (c *chrome) shot(name string) string {
	c.t.Helper()
	var png []byte
	var err error
	for range 3 {
		sctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		png, err = chromedp.Run(sctx, chromedp.FullScreenshot(100))
		cancel()
		if err == nil {
			break
		}
	}
	if err != nil {
		c.t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(c.artifacts, name)
	if err := os.WriteFile(p, png, 0o600); err != nil {
		c.t.Fatal(err)
	}
	c.t.Logf("screenshot: %s", p)
	return p
}

// clean fails the test if the tab reported any problem (after letting
// late reports arrive).
func (c *chrome) clean() {
	c.t.Helper()
	time.Sleep(200 * time.Millisecond)
	if ps := c.seen.all(); len(ps) > 0 {
		c.t.Fatalf("the browser reported problems:\n%s", strings.Join(ps, "\n"))
	}
}
