//go:build soak && linux

package soak

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"firewalliq/appliance/auth"
	"firewalliq/probe/lab"
	"firewalliq/vault/vaulttest"
)

// actor is one person at a shell of their own (XDG_CONFIG_HOME), logged in
// with the real CLI.
type actor struct {
	name, role, id string
	xdg            string
	secret         string
	mu             sync.Mutex
	last           int64 // last TOTP step used: a code is accepted once
}

// code returns a TOTP code for a step after the last one used, waiting for
// the next 30 s step when needed. Steps within ±1 of now are accepted; the
// one before now is used only early in the current step, so it is still
// inside the window when the appliance checks it.
func (a *actor) code(ctx context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for {
		now := time.Now()
		cur := now.Unix() / 30
		low := cur
		if now.Unix()%30 < 20 {
			low = cur - 1
		}
		s := max(low, a.last+1)
		if s <= cur+1 {
			a.last = s
			return auth.TOTPCode(a.secret, time.Unix(s*30+1, 0))
		}
		wait := time.Until(time.Unix((s-1)*30, 0)) + 100*time.Millisecond
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(wait):
		}
	}
}

// soak is the state of the inner run.
type soak struct {
	t        *testing.T
	work     string
	bin      string
	data     string
	addr     string // https://127.0.0.1:port
	listen   string
	pin      string
	adminOTP string
	tenantID string
	cidr     string
	dur      time.Duration

	minio  *vaulttest.Server
	bucket string
	secret string // file with MinIO's secret key
	syslog *rsyslog

	admin, lead, op *actor

	mu        sync.Mutex
	serve     *exec.Cmd
	serveDone chan struct{}
	serveLog  *os.File
	down      atomic.Bool // set while the appliance is being killed and restarted
	events    []string    // what happened, for the report
	scans     []string    // every scan id requested
	kills     int
	notes     []string // checkpoint notes saved after each restart
	// interrupted maps each scan that was running at a SIGKILL to the
	// first such kill.
	interrupted map[string]time.Time
	maxRSS      int64 // KiB

	health struct {
		ok, expected, unexpected atomic.Int64
		mu                       sync.Mutex
		firstBad                 []string
	}
	hostile struct {
		sent, refused, server5xx, connErr atomic.Int64
		mu                                sync.Mutex
		kinds                             map[string]int
		bad                               []string
	}
	requestFails atomic.Int64
}

func (s *soak) logf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.events = append(s.events, time.Now().UTC().Format("15:04:05")+" "+msg)
	s.mu.Unlock()
	s.t.Log(msg)
}

// TestSoakInner runs inside the lab's scanner namespace; TestSoak starts it.
func TestSoakInner(t *testing.T) {
	work := os.Getenv(envInner)
	if work == "" {
		t.Skip("started by TestSoak inside the lab's scanner namespace")
	}
	dur := soakDuration(t)
	s := &soak{t: t, work: work, bin: os.Getenv(envBin), cidr: os.Getenv(envCIDR), dur: dur,
		data: filepath.Join(work, "data")}
	s.hostile.kinds = map[string]int{}
	s.interrupted = map[string]time.Time{}
	start := time.Now()

	var err error
	if s.minio, err = vaulttest.Start(filepath.Join(work, "minio")); err != nil {
		t.Fatalf("minio: %v", err)
	}
	defer s.minio.Stop()
	ctx := context.Background()
	if s.bucket, err = s.minio.MakeBucket(ctx, vaulttest.Compliance); err != nil {
		t.Fatal(err)
	}
	s.secret = filepath.Join(work, "minio.secret")
	if err := os.WriteFile(s.secret, []byte(vaulttest.Password), 0o600); err != nil {
		t.Fatal(err)
	}
	s.syslog = startRsyslog(t, filepath.Join(work, "rsyslog"))
	defer s.syslog.stop()

	s.initAppliance()
	s.mountSpool()
	s.startServe()
	defer s.stopServe()
	s.setup(ctx)
	setupTime := time.Since(start)
	s.logf("setup done in %s", setupTime.Round(time.Second))

	// The run: scans and faults until the duration is over.
	runCtx, cancel := context.WithTimeout(ctx, dur)
	var wg sync.WaitGroup
	for _, f := range []func(context.Context){s.monitorHealth, s.monitorMemory, s.hostileAPI} {
		wg.Add(1)
		go func() { defer wg.Done(); f(runCtx) }()
	}
	for _, a := range []*actor{s.lead, s.op} {
		wg.Add(1)
		go func() { defer wg.Done(); s.requestScans(runCtx, a) }()
	}
	s.faults(runCtx)
	cancel()
	wg.Wait()
	s.logf("run over after %s; settling", dur)

	// Settle and check.
	rep := &bytes.Buffer{}
	fails := s.settleAndCheck(ctx, rep)
	s.writeReport(rep, fails, setupTime, time.Since(start))
	if len(fails) > 0 {
		for _, f := range fails {
			t.Error(f)
		}
	}
}

// cli runs the firewalliq binary as actor a (nil: no session; offline
// commands) with stdin, and returns stdout, stderr and the exit code.
func (s *soak) cli(ctx context.Context, a *actor, extraEnv []string, stdin string, args ...string) (string, string, int) {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, args...)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.work}
	if a != nil {
		env = append(env, "XDG_CONFIG_HOME="+a.xdg)
	}
	cmd.Env = append(env, extraEnv...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return out.String(), errb.String(), code
}

// must runs a command that must succeed.
func (s *soak) must(ctx context.Context, a *actor, stdin string, args ...string) string {
	s.t.Helper()
	out, errb, code := s.cli(ctx, a, nil, stdin, args...)
	if code != 0 {
		s.t.Fatalf("firewalliq %s: exit %d\n%s%s\nserve log:\n%s", strings.Join(args, " "), code, out, errb, s.serveTail())
	}
	return out
}

// mustStepUp runs a command that asks for a step-up code, retrying with a
// new code when the code was refused (a step the appliance saw as used).
func (s *soak) mustStepUp(ctx context.Context, a *actor, args ...string) string {
	s.t.Helper()
	var out, errb string
	var code int
	for range 3 {
		c, err := a.code(ctx)
		if err != nil {
			s.t.Fatal(err)
		}
		out, errb, code = s.cli(ctx, a, nil, c+"\n", args...)
		if code == 0 {
			return out
		}
	}
	s.t.Fatalf("firewalliq %s: exit %d\n%s%s\nserve log:\n%s", strings.Join(args, " "), code, out, errb, s.serveTail())
	return ""
}

// vaultEnv is the appliance's vault configuration.
func (s *soak) vaultEnv() []string {
	return []string{"FIQ_VAULT_BACKEND=minio", "FIQ_VAULT_ENDPOINT=" + s.minio.Addr, "FIQ_VAULT_BUCKET=" + s.bucket,
		"FIQ_VAULT_CA_FILE=" + s.minio.CAFile(), "FIQ_VAULT_ACCESS_KEY=" + vaulttest.User,
		"FIQ_VAULT_SECRET_KEY_FILE=" + s.secret, "FIQ_VAULT_RETENTION_DAYS=1",
		"FIQ_VAULT_SPOOL_MAX_BYTES=" + strconv.Itoa(spoolMax), "FIQ_VAULT_CHECK_INTERVAL=1m",
		"FIQ_PRODUCTION=false", "FIQ_DATA=" + s.data}
}

// spoolMax is the spool's bound; the spool's tmpfs is twice as large so
// the disk can also be filled past the bound by something else.
const spoolMax = 16 << 20

func (s *soak) initAppliance() {
	out := s.must(context.Background(), nil, "", "init", "--data", s.data, "--admin", "root", "--tenant", "soak", "--json")
	var res struct {
		TenantID string `json:"tenant_id"`
		OTP      string `json:"one_time_password"`
		Secret   string `json:"totp_secret"`
		Pin      string `json:"console_cert_sha256"`
		AdminID  string `json:"admin_id"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		s.t.Fatalf("init output %q: %v", out, err)
	}
	s.tenantID, s.pin = res.TenantID, res.Pin
	s.admin = &actor{name: "root", role: "admin", id: res.AdminID, xdg: filepath.Join(s.work, "xdg-root"), secret: res.Secret}
	s.adminOTP = res.OTP
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.t.Fatal(err)
	}
	s.listen = l.Addr().String()
	l.Close()
	s.addr = "https://" + s.listen
}

// mountSpool puts the spool on a small tmpfs (twice the spool bound) of
// this mount namespace (`ip netns exec` gave the inner run its own), so the
// disk-full fault can fill it.
func (s *soak) mountSpool() {
	dir := filepath.Join(s.data, "spool")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		s.t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", 2*spoolMax), "fiq-soak-spool", dir).CombinedOutput(); err != nil {
		s.t.Fatalf("mount spool tmpfs: %v %s", err, out)
	}
	s.t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
}

// startServe starts `firewalliq serve` and waits until /healthz answers.
func (s *soak) startServe() {
	s.t.Helper()
	if s.serveLog == nil {
		f, err := os.OpenFile(filepath.Join(s.work, "serve.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			s.t.Fatal(err)
		}
		s.serveLog = f
	}
	cmd := exec.Command(s.bin, "serve", "--data", s.data, "--listen", s.listen)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.work, "FIQ_LOG_LEVEL=info",
		"FIQ_AUDIT_CHECKPOINT_EVERY=200", "FIQ_AUDIT_CHECKPOINT_INTERVAL=30s"}, s.vaultEnv()...)
	cmd.Stdout, cmd.Stderr = s.serveLog, s.serveLog
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.serve, s.serveDone = cmd, done
	s.mu.Unlock()
	hc := s.httpClient(2 * time.Second)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			s.t.Fatalf("serve exited at start:\n%s", s.serveTail())
		default:
		}
		resp, err := hc.Get(s.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("serve not healthy after 60 s:\n%s", s.serveTail())
}

// kill sends SIGKILL to the appliance and waits for it to die.
func (s *soak) kill() {
	s.mu.Lock()
	cmd, done := s.serve, s.serveDone
	s.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// stopServe ends the appliance gracefully (SIGTERM, then SIGKILL after 30 s).
func (s *soak) stopServe() {
	s.mu.Lock()
	cmd, done := s.serve, s.serveDone
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
}

func (s *soak) serveTail() string {
	b, _ := os.ReadFile(filepath.Join(s.work, "serve.log"))
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

func (s *soak) httpClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		// The console certificate is self-signed; the soak trusts the
		// appliance it just started on its own loopback.
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // test client of a local appliance
		DisableKeepAlives: true,
	}}
}

// firstLogin logs a new user in through the whole first-login flow,
// reading the enrolment line before answering with a code.
func (s *soak) firstLogin(ctx context.Context, a *actor, oneTime string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, "login", "--addr", s.addr, "--user", a.name, "--cert-sha256", s.pin, "--json")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.work, "XDG_CONFIG_HOME=" + a.xdg}
	in, err := cmd.StdinPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	outR, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	fmt.Fprintln(in, oneTime)
	lines := bufio.NewScanner(outR)
	if !lines.Scan() {
		_ = cmd.Wait()
		s.t.Fatalf("login %s printed nothing: %s\n%s", a.name, errb.String(), s.serveTail())
	}
	var en struct {
		Secret string `json:"totp_secret"`
	}
	if err := json.Unmarshal(lines.Bytes(), &en); err != nil || en.Secret == "" {
		s.t.Fatalf("login %s enrolment line %q: %v", a.name, lines.Text(), err)
	}
	a.secret = en.Secret
	c, err := a.code(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	fmt.Fprintf(in, "%s\nsoak password %s 0123456789\n", c, a.name)
	in.Close()
	for lines.Scan() {
	}
	if err := cmd.Wait(); err != nil {
		s.t.Fatalf("login %s: %v: %s", a.name, err, errb.String())
	}
}

// setup logs the admin in, adds the SIEM destination, a security lead and
// an operator, registers the lead's key and the lab scope.
func (s *soak) setup(ctx context.Context) {
	s.firstLogin(ctx, s.admin, s.adminOTP)
	s.mustStepUp(ctx, s.admin, "siem", "add", "--name", "soak", "--kind", "tcp", "--address", s.syslog.TCP)
	s.logf("SIEM destination soak: rsyslog TCP %s", s.syslog.TCP)
	newUser := func(name, role string) *actor {
		out := s.mustStepUp(ctx, s.admin, "user", "add", "--name", name, "--role", role, "--tenant", s.tenantID, "--json")
		var u struct {
			ID  string `json:"id"`
			OTP string `json:"one_time_password"`
		}
		if err := json.Unmarshal([]byte(out), &u); err != nil {
			s.t.Fatalf("user add output %q: %v", out, err)
		}
		a := &actor{name: name, role: role, id: u.ID, xdg: filepath.Join(s.work, "xdg-"+name)}
		s.firstLogin(ctx, a, u.OTP)
		return a
	}
	s.lead = newUser("lena", "security_lead")
	s.op = newUser("otto", "operator")

	base := filepath.Join(s.work, "lena")
	s.must(ctx, nil, "", "scope", "keygen", "--out", base)
	s.mustStepUp(ctx, s.lead, "key", "add", base+".pub", "--name", "lena")
	now := time.Now().UTC()
	doc := map[string]any{
		"id": "soak", "tenant": s.tenantID, "name": "soak lab", "environment": "non-production",
		"cidrs": []string{s.cidr}, "exclude": []string{},
		"ports":      "tcp:22,25,80,443,3306,8080,8443," + hostilePorts,
		"probes":     []string{"tcp-syn", "banner", "tls-hello"},
		"not_before": now.Add(-time.Hour).Format(time.RFC3339), "not_after": now.Add(24 * time.Hour).Format(time.RFC3339),
		"max_pps": 1000,
	}
	b, _ := json.Marshal(doc)
	docPath := filepath.Join(s.work, "scope.json")
	if err := os.WriteFile(docPath, b, 0o600); err != nil {
		s.t.Fatal(err)
	}
	signed := s.must(ctx, nil, "", "scope", "sign", "--key", base+".key", docPath)
	signedPath := filepath.Join(s.work, "scope.signed.json")
	if err := os.WriteFile(signedPath, []byte(signed), 0o600); err != nil {
		s.t.Fatal(err)
	}
	s.must(ctx, s.lead, "", "scope", "register", signedPath)
	s.logf("scope soak registered: %s, ports %s", s.cidr, doc["ports"])
}

// requestScans requests scans as a, one whenever a step-up code is
// available and fewer than four scans are waiting or running.
func (s *soak) requestScans(ctx context.Context, a *actor) {
	for ctx.Err() == nil {
		if s.open(ctx, a) >= 4 {
			sleep(ctx, 5*time.Second)
			continue
		}
		c, err := a.code(ctx)
		if err != nil {
			return
		}
		rate := 30 + rand.IntN(90)
		args := []string{"scan", "request", "--scope", "soak", "--rate", strconv.Itoa(rate), "--json"}
		// Two scans in three: SYN only over a random /28 of the scope
		// (192 probes, 2-6 s). The third: SYN, banner and TLS over a /29,
		// which meets the hostile services' banners and certificates.
		p := netip.MustParsePrefix(s.cidr)
		kind, target := "syn", subnet(p, 28)
		if rand.IntN(3) == 2 {
			kind, target = "syn+banner+tls", subnet(p, 29)
			args = append(args, "--target", target, "--probe", "tcp-syn", "--probe", "banner", "--probe", "tls-hello")
		} else {
			args = append(args, "--target", target, "--probe", "tcp-syn")
		}
		out, errb, code := s.cli(ctx, a, nil, c+"\n", args...)
		if code != 0 {
			s.requestFails.Add(1)
			if !s.down.Load() && ctx.Err() == nil {
				s.logf("scan request by %s refused (exit %d): %s", a.name, code, strings.TrimSpace(errb))
			}
			continue
		}
		var sc struct {
			ID    string `json:"id"`
			State string `json:"state"`
		}
		if err := json.Unmarshal([]byte(out), &sc); err != nil || sc.ID == "" {
			s.logf("scan request output %q: %v", out, err)
			continue
		}
		s.mu.Lock()
		s.scans = append(s.scans, sc.ID)
		s.mu.Unlock()
		s.logf("scan %s (%s, %s) requested by %s at %d pps: %s", sc.ID, kind, target, a.name, rate, sc.State)
	}
}

// scanInfo is the part of a scan the checks read.
type scanInfo struct {
	ID        string `json:"id"`
	State     string `json:"state"`
	Reason    string `json:"reason"`
	Requester string `json:"requester_id"`
	Job       *struct {
		ID         string `json:"id"`
		State      string `json:"state"`
		Reason     string `json:"reason"`
		Results    int64  `json:"results"`
		FinishedAt string `json:"finished_at"`
	} `json:"job"`
}

// listScans lists the tenant's scans through the API.
func (s *soak) listScans(ctx context.Context, a *actor) ([]scanInfo, error) {
	out, errb, code := s.cli(ctx, a, nil, "", "scan", "list", "--json")
	if code != 0 {
		return nil, fmt.Errorf("scan list: exit %d: %s", code, errb)
	}
	var list []scanInfo
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("scan list output: %w", err)
	}
	return list, nil
}

// subnet returns a random sub-prefix of p with the given length.
func subnet(p netip.Prefix, bits int) string {
	n := 1 << (bits - p.Bits())
	a := p.Addr().As4()
	off := uint32(rand.IntN(n)) << (32 - bits)
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += off
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), bits).String()
}

var terminal = []string{"completed", "failed", "cancelled", "denied", "expired"}

// open counts the scans not yet ended (-1: unknown, treated as many).
func (s *soak) open(ctx context.Context, _ *actor) int {
	list, err := s.listScans(ctx, s.lead)
	if err != nil {
		return 99
	}
	n := 0
	for _, sc := range list {
		if !slices.Contains(terminal, sc.State) {
			n++
		}
	}
	return n
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// monitorHealth polls /healthz every 250 ms; failures while the appliance
// is not being restarted are counted as unexpected.
func (s *soak) monitorHealth(ctx context.Context) {
	hc := s.httpClient(5 * time.Second)
	for ctx.Err() == nil {
		wasDown := s.down.Load()
		resp, err := hc.Get(s.addr + "/healthz")
		ok := err == nil && resp.StatusCode == http.StatusOK
		if resp != nil {
			resp.Body.Close()
		}
		switch {
		case ok:
			s.health.ok.Add(1)
		case wasDown || s.down.Load():
			s.health.expected.Add(1)
		default:
			s.health.unexpected.Add(1)
			s.health.mu.Lock()
			if len(s.health.firstBad) < 10 {
				s.health.firstBad = append(s.health.firstBad, fmt.Sprintf("%s: %v %v", time.Now().UTC().Format("15:04:05.000"), err, statusOf(resp)))
			}
			s.health.mu.Unlock()
		}
		sleep(ctx, 250*time.Millisecond)
	}
}

func statusOf(r *http.Response) string {
	if r == nil {
		return ""
	}
	return r.Status
}

// monitorMemory samples the appliance's resident memory every second.
func (s *soak) monitorMemory(ctx context.Context) {
	for ctx.Err() == nil {
		s.mu.Lock()
		pid := s.serve.Process.Pid
		s.mu.Unlock()
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
					if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
						s.mu.Lock()
						s.maxRSS = max(s.maxRSS, kb)
						s.mu.Unlock()
					}
				}
			}
		}
		sleep(ctx, time.Second)
	}
}

// restart SIGKILLs the appliance at once, waits 0.5-3 s and starts it
// again, then keeps the checkpoint it signed so far.
func (s *soak) restart(ctx context.Context) {
	var running []string
	if list, err := s.listScans(ctx, s.lead); err == nil {
		for _, sc := range list {
			if sc.State == "running" {
				running = append(running, sc.ID)
			}
		}
	}
	s.down.Store(true)
	s.kill()
	killed := time.Now()
	s.kills++
	for _, id := range running {
		if _, ok := s.interrupted[id]; !ok {
			s.interrupted[id] = killed
		}
	}
	s.logf("SIGKILL #%d of the appliance; running scans %v", s.kills, running)
	sleep(ctx, time.Duration(500+rand.IntN(2500))*time.Millisecond)
	s.startServe()
	s.down.Store(false)
	s.saveCheckpoint(context.Background())
}

// waitRunning waits (at most d) until a scan is running, so that a kill
// lands mid-scan and tests the resume more often than chance would; the
// moment within the scan stays random.
func (s *soak) waitRunning(ctx context.Context, d time.Duration) {
	end := time.Now().Add(d)
	for ctx.Err() == nil && time.Now().Before(end) {
		if list, err := s.listScans(ctx, s.lead); err == nil {
			for _, sc := range list {
				if sc.State == "running" {
					sleep(ctx, time.Duration(rand.IntN(1500))*time.Millisecond)
					return
				}
			}
		}
		sleep(ctx, 300*time.Millisecond)
	}
}

// saveCheckpoint keeps the latest signed checkpoint note; at the end the
// log must extend every one of them.
func (s *soak) saveCheckpoint(ctx context.Context) {
	out, _, code := s.cli(ctx, nil, nil, "", "audit", "checkpoint", "--data", s.data)
	if code != 0 || strings.TrimSpace(out) == "" {
		return
	}
	p := filepath.Join(s.work, fmt.Sprintf("checkpoint-%02d.note", len(s.notes)))
	if err := os.WriteFile(p, []byte(out), 0o600); err == nil {
		s.notes = append(s.notes, p)
	}
}

// faults injects the faults until ctx ends: SIGKILL and restart every 20-60
// s; MinIO down for a while at 20% and 70% of the run; rsyslog down at 40%;
// the spool's disk filled at 55%.
func (s *soak) faults(ctx context.Context) {
	start := time.Now()
	at := func(f float64) time.Time { return start.Add(time.Duration(f * float64(s.dur))) }
	outage := min(25*time.Second, s.dur/6)
	type fault struct {
		when time.Time
		name string
		do   func()
	}
	fs := []*fault{
		{when: at(0.2), name: "minio", do: func() {
			s.logf("MinIO stopped for %s", outage)
			s.minio.Stop()
			sleep(ctx, outage)
			if err := s.minio.Restart(); err != nil {
				s.t.Errorf("minio restart: %v", err)
			}
			s.logf("MinIO restarted")
		}},
		{when: at(0.4), name: "rsyslog", do: func() {
			s.logf("rsyslog stopped for %s", outage)
			s.syslog.stop()
			sleep(ctx, outage)
			s.syslog.start()
			s.logf("rsyslog restarted")
		}},
		{when: at(0.55), name: "spool disk", do: func() { s.fillSpool(ctx, outage) }},
		{when: at(0.7), name: "minio again", do: func() {
			s.logf("MinIO stopped for %s", outage)
			s.minio.Stop()
			sleep(ctx, outage)
			if err := s.minio.Restart(); err != nil {
				s.t.Errorf("minio restart: %v", err)
			}
			s.logf("MinIO restarted")
		}},
	}
	// The outages run one after the other in their own goroutine, so the
	// SIGKILLs go on during them (a kill while MinIO or rsyslog is down is
	// part of the test); each ends early, restoring its part, when the run
	// ends.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, f := range fs {
			sleep(ctx, time.Until(f.when))
			if ctx.Err() != nil {
				return
			}
			f.do()
		}
	}()
	nextKill := time.Now().Add(time.Duration(20+rand.IntN(20)) * time.Second)
	for ctx.Err() == nil {
		if time.Now().After(nextKill) {
			s.waitRunning(ctx, 20*time.Second)
			s.restart(ctx)
			nextKill = time.Now().Add(time.Duration(20+rand.IntN(40)) * time.Second)
		}
		sleep(ctx, 200*time.Millisecond)
	}
	<-done
}

// fillSpool fills the spool's tmpfs to the last byte with a file that is
// not the appliance's, holds it for d, and removes it.
func (s *soak) fillSpool(ctx context.Context, d time.Duration) {
	p := filepath.Join(s.data, "spool", "zz-soak-filler")
	f, err := os.Create(p)
	if err != nil {
		s.logf("spool filler: %v", err)
		return
	}
	buf := make([]byte, 1<<20)
	var n int64
	for {
		w, err := f.Write(buf)
		n += int64(w)
		if err != nil {
			break
		}
	}
	f.Close()
	s.logf("spool disk filled: %d MiB filler, disk full; held for %s", n>>20, d)
	sleep(ctx, d)
	if err := os.Remove(p); err != nil {
		s.t.Errorf("remove spool filler: %v", err)
	}
	s.logf("spool filler removed")
}

// hostileAPI sends hostile requests to the API until ctx ends: malformed
// and oversized bodies, slowloris connections, bursts of concurrent
// unauthenticated requests and logins with wrong passwords. None may get a
// 5xx answer (connection errors while the appliance restarts are fine).
func (s *soak) hostileAPI(ctx context.Context) {
	hc := s.httpClient(15 * time.Second)
	big := bytes.Repeat([]byte("A"), 16<<20)
	type attack struct {
		name string
		do   func() (*http.Response, error)
	}
	post := func(path, ctype string, body []byte) func() (*http.Response, error) {
		return func() (*http.Response, error) {
			req, _ := http.NewRequestWithContext(ctx, "POST", s.addr+path, bytes.NewReader(body))
			req.Header.Set("Content-Type", ctype)
			return hc.Do(req)
		}
	}
	attacks := []attack{
		{"malformed JSON login", post("/api/v1/auth/login", "application/json", []byte(`{"name": "root", "password": `))},
		{"JSON with unknown fields and NUL", post("/api/v1/auth/login", "application/json", []byte("{\"name\":\"r\\u0000oot\",\"password\":\"x\",\"evil\":[1,2,3]}"))},
		{"oversized body (16 MiB)", post("/api/v1/auth/login", "application/json", big)},
		{"wrong password (unknown user)", post("/api/v1/auth/login", "application/json", []byte(`{"name":"mallory","password":"guess-1234567"}`))},
		{"wrong password (existing user)", post("/api/v1/auth/login", "application/json", []byte(`{"name":"otto","password":"guess-1234567"}`))},
		{"scan request without a session", post("/api/v1/scans", "application/json", []byte(`{"scope_id":"soak"}`))},
		{"form body to a JSON route", post("/api/v1/auth/login", "application/x-www-form-urlencoded", []byte("name=root&password=x"))},
		{"path traversal", func() (*http.Response, error) {
			return hc.Get(s.addr + "/static/..%2f..%2f..%2fetc%2fpasswd")
		}},
		{"huge header", func() (*http.Response, error) {
			req, _ := http.NewRequestWithContext(ctx, "GET", s.addr+"/api/v1/scans", nil)
			req.Header.Set("X-Soak", strings.Repeat("B", 2<<20))
			return hc.Do(req)
		}},
	}
	record := func(name string, resp *http.Response, err error) {
		s.hostile.sent.Add(1)
		s.hostile.mu.Lock()
		s.hostile.kinds[name]++
		s.hostile.mu.Unlock()
		switch {
		case err != nil:
			s.hostile.connErr.Add(1)
		case resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable:
			s.hostile.server5xx.Add(1)
			s.hostile.mu.Lock()
			s.hostile.bad = append(s.hostile.bad, fmt.Sprintf("%s: %s", name, resp.Status))
			s.hostile.mu.Unlock()
		default:
			s.hostile.refused.Add(1)
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
		}
	}
	for i := 0; ctx.Err() == nil; i++ {
		switch i % 4 {
		case 0, 1:
			a := attacks[rand.IntN(len(attacks))]
			resp, err := a.do()
			record(a.name, resp, err)
		case 2: // a burst of 50 concurrent unauthenticated requests
			var wg sync.WaitGroup
			for range 50 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, err := hc.Get(s.addr + "/api/v1/scans")
					record("concurrent burst (50)", resp, err)
				}()
			}
			wg.Wait()
		case 3: // slowloris: 10 connections sending a header byte a second
			var wg sync.WaitGroup
			for range 10 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s.slowloris(ctx, 12*time.Second)
				}()
			}
			wg.Wait()
			s.hostile.mu.Lock()
			s.hostile.kinds["slowloris connection"] += 10
			s.hostile.mu.Unlock()
		}
		sleep(ctx, 500*time.Millisecond)
	}
}

// slowloris opens a TLS connection and sends a request header one byte a
// second for at most d.
func (s *soak) slowloris(ctx context.Context, d time.Duration) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.listen, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // local test appliance
	if err != nil {
		return
	}
	defer c.Close()
	msg := "GET /api/v1/scans HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("s", 64)
	end := time.Now().Add(d)
	for i := 0; i < len(msg) && time.Now().Before(end) && ctx.Err() == nil; i++ {
		_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte{msg[i]}); err != nil {
			return // the server closed it: good
		}
		sleep(ctx, time.Second)
	}
}

// settleAndCheck brings every part back, waits for the scans, uploads and
// SIEM deliveries to finish, and checks everything. It writes the results
// table to rep and returns the failures.
func (s *soak) settleAndCheck(ctx context.Context, rep *bytes.Buffer) []string {
	var fails []string
	check := func(name string, ok bool, detail string) {
		mark := "pass"
		if !ok {
			mark = "**FAIL**"
			fails = append(fails, name+": "+detail)
		}
		fmt.Fprintf(rep, "| %s | %s | %s |\n", name, mark, strings.ReplaceAll(detail, "|", "\\|"))
	}
	fmt.Fprintf(rep, "| check | result | detail |\n|---|---|---|\n")

	// Every scan ends: completed, or failed/cancelled with a reason.
	var list []scanInfo
	deadline := time.Now().Add(8 * time.Minute)
	for {
		var err error
		list, err = s.listScans(ctx, s.lead)
		if err == nil && s.open(ctx, nil) == 0 {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		sleep(ctx, 3*time.Second)
	}
	states := map[string]int{}
	var unended, noReason, why []string
	var completed []scanInfo
	for _, sc := range list {
		states[sc.State]++
		switch {
		case sc.State == "completed":
			completed = append(completed, sc)
		case !slices.Contains(terminal, sc.State):
			unended = append(unended, sc.ID+" "+sc.State)
		case sc.Reason == "" && (sc.Job == nil || sc.Job.Reason == ""):
			noReason = append(noReason, sc.ID+" "+sc.State)
		default:
			why = append(why, fmt.Sprintf("%s %s: %q", sc.ID, sc.State, sc.Reason))
		}
	}
	check("scans requested", len(list) > 0 && len(completed) > 0, fmt.Sprintf("%d scans: %v", len(list), states))
	check("every scan ended (none left queued or running)", len(unended) == 0, fmt.Sprintf("not ended: %v", unended))
	check("every scan that did not complete says why", len(noReason) == 0, fmt.Sprintf("%s; without a reason: %v", strings.Join(why, "; "), noReason))

	// Every scan running at a SIGKILL resumed under its job and completed,
	// or failed with a reason (or had completed before the kill landed).
	entries, resumed := s.auditActions(ctx)
	var outcome []string
	var badResume []string
	for id, killed := range s.interrupted {
		sc, err := s.showScan(ctx, id)
		switch {
		case err != nil:
			badResume = append(badResume, id+": "+err.Error())
		case sc.State == "completed" && resumed[id]:
			outcome = append(outcome, id+" resumed and completed")
		case sc.State == "completed" && sc.Job != nil && finishedBy(sc.Job.FinishedAt, killed):
			outcome = append(outcome, id+" had completed before the kill landed")
		case sc.State != "completed" && slices.Contains(terminal, sc.State) && (sc.Reason != "" || (sc.Job != nil && sc.Job.Reason != "")):
			outcome = append(outcome, fmt.Sprintf("%s %s: %s", id, sc.State, sc.Reason))
		default:
			badResume = append(badResume, fmt.Sprintf("%s %s (resumed: %v)", id, sc.State, resumed[id]))
		}
	}
	slices.Sort(outcome)
	check("every interrupted scan resumed or failed with a reason", len(badResume) == 0,
		fmt.Sprintf("%d SIGKILLs, %d scans running at a kill, %d scan.resume entries: %s; wrong: %v",
			s.kills, len(s.interrupted), entries["scan.resume"], strings.Join(outcome, "; "), badResume))

	// Results: no target outside the scope, and the SYN results agree with
	// the lab's ground truth although hostile replies were injected.
	s.checkResults(ctx, completed, check)

	// Evidence: every finished scan's objects are in MinIO with their hash.
	s.checkEvidence(ctx, completed, check)

	// SIEM: every event delivered, no gap in the destination's sequence.
	s.checkSIEM(ctx, check)

	// The appliance stayed up and small.
	s.health.mu.Lock()
	bad := s.health.firstBad
	s.health.mu.Unlock()
	check("/healthz answered except during restarts", s.health.unexpected.Load() == 0,
		fmt.Sprintf("%d ok, %d failed during its %d restarts, %d failed otherwise %v", s.health.ok.Load(), s.health.expected.Load(), s.kills, s.health.unexpected.Load(), bad))
	s.mu.Lock()
	rss := s.maxRSS
	s.mu.Unlock()
	const rssBound = 512 << 10 // KiB
	check("memory bounded", rss > 0 && rss < rssBound, fmt.Sprintf("peak VmRSS %d MiB (bound %d MiB)", rss>>10, rssBound>>10))
	s.hostile.mu.Lock()
	hbad := s.hostile.bad
	s.hostile.mu.Unlock()
	check("hostile API requests refused without a server error", s.hostile.server5xx.Load() == 0,
		fmt.Sprintf("%d sent, %d answered 4xx/2xx/503, %d connection errors (restarts, slowloris limits), %d 5xx %v",
			s.hostile.sent.Load(), s.hostile.refused.Load(), s.hostile.connErr.Load(), s.hostile.server5xx.Load(), hbad))
	check("wrong-password logins audited", entries["auth.login.failed"] > 0, fmt.Sprintf("%d auth.login.failed entries", entries["auth.login.failed"]))

	// The audit log, offline, after a graceful stop.
	s.stopServe()
	s.saveCheckpoint(ctx)
	_, errb, code := s.cli(ctx, nil, s.vaultEnv(), "", "audit", "verify", "--data", s.data)
	check("audit verify", code == 0, strings.TrimSpace(errb))
	_, errb, code = s.cli(ctx, nil, s.vaultEnv(), "", "audit", "verify", "--data", s.data, "--anchors")
	check("audit verify --anchors", code == 0, strings.TrimSpace(errb))
	args := []string{"audit", "verify", "--data", s.data}
	for _, n := range s.notes {
		args = append(args, "--from-checkpoint", n)
	}
	_, errb, code = s.cli(ctx, nil, s.vaultEnv(), "", args...)
	check("checkpoints consistent across restarts", code == 0 && len(s.notes) > 0,
		fmt.Sprintf("the final log extends all %d checkpoints kept after each restart %s", len(s.notes), strings.TrimSpace(errb)))
	return fails
}

// auditActions counts the audit entries per action, through the API, and
// returns the scans with a scan.resume entry.
func (s *soak) auditActions(ctx context.Context) (map[string]int, map[string]bool) {
	out, errb, code := s.cli(ctx, s.admin, nil, "", "audit", "entries", "--json")
	n, resumed := map[string]int{}, map[string]bool{}
	if code != 0 {
		s.logf("audit entries: exit %d %s", code, errb)
		return n, resumed
	}
	var es []struct {
		Action string `json:"action"`
		Object string `json:"object"`
	}
	if err := json.Unmarshal([]byte(out), &es); err != nil {
		s.logf("audit entries output: %v", err)
	}
	for _, e := range es {
		n[e.Action]++
		if e.Action == "scan.resume" {
			resumed[strings.TrimPrefix(e.Object, "scan:")] = true
		}
	}
	return n, resumed
}

// finishedBy reports whether the RFC 3339 time ts is not after t.
func finishedBy(ts string, t time.Time) bool {
	f, err := time.Parse(time.RFC3339Nano, ts)
	return err == nil && !f.After(t)
}

// checkResults reads every completed scan's results and checks them: each
// target lies in the scope, and each tcp-syn row has the state the lab's
// ground truth (its firewall rules and listeners, plus the hostile
// services, all listening) says. An open port reported filtered is counted
// apart: on this loaded machine a reply can come after the engine stopped
// waiting, which is a miss, not a forged result; every other disagreement
// (closed, rejected or open where the truth differs) fails.
func (s *soak) checkResults(ctx context.Context, completed []scanInfo, check func(string, bool, string)) {
	services := lab.DefaultServices()
	for p := uint16(portHugeBanner); p <= portOddOptions; p++ {
		services = append(services, lab.Service{Proto: lab.TCP, Port: p, Kind: lab.Silent})
	}
	scope := netip.MustParsePrefix(s.cidr)
	truth := lab.Truth{Rules: lab.DefaultRules(), Services: services, Zones: []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24")}}
	var rows, syn, missed int
	var outside, wrong []string
	for _, sc := range completed {
		out, errb, code := s.cli(ctx, s.lead, nil, "", "scan", "results", sc.ID, "--json")
		var rs []struct {
			Target string `json:"target"`
			Proto  string `json:"proto"`
			Port   int    `json:"port"`
			Probe  string `json:"probe"`
			State  string `json:"state"`
			Reason string `json:"reason"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &rs) != nil {
			wrong = append(wrong, fmt.Sprintf("%s: results not readable (exit %d %s)", sc.ID, code, strings.TrimSpace(errb)))
			continue
		}
		for _, r := range rs {
			rows++
			a, err := netip.ParseAddr(r.Target)
			if err != nil || !scope.Contains(a) {
				outside = append(outside, sc.ID+" "+r.Target)
				continue
			}
			if r.Probe != "tcp-syn" {
				continue
			}
			syn++
			e, ok := truth.Expect(a, lab.TCP, uint16(r.Port))
			switch {
			case !ok || r.State == string(e.State):
			case e.State == lab.Open && r.State == string(lab.Filtered):
				missed++
			default:
				if len(wrong) < 10 {
					wrong = append(wrong, fmt.Sprintf("%s %s:%d %s (%s), truth %s", sc.ID, r.Target, r.Port, r.State, r.Reason, e.State))
				}
			}
		}
	}
	check("no result for a target outside the scope", len(outside) == 0, fmt.Sprintf("%d result rows; outside: %v", rows, outside))
	check("tcp-syn results match the lab's ground truth", syn > 0 && len(wrong) == 0,
		fmt.Sprintf("%d tcp-syn rows; open ports reported filtered (late replies): %d; disagreements: %v", syn, missed, wrong))
}

// showScan reads one scan with its job.
func (s *soak) showScan(ctx context.Context, id string) (scanInfo, error) {
	var sc scanInfo
	out, errb, code := s.cli(ctx, s.lead, nil, "", "scan", "show", id, "--json")
	if code != 0 {
		return sc, fmt.Errorf("scan show: exit %d: %s", code, strings.TrimSpace(errb))
	}
	return sc, json.Unmarshal([]byte(out), &sc)
}

// checkEvidence waits for the spool to drain, then checks every recorded
// evidence object against MinIO.
func (s *soak) checkEvidence(ctx context.Context, completed []scanInfo, check func(string, bool, string)) {
	var pending int
	for range 120 {
		out, _, code := s.cli(ctx, nil, s.vaultEnv(), "", "vault", "status", "--json", "--no-check")
		var st struct {
			Spool struct {
				Pending int `json:"pending"`
				Corrupt int `json:"corrupt"`
			} `json:"spool"`
		}
		if code == 0 && json.Unmarshal([]byte(out), &st) == nil {
			pending = st.Spool.Pending
			if pending == 0 {
				break
			}
		}
		sleep(ctx, time.Second)
	}
	check("evidence spool drained", pending == 0, fmt.Sprintf("%d records still pending", pending))
	out, errb, code := s.cli(ctx, s.admin, nil, "", "evidence", "list", "--tenant", s.tenantID, "--json")
	var objs []struct {
		Key     string `json:"key"`
		Version string `json:"version_id"`
		SHA256  string `json:"sha256"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &objs) != nil {
		check("evidence listed", false, fmt.Sprintf("exit %d %s", code, errb))
		return
	}
	mc, err := s.minio.Admin()
	if err != nil {
		check("evidence in MinIO", false, err.Error())
		return
	}
	var bad []string
	for _, o := range objs {
		obj, err := mc.GetObject(ctx, s.bucket, o.Key, minio.GetObjectOptions{VersionID: o.Version})
		if err != nil {
			bad = append(bad, o.Key+": "+err.Error())
			continue
		}
		h := sha256.New()
		_, err = io.Copy(h, obj)
		obj.Close()
		if err != nil {
			bad = append(bad, o.Key+": "+err.Error())
			continue
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != o.SHA256 {
			bad = append(bad, fmt.Sprintf("%s: sha256 %s, audit log says %s", o.Key, got, o.SHA256))
		}
	}
	var missing []string
	for _, sc := range completed {
		found := false
		for _, o := range objs {
			if strings.Contains(o.Key, sc.ID) {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, sc.ID)
		}
	}
	check("every evidence object in MinIO with its recorded SHA-256", len(objs) > 0 && len(bad) == 0,
		fmt.Sprintf("%d objects read back and hashed; bad: %v", len(objs), bad))
	check("every completed scan has evidence", len(missing) == 0, fmt.Sprintf("%d completed scans; without evidence: %v", len(completed), missing))
}

// checkSIEM waits until the destination has delivered everything it was
// assigned, then checks that rsyslog wrote every sequence number.
func (s *soak) checkSIEM(ctx context.Context, check func(string, bool, string)) {
	type status struct {
		Name      string `json:"name"`
		LastSeq   int64  `json:"last_seq"`
		Delivered int64  `json:"delivered_seq"`
		Pending   int64  `json:"pending"`
		Backlog   int64  `json:"audit_backlog"`
	}
	var st status
	for range 180 {
		out, _, _ := s.cli(ctx, s.admin, nil, "", "siem", "status", "--json")
		var list []status
		if json.Unmarshal([]byte(out), &list) == nil {
			for _, d := range list {
				if d.Name == "soak" {
					st = d
				}
			}
			if st.LastSeq > 0 && st.Pending == 0 && st.Backlog == 0 && st.Delivered == st.LastSeq {
				break
			}
		}
		sleep(ctx, time.Second)
	}
	seqs, dups, err := s.syslog.seqs()
	if err != nil {
		check("SIEM received every event", false, err.Error())
		return
	}
	var gaps []int64
	for i := int64(1); i <= st.LastSeq; i++ {
		if !seqs[i] {
			gaps = append(gaps, i)
			if len(gaps) == 10 {
				break
			}
		}
	}
	check("SIEM received every event, no sequence gap", st.LastSeq > 0 && st.Delivered == st.LastSeq && len(gaps) == 0,
		fmt.Sprintf("destination assigned 1..%d, delivered %d, pending %d; rsyslog wrote %d distinct seqs (%d repeated after outages); missing: %v",
			st.LastSeq, st.Delivered, st.Pending, len(seqs), dups, gaps))
}

// writeReport writes the inner part of the Markdown report.
func (s *soak) writeReport(checks *bytes.Buffer, fails []string, setup, total time.Duration) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Soak run\n\n")
	fmt.Fprintf(&b, "Generated by `go test -tags soak ./appliance/soak` (`make soak-smoke` for 2 minutes) on %s.\n\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "Fault phase: %s, after %s of setup (init, TOTP logins, SIEM destination, users, scope key, scope); inner run %s in all.\n\n",
		s.dur, setup.Round(time.Second), total.Round(time.Second))
	fmt.Fprintf(&b, "Parts: `firewalliq serve` built from this tree, MinIO (%s, bucket with COMPLIANCE object lock), rsyslog (TCP, RFC 6587), all on the loopback of the lab's scanner namespace; the lab's target zone %s behind its nftables firewall.\n\n", s.minio.Addr, s.cidr)
	s.mu.Lock()
	fmt.Fprintf(&b, "## What it did\n\n- %d scans requested through the CLI/API (security lead and operator, 30-120 pps each, every request with a fresh step-up code)\n- %d SIGKILLs of the appliance, each followed by a restart\n- scan requests that failed (mostly while the appliance was down): %d\n",
		len(s.scans), s.kills, s.requestFails.Load())
	s.hostile.mu.Lock()
	kinds := make([]string, 0, len(s.hostile.kinds))
	for k, n := range s.hostile.kinds {
		kinds = append(kinds, fmt.Sprintf("%s x%d", k, n))
	}
	s.hostile.mu.Unlock()
	slices.Sort(kinds)
	fmt.Fprintf(&b, "- hostile API requests: %s\n\n", strings.Join(kinds, "; "))
	fmt.Fprintf(&b, "### Timeline\n\n```\n%s\n```\n\n", strings.Join(s.events, "\n"))
	s.mu.Unlock()
	fmt.Fprintf(&b, "## Checks (inside the scanner namespace)\n\n")
	b.Write(checks.Bytes())
	if len(fails) > 0 {
		fmt.Fprintf(&b, "\n%d inner check(s) failed.\n", len(fails))
	}
	if err := os.WriteFile(filepath.Join(s.work, "report.md"), b.Bytes(), 0o644); err != nil {
		s.t.Error(err)
	}
}

// seqRE finds the destination sequence number in the structured data of a
// message as rsyslog wrote it.
var seqRE = regexp.MustCompile(`^<\d+>1 \S+ \S+ firewalliq - \S+ \[fiq@32473 appliance="(?:[^"\\]|\\.)*" tenant="(?:[^"\\]|\\.)*" seq="(\d+)"`)
