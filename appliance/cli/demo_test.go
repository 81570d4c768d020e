package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"firewalliq/probe"
)

// squash folds runs of blanks, so checks do not depend on column widths.
func squash(s string) string {
	return regexp.MustCompile(`[ \t]+`).ReplaceAllString(s, " ")
}

// checkDemoOutput checks what every demo story must show.
func checkDemoOutput(t *testing.T, out string, extra ...string) {
	t.Helper()
	flat := squash(out)
	for _, want := range append([]string{
		"requested rate above cap",
		"in scope: false (never probed)",
		"demo-approver-1 approves with a fresh TOTP code -> pending",
		"demo-approver-2 approves with a fresh TOTP code -> approved",
		"evidence.upload",
		"scope.key.add",
		"scan.approve",
		"scan.complete",
		"policy.evaluate",
		"report.sign",
		"/manifest.json sha256",
		"found: exposure",
		"found: blocked",
		"found: denial-style",
		"verified offline",
		"verify: intact=true",
		"firewalliq report verify ",
	}, extra...) {
		if !strings.Contains(flat, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	for _, who := range []string{"demo-admin", "demo-lead", "demo-approver-1", "demo-approver-2"} {
		if !regexp.MustCompile(who + ` +\S+ +password \S+ +TOTP secret [A-Z2-7]+`).MatchString(out) {
			t.Errorf("demo output lacks %s's password and TOTP secret", who)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

// checkKeptReport checks the files --keep leaves for an auditor, and that
// the printed 'report verify' command passes on them and fails once one
// byte of the report changes.
func checkKeptReport(t *testing.T, work string) {
	t.Helper()
	rd := filepath.Join(work, "report")
	for _, f := range []string{"report.json", "report.html", "report.pdf", "report.pub", "audit.pub", "scan.nmap.xml", "../scope.signed.json", "../data/firewalliq.db"} {
		if fi, err := os.Stat(filepath.Join(rd, f)); err != nil || fi.Size() == 0 {
			t.Errorf("demo left no %s: %v", f, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(rd, "report.pdf")); !strings.HasPrefix(string(b), "%PDF-") {
		t.Error("report.pdf is not a PDF")
	}
	if b, _ := os.ReadFile(filepath.Join(rd, "scan.nmap.xml")); !strings.Contains(string(b), "<nmaprun") {
		t.Error("scan.nmap.xml is not Nmap XML")
	}
	verifyArgs := func(report string) []string {
		return []string{"report", "verify", report, "--pub", filepath.Join(rd, "report.pub"), "--audit-pub", filepath.Join(rd, "audit.pub"), "--evidence", filepath.Join(rd, "evidence")}
	}
	code, out, stderr := runCLI(t, nil, verifyArgs(filepath.Join(rd, "report.json"))...)
	if code != 0 || !strings.Contains(out, "verified") || !strings.Contains(out, "exposure 1") {
		t.Errorf("report verify: exit %d\n%s\n%s", code, out, stderr)
	}
	body, err := os.ReadFile(filepath.Join(rd, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	bad := []byte(strings.Replace(string(body), `"exposure"`, `"exposurf"`, 1))
	if string(bad) == string(body) {
		t.Fatal("report.json names no exposure")
	}
	badPath := filepath.Join(t.TempDir(), "report.json")
	if err := os.WriteFile(badPath, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runCLI(t, nil, verifyArgs(badPath)...); code != 1 {
		t.Errorf("a changed byte still verifies: exit %d\n%s", code, out)
	}
}

// TestDemo runs the README's first command's loopback story in-process
// (what a machine without root gets) and checks that the story it tells is
// the real one: a production scan with two approvals found the demo
// services in the states they are in, evidence was stored, the signed
// report names the three deliberate mistakes and verifies offline, and the
// audit log verifies.
func TestDemo(t *testing.T) {
	work := filepath.Join(t.TempDir(), "demo")
	code, out, stderr := runCLI(t, nil, "demo", "--loopback", "--no-serve", "--keep", work)
	if code != 0 {
		t.Fatalf("demo: exit %d\n%s\n%s", code, out, stderr)
	}
	extra := []string{
		"the LOOPBACK story",
		"tcp-connect closed conn-refused",
		"tls-hello open tls-handshake TLS 1.",
		"banner: SSH-2.0-FirewallIQ_demo",
	}
	if probe.RawAvailable() {
		extra = append(extra, "/probes.pcapng sha256", "tcp-syn open syn-ack", "udp open udp-response")
	}
	checkDemoOutput(t, out, extra...)
	checkKeptReport(t, work)
	if _, err := os.Stat(filepath.Join(work, "scan", "results.jsonl")); err != nil {
		t.Errorf("demo left no scan/results.jsonl: %v", err)
	}
}
