package cli

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCLIReviewAndPolicyFlow drives the review, policy and report
// commands against a real 'serve': the appliance admin starts the
// appliance-admin access review, decides every line, signs it with a
// step-up code and downloads the signed file, which 'report verify'
// accepts and rejects after one changed byte; /readyz shows when reviews
// are due; an operator adds, lists and shows a policy.
func TestCLIReviewAndPolicyFlow(t *testing.T) {
	e := startE2E(t, "FIQ_VAULT_BACKEND=local", "FIQ_VAULT_LOCAL_DIR="+t.TempDir())
	e.firstLogin()

	out := e.must("", "review", "start")
	if !strings.Contains(out, "open") || !strings.Contains(out, "user:") {
		t.Fatalf("review start: %q", out)
	}
	var list []struct{ ID, Status string }
	if err := json.Unmarshal([]byte(e.must("", "review", "list", "--json")), &list); err != nil || len(list) != 1 {
		t.Fatalf("review list: %+v %v", list, err)
	}
	id := list[0].ID
	if code, _, stderr := e.run("", "review", "decide", id, "user:x=maybe"); code != 2 || !strings.Contains(stderr, "ITEM=keep") {
		t.Fatalf("bad decision: exit %d %s", code, stderr)
	}
	// Signing with lines undecided is refused.
	if code, _, stderr := e.run(e.code()+"\n", "review", "sign", id); code == 0 || !strings.Contains(stderr, "undecided") {
		t.Fatalf("sign undecided: exit %d %s", code, stderr)
	}
	if out := e.must("", "review", "decide", id, "--rest", "keep", "--note", "quarterly"); !strings.Contains(out, "0 lines undecided") {
		t.Fatalf("decide: %q", out)
	}
	if out := e.must("", "review", "show", id); !strings.Contains(out, "keep") {
		t.Fatalf("show: %q", out)
	}
	// Without a code the sign is refused; with one it signs.
	if code, _, stderr := e.run("", "review", "sign", id); code == 0 || !strings.Contains(stderr, "step-up") {
		t.Fatalf("sign without a code: exit %d %s", code, stderr)
	}
	if out := e.must(e.code()+"\n", "review", "sign", id); !strings.Contains(out, "signed") {
		t.Fatalf("sign: %q", out)
	}
	file := filepath.Join(t.TempDir(), "review.json")
	e.must("", "review", "download", id, "-o", file)
	pub := filepath.Join(e.dir, "keys", "report.pub")
	if out := e.must("", "report", "verify", file, "--pub", pub); !strings.Contains(strings.ToLower(out), "verif") {
		t.Fatalf("report verify: %q", out)
	}
	// A second download does not overwrite the file.
	if code, _, _ := e.run("", "review", "download", id, "-o", file); code == 0 {
		t.Fatal("download overwrote a file")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), `"keep"`, `"kept"`, 1)
	if edited == string(b) {
		t.Fatal("nothing to edit")
	}
	bad := filepath.Join(t.TempDir(), "edited.json")
	if err := os.WriteFile(bad, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := e.run("", "report", "verify", bad, "--pub", pub); code != 1 {
		t.Fatalf("edited review: exit %d, want 1", code)
	}
	for _, f := range []string{"html", "pdf"} {
		e.must("", "review", "download", id, "--format", f, "-o", filepath.Join(t.TempDir(), "review."+f))
	}

	// /readyz says when each review is due (no credentials needed).
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := hc.Get(e.addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"reviews"`) || !strings.Contains(string(body), `"due_at"`) || !strings.Contains(string(body), `"last_signed"`) {
		t.Fatalf("readyz: %s", body)
	}

	// An operator's policy commands.
	out = e.must(e.code()+"\n", "user", "add", "--name", "olive", "--role", "operator", "--tenant", e.res.TenantID, "--json")
	var olive map[string]string
	if err := json.Unmarshal([]byte(out), &olive); err != nil {
		t.Fatal(err)
	}
	o := e.as()
	o.firstLoginAs("olive", olive["one_time_password"])
	pol := filepath.Join(t.TempDir(), "edge.yaml")
	src := "version: 1\nname: edge\nvantage_point: dmz\ndefault: deny\nrules:\n  - {name: ssh, action: deny, to: 10.0.0.0/24, ports: \"tcp:22\", severity: high}\n"
	if err := os.WriteFile(pol, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := o.must("", "policy", "add", pol); !strings.Contains(out, "policy edge version 1 stored") {
		t.Fatalf("policy add: %q", out)
	}
	if err := os.WriteFile(pol, []byte(strings.Replace(src, "action: deny", "action: nope", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := o.run("", "policy", "add", pol); code == 0 || !strings.Contains(stderr, "line 6") {
		t.Fatalf("invalid policy: exit %d %s", code, stderr)
	}
	if out := o.must("", "policy", "list"); !strings.Contains(out, "edge") || !strings.Contains(out, "dmz") {
		t.Fatalf("policy list: %q", out)
	}
	if out := o.must("", "policy", "show", "edge", "--version", "1"); !strings.Contains(out, "name: edge") {
		t.Fatalf("policy show: %q", out)
	}
	if out := o.must("", "report", "list"); !strings.Contains(out, "SCAN") {
		t.Fatalf("report list: %q", out)
	}
	if code, _, stderr := o.run("", "report", "create", "--scan", "scan_nope", "--policy", "edge"); code == 0 || !strings.Contains(stderr, "not_found") {
		t.Fatalf("report of an unknown scan: exit %d %s", code, stderr)
	}
	if code, _, stderr := o.run("", "report", "create", "--scan", "scan_a", "--scan", "scan_b", "--policy", "edge"); code == 0 || !strings.Contains(stderr, "not_found") {
		t.Fatalf("combined report of unknown scans: exit %d %s", code, stderr)
	}
	if code, _, stderr := o.run("", "scan", "export", "scan_nope"); code == 0 || !strings.Contains(stderr, "not_found") {
		t.Fatalf("export of an unknown scan: exit %d %s", code, stderr)
	}
	if code, _, stderr := o.run("", "scan", "export", "scan_nope", "--format", "csv"); code != 2 || !strings.Contains(stderr, "nmap-xml or jsonl") {
		t.Fatalf("export format: exit %d %s", code, stderr)
	}
	if code, _, stderr := o.run("", "policy", "evaluate", "edge"); code != 2 || !strings.Contains(stderr, "--scan or --nmap-xml") {
		t.Fatalf("evaluate without input: exit %d %s", code, stderr)
	}
	// Another scanner's Nmap XML, judged as unsigned imported evidence:
	// tcp/22 open on 10.0.0.5 is an exposure of rule ssh.
	xmlFile := filepath.Join(t.TempDir(), "nmap.xml")
	xml := `<?xml version="1.0"?><nmaprun scanner="nmap" args="nmap -sS 10.0.0.5" start="1795788000" version="7.94">` +
		`<host><status state="up" reason="syn-ack"/><address addr="10.0.0.5" addrtype="ipv4"/><ports>` +
		`<port protocol="tcp" portid="22"><state state="open" reason="syn-ack" reason_ttl="64"/></port></ports></host>` +
		`<runstats><finished time="1795788060"/><hosts up="1" down="0" total="1"/></runstats></nmaprun>`
	if err := os.WriteFile(xmlFile, []byte(xml), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := o.must("", "policy", "evaluate", "edge", "--nmap-xml", xmlFile); !strings.Contains(out, "IMPORTED: unsigned evidence") || !strings.Contains(out, "high exposure") {
		t.Fatalf("policy evaluate --nmap-xml: %q", out)
	}
}
