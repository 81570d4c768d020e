package console_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"firewalliq/appliance"
	"firewalliq/appliance/keyring"
	"firewalliq/appliance/report/verify"
	"firewalliq/appliance/sandbox"
	"firewalliq/appliance/store"
	"firewalliq/audit"
	"firewalliq/probe/keys"
	"firewalliq/probe/scope"
)

// labStoryChildEnv names the file holding the lab plan. When set, the test
// binary is the child of TestBrowserLabStory, running inside the sandbox's
// outside zone.
const labStoryChildEnv = "FIQ_CONSOLE_LAB_STORY_CHILD"

// The lab's hostile service (added by the test to the DMZ host, not part
// of the demo's plan): a banner and a TLS certificate carrying markup and
// script that no page may run.
const (
	labBannerPort = 8022
	labTLSPort    = 8443
	labBanner     = `SSH-2.0-<script>window.pwned=1</script><img src=x id=pwned>`
	// labCertCN is the certificate subject's common name; Go renders a
	// subject per RFC 4514 (a backslash before < and >), so its markup
	// reaches the page with those escapes.
	labCertCN = `<script>window.pwned=2</script>`
	// labCertOrg is character references the browser would decode into
	// markup if the page did not escape them: "&lt" must stay literal
	// text (RFC 4514 adds a backslash before each ";").
	labCertOrg = `&lt;b&gt;org&lt;/b&gt;`
	// labCertDNS is a certificate name the engine keeps as it is: the
	// markup arrives unchanged.
	labCertDNS = `<img src=x id=pwned2>`
)

// noScriptRan is true when no hostile markup took effect on the page.
const noScriptRan = `window.pwned === undefined && !document.getElementById("pwned") && !document.getElementById("pwned2") && document.querySelectorAll("#results b, main script").length === 0`

// TestBrowserLabStory is the whole story of the console in real Chromium,
// with the scan in the customer-style sandbox (appliance/sandbox): the
// outside zone, a firewall with its three deliberate mistakes, the DMZ and
// the internal zone with real services, plus, on the DMZ host, a service
// whose banner and TLS certificate carry markup and script.
//
// The parent builds the sandbox and runs this test again in the outside
// zone's namespace ("ip netns exec"); there the child runs the appliance
// (real SQLite, audit log, scan service with raw sockets), serves the
// console on https://localhost:PORT (a secure context, so WebAuthn works)
// and drives Chromium, which runs in the same namespace: every socket of
// the story, the browser's and the scan's, is inside the sandbox.
//
// In the browser: the initial admin's first run (one-time password, TOTP
// enrolment); the admin adds a security lead and two approvers, each of
// whom does their first run in their own browser context; the lead
// registers a security key (DevTools virtual authenticator) and signs in
// with it, registers a scope-signing key and uploads a production scope
// over the sandbox's zones signed offline here; requests a scan; the two
// approvers approve with a TOTP step-up; the lead starts it with the key,
// watches the live progress (Server-Sent Events), reads the hostile
// banner and certificate as text, stores the expected policy, creates the
// signed report, which lists the sandbox's three mistakes, downloads it
// (verified offline with appliance/report/verify) and checks the audit
// log on the audit page (the signed checkpoint shown there verifies with
// the audit key and matches a full verification of the database). A
// JavaScript error or CSP violation in any browser context fails the
// test; a failure saves a screenshot and the page's HTML.
func TestBrowserLabStory(t *testing.T) {
	if p := os.Getenv(labStoryChildEnv); p != "" {
		labStoryChild(t, p)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("the lab story needs root (network namespaces, nftables, raw sockets); run the suite as root, as CI does")
	}
	if chromiumPath() == "" {
		t.Skip("chromium is not installed (Debian: apt-get install -y chromium); skipping the browser test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	if gone, err := sandbox.Sweep(ctx); err != nil {
		t.Logf("sweep: %v", err)
	} else if len(gone) > 0 {
		t.Logf("removed namespaces of an earlier, killed run: %v", gone)
	}
	var buildLog bytes.Buffer
	sb, err := sandbox.New(ctx, sandbox.Options{Logf: func(f string, a ...any) { fmt.Fprintf(&buildLog, f+"\n", a...) }})
	if err != nil {
		t.Fatalf("sandbox: %v\n%s", err, buildLog.String())
	}
	defer func() {
		if err := sb.Close(); err != nil {
			t.Errorf("remove the sandbox: %v", err)
		}
	}()

	// The hostile service, on the DMZ host.
	cert, err := hostileCert()
	if err != nil {
		t.Fatal(err)
	}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	dmz, err := sb.AddTCP(ctx, sandbox.ZoneDMZ, labBannerPort, func(c net.Conn) {
		_, _ = c.Write([]byte(labBanner + "\r\n"))
		time.Sleep(100 * time.Millisecond)
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, buildLog.String())
	}
	if _, err := sb.AddTCP(ctx, sandbox.ZoneDMZ, labTLSPort, func(c net.Conn) { _ = tls.Server(c, tlsConf).Handshake() }); err != nil {
		t.Fatalf("%v\n%s", err, buildLog.String())
	}

	// The test's plan: the demo's, with the hostile service's ports scanned
	// and allowed by the policy (so the findings are the three mistakes).
	plan := sandbox.SandboxPlan()
	tcp, udp, _ := strings.Cut(plan.Ports, " ")
	plan.Ports = fmt.Sprintf("%s,%d,%d %s", tcp, labBannerPort, labTLSPort, udp)
	plan.Policy += fmt.Sprintf("  - {name: lab-extra, action: allow, to: [dmz], ports: \"tcp:%d,%d\", severity: low}\n", labBannerPort, labTLSPort)
	plan.Hosts[0].Services = append(plan.Hosts[0].Services, fmt.Sprintf("hostile banner tcp/%d", labBannerPort), fmt.Sprintf("hostile tls tcp/%d", labTLSPort))
	if plan.Hosts[0].Addr != dmz {
		t.Fatalf("the plan's first host is %s, the DMZ host %s", plan.Hosts[0].Addr, dmz)
	}
	dir := t.TempDir()
	pb, err := json.Marshal(plan)
	if err != nil {
		t.Fatal(err)
	}
	planPath := filepath.Join(dir, "plan.json")
	if err := os.WriteFile(planPath, pb, 0o600); err != nil {
		t.Fatal(err)
	}

	// The child: this test again, in the outside zone.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Minute)
	defer ccancel()
	cmd := sb.Command(cctx, exe, "-test.run=^TestBrowserLabStory$", "-test.v", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), labStoryChildEnv+"="+planPath)
	var out bytes.Buffer
	var w io.Writer = &out
	if testing.Verbose() {
		w = io.MultiWriter(&out, os.Stdout)
	}
	cmd.Stdout, cmd.Stderr = w, w
	// The child (and its Chromium) die with this process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	err = cmd.Run()
	t.Logf("the story ran %v in namespace %s", time.Since(start).Round(time.Millisecond), sb.Scanner)
	if err != nil {
		if testing.Verbose() {
			t.Fatalf("the story in the sandbox: %v (its output is above)", err)
		}
		t.Fatalf("the story in the sandbox: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "--- PASS: TestBrowserLabStory") {
		t.Fatalf("the child did not run the story:\n%s", out.String())
	}
}

// hostileCert is the hostile TLS service's self-signed certificate.
func hostileCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: labCertCN, Organization: []string{labCertOrg}},
		DNSNames:     []string{labCertDNS},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// labServer is keyServer for an appliance that also keeps evidence, in a
// local directory (not WORM, so not in production mode), as reports need.
func labServer(t *testing.T) (*fixture, string, string) {
	t.Helper()
	return keyServer(t, func(c *appliance.Config) {
		c.Production = false
		c.Vault.Backend = "local"
		c.Vault.LocalDir = filepath.Join(t.TempDir(), "evidence")
	})
}

// labStoryChild is the story, inside the sandbox's outside zone.
func labStoryChild(t *testing.T, planPath string) {
	b, err := os.ReadFile(planPath)
	if err != nil {
		t.Fatal(err)
	}
	var plan sandbox.Plan
	if err := json.Unmarshal(b, &plan); err != nil {
		t.Fatal(err)
	}
	f, origin, spki := labServer(t)
	f.runScans()
	// The console is on https://localhost with the appliance's certificate
	// trusted by its SPKI hash: a secure context in every browser context,
	// so WebAuthn works.
	ch := newChrome(t, chromeOptions{limit: 4 * time.Minute, stepLimit: 45 * time.Second, spki: spki, artifacts: "fiq-console-lab-"})
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	start := time.Now()
	lap := func(what string) { t.Logf("%6.1fs %s", time.Since(start).Seconds(), what) }

	// 1. The initial admin's first run: the one-time password from init,
	// TOTP enrolment with the secret read off the page, a new password.
	root := ch.person("root")
	rootSecret := labFirstRun(f, root, origin, "root", f.init.OneTimePassword)
	lap("admin's first run")

	// 2. The admin adds the security lead and two approvers (step-up
	// each); each does their first run in their own browser context.
	type person struct {
		name, role string
		c          *chrome
		secret     string
	}
	people := []*person{{name: "lena", role: store.RoleSecurityLead}, {name: "ann", role: store.RoleApprover}, {name: "ben", role: store.RoleApprover}}
	for _, p := range people {
		root.do("users page", chromedp.Navigate(origin+"/console/users?tenant="+f.init.TenantID), chromedp.WaitVisible(css("#new-name")))
		root.do("add "+p.name, chromedp.SendKeys(css("#new-name"), p.name), chromedp.SetValue(css("#new-role"), p.role),
			chromedp.SendKeys(css("#new-approval"), kb.Enter), chromedp.WaitVisible(css("#stepup_code")))
		root.do("step-up for "+p.name, chromedp.SendKeys(css("#stepup_code"), f.code(rootSecret)+kb.Enter), chromedp.WaitVisible(css("#one-time-password")))
		oneTime := root.text("#one-time-password")
		p.c = ch.person(p.name)
		p.secret = labFirstRun(f, p.c, origin, p.name, oneTime)
	}
	lead, ann, ben := people[0], people[1], people[2]
	lap("three users added, each enrolled in their own browser")

	// 3. The lead registers a security key and signs in with it.
	lc := lead.c
	authenticator := lc.addAuthenticator()
	lc.do("security keys", chromedp.Navigate(origin+"/console/security-keys"), chromedp.WaitVisible(css("#key-name")))
	lc.do("name the key", chromedp.SendKeys(css("#key-name"), "lena's key"+kb.Enter), chromedp.WaitVisible(css("#stepup_code")))
	lc.do("step-up for the key", chromedp.SendKeys(css("#stepup_code"), f.code(lead.secret)+kb.Enter), chromedp.WaitVisible(css("form[data-ready] #webauthn-go")))
	lc.click("create credential", "#webauthn-go")
	lc.keyAnswered("#security-keys")
	creds, err := chromedp.Call(lc.ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: authenticator})
	if err != nil || len(creds.Credentials) != 1 {
		lc.fail("credential", fmt.Errorf("the virtual authenticator holds %d credentials: %v", len(creds.Credentials), err))
	}
	lc.click("sign out", ".who button")
	lc.do("login page", chromedp.WaitVisible(css("#name")))
	lc.do("password", chromedp.SendKeys(css("#name"), "lena"), chromedp.SendKeys(css("#password"), labPassword("lena")+kb.Enter), chromedp.WaitVisible(css("#login-use-key")))
	lc.click("choose the key", "#login-use-key")
	lc.do("key prompt", chromedp.WaitVisible(css("form[data-ready] #webauthn-go")))
	lc.click("sign in with the key", "#webauthn-go")
	lc.keyAnswered("#h-profile")
	lap("the lead registered a security key and signed in with it")

	// stepUpWithKey answers a step-up prompt with the security key and
	// waits for sel.
	stepUpWithKey := func(what, sel string) {
		lc.click(what+": use the key", "#stepup-use-key")
		lc.do(what+": key prompt", chromedp.WaitVisible(css("form[data-ready] #stepup-key-go")))
		lc.click(what+": assertion", "#stepup-key-go")
		lc.keyAnswered(sel)
	}

	// 4. A scope-signing key (the private half stays here, "offline"),
	// and a production scope over the sandbox's zones signed with it and
	// uploaded through the scopes page.
	pub, priv, pem := signingKey(t)
	lc.do("keys page", chromedp.Navigate(origin+"/console/keys"), chromedp.WaitVisible(css("#key-public")))
	lc.do("register the public key", chromedp.SendKeys(css("#key-name"), "lena's laptop"), chromedp.SetValue(css("#key-public"), string(pem)),
		chromedp.Click(css("#key-add button")), chromedp.WaitVisible(css("#stepup-use-key")))
	stepUpWithKey("scope key", "#keys")
	if ks := lc.waitText("#keys tbody", func(s string) bool { return strings.Contains(s, keys.ID(pub)) }); !strings.Contains(ks, keys.ID(pub)) {
		lc.fail("scope key", fmt.Errorf("key %s not listed: %q", keys.ID(pub), ks))
	}
	now := f.clk.Now()
	doc := scope.Document{ID: "lab-perimeter", Tenant: "alpha", Name: "sandbox perimeter (production)", Environment: scope.EnvProduction,
		CIDRs: plan.CIDRs, Exclude: []string{}, Ports: plan.Ports, Probes: plan.Probes,
		NotBefore: now.Add(-time.Hour).Truncate(time.Second), NotAfter: now.Add(24 * time.Hour).Truncate(time.Second),
		MaxPPS: plan.MaxPPS, SignerKeyID: keys.ID(pub)}
	signed, err := scope.Sign(doc, priv)
	if err != nil {
		t.Fatal(err)
	}
	scopeFile := filepath.Join(t.TempDir(), "scope.signed.json")
	if err := os.WriteFile(scopeFile, signed, 0o600); err != nil {
		t.Fatal(err)
	}
	lc.do("scopes page", chromedp.Navigate(origin+"/console/scopes"), chromedp.WaitVisible(css("#scope-file")))
	lc.do("upload the signed scope", chromedp.SetUploadFiles(css("#scope-file"), []string{scopeFile}), chromedp.Click(css("#scope-register-go")),
		chromedp.WaitVisible(css(`#scopes a[href="/console/scopes/`+doc.ID+`"]`)))
	if row := lc.text("#scopes tbody"); !strings.Contains(row, "production") || !strings.Contains(row, keys.ID(pub)) {
		lc.fail("scope listed", fmt.Errorf("%q", row))
	}
	lap("scope key registered (step-up by the key), signed scope uploaded")

	// 5. The production scan: requested by the lead, approved by ann and
	// ben in their own browsers (TOTP step-up), started by the lead with
	// the key.
	lc.do("scans page", chromedp.Navigate(origin+"/console/scans"), chromedp.WaitVisible(css("#scan-request-form")))
	lc.do("request", chromedp.SetValue(css("#scan-scope"), doc.ID), chromedp.SendKeys(css("#scan-rate"), "10"+kb.Enter),
		chromedp.WaitVisible(css("#scan-state, #stepup-use-key")))
	if ok, _ := chromedp.Run(lc.ctx, chromedp.Evaluate[bool](`document.getElementById("stepup-use-key") !== null`)); ok {
		stepUpWithKey("request", "#scan-state")
	}
	if st := lc.text("#scan-state"); st != "pending" {
		lc.fail("request", fmt.Errorf("state %q, want pending", st))
	}
	scanURL, _, _ := strings.Cut(lc.location(), "?")
	id := scanURL[strings.LastIndex(scanURL, "/")+1:]
	for i, ap := range []struct {
		p    *person
		want string
	}{{ann, "pending"}, {ben, "approved"}} {
		c := ap.p.c
		c.do("inbox", chromedp.Navigate(origin+"/console/approvals"), chromedp.WaitVisible(css(`a[href="/console/scans/`+id+`"]`)))
		c.do("open scan", chromedp.Click(css(`a[href="/console/scans/`+id+`"]`)), chromedp.WaitVisible(css("#scan-approve")))
		c.do("approve", chromedp.Click(css("#scan-approve button")), chromedp.WaitVisible(css("#stepup_code")))
		c.do("step-up", chromedp.SendKeys(css("#stepup_code"), f.code(ap.p.secret)+kb.Enter), chromedp.WaitVisible(css("#scan-state")))
		if st := c.waitText("#scan-state", func(s string) bool { return s == ap.want }); st != ap.want {
			c.fail(fmt.Sprintf("approval %d", i+1), fmt.Errorf("state %q, want %s", st, ap.want))
		}
	}
	lap("two approvals")
	lc.do("scan page", chromedp.Navigate(scanURL), chromedp.WaitVisible(css("#scan-start")))
	lc.do("start", chromedp.Click(css("#scan-start button")), chromedp.WaitVisible(css("#stepup-use-key")))
	if op := lc.text("#stepup-form strong"); op != "scan.start" {
		lc.fail("start step-up", fmt.Errorf("prompt names %q", op))
	}
	stepUpWithKey("start", "#progress")
	lap("started")

	// Live progress over Server-Sent Events: the rate against the cap
	// while it runs, then the page reloads itself with the finished job.
	// Live means the feed's figures while the scan runs: probes sent
	// (the finished page says "Results stored" instead) above zero and the
	// rate against the cap.
	var sawRate string
	for i := 0; i < 300 && sawRate == ""; i++ {
		rctx, cancel := context.WithTimeout(lc.ctx, 2*time.Second)
		live, _ := chromedp.Run(rctx, chromedp.Evaluate[[]string](`[document.getElementById("p-sent").previousElementSibling.textContent,
		  document.getElementById("p-sent").textContent, document.getElementById("p-rate").textContent]`))
		cancel()
		if n, err := strconv.Atoi(strings.TrimSpace(stringAt(live, 1))); err == nil && n > 0 && stringAt(live, 0) == "Probes sent" && strings.Contains(stringAt(live, 2), "/s cap") {
			sawRate = stringAt(live, 2) + "; probes sent " + stringAt(live, 1)
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if sawRate == "" {
		lc.fail("live progress", fmt.Errorf("no live figures (probes sent, rate against the cap) seen"))
	}
	t.Logf("live progress seen: %s", sawRate)
	box := lc.waitTextFor(time.Minute, "#progress", func(s string) bool {
		return strings.Contains(s, "finished") && strings.Contains(s, "results stored")
	})
	if st := lc.text("#scan-state"); st != "completed" || !strings.Contains(box, "results stored") {
		lc.fail("scan completion", fmt.Errorf("state %q; progress box: %s", st, box))
	}
	lc.shot("lab-scan.png")
	lap("scan completed in the sandbox")

	// 6. The results: the hostile banner and certificate are text.
	results := origin + "/console/scans/" + id + "/results"
	lc.do("banner results", chromedp.Navigate(fmt.Sprintf("%s?probe=banner&port=%d", results, labBannerPort)), chromedp.WaitVisible(css("#results")))
	if rows := lc.text("#results tbody"); !strings.Contains(rows, labBanner) {
		lc.fail("hostile banner", fmt.Errorf("not shown as text: %q", rows))
	}
	labNoScript(lc, "banner results")
	lc.do("tls results", chromedp.Navigate(fmt.Sprintf("%s?probe=tls-hello&port=%d", results, labTLSPort)), chromedp.WaitVisible(css("#results")))
	rows := lc.text("#results tbody")
	for _, want := range []string{"window.pwned=2", "O=&lt", labCertDNS} {
		if !strings.Contains(rows, want) {
			lc.fail("hostile certificate", fmt.Errorf("%q not shown as text: %q", want, rows))
		}
	}
	labNoScript(lc, "certificate results")
	lc.shot("lab-hostile-results.png")
	lap("hostile banner and certificate shown as text")

	// 7. The expected policy, then the signed report.
	lc.do("policies", chromedp.Navigate(origin+"/console/policies"), chromedp.WaitVisible(css("#policy-source")))
	lc.do("validate", chromedp.SetValue(css("#policy-source"), plan.Policy), chromedp.Click(css("#policy-validate")), chromedp.WaitVisible(css("#policy-valid")))
	lc.do("store", chromedp.Click(css("#policy-save")), chromedp.WaitVisible(css("#policy-rules")))
	lc.do("reports", chromedp.Navigate(origin+"/console/reports"), chromedp.WaitVisible(css("#report-form")))
	lc.do("create report", chromedp.SetValue(css("#report-scan"), id), chromedp.SetValue(css("#report-policy"), plan.PolicyName),
		chromedp.Click(css("#report-create")), chromedp.WaitVisible(css("#report-key-id")))
	findings := lc.text("#report-findings tbody")
	for _, m := range plan.Mistakes {
		if !strings.Contains(findings, m.Kind) || !strings.Contains(findings, m.Target) {
			lc.fail("report findings", fmt.Errorf("the %s on %s (%s) is not listed: %q", m.Kind, m.Target, m.What, findings))
		}
	}
	lc.shot("lab-report.png")
	labNoScript(lc, "report")

	// The signed JSON, downloaded by Chromium, verified offline.
	downloads := lc.downloadDir()
	lc.click("download json", `#report-downloads a[href*="/download/json"]`)
	signedReport := downloaded(downloads, ".json")
	if signedReport == nil {
		lc.fail("download", fmt.Errorf("no JSON report in %s", downloads))
	}
	reportKey, err := f.app.Keys.Public(keyring.Report)
	if err != nil {
		t.Fatal(err)
	}
	auditKey, err := f.app.Keys.Public(keyring.Audit)
	if err != nil {
		t.Fatal(err)
	}
	vr, err := verify.Verify(signedReport, verify.Options{ReportKey: reportKey, AuditKey: auditKey})
	if err != nil {
		t.Fatalf("the downloaded report does not verify: %v", err)
	}
	for _, m := range plan.Mistakes {
		found := false
		for _, fd := range vr.Report.Findings {
			found = found || fd.Kind == m.Kind && fd.Target == m.Target && fd.Proto == m.Proto && fd.Port == int(m.Port)
		}
		if !found {
			t.Errorf("the signed report lacks the %s finding for %s/%d on %s (%s)", m.Kind, m.Proto, m.Port, m.Target, m.What)
		}
	}
	if n := len(vr.Report.Findings); n != len(plan.Mistakes) {
		t.Errorf("the signed report has %d findings, want the %d mistakes: %+v", n, len(plan.Mistakes), vr.Report.Findings)
	}
	t.Logf("report %s verified offline: key %s, audit checkpoint size %d, %d inclusion proofs", vr.Report.ID, vr.KeyID, vr.Checkpoint.Size, vr.Proofs)
	lap("policy stored, report signed, downloaded and verified")

	// 8. The audit log on the audit page: the story's scan entries, and
	// the signed checkpoint shown there, which verifies with the audit key
	// and agrees with a full verification of the database.
	lc.do("audit page", chromedp.Navigate(origin+"/console/audit?action=scan."), chromedp.WaitVisible(css("#h-cp")))
	entries := lc.text("table.audit tbody")
	for _, a := range []string{"scan.request", "scan.approve", "scan.start", "scan.complete"} {
		if !strings.Contains(entries, a) {
			lc.fail("audit entries", fmt.Errorf("%s not listed: %q", a, entries))
		}
	}
	if integrity := lc.text("#h-cp + dl"); !strings.Contains(integrity, "intact") {
		lc.fail("audit integrity", fmt.Errorf("%q", integrity))
	}
	lc.click("show the checkpoint", `section[aria-labelledby="h-cp"] summary`)
	noteText := lc.text("#checkpoint-note") + "\n"
	cp, err := audit.OpenCheckpoint([]byte(noteText), auditKey)
	if err != nil {
		lc.fail("checkpoint", fmt.Errorf("the audit page's checkpoint does not verify: %v\n%s", err, noteText))
	}
	db, err := appliance.OpenReadOnly(f.ctx, filepath.Join(f.dir, appliance.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	arep, err := audit.Verify(f.ctx, db, audit.VerifyOptions{Public: auditKey})
	if err != nil || !arep.Intact || cp.Size > arep.Size {
		t.Fatalf("audit verification: %+v, %v; the page's checkpoint is at size %d", arep, err, cp.Size)
	}
	lc.shot("lab-audit.png")
	// "Verify now" recomputes the whole log on the appliance and agrees.
	lc.click("verify now", "#verify-form button")
	if got := lc.waitText("#verify-result", func(s string) bool { return s != "" }); !strings.Contains(got, "intact") {
		lc.fail("verify now", fmt.Errorf("%q", got))
	}
	lap(fmt.Sprintf("audit log verified: %d entries, the page's checkpoint at %d, Verify now intact", arep.Entries, cp.Size))

	for _, c := range []*chrome{root, lead.c, ann.c, ben.c} {
		c.clean()
	}
}

// stringAt is list[i], "" when list is shorter.
func stringAt(list []string, i int) string {
	if i < len(list) {
		return list[i]
	}
	return ""
}

// labPassword is the password name chooses at the first run.
func labPassword(name string) string { return name + " chooses a long passphrase" }

// labFirstRun is name's first sign-in in c: the one-time password, TOTP
// enrolment (the secret read off the page), the recovery codes, a new
// password. It returns the TOTP secret.
func labFirstRun(f *fixture, c *chrome, origin, name, oneTime string) string {
	c.t.Helper()
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	c.do(name+" login", chromedp.Navigate(origin+"/console/login"), chromedp.WaitVisible(css("#name")),
		chromedp.SendKeys(css("#name"), name), chromedp.SendKeys(css("#password"), oneTime+kb.Enter), chromedp.WaitVisible(css("#secret")))
	secret := c.text("#secret")
	c.do(name+" enrol", chromedp.SendKeys(css("#code"), f.code(secret)+kb.Enter), chromedp.WaitVisible(css("#recovery-codes")))
	c.do(name+" continue", chromedp.Click(css("#continue")), chromedp.WaitVisible(css("#new_password")))
	pw := labPassword(name)
	c.do(name+" new password", chromedp.SendKeys(css("#old_password"), oneTime), chromedp.SendKeys(css("#new_password"), pw),
		chromedp.SendKeys(css("#confirm_password"), pw+kb.Enter), chromedp.WaitVisible(css("#h-profile")))
	if who := c.text(".who"); !strings.Contains(who, name) {
		c.fail("signed in as", fmt.Errorf("header says %q, want %s", who, name))
	}
	return secret
}

// labNoScript fails the test if hostile markup took effect on c's page.
func labNoScript(c *chrome, where string) {
	c.t.Helper()
	ok, err := chromedp.Run(c.ctx, chromedp.Evaluate[bool](noScriptRan))
	if err != nil || !ok {
		c.fail("no script ran on "+where, fmt.Errorf("hostile markup took effect (%v)", err))
	}
}
