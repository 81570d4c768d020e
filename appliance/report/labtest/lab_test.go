package labtest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"firewalliq/appliance"
	"firewalliq/appliance/internal/apptest"
	"firewalliq/appliance/report"
	"firewalliq/appliance/report/verify"
	"firewalliq/appliance/scan"
	"firewalliq/appliance/siem"
	"firewalliq/appliance/siem/destinations"
	"firewalliq/probe/keys"
	"firewalliq/probe/lab"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// childEnv names the file holding a childConfig. When set, the test binary
// runs TestChild only, inside the lab's scanner namespace.
const childEnv = "FIQ_REPORTLAB_CHILD"

// childConfig is what the parent hands the child process.
type childConfig struct {
	// V4 is the lab's target zone (IPv4).
	V4 string `json:"v4"`
	// Rate is the requested scan rate.
	Rate int `json:"rate"`
	// Dir is where the child writes the report files, the public keys and
	// the evidence (under their report names).
	Dir string `json:"dir"`
}

// childOut is what the child reports besides the files.
type childOut struct {
	ScanID   string `json:"scan_id"`
	ReportID string `json:"report_id"`
	SHA256   string `json:"sha256"`
	Results  int    `json:"results"`
	// Hook is every finding the webhook receiver accepted (signature
	// checked); HookRefused counts requests it refused.
	Hook        []hookFinding `json:"hook"`
	HookRefused int           `json:"hook_refused"`
}

// hookFinding is a finding as the webhook received it, with its OCSF
// severity.
type hookFinding struct {
	SeverityID int          `json:"severity_id"`
	Finding    siem.Finding `json:"finding"`
}

// Ports the scope and policy name: 22 is the mistake (the policy denies
// it, the firewall forwards it), 443 the canary and an allowed service,
// 3306 dropped, 8443 rejected with ICMP admin-prohibited.
const (
	ports   = "tcp:22,443,3306,8443"
	targets = "198.18.1.16/30"
)

// firewall is the lab's firewall with the mistake: no rule for tcp/22,
// though a listener answers there.
func firewall() lab.Options {
	return lab.Options{
		Rules: []lab.Rule{
			{Name: "tcp-3306-drop", From: 0, To: 255, Proto: lab.TCP, Port: 3306, Action: lab.Drop},
			{Name: "tcp-8443-admin", From: 0, To: 255, Proto: lab.TCP, Port: 8443, Action: lab.RejectAdmin},
		},
		Services: []lab.Service{
			{Proto: lab.TCP, Port: 22, Kind: lab.Banner, Banner: "SSH-2.0-FiqLab_1.0\r\n"},
			{Proto: lab.TCP, Port: 443, Kind: lab.TLS},
			{Proto: lab.TCP, Port: 3306, Kind: lab.Banner, Banner: "mysql\r\n"},
			{Proto: lab.TCP, Port: 8443, Kind: lab.TLS},
		},
	}
}

// policySource is what the customer intends, seen from the scanner zone.
func policySource(canary string) []byte {
	return []byte(`version: 1
name: perimeter
vantage_point: outside
description: What the outside zone may reach in the lab's target zone.
default: deny
denial: either
groups:
  - name: web
    cidrs: [` + targets + `]
canaries:
  - name: web-https
    target: ` + canary + `
    port: 443
rules:
  - name: https-open
    action: allow
    to: [web]
    ports: "tcp:443"
    severity: high
  - name: ssh-denied
    action: deny
    to: [web]
    ports: "tcp:22"
    severity: critical
  - name: db-dropped
    action: deny
    to: [web]
    ports: "tcp:3306"
    denial: drop
    severity: high
  - name: admin-rejected
    action: deny
    to: [web]
    ports: "tcp:8443"
    denial: reject
    severity: medium
`)
}

// TestReportFromLabScan is issue 14's "done when": a scan in the lab
// through the scan service yields a signed report that verifies offline
// (signature, checkpoint, every inclusion proof, the evidence files),
// fails verification when any byte of it or of an evidence file changes,
// shows the deliberate mistake (tcp/22 open though the policy denies it)
// as critical exposure findings and nothing else, names its vantage point,
// and reads correctly as HTML and as PDF (pdftotext).
func TestReportFromLabScan(t *testing.T) {
	if testing.Short() {
		t.Skip("the report lab test runs a real scan; skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("the report lab test needs root (network namespaces, nftables, raw sockets); run as root, as CI does")
	}
	if safety.LabBuild() {
		t.Skip("the report lab test scans at the default profile's caps; run it without -tags lab")
	}
	l := lab.NewT(t, firewall())
	prof, err := safety.Load()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := runChild(t, l, childConfig{V4: l.Target.V4.String(), Rate: prof.GlobalPPS, Dir: dir})
	t.Logf("scan %s: %d results; report %s (sha256 %s)", out.ScanID, out.Results, out.ReportID, out.SHA256)

	signed := read(t, dir, "report.json")
	rk := readKey(t, filepath.Join(dir, "report.pub"))
	ak := readKey(t, filepath.Join(dir, "audit.pub"))
	evDir := filepath.Join(dir, "evidence")
	opts := verify.Options{ReportKey: rk, AuditKey: ak, EvidenceDir: evDir}

	res, err := verify.Verify(signed, opts)
	if err != nil {
		t.Fatalf("the report does not verify offline: %v", err)
	}
	r := res.Report
	if res.Proofs != len(r.Evidence) || res.EvidenceFiles != len(r.Evidence) || len(r.Evidence) < 3 {
		t.Errorf("verified %d proofs and %d files of %d evidence objects", res.Proofs, res.EvidenceFiles, len(r.Evidence))
	}
	t.Logf("verified: %d proofs, %d evidence files, checkpoint size %d, anchored %v", res.Proofs, res.EvidenceFiles, res.Checkpoint.Size, res.Anchored)

	// The mistake, and only it, as findings: tcp/22 open on each of the
	// four targets, critical, under rule ssh-denied.
	hosts := lab.Hosts(netip.MustParsePrefix(targets), 16)
	want := map[string]bool{}
	for _, h := range hosts {
		want[h.String()] = true
	}
	for _, f := range r.Findings {
		if f.Kind != "exposure" || f.Rule != "ssh-denied" || f.Port != 22 || f.Severity != "critical" || f.Observed != "open" || !want[f.Target] {
			t.Errorf("unexpected finding %+v", f)
			continue
		}
		delete(want, f.Target)
	}
	if len(want) != 0 {
		t.Errorf("no exposure finding for tcp/22 on %v", want)
	}
	verdicts := map[string]string{}
	for _, v := range r.Verdicts {
		verdicts[v.Rule] = v.Verdict
	}
	for rule, v := range map[string]string{"ssh-denied": "fail", "https-open": "pass", "db-dropped": "pass", "admin-rejected": "pass"} {
		if verdicts[rule] != v {
			t.Errorf("rule %s: verdict %q, want %q (all %v)", rule, verdicts[rule], v, verdicts)
		}
	}
	if len(r.Canaries) != 1 || !r.Canaries[0].Answered {
		t.Errorf("canaries %+v: the drop rule's pass needs the canary's answer", r.Canaries)
	}
	if r.VantagePoint != "outside" || r.Imported {
		t.Errorf("vantage point %q, imported %v", r.VantagePoint, r.Imported)
	}
	if r.Scan.ID != out.ScanID || r.Scan.Vantage != "local" || r.Scan.VantageLabel != "local" {
		t.Errorf("report names scan %+v, want %s from the appliance itself (local)", r.Scan, out.ScanID)
	}
	if r.Summary.Results != out.Results || out.Results != len(hosts)*4 {
		t.Errorf("report counts %d results, the scan stored %d, want %d", r.Summary.Results, out.Results, len(hosts)*4)
	}

	// The same findings reached the customer's webhook, signed, with
	// their severity (OCSF critical is 5).
	if out.HookRefused != 0 {
		t.Errorf("the webhook receiver refused %d requests (bad signature, stale or replayed)", out.HookRefused)
	}
	t.Logf("webhook: %d signed finding events accepted", len(out.Hook))
	hooked := map[string]bool{}
	for _, h := range out.Hook {
		if h.Finding.ScanID == out.ScanID && h.Finding.Kind == "exposure" && h.Finding.Severity == "critical" && h.SeverityID == 5 && h.Finding.Port == 22 {
			hooked[h.Finding.Target] = true
		}
	}
	for _, h := range hosts {
		if !hooked[h.String()] {
			t.Errorf("no critical exposure finding for %s tcp/22 at the webhook (got %+v)", h, out.Hook)
		}
	}

	// Any changed byte fails verification: every byte of the file, each
	// changed to another value that keeps it one byte.
	t.Run("tamper every byte", func(t *testing.T) {
		failed := 0
		for i := range signed {
			bad := bytes.Clone(signed)
			bad[i] = flip(bad[i])
			if _, err := verify.Verify(bad, opts); err == nil {
				t.Errorf("byte %d (%q -> %q) changed and the report still verifies", i, signed[i], bad[i])
				if failed++; failed > 10 {
					t.Fatal("giving up")
				}
			}
		}
		t.Logf("%d single-byte changes, each refused", len(signed))
	})
	t.Run("tamper evidence", func(t *testing.T) {
		for _, e := range r.Evidence {
			p := filepath.Join(evDir, filepath.FromSlash(e.Name))
			orig := read(t, evDir, filepath.FromSlash(e.Name))
			bad := bytes.Clone(orig)
			bad[len(bad)/2] ^= 1
			if err := os.WriteFile(p, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := verify.Verify(signed, opts)
			if err := os.WriteFile(p, orig, 0o600); err != nil {
				t.Fatal(err)
			}
			if !errors.Is(err, verify.ErrEvidence) {
				t.Errorf("evidence %s changed: %v, want ErrEvidence", e.Name, err)
			}
		}
		if _, err := verify.Verify(signed, opts); err != nil {
			t.Fatalf("restored evidence: %v", err)
		}
	})

	// The renderings show the finding, the signature and how to verify.
	html := string(read(t, dir, "report.html"))
	pdfText := pdftotext(t, filepath.Join(dir, "report.pdf"))
	for name, text := range map[string]string{"html": html, "pdf": pdfText} {
		flat := strings.Join(strings.Fields(text), " ")
		for _, s := range []string{"ssh-denied", "exposure", "critical", hosts[0].String(), r.Verification.ReportKeyID, "firewalliq report verify", "outside", "the appliance itself (local)", out.ScanID} {
			if !strings.Contains(flat, s) {
				t.Errorf("%s rendering lacks %q", name, s)
			}
		}
	}
}

// flip changes b to another byte.
func flip(b byte) byte {
	if b == '0' {
		return '1'
	}
	if b >= 'a' && b < 'z' || b >= 'A' && b < 'Z' || b >= '1' && b < '9' {
		return b + 1
	}
	return b ^ 0x20
}

func read(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readKey(t *testing.T, path string) ed25519.PublicKey {
	t.Helper()
	k, err := keys.ReadPublic(path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// pdftotext extracts the PDF's text with poppler's pdftotext.
func pdftotext(t *testing.T, path string) string {
	t.Helper()
	bin, err := exec.LookPath("pdftotext")
	if err != nil {
		t.Fatalf("pdftotext (poppler-utils) is needed to read the PDF: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := exec.CommandContext(ctx, bin, "-layout", path, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	return string(b)
}

// runChild runs the child in the lab's scanner namespace (5 minutes at
// most) and returns what it reported.
func runChild(t *testing.T, l *lab.Lab, cfg childConfig) childOut {
	t.Helper()
	cb, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "child.json")
	if err := os.WriteFile(cfgPath, cb, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
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
	t.Logf("child ran %v", time.Since(start).Round(time.Millisecond))
	if runErr != nil {
		t.Fatalf("child process: %v\n%s", runErr, combined.String())
	}
	if testing.Verbose() {
		t.Logf("child output:\n%s", combined.String())
	}
	var out childOut
	if err := json.Unmarshal(read(t, cfg.Dir, "out.json"), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestChild is the appliance process of the lab test: it does nothing
// unless started by it (childEnv set).
func TestChild(t *testing.T) {
	p := os.Getenv(childEnv)
	if p == "" {
		t.Skip("runs only as the child of the report lab test")
	}
	var cfg childConfig
	if err := json.Unmarshal(read(t, filepath.Dir(p), filepath.Base(p)), &cfg); err != nil {
		t.Fatal(err)
	}
	out := child(t, cfg)
	ob, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.Dir, "out.json"), ob, 0o600); err != nil {
		t.Fatal(err)
	}
}

// child runs the appliance: a security lead's key and a scope over the
// target zone, the policy, an operator's scan of four hosts through the
// scan service, the report (evaluation, proofs, signature), and its
// downloads; it copies the report's evidence from the local vault and the
// public keys from the data directory for the offline verifier.
func child(t *testing.T, cfg childConfig) childOut {
	vaultDir := filepath.Join(t.TempDir(), "vault")
	f := apptest.New(t, func(c *appliance.Config) {
		c.Production = false // the local vault is not WORM
		c.Vault.Backend = "local"
		c.Vault.LocalDir = vaultDir
	})
	f.Clock.Flow()
	lead, op := f.Users["security_lead"], f.Users["operator"]

	pub, priv, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := keys.MarshalPublic(pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.App.ScopeKeys.Add(f.Ctx, lead.P, "", "lab key", pem, f.Code(lead)); err != nil {
		t.Fatal(err)
	}
	now := f.Clock.Now()
	doc := scope.Document{ID: "lab-zone", Tenant: "alpha", Name: "lab target zone", Environment: scope.EnvNonProduction,
		CIDRs: []string{cfg.V4}, Exclude: []string{}, Ports: ports, Probes: []safety.Kind{safety.KindTCPSyn}, MaxPPS: cfg.Rate,
		NotBefore: now.Add(-time.Hour).UTC().Truncate(time.Second), NotAfter: now.Add(24 * time.Hour).UTC().Truncate(time.Second),
		SignerKeyID: keys.ID(pub)}
	sdoc, err := scope.Sign(doc, priv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.App.Scopes.Register(f.Ctx, lead.P, "", sdoc); err != nil {
		t.Fatal(err)
	}
	canary := lab.Hosts(netip.MustParsePrefix(targets), 1)[0]
	if _, err := f.App.Policies.Create(f.Ctx, lead.P, "", policySource(canary.String())); err != nil {
		t.Fatal(err)
	}

	// The customer's webhook receiver (in the scanner namespace, on
	// loopback): it checks every request's HMAC signature.
	hookKey := []byte("lab-webhook-key-0123456789abcdef")
	recv := &receiver{v: siem.NewVerifier(hookKey, siem.ReplayWindow, f.Clock.Now)}
	srv := httptest.NewTLSServer(recv)
	defer srv.Close()
	root := f.Users["appliance_admin"]
	if _, err := f.App.SIEM.Add(f.Ctx, root.P, "", destinations.NewDestination{Name: "soc-hook", Kind: siem.KindWebhook, Address: srv.URL + "/fiq",
		CAPEM: pemCert(srv), HMACKey: hookKey, Format: siem.FormatOCSF}, f.Code(root)); err != nil {
		t.Fatal(err)
	}

	// The appliance's background work: the scan dispatcher, the SIEM
	// outbox worker, evidence uploads, checkpoints.
	ctx, cancel := context.WithCancel(f.Ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f.App.Run(ctx, func(err error) { t.Logf("background: %v", err) }) }()
	defer func() { cancel(); wg.Wait() }()
	sc, err := f.App.Scans.Request(f.Ctx, op.P, "", scan.ScanRequest{ScopeID: "lab-zone", Targets: []string{targets}, Rate: cfg.Rate}, f.Code(op))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for sc.State != scan.StateCompleted {
		if time.Now().After(deadline) {
			t.Fatalf("scan %s did not finish in 3 minutes (%s)", sc.ID, sc.State)
		}
		if sc.State == scan.StateFailed || sc.State == scan.StateCancelled {
			t.Fatalf("scan %s %s: %s", sc.ID, sc.State, sc.Reason)
		}
		time.Sleep(20 * time.Millisecond)
		if sc, err = f.App.Scans.Get(f.Ctx, op.P, "", sc.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.App.Evidence.Vault().Flush(f.Ctx); err != nil {
		t.Fatalf("vault flush: %v", err)
	}

	c, err := f.App.Reports.Create(f.Ctx, op.P, "", report.CreateRequest{ScanID: sc.ID, Policy: "perimeter"})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct{ format, name string }{{"json", "report.json"}, {"html", "report.html"}, {"pdf", "report.pdf"}} {
		b, _, err := f.App.Reports.Download(f.Ctx, f.Users["auditor"].P, "", c.ID, x.format)
		if err != nil {
			t.Fatalf("download %s: %v", x.format, err)
		}
		if err := os.WriteFile(filepath.Join(cfg.Dir, x.name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"report.pub", "audit.pub"} {
		b, err := os.ReadFile(filepath.Join(f.Cfg.DataDir, "keys", k))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cfg.Dir, k), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The evidence, as an auditor exports it: each object under its
	// report name (the local vault keeps versions in KEY.v/).
	var r verify.File
	if err := json.Unmarshal(c.Signed, &r); err != nil {
		t.Fatal(err)
	}
	var body verify.Report
	if err := json.Unmarshal(r.Report, &body); err != nil {
		t.Fatal(err)
	}
	if err := f.App.Evidence.Vault().Flush(f.Ctx); err != nil {
		t.Fatalf("vault flush: %v", err)
	}
	for _, e := range body.Evidence {
		if err := copyEvidence(filepath.Join(vaultDir, filepath.FromSlash(e.Name)+".v"), filepath.Join(cfg.Dir, "evidence", filepath.FromSlash(e.Name))); err != nil {
			t.Fatalf("evidence %s: %v", e.Name, err)
		}
	}
	page, err := f.App.Scans.Results(f.Ctx, op.P, "", sc.ID, scan.ResultFilter{Limit: scan.MaxPageSize})
	if err != nil {
		t.Fatal(err)
	}
	out := childOut{ScanID: sc.ID, ReportID: c.ID, SHA256: c.SHA256, Results: len(page.Items)}
	// The report's evaluation queued its findings; the outbox worker
	// delivers them to the webhook (30 s at most).
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if out.Hook = recv.findings(); len(out.Hook) >= len(body.Findings) {
			break
		}
	}
	out.HookRefused = recv.refused()
	return out
}

// receiver is the customer's webhook endpoint: a real HTTPS server that
// accepts a request only with a valid HMAC signature (siem.Verifier).
type receiver struct {
	v      *siem.Verifier
	mu     sync.Mutex
	bodies [][]byte
	bad    int
}

func (h *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		err = h.v.Verify(r.Header, body)
	}
	if err != nil {
		h.bad++
		http.Error(w, "refused", http.StatusUnauthorized)
		return
	}
	h.bodies = append(h.bodies, body)
	w.WriteHeader(http.StatusNoContent)
}

// findings returns the finding events accepted so far.
func (h *receiver) findings() []hookFinding {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hookFinding
	for _, b := range h.bodies {
		var e struct {
			SeverityID int `json:"severity_id"`
			Unmapped   struct {
				Action  string       `json:"action"`
				Finding siem.Finding `json:"finding"`
			} `json:"unmapped"`
		}
		if json.Unmarshal(b, &e) == nil && e.Unmapped.Action == siem.ActionFinding {
			out = append(out, hookFinding{SeverityID: e.SeverityID, Finding: e.Unmapped.Finding})
		}
	}
	return out
}

func (h *receiver) refused() int { h.mu.Lock(); defer h.mu.Unlock(); return h.bad }

func pemCert(srv *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

// copyEvidence copies the one version in the local vault's versions
// directory src to dst.
func copyEvidence(src, dst string) error {
	var files []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return fmt.Errorf("%d versions in %s, want 1", len(files), src)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o600)
}
