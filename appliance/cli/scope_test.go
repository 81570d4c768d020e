package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"firewalliq/probe/safety"
)

// runScopeCLI runs the command tree in-process with a fake resolver, so
// hostname checks never leave the machine.
func runScopeCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	hosts := map[string][]netip.Addr{
		"web.lab":   {netip.MustParseAddr("10.20.0.20"), netip.MustParseAddr("2001:db8:20::20")},
		"split.lab": {netip.MustParseAddr("10.20.0.21"), netip.MustParseAddr("10.99.0.1")},
	}
	env := &Env{
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		Getenv:  func(string) string { return "" },
		Environ: func() []string { return nil },
		Now:     func() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) },
		Resolve: func(_ context.Context, host string) ([]netip.Addr, error) {
			if a, ok := hosts[host]; ok {
				return a, nil
			}
			return nil, errors.New("no such host")
		},
	}
	code = Run(context.Background(), env, args)
	return code, out.String(), errb.String()
}

const testScopeJSON = `{
  "id": "dmz-2026",
  "tenant": "acme",
  "name": "DMZ segmentation test",
  "environment": "production",
  "cidrs": ["10.20.0.0/24", "2001:db8:20::/120"],
  "exclude": ["10.20.0.0/29"],
  "ports": "tcp:22,80,443 udp:53",
  "probes": ["tcp-syn", "udp"],
  "not_before": "2026-11-01T00:00:00Z",
  "not_after": "2026-12-31T23:59:59Z",
  "max_pps": 400
}
`

// scopeFixture makes a key pair and a signed scope in a temporary directory.
func scopeFixture(t *testing.T) (dir, key, pub, signed string) {
	t.Helper()
	dir = t.TempDir()
	base := filepath.Join(dir, "lead")
	if code, _, stderr := runScopeCLI(t, "scope", "keygen", "--out", base); code != 0 {
		t.Fatalf("keygen: %d %s", code, stderr)
	}
	doc := filepath.Join(dir, "scope.json")
	if err := os.WriteFile(doc, []byte(testScopeJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runScopeCLI(t, "scope", "sign", "--key", base+".key", doc)
	if code != 0 {
		t.Fatalf("sign: %d %s", code, stderr)
	}
	signed = filepath.Join(dir, "signed.json")
	if err := os.WriteFile(signed, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, base + ".key", base + ".pub", signed
}

func TestScopeKeygen(t *testing.T) {
	dir, key, pub, _ := scopeFixture(t)
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{{key, 0o600}, {pub, 0o644}} {
		fi, err := os.Stat(f.path)
		if err != nil || fi.Mode().Perm() != f.mode {
			t.Fatalf("%s: %v %v, want mode %v", f.path, fi.Mode(), err, f.mode)
		}
	}
	code, _, stderr := runScopeCLI(t, "scope", "keygen", "--out", filepath.Join(dir, "lead"))
	if code != 1 {
		t.Fatalf("keygen over an existing key: exit %d %s", code, stderr)
	}
	if code, _, _ := runScopeCLI(t, "scope", "keygen"); code != 2 {
		t.Fatalf("keygen without --out: exit %d", code)
	}
}

func TestScopeSignVerify(t *testing.T) {
	dir, key, pub, signed := scopeFixture(t)
	code, out, stderr := runScopeCLI(t, "scope", "verify", "--pub", pub, signed)
	if code != 0 || !strings.HasPrefix(out, "valid: scope dmz-2026") || !strings.Contains(out, "addresses:  504") {
		t.Fatalf("verify: %d %q %s", code, out, stderr)
	}
	code, out, _ = runScopeCLI(t, "scope", "verify", "--json", "--pub", pub, signed)
	var sum map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &sum) != nil || sum["valid"] != true || sum["sha256"] == "" {
		t.Fatalf("verify --json: %d %s", code, out)
	}

	// Another key, a tampered file, a document over the profile.
	other := filepath.Join(dir, "other")
	runScopeCLI(t, "scope", "keygen", "--out", other)
	data, _ := os.ReadFile(signed)
	tampered := filepath.Join(dir, "tampered.json")
	os.WriteFile(tampered, bytes.Replace(data, []byte("10.20.0.0/29"), []byte("10.20.0.0/30"), 1), 0o644)
	over := filepath.Join(dir, "over.json")
	os.WriteFile(over, []byte(strings.Replace(testScopeJSON, `"max_pps": 400`, `"max_pps": 5000000`, 1)), 0o644)
	dup := filepath.Join(dir, "dup.json")
	os.WriteFile(dup, []byte(strings.Replace(testScopeJSON, `"id": "dmz-2026",`, `"id": "dmz-2026", "id": "other",`, 1)), 0o644)
	internet := filepath.Join(dir, "internet.json")
	os.WriteFile(internet, []byte(strings.Replace(testScopeJSON, `"10.20.0.0/24", `, `"0.0.0.0/0", `, 1)), 0o644)
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"other key", []string{"scope", "verify", "--pub", other + ".pub", signed}, 1, "untrusted key"},
		{"tampered", []string{"scope", "verify", "--pub", pub, tampered}, 1, "does not verify"},
		{"missing --pub", []string{"scope", "verify", signed}, 2, "--pub"},
		{"sign over profile", []string{"scope", "sign", "--key", key, over}, 1, "exceeds the safety profile"},
		{"sign duplicate key", []string{"scope", "sign", "--key", key, dup}, 1, "duplicate key"},
		{"sign whole internet", []string{"scope", "sign", "--key", key, internet}, 1, "whole-internet"},
		{"sign without --key", []string{"scope", "sign", over}, 2, "--key"},
		{"sign two files", []string{"scope", "sign", "--key", key, over, dup}, 2, "accepts 1 arg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runScopeCLI(t, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.msg) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Fatalf("exit %d, stderr %q; want %d mentioning %q on one line", code, stderr, tt.code, tt.msg)
			}
		})
	}
}

func TestScopeCheck(t *testing.T) {
	_, _, pub, signed := scopeFixture(t)
	code, out, stderr := runScopeCLI(t, "scope", "check", "--scope", signed, "--pub", pub,
		"10.20.0.9", "10.20.0.3", "192.0.2.1", "010.20.0.9", "web.lab", "split.lab", "::ffff:10.20.0.10", "2001:db8:20::1", "10.20.0.9 ")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (%s)", code, stderr)
	}
	want := []string{
		"10.20.0.9 in-scope",
		"10.20.0.3 out-of-scope: 10.20.0.3 is excluded by 10.20.0.0/29",
		"192.0.2.1 out-of-scope: 192.0.2.1 is in none of the scope's CIDRs",
		`010.20.0.9 out-of-scope: bad target "010.20.0.9": octet "010" has a leading zero`,
		"web.lab in-scope (pinned: 10.20.0.20, 2001:db8:20::20)",
		`split.lab out-of-scope: "split.lab" resolved to 10.99.0.1: 10.99.0.1 is in none of the scope's CIDRs`,
		"::ffff:10.20.0.10 in-scope",
		"2001:db8:20::1 in-scope",
		`"10.20.0.9 " out-of-scope: bad target "10.20.0.9 ": contains whitespace`,
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("line %d:\n got %s\nwant %s...", i, lines[i], want[i])
		}
	}
	if !strings.Contains(stderr, "5 of 9 targets") {
		t.Errorf("stderr %q", stderr)
	}

	code, out, _ = runScopeCLI(t, "scope", "check", "--json", "--scope", signed, "--pub", pub, "10.20.0.9", "web.lab")
	var res []checkResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || len(res) != 2 || !res[1].InScope || len(res[1].Addresses) != 2 {
		t.Fatalf("check --json: %d %s", code, out)
	}
	if code, _, _ := runScopeCLI(t, "scope", "check", "--scope", signed, "--pub", pub); code != 2 {
		t.Fatalf("check without targets: exit %d", code)
	}
}

func TestScopeExpand(t *testing.T) {
	_, _, pub, signed := scopeFixture(t)
	code, out, stderr := runScopeCLI(t, "scope", "expand", "--scope", signed, "--pub", pub, "--seed", "7")
	if code != 0 {
		t.Fatalf("expand: %d %s", code, stderr)
	}
	lines := strings.Fields(out)
	seen := map[string]bool{}
	for _, l := range lines {
		if seen[l] {
			t.Fatalf("%s printed twice", l)
		}
		seen[l] = true
	}
	if len(lines) != 504 || seen["10.20.0.3"] || !seen["10.20.0.8"] || !seen["2001:db8:20::ff"] {
		t.Fatalf("expand printed %d addresses", len(lines))
	}
	_, again, _ := runScopeCLI(t, "scope", "expand", "--scope", signed, "--pub", pub, "--seed", "7", "--limit", "5")
	if got := strings.Fields(again); len(got) != 5 || strings.Join(got, " ") != strings.Join(lines[:5], " ") {
		t.Fatalf("--limit 5 with the same seed: %v vs %v", got, lines[:5])
	}
}

func TestProfileShow(t *testing.T) {
	want, err := safety.Load()
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ := runScopeCLI(t, "profile", "show")
	if code != 0 || !strings.Contains(out, want.SHA256()) || !strings.Contains(out, "verified:             yes") {
		t.Fatalf("profile show: %d\n%s", code, out)
	}
	code, out, _ = runScopeCLI(t, "profile", "show", "--json")
	var r profileReport
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil || !r.Verified || r.SHA256 != want.SHA256() || r.GlobalPPS != want.GlobalPPS {
		t.Fatalf("profile show --json: %d\n%s", code, out)
	}
	code, out, _ = runScopeCLI(t, "version", "--json")
	var v versionReport
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.Profile.SHA256 != want.SHA256() || v.Profile.ID != want.ID {
		t.Fatalf("version --json lacks the profile: %s", out)
	}
	code, out, _ = runScopeCLI(t, "version")
	if code != 0 || !strings.Contains(out, "profile:    "+want.ID) || !strings.Contains(out, want.SHA256()) {
		t.Fatalf("version: %s", out)
	}
}

// TestProfileCapsNotRaisable: no flag, environment variable or config key
// changes what 'profile show' reports; unknown cap flags are usage errors.
func TestProfileCapsNotRaisable(t *testing.T) {
	_, baseline, _ := runCLI(t, nil, "profile", "show", "--json")
	cfg := filepath.Join(t.TempDir(), "caps.yaml")
	os.WriteFile(cfg, []byte("probe:\n  global_pps: 1000000\n"), 0o600)
	env := map[string]string{"FIQ_GLOBAL_PPS": "1000000", "FIQ_PER_HOST_PPS": "1000000", "FIQ_PROFILE": "lab"}
	code, out, _ := runCLI(t, env, "profile", "show", "--json")
	if code != 0 || out != baseline {
		t.Fatalf("environment changed the profile:\n%s\nvs\n%s", out, baseline)
	}
	if code, out, _ := runCLI(t, nil, "--config", cfg, "profile", "show", "--json"); code == 0 && out != baseline {
		t.Fatal("config changed the profile")
	}
	for _, flag := range []string{"--global-pps", "--per-host-pps", "--max-targets", "--profile"} {
		if code, _, _ := runCLI(t, nil, "profile", "show", flag, "1000000"); code != 2 {
			t.Fatalf("%s accepted: exit %d", flag, code)
		}
	}
}

func TestCheckProfileRefuses(t *testing.T) {
	var errb bytes.Buffer
	code := checkProfile(&errb, func() (safety.Profile, error) {
		return safety.Profile{}, safety.ErrSignature
	})
	if code != ExitProfile || ExitProfile == ExitFailure || ExitProfile == ExitUsage {
		t.Fatalf("exit %d", code)
	}
	msg := errb.String()
	if !strings.HasPrefix(msg, "firewalliq: refusing to run") || strings.Count(msg, "\n") != 1 {
		t.Fatalf("message %q", msg)
	}
	if checkProfile(&errb, safety.Load) != ExitOK {
		t.Fatal("the embedded profile failed")
	}
}
