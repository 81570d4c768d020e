package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"firewalliq/probe"
)

// TestDemo runs the README's first command in-process and checks that the
// story it tells is the real one: the scan found the demo services in the
// states they are in, evidence was stored, and the audit log verifies.
func TestDemo(t *testing.T) {
	work := filepath.Join(t.TempDir(), "demo")
	code, out, stderr := runCLI(t, nil, "demo", "--keep", work)
	if code != 0 {
		t.Fatalf("demo: exit %d\n%s\n%s", code, out, stderr)
	}
	for _, want := range []string{
		"requested rate above cap",
		"in scope: false (never probed)",
		"tcp-connect  closed   conn-refused",
		"tls-hello    open     tls-handshake  TLS 1.",
		"banner: SSH-2.0-FirewallIQ_demo",
		"evidence.upload",
		"scope.key.add",
		"scan.complete",
		"/manifest.json sha256",
		"verify: intact=true",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if probe.RawAvailable() && !strings.Contains(out, "/probes.pcapng sha256") {
		t.Errorf("demo output lacks the packet capture:\n%s", out)
	}
	if probe.RawAvailable() && !strings.Contains(out, "udp          open     udp-response") {
		t.Errorf("demo output lacks the UDP result:\n%s", out)
	}
	for _, f := range []string{"scan/results.jsonl", "scope.signed.json", "data/firewalliq.db"} {
		if _, err := os.Stat(filepath.Join(work, f)); err != nil {
			t.Errorf("demo left no %s: %v", f, err)
		}
	}
	// The refused scan sent nothing and wrote no results.
	if _, err := os.Stat(filepath.Join(work, "refused", "results.jsonl")); err == nil {
		t.Error("the refused scan wrote results")
	}
}
