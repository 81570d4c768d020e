package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/sandbox"
	"firewalliq/probe"
)

// demoListen is where the demo serves the console after the report.
const demoListen = "127.0.0.1:8443"

// demoFlags are the demo's options.
type demoFlags struct {
	keep     string
	noServe  bool
	loopback bool
	listen   string
	// plan, when set, makes this process the sandbox child: the parent
	// built the sandbox and runs it inside the scanner namespace with the
	// plan file (and, when serving, the console's listener as fd 3).
	plan string
	// kept tells the sandbox child that the parent keeps the work
	// directory (--keep): only then is the verify command worth printing.
	kept bool
}

func newDemoCmd(env *Env) *cobra.Command {
	var f demoFlags
	cmd := &cobra.Command{
		Use:   "demo [--no-serve] [--keep DIR] [--loopback]",
		Short: "Scan a customer-style sandbox end to end and produce a signed compliance report (throw-away appliance)",
		Long: `demo tells the product's story on a sandbox it builds and removes itself.

As root it builds network namespaces: an outside zone where the scanner runs,
a firewall whose nftables policy holds three deliberate mistakes (an exposed
admin port, a mail service that should be reachable but is not, a REJECT
where the policy expects DROP), a DMZ and an internal zone with real
services. Without root (or with --loopback) it runs the same story against
services it starts on 127.0.0.1, with connect probes, and says so.

It initialises a throw-away appliance with demo users (printing their
passwords and TOTP secrets), signs and registers a production scope, runs a
scan through the scan service with dual approval by two demo approvers,
evaluates the demo policy, produces the signed compliance report (JSON, HTML,
PDF) and verifies it offline. Then it serves the console on
https://127.0.0.1:8443 until Ctrl-C (--no-serve ends after the report) and
removes the sandbox and, without --keep, everything it wrote.

It sends traffic only to addresses inside its own namespaces or to 127.0.0.1.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if f.plan != "" {
				return runSandboxChild(ctx, env, f)
			}
			dir := f.keep
			if dir == "" {
				tmp, err := os.MkdirTemp("", "firewalliq-demo-")
				if err != nil {
					return fmt.Errorf("demo: %w", err)
				}
				defer os.RemoveAll(tmp)
				dir = tmp
			} else if abs, err := filepath.Abs(dir); err == nil {
				dir = abs
			}
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			if !f.loopback && os.Geteuid() == 0 {
				return runSandboxDemo(ctx, env, dir, f)
			}
			return runLoopbackDemo(ctx, env, dir, f)
		},
	}
	cmd.Flags().StringVar(&f.keep, "keep", "", "work in this directory and keep it: data dir, report files, report.pub, audit.pub, evidence, Nmap XML")
	cmd.Flags().BoolVar(&f.noServe, "no-serve", false, "end after the report instead of serving the console until Ctrl-C")
	cmd.Flags().BoolVar(&f.loopback, "loopback", false, "tell the story on 127.0.0.1 even as root (no namespaces)")
	cmd.Flags().StringVar(&f.listen, "listen", demoListen, "the console's address (loopback only)")
	cmd.Flags().StringVar(&f.plan, "sandbox-plan", "", "internal: run as the sandbox's scanner process")
	_ = cmd.Flags().MarkHidden("sandbox-plan")
	cmd.Flags().BoolVar(&f.kept, "sandbox-kept", false, "internal: the sandbox's parent keeps the directory")
	_ = cmd.Flags().MarkHidden("sandbox-kept")
	return cmd
}

// demoConsoleListener opens the console's listener, refusing any address
// that is not on loopback (the demo's accounts are printed on the screen).
func demoConsoleListener(addr string) (*net.TCPListener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, usagef("demo: --listen %q: %v", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, usagef("demo: --listen %q: the demo console listens on a loopback address only", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("demo: console: %w (is another demo or appliance serving there? use --listen or --no-serve)", err)
	}
	return ln.(*net.TCPListener), nil
}

// runLoopbackDemo is the story without namespaces, in this process.
func runLoopbackDemo(ctx context.Context, env *Env, work string, f demoFlags) error {
	out := env.Stdout
	targets, err := sandbox.StartLoopback(env.Now())
	if err != nil {
		return err
	}
	defer targets.Close()
	raw := probe.RawAvailable()
	why := "not running as root: no network namespaces"
	if f.loopback {
		why = "--loopback"
	}
	fmt.Fprintf(out, "== the LOOPBACK story (%s): services on 127.0.0.1, connect probes", why)
	if raw {
		fmt.Fprint(out, " (and, with CAP_NET_RAW, TCP SYN and UDP through raw sockets)")
	}
	fmt.Fprintln(out, "; run as root for the namespace sandbox with a real nftables firewall")
	var ln net.Listener
	if !f.noServe {
		l, err := demoConsoleListener(f.listen)
		if err != nil {
			return err
		}
		ln = l
	}
	return runDemoStory(ctx, env, work, f.keep != "", targets.Plan(raw), ln)
}

// runSandboxDemo builds the namespace sandbox, runs the story in a child
// process inside its scanner namespace, and removes the sandbox whatever
// happens: an error, Ctrl-C or SIGTERM (the context ends, the child is
// signalled and waited for, then every namespace is deleted).
func runSandboxDemo(ctx context.Context, env *Env, work string, f demoFlags) (err error) {
	out := env.Stdout
	var lnFile *os.File
	if !f.noServe {
		// The console's socket is opened here, in the host's namespace, and
		// handed to the child: the browser reaches it on 127.0.0.1, while
		// every other socket of the child (the scan's) is in the sandbox.
		ln, err := demoConsoleListener(f.listen)
		if err != nil {
			return err
		}
		lnFile, err = ln.File()
		_ = ln.Close()
		if err != nil {
			return fmt.Errorf("demo: console: %w", err)
		}
		defer lnFile.Close()
	}
	fmt.Fprintln(out, "== 0. build the customer-style sandbox (network namespaces, nftables)")
	if gone, err := sandbox.Sweep(ctx); err != nil {
		fmt.Fprintf(out, "   sweeping leftovers of earlier runs: %v\n", err)
	} else if len(gone) > 0 {
		fmt.Fprintf(out, "   removed namespaces left by an earlier, killed run: %v\n", gone)
	}
	start := time.Now()
	sb, err := sandbox.New(ctx, sandbox.Options{})
	if err != nil {
		return err
	}
	defer func() {
		cerr := sb.Close()
		if cerr != nil {
			fmt.Fprintf(env.Stderr, "firewalliq: demo: removing the sandbox: %v\n", cerr)
		} else {
			fmt.Fprintf(out, "== sandbox removed (namespaces %s-*)\n", sb.ID)
		}
		err = errors.Join(err, cerr)
	}()
	plan := sb.Plan()
	fmt.Fprintf(out, "   built in %v: namespaces %s-{out,fw,dmz,int}\n", time.Since(start).Round(time.Millisecond), sb.ID)
	fmt.Fprintln(out, "   outside (scanner) 198.18.0.2 -> firewall -> dmz 198.18.10.0/24, internal 198.18.20.0/24")
	for _, h := range plan.Hosts {
		fmt.Fprintf(out, "   %-8s %-13s %v\n", h.Zone, h.Addr, h.Services)
	}
	fmt.Fprintln(out, "   firewall (nftables, in its own namespace):")
	for _, r := range plan.Firewall {
		fmt.Fprintf(out, "     %s\n", r)
	}
	pb, err := json.Marshal(plan)
	if err != nil {
		return err
	}
	planPath := filepath.Join(work, "sandbox-plan.json")
	if err := os.WriteFile(planPath, pb, 0o600); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	args := []string{"demo", "--sandbox-plan", planPath, "--keep", work}
	if f.keep != "" {
		args = append(args, "--sandbox-kept")
	}
	if lnFile == nil {
		args = append(args, "--no-serve")
	}
	fmt.Fprintf(out, "   the appliance now runs in the outside zone (%s): its scans leave from there\n", sb.Scanner)
	// Not CommandContext: an interrupted demo ends the way its child does
	// (a console stopped by Ctrl-C is a clean end), and the child gets
	// SIGTERM and time to finish its audit entries, not SIGKILL at once.
	cmd := sb.Command(context.Background(), exe, args...)
	cmd.Stdout, cmd.Stderr = env.Stdout, env.Stderr
	if lnFile != nil {
		cmd.ExtraFiles = []*os.File{lnFile}
	}
	// The child dies with this process even if it is killed outright. (The
	// signal follows the thread that forked it; the runtime only retires a
	// thread whose goroutine ended while locked to it, which lab.Do does,
	// and every lab.Do of this process ran before this point.)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("demo: start the sandbox's appliance: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		select {
		case <-exited:
			return
		case <-ctx.Done():
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
		}
	}()
	err = cmd.Wait()
	close(exited)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("demo interrupted: %w", ctx.Err())
		}
		return fmt.Errorf("demo (in the sandbox): %w", err)
	}
	return nil
}

// runSandboxChild is the story inside the scanner namespace.
func runSandboxChild(ctx context.Context, env *Env, f demoFlags) error {
	b, err := os.ReadFile(f.plan)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	var plan sandbox.Plan
	if err := json.Unmarshal(b, &plan); err != nil {
		return fmt.Errorf("demo: plan: %w", err)
	}
	var ln net.Listener
	if !f.noServe {
		fl, err := net.FileListener(os.NewFile(3, "console"))
		if err != nil {
			return fmt.Errorf("demo: console listener: %w", err)
		}
		ln = fl
	}
	return runDemoStory(ctx, env, f.keep, f.kept, plan, ln)
}

// demoClock runs at real speed from the environment's time (the engine's
// pacing and reply timeouts need time to pass), moved on by whole TOTP
// steps: each fresh code the demo needs (one per step, as for a person)
// advances it 30 s instead of waiting.
type demoClock struct {
	mu    sync.Mutex
	base  time.Time
	start time.Time // real time at base
	off   time.Duration
}

// Now returns the demo's time.
func (c *demoClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base.Add(time.Since(c.start) + c.off)
}

// code moves the clock to the next TOTP step and returns secret's code there.
func (c *demoClock) code(secret string) string {
	c.mu.Lock()
	c.off += 30 * time.Second
	c.mu.Unlock()
	s, _ := auth.TOTPCode(secret, c.Now())
	return s
}
