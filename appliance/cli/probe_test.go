//go:build lab

package cli

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"firewalliq/appliance"
	"firewalliq/appliance/store"
	"firewalliq/probe"
	"firewalliq/probe/bounded"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

func TestProbeCommand(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("220 hello\r\n"))
			time.AfterFunc(time.Second, func() { c.Close() })
		}
	}()
	open := l.Addr().(*net.TCPAddr).Port
	cl, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := cl.Addr().(*net.TCPAddr).Port
	cl.Close()
	ports := "tcp:" + strconv.Itoa(open) + "," + strconv.Itoa(closed)
	signed, pub := probeScope(t, scope.EnvNonProduction, ports)
	prodSigned, prodPub := probeScope(t, scope.EnvProduction, ports)

	out := filepath.Join(t.TempDir(), "scan")
	code, stdout, stderr := runCLI(t, labModeEnv(nil), "probe", "--scope", signed, "--trust", pub, "--out", out,
		"--probes", "tcp-syn,banner", "--rate", "200", "--timeout", "300ms", "--retries", "1")
	if code != 0 {
		t.Fatalf("probe: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "4 probes") {
		t.Errorf("stdout %q", stdout)
	}
	f, err := os.Open(filepath.Join(out, probe.ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r probe.Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		got[string(r.Probe)+"/"+strconv.Itoa(int(r.Port))] = string(r.State)
		if r.Probe == probe.KindBanner && int(r.Port) == open && (r.Banner == nil || r.Banner.Text != `220 hello\x0d\x0a`) {
			t.Errorf("banner %+v", r.Banner)
		}
	}
	syn := "tcp-syn"
	if os.Geteuid() != 0 {
		syn = "tcp-connect"
	}
	want := map[string]string{
		syn + "/" + strconv.Itoa(open): "open", syn + "/" + strconv.Itoa(closed): "closed",
		"banner/" + strconv.Itoa(open): "open", "banner/" + strconv.Itoa(closed): "closed",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	var sum probe.Summary
	b, _ := os.ReadFile(filepath.Join(out, probe.SummaryFile))
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.RatePPS != 200 || sum.States[probe.StateOpen] != 2 || sum.Worst100ms > sum.WindowLimit || sum.RefusedPackets != 0 {
		t.Errorf("summary %s", b)
	}
	// The checkpoint pins the batch size, so a resumed run (perhaps with
	// another transport) walks the same batches.
	var cp probe.Checkpoint
	b, _ = os.ReadFile(filepath.Join(out, probe.CheckpointFile))
	if err := json.Unmarshal(b, &cp); err != nil || cp.BatchTargets <= 0 || !cp.Complete {
		t.Errorf("checkpoint %s: %v", b, err)
	}
	if st, err := os.Stat(filepath.Join(out, probe.EvidenceFile)); err != nil || st.Size() < 100 {
		t.Errorf("evidence: %v", err)
	}

	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"production refused", []string{"--scope", prodSigned, "--trust", prodPub}, 1, "non-production scopes only"},
		{"rate above cap refused", []string{"--rate", "401"}, 2, "requested rate above cap"},
		{"port outside scope", []string{"--ports", "tcp:1"}, 2, "not in scope"},
		{"kind outside scope", []string{"--probes", "udp"}, 2, "not allowed by scope"},
		{"unknown kind", []string{"--probes", "tcp-xmas"}, 2, "unknown probe kind"},
		{"existing output", []string{"--out", out}, 2, "already holds a scan"},
		{"resume a complete scan", []string{"--out", out, "--resume", "--probes", "tcp-syn,banner", "--rate", "200", "--timeout", "300ms", "--retries", "1"}, 1, "already complete"},
		{"wrong trust key", []string{"--trust", prodPub}, 1, "untrusted key"},
		{"resume without checkpoint", []string{"--resume"}, 1, "no checkpoint to resume from"},
		{"rate refused, not clamped, even when tiny above", []string{"--rate", "1001"}, 2, "cap is 400 pps"},
		{"missing scope", []string{"--scope", ""}, 2, "--scope is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := map[string]string{"--scope": signed, "--trust": pub, "--out": filepath.Join(t.TempDir(), "o")}
			var extra []string
			for i := 0; i < len(tt.args); i++ {
				if _, ok := args[tt.args[i]]; ok {
					args[tt.args[i]] = tt.args[i+1]
					i++
					continue
				}
				extra = append(extra, tt.args[i])
			}
			all := []string{"probe"}
			for k, v := range args {
				all = append(all, k, v)
			}
			code, _, stderr := runCLI(t, labModeEnv(nil), append(all, extra...)...)
			if code != tt.code || !strings.Contains(stderr, tt.msg) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.msg)
			}
		})
	}
}

// TestProbeKindsMatchProfile: the engine's closed list is the safety
// package's closed list.
func TestProbeKindsMatchProfile(t *testing.T) {
	var a []string
	for _, k := range probe.Kinds() {
		a = append(a, string(k))
	}
	var b []string
	for _, k := range safety.AllKinds() {
		b = append(b, string(k))
	}
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(a, b) {
		t.Fatalf("probe kinds %v, safety kinds %v", a, b)
	}
}

// TestProbeRefusedDuringTamperAlarm: on an initialised appliance whose audit
// log has an unacknowledged tamper alarm, the probe command refuses to scan
// and sends nothing.
func TestProbeRefusedDuringTamperAlarm(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	cfg := appliance.DefaultConfig()
	cfg.DataDir = dir
	if _, err := appliance.Init(ctx, cfg, appliance.InitOptions{Admin: "root"}); err != nil {
		t.Fatal(err)
	}
	signed, pub := probeScope(t, scope.EnvNonProduction, "tcp:9")
	run := func() (int, string) {
		out := filepath.Join(t.TempDir(), "scan")
		code, _, stderr := runCLI(t, labModeEnv(map[string]string{"FIQ_DATA": dir}), "probe", "--scope", signed, "--trust", pub, "--out", out,
			"--probes", "tcp-connect", "--timeout", "100ms", "--retries", "0")
		return code, stderr
	}
	if code, stderr := run(); code != 0 {
		t.Fatalf("probe without an alarm: exit %d %s", code, stderr)
	}
	// The row audit.Log.Startup writes when verification finds the log
	// broken (the audit package's tamper suite covers raising it).
	db, err := sql.Open("sqlite", store.DSN(filepath.Join(dir, appliance.DatabaseFile), false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO audit_alarms (seq, kind, bad_seq, reason) VALUES (999, 'raise', 2, 'test')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if code, stderr := run(); code != 1 || !strings.Contains(stderr, "tamper alarm") {
		t.Fatalf("probe during an alarm: exit %d %q", code, stderr)
	}
}

// TestProbeStopsAtScopeExpiry: a scan still running when its scope's
// not_after passes stops there with a clear error, instead of sending on
// under an authorisation that has ended.
func TestProbeStopsAtScopeExpiry(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			time.AfterFunc(5*time.Second, func() { c.Close() })
		}
	}()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	signed, pub := probeScope(t, scope.EnvNonProduction, "tcp:"+port)
	// The clock starts 1 s before the scope's not_after and runs in real
	// time; the banner probe alone (5 pacer slots at 2 pps) needs ~2.5 s.
	notAfter := time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)
	start := time.Now()
	var out, errb bytes.Buffer
	env := &Env{
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string { return labModeEnv(nil)[k] }, Environ: func() []string { return []string{"FIQ_PRODUCTION=false"} },
		Now: func() time.Time { return notAfter.Add(-time.Second + time.Since(start)) },
	}
	dir := filepath.Join(t.TempDir(), "scan")
	code := Run(context.Background(), env, []string{"probe", "--scope", signed, "--trust", pub, "--out", dir,
		"--probes", "banner", "--rate", "2", "--no-progress"})
	took := time.Since(start)
	if code != 1 || !strings.Contains(errb.String(), "scope expired") {
		t.Fatalf("exit %d, stderr %q, stdout %q", code, errb.String(), out.String())
	}
	if took > 2*time.Second {
		t.Fatalf("ran %v, past the scope's expiry at 1 s", took)
	}
	var cp probe.Checkpoint
	b, _ := os.ReadFile(filepath.Join(dir, probe.CheckpointFile))
	if err := json.Unmarshal(b, &cp); err != nil || cp.Complete {
		t.Fatalf("checkpoint %s: %v", b, err)
	}
}

// TestProbeRateRefusalKeepsIdentity: the refusal of a rate above the cap is
// a usage error that still wraps probe.ErrRateAboveCap, so the one error
// table can classify it.
func TestProbeRateRefusalKeepsIdentity(t *testing.T) {
	signed, pub := probeScope(t, scope.EnvNonProduction, "tcp:1")
	var out bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" },
		Now: func() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) }}
	err := runProbe(context.Background(), env, probeFlags{scope: signed, trust: pub, out: filepath.Join(t.TempDir(), "o"), rate: 401, retries: 1, timeout: time.Second, noProgress: true})
	var ue *UsageError
	if !errors.Is(err, probe.ErrRateAboveCap) || !errors.As(err, &ue) {
		t.Fatalf("runProbe at 401 pps: %v, want a UsageError wrapping ErrRateAboveCap", err)
	}
}

// TestLabBuildRefusesProduction: the probe command exists only in a lab
// build, which carries the lab profile; in production mode (the default)
// both serve and probe exit 4 naming the lab build, and with production off
// the probe runs.
func TestLabBuildRefusesProduction(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	if code, _, stderr := runCLI(t, labModeEnv(nil), "init", "--data", data, "--admin", "root"); code != 0 {
		t.Fatalf("init: exit %d %s", code, stderr)
	}
	signed, pub := probeScope(t, scope.EnvNonProduction, "tcp:9")
	probeArgs := []string{"probe", "--scope", signed, "--trust", pub, "--probes", "tcp-connect", "--timeout", "100ms", "--retries", "0"}
	prod := map[string]string{"FIQ_DATA": data}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		code int
		msg  string
	}{
		{name: "serve refused", env: prod, args: []string{"serve", "--listen", "127.0.0.1:0"}, code: ExitProduction, msg: "lab build"},
		{name: "probe refused", env: prod, args: append(probeArgs, "--out", filepath.Join(t.TempDir(), "scan")), code: ExitProduction, msg: "lab build"},
		{name: "probe runs with production off", env: labModeEnv(prod), args: append(probeArgs, "--out", filepath.Join(t.TempDir(), "scan2")), code: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tt.env, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.msg) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.msg)
			}
		})
	}
}

// TestProbeInputsBounded: the probe command reads its scope and key with
// the same bounds as every other file input (TestInputsBounded).
func TestProbeInputsBounded(t *testing.T) {
	dir := t.TempDir()
	signed, pub := probeScope(t, scope.EnvNonProduction, "tcp:9")
	big := filepath.Join(dir, "big-scope.json")
	if err := os.WriteFile(big, bytes.Repeat([]byte{' '}, bounded.MaxScopeFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"probe --trust /dev/zero", []string{"probe", "--scope", signed, "--trust", "/dev/zero"}, "not a regular file"},
		{"probe --scope oversized", []string{"probe", "--scope", big, "--trust", pub}, "file too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(tt.args, "--out", filepath.Join(dir, "scan"), "--data", filepath.Join(dir, "no-data"))
			code, _, stderr := runCLI(t, labModeEnv(nil), args...)
			if code != 1 || !strings.Contains(stderr, tt.msg) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", code, stderr, tt.msg)
			}
		})
	}
}
