package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"firewalliq/appliance/policy"
	"firewalliq/probe/lab"
	"firewalliq/probe/scope"
)

// TestPlans checks each plan is coherent: its policy parses, its ports
// parse, and every deliberate mistake is a target and port the scope
// covers and a rule of the policy judges.
func TestPlans(t *testing.T) {
	lb, err := StartLoopback(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	tests := []struct {
		name string
		plan Plan
	}{
		{"sandbox", SandboxPlan()},
		{"loopback", lb.Plan(false)},
		{"loopback with raw sockets", lb.Plan(true)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := policy.Parse([]byte(tt.plan.Policy))
			if err != nil {
				t.Fatalf("policy: %v", err)
			}
			if doc.Name != tt.plan.PolicyName {
				t.Errorf("policy name %q, plan says %q", doc.Name, tt.plan.PolicyName)
			}
			ports, err := scope.ParsePorts(tt.plan.Ports)
			if err != nil {
				t.Fatalf("ports %q: %v", tt.plan.Ports, err)
			}
			if len(tt.plan.Mistakes) != 3 {
				t.Errorf("%d mistakes, want 3", len(tt.plan.Mistakes))
			}
			kinds := map[string]bool{}
			for _, m := range tt.plan.Mistakes {
				kinds[m.Kind] = true
				addr := netip.MustParseAddr(m.Target)
				inScope := false
				for _, c := range tt.plan.CIDRs {
					inScope = inScope || netip.MustParsePrefix(c).Contains(addr)
				}
				hasPort := false
				for _, p := range ports {
					hasPort = hasPort || p.Proto == m.Proto && p.Number == m.Port
				}
				covered := false
				for _, r := range doc.Rules {
					covered = covered || r.Covers(addr, m.Proto, m.Port)
				}
				if !inScope || !hasPort || !covered {
					t.Errorf("mistake %+v: in scope %v, port scanned %v, rule covers %v", m, inScope, hasPort, covered)
				}
			}
			for _, k := range []string{KindExposure, KindBlocked, KindDenialStyle} {
				if !kinds[k] {
					t.Errorf("no %s mistake", k)
				}
			}
		})
	}
}

// TestSandbox builds the real sandbox and checks what the scanner's zone
// sees through the firewall (a service it may reach, one the firewall
// drops by mistake, one it rejects), that nothing was added to the host's
// namespace, and that Close removes every namespace.
func TestSandbox(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the sandbox needs root (ip netns, nftables); run the suite as root, as CI does")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := Sweep(ctx); err != nil {
		t.Logf("sweep: %v", err)
	}
	var log strings.Builder
	sb, err := New(ctx, Options{Logf: func(f string, a ...any) { fmt.Fprintf(&log, f+"\n", a...) }})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log.String())
	}
	defer sb.Close()
	for _, ns := range sb.Namespaces() {
		if !strings.HasPrefix(ns, lab.NamePrefix) {
			t.Errorf("namespace %s: lab.Sweep would not find it", ns)
		}
	}
	out, err := exec.Command("ip", "netns", "exec", sb.Firewall, "nft", "list", "table", "inet", table).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "admin-prohibited") {
		t.Errorf("firewall table: %v\n%s", err, out)
	}
	if host, _ := exec.Command("ip", "-o", "addr").CombinedOutput(); strings.Contains(string(host), "198.18.") {
		t.Errorf("a sandbox address is in the host's namespace:\n%s", host)
	}
	dial := func(addr string) error {
		return lab.Do(sb.Scanner, func() error {
			c, err := net.DialTimeout("tcp4", addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
	}
	tests := []struct {
		name, addr string
		check      func(error) bool
	}{
		{"dmz web answers", dmzHost + ":443", func(err error) bool { return err == nil }},
		{"dmz ssh answers (the exposure)", dmzHost + ":22", func(err error) bool { return err == nil }},
		{"dmz mail is dropped (the blocked service)", dmzHost + ":25", func(err error) bool {
			var ne net.Error
			return errors.As(err, &ne) && ne.Timeout()
		}},
		{"internal database is rejected (the denial style)", intHost + ":5432", func(err error) bool {
			return errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EACCES)
		}},
		{"internal ssh is dropped", intHost + ":22", func(err error) bool {
			var ne net.Error
			return errors.As(err, &ne) && ne.Timeout()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := dial(tt.addr); !tt.check(err) {
				t.Errorf("dial %s from the outside zone: %v", tt.addr, err)
			}
		})
	}
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ns := range sb.Namespaces() {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			t.Errorf("namespace %s left after Close", ns)
		}
	}
}
