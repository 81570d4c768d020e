package labtest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"firewalliq/probe/lab"
)

// childEnv names the file holding a childConfig. When set, the test binary
// runs TestChild only, inside the lab's scanner namespace.
const childEnv = "FIQ_SCANLAB_CHILD"

// childConfig is what a parent test hands the child process.
type childConfig struct {
	// Mode selects the child: "e2e", "pair", "special", "engine".
	Mode string `json:"mode"`
	// V4 and V6 are the lab's target zone.
	V4 string `json:"v4"`
	V6 string `json:"v6"`
	// Rate is the requested scan rate.
	Rate int `json:"rate"`
	// Out is where the child writes its childOut.
	Out string `json:"out"`
}

// TestChild is the appliance process of the lab tests: it does nothing
// unless started by one of them (childEnv set).
func TestChild(t *testing.T) {
	p := os.Getenv(childEnv)
	if p == "" {
		t.Skip("runs only as the child of a scan lab test")
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var cfg childConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	var out childOut
	switch cfg.Mode {
	case "e2e", "bench-service":
		out = childE2E(t, cfg)
	case "pair":
		out = childPair(t, cfg)
	case "special":
		out = childSpecial(t, cfg)
	case "bench-engine":
		out = childEngine(t, cfg)
	default:
		t.Fatalf("unknown child mode %q", cfg.Mode)
	}
	ob, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.Out, ob, 0o600); err != nil {
		t.Fatal(err)
	}
}

// labRun is what a parent gets back: the child's report and the firewall
// capture of the run.
type labRun struct {
	out     childOut
	pkts    []lab.Packet
	capture lab.CaptureStats
}

// runChild runs the child in the lab's scanner namespace under a firewall
// capture (4 minutes at most).
func runChild(t *testing.T, l *lab.Lab, cfg childConfig) labRun {
	t.Helper()
	dir := t.TempDir()
	cfg.V4, cfg.V6 = l.Target.V4.String(), l.Target.V6.String()
	cfg.Out = filepath.Join(dir, "out.json")
	cb, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "child.json")
	if err := os.WriteFile(cfgPath, cb, 0o600); err != nil {
		t.Fatal(err)
	}
	capPath := filepath.Join(dir, "firewall.pcap")
	c, err := l.StartCapture(capPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := l.Command(ctx, l.Scanner, exe, "-test.run=^TestChild$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+cfgPath)
	var combined bytes.Buffer
	cmd.Stdout, cmd.Stderr = &combined, &combined
	start := time.Now()
	runErr := cmd.Run()
	t.Logf("child %s ran %v", cfg.Mode, time.Since(start).Round(time.Millisecond))
	time.Sleep(100 * time.Millisecond) // let the last replies reach the capture
	var r labRun
	if r.capture, err = c.Stop(); err != nil {
		t.Fatalf("capture: %v", err)
	}
	if runErr != nil {
		t.Fatalf("child process: %v\n%s", runErr, combined.String())
	}
	if testing.Verbose() {
		t.Logf("child output:\n%s", combined.String())
	}
	if r.capture.Dropped != 0 {
		t.Errorf("capture dropped %d frames: the proof is incomplete", r.capture.Dropped)
	}
	if r.pkts, err = lab.ReadPcap(capPath); err != nil {
		t.Fatal(err)
	}
	ob, err := os.ReadFile(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(ob, &r.out); err != nil {
		t.Fatal(err)
	}
	return r
}
