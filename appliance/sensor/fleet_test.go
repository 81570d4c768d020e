package sensor_test

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"firewalliq/appliance"
	"firewalliq/appliance/internal/apptest"
	"firewalliq/appliance/keyring"
	"firewalliq/appliance/sensor"
	"firewalliq/audit"
	"firewalliq/probe/job"
	"firewalliq/probe/keys"
	"firewalliq/probe/runner"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// fleet is a console (a real appliance from apptest) with its embedded
// NATS server on 127.0.0.1, an HTTPS enrolment endpoint serving
// sensor.EnrollHandler with the console certificate, and a trusted scope
// signer.
type fleet struct {
	*apptest.Fixture
	Svc       *sensor.Service
	EnrollURL string
	CertSHA   string
	ScopeKey  ed25519.PrivateKey
	JobKey    ed25519.PrivateKey
	Listen    string
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	listen := freePort(t)
	f := apptest.New(t, func(c *appliance.Config) { c.Sensors.Listen = listen })
	fl := &fleet{Fixture: f, Svc: f.App.Sensors, Listen: listen}
	_, priv, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	fl.ScopeKey = priv
	// The tenant's security lead registers the scope-signing key (step-up).
	pemPub, err := keys.MarshalPublic(priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	lead := f.Users["security_lead"]
	if _, err := f.App.ScopeKeys.Add(f.Ctx, lead.P, "", "lead key", pemPub, f.Code(lead)); err != nil {
		t.Fatal(err)
	}
	if fl.JobKey, err = f.App.Keys.Signer(keyring.Job); err != nil {
		t.Fatal(err)
	}
	if fl.CertSHA, err = keyring.CertFingerprint(f.App.Keys.CertFile); err != nil {
		t.Fatal(err)
	}
	if err := fl.Svc.Start(f.Ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fl.Svc.Stop)
	cert, err := f.App.Keys.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(sensor.EnrollHandler(fl.Svc))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	fl.EnrollURL = srv.URL
	return fl
}

// enrol creates a token as the tenant's admin and enrols a sensor in a
// fresh state directory.
func (fl *fleet) enrol(t *testing.T, admin, name string) (sensor.Credentials, string) {
	t.Helper()
	u := fl.Users[admin]
	tok, err := fl.Svc.CreateToken(fl.Ctx, u.P, "", name, "vantage-"+name, fl.Code(u))
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	dir := filepath.Join(t.TempDir(), name)
	c, err := sensor.Enroll(fl.Ctx, sensor.EnrollOptions{Console: fl.EnrollURL, Token: tok.Secret, CertSHA256: fl.CertSHA, Dir: dir, Version: "test"})
	if err != nil {
		t.Fatalf("enrol: %v", err)
	}
	return c, dir
}

// agent runs a sensor agent until the test ends; the returned channel
// gets Run's result.
func startAgent(t *testing.T, dir string) (*sensor.Agent, <-chan error, context.CancelFunc) {
	t.Helper()
	return startAgentAt(t, dir, nil)
}

// startAgentAt is startAgent with the agent's clock set to now (nil: the
// wall clock); a test whose sensor checks a job's validity passes the
// console's test clock.
func startAgentAt(t *testing.T, dir string, now func() time.Time) (*sensor.Agent, <-chan error, context.CancelFunc) {
	t.Helper()
	a := &sensor.Agent{Dir: dir, Version: "test", NoRaw: true, Heartbeat: 200 * time.Millisecond, Now: now}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	stopped := make(chan struct{})
	go func() { defer close(stopped); done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-stopped:
		case <-time.After(10 * time.Second):
			t.Error("agent did not stop within 10s")
		}
	})
	return a, done, cancel
}

// listener accepts and closes connections on 127.0.0.1 and counts them.
func listen(t *testing.T) (uint16, *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return uint16(l.Addr().(*net.TCPAddr).Port), &n
}

// signJob signs a loopback tcp-connect job for the sensor with the
// console's job key; the scope names the tenant by id.
func (fl *fleet) signJob(t *testing.T, tenant, vantage string, ports []uint16, rate int, targets ...string) []byte {
	t.Helper()
	prof, err := safety.Load()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	signedScope, err := scope.Sign(scope.Document{
		ID: "sc-lo", Tenant: tenant, Name: "loopback", Environment: scope.EnvNonProduction,
		CIDRs: []string{"127.0.0.0/24"}, Ports: "tcp:1-65535", Probes: []safety.Kind{safety.KindTCPConnect},
		NotBefore: now.Add(-time.Hour).Truncate(time.Second), NotAfter: now.Add(time.Hour).Truncate(time.Second), MaxPPS: 1000,
	}, fl.ScopeKey)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := scope.Verify(signedScope, fl.ScopeKey.Public().(ed25519.PublicKey), now, prof)
	if err != nil {
		t.Fatal(err)
	}
	var ps []scope.Port
	for _, p := range ports {
		ps = append(ps, scope.Port{Proto: "tcp", Number: p})
	}
	slices.SortFunc(ps, func(a, b scope.Port) int { return int(a.Number) - int(b.Number) })
	ps = slices.Compact(ps)
	if targets == nil {
		targets = []string{"127.0.0.1"}
	}
	j := job.Job{
		ID: "job-" + strconv.FormatInt(now.UnixNano(), 36), ScanID: "scan-" + strconv.FormatInt(now.UnixNano(), 36),
		Request: job.Request{
			ID: "req-1", Tenant: tenant, Requester: "u-1", ScopeSHA256: sc.SHA256(), Targets: targets,
			Ports: scope.FormatPorts(ps), Probes: []safety.Kind{safety.KindTCPConnect}, Rate: rate, Vantage: vantage,
		},
		Scope: signedScope, Profile: job.ProfileRef{ID: prof.ID, SHA256: prof.SHA256()},
		IssuedAt: now.Add(-time.Minute).Truncate(time.Second), NotBefore: now.Add(-time.Minute).Truncate(time.Second),
		NotAfter: now.Add(time.Hour).Truncate(time.Second), Seed: 7, BatchTargets: 1,
	}
	b, err := job.Sign(j, fl.JobKey)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// collect reads a stream to its end within limit and checks the contract:
// seq 1, 2, 3 ... without gaps or repeats, one final event, then io.EOF.
func collect(t *testing.T, s runner.Stream, limit time.Duration) []runner.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var evs []runner.Event
	for {
		ev, err := s.Recv(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("recv after %d events: %v", len(evs), err)
		}
		if want := uint64(len(evs)) + 1; ev.Seq != want {
			t.Fatalf("event %d has seq %d", want, ev.Seq)
		}
		evs = append(evs, ev)
	}
	if len(evs) == 0 {
		t.Fatal("no events")
	}
	if last := evs[len(evs)-1].Type; last != runner.TypeDone && last != runner.TypeRefused {
		t.Fatalf("stream ended with %q", last)
	}
	return evs
}

func results(evs []runner.Event) map[string]int {
	out := map[string]int{}
	for _, ev := range evs {
		if ev.Type == runner.TypeResult {
			out[ev.Result.Target+":"+strconv.Itoa(int(ev.Result.Port))]++
		}
	}
	return out
}

func waitFor(t *testing.T, what string, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEnrolRunJob: a sensor enrols over HTTPS with a one-time token, runs
// a job from the console against 127.0.0.1 listeners, and every result
// arrives exactly once; the sensor's state shows up in List.
func TestEnrolRunJob(t *testing.T) {
	fl := newFleet(t)
	creds, dir := fl.enrol(t, "admin", "edge-1")
	if creds.Tenant != fl.Tenant || creds.CertSHA256 != fl.CertSHA || len(creds.JobKey) != ed25519.PublicKeySize {
		t.Fatalf("credentials: %+v", creds)
	}
	agent, _, _ := startAgent(t, dir)
	open, accepted := listen(t)
	closed := freePort(t)
	_, cp, _ := net.SplitHostPort(closed)
	closedPort, _ := strconv.Atoi(cp)

	s, err := fl.Svc.Runner().Run(fl.Ctx, runner.Request{Job: fl.signJob(t, fl.Tenant, creds.SensorID, []uint16{open, uint16(closedPort)}, 100)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs := collect(t, s, 30*time.Second)
	if evs[0].Type != runner.TypeAccepted || evs[0].Accepted.Runner != creds.SensorID {
		t.Fatalf("first event %+v", evs[0])
	}
	last := evs[len(evs)-1]
	if last.Type != runner.TypeDone || last.Done.Error != "" {
		t.Fatalf("last event %+v", last.Done)
	}
	rs := results(evs)
	if len(rs) != 2 || rs["127.0.0.1:"+strconv.Itoa(int(open))] != 1 || rs["127.0.0.1:"+cp] != 1 {
		t.Fatalf("results %v", rs)
	}
	for _, ev := range evs {
		if ev.Type == runner.TypeResult && ev.Result.Port == open && ev.Result.State != "open" {
			t.Errorf("open port reported %s", ev.Result.State)
		}
	}
	if accepted.Load() < 1 {
		t.Error("the listener saw no connection")
	}
	waitFor(t, "the spool to drain", 10*time.Second, func() bool { return agent.Pending() == 0 })

	// State: connected, last seen, version, profile hash, vantage.
	prof, _ := safety.Load()
	waitFor(t, "a heartbeat", 10*time.Second, func() bool {
		x, err := fl.Svc.Get(fl.Ctx, fl.Users["auditor"].P, "", creds.SensorID)
		return err == nil && !x.LastSeen.IsZero() && x.ProfileSHA256 == prof.SHA256()
	})
	list, err := fl.Svc.List(fl.Ctx, fl.Users["operator"].P, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || !list[0].Connected || list[0].Vantage != "vantage-edge-1" || list[0].Version != "test" || list[0].State != "active" {
		t.Fatalf("list %+v", list)
	}

	// Enrolment, token creation are audited.
	for _, a := range []audit.Action{audit.ActSensorTokenCreate, audit.ActSensorEnroll} {
		if es := fl.Entries(0, a); len(es) != 1 || es[0].Tenant != fl.Tenant {
			t.Errorf("%s entries: %+v", a, es)
		}
	}
}

// TestTokenOnce: a token enrols one sensor; a second use, an unknown token
// and a wrong pin are refused, and refusals are audited.
func TestTokenOnce(t *testing.T) {
	fl := newFleet(t)
	u := fl.Users["admin"]
	// Without a step-up code the call answers with a challenge.
	if _, err := fl.Svc.CreateToken(fl.Ctx, u.P, "", "s", "v", ""); err == nil {
		t.Fatal("token without step-up")
	}
	// Operators may not create tokens.
	if _, err := fl.Svc.CreateToken(fl.Ctx, fl.Users["operator"].P, "", "s", "v", fl.Code(fl.Users["operator"])); err == nil {
		t.Fatal("operator created a token")
	}
	tok, err := fl.Svc.CreateToken(fl.Ctx, u.P, "", "s1", "dmz", fl.Code(u))
	if err != nil {
		t.Fatal(err)
	}
	before := fl.Head()
	opts := sensor.EnrollOptions{Console: fl.EnrollURL, Token: tok.Secret, CertSHA256: fl.CertSHA, Dir: t.TempDir(), Version: "t"}
	bad := opts
	bad.CertSHA256 = strings.Repeat("ab", 32)
	if _, err := sensor.Enroll(fl.Ctx, bad); !errors.Is(err, sensor.ErrPin) && !strings.Contains(err.Error(), "pinned") {
		t.Fatalf("wrong pin: %v", err)
	}
	if _, err := sensor.Enroll(fl.Ctx, opts); err != nil {
		t.Fatal(err)
	}
	again := opts
	again.Dir = t.TempDir()
	if _, err := sensor.Enroll(fl.Ctx, again); !errors.Is(err, sensor.ErrToken) {
		t.Fatalf("second use: %v", err)
	}
	again.Token = "fiqst_nope"
	if _, err := sensor.Enroll(fl.Ctx, again); !errors.Is(err, sensor.ErrToken) {
		t.Fatalf("unknown token: %v", err)
	}
	if _, err := sensor.Enroll(fl.Ctx, opts); !errors.Is(err, sensor.ErrEnrolled) {
		t.Fatalf("enrolled directory: %v", err)
	}
	if n := len(fl.Entries(before, audit.ActAccessDenied)); n != 2 {
		t.Errorf("%d access.denied entries for two bad tokens", n)
	}
	if n := len(fl.Entries(before, audit.ActSensorEnroll)); n != 1 {
		t.Errorf("%d sensor.enroll entries", n)
	}
}

// TestTamperedJobRefused: a job altered on the wire is refused by the
// sensor with the signature code, and nothing is sent.
func TestTamperedJobRefused(t *testing.T) {
	fl := newFleet(t)
	creds, dir := fl.enrol(t, "admin", "edge-1")
	startAgent(t, dir)
	open, accepted := listen(t)
	rr := fl.Svc.Runner()
	signed := fl.signJob(t, fl.Tenant, creds.SensorID, []uint16{open}, 100)
	tests := []struct {
		name  string
		alter func(d *sensor.Dispatch) []byte
		code  string
	}{
		{"rate raised in the job", func(d *sensor.Dispatch) []byte {
			d.Request.Job = []byte(strings.Replace(string(d.Request.Job), `"rate":100`, `"rate":101`, 1))
			b, _ := json.Marshal(d)
			return b
		}, "signature"},
		{"trust bundle swapped for a forged key", func(d *sensor.Dispatch) []byte {
			var st map[string][]byte
			_ = json.Unmarshal(d.Trust, &st)
			st["sig"][0] ^= 1
			d.Trust, _ = json.Marshal(st)
			b, _ := json.Marshal(d)
			return b
		}, "scope-untrusted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := rr.BuildDispatch(fl.Ctx, runner.Request{Job: signed})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(d.Request.Job), `"rate":100`) {
				t.Fatalf("job encoding changed: %s", d.Request.Job)
			}
			s, err := rr.Publish(fl.Ctx, creds.SensorID, d, tc.alter(&d))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			evs := collect(t, s, 20*time.Second)
			if len(evs) != 1 || evs[0].Type != runner.TypeRefused || evs[0].Refused.Code != tc.code {
				t.Fatalf("events %+v (refusal %+v)", evs, evs[0].Refused)
			}
		})
	}
	if n := accepted.Load(); n != 0 {
		t.Fatalf("a refused job sent %d connections", n)
	}
}

// TestRevokedSensorCannotConnect: revocation (with step-up, audited)
// closes the sensor's connection at once, its agent stops with
// ErrRefused, and its credentials are refused from then on.
func TestRevokedSensorCannotConnect(t *testing.T) {
	fl := newFleet(t)
	creds, dir := fl.enrol(t, "admin", "edge-1")
	_, done, _ := startAgent(t, dir)
	waitFor(t, "the sensor to connect", 10*time.Second, func() bool {
		x, err := fl.Svc.Get(fl.Ctx, fl.Users["admin"].P, "", creds.SensorID)
		return err == nil && x.Connected
	})
	u := fl.Users["admin"]
	if _, err := fl.Svc.Revoke(fl.Ctx, u.P, "", creds.SensorID, ""); err == nil {
		t.Fatal("revoked without step-up")
	}
	// Another tenant's admin cannot see or revoke it.
	o := fl.Users["other_admin"]
	if _, err := fl.Svc.Revoke(fl.Ctx, o.P, "", creds.SensorID, fl.Code(o)); !errors.Is(err, sensor.ErrNotFound) {
		t.Fatalf("other tenant's revoke: %v", err)
	}
	x, err := fl.Svc.Revoke(fl.Ctx, u.P, "", creds.SensorID, fl.Code(u))
	if err != nil {
		t.Fatal(err)
	}
	if x.State != "revoked" {
		t.Fatalf("state %s", x.State)
	}
	select {
	case err := <-done:
		if !errors.Is(err, sensor.ErrRefused) {
			t.Fatalf("agent ended with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("agent still running 15s after revocation")
	}
	kp, err := nkeys.FromSeed([]byte(creds.Seed))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	_, err = nats.Connect(creds.NATSURL, nats.Secure(sensor.PinnedTLS(creds.CertSHA256)), nats.Nkey(pub, kp.Sign), nats.NoReconnect())
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("revoked credentials connected: %v", err)
	}
	if es := fl.Entries(0, audit.ActSensorRevoke); len(es) != 1 {
		t.Fatalf("revoke entries %+v", es)
	}
	// And the console no longer dispatches to it.
	if _, err := fl.Svc.Runner().Run(fl.Ctx, runner.Request{Job: fl.signJob(t, fl.Tenant, creds.SensorID, []uint16{1}, 10)}); !errors.Is(err, sensor.ErrRevoked) {
		t.Fatalf("dispatch to a revoked sensor: %v", err)
	}
}

// TestTenantIsolation: a sensor of tenant A can subscribe to nothing but
// its own inbox and cancel subject, cannot read another sensor's jobs,
// and never sees tenant B's subjects (B is another NATS account).
func TestTenantIsolation(t *testing.T) {
	fl := newFleet(t)
	a, _ := fl.enrol(t, "admin", "a-1")
	b, _ := fl.enrol(t, "other_admin", "b-1")
	if a.Tenant == b.Tenant {
		t.Fatal("same tenant")
	}
	kp, _ := nkeys.FromSeed([]byte(a.Seed))
	pub, _ := kp.PublicKey()
	// Without TLS the server refuses the connection.
	plain := strings.Replace(a.NATSURL, "tls://", "nats://", 1)
	if c, err := nats.Connect(plain, nats.Nkey(pub, kp.Sign), nats.NoReconnect()); err == nil {
		c.Close()
		t.Fatal("a plaintext connection was accepted")
	}
	var mu sync.Mutex
	var violations []string
	nc, err := nats.Connect(a.NATSURL, nats.Secure(sensor.PinnedTLS(a.CertSHA256)), nats.Nkey(pub, kp.Sign),
		nats.CustomInboxPrefix(sensor.InboxPrefix(a.SensorID)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			mu.Lock()
			violations = append(violations, err.Error())
			mu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var got atomic.Int64
	for _, subj := range []string{">", "fiq.>", sensor.JobSubject(b.SensorID), sensor.ResultSubject(b.SensorID), "$JS.API.>", sensor.InboxPrefix(b.SensorID) + ".>"} {
		if _, err := nc.Subscribe(subj, func(*nats.Msg) { got.Add(1) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// Reading B's job consumer is refused (publish permission).
	if err := nc.Publish("$JS.API.CONSUMER.MSG.NEXT.FIQ_JOBS."+b.SensorID, []byte(`{"batch":1}`)); err != nil {
		t.Fatal(err)
	}
	// B's sensor gets a job: A sees nothing of it.
	if _, err := fl.Svc.Runner().Run(fl.Ctx, runner.Request{Job: fl.signJob(t, fl.Other, b.SensorID, []uint16{1}, 10)}); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	time.Sleep(300 * time.Millisecond)
	// The server's errors reach the handler asynchronously (nats.go's
	// callback goroutine): wait for them rather than assume 300 ms is enough.
	violated := func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.ToLower(strings.Join(violations, "\n"))
	}
	for deadline := time.Now().Add(10 * time.Second); strings.Count(violated(), "permissions violation") < 7 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if n := got.Load(); n != 0 {
		t.Fatalf("sensor A received %d messages", n)
	}
	if joined := violated(); strings.Count(joined, "permissions violation") < 7 {
		t.Fatalf("want 7 permission violations, got:\n%s", joined)
	}
}

// TestPartitionLosesNothing: while a job runs, the sensor's connection is
// cut twice and the console's NATS server is stopped and restarted; every
// result arrives, once, in order.
func TestPartitionLosesNothing(t *testing.T) {
	fl := newFleet(t)
	creds, dir := fl.enrol(t, "admin", "edge-1")
	agent, _, _ := startAgent(t, dir)
	open, _ := listen(t)
	var ports []uint16
	for p := uint16(0); len(ports) < 5; p++ {
		if port := 20000 + p; port != open {
			ports = append(ports, port)
		}
	}
	ports = append(ports, open)
	// 16 targets of one batch each, 6 ports: results arrive batch by
	// batch over about 3 s, so the cuts fall between and inside batches.
	const targets = 16
	s, err := fl.Svc.Runner().Run(fl.Ctx, runner.Request{Job: fl.signJob(t, fl.Tenant, creds.SensorID, ports, 30, "127.0.0.16/28")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var evs []runner.Event
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cuts := 0
	for {
		ev, err := s.Recv(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("recv after %d events: %v", len(evs), err)
		}
		if want := uint64(len(evs)) + 1; ev.Seq != want {
			t.Fatalf("event %d has seq %d", want, ev.Seq)
		}
		evs = append(evs, ev)
		n := len(results(evs))
		if testing.Verbose() && ev.Type == runner.TypeResult && n%20 == 0 {
			t.Logf("%s: %d results", time.Now().Format("15:04:05.000"), n)
		}
		switch {
		case cuts == 0 && n >= 20, cuts == 1 && n >= 40:
			// After the first cut the sensor may still be reconnecting.
			waitFor(t, "a connection to cut", 10*time.Second, func() bool { return fl.Svc.Kick(creds.SensorID) == 1 })
			t.Logf("%s: cut %d", time.Now().Format("15:04:05.000"), cuts)
			cuts++
		case cuts == 2 && n >= 60:
			fl.Svc.Stop()
			time.Sleep(700 * time.Millisecond) // the scan goes on; results wait in the spool
			if err := fl.Svc.Start(fl.Ctx); err != nil {
				t.Fatal(err)
			}
			cuts++
		}
	}
	if cuts != 3 {
		t.Fatalf("only %d cuts happened", cuts)
	}
	rs := results(evs)
	if len(rs) != targets*len(ports) {
		t.Fatalf("%d distinct results, want %d", len(rs), targets*len(ports))
	}
	for k, n := range rs {
		if n != 1 {
			t.Fatalf("%s reported %d times", k, n)
		}
	}
	if last := evs[len(evs)-1]; last.Type != runner.TypeDone || last.Done.Error != "" {
		t.Fatalf("last %+v", last)
	}
	waitFor(t, "the spool to drain", 10*time.Second, func() bool { return agent.Pending() == 0 })
}

// TestSilentSensorAlert: a sensor that stops sending heartbeats gets one
// sensor.silent alert; its next heartbeat clears it.
func TestSilentSensorAlert(t *testing.T) {
	fl := newFleet(t)
	creds, dir := fl.enrol(t, "admin", "edge-1")
	_, done, stop := startAgent(t, dir)
	waitFor(t, "a heartbeat", 10*time.Second, func() bool {
		x, err := fl.Svc.Get(fl.Ctx, fl.Users["admin"].P, "", creds.SensorID)
		return err == nil && !x.LastSeen.IsZero()
	})
	if ids, err := fl.Svc.CheckSilent(fl.Ctx); err != nil || len(ids) != 0 {
		t.Fatalf("fresh sensor silent: %v %v", ids, err)
	}
	stop()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not stop within 10s")
	}
	// A heartbeat the agent sent just before it stopped may still be on
	// its way to the console; handled after the clock moves on, it would
	// end the silence. The console handles a sensor's heartbeats in
	// order: once a last one, sent here after the agent's connection
	// closed, shows, every earlier one has been handled.
	kp, _ := nkeys.FromSeed([]byte(creds.Seed))
	pub, _ := kp.PublicKey()
	nc, err := nats.Connect(creds.NATSURL, nats.Secure(sensor.PinnedTLS(creds.CertSHA256)), nats.Nkey(pub, kp.Sign),
		nats.CustomInboxPrefix(sensor.InboxPrefix(creds.SensorID)))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(sensor.HeartbeatSubject(creds.SensorID), []byte(`{"version":"last","profile_sha256":""}`)); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	waitFor(t, "the last heartbeat", 10*time.Second, func() bool {
		x, err := fl.Svc.Get(fl.Ctx, fl.Users["admin"].P, "", creds.SensorID)
		return err == nil && x.Version == "last"
	})
	fl.Clock.Advance(sensor.DefaultSilentAfter + time.Second)
	ids, err := fl.Svc.CheckSilent(fl.Ctx)
	if err != nil || len(ids) != 1 || ids[0] != creds.SensorID {
		t.Fatalf("silent: %v %v", ids, err)
	}
	if ids, _ := fl.Svc.CheckSilent(fl.Ctx); len(ids) != 0 {
		t.Fatalf("alerted twice: %v", ids)
	}
	es := fl.Entries(0, audit.ActSensorSilent)
	if len(es) != 1 || es[0].Object != "sensor:"+creds.SensorID || es[0].Tenant != fl.Tenant {
		t.Fatalf("entries %+v", es)
	}
	x, _ := fl.Svc.Get(fl.Ctx, fl.Users["admin"].P, "", creds.SensorID)
	if !x.Silent {
		t.Fatal("not marked silent")
	}
}

// TestSinkAfterConsoleRestart: when the console forgets a run mid-scan (a
// restart of the console process), the rest of the run's events reach the
// Sink; together with what the stream had delivered, every event arrives
// exactly once.
func TestSinkAfterConsoleRestart(t *testing.T) {
	fl := newFleet(t)
	creds, dir := fl.enrol(t, "admin", "edge-1")
	startAgent(t, dir)
	var mu sync.Mutex
	sunk := map[uint64]int{}
	var final bool
	fl.Svc.SetSink(sensor.SinkFunc(func(_ context.Context, batch []sensor.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		for _, d := range batch {
			if d.Sensor != creds.SensorID || d.Tenant != fl.Tenant {
				t.Errorf("delivery from %s/%s", d.Tenant, d.Sensor)
			}
			sunk[d.Event.Seq]++
			final = final || d.Event.Type == runner.TypeDone
		}
		return nil
	}))
	s, err := fl.Svc.Runner().Run(fl.Ctx, runner.Request{Job: fl.signJob(t, fl.Tenant, creds.SensorID, []uint16{20001, 20002, 20003, 20004}, 30, "127.0.0.16/28")})
	if err != nil {
		t.Fatal(err)
	}
	streamed := map[uint64]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		ev, err := s.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		streamed[ev.Seq]++
		if ev.Type == runner.TypeResult {
			break
		}
	}
	fl.Svc.ForgetRuns()
	// What the stream had buffered is still readable.
	for {
		c, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		ev, err := s.Recv(c)
		cancel()
		if err != nil {
			break
		}
		streamed[ev.Seq]++
	}
	waitFor(t, "the final event at the sink", 30*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return final })
	mu.Lock()
	defer mu.Unlock()
	var last uint64
	for seq, n := range sunk {
		if n != 1 || streamed[seq] != 0 {
			t.Errorf("seq %d: %d times at the sink, %d in the stream", seq, n, streamed[seq])
		}
		last = max(last, seq)
	}
	results := 0
	for seq := uint64(1); seq <= last; seq++ {
		if sunk[seq]+streamed[seq] != 1 {
			t.Fatalf("seq %d arrived %d times (of %d)", seq, sunk[seq]+streamed[seq], last)
		}
		results++
	}
	if len(sunk) == 0 || len(streamed) == 0 {
		t.Fatalf("stream %d, sink %d: the restart did not split the run", len(streamed), len(sunk))
	}
	t.Logf("%d events: %d through the stream, %d through the sink", results, len(streamed), len(sunk))
}

// TestSensorLost: a run whose sensor sends nothing past the job's validity
// fails with ErrSensorLost (the sensor here never runs).
func TestSensorLost(t *testing.T) {
	fl := newFleet(t)
	creds, _ := fl.enrol(t, "admin", "edge-1")
	rr := fl.Svc.Runner()
	rr.IdleTimeout = time.Second
	s, err := rr.Run(fl.Ctx, runner.Request{Job: fl.signJob(t, fl.Tenant, creds.SensorID, []uint16{20001}, 10)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fl.Clock.Advance(72 * time.Hour) // past the job's not_after (one hour)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Recv(ctx); !errors.Is(err, sensor.ErrSensorLost) {
		t.Fatalf("recv: %v", err)
	}
}

// TestCloseCancelsRemoteRun: closing a remote run's stream makes the
// sensor cancel the run; its final event (code "cancelled") reaches the
// Sink long before the scan would have ended.
func TestCloseCancelsRemoteRun(t *testing.T) {
	fl := newFleet(t)
	creds, dir := fl.enrol(t, "admin", "edge-1")
	startAgent(t, dir)
	done := make(chan runner.Event, 1)
	fl.Svc.SetSink(sensor.SinkFunc(func(_ context.Context, batch []sensor.Delivery) error {
		for _, d := range batch {
			if d.Event.Type == runner.TypeDone {
				done <- d.Event
			}
		}
		return nil
	}))
	// 16 targets x 20 ports at 10 pps: 32 s if it ran to the end.
	var ports []uint16
	for p := uint16(20001); p <= 20020; p++ {
		ports = append(ports, p)
	}
	s, err := fl.Svc.Runner().Run(fl.Ctx, runner.Request{Job: fl.signJob(t, fl.Tenant, creds.SensorID, ports, 10, "127.0.0.16/28")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ev, err := s.Recv(ctx)
	if err != nil || ev.Type != runner.TypeAccepted {
		t.Fatalf("first event %+v, %v", ev, err)
	}
	start := time.Now()
	s.Close()
	select {
	case ev := <-done:
		if ev.Done.Code != "cancelled" {
			t.Fatalf("final event %+v", ev.Done)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Fatalf("cancelled after %s", d)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("no final event at the sink")
	}
}

// TestConsoleRestartCancelsStaleRun: after a console restart (the
// embedded server stopped and started again, the table of live runs
// lost), a run dispatched before it does not keep running on the sensor.
// When the console dispatches the job again (recovery's resume), the old
// run stops and the new one runs; when it dispatches nothing (recovery
// failed the job), the old run stops as soon as its events reach the
// restarted console; a dispatch still waiting for a sensor that was away
// is deleted by the new dispatch of its job and never runs.
func TestConsoleRestartCancelsStaleRun(t *testing.T) {
	tests := []struct {
		name string
		// away: the sensor starts only after the restart, so the first
		// dispatch is still waiting in the stream.
		away, reissue bool
	}{
		{name: "job dispatched again", reissue: true},
		{name: "job failed", reissue: false},
		{name: "dispatch still queued", away: true, reissue: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fl := newFleet(t)
			creds, dir := fl.enrol(t, "admin", "edge-1")
			if !tt.away {
				startAgent(t, dir)
			}
			var mu sync.Mutex
			runs := map[string][]runner.Event{} // run -> events at the sink
			fl.Svc.SetSink(sensor.SinkFunc(func(_ context.Context, batch []sensor.Delivery) error {
				mu.Lock()
				defer mu.Unlock()
				for _, d := range batch {
					runs[d.Run] = append(runs[d.Run], d.Event)
				}
				return nil
			}))
			// 16 targets x 20 ports at 10 packets/s: well over a minute if
			// it ran to its end.
			var ports []uint16
			for p := uint16(20001); p <= 20020; p++ {
				ports = append(ports, p)
			}
			signed := fl.signJob(t, fl.Tenant, creds.SensorID, ports, 10, "127.0.0.16/28")
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			s1, err := fl.Svc.Runner().Run(fl.Ctx, runner.Request{Job: signed})
			if err != nil {
				t.Fatal(err)
			}
			if !tt.away {
				// The first run is under way on the sensor.
				if ev, err := s1.Recv(ctx); err != nil || ev.Type != runner.TypeAccepted {
					t.Fatalf("first run's first event %+v, %v", ev, err)
				}
			}
			// The console restarts.
			fl.Svc.Stop()
			fl.Svc.ForgetRuns()
			if err := fl.Svc.Start(fl.Ctx); err != nil {
				t.Fatal(err)
			}
			restarted := time.Now()
			if tt.reissue {
				s2, err := fl.Svc.Runner().Run(fl.Ctx, runner.Request{Job: signed})
				if err != nil {
					t.Fatal(err)
				}
				defer s2.Close()
				if tt.away {
					startAgent(t, dir)
				}
				// The sensor serves one run at a time: the new run's
				// acceptance means the old one is over.
				ev, err := s2.Recv(ctx)
				if err != nil || ev.Type != runner.TypeAccepted {
					t.Fatalf("new run's first event %+v, %v", ev, err)
				}
			}
			if tt.away {
				// The old dispatch was deleted: nothing of it ever ran.
				time.Sleep(2 * time.Second)
				mu.Lock()
				defer mu.Unlock()
				if len(runs) != 0 {
					t.Fatalf("events of the stale dispatch at the sink: %v", runs)
				}
				return
			}
			waitFor(t, "the old run's final event", 30*time.Second, func() bool {
				mu.Lock()
				defer mu.Unlock()
				for _, evs := range runs {
					if last := evs[len(evs)-1]; last.Type == runner.TypeDone {
						return true
					}
				}
				return false
			})
			mu.Lock()
			defer mu.Unlock()
			if len(runs) != 1 {
				t.Fatalf("%d runs at the sink, want the old one", len(runs))
			}
			for run, evs := range runs {
				last := evs[len(evs)-1]
				if last.Done.Code != "cancelled" {
					t.Fatalf("old run %s ended %+v, want cancelled", run, last.Done)
				}
				t.Logf("old run %s cancelled %s after the restart, %d events at the sink", run, time.Since(restarted).Round(time.Millisecond), len(evs))
			}
		})
	}
}
