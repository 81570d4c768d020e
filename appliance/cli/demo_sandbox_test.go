package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"firewalliq/appliance/sandbox"
	"firewalliq/probe/lab"
)

// demoBinary builds firewalliq once for the sandbox tests: the sandbox
// demo runs its appliance as a child process of the binary inside the
// scanner namespace, so it needs the real command, not the test binary.
func demoBinary(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the demo sandbox needs root (ip netns, nftables); run the suite as root, as CI does")
	}
	for _, tool := range []string{"go", "ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (scripts/deps.sh): %v", tool, err)
		}
	}
	bin := filepath.Join(t.TempDir(), "firewalliq")
	cmd := exec.Command("go", "build", "-o", bin, "firewalliq")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// demoProc is a running demo process and its combined output.
type demoProc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	seen chan string // lines, as they come
	done chan error
}

func startDemo(t *testing.T, bin string, args ...string) *demoProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	d := &demoProc{cmd: exec.CommandContext(ctx, bin, append([]string{"demo"}, args...)...), seen: make(chan string, 4096), done: make(chan error, 1)}
	// Its own process group, so a test can send Ctrl-C the way a terminal
	// does: to the demo and its child alike.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	d.cmd.Stdout, d.cmd.Stderr = pw, pw
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			d.mu.Lock()
			d.out.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
			select {
			case d.seen <- sc.Text():
			default:
			}
		}
		close(d.seen)
	}()
	go func() { err := d.cmd.Wait(); pw.Close(); d.done <- err }()
	return d
}

func (d *demoProc) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// waitFor reads lines until one contains s (2 minutes at most).
func (d *demoProc) waitFor(t *testing.T, s string) string {
	t.Helper()
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case l, ok := <-d.seen:
			if !ok {
				t.Fatalf("demo ended before %q:\n%s", s, d.output())
			}
			if strings.Contains(l, s) {
				return l
			}
		case <-timeout:
			t.Fatalf("no %q within 2 minutes:\n%s", s, d.output())
		}
	}
}

// wait waits for the demo to end (2 minutes at most) and returns its error.
func (d *demoProc) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-d.done:
		for range d.seen {
		}
		return err
	case <-time.After(2 * time.Minute):
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		t.Fatalf("demo did not end:\n%s", d.output())
		return nil
	}
}

// checkNothingLeft asserts that the demo process pid left no namespace
// (and so no nftables table, which lives in its firewall namespace) and
// no process behind.
func checkNothingLeft(t *testing.T, pid int, work string) {
	t.Helper()
	prefix := fmt.Sprintf("%s%d-", lab.NamePrefix, pid)
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			t.Errorf("namespace %s left behind", e.Name())
		}
	}
	out, err := exec.Command("nft", "list", "tables").CombinedOutput()
	if err != nil {
		t.Errorf("nft list tables: %v\n%s", err, out)
	} else if strings.Contains(string(out), "fiqdemo") {
		t.Errorf("an nftables table of the demo is in the host's namespace:\n%s", out)
	}
	// The child runs with "--keep WORK"; any process still naming work
	// is a leftover (the child dies with its parent: give it a moment).
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := processesNaming(work)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("processes left behind: %v", left)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// processesNaming lists the processes whose command line contains s.
func processesNaming(s string) []string {
	var found []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte(s)) {
			continue
		}
		found = append(found, filepath.Base(filepath.Dir(p))+": "+string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
	}
	return found
}

// TestDemoSandbox runs the README's first command as root, with the
// namespace sandbox, and checks the whole story: the production scan
// through the firewall found the three deliberate mistakes, the kept
// report verifies offline with the kept public keys and evidence (and
// fails after one changed byte), the Nmap XML is there, and nothing is
// left behind: no namespace, nftables table or process.
func TestDemoSandbox(t *testing.T) {
	bin := demoBinary(t)
	work := filepath.Join(t.TempDir(), "demo")
	start := time.Now()
	d := startDemo(t, bin, "--no-serve", "--keep", work)
	err := d.wait(t)
	out := d.output()
	t.Logf("the sandbox demo ran %v", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	checkDemoOutput(t, out,
		"build the customer-style sandbox",
		"198.18.10.10 tcp 22 tcp-syn open syn-ack",
		"198.18.10.10 tcp 25 tcp-syn filtered",
		"198.18.20.10 tcp 5432 tcp-syn rejected icmp-admin-prohibited 3/13",
		"198.18.10.10 udp 53 udp open udp-response",
		"tls-hello open tls-handshake TLS 1.",
		"/probes.pcapng sha256",
		"found: exposure tcp/22 on 198.18.10.10",
		"found: blocked tcp/25 on 198.18.10.10",
		"found: denial-style tcp/5432 on 198.18.20.10",
		"sandbox removed",
	)
	if strings.Contains(out, "LOOPBACK") {
		t.Error("the root demo told the loopback story")
	}
	checkKeptReport(t, work)
	checkNothingLeft(t, d.cmd.Process.Pid, work)
}

// TestDemoSandboxInterrupted stops the sandbox demo in the middle of its
// scan, and while it serves the console, in the ways a person or a
// service manager does, and checks that nothing is left behind; after a
// SIGKILL, which nothing can catch, the child dies with the demo and the
// next demo's sweep removes the namespaces.
func TestDemoSandboxInterrupted(t *testing.T) {
	bin := demoBinary(t)
	tests := []struct {
		name string
		// serve runs the demo with the console (on a free port) and
		// interrupts it once the console answers; otherwise mid-scan.
		serve bool
		sig   syscall.Signal
		group bool // to the process group, as a terminal's Ctrl-C
	}{
		{name: "ctrl-c mid-scan", sig: syscall.SIGINT, group: true},
		{name: "sigterm mid-scan", sig: syscall.SIGTERM},
		{name: "ctrl-c while serving", serve: true, sig: syscall.SIGINT, group: true},
		{name: "sigkill mid-scan", sig: syscall.SIGKILL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			work := filepath.Join(t.TempDir(), "demo")
			args := []string{"--keep", work}
			var addr string
			if tt.serve {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				addr = ln.Addr().String()
				ln.Close()
				args = append(args, "--listen", addr)
			} else {
				args = append(args, "--no-serve")
			}
			d := startDemo(t, bin, args...)
			if tt.serve {
				d.waitFor(t, "console listening on https://")
				c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
				resp, err := c.Get("https://" + addr + "/readyz")
				if err != nil {
					t.Fatalf("console: %v\n%s", err, d.output())
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("/readyz: %s", resp.Status)
				}
			} else {
				d.waitFor(t, "starts it with a step-up code")
				time.Sleep(500 * time.Millisecond) // into the scan
			}
			pid := d.cmd.Process.Pid
			target := pid
			if tt.group {
				target = -pid
			}
			if err := syscall.Kill(target, tt.sig); err != nil {
				t.Fatal(err)
			}
			err := d.wait(t)
			out := d.output()
			switch {
			case tt.serve && err != nil:
				t.Errorf("Ctrl-C while serving should end the demo cleanly: %v\n%s", err, out)
			case !tt.serve && err == nil:
				t.Errorf("an interrupted scan should fail the demo:\n%s", out)
			}
			if tt.sig == syscall.SIGKILL {
				// Nothing ran the teardown: the child must be gone
				// (it dies with its parent), the namespaces are the
				// next demo's sweep's to remove.
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				gone, err := sandbox.Sweep(ctx)
				if err != nil {
					t.Fatalf("sweep: %v", err)
				}
				n := 0
				for _, g := range gone {
					if strings.HasPrefix(g, fmt.Sprintf("%s%d-", lab.NamePrefix, pid)) {
						n++
					}
				}
				if n != 4 {
					t.Errorf("sweep removed %v, want the killed demo's 4 namespaces", gone)
				}
			} else if !strings.Contains(out, "sandbox removed") {
				t.Errorf("the demo did not say it removed the sandbox:\n%s", out)
			}
			checkNothingLeft(t, pid, work)
		})
	}
}
