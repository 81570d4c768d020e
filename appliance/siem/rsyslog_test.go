//go:build linux

package siem

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leodido/go-syslog/v4/rfc5424"

	"firewalliq/audit"
)

// rsyslogBin is Debian's rsyslogd, installed by scripts/deps.sh together
// with rsyslog-gnutls (the gtls stream driver).
const rsyslogBin = "/usr/sbin/rsyslogd"

// rsyslog is a private rsyslogd on loopback: a UDP, a TCP, a TLS (anonymous
// clients) and a TLS (client certificate required) input, each writing the
// raw messages it receives, one per line, to its own file.
type rsyslog struct {
	t                      *testing.T
	dir                    string
	UDP, TCP, TLS, TLSAuth string // host:port
	CA                     *testCA
	cmd                    *exec.Cmd
	log                    *syncBuffer
}

// syncBuffer collects rsyslogd's output; exec writes it from its own
// goroutines while a failing test may read it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func startRsyslog(t *testing.T) *rsyslog {
	t.Helper()
	if _, err := os.Stat(rsyslogBin); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("rsyslogd missing in CI (scripts/deps.sh installs it): %v", err)
		}
		t.Skipf("rsyslogd not installed (run scripts/deps.sh): %v", err)
	}
	dir := t.TempDir()
	// rsyslogd runs as root in CI and may drop nothing; keep its files in
	// a directory it can always write.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ca := newTestCA(t)
	cert, key := ca.issue(t, "localhost")
	for name, data := range map[string][]byte{"ca.pem": ca.CertPEM, "server.pem": cert, "server.key": key} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "work"), 0o700); err != nil {
		t.Fatal(err)
	}
	r := &rsyslog{t: t, dir: dir, CA: ca, log: &syncBuffer{}}
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("rsyslogd output:\n%s", r.log.String())
		}
	})
	// A port free a moment ago can be taken by another test process
	// before rsyslogd binds it (seen in CI: rsyslogd logged "Address
	// already in use" and the test talked to a stranger's listener): pick
	// new ports and start again, at most 5 times.
	for attempt := 1; ; attempt++ {
		r.UDP, r.TCP, r.TLS, r.TLSAuth = freePort(t, "udp"), freePort(t, "tcp"), freePort(t, "tcp"), freePort(t, "tcp")
		r.configure()
		err := r.startOnce()
		if err == nil && !r.bindFailed() {
			return r
		}
		r.stop()
		if err != nil && !r.bindFailed() {
			t.Fatal(err)
		}
		if attempt == 5 {
			t.Fatalf("rsyslogd could not bind its ports in 5 attempts:\n%s", r.log.String())
		}
		t.Logf("rsyslogd found a port taken (attempt %d); new ports", attempt)
		r.log = &syncBuffer{}
	}
}

// bindFailed reports whether rsyslogd could not bind one of its inputs.
// Its startup messages reach the log through a pipe: give them a moment.
func (r *rsyslog) bindFailed() bool {
	time.Sleep(100 * time.Millisecond)
	out := r.log.String()
	return strings.Contains(out, "Address already in use") || strings.Contains(out, "Could not create")
}

// configure writes rsyslog.conf for the ports in r.
func (r *rsyslog) configure() {
	r.t.Helper()
	dir := r.dir
	port := func(hp string) string { _, p, _ := net.SplitHostPort(hp); return p }
	conf := fmt.Sprintf(`
global(workDirectory="%[1]s/work" maxMessageSize="64k"
       defaultNetstreamDriverCAFile="%[1]s/ca.pem"
       defaultNetstreamDriverCertFile="%[1]s/server.pem"
       defaultNetstreamDriverKeyFile="%[1]s/server.key")
module(load="imudp")
module(load="imtcp" maxSessions="50")
template(name="raw" type="string" string="%%rawmsg%%\n")
ruleset(name="udp")     { action(type="omfile" file="%[1]s/udp.log" template="raw") }
ruleset(name="tcp")     { action(type="omfile" file="%[1]s/tcp.log" template="raw") }
ruleset(name="tls")     { action(type="omfile" file="%[1]s/tls.log" template="raw") }
ruleset(name="tlsauth") { action(type="omfile" file="%[1]s/tlsauth.log" template="raw") }
input(type="imudp" address="127.0.0.1" port="%[2]s" ruleset="udp")
input(type="imtcp" address="127.0.0.1" port="%[3]s" ruleset="tcp")
input(type="imtcp" address="127.0.0.1" port="%[4]s" ruleset="tls"
      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" address="127.0.0.1" port="%[5]s" ruleset="tlsauth"
      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="x509/certvalid")
`, dir, port(r.UDP), port(r.TCP), port(r.TLS), port(r.TLSAuth))
	if err := os.WriteFile(filepath.Join(dir, "rsyslog.conf"), []byte(conf), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// freePort returns a loopback address with a port that was free just now.
func freePort(t *testing.T, network string) string {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().String()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs rsyslogd in the foreground (-n) and waits until its TCP inputs
// accept connections.
func (r *rsyslog) start() {
	r.t.Helper()
	if err := r.startOnce(); err != nil {
		r.t.Fatal(err)
	}
}

// startOnce is start, returning what went wrong.
func (r *rsyslog) startOnce() error {
	cmd := exec.Command(rsyslogBin, "-n", "-f", filepath.Join(r.dir, "rsyslog.conf"), "-i", filepath.Join(r.dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = r.log, r.log
	// If the test binary dies (timeout, ^C), take rsyslogd with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start rsyslogd: %w", err)
	}
	r.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for _, addr := range []string{r.TCP, r.TLS, r.TLSAuth} {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("rsyslogd not listening on %s: %w\n%s", addr, err, r.log.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// stop ends rsyslogd with SIGTERM (it flushes its queue and files) and waits.
func (r *rsyslog) stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-done
	}
	r.cmd = nil
}

// lines returns what input name ("udp", "tcp", "tls", "tlsauth") wrote.
func (r *rsyslog) lines(name string) []string {
	f, err := os.Open(filepath.Join(r.dir, name+".log"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	for sc.Scan() {
		if line := sc.Text(); strings.TrimSpace(line) != "" {
			out = append(out, line)
		}
	}
	return out
}

// waitLines polls until input name has written at least n lines.
func (r *rsyslog) waitLines(name string, n int, timeout time.Duration) []string {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := r.lines(name)
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRsyslogSmoke checks the harness alone: a hand-made octet-counted frame
// over plain TCP arrives as one line.
func TestRsyslogSmoke(t *testing.T) {
	r := startRsyslog(t)
	c, err := net.Dial("tcp", r.TCP)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte(`<110>1 2026-11-27T14:03:07.123456Z h firewalliq - smoke [fiq@32473 seq="1"] hello`)
	if _, err := c.Write(OctetFrame(msg)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	got := r.waitLines("tcp", 1, 5*time.Second)
	if len(got) != 1 || got[0] != string(msg) {
		t.Fatalf("rsyslog wrote %q", got)
	}
}

// recordSamples performs one audited action per sample event (and one
// finding) and returns the events as enqueued, in order.
func recordSamples(t *testing.T, f *fixture) []Event {
	t.Helper()
	ctx := context.Background()
	names := []string{"auth_login_failed", "scan_complete", "scope_register", "audit_tamper", "hostile"}
	samples := sampleEvents()
	var out []Event
	for _, name := range names {
		s := samples[name]
		err := f.st.InTx(ctx, func(tx *sql.Tx) error {
			stored, err := f.ob.Append(ctx, tx, f.log, audit.Entry{Tenant: s.Tenant, ActorID: s.ActorID, ActorName: s.ActorName,
				ActorIP: s.ActorIP, UserAgent: s.UserAgent, Action: audit.Action(s.Action), Object: s.Object, Details: s.Details})
			out = append(out, FromAudit(stored))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	fin := *samples["finding_exposure"].Finding
	err := f.st.InTx(ctx, func(tx *sql.Tx) error {
		return f.ob.EnqueueFinding(ctx, tx, "t_acme", out[1].AuditSeq, fin)
	})
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, FromFinding("t_acme", out[1].AuditSeq, f.clock.Now(), fin))
	return out
}

// drain delivers destination id until nothing is pending.
func drain(t *testing.T, w *Worker, id string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		res, err := w.DeliverOnce(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if res.Err != nil {
			t.Fatalf("deliver: %v", res.Err)
		}
		if res.Sent == 0 {
			return
		}
	}
	t.Fatal("outbox did not drain")
}

// TestRsyslogDelivery sends the sample events over UDP, TCP, TLS and TLS
// with a client certificate to a real rsyslogd, parses what it wrote with
// go-syslog and compares every field with the event it came from.
func TestRsyslogDelivery(t *testing.T) {
	r := startRsyslog(t)
	f := newFixture(t)
	clientCert, clientKey := r.CA.issue(t, "fiq-client")
	dests := []struct {
		log  string
		dest Destination
	}{
		{"udp", Destination{Name: "udp", Kind: KindUDP, Address: r.UDP}},
		{"tcp", Destination{Name: "tcp-cef", Kind: KindTCP, Address: r.TCP, Format: FormatCEF}},
		{"tls", Destination{Name: "tls", Kind: KindTLS, Address: r.TLS, CAPEM: r.CA.CertPEM, ServerName: "localhost"}},
		{"tlsauth", Destination{Name: "tls-client-cert", Kind: KindTLS, Address: r.TLSAuth, CAPEM: r.CA.CertPEM,
			ClientCertPEM: clientCert, ClientKeyPEM: clientKey}},
	}
	for i := range dests {
		dests[i].dest = f.create(t, dests[i].dest)
	}
	events := recordSamples(t, f)
	w := f.ob.NewWorker(WorkerOptions{Now: f.clock.Now})
	defer w.closeAll()
	for _, d := range dests {
		t.Run(d.dest.Name, func(t *testing.T) {
			drain(t, w, d.dest.ID)
			lines := r.waitLines(d.log, len(events), 10*time.Second)
			if len(lines) != len(events) {
				t.Fatalf("rsyslog wrote %d messages, want %d:\n%s", len(lines), len(events), strings.Join(lines, "\n"))
			}
			for i, line := range lines {
				m := f.ob.meta(int64(i + 1))
				checkMessage(t, []byte(line), events[i], m)
				// The body is exactly what the formatter made: rsyslog
				// changed nothing and lost nothing.
				if want := Render(d.dest, events[i], m); line != string(want) {
					t.Errorf("message %d differs:\n got %s\nwant %s", i, line, want)
				}
			}
		})
	}
}

// TestRsyslogRefusesWrongPeer checks CA pinning and client authentication:
// a receiver whose certificate another CA signed is refused, and a receiver
// that requires a client certificate does not count a batch as delivered
// when the appliance has none.
func TestRsyslogRefusesWrongPeer(t *testing.T) {
	r := startRsyslog(t)
	f := newFixture(t)
	other := newTestCA(t)
	for _, tc := range []struct {
		name string
		dest Destination
	}{
		{"other CA pinned", Destination{Name: "wrong-ca", Kind: KindTLS, Address: r.TLS, CAPEM: other.CertPEM, ServerName: "localhost"}},
		{"no client certificate", Destination{Name: "no-cert", Kind: KindTLS, Address: r.TLSAuth, CAPEM: r.CA.CertPEM, ServerName: "localhost"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := f.create(t, tc.dest)
			if err := f.act("", audit.ActAuditCheckpoint, "cp"); err != nil {
				t.Fatal(err)
			}
			w := f.ob.NewWorker(WorkerOptions{Now: f.clock.Now})
			defer w.closeAll()
			res, err := w.DeliverOnce(context.Background(), d.ID)
			if err != nil {
				t.Fatal(err)
			}
			if res.Err == nil || res.Sent != 0 {
				t.Fatalf("delivery to %s: sent %d, err %v; want a failure", tc.name, res.Sent, res.Err)
			}
			st, _ := f.ob.Statuses(context.Background())
			for _, s := range st {
				if s.ID == d.ID && (s.Pending == 0 || s.LastError == "") {
					t.Errorf("status %+v: want the event pending and the error shown", s)
				}
			}
		})
	}
}

// TestRsyslogRestart stops rsyslogd while events are being produced and
// delivered over TCP and TLS, starts it again, and checks that every event
// arrives, in order, with no gap in the sequence numbers. Delivery is at
// least once: a batch that was in flight when the receiver went away may
// arrive twice, with the same sequence numbers.
func TestRsyslogRestart(t *testing.T) {
	r := startRsyslog(t)
	f := newFixture(t)
	f.clock.mu.Lock()
	f.clock.real = true
	f.clock.mu.Unlock()
	tcp := f.create(t, Destination{Name: "tcp", Kind: KindTCP, Address: r.TCP})
	tls := f.create(t, Destination{Name: "tls", Kind: KindTLS, Address: r.TLS, CAPEM: r.CA.CertPEM, ServerName: "localhost"})
	w := f.ob.NewWorker(WorkerOptions{Poll: 50 * time.Millisecond, MinBackoff: 100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond,
		Record: f.ob.Recorder(f.log), Logf: t.Logf})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	const n = 150
	for i := 0; i < n; i++ {
		if err := f.act("", audit.ActAuthLogin, fmt.Sprint("u", i)); err != nil {
			t.Fatal(err)
		}
		switch i {
		case n / 3:
			r.stop()
		case 2 * n / 3:
			r.start()
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, d := range []Destination{tcp, tls} {
		t.Run(d.Name, func(t *testing.T) {
			var last int64
			deadline := time.Now().Add(20 * time.Second)
			for {
				st, err := f.ob.Statuses(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				var s Status
				for _, x := range st {
					if x.ID == d.ID {
						s = x
					}
				}
				if s.Pending == 0 && s.LastSeq >= n {
					last = s.LastSeq
					if s.Failures == 0 {
						t.Errorf("no failure recorded although rsyslogd was down")
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("not delivered: %+v", s)
				}
				time.Sleep(50 * time.Millisecond)
			}
			lines := r.waitLines(d.Name, int(last), 10*time.Second)
			var next int64 = 1
			dups := 0
			p := rfc5424.NewParser()
			for _, line := range lines {
				msg, err := p.Parse([]byte(line))
				if err != nil {
					t.Fatalf("parse %q: %v", line, err)
				}
				seq, _ := strconv.ParseInt((*msg.(*rfc5424.SyslogMessage).StructuredData)[SDID]["seq"], 10, 64)
				switch {
				case seq == next:
					next++
				case seq < next:
					dups++ // a resent batch
				default:
					t.Fatalf("gap: got seq %d, expected %d", seq, next)
				}
			}
			if next-1 != last {
				t.Fatalf("received seqs 1..%d of %d", next-1, last)
			}
			t.Logf("%s: %d events in order, %d resent duplicates", d.Name, last, dups)
		})
	}
}
