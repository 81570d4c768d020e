package ui

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/keyring"
	"firewalliq/appliance/report/verify"
	"firewalliq/appliance/scan"
	"firewalliq/probe/keys"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// completedScan registers a loopback scope (a listening port and a closed
// one on 127.0.0.1), runs a non-production scan of it through the scan
// service and returns the scan id, the open and the closed port.
func (f *fixture) completedScan() (string, int, int) {
	t := f.t
	t.Helper()
	pub, priv, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.app.ScopeKeys.Add(f.ctx, f.principal("a-lead"), "", "lead key", pemPublic(t, pub), f.code("a-lead")); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for range 1 << 12 {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	open := ln.Addr().(*net.TCPAddr).Port
	cl, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := cl.Addr().(*net.TCPAddr).Port
	cl.Close()
	now := f.clk.now()
	doc := scope.Document{ID: "lab", Tenant: "default", Name: "loopback", Environment: scope.EnvNonProduction,
		CIDRs: []string{"127.0.0.1/32"}, Exclude: []string{}, Ports: fmt.Sprintf("tcp:%d,%d", open, closed), Probes: []safety.Kind{safety.KindTCPConnect},
		NotBefore: now.Add(-time.Hour).Truncate(time.Second), NotAfter: now.Add(24 * time.Hour).Truncate(time.Second), MaxPPS: 50, SignerKeyID: keys.ID(pub)}
	b, err := scope.Sign(doc, priv)
	if err != nil {
		t.Fatal(err)
	}
	if rec := f.do(request{method: "POST", path: "/api/v1/scopes", as: "a-lead", body: string(b)}); rec.Code != 201 {
		t.Fatalf("register scope: %d %s", rec.Code, rec.Body)
	}
	return f.runScan(), open, closed
}

// runScan runs another non-production scan of completedScan's scope
// through the scan service, as the operator, and returns its id.
func (f *fixture) runScan() string {
	t := f.t
	t.Helper()
	op := f.principal("a-op")
	req := scan.ScanRequest{ScopeID: "lab", Targets: []string{"127.0.0.1"}, Rate: 40}
	_, err := f.app.Scans.Request(f.ctx, op, "", req, "")
	var ch *auth.StepUpChallenge
	if !errors.As(err, &ch) {
		t.Fatalf("scan request: %v", err)
	}
	if _, err := f.svc.StepUpFor(f.ctx, op, ch.Op, ch.Request, f.code("a-op")); err != nil {
		t.Fatal(err)
	}
	sc, err := f.app.Scans.Request(f.ctx, op, "", req, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f.app.Scans.Run(ctx) }()
	defer func() { cancel(); wg.Wait() }()
	for deadline := time.Now().Add(scanWait); sc.State != scan.StateCompleted; {
		if time.Now().After(deadline) || sc.State == scan.StateFailed {
			t.Fatalf("scan %s: %s", sc.State, sc.Reason)
		}
		time.Sleep(20 * time.Millisecond)
		if sc, err = f.app.Scans.Get(f.ctx, op, "", sc.ID); err != nil {
			t.Fatal(err)
		}
	}
	return sc.ID
}

// TestPolicyAndReportRoutes: policies (create with line-numbered
// validation errors, versions, list, show, dry run against a registered
// scope, evaluate a completed scan, baseline with step-up) and reports
// (create from the scan, list, show, download json|html|pdf), each with
// its roles and audit entries; the downloaded report verifies offline.
func TestPolicyAndReportRoutes(t *testing.T) {
	f := newFixture(t)
	scanID, open, closed := f.completedScan()
	src := fmt.Sprintf(`version: 1
name: edge
vantage_point: self
default: deny
canaries:
  - {name: canary, target: 127.0.0.1, port: %d}
rules:
  - {name: web, action: allow, to: 127.0.0.1, ports: "tcp:%d", severity: high}
  - {name: closed, action: deny, to: 127.0.0.1, ports: "tcp:%d", severity: critical}
`, open, open, closed)

	// Create: operators and leads; auditors are refused; a bad document
	// names its line.
	before := f.head()
	rec := f.do(request{method: "POST", path: "/api/v1/policies", as: "a-op", body: jsonBody(map[string]string{"source": src})})
	if rec.Code != 201 || !strings.Contains(rec.Body.String(), `"version":1`) {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	if got := actions(f.since(before)); !slices.Equal(got, []string{"policy.create"}) {
		t.Fatalf("audit %v", got)
	}
	if rec := f.do(request{method: "POST", path: "/api/v1/policies", as: "a-op", body: jsonBody(map[string]string{"source": src})}); rec.Code != 201 || !strings.Contains(rec.Body.String(), `"version":2`) {
		t.Fatalf("second version: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "POST", path: "/api/v1/policies", as: "a-aud", body: jsonBody(map[string]string{"source": src})}); rec.Code != 403 {
		t.Fatalf("auditor create: %d %s", rec.Code, rec.Body)
	}
	bad := strings.Replace(src, "action: allow", "action: permit", 1)
	if rec := f.do(request{method: "POST", path: "/api/v1/policies", as: "a-op", body: jsonBody(map[string]string{"source": bad})}); rec.Code != 422 || !strings.Contains(rec.Body.String(), "line 8") {
		t.Fatalf("invalid policy: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/policies", as: "a-aud"}); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"edge"`) {
		t.Fatalf("list: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/policies/edge?version=1", as: "a-aud"}); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"version":1`) || !strings.Contains(rec.Body.String(), `"source"`) {
		t.Fatalf("show: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/policies/edge", as: "b-admin"}); rec.Code != 404 {
		t.Fatalf("other tenant: %d %s", rec.Code, rec.Body)
	}
	rec = f.do(request{method: "POST", path: "/api/v1/policies/edge/dry-run", as: "a-aud", body: jsonBody(map[string]string{"scope_id": "lab"})})
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"coverage"`) {
		t.Fatalf("dry run: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "POST", path: "/api/v1/policies/edge/dry-run", as: "a-aud", body: `{}`}); rec.Code != 400 {
		t.Fatalf("dry run without scope: %d %s", rec.Code, rec.Body)
	}

	// Evaluate a completed scan: findings, audited.
	before = f.head()
	rec = f.do(request{method: "POST", path: "/api/v1/policies/edge/evaluate", as: "a-op", body: jsonBody(map[string]string{"scan_id": scanID})})
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"pass"`) {
		t.Fatalf("evaluate: %d %s", rec.Code, rec.Body)
	}
	if got := actions(f.since(before)); !slices.Equal(got, []string{"policy.evaluate"}) {
		t.Fatalf("audit %v", got)
	}
	if rec := f.do(request{method: "POST", path: "/api/v1/policies/edge/evaluate", as: "a-op", body: jsonBody(map[string]string{"scan_id": "scan_nope"})}); rec.Code != 404 {
		t.Fatalf("evaluate unknown scan: %d %s", rec.Code, rec.Body)
	}
	// Baseline: security leads, with step-up.
	if rec := f.do(request{method: "POST", path: "/api/v1/policies/edge/baseline", as: "a-op", body: jsonBody(map[string]string{"scan_id": scanID})}); rec.Code != 403 {
		t.Fatalf("operator baseline: %d %s", rec.Code, rec.Body)
	}
	res, got := f.sensitive(request{method: "POST", path: "/api/v1/policies/edge/baseline", as: "a-lead", body: jsonBody(map[string]string{"scan_id": scanID})})
	if res.Code != 201 || !slices.Contains(got, "policy.baseline.accept") {
		t.Fatalf("baseline: %d %s; audit %v", res.Code, res.Bytes(), got)
	}

	// Reports.
	if rec := f.do(request{method: "POST", path: "/api/v1/reports", as: "a-aud", body: jsonBody(map[string]string{"scan_id": scanID, "policy": "edge"})}); rec.Code != 403 {
		t.Fatalf("auditor report: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "POST", path: "/api/v1/reports", as: "a-op", body: jsonBody(map[string]string{"scan_id": scanID, "policy": "nope"})}); rec.Code != 404 {
		t.Fatalf("unknown policy: %d %s", rec.Code, rec.Body)
	}
	before = f.head()
	rec = f.do(request{method: "POST", path: "/api/v1/reports", as: "a-op", body: jsonBody(map[string]string{"scan_id": scanID, "policy": "edge"})})
	if rec.Code != 201 {
		t.Fatalf("create report: %d %s", rec.Code, rec.Body)
	}
	var created struct{ ID, SHA256 string }
	decode(t, rec, &created)
	if got := actions(f.since(before)); !slices.Contains(got, "policy.evaluate") || !slices.Contains(got, "report.sign") || !slices.Contains(got, "evidence.spool") {
		t.Fatalf("audit %v", got)
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/reports", as: "a-aud"}); rec.Code != 200 || !strings.Contains(rec.Body.String(), created.ID) {
		t.Fatalf("list reports: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/reports/" + created.ID, as: "a-aud"}); rec.Code != 200 || !strings.Contains(rec.Body.String(), created.SHA256) {
		t.Fatalf("show report: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/reports/" + created.ID, as: "b-admin"}); rec.Code != 404 {
		t.Fatalf("other tenant's report: %d %s", rec.Code, rec.Body)
	}
	rec = f.do(request{method: "GET", path: "/api/v1/reports/" + created.ID + "/download?format=json", as: "a-aud"})
	if rec.Code != 200 || !strings.Contains(rec.Header().Get("Content-Disposition"), "report-"+created.ID+".json") {
		t.Fatalf("download json: %d %s", rec.Code, rec.Body)
	}
	rk, _ := f.app.Keys.Public(keyring.Report)
	ak, _ := f.app.Keys.Public(keyring.Audit)
	vr, err := verify.Verify(rec.Body.Bytes(), verify.Options{ReportKey: rk, AuditKey: ak})
	if err != nil {
		t.Fatalf("downloaded report does not verify: %v", err)
	}
	if s := vr.Report.Scan; s.ID != scanID || s.Vantage != "local" || s.VantageLabel != "local" {
		t.Errorf("report names scan %+v, want %s from the appliance itself", s, scanID)
	}
	for format, ct := range map[string]string{"html": "text/html", "pdf": "application/pdf"} {
		rec := f.do(request{method: "GET", path: "/api/v1/reports/" + created.ID + "/download?format=" + format, as: "a-op"})
		if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), ct) {
			t.Fatalf("download %s: %d %s", format, rec.Code, rec.Header())
		}
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/reports/" + created.ID + "/download?format=docx", as: "a-op"}); rec.Code != 400 {
		t.Fatalf("bad format: %d %s", rec.Code, rec.Body)
	}

	// A combined report of two scans, each judged against its policy.
	scan2 := f.runScan()
	parts := map[string]any{"parts": []map[string]any{{"scan_id": scanID, "policy": "edge"}, {"scan_id": scan2, "policy": "edge", "policy_version": 1}}}
	if rec := f.do(request{method: "POST", path: "/api/v1/reports", as: "a-op", body: jsonBody(map[string]any{"scan_id": scanID, "policy": "edge", "parts": parts["parts"]})}); rec.Code != 400 {
		t.Fatalf("scan_id and parts together: %d %s", rec.Code, rec.Body)
	}
	dup := map[string]any{"parts": []map[string]any{{"scan_id": scanID, "policy": "edge"}, {"scan_id": scanID, "policy": "edge"}}}
	if rec := f.do(request{method: "POST", path: "/api/v1/reports", as: "a-op", body: jsonBody(dup)}); rec.Code != 400 {
		t.Fatalf("one scan twice: %d %s", rec.Code, rec.Body)
	}
	before = f.head()
	rec = f.do(request{method: "POST", path: "/api/v1/reports", as: "a-op", body: jsonBody(parts)})
	if rec.Code != 201 {
		t.Fatalf("create combined report: %d %s", rec.Code, rec.Body)
	}
	decode(t, rec, &created)
	if got := actions(f.since(before)); !slices.Equal(got, []string{"policy.evaluate", "policy.evaluate", "evidence.spool", "report.sign"}) {
		t.Fatalf("audit %v", got)
	}
	rec = f.do(request{method: "GET", path: "/api/v1/reports/" + created.ID, as: "a-aud"})
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"scan_ids":["`+scanID+`","`+scan2+`"]`) || !strings.Contains(rec.Body.String(), `"vantages":["local","local"]`) {
		t.Fatalf("show combined report: %d %s", rec.Code, rec.Body)
	}
	rec = f.do(request{method: "GET", path: "/api/v1/reports/" + created.ID + "/download", as: "a-aud"})
	vr, err = verify.Verify(rec.Body.Bytes(), verify.Options{ReportKey: rk, AuditKey: ak})
	if err != nil || vr.Combined == nil || len(vr.Combined.Parts) != 2 || vr.Combined.Parts[1].Scan.ID != scan2 || vr.Combined.Parts[1].Policy.Version != 1 {
		t.Fatalf("combined report: %v %+v", err, vr.Combined)
	}
	rec = f.do(request{method: "GET", path: "/api/v1/reports/" + created.ID + "/download?format=html", as: "a-aud"})
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "Scan 2 of 2: "+scan2+" from the appliance itself (local)") {
		t.Fatalf("combined html: %d", rec.Code)
	}
}

// TestReviewRoutes: an admin starts a review (audited), decides every
// line, signs with step-up and downloads the signed review, which verifies
// offline; operators may not start one; the due date reads back.
func TestReviewRoutes(t *testing.T) {
	f := newFixture(t)
	if rec := f.do(request{method: "POST", path: "/api/v1/reviews", as: "a-op", body: `{}`}); rec.Code != 403 {
		t.Fatalf("operator start: %d %s", rec.Code, rec.Body)
	}
	before := f.head()
	rec := f.do(request{method: "POST", path: "/api/v1/reviews", as: "a-admin", body: `{}`})
	if rec.Code != 201 {
		t.Fatalf("start: %d %s", rec.Code, rec.Body)
	}
	if got := actions(f.since(before)); !slices.Equal(got, []string{"review.create"}) {
		t.Fatalf("audit %v", got)
	}
	var rv struct {
		ID        string
		Undecided []string
	}
	decode(t, rec, &rv)
	if len(rv.Undecided) == 0 {
		t.Fatalf("a review with no lines: %s", rec.Body)
	}
	if rec := f.do(request{method: "POST", path: "/api/v1/reviews", as: "a-admin", body: `{}`}); rec.Code != 409 {
		t.Fatalf("second open review: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/reviews", as: "a-aud"}); rec.Code != 200 || !strings.Contains(rec.Body.String(), rv.ID) {
		t.Fatalf("list: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/reviews/" + rv.ID, as: "b-admin"}); rec.Code != 404 {
		t.Fatalf("other tenant: %d %s", rec.Code, rec.Body)
	}
	// Signing before every line is decided is refused.
	if rec := f.do(request{method: "POST", path: "/api/v1/reviews/" + rv.ID + "/sign", as: "a-admin", body: `{}`}); rec.Code != 401 && rec.Code != 409 {
		t.Fatalf("sign undecided: %d %s", rec.Code, rec.Body)
	}
	var ds []map[string]string
	for _, item := range rv.Undecided {
		ds = append(ds, map[string]string{"item": item, "decision": "keep"})
	}
	before = f.head()
	if rec := f.do(request{method: "POST", path: "/api/v1/reviews/" + rv.ID + "/decide", as: "a-lead", body: jsonBody(map[string]any{"decisions": ds})}); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"undecided":[]`) {
		t.Fatalf("decide: %d %s", rec.Code, rec.Body)
	}
	if got := actions(f.since(before)); !slices.Equal(got, []string{"review.decide"}) {
		t.Fatalf("audit %v", got)
	}
	if rec := f.do(request{method: "POST", path: "/api/v1/reviews/" + rv.ID + "/decide", as: "a-lead", body: jsonBody(map[string]any{"decisions": []map[string]string{{"item": "user:nope", "decision": "maybe"}}})}); rec.Code != 400 {
		t.Fatalf("bad decision: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/reviews/" + rv.ID + "/download", as: "a-aud"}); rec.Code != 409 {
		t.Fatalf("download unsigned: %d %s", rec.Code, rec.Body)
	}
	res, got := f.sensitive(request{method: "POST", path: "/api/v1/reviews/" + rv.ID + "/sign", as: "a-admin", body: `{}`})
	if res.Code != 200 || !slices.Contains(got, "review.sign") {
		t.Fatalf("sign: %d %s; audit %v", res.Code, res.Bytes(), got)
	}
	rec = f.do(request{method: "GET", path: "/api/v1/reviews/" + rv.ID + "/download?format=json", as: "a-aud"})
	if rec.Code != 200 {
		t.Fatalf("download: %d %s", rec.Code, rec.Body)
	}
	rk, _ := f.app.Keys.Public(keyring.Report)
	if res, err := verify.Verify(rec.Body.Bytes(), verify.Options{ReportKey: rk}); err != nil || res.Review == nil {
		t.Fatalf("downloaded review does not verify: %v", err)
	}
	for format, ct := range map[string]string{"html": "text/html", "pdf": "application/pdf"} {
		rec := f.do(request{method: "GET", path: "/api/v1/reviews/" + rv.ID + "/download?format=" + format, as: "a-admin"})
		if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), ct) {
			t.Fatalf("download %s: %d", format, rec.Code)
		}
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/reviews/due", as: "a-aud"}); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"overdue":false`) {
		t.Fatalf("due: %d %s", rec.Code, rec.Body)
	}
}

// TestScanExportNdiff: two scans of the same loopback scope, a port
// opened between them, exported as Nmap XML through the API; Debian's
// ndiff reads both exports and reports exactly that change (the CI check
// that our export is Nmap XML other tools read). JSON Lines exports too;
// an unknown format is refused and another tenant's scan is not found.
func TestScanExportNdiff(t *testing.T) {
	ndiff, err := exec.LookPath("ndiff")
	if err != nil {
		t.Skip("ndiff not installed (apt-get install ndiff): the export is not checked against it")
	}
	f := newFixture(t)
	scanA, open, closed := f.completedScan()
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", closed))
	if err != nil {
		t.Skipf("port %d was taken between the scans: %v", closed, err)
	}
	defer ln.Close()
	go func() {
		for range 1 << 12 {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	scanB := f.runScan()

	dir := t.TempDir()
	export := func(id string) string {
		rec := f.do(request{method: "GET", path: "/api/v1/scans/" + id + "/export?format=nmap-xml", as: "a-aud"})
		if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/xml") ||
			!strings.Contains(rec.Header().Get("Content-Disposition"), "scan-"+id+".xml") || !strings.Contains(rec.Body.String(), "<nmaprun") {
			t.Fatalf("export %s: %d %s %s", id, rec.Code, rec.Header(), rec.Body)
		}
		p := filepath.Join(dir, id+".xml")
		if err := os.WriteFile(p, rec.Body.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pa, pb := export(scanA), export(scanB)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, ndiff, pa, pa).CombinedOutput(); err != nil {
		t.Fatalf("ndiff of an export with itself: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, ndiff, pa, pb).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("ndiff A B: %v (want exit 1: differences)\n%s", err, out)
	}
	want := fmt.Sprintf("+%d/tcp open", closed)
	if !strings.Contains(string(out), want) || !strings.Contains(string(out), fmt.Sprintf("-%d/tcp closed", closed)) {
		t.Fatalf("ndiff did not report tcp/%d closed -> open:\n%s", closed, out)
	}
	t.Logf("ndiff:\n%s", out)

	rec := f.do(request{method: "GET", path: "/api/v1/scans/" + scanB + "/export?format=jsonl", as: "a-op"})
	if rec.Code != 200 || strings.Count(rec.Body.String(), "\n") != 2 || !strings.Contains(rec.Body.String(), `"state":"open"`) {
		t.Fatalf("jsonl export: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/scans/" + scanB + "/export?format=csv", as: "a-op"}); rec.Code != 400 {
		t.Fatalf("unknown format: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/scans/" + scanB + "/export", as: "b-admin"}); rec.Code != 404 {
		t.Fatalf("other tenant's scan: %d %s", rec.Code, rec.Body)
	}

	// Import: scan B's Nmap XML, as another scanner's output, judged
	// against a policy that denies the port opened between the scans: an
	// exposure, recorded and forwarded as unsigned imported evidence.
	src := fmt.Sprintf("version: 1\nname: edge\nvantage_point: self\ndefault: deny\nrules:\n"+
		"  - {name: web, action: allow, to: 127.0.0.1, ports: \"tcp:%d\", severity: high}\n"+
		"  - {name: closed, action: deny, to: 127.0.0.1, ports: \"tcp:%d\", severity: critical}\n", open, closed)
	if rec := f.do(request{method: "POST", path: "/api/v1/policies", as: "a-op", body: jsonBody(map[string]string{"source": src})}); rec.Code != 201 {
		t.Fatalf("create policy: %d %s", rec.Code, rec.Body)
	}
	xmlB, err := os.ReadFile(pb)
	if err != nil {
		t.Fatal(err)
	}
	if rec := f.do(request{method: "POST", path: "/api/v1/policies/edge/evaluate", as: "a-op", body: jsonBody(map[string]string{"scan_id": scanB, "nmap_xml": string(xmlB)})}); rec.Code != 400 {
		t.Fatalf("scan_id and nmap_xml together: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "POST", path: "/api/v1/policies/edge/evaluate", as: "a-op", body: jsonBody(map[string]string{"nmap_xml": "<nmaprun><host>"})}); rec.Code != 422 && rec.Code != 400 {
		t.Fatalf("malformed nmap xml: %d %s", rec.Code, rec.Body)
	}
	before := f.head()
	rec = f.do(request{method: "POST", path: "/api/v1/policies/edge/evaluate", as: "a-op", body: jsonBody(map[string]string{"nmap_xml": string(xmlB)})})
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"imported":true`) || !strings.Contains(rec.Body.String(), `"kind":"exposure"`) {
		t.Fatalf("evaluate imported: %d %s", rec.Code, rec.Body)
	}
	es := f.since(before)
	if got := actions(es); !slices.Equal(got, []string{"policy.evaluate"}) || !strings.Contains(string(es[0].Details), `"imported":true`) || !strings.HasPrefix(es[0].Object, "scan:nmap-") {
		t.Fatalf("audit %v %+v", got, es)
	}
}
