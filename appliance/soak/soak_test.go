//go:build soak && linux

package soak

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"firewalliq/probe/lab"
)

// Environment of the soak test. The outer test (TestSoak, in the root
// namespace) builds the lab and captures on its firewall; the inner one
// (TestSoakInner, re-executed inside the lab's scanner namespace with
// `ip netns exec`) runs MinIO, rsyslog and the appliance on that
// namespace's loopback, drives them and checks them.
const (
	envDuration = "FIQ_SOAK_DURATION" // Go duration, default 10m
	envReport   = "FIQ_SOAK_REPORT"   // where to write the Markdown report (optional)
	envInner    = "FIQ_SOAK_INNER"    // work directory; set only for the inner test
	envBin      = "FIQ_SOAK_BIN"      // the firewalliq binary built by the outer test
	envCIDR     = "FIQ_SOAK_CIDR"     // the scope's IPv4 CIDR
	envOutside  = "FIQ_SOAK_OUTSIDE"  // an out-of-scope lab address (hostile replies come from it)
)

// scopeCIDR is the part of the lab's target zone the soak scope covers: 64
// hosts, so that a scan of 7 ports at 50 pps runs about 9 s and a SIGKILL
// lands mid-scan often.
const scopeCIDR = "198.18.1.0/26"

// defaultDuration is the full soak; `make soak-smoke` asks for 2m.
const defaultDuration = 10 * time.Minute

func soakDuration(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv(envDuration)
	if v == "" {
		return defaultDuration
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 30*time.Second || d > 2*time.Hour {
		t.Fatalf("%s=%q: want a Go duration between 30s and 2h", envDuration, v)
	}
	return d
}

// TestSoak is the soak test; see the package comment.
func TestSoak(t *testing.T) {
	if os.Getenv(envInner) != "" {
		t.Skip("inner run")
	}
	if os.Geteuid() != 0 {
		t.Skip("the soak test needs root (network namespaces, nftables, tmpfs); CI runs it as root")
	}
	dur := soakDuration(t)
	work := t.TempDir()
	if err := os.Chmod(work, 0o755); err != nil { // rsyslogd writes here
		t.Fatal(err)
	}
	bin := buildBinary(t, work)

	l := lab.NewT(t, lab.Options{})
	hostile, err := startHostile(l)
	if err != nil {
		t.Fatalf("hostile lab services: %v", err)
	}
	defer hostile.Close()

	capPath := filepath.Join(work, "firewall.pcap")
	capture, err := l.StartCapture(capPath)
	if err != nil {
		t.Fatalf("capture: %v", err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), dur+20*time.Minute)
	defer cancel()
	innerLog, err := os.Create(filepath.Join(work, "inner.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.Scanner, os.Args[0],
		"-test.run=^TestSoakInner$", "-test.v", "-test.count=1", fmt.Sprintf("-test.timeout=%s", dur+18*time.Minute))
	cmd.Env = append(os.Environ(), envInner+"="+work, envBin+"="+bin, envDuration+"="+dur.String(),
		envCIDR+"="+scopeCIDR, envOutside+"="+hostile.Outside.String())
	cmd.Stdout, cmd.Stderr = innerLog, innerLog
	innerErr := cmd.Run()
	innerLog.Close()
	stats, capErr := capture.Stop()

	var rep bytes.Buffer
	if b, err := os.ReadFile(filepath.Join(work, "report.md")); err == nil {
		rep.Write(b)
	} else {
		fmt.Fprintf(&rep, "# Soak run\n\nThe inner run wrote no report (%v).\n", err)
	}
	fmt.Fprintf(&rep, "\n## Capture on the lab firewall (scanner leg)\n\n")
	fails := checkCapture(t, &rep, capPath, stats, capErr, hostile)
	fmt.Fprintf(&rep, "\n## Hostile lab services\n\n%s\n", hostile.Describe())
	fmt.Fprintf(&rep, "\nWall time of the whole run: %s.\n", time.Since(start).Round(time.Second))
	if innerErr != nil {
		fails = append(fails, fmt.Sprintf("inner run failed: %v", innerErr))
	}
	if len(fails) > 0 {
		fmt.Fprintf(&rep, "\n## Result: FAILED\n\n")
		for _, f := range fails {
			fmt.Fprintf(&rep, "- %s\n", f)
		}
	} else {
		fmt.Fprintf(&rep, "\n## Result: passed\n\nEvery check above held.\n")
	}
	if p := os.Getenv(envReport); p != "" {
		if err := os.WriteFile(p, rep.Bytes(), 0o644); err != nil {
			t.Errorf("write report: %v", err)
		} else {
			t.Logf("report written to %s", p)
		}
	}
	if len(fails) > 0 || t.Failed() {
		b, _ := os.ReadFile(filepath.Join(work, "inner.log"))
		if len(b) > 200_000 {
			b = b[len(b)-200_000:]
		}
		t.Logf("inner log (tail):\n%s", b)
		t.Logf("report:\n%s", rep.String())
		for _, f := range fails {
			t.Error(f)
		}
	} else {
		t.Logf("report:\n%s", rep.String())
	}
}

// buildBinary builds firewalliq from this tree (static, like the release).
func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "firewalliq")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

// checkCapture checks the firewall capture: no 100 ms window above the
// compiled-in global cap, and no packet from the scanner to an address
// outside the scope. It returns the failures and writes the figures.
func checkCapture(t *testing.T, rep *bytes.Buffer, path string, st lab.CaptureStats, capErr error, h *hostile) []string {
	t.Helper()
	var fails []string
	if capErr != nil {
		fails = append(fails, fmt.Sprintf("capture: %v", capErr))
	}
	pkts, err := lab.ReadPcap(path)
	if err != nil {
		return append(fails, fmt.Sprintf("read capture: %v", err))
	}
	scanner := []netip.Addr{netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("fd00:f1a9::2")}
	probes := lab.Probes(pkts, scanner...)
	w := lab.WorstWindow(probes, 100*time.Millisecond)
	const globalPPS = 1000 // probe/safety/profile/default.json
	limit := globalPPS/10 + 1
	scope := netip.MustParsePrefix(scopeCIDR)
	out := lab.OutOfScope(pkts, scope.Contains, scanner...)
	fmt.Fprintf(rep, "| figure | value | bound |\n|---|---|---|\n")
	fmt.Fprintf(rep, "| frames captured | %d | |\n", st.Packets)
	fmt.Fprintf(rep, "| frames the kernel dropped from the capture | %d | 0 |\n", st.Dropped)
	fmt.Fprintf(rep, "| probes sent by the scanner | %d | |\n", len(probes))
	fmt.Fprintf(rep, "| worst 100 ms window (probes) | %d (at %s) | <= %d (global cap %d pps / 10 + 1) |\n",
		w.Packets, w.Start.UTC().Format("15:04:05.000"), limit, globalPPS)
	fmt.Fprintf(rep, "| packets from the scanner outside the scope %s | %d | 0 |\n", scopeCIDR, len(out))
	if st.Dropped > 0 {
		fails = append(fails, fmt.Sprintf("the capture dropped %d frames: the pacing and scope proof is void", st.Dropped))
	}
	if len(probes) == 0 {
		fails = append(fails, "the capture holds no probe: no scan reached the lab")
	}
	if w.Packets > limit {
		fails = append(fails, fmt.Sprintf("worst 100 ms window %d probes > %d", w.Packets, limit))
	}
	if len(out) > 0 {
		var s []string
		for i, p := range out {
			if i == 5 {
				break
			}
			s = append(s, fmt.Sprintf("%s %s->%s:%d", p.Proto, p.Src, p.Dst, p.DstPort))
		}
		fails = append(fails, fmt.Sprintf("%d packets left the scope, e.g. %s", len(out), strings.Join(s, ", ")))
	}
	return fails
}
