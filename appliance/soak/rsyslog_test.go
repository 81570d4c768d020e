//go:build soak && linux

package soak

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// rsyslogBin is Debian's rsyslogd (scripts/deps.sh installs it).
const rsyslogBin = "/usr/sbin/rsyslogd"

// rsyslog is a private rsyslogd with one RFC 6587 TCP input on loopback
// writing every message it receives, raw, one a line, to tcp.log. It can be
// stopped and started again on the same port.
type rsyslog struct {
	t   *testing.T
	dir string
	TCP string // host:port

	mu  sync.Mutex
	cmd *exec.Cmd
}

func startRsyslog(t *testing.T, dir string) *rsyslog {
	t.Helper()
	if _, err := os.Stat(rsyslogBin); err != nil {
		t.Fatalf("rsyslogd missing (scripts/deps.sh installs it): %v", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "work"), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &rsyslog{t: t, dir: dir, TCP: l.Addr().String()}
	l.Close()
	_, port, _ := net.SplitHostPort(r.TCP)
	conf := fmt.Sprintf(`
global(workDirectory="%[1]s/work" maxMessageSize="256k")
module(load="imtcp" maxSessions="50")
template(name="raw" type="string" string="%%rawmsg%%\n")
ruleset(name="tcp") { action(type="omfile" file="%[1]s/tcp.log" template="raw") }
input(type="imtcp" address="127.0.0.1" port="%[2]s" ruleset="tcp")
`, dir, port)
	if err := os.WriteFile(filepath.Join(dir, "rsyslog.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	r.start()
	return r
}

// start runs rsyslogd in the foreground and waits for its TCP input.
func (r *rsyslog) start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return
	}
	logf, err := os.OpenFile(filepath.Join(r.dir, "rsyslogd.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		r.t.Errorf("rsyslog: %v", err)
		return
	}
	defer logf.Close()
	cmd := exec.Command(rsyslogBin, "-n", "-f", filepath.Join(r.dir, "rsyslog.conf"), "-i", filepath.Join(r.dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		r.t.Errorf("start rsyslogd: %v", err)
		return
	}
	r.cmd = cmd
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", r.TCP, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			r.t.Errorf("rsyslogd not listening on %s: %v", r.TCP, err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends rsyslogd with SIGTERM (it flushes its files) and waits.
func (r *rsyslog) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
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

// seqs returns the destination sequence numbers rsyslog wrote (0, the
// `siem test` message, excluded) and how many were written more than once
// (a redelivery after an outage; allowed, a gap is not).
func (r *rsyslog) seqs() (map[int64]bool, int, error) {
	f, err := os.Open(filepath.Join(r.dir, "tcp.log"))
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	seen := map[int64]bool{}
	dups := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<16), 4<<20)
	for sc.Scan() {
		m := seqRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || n == 0 {
			continue
		}
		if seen[n] {
			dups++
		}
		seen[n] = true
	}
	return seen, dups, sc.Err()
}
