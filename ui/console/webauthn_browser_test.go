package console_test

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"firewalliq/appliance"
	"firewalliq/appliance/store"
)

// keyServer serves f's console a second time on https://localhost:PORT
// with the appliance's own certificate (made by init for "localhost"), so
// that Chromium sees a secure context without certificate errors: the
// only kind of page WebAuthn works on. The relying party is configured
// for that exact origin (rp id "localhost"). It returns the origin and
// the base64 SHA-256 of the certificate's SubjectPublicKeyInfo. cfgMod
// change the appliance's configuration further (newFixture).
//
// Why not --ignore-certificate-errors (what the other browser tests use):
// Chromium still marks such a page as having a certificate error, and
// refuses navigator.credentials there ("WebAuthn is not supported on
// sites with TLS certificate errors"). --ignore-certificate-errors-spki-list
// with the SPKI hash instead makes Chromium trust exactly this key, and
// the page is a normal secure context. Checked with Debian's chromium 156.
func keyServer(t *testing.T, cfgMod ...func(*appliance.Config)) (*fixture, string, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	origin := "https://localhost:" + port
	f := newFixture(t, append([]func(*appliance.Config){func(c *appliance.Config) {
		c.WebAuthn.RPID = "localhost"
		c.WebAuthn.Origins = []string{origin}
	}}, cfgMod...)...)
	cert, err := f.app.Keys.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(leaf.DNSNames, " "), "localhost") {
		t.Fatalf("console certificate names %v, want localhost", leaf.DNSNames)
	}
	srv := httptest.NewUnstartedServer(f.srv.Config.Handler)
	srv.Listener.Close()
	srv.Listener = ln
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	return f, origin, base64.StdEncoding.EncodeToString(sum[:])
}

// TestBrowserSecurityKey drives Chromium with a virtual authenticator
// (DevTools WebAuthn domain: CTAP2 over USB, resident keys, user
// verification) through a security lead's key: sign in with password and
// TOTP, register the key (after a TOTP step-up), sign out, sign in with
// the key as the second factor, and create an API token with a step-up
// answered by the key. The key list shows its last use. Any CSP
// violation, script exception or console error fails the test.
func TestBrowserSecurityKey(t *testing.T) {
	f, origin, spki := keyServer(t)
	ch := newChrome(t, chromeOptions{limit: 3 * time.Minute, spki: spki})
	ctx, do, text := ch.ctx, ch.do, ch.text
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }

	// Set-up over HTTP: the admin's first run, a security lead's.
	root, rootSecret, _ := f.firstRun("root", f.init.OneTimePassword)
	_, leadSecret, leadPW := f.firstRun("kira", f.addUser(root, rootSecret, f.init.TenantID, "kira", store.RoleSecurityLead))

	// The virtual authenticator lives in the tab.
	authenticator := ch.addAuthenticator()

	// Sign in with password and TOTP on https://localhost:PORT.
	do("login page", chromedp.Navigate(origin+"/console/login"), chromedp.WaitVisible(css("#name")))
	do("password", chromedp.SendKeys(css("#name"), "kira"), chromedp.SendKeys(css("#password"), leadPW+kb.Enter), chromedp.WaitVisible(css("#code")))
	do("totp", chromedp.SendKeys(css("#code"), f.code(leadSecret)+kb.Enter), chromedp.WaitVisible(css("#h-profile")))

	// Register the key: name, TOTP step-up, then the browser's create().
	do("keys page", chromedp.Navigate(origin+"/console/security-keys"), chromedp.WaitVisible(css("#key-name")))
	do("name the key", chromedp.SendKeys(css("#key-name"), "virtual key"+kb.Enter), chromedp.WaitVisible(css("#stepup_code")))
	do("step-up for registration", chromedp.SendKeys(css("#stepup_code"), f.code(leadSecret)+kb.Enter), chromedp.WaitVisible(css("form[data-ready] #webauthn-go")))
	ch.click("create credential", "#webauthn-go")
	ch.keyAnswered("#security-keys")
	if keys := text("#security-keys"); !strings.Contains(keys, "virtual key") || !strings.Contains(keys, "never") {
		t.Fatalf("registered key not listed: %q", keys)
	}
	creds, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: authenticator})
	if err != nil || len(creds.Credentials) != 1 {
		t.Fatalf("virtual authenticator holds %d credentials: %v", len(creds.Credentials), err)
	}
	ch.shot("security-keys.png")

	// Sign out, sign in again with the key as the second factor.
	ch.click("sign out", ".who button")
	do("login page again", chromedp.WaitVisible(css("#name")))
	do("password again", chromedp.SendKeys(css("#name"), "kira"), chromedp.SendKeys(css("#password"), leadPW+kb.Enter), chromedp.WaitVisible(css("#login-use-key")))
	ch.click("choose the key", "#login-use-key")
	do("key prompt", chromedp.WaitVisible(css("form[data-ready] #webauthn-go")))
	ch.click("get assertion", "#webauthn-go")
	ch.keyAnswered("#h-profile")
	if title := text("h1"); title != "Dashboard" {
		t.Fatalf("after key login: %q", title)
	}

	// A step-up answered by the key: create an API token.
	do("tokens page", chromedp.Navigate(origin+"/console/tokens"), chromedp.WaitVisible(css("#tok-name")))
	do("create token", chromedp.SendKeys(css("#tok-name"), "ci"+kb.Enter), chromedp.WaitVisible(css("#stepup-use-key")))
	ch.click("use the key", "#stepup-use-key")
	do("key step-up prompt", chromedp.WaitVisible(css("form[data-ready] #stepup-key-go")))
	ch.click("step-up assertion", "#stepup-key-go")
	ch.keyAnswered("#token-secret")
	if secret := text("#token-secret"); !strings.HasPrefix(secret, "fiqt_") {
		t.Fatalf("token secret %q", secret)
	}

	// The key list shows the last use.
	do("keys again", chromedp.Navigate(origin+"/console/security-keys"), chromedp.WaitVisible(css("#security-keys")))
	if last := text(".key-last-used"); !strings.Contains(last, "from 127.0.0.1") {
		t.Fatalf("last use not shown: %q", last)
	}
	ch.clean()
}
