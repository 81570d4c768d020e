package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"firewalliq/appliance"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/cli/apiclient"
	"firewalliq/audit"
	"firewalliq/probe/keys"
)

// syncBuffer is a bytes.Buffer safe for the server goroutine to write while
// the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// e2e is a real appliance served by the real 'serve' command on 127.0.0.1,
// and a command line environment of its own (XDG_CONFIG_HOME in a temporary
// directory) to drive it.
type e2e struct {
	t      *testing.T
	res    appliance.InitResult
	dir    string
	addr   string
	pin    string
	xdg    string
	now    *atomic.Int64 // the appliance's clock, unix nanoseconds, shared by every user
	secret string        // the logged-in user's TOTP secret
	logs   *syncBuffer
	stop   func()
	passwd string
}

// clock is the appliance's (and the test's) clock: real time plus whatever
// advance() added, so that each TOTP code the test computes falls in a new
// 30-second step (a code is accepted once).
func (e *e2e) clock() time.Time { return time.Unix(0, e.now.Load()) }

// code moves the clock to the next TOTP step and returns the code for it.
func (e *e2e) code() string {
	e.t.Helper()
	e.now.Add(int64(30 * time.Second))
	c, err := auth.TOTPCode(e.secret, e.clock())
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// startE2E initialises a data directory and runs 'serve' on it, in-process,
// on a random loopback port, with serveEnv as its environment.
func startE2E(t *testing.T, serveEnv ...string) *e2e {
	t.Helper()
	e := &e2e{t: t, dir: filepath.Join(t.TempDir(), "data"), xdg: t.TempDir(), logs: &syncBuffer{}, now: new(atomic.Int64)}
	e.now.Store(time.Now().UnixNano())
	cfg := appliance.DefaultConfig()
	cfg.DataDir = e.dir
	res, err := appliance.Init(context.Background(), cfg, appliance.InitOptions{Admin: "root", Now: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	e.res = res
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	// A repository build carries the development-signed profile, which
	// production mode refuses: this appliance is a test bench.
	serveEnv = append([]string{"FIQ_PRODUCTION=false"}, serveEnv...)
	vars := map[string]string{}
	for _, kv := range serveEnv {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	env := &Env{Stdin: strings.NewReader(""), Stdout: e.logs, Stderr: e.logs, Getenv: func(k string) string { return vars[k] },
		Environ: func() []string { return serveEnv }, Now: e.clock}
	go func() { done <- Run(ctx, env, []string{"serve", "--data", e.dir, "--listen", "127.0.0.1:0"}) }()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case code := <-done:
				if code != 0 {
					t.Errorf("serve exited %d:\n%s", code, e.logs.String())
				}
			case <-time.After(20 * time.Second):
				t.Errorf("serve did not stop")
			}
		})
	}
	t.Cleanup(e.stop)
	listening := regexp.MustCompile(`listening on (https://[0-9.:]+) \(certificate SHA-256 ([0-9a-f]{64})\)`)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := listening.FindStringSubmatch(e.logs.String()); m != nil {
			e.addr, e.pin = m[1], m[2]
			break
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited %d:\n%s", code, e.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if e.addr == "" {
		t.Fatalf("serve did not say where it listens:\n%s", e.logs.String())
	}
	if e.pin != res.CertFingerprint {
		t.Fatalf("serve printed pin %s, init %s", e.pin, res.CertFingerprint)
	}
	return e
}

// run runs the command line with stdin and returns its exit code and output.
func (e *e2e) run(stdin string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Run(context.Background(), e.env(strings.NewReader(stdin), &out, &errb), args)
	return code, out.String(), errb.String()
}

func (e *e2e) env(stdin io.Reader, stdout, stderr io.Writer) *Env {
	vars := map[string]string{"XDG_CONFIG_HOME": e.xdg}
	return &Env{Stdin: stdin, Stdout: stdout, Stderr: stderr, Getenv: func(k string) string { return vars[k] },
		Environ: func() []string { return nil }, Now: e.clock}
}

// must runs a command that must succeed.
func (e *e2e) must(stdin string, args ...string) string {
	e.t.Helper()
	code, out, stderr := e.run(stdin, args...)
	if code != 0 {
		e.t.Fatalf("%v: exit %d\nstdout: %s\nstderr: %s\nserver: %s", args, code, out, stderr, e.logs.String())
	}
	return out
}

// as is another person at another shell: the same appliance and clock,
// a credentials directory of their own.
func (e *e2e) as() *e2e {
	o := *e
	o.xdg, o.secret, o.passwd = e.t.TempDir(), "", ""
	return &o
}

// securityLead has the admin e add a security lead called name, who logs
// in for the first time at a shell of their own and makes a scope-signing
// key pair (name.key, name.pub) in a fresh directory. It returns the lead
// and that directory.
func (e *e2e) securityLead(name string) (*e2e, string) {
	t := e.t
	t.Helper()
	var u map[string]string
	if err := json.Unmarshal([]byte(e.must(e.code()+"\n", "user", "add", "--name", name, "--role", "security_lead", "--tenant", e.res.TenantID, "--json")), &u); err != nil {
		t.Fatal(err)
	}
	lead := e.as()
	lead.firstLoginAs(name, u["one_time_password"])
	keyDir := t.TempDir()
	lead.must("", "scope", "keygen", "--out", filepath.Join(keyDir, name))
	return lead, keyDir
}

// signScopeFile writes the scope document doc as scope.json in keyDir,
// has e sign it offline with keyDir/name.key, and returns the path of the
// signed document, scope.signed.json next to it.
func (e *e2e) signScopeFile(keyDir, name, doc string) string {
	t := e.t
	t.Helper()
	docFile := filepath.Join(keyDir, "scope.json")
	if err := os.WriteFile(docFile, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	signedFile := filepath.Join(keyDir, "scope.signed.json")
	if err := os.WriteFile(signedFile, []byte(e.must("", "scope", "sign", "--key", filepath.Join(keyDir, name+".key"), docFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	return signedFile
}

// firstLogin logs the init admin in through the whole first-login flow.
func (e *e2e) firstLogin() {
	e.firstLoginAs("root", e.res.OneTimePassword)
	if e.secret != e.res.TOTPSecret {
		e.t.Fatalf("enrolment showed secret %q, init printed %q", e.secret, e.res.TOTPSecret)
	}
}

// firstLoginAs logs user in with their one-time password through the
// whole first-login flow with --json, the way a script would: it reads the
// enrolment line from the command's standard output before writing the
// code computed from the secret in it.
func (e *e2e) firstLoginAs(user, oneTime string) {
	t := e.t
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	var errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(context.Background(), e.env(inR, outW, &errb), []string{"login", "--addr", e.addr, "--user", user, "--cert-sha256", e.pin, "--json"})
		outW.Close()
	}()
	fmt.Fprintln(inW, oneTime)
	lines := bufio.NewScanner(outR)
	if !lines.Scan() {
		t.Fatalf("login printed nothing; stderr %s; server %s", errb.String(), e.logs.String())
	}
	var en map[string]string
	if err := json.Unmarshal(lines.Bytes(), &en); err != nil || len(en) != 2 || en["totp_secret"] == "" || !strings.HasPrefix(en["totp_url"], "otpauth://") {
		t.Fatalf("enrolment line %q (%v): want exactly {totp_secret, totp_url}", lines.Text(), err)
	}
	e.secret = en["totp_secret"]
	e.passwd = "a new long password 1"
	fmt.Fprintf(inW, "%s\n%s\n", e.code(), e.passwd)
	inW.Close()
	if !lines.Scan() {
		t.Fatalf("login printed no result; stderr %s; server %s", errb.String(), e.logs.String())
	}
	var result struct {
		User          string   `json:"user"`
		RecoveryCodes []string `json:"recovery_codes"`
	}
	if err := json.Unmarshal(lines.Bytes(), &result); err != nil || result.User != user || len(result.RecoveryCodes) == 0 {
		t.Fatalf("login result %q: %v", lines.Text(), err)
	}
	go io.Copy(io.Discard, outR)
	if code := <-done; code != 0 {
		t.Fatalf("login exit %d: %s", code, errb.String())
	}
}

// openPort listens on a free port of 127.0.0.1, which a scope of the test
// covers, and accepts (and closes) connections to it until the test ends.
func openPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for range 1 << 16 {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

func (e *e2e) credentialsPath() string {
	return filepath.Join(e.xdg, "firewalliq", "credentials")
}

// destinations lists SIEM destination names through the API.
func (e *e2e) destinations() []string {
	var ds []struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal([]byte(e.must("", "siem", "list", "--json")), &ds); err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for _, d := range ds {
		names = append(names, d.Name)
	}
	return names
}

// TestCLIAgainstServer drives the command line against a real 'serve':
// first login with TOTP enrolment and a password change, users, SIEM
// destinations refused without a step-up code and accepted with one, and
// logout. Every change lands in the audit log under the user's name.
func TestCLIAgainstServer(t *testing.T) {
	e := startE2E(t)

	// A wrong pin is refused before anything is sent.
	wrong := strings.Repeat("0", 64)
	if code, _, stderr := e.run("x\n", "login", "--addr", e.addr, "--user", "root", "--cert-sha256", wrong); code == 0 || !strings.Contains(stderr, "pinned SHA-256") {
		t.Fatalf("wrong pin: exit %d, %s", code, stderr)
	}

	// Without a pin the self-signed certificate is refused, with a hint.
	if code, _, stderr := e.run("x\n", "login", "--addr", e.addr, "--user", "root"); code != 1 || !strings.Contains(stderr, "--cert-sha256") {
		t.Fatalf("no pin: exit %d, %s", code, stderr)
	}
	// A wrong password is refused and nothing is saved.
	if code, _, stderr := e.run("not the password\n", "login", "--addr", e.addr, "--user", "root", "--cert-sha256", e.pin); code != 1 || !strings.Contains(stderr, "unauthenticated") {
		t.Fatalf("wrong password: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(e.credentialsPath()); !os.IsNotExist(err) {
		t.Fatalf("credentials after a failed login: %v", err)
	}

	e.firstLogin()
	st, err := os.Stat(e.credentialsPath())
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v, %v", st, err)
	}

	// user add: step-up code on standard input; --json prints the
	// one-time password once.
	out := e.must(e.code()+"\n", "user", "add", "--name", "bob", "--role", "operator", "--tenant", e.res.TenantID, "--json")
	var bob struct{ ID, Name, Role, One string }
	var raw map[string]string
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("user add --json: %q: %v", out, err)
	}
	bob.ID, bob.Name, bob.Role, bob.One = raw["id"], raw["name"], raw["role"], raw["one_time_password"]
	if bob.ID == "" || bob.Name != "bob" || bob.Role != "operator" || len(bob.One) < auth.MinPasswordLength || len(raw) != 4 {
		t.Fatalf("user add --json: %q", out)
	}
	var users []map[string]any
	if err := json.Unmarshal([]byte(e.must("", "user", "list", "--tenant", e.res.TenantID, "--json")), &users); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, u := range users {
		found = found || u["name"] == "bob"
	}
	if !found {
		t.Fatalf("user list lacks bob: %v", users)
	}

	// siem add: without a code on standard input it is refused and
	// nothing is stored; with one it is added.
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	add := []string{"siem", "add", "--name", "soc", "--kind", "udp", "--address", udp.LocalAddr().String()}
	code, _, stderr := e.run("", add...)
	if code == 0 || !strings.Contains(stderr, "step-up") || !strings.Contains(stderr, "standard input ended") {
		t.Fatalf("siem add without a code: exit %d, %s", code, stderr)
	}
	if ds := e.destinations(); len(ds) != 0 {
		t.Fatalf("refused siem add stored %v", ds)
	}
	// A wrong code is refused too.
	if code, _, stderr := e.run("000000\n", add...); code == 0 || !strings.Contains(stderr, "invalid_code") {
		t.Fatalf("siem add with a wrong code: exit %d, %s", code, stderr)
	}
	e.must(e.code()+"\n", add...)
	if ds := e.destinations(); len(ds) != 1 || ds[0] != "soc" {
		t.Fatalf("destinations after add: %v", ds)
	}

	// siem test sends one message to the receiver; status shows it healthy.
	if out := e.must("", "siem", "test", "soc"); !strings.Contains(out, "test message sent to soc") {
		t.Fatalf("siem test: %q", out)
	}
	udp.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	if n, _, err := udp.ReadFrom(buf); err != nil || !bytes.Contains(buf[:n], []byte("firewalliq")) {
		t.Fatalf("receiver got %q, %v", buf[:n], err)
	}
	var status []map[string]any
	if err := json.Unmarshal([]byte(e.must("", "siem", "status", "--json")), &status); err != nil || len(status) != 1 || status[0]["name"] != "soc" {
		t.Fatalf("siem status: %v %v", status, err)
	}
	// Lists of other services answer through the same client.
	if out := e.must("", "alert", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("alert list: %q", out)
	}
	// Without a tamper alarm there is nothing to acknowledge: refused, one line.
	if code, _, stderr := e.run(e.code()+"\n", "audit", "acknowledge", "--comment", "checked"); code != 1 || !strings.Contains(stderr, "audit acknowledge: no_alarm") {
		t.Fatalf("audit acknowledge without an alarm: exit %d, %s", code, stderr)
	}

	// siem rm likewise.
	if code, _, stderr := e.run("", "siem", "rm", "soc"); code == 0 || !strings.Contains(stderr, "step-up") {
		t.Fatalf("siem rm without a code: exit %d, %s", code, stderr)
	}
	if ds := e.destinations(); len(ds) != 1 {
		t.Fatalf("refused siem rm removed it: %v", ds)
	}
	if out := e.must(e.code()+"\n", "siem", "rm", "soc"); !strings.Contains(out, "removed soc") {
		t.Fatalf("siem rm: %q", out)
	}
	if ds := e.destinations(); len(ds) != 0 {
		t.Fatalf("destinations after rm: %v", ds)
	}

	// logout ends the session and removes the file; the session no longer
	// works even with a copy of the file.
	cred, err := apiclient.LoadCredentials(e.credentialsPath())
	if err != nil {
		t.Fatal(err)
	}
	e.must("", "logout")
	if _, err := os.Stat(e.credentialsPath()); !os.IsNotExist(err) {
		t.Fatalf("credentials file after logout: %v", err)
	}
	if code, _, stderr := e.run("", "user", "list"); code == 0 || !strings.Contains(stderr, "not logged in") {
		t.Fatalf("user list after logout: exit %d, %s", code, stderr)
	}
	if err := apiclient.SaveCredentials(e.credentialsPath(), cred); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := e.run("", "user", "list"); code == 0 || !strings.Contains(stderr, "unauthenticated") {
		t.Fatalf("old session after logout: exit %d, %s", code, stderr)
	}

	// The audit log has every change under root's name, and verifies.
	e.stop()
	db, err := appliance.OpenReadOnly(context.Background(), filepath.Join(e.dir, appliance.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	es, err := audit.ReadEntries(context.Background(), db, 1, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want := map[audit.Action]bool{audit.ActUserCreate: false, audit.ActSIEMDestinationCreate: false, audit.ActSIEMDestinationDelete: false}
	for _, en := range es {
		if _, ok := want[en.Action]; ok && en.ActorName == "root" && en.ActorIP == "127.0.0.1" {
			want[en.Action] = true
		}
	}
	for a, seen := range want {
		if !seen {
			t.Errorf("no %s entry by root from 127.0.0.1", a)
		}
	}
	if code, out, stderr := e.run("", "audit", "verify", "--data", e.dir); code != 0 {
		t.Fatalf("audit verify: %s %s", out, stderr)
	}
	// logout with the appliance gone still removes the local session, and
	// says the appliance was not told.
	if err := apiclient.SaveCredentials(e.credentialsPath(), cred); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := e.run("", "logout"); code != 1 || !strings.Contains(stderr, "not told") {
		t.Fatalf("logout with the appliance gone: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(e.credentialsPath()); !os.IsNotExist(err) {
		t.Fatalf("credentials file after logout: %v", err)
	}
}

// TestCLIAdminCommands: tenants, users, tokens (a bearer token works for
// reads and cannot step up), approvals and support lists, all through the
// API with step-up codes on standard input.
func TestCLIAdminCommands(t *testing.T) {
	e := startE2E(t)
	e.firstLogin()

	// Tenants (appliance admin, step-up).
	if out := e.must(e.code()+"\n", "tenant", "add", "acme", "--json"); !strings.Contains(out, `"acme"`) {
		t.Fatalf("tenant add: %s", out)
	}
	var tenants []map[string]any
	if err := json.Unmarshal([]byte(e.must("", "tenant", "list", "--json")), &tenants); err != nil || len(tenants) != 2 {
		t.Fatalf("tenant list: %v %v", tenants, err)
	}
	// Text output is a table with a header.
	if out := e.must("", "tenant", "list"); !strings.HasPrefix(out, "ID") || !strings.Contains(out, "acme") {
		t.Fatalf("tenant list (text): %q", out)
	}

	// Users: add, set-role, disable.
	var u map[string]string
	if err := json.Unmarshal([]byte(e.must(e.code()+"\n", "user", "add", "--name", "carol", "--role", "auditor", "--tenant", e.res.TenantID, "--json")), &u); err != nil {
		t.Fatal(err)
	}
	if out := e.must(e.code()+"\n", "user", "set-role", u["id"], "security_lead", "--tenant", e.res.TenantID); !strings.Contains(out, "security_lead") {
		t.Fatalf("set-role: %q", out)
	}
	e.must(e.code()+"\n", "user", "disable", u["id"], "--tenant", e.res.TenantID)
	var users []map[string]any
	if err := json.Unmarshal([]byte(e.must("", "user", "list", "--tenant", e.res.TenantID, "--json")), &users); err != nil {
		t.Fatal(err)
	}
	for _, x := range users {
		if x["id"] == u["id"] && (x["role"] != "security_lead" || x["disabled"] != true) {
			t.Fatalf("carol after set-role and disable: %v", x)
		}
	}
	// A bad role is the appliance's invalid_argument: exit 2.
	if code, _, stderr := e.run(e.code()+"\n", "user", "add", "--name", "dave", "--role", "wizard", "--tenant", e.res.TenantID); code != 2 || !strings.Contains(stderr, "invalid_argument") {
		t.Fatalf("bad role: exit %d, %s", code, stderr)
	}

	// A tenant admin, created by root, logs in for the first time at
	// another shell (enrolment and password change) and makes tokens: the
	// secret is printed once and works as FIQ_TOKEN.
	var adm map[string]string
	if err := json.Unmarshal([]byte(e.must(e.code()+"\n", "user", "add", "--name", "tess", "--role", "admin", "--tenant", e.res.TenantID, "--json")), &adm); err != nil {
		t.Fatal(err)
	}
	root := e
	e = e.as()
	e.firstLoginAs("tess", adm["one_time_password"])
	var tok map[string]any
	if err := json.Unmarshal([]byte(e.must(e.code()+"\n", "token", "create", "--name", "ci", "--role", "admin", "--ttl", "1h", "--json")), &tok); err != nil {
		t.Fatal(err)
	}
	secret, _ := tok["token"].(string)
	id, _ := tok["id"].(string)
	if secret == "" || id == "" {
		t.Fatalf("token create: %v", tok)
	}
	withToken := func(stdin string, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		vars := map[string]string{"XDG_CONFIG_HOME": t.TempDir(), EnvToken: secret, EnvAddr: e.addr, EnvCertSHA256: e.pin}
		env := &Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return vars[k] }, Now: e.clock}
		return Run(context.Background(), env, args), out.String(), errb.String()
	}
	if code, out, stderr := withToken("", "approval", "list", "--json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("approval list with a token: exit %d, %q, %s", code, out, stderr)
	}
	// A token cannot step up: refused with a clear message, no code read.
	if code, _, stderr := withToken(e.code()+"\n", "user", "add", "--name", "eve", "--role", "auditor"); code == 0 || !strings.Contains(stderr, "step-up") {
		t.Fatalf("step-up with a token: exit %d, %s", code, stderr)
	}
	var toks []map[string]any
	if err := json.Unmarshal([]byte(e.must("", "token", "list", "--json")), &toks); err != nil || len(toks) != 1 {
		t.Fatalf("token list: %v %v", toks, err)
	}
	e.must("", "token", "revoke", id)
	if code, _, stderr := withToken("", "approval", "list"); code == 0 || !strings.Contains(stderr, "unauthenticated") {
		t.Fatalf("revoked token: exit %d, %s", code, stderr)
	}

	// Lists that are empty on a new appliance.
	for _, args := range [][]string{{"support", "list", "--json"}, {"approval", "list", "--status", "pending", "--json"}} {
		if out := e.must("", args...); strings.TrimSpace(out) != "[]" {
			t.Fatalf("%v: %q", args, out)
		}
	}
	// Root still has its own session at its own shell. Logging in again
	// (password, then a TOTP code: enrolled now) replaces it, and the
	// appliance ends the old one.
	e = root
	old, err := apiclient.LoadCredentials(e.credentialsPath())
	if err != nil {
		t.Fatal(err)
	}
	if out := e.must(e.passwd+"\n"+e.code()+"\n", "login", "--user", "root"); !strings.Contains(out, "logged in to "+e.addr+" as root") {
		t.Fatalf("second login: %q", out)
	}
	oldShell := e.as()
	if err := apiclient.SaveCredentials(oldShell.credentialsPath(), old); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := oldShell.run("", "tenant", "list"); code == 0 || !strings.Contains(stderr, "unauthenticated") {
		t.Fatalf("replaced session still works: exit %d, %s", code, stderr)
	}
	// An unknown id is refused (not_found, or forbidden where the appliance
	// does not say what exists) on one line with the request id.
	if code, _, stderr := e.run("", "approval", "show", "nope"); code != 1 || !strings.Contains(stderr, "(request ") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("approval show nope: exit %d, %s", code, stderr)
	}

	// Scopes: a security lead makes a key pair on their machine, registers
	// the public key with the appliance (step-up), signs a scope covering a
	// listener this test runs on 127.0.0.1, and registers it; then requests
	// a scan of it, watches it run, and reads its results.
	sam, keyDir := e.securityLead("sam")
	pub, err := keys.ReadPublic(filepath.Join(keyDir, "sam.pub"))
	if err != nil {
		t.Fatal(err)
	}
	open := openPort(t)
	now := e.clock().UTC()
	doc := fmt.Sprintf(`{"id":"lab-1","tenant":%q,"name":"lab","environment":"non-production","cidrs":["127.0.0.1/32"],"exclude":[],
		"ports":"tcp:%d","probes":["tcp-connect"],"not_before":%q,"not_after":%q,"max_pps":10}`,
		e.res.Tenant, open, now.Add(-time.Hour).Format(time.RFC3339), now.Add(24*time.Hour).Format(time.RFC3339))
	signedFile := sam.signScopeFile(keyDir, "sam", doc)
	// Not trusted yet: refused.
	if code, _, stderr := sam.run("", "scope", "register", signedFile); code != 1 || !strings.Contains(stderr, "scope register:") {
		t.Fatalf("register with an untrusted key: exit %d, %s", code, stderr)
	}
	// Without a step-up code the key is refused; with one it is added.
	if code, _, stderr := sam.run("", "key", "add", filepath.Join(keyDir, "sam.pub")); code != 1 || !strings.Contains(stderr, "standard input ended") {
		t.Fatalf("key add without a code: exit %d, %s", code, stderr)
	}
	if out := sam.must(sam.code()+"\n", "key", "add", filepath.Join(keyDir, "sam.pub")); !strings.Contains(out, "added scope-signing key "+keys.ID(pub)+" (sam), active") {
		t.Fatalf("key add: %q", out)
	}
	var ks []map[string]any
	if err := json.Unmarshal([]byte(sam.must("", "key", "list", "--json")), &ks); err != nil || len(ks) != 1 || ks[0]["id"] != keys.ID(pub) || ks[0]["held"] != false {
		t.Fatalf("key list: %v %v", ks, err)
	}
	if out := sam.must("", "scope", "register", signedFile); !strings.Contains(out, "lab-1") {
		t.Fatalf("scope register: %q", out)
	}
	var scopes []map[string]any
	if err := json.Unmarshal([]byte(sam.must("", "scope", "list", "--json")), &scopes); err != nil || len(scopes) != 1 || scopes[0]["id"] != "lab-1" {
		t.Fatalf("scope list: %v %v", scopes, err)
	}
	if out := sam.must("", "scope", "show", "lab-1"); !strings.Contains(out, "127.0.0.1/32") {
		t.Fatalf("scope show: %q", out)
	}

	// A non-production scan: the request's step-up starts it.
	var sc map[string]any
	if err := json.Unmarshal([]byte(sam.must(sam.code()+"\n", "scan", "request", "--scope", "lab-1", "--target", "127.0.0.1", "--rate", "10", "--json")), &sc); err != nil {
		t.Fatal(err)
	}
	scanID, _ := sc["id"].(string)
	if scanID == "" || (sc["state"] != "queued" && sc["state"] != "running") {
		t.Fatalf("scan request: %v", sc)
	}
	watched := sam.must("", "scan", "watch", scanID)
	if !strings.Contains(watched, "completed: 1/1 targets") {
		t.Fatalf("scan watch: %q", watched)
	}
	var results []map[string]any
	if err := json.Unmarshal([]byte(sam.must("", "scan", "results", scanID, "--json")), &results); err != nil || len(results) != 1 ||
		results[0]["state"] != "open" || results[0]["port"] != float64(open) || results[0]["target"] != "127.0.0.1" {
		t.Fatalf("scan results: %v %v", results, err)
	}
	if out := sam.must("", "scan", "results", scanID, "--state", "closed", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("scan results --state closed: %q", out)
	}
	if err := json.Unmarshal([]byte(sam.must("", "scan", "show", scanID, "--json")), &sc); err != nil || sc["state"] != "completed" {
		t.Fatalf("scan show: %v %v", sc, err)
	}
	var scans []map[string]any
	if err := json.Unmarshal([]byte(sam.must("", "scan", "list", "--state", "completed", "--json")), &scans); err != nil || len(scans) != 1 || scans[0]["id"] != scanID {
		t.Fatalf("scan list: %v %v", scans, err)
	}
	// A finished scan cannot be cancelled: the appliance's conflict, exit 1.
	if code, _, stderr := sam.run("", "scan", "cancel", scanID); code != 1 || !strings.Contains(stderr, "conflict") {
		t.Fatalf("cancel a finished scan: exit %d, %s", code, stderr)
	}
	if out := sam.must("", "whoami"); !strings.Contains(out, "security_lead") {
		t.Fatalf("whoami: %q", out)
	}
	// An auditor's view of the log, through the API.
	var entries []map[string]any
	if err := json.Unmarshal([]byte(e.must("", "audit", "entries", "--tenant", e.res.TenantID, "--json")), &entries); err != nil || len(entries) == 0 {
		t.Fatalf("audit entries: %v %v", len(entries), err)
	}
	seen := map[string]bool{}
	for _, en := range entries {
		if en["actor_name"] == "sam" || en["object"] == "scan:"+scanID {
			seen[en["action"].(string)] = true
		}
	}
	for _, a := range []audit.Action{audit.ActScopeKeyAdd, audit.ActScopeRegister, audit.ActScanRequest, audit.ActScanStart, audit.ActScanComplete} {
		if !seen[string(a)] {
			t.Fatalf("no %s by sam or of scan %s in %v", a, scanID, entries)
		}
	}

	// A schedule: proposed (pending until two approvers approve), listed,
	// voided.
	var sch map[string]any
	if err := json.Unmarshal([]byte(sam.must("", "scan", "schedule", "create", "--scope", "lab-1", "--spec", "@every 6h", "--valid-days", "30", "--json")), &sch); err != nil || sch["state"] != "pending" {
		t.Fatalf("schedule create: %v %v", sch, err)
	}
	if code, _, stderr := sam.run("", "scan", "schedule", "create", "--scope", "lab-1", "--spec", "sometimes"); code != 2 || !strings.Contains(stderr, "invalid_argument") {
		t.Fatalf("schedule with a bad spec: exit %d, %s", code, stderr)
	}
	var schs []map[string]any
	if err := json.Unmarshal([]byte(sam.must("", "scan", "schedule", "list", "--json")), &schs); err != nil || len(schs) != 1 || schs[0]["id"] != sch["id"] {
		t.Fatalf("schedule list: %v %v", schs, err)
	}
	if out := sam.must("", "scan", "schedule", "void", sch["id"].(string), "--reason", "not needed"); !strings.Contains(out, "void") {
		t.Fatalf("schedule void: %q", out)
	}

	// The lead revokes the scope (step-up): no new scan of it.
	if code, _, stderr := sam.run("", "scope", "revoke", "lab-1"); code != 2 || !strings.Contains(stderr, "--reason") {
		t.Fatalf("scope revoke without a reason: exit %d, %s", code, stderr)
	}
	sam.must(sam.code()+"\n", "scope", "revoke", "lab-1", "--reason", "engagement over")
	if code, _, stderr := sam.run("", "scan", "request", "--scope", "lab-1"); code != 1 || !strings.Contains(stderr, "scope_revoked") {
		t.Fatalf("request under a revoked scope: exit %d, %s", code, stderr)
	}
	if out := sam.must(sam.code()+"\n", "key", "revoke", keys.ID(pub), "--reason", "rotated"); !strings.Contains(out, "revoked") {
		t.Fatalf("key revoke: %q", out)
	}
}

// TestCLIApprovalFlow: an evidence export needs two approvers other than
// the requester. The requester opens the request; an admin cannot approve
// it; two approvers, each at their own shell, approve it with step-up
// codes; another request is denied with a reason. Everything goes through
// the API.
func TestCLIApprovalFlow(t *testing.T) {
	// The evidence service runs on a local (not WORM) vault, which only a
	// non-production appliance accepts.
	e := startE2E(t, "FIQ_PRODUCTION=false", "FIQ_VAULT_BACKEND=local", "FIQ_VAULT_LOCAL_DIR="+t.TempDir())
	e.firstLogin()
	root := e
	people := map[string]*e2e{}
	for _, p := range []struct{ name, role string }{{"tess", "admin"}, {"ann", "approver"}, {"abe", "approver"}} {
		var u map[string]string
		if err := json.Unmarshal([]byte(root.must(root.code()+"\n", "user", "add", "--name", p.name, "--role", p.role, "--tenant", root.res.TenantID, "--json")), &u); err != nil {
			t.Fatal(err)
		}
		people[p.name] = root.as()
		people[p.name].firstLoginAs(p.name, u["one_time_password"])
	}
	tess, ann, abe := people["tess"], people["ann"], people["abe"]

	if out := tess.must("", "evidence", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("evidence list: %q", out)
	}
	request := func() string {
		var a map[string]any
		if err := json.Unmarshal([]byte(tess.must("", "evidence", "export", "--key", "scans/s1/results.jsonl", "--version", "v1", "--json")), &a); err != nil || a["status"] != "pending" {
			t.Fatalf("export request: %v %v", a, err)
		}
		return a["id"].(string)
	}
	id := request()
	// The requester is an admin: approving is not an admin's right.
	if code, _, stderr := tess.run(tess.code()+"\n", "approval", "approve", id); code != 1 || !strings.Contains(stderr, "forbidden") {
		t.Fatalf("admin approves: exit %d, %s", code, stderr)
	}
	// An approver reads what they approve, then approves with a step-up.
	if out := ann.must("", "approval", "show", id); !strings.Contains(out, "scans/s1/results.jsonl") {
		t.Fatalf("approval show: %q", out)
	}
	if code, _, stderr := ann.run("", "approval", "approve", id); code != 1 || !strings.Contains(stderr, "standard input ended") {
		t.Fatalf("approve without a code: exit %d, %s", code, stderr)
	}
	ann.must(ann.code()+"\n", "approval", "approve", id)
	abe.must(abe.code()+"\n", "approval", "approve", id)
	var approved []map[string]any
	if err := json.Unmarshal([]byte(tess.must("", "approval", "list", "--status", "approved", "--json")), &approved); err != nil || len(approved) != 1 || approved[0]["id"] != id {
		t.Fatalf("approved list: %v %v", approved, err)
	}
	// The object was never recorded: the URL is refused, and nothing is
	// spent.
	if code, _, stderr := tess.run(tess.code()+"\n", "evidence", "export", "--key", "scans/s1/results.jsonl", "--version", "v1", "--request", id); code != 1 || !strings.Contains(stderr, "not_found") {
		t.Fatalf("export of an unrecorded object: exit %d, %s", code, stderr)
	}

	// A second request, denied with a reason.
	id2 := request()
	if code, _, stderr := abe.run("", "approval", "deny", id2); code != 2 || !strings.Contains(stderr, "--reason") {
		t.Fatalf("deny without a reason: exit %d, %s", code, stderr)
	}
	// A denial needs a step-up like an approval: the client answers the
	// challenge with the code it reads from standard input.
	if code, _, stderr := abe.run("", "approval", "deny", id2, "--reason", "not during the freeze"); code != 1 || !strings.Contains(stderr, "standard input ended") {
		t.Fatalf("deny without a code: exit %d, %s", code, stderr)
	}
	abe.must(abe.code()+"\n", "approval", "deny", id2, "--reason", "not during the freeze")
	var denied []map[string]any
	if err := json.Unmarshal([]byte(tess.must("", "approval", "list", "--status", "denied", "--json")), &denied); err != nil || len(denied) != 1 || denied[0]["id"] != id2 {
		t.Fatalf("denied list: %v %v", denied, err)
	}
}
