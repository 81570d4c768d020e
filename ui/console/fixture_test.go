package console_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"database/sql"
	"html"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"firewalliq/appliance"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/store"
	"firewalliq/probe/keys"
	"firewalliq/probe/safety"
	"firewalliq/ui"
	"firewalliq/ui/console"
)

// clock is the injected clock; TOTP codes come from it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer collects the server's log; dumped when a test fails.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
	// discard drops what is written (the load test: its access log would
	// otherwise grow by hundreds of MB and count as the server's memory),
	// except access-log lines of requests that took at least slow (when
	// not zero): the load test's record of its slowest requests.
	discard bool
	slow    time.Duration
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.discard {
		if s.slow > 0 && lineDuration(p) >= s.slow {
			s.b.Write(p)
		}
		return len(p), nil
	}
	return s.b.Write(p)
}

// lineDuration is the "duration=" field of a text log line, 0 without one.
func lineDuration(p []byte) time.Duration {
	i := bytes.Index(p, []byte(" duration="))
	if i < 0 {
		return 0
	}
	v := p[i+len(" duration="):]
	if j := bytes.IndexAny(v, " \n"); j >= 0 {
		v = v[:j]
	}
	d, _ := time.ParseDuration(string(v))
	return d
}

// keepSlow keeps, while discarding, the lines of requests that took at
// least d; takeSlow answers and forgets them.
func (s *syncBuffer) keepSlow(d time.Duration) { s.mu.Lock(); defer s.mu.Unlock(); s.slow = d }
func (s *syncBuffer) takeSlow() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.b.String()
	s.b = bytes.Buffer{}
	return out
}

// quiet stops collecting the log and frees what was collected.
func (s *syncBuffer) quiet() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.discard = true
	s.b = bytes.Buffer{}
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// fixture is a real appliance (appliance.Init in a temporary directory,
// real SQLite and audit log, the appliance's own services) behind the API
// server with the console registered, served over TLS on 127.0.0.1.
type fixture struct {
	t    *testing.T
	ctx  context.Context
	clk  *clock
	app  *appliance.Appliance
	init appliance.InitResult
	srv  *httptest.Server
	dir  string
	logs *syncBuffer
}

func newFixture(t *testing.T, cfgMod ...func(*appliance.Config)) *fixture {
	t.Helper()
	ctx := context.Background()
	// 5 s into a 30 s TOTP step, so each code() lands in a fresh step.
	clk := &clock{t: time.Now().UTC().Truncate(30 * time.Second).Add(5 * time.Second)}
	cfg := appliance.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	for _, m := range cfgMod {
		m(&cfg)
	}
	res, err := appliance.Init(ctx, cfg, appliance.InitOptions{Admin: "root", Tenant: "alpha", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	app, err := appliance.OpenWith(ctx, cfg, clk.Now, appliance.Options{LogOutput: logs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	prof, err := safety.Load()
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	pages, err := console.New(console.Deps{Auth: app.Auth, Audit: app.Audit, SIEM: app.SIEM, Scopes: app.Scopes, ScopeKeys: app.ScopeKeys, Scans: app.Scans, Reviews: app.Reviews, Evidence: app.Evidence, Policies: app.Policies, Reports: app.Reports, Sensors: app.Sensors, Profile: prof, Logger: logger, Now: clk.Now,
		Health: func(ctx context.Context) (console.Health, error) {
			h, err := app.Health(ctx)
			return console.Health{StoreErr: h.StoreErr, AuditIntact: h.AuditIntact, Alarm: h.Alarm, AuditSize: h.AuditSize,
				CheckpointSize: h.CheckpointSize, CheckpointAge: h.CheckpointAge, Vault: h.Vault, SIEM: h.SIEM}, err
		}})
	if err != nil {
		t.Fatal(err)
	}
	api, err := ui.New(ui.Deps{Auth: app.Auth, SIEM: app.SIEM, Audit: app.Audit, Scopes: app.Scopes, ScopeKeys: app.ScopeKeys, Scans: app.Scans, Evidence: app.Evidence, Sensors: app.Sensors, Pages: pages, Logger: logger, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(api.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return &fixture{t: t, ctx: ctx, clk: clk, app: app, init: res, srv: srv, dir: cfg.DataDir, logs: logs}
}

// code moves the clock to the next TOTP step and returns secret's code.
func (f *fixture) code(secret string) string {
	f.t.Helper()
	f.clk.Advance(30 * time.Second)
	c, err := auth.TOTPCode(secret, f.clk.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// raiseAlarm records a raised tamper alarm as audit verification does.
func (f *fixture) raiseAlarm() {
	f.t.Helper()
	st, err := store.Open(f.ctx, filepath.Join(f.dir, appliance.DatabaseFile), store.Options{Now: f.clk.Now})
	if err != nil {
		f.t.Fatal(err)
	}
	defer st.Close()
	err = st.InTx(f.ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(f.ctx, `INSERT INTO audit_alarms (seq, kind, bad_seq, reason) VALUES (999999, 'raise', 2, 'entry hash mismatch')`)
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// browser is an HTTP client with its own cookie jar that does not follow
// redirects, so tests see each step.
type browser struct {
	f    *fixture
	c    *http.Client
	csrf string // the last CSRF token seen on a page
}

func (f *fixture) browser() *browser {
	jar, _ := cookiejar.New(nil)
	tr := f.srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: f.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
	return &browser{f: f, c: &http.Client{Jar: jar, Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// answer is a response with its body read.
type answer struct {
	status int
	body   string
	header http.Header
}

func (a answer) location() string { return a.header.Get("Location") }

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) do(req *http.Request) answer {
	b.f.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.f.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.f.t.Fatal(err)
	}
	if m := csrfRe.FindSubmatch(body); m != nil {
		b.csrf = html.UnescapeString(string(m[1]))
	}
	return answer{status: resp.StatusCode, body: string(body), header: resp.Header}
}

func (b *browser) get(path string) answer {
	b.f.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.f.srv.URL+path, nil)
	if err != nil {
		b.f.t.Fatal(err)
	}
	return b.do(req)
}

// post submits a form; the CSRF token of the last page is added unless
// the form sets "csrf" itself (set it to "" to leave it out).
func (b *browser) post(path string, form url.Values) answer {
	b.f.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok && b.csrf != "" {
		form.Set("csrf", b.csrf)
	}
	if form.Get("csrf") == "" {
		form.Del("csrf")
	}
	req, err := http.NewRequest(http.MethodPost, b.f.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// want fails unless a has status and its body contains every text.
func want(t *testing.T, a answer, status int, texts ...string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d; body:\n%s", a.status, status, a.body)
	}
	for _, s := range texts {
		if !strings.Contains(a.body, s) {
			t.Fatalf("body lacks %q:\n%s", s, a.body)
		}
	}
}

func wantRedirect(t *testing.T, a answer, prefix string) {
	t.Helper()
	if a.status != http.StatusSeeOther || !strings.HasPrefix(a.location(), prefix) {
		t.Fatalf("got %d to %q, want 303 to %s; body:\n%s", a.status, a.location(), prefix, a.body)
	}
}

var secretRe = regexp.MustCompile(`<output id="secret" class="mono secret">([A-Z2-7]+)</output>`)

// firstRun signs a new user in for the first time through the console:
// password, TOTP enrolment (the secret read off the page), recovery
// codes, and the change of the one-time password. It returns the user's
// browser, TOTP secret and new password.
func (f *fixture) firstRun(name, oneTime string) (*browser, string, string) {
	f.t.Helper()
	t := f.t
	b := f.browser()
	wantRedirect(t, b.get("/console/"), "/console/login")
	wantRedirect(t, b.post("/console/login", url.Values{"name": {name}, "password": {oneTime}}), "/console/enrol")
	a := b.get("/console/enrol")
	want(t, a, http.StatusOK, `src="data:image/png;base64,`)
	m := secretRe.FindStringSubmatch(a.body)
	if m == nil {
		t.Fatalf("no secret on the enrolment page:\n%s", a.body)
	}
	secret := m[1]
	a = b.post("/console/enrol", url.Values{"code": {f.code(secret)}})
	want(t, a, http.StatusOK, `id="recovery-codes"`, `href="/console/password"`)
	wantRedirect(t, b.get("/console/"), "/console/password")
	wantRedirect(t, b.get("/console/users"), "/console/password")
	a = b.get("/console/password")
	want(t, a, http.StatusOK, "one-time password")
	pw := name + " chooses a long passphrase"
	wantRedirect(t, b.post("/console/password", url.Values{"old_password": {oneTime}, "new_password": {pw}, "confirm_password": {pw}}), "/console/")
	want(t, b.get("/console/"), http.StatusOK, "<h1>Dashboard</h1>")
	return b, secret, pw
}

// login signs an enrolled user in: password, then TOTP.
func (f *fixture) login(name, password, secret string) *browser {
	f.t.Helper()
	b := f.browser()
	wantRedirect(f.t, b.post("/console/login", url.Values{"name": {name}, "password": {password}}), "/console/login/totp")
	wantRedirect(f.t, b.post("/console/login/totp", url.Values{"code": {f.code(secret)}}), "/console/")
	want(f.t, b.get("/console/"), http.StatusOK, "<h1>Dashboard</h1>")
	return b
}

var otpRe = regexp.MustCompile(`id="one-time-password">([^<]+)<`)

// addUser adds a user in the admin's tenant through the users page,
// answering the step-up prompt, and returns the one-time password.
func (f *fixture) addUser(admin *browser, secret, tenant, name, role string) string {
	f.t.Helper()
	form := url.Values{"name": {name}, "role": {role}}
	if tenant != "" {
		form.Set("tenant", tenant)
	}
	a := admin.post("/console/users", form)
	want(f.t, a, http.StatusUnauthorized, `id="stepup-form"`, "user.create")
	form = hiddenFields(a.body)
	form.Set("stepup_code", f.code(secret))
	a = admin.post("/console/users", form)
	want(f.t, a, http.StatusOK, `id="one-time-password"`)
	m := otpRe.FindStringSubmatch(a.body)
	if m == nil {
		f.t.Fatalf("no one-time password:\n%s", a.body)
	}
	return html.UnescapeString(m[1])
}

var hiddenRe = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// hiddenFields reads a form's hidden inputs, as a browser would submit them.
func hiddenFields(body string) url.Values {
	v := url.Values{}
	for _, m := range hiddenRe.FindAllStringSubmatch(body, -1) {
		v.Add(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	return v
}

// postDocument submits a multipart form as a browser's file picker does:
// the fields in their order, then file as the form file "document" named
// name, then an empty "document_text" (the paste box left blank).
func (b *browser) postDocument(path string, fields [][2]string, name string, file []byte) answer {
	b.f.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, kv := range fields {
		_ = mw.WriteField(kv[0], kv[1])
	}
	fw, err := mw.CreateFormFile("document", name)
	if err != nil {
		b.f.t.Fatal(err)
	}
	_, _ = fw.Write(file)
	_ = mw.WriteField("document_text", "")
	if err := mw.Close(); err != nil {
		b.f.t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, b.f.srv.URL+path, &body)
	if err != nil {
		b.f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return b.do(req)
}

// uploadedEvidence records content as scan-1's results.jsonl in tenant,
// runs the evidence uploader until the test ends, and returns b's evidence
// page once it lists the object (or the last of tries looks, 100 ms apart).
func (f *fixture) uploadedEvidence(b *browser, tenant, content string, tries int) answer {
	f.t.Helper()
	if _, err := f.app.Evidence.Add(f.ctx, tenant, "scan-1", "results.jsonl", strings.NewReader(content)); err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = f.app.Evidence.Run(ctx) }()
	f.t.Cleanup(func() { cancel(); <-done })
	var a answer
	for i := 0; i < tries; i++ {
		if a = b.get("/console/evidence"); strings.Contains(a.body, "results.jsonl") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return a
}

// approveInInbox has b find approval request id in their inbox and
// approve it, stepping up where asked.
func (f *fixture) approveInInbox(b *browser, secret, id string) {
	f.t.Helper()
	path := "/console/approvals/" + id + "/approve"
	want(f.t, b.get("/console/approvals"), http.StatusOK, path)
	wantRedirect(f.t, f.stepUpIfAsked(b, path, secret, b.post(path, nil)), "/console/approvals")
}

// signingKey makes a fresh scope-signing key pair and the PEM of its public
// half: what a security lead keeps offline and what they paste on the keys
// page.
func signingKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey, []byte) {
	t.Helper()
	pub, priv, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := keys.MarshalPublic(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv, pem
}
