package report_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"firewalliq/appliance"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/internal/apptest"
	"firewalliq/appliance/keyring"
	"firewalliq/appliance/report"
	"firewalliq/appliance/report/verify"
	"firewalliq/appliance/scan"
	"firewalliq/audit"
	"firewalliq/probe/keys"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// listen starts a TCP listener on 127.0.0.1 that accepts and closes
// connections until the test ends, and returns its port.
func listen(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for range 1 << 16 {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestReportFromScan runs the whole path on one appliance, on loopback: a
// non-production scan of three 127.0.0.1 ports (a canary, a listening
// service the policy denies: the deliberate mistake, and a closed port)
// through the scan service; a policy; a report created from the completed
// scan (assembled by Reports.Input), which verifies offline with the
// evidence files, shows the mistake as an exposure, and fails after any
// changed byte of the report or of an evidence file.
func TestReportFromScan(t *testing.T) {
	vaultDir := filepath.Join(t.TempDir(), "vault")
	f := apptest.New(t, func(c *appliance.Config) {
		c.Production = false
		c.Vault.Backend, c.Vault.LocalDir = "local", vaultDir
	})
	f.Clock.Flow()
	lead, op := f.Users["security_lead"], f.Users["operator"]
	ctx := f.Ctx

	pub, priv, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := keys.MarshalPublic(pub)
	if _, err := f.App.ScopeKeys.Add(ctx, lead.P, "", "lead key", pb, f.Code(lead)); err != nil {
		t.Fatal(err)
	}
	canary, mistake := listen(t), listen(t)
	cl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := cl.Addr().(*net.TCPAddr).Port
	cl.Close()
	now := f.Clock.Now()
	doc := scope.Document{ID: "lab", Tenant: "alpha", Name: "loopback", Environment: scope.EnvNonProduction,
		CIDRs: []string{"127.0.0.1/32"}, Exclude: []string{}, Ports: fmt.Sprintf("tcp:%d,%d,%d", canary, mistake, closed),
		Probes: []safety.Kind{safety.KindTCPConnect}, NotBefore: now.Add(-time.Hour).Truncate(time.Second),
		NotAfter: now.Add(24 * time.Hour).Truncate(time.Second), MaxPPS: 50, SignerKeyID: keys.ID(pub)}
	signedScope, err := scope.Sign(doc, priv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.App.Scopes.Register(ctx, lead.P, "", signedScope); err != nil {
		t.Fatal(err)
	}

	// The scan, with the requester's step-up, run by the scan service.
	req := scan.ScanRequest{ScopeID: "lab", Targets: []string{"127.0.0.1"}, Rate: 40}
	_, err = f.App.Scans.Request(ctx, op.P, "", req, "")
	var ch *auth.StepUpChallenge
	if !errors.As(err, &ch) {
		t.Fatalf("Request: %v", err)
	}
	if _, err := f.App.Auth.StepUpFor(ctx, op.P, ch.Op, ch.Request, f.Code(op)); err != nil {
		t.Fatal(err)
	}
	sc, err := f.App.Scans.Request(ctx, op.P, "", req, "")
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f.App.Scans.Run(runCtx) }()
	defer func() { cancel(); wg.Wait() }()

	// A report of a scan that has not completed is refused.
	if _, err := f.App.Reports.Create(ctx, op.P, "", report.CreateRequest{ScanID: "scan_nope", Policy: "loopback"}); !errors.Is(err, scan.ErrScanNotFound) {
		t.Fatalf("report of an unknown scan: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for sc.State != scan.StateCompleted && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		if sc, err = f.App.Scans.Get(ctx, op.P, "", sc.ID); err != nil {
			t.Fatal(err)
		}
		if sc.State == scan.StateFailed || sc.State == scan.StateCancelled {
			t.Fatalf("scan %s: %s", sc.State, sc.Reason)
		}
	}
	if sc.State != scan.StateCompleted {
		t.Fatalf("scan is %s", sc.State)
	}

	src := fmt.Sprintf(`version: 1
name: loopback
vantage_point: self
default: deny
canaries:
  - {name: canary, target: 127.0.0.1, port: %d}
rules:
  - {name: canary-open, action: allow, to: 127.0.0.1, ports: "tcp:%d", severity: high}
  - {name: must-be-closed, action: deny, to: 127.0.0.1, ports: "tcp:%d,%d", denial: reject, severity: critical}
`, canary, canary, mistake, closed)
	if _, err := f.App.Policies.Create(ctx, op.P, "", []byte(src)); err != nil {
		t.Fatal(err)
	}

	// Refusals: an auditor may not create a report (and no evaluation is
	// recorded on their behalf); an unknown policy is not found.
	mark := f.Head()
	if _, err := f.App.Reports.Create(ctx, f.Users["auditor"].P, "", report.CreateRequest{ScanID: sc.ID, Policy: "loopback"}); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("auditor: %v", err)
	}
	if es := f.Entries(mark, audit.ActPolicyEvaluate); len(es) != 0 {
		t.Fatalf("a refused report recorded an evaluation: %+v", es)
	}

	// A daily anchor of the log so far: the report carries the
	// consistency proof from it to the report's checkpoint.
	if _, err := f.App.Evidence.AnchorNow(ctx); err != nil {
		t.Fatal(err)
	}
	mark = f.Head()
	c, err := f.App.Reports.Create(ctx, op.P, "", report.CreateRequest{ScanID: sc.ID, Policy: "loopback"})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []audit.Action{audit.ActPolicyEvaluate, audit.ActReportSign} {
		if es := f.Entries(mark, a); len(es) != 1 || es[0].ActorID != op.P.UserID {
			t.Fatalf("%s entries after create: %+v", a, es)
		}
	}

	// Listed and shown from the audit log; downloaded as the same bytes.
	list, err := f.App.Reports.List(ctx, f.Users["auditor"].P, "")
	if err != nil || len(list) != 1 || list[0].ID != c.ID || list[0].SHA256 != c.SHA256 || list[0].ScanID != sc.ID {
		t.Fatalf("List: %+v %v", list, err)
	}
	if _, err := f.App.Reports.Get(ctx, f.Users["other_admin"].P, "", c.ID); !errors.Is(err, report.ErrNotFound) {
		t.Fatalf("another tenant's Get: %v", err)
	}
	signed, ct, err := f.App.Reports.Download(ctx, f.Users["auditor"].P, "", c.ID, "json")
	if err != nil || ct != "application/json" || !bytes.Equal(signed, c.Signed) {
		t.Fatalf("Download json: %s %v", ct, err)
	}
	for _, format := range []string{"html", "pdf"} {
		if b, _, err := f.App.Reports.Download(ctx, op.P, "", c.ID, format); err != nil || len(b) < 100 {
			t.Fatalf("Download %s: %d bytes, %v", format, len(b), err)
		}
	}

	// The evidence files, as an auditor would export them: upload the
	// spool to the (local) vault and lay each object out under its key.
	if err := f.App.Evidence.Vault().Flush(ctx); err != nil {
		t.Fatal(err)
	}
	reportPub, _ := f.App.Keys.Public(keyring.Report)
	auditPub, _ := f.App.Keys.Public(keyring.Audit)
	res, err := verify.Verify(signed, verify.Options{ReportKey: reportPub, AuditKey: auditPub})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	r := res.Report
	evDir := t.TempDir()
	for _, e := range r.Evidence {
		vs, _ := filepath.Glob(filepath.Join(vaultDir, filepath.FromSlash(e.Name)+".v", "*"))
		if len(vs) != 1 {
			t.Fatalf("evidence %s in the vault: %v", e.Name, vs)
		}
		b, err := os.ReadFile(vs[0])
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(evDir, filepath.FromSlash(e.Name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opts := verify.Options{ReportKey: reportPub, AuditKey: auditPub, EvidenceDir: evDir}
	if res, err = verify.Verify(signed, opts); err != nil || res.EvidenceFiles < 2 || res.Proofs != res.EvidenceFiles || !res.Anchored || r.Anchor == nil {
		t.Fatalf("verify with evidence: %+v %v", res, err)
	}

	// What the report says about the scan.
	verdicts := map[string]string{}
	for _, v := range r.Verdicts {
		verdicts[v.Rule] = v.Verdict
	}
	if verdicts["canary-open"] != "pass" || verdicts["must-be-closed"] != "fail" || r.Summary.Findings["exposure"] != 1 {
		t.Fatalf("verdicts %v, findings %v", verdicts, r.Summary.Findings)
	}
	if r.Scope.ID != "lab" || r.Scope.SHA256 != sc.ScopeSHA256 || r.Job.ID != sc.Job.ID || r.Job.SHA256 != sc.Job.SHA256 ||
		r.Policy.Name != "loopback" || r.Policy.Version != 1 || r.Summary.Results != 3 || r.Tenant != f.Tenant {
		t.Fatalf("report header: scope %+v job %+v policy %s/%d results %d tenant %s", r.Scope, r.Job, r.Policy.Name, r.Policy.Version, r.Summary.Results, r.Tenant)
	}
	if r.Rate.RequestedPPS != 40 || r.Rate.PacketsSent < 3 || r.Rate.CapPPS == 0 || r.Profile.ID == "" {
		t.Fatalf("rate %+v profile %+v", r.Rate, r.Profile)
	}
	names := []string{}
	for _, o := range r.Operators {
		names = append(names, o.Name)
	}
	if !slices.Contains(names, "operator") {
		t.Fatalf("operators %v", names)
	}
	if r.Window.Start == "" || r.Window.End <= r.Window.Start {
		t.Fatalf("window %+v", r.Window)
	}
	if r.Verification.ReportKeyID != keys.ID(reportPub) || r.Verification.AuditKeyID != keys.ID(auditPub) {
		t.Fatalf("verification %+v", r.Verification)
	}

	// One changed byte anywhere fails: in the report, and in an evidence
	// file.
	edited := bytes.Replace(signed, []byte(`"must-be-closed"`), []byte(`"must-be-clused"`), 1)
	if _, err := verify.Verify(edited, opts); err == nil {
		t.Fatal("an edited report verifies")
	}
	ev := filepath.Join(evDir, filepath.FromSlash(r.Evidence[0].Name))
	b, _ := os.ReadFile(ev)
	b[len(b)/2] ^= 1
	if err := os.WriteFile(ev, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := verify.Verify(signed, opts); !errors.Is(err, verify.ErrEvidence) || !strings.Contains(err.Error(), r.Evidence[0].Name) {
		t.Fatalf("changed evidence: %v, want ErrEvidence naming it", err)
	}
	// A tampered working copy is refused for download.
	cp := filepath.Join(f.Cfg.DataDir, appliance.ReportsDir, f.Tenant, c.ID+".json")
	if err := os.WriteFile(cp, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.App.Reports.Download(ctx, op.P, "", c.ID, "json"); !errors.Is(err, verify.ErrSignature) {
		t.Fatalf("tampered working copy: %v", err)
	}
}
