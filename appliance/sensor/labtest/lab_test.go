package labtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"firewalliq/appliance"
	"firewalliq/appliance/cli"
	"firewalliq/appliance/internal/apptest"
	"firewalliq/appliance/keyring"
	"firewalliq/appliance/scan"
	"firewalliq/appliance/sensor"
	"firewalliq/audit"
	"firewalliq/probe/keys"
	"firewalliq/probe/lab"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// childEnv holds the CLI arguments (a JSON array) of a sensor process:
// when set, the test binary runs TestSensorChild only.
const childEnv = "FIQ_SENSORLAB_CHILD"

// TestSensorChild is a sensor host's firewalliq command, run by
// TestTwoSensorsTwoZones in a child process inside a lab namespace: the
// real CLI (cli.Run) with the arguments in $FIQ_SENSORLAB_CHILD, until it
// ends, SIGTERM, or three minutes.
func TestSensorChild(t *testing.T) {
	v := os.Getenv(childEnv)
	if v == "" {
		t.Skip("runs only as a sensor process of TestTwoSensorsTwoZones")
	}
	var args []string
	if err := json.Unmarshal([]byte(v), &args); err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if code := cli.Run(ctx, cli.OSEnv(), args); code != cli.ExitOK {
		t.Fatalf("firewalliq %s: exit %d", strings.Join(args, " "), code)
	}
}

// sensorHost is one sensor of the test: its zone's namespace, state
// directory and process.
type sensorHost struct {
	name, vantage, ns string
	dir, id           string
	log               *lockedBuffer
	cmd               *exec.Cmd
	exited            chan struct{} // closed when the process ended
	err               error         // its exit, once exited is closed
}

// lockedBuffer collects a child's output while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// command is the test binary re-executed as "firewalliq args..." inside
// namespace ns.
func command(t *testing.T, l *lab.Lab, ctx context.Context, ns string, args []string, env ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	a, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	cmd := l.Command(ctx, ns, exe, "-test.run=^TestSensorChild$", "-test.count=1", "-test.v")
	// A lab appliance, not a production one: the test binary carries the
	// development-signed profile.
	cmd.Env = append(append(os.Environ(), childEnv+"="+string(a), "FIQ_PRODUCTION=false"), env...)
	return cmd
}

// host returns host number n of the /24 p.
func host(p netip.Prefix, n byte) netip.Addr {
	a := p.Masked().Addr().As4()
	a[3] = n
	return netip.AddrFrom4(a)
}

// TestTwoSensorsTwoZones is issue 19's "done when" in the network lab: a
// console and two sensors in two zones, one outside the firewall (the
// lab's scanner namespace, whose packets meet the firewall's rules) and
// one in an internal segment (forwarded without them). Each sensor is
// enrolled and run through the real CLI in its own namespace and process,
// reaching the console's NATS listener in the management namespace; each
// scans the same target hosts through the console (scan service, signed
// job, NATS, the sensor's runner, results back). The results must be the
// lab's ground truth for each vantage point (the firewall's for the
// outside one, the listeners' alone for the internal one), so they
// differ exactly where the rules say, e.g. a dark host's SSH port is
// filtered from outside and open from inside; each scan is attributed to
// its sensor's vantage label, and each sensor's probes crossed only its
// own firewall leg.
func TestTwoSensorsTwoZones(t *testing.T) {
	l := lab.NewT(t, lab.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	in, err := l.AddInternal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mg, err := l.AddManagement(ctx, l.Scanner, in.Namespace)
	if err != nil {
		t.Fatal(err)
	}

	// None of it reaches the host's own namespace (this test's).
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	labNet := netip.MustParsePrefix("198.18.0.0/15")
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && labNet.Contains(p.Addr()) {
			t.Fatalf("the host's namespace has lab address %s", a)
		}
	}

	// The console. Its NATS listener and enrolment endpoint live in the
	// management namespace; the rest stays in this process.
	natsAddr := net.JoinHostPort(mg.Addr.String(), "4222")
	f := apptest.New(t, func(c *appliance.Config) { c.Sensors.Listen = natsAddr })
	// The sensors check job validity on real time: the console's clock is
	// put a few minutes behind it (each step-up code moves it 30 s on).
	f.Clock.Advance(-time.Until(f.Clock.Now()) - 5*time.Minute)
	f.Clock.Flow()
	svc := f.App.Sensors
	svc.ListenWithin(func(start func() error) error { return lab.Do(mg.Namespace, start) })
	if err := svc.Start(f.Ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Stop)
	if got := svc.URL(); got != "tls://"+natsAddr {
		t.Fatalf("console NATS URL %q, want tls://%s", got, natsAddr)
	}
	cert, err := f.App.Keys.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	certSHA, err := keyring.CertFingerprint(f.App.Keys.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	if err := lab.Do(mg.Namespace, func() (err error) {
		ln, err = net.Listen("tcp4", net.JoinHostPort(mg.Addr.String(), "8443"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	enrol := httptest.NewUnstartedServer(sensor.EnrollHandler(svc))
	enrol.Listener.Close()
	enrol.Listener = ln
	enrol.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	enrol.StartTLS()
	t.Cleanup(enrol.Close)
	consoleURL := "https://" + net.JoinHostPort(mg.Addr.String(), "8443")

	// The tenant's scope-signing key and a scope over the target zone.
	_, scopeKey, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	pemPub, err := keys.MarshalPublic(scopeKey.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	lead := f.Users["security_lead"]
	if _, err := f.App.ScopeKeys.Add(f.Ctx, lead.P, "", "lead key", pemPub, f.Code(lead)); err != nil {
		t.Fatal(err)
	}
	ports := []uint16{22, 25, 80, 3306, 8443}
	now := f.Clock.Now()
	doc := scope.Document{ID: "zone", Tenant: "alpha", Name: "lab target zone", Environment: scope.EnvNonProduction,
		CIDRs: []string{l.Target.V4.String()}, Exclude: []string{}, Ports: "tcp:22,25,80,3306,8443",
		Probes: []safety.Kind{safety.KindTCPSyn}, NotBefore: now.Add(-time.Hour).Truncate(time.Second),
		NotAfter: now.Add(24 * time.Hour).Truncate(time.Second), MaxPPS: 500, SignerKeyID: keys.ID(scopeKey.Public().(ed25519.PublicKey))}
	signed, err := scope.Sign(doc, scopeKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.App.Scopes.Register(f.Ctx, lead.P, "", signed); err != nil {
		t.Fatal(err)
	}

	// Two sensors, enrolled and run through the CLI in their zones.
	sensors := []*sensorHost{
		{name: "edge", vantage: "outside-firewall", ns: l.Scanner},
		{name: "core", vantage: "internal-segment", ns: in.Namespace},
	}
	admin := f.Users["admin"]
	for _, s := range sensors {
		tok, err := svc.CreateToken(f.Ctx, admin.P, "", s.name, s.vantage, f.Code(admin))
		if err != nil {
			t.Fatal(err)
		}
		s.dir = filepath.Join(t.TempDir(), s.name)
		var out bytes.Buffer
		cmd := command(t, l, ctx, s.ns, []string{"sensor", "enroll", "--console", consoleURL, "--cert-sha256", certSHA, "--dir", s.dir, "--json"},
			"FIQ_SENSOR_TOKEN="+tok.Secret)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("sensor enroll in %s: %v\n%s", s.ns, err, out.String())
		}
		sc := bufio.NewScanner(&out)
		for sc.Scan() {
			var r struct {
				SensorID string `json:"sensor_id"`
				NATSURL  string `json:"nats_url"`
			}
			if strings.HasPrefix(sc.Text(), "{") && json.Unmarshal(sc.Bytes(), &r) == nil && r.SensorID != "" {
				s.id = r.SensorID
				if r.NATSURL != "tls://"+natsAddr {
					t.Errorf("sensor %s was told to dial %q, want tls://%s", s.name, r.NATSURL, natsAddr)
				}
			}
		}
		if s.id == "" {
			t.Fatalf("sensor enroll printed no sensor id:\n%s", out.String())
		}
		s.log = &lockedBuffer{}
		s.cmd = command(t, l, context.Background(), s.ns, []string{"sensor", "run", "--dir", s.dir})
		s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
		if err := s.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		s.exited = make(chan struct{})
		go func() { s.err = s.cmd.Wait(); close(s.exited) }()
		t.Cleanup(func() {
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.exited:
				if s.err != nil {
					t.Errorf("sensor %s: %v", s.name, s.err)
				}
			case <-time.After(10 * time.Second):
				_ = s.cmd.Process.Kill()
				<-s.exited
				t.Errorf("sensor %s did not stop within 10s of SIGTERM", s.name)
			}
			if t.Failed() {
				t.Logf("sensor %s (%s) output:\n%s", s.name, s.ns, s.log.String())
			}
		})
	}
	waitConnected(t, f, sensors)

	// Scans of the same hosts from both vantage points, at once.
	scanCtx, stopScans := context.WithCancel(f.Ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = f.App.Scans.Run(scanCtx) }()
	t.Cleanup(func() { stopScans(); wg.Wait() })
	targets := []netip.Addr{host(l.Target.V4, 20), host(l.Target.V4, 21), host(l.Target.V4, 110), host(l.Target.V4, 210)}
	var tstr []string
	for _, a := range targets {
		tstr = append(tstr, a.String())
	}
	legs := map[string]string{"edge": lab.FirewallScannerIf, "core": lab.InternalIf}
	before := map[string]uint64{}
	for name, dev := range legs {
		if before[name], err = l.InterfaceCounter(ctx, l.Firewall, dev, "rx_packets"); err != nil {
			t.Fatal(err)
		}
	}
	op := f.Users["operator"]
	mark := f.Head()
	ids := map[string]string{}
	for _, s := range sensors {
		sc, err := f.App.Scans.Request(f.Ctx, op.P, "", scan.ScanRequest{ScopeID: "zone", Targets: tstr, Rate: 200, Vantage: s.id}, f.Code(op))
		if err != nil {
			t.Fatal(err)
		}
		ids[s.name] = sc.ID
	}
	results := map[string]map[string]string{} // sensor -> "addr/port" -> state
	for _, s := range sensors {
		sc := waitScan(t, f, ids[s.name])
		if sc.State != scan.StateCompleted || sc.Job == nil {
			t.Fatalf("scan from %s: %s (%s)", s.name, sc.State, sc.Reason)
		}
		if sc.Job.Vantage != s.id || sc.Job.VantageLabel != s.vantage {
			t.Errorf("scan from %s attributed to %q (%q), want %s (%s)", s.name, sc.Job.Vantage, sc.Job.VantageLabel, s.id, s.vantage)
		}
		page, err := f.App.Scans.Results(f.Ctx, op.P, "", sc.ID, scan.ResultFilter{Limit: scan.MaxPageSize})
		if err != nil {
			t.Fatal(err)
		}
		results[s.name] = map[string]string{}
		for _, r := range page.Items {
			results[s.name][fmt.Sprintf("%s/%d", r.Target, r.Port)] = r.State
		}
		if len(page.Items) != len(targets)*len(ports) {
			t.Errorf("scan from %s stored %d results, want %d", s.name, len(page.Items), len(targets)*len(ports))
		}
	}
	for _, en := range f.Entries(mark, audit.ActScanComplete) {
		d := apptest.Details(t, en)
		for _, s := range sensors {
			if en.Object == "scan:"+ids[s.name] && (d["vantage"] != s.id || d["vantage_label"] != s.vantage) {
				t.Errorf("scan.complete of %s's scan: vantage %v (%v), want %s (%s)", s.name, d["vantage"], d["vantage_label"], s.id, s.vantage)
			}
		}
	}

	// The ground truth of each vantage point: through the firewall's rules
	// from outside, the listeners alone from the internal segment.
	truths := map[string]lab.Truth{"edge": l.Truth, "core": {Services: l.Truth.Services, Zones: l.Truth.Zones}}
	differ := 0
	for _, a := range targets {
		for _, p := range ports {
			key := fmt.Sprintf("%s/%d", a, p)
			for _, s := range sensors {
				want, ok := truths[s.name].Expect(a, lab.TCP, p)
				if !ok {
					t.Fatalf("no ground truth for %s", key)
				}
				if got := results[s.name][key]; got != string(want.State) {
					t.Errorf("%s from %s (%s): %q, want %q (rule %q)", key, s.name, s.vantage, got, want.State, want.Rule)
				}
			}
			if results["edge"][key] != results["core"][key] {
				differ++
			}
		}
	}
	dark := fmt.Sprintf("%s/22", host(l.Target.V4, 210))
	if results["edge"][dark] != string(lab.Filtered) || results["core"][dark] != string(lab.Open) {
		t.Errorf("%s: %q from outside, %q from inside; want filtered from outside (dark-hosts rule), open from inside",
			dark, results["edge"][dark], results["core"][dark])
	}
	t.Logf("%d of %d (host, port) pairs differ between the vantage points", differ, len(targets)*len(ports))

	// Each sensor's probes entered the firewall on its own leg only: the
	// console's traffic never crosses it.
	for name, dev := range legs {
		after, err := l.InterfaceCounter(ctx, l.Firewall, dev, "rx_packets")
		if err != nil {
			t.Fatal(err)
		}
		if n := after - before[name]; n < uint64(len(targets)*len(ports)) {
			t.Errorf("firewall leg %s (sensor %s) received %d packets during the scans, want at least %d probes", dev, name, n, len(targets)*len(ports))
		}
	}
}

// waitConnected waits (30 s at most) until every sensor has a live
// connection to the console.
func waitConnected(t *testing.T, f *apptest.Fixture, sensors []*sensorHost) {
	t.Helper()
	admin := f.Users["admin"]
	for range 300 {
		list, err := f.App.Sensors.List(f.Ctx, admin.P, "")
		if err != nil {
			t.Fatal(err)
		}
		up := 0
		for _, x := range list {
			for _, s := range sensors {
				if x.ID == s.id && x.Connected {
					up++
				}
			}
		}
		if up == len(sensors) {
			return
		}
		for _, s := range sensors {
			select {
			case <-s.exited:
				t.Fatalf("sensor %s exited: %v\n%s", s.name, s.err, s.log.String())
			default:
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the sensors did not connect to the console within 30s")
}

// waitScan polls a scan until it completes or fails (90 s at most).
func waitScan(t *testing.T, f *apptest.Fixture, id string) scan.Scan {
	t.Helper()
	op := f.Users["operator"]
	var sc scan.Scan
	for range 900 {
		var err error
		if sc, err = f.App.Scans.Get(f.Ctx, op.P, "", id); err != nil {
			t.Fatal(err)
		}
		if sc.State == scan.StateCompleted || sc.State == scan.StateFailed {
			return sc
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("scan %s is %s after 90s", id, sc.State)
	return sc
}
