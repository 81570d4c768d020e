package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const vendorProfile = `{
  "id": "vendor-default",
  "version": 7,
  "global_pps": 500,
  "per_host_pps": 50,
  "max_concurrent_scans": 1,
  "max_targets": 4096,
  "probe_kinds": ["tcp-syn", "icmp-echo"],
  "udp_payloads": []
}
`

// vendorFiles makes a release key, a profile and its signature in dir, the
// way a vendor would outside the repository.
func vendorFiles(t *testing.T, dir string) (profile, sig, pub string) {
	t.Helper()
	var out bytes.Buffer
	if err := run([]string{"keygen", "--out", filepath.Join(dir, "release")}, &out); err != nil {
		t.Fatal(err)
	}
	profile = filepath.Join(dir, "profile.json")
	if err := os.WriteFile(profile, []byte(vendorProfile), 0o644); err != nil {
		t.Fatal(err)
	}
	sig = filepath.Join(dir, "profile.json.sig")
	if err := run([]string{"sign", "--key", filepath.Join(dir, "release.key"), "--out", sig, profile}, &out); err != nil {
		t.Fatal(err)
	}
	return profile, sig, filepath.Join(dir, "release.pub")
}

func TestTool(t *testing.T) {
	dir := t.TempDir()
	profile, sig, pub := vendorFiles(t, dir)
	var out bytes.Buffer
	if err := run([]string{"verify", "--pub", pub, "--sig", sig, profile}, &out); err != nil || !strings.Contains(out.String(), "verified: profile vendor-default version 7") {
		t.Fatalf("verify: %v %s", err, out.String())
	}
	// A modified profile fails verification, and the tool signs nothing the
	// binary would refuse.
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(strings.Replace(vendorProfile, "500", "501", 1)), 0o644)
	if err := run([]string{"verify", "--pub", pub, "--sig", sig, bad}, &out); err == nil {
		t.Fatal("modified profile verified")
	}
	invalid := filepath.Join(dir, "invalid.json")
	os.WriteFile(invalid, []byte(strings.Replace(vendorProfile, `"icmp-echo"`, `"tcp-xmas"`, 1)), 0o644)
	if err := run([]string{"sign", "--key", filepath.Join(dir, "release.key"), invalid}, &out); err == nil {
		t.Fatal("signed a profile with an unknown probe kind")
	}
	// The overlay maps the three embedded files to the vendor's files.
	ov := filepath.Join(dir, "overlay.json")
	if err := run([]string{"overlay", "--repo", "../..", "--profile", profile, "--sig", sig, "--pub", pub, "--out", ov}, &out); err != nil {
		t.Fatal(err)
	}
	var m struct{ Replace map[string]string }
	data, _ := os.ReadFile(ov)
	if err := json.Unmarshal(data, &m); err != nil || len(m.Replace) != 3 {
		t.Fatalf("overlay: %v %s", err, data)
	}
	for k, v := range m.Replace {
		if !filepath.IsAbs(k) || !filepath.IsAbs(v) || !strings.Contains(k, filepath.Join("probe", "safety", "profile")) {
			t.Fatalf("overlay entry %s -> %s", k, v)
		}
	}
	if err := run([]string{"overlay", "--repo", "../..", "--profile", bad, "--sig", sig, "--pub", pub, "--out", ov}, &out); err == nil {
		t.Fatal("overlay accepted a profile that does not verify")
	}
}

// TestReleaseBuild builds the real binary twice through the packaging path:
// with a vendor-signed profile (it runs and reports the vendor's key), and
// with a profile modified after signing (it refuses to run, exit 3).
func TestReleaseBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary twice")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go toolchain on PATH")
	}
	dir := t.TempDir()
	profile, sig, pub := vendorFiles(t, dir)
	bin := filepath.Join(dir, "firewalliq")
	cmd := exec.Command("sh", "build-release.sh", bin)
	cmd.Env = append(os.Environ(), "FIQ_PROFILE="+profile, "FIQ_PROFILE_SIG="+sig, "FIQ_RELEASE_PUB="+pub)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build-release.sh: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "profile", "show", "--json").Output()
	if err != nil {
		t.Fatalf("profile show: %v", err)
	}
	var r struct {
		ID             string `json:"id"`
		GlobalPPS      int    `json:"global_pps"`
		Verified       bool   `json:"verified"`
		DevelopmentKey bool   `json:"development_key"`
		ReleaseKeyID   string `json:"release_key_id"`
		Signer         string `json:"signer"`
		Production     bool   `json:"production_ready"`
	}
	if err := json.Unmarshal(out, &r); err != nil || r.ID != "vendor-default" || r.GlobalPPS != 500 || !r.Verified || r.DevelopmentKey ||
		r.Signer != "release" || !r.Production {
		t.Fatalf("vendor build reports %s", out)
	}
	// Production mode (the default) accepts the release build: serve gets
	// past the build check and fails only on the missing data directory
	// (exit 1, not 4).
	serve := exec.Command(bin, "serve", "--data", filepath.Join(dir, "no-data"))
	serve.Env = []string{"PATH=" + os.Getenv("PATH")}
	if out, err := serve.CombinedOutput(); serve.ProcessState == nil || serve.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "not initialised") {
		t.Fatalf("release build serve in production mode: %v %s", err, out)
	}

	// Tamper with the profile after signing: the binary must refuse to run.
	tampered := filepath.Join(dir, "tampered.json")
	os.WriteFile(tampered, []byte(strings.Replace(vendorProfile, "500", "50000", 1)), 0o644)
	abs, _ := filepath.Abs("../../probe/safety/profile")
	ov, _ := json.Marshal(map[string]any{"Replace": map[string]string{
		filepath.Join(abs, "default.json"):     tampered,
		filepath.Join(abs, "default.json.sig"): sig,
		filepath.Join(abs, "release.pub"):      pub,
	}})
	ovPath := filepath.Join(dir, "tampered-overlay.json")
	os.WriteFile(ovPath, ov, 0o644)
	build := exec.Command("go", "build", "-overlay", ovPath, "-o", bin+"-tampered", "../..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	run := exec.Command(bin+"-tampered", "version")
	var stderr bytes.Buffer
	run.Stderr = &stderr
	err = run.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 3 || !strings.Contains(stderr.String(), "refusing to run") {
		t.Fatalf("tampered binary: %v, stderr %q", err, stderr.String())
	}
}
