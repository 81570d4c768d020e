package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// outputs records what management commands print, exactly, against a real
// 'serve': stdout, stderr (with the step-up prompt) and the exit code of
// each step, with the values that differ from run to run (ids, hashes,
// times, signatures) replaced by placeholders numbered in order of first
// appearance, so that the same id reads the same everywhere in the file.
type outputs struct {
	t    *testing.T
	b    strings.Builder
	seen map[string]string
	// fixed are literal values to replace first (the test's temporary
	// directory, the listener's port).
	fixed *strings.Replacer
}

var (
	volatileTime = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
	volatileRID  = regexp.MustCompile(`\(request [0-9a-f]{16}\)`)
	volatileB64  = regexp.MustCompile(`[A-Za-z0-9+/_-]{43,}={0,2}`)
	volatileID   = regexp.MustCompile(`\b([a-z]+_)?[0-9a-f]{16}\b|\b[0-9a-f]{64}\b|\bfiq-[0-9a-f]{12}\b`)
	// A started scan is queued or already running when the answer is
	// written: the race is the appliance's, not the command's.
	volatileState = regexp.MustCompile(`\b(queued|running)\b`)
	// The audit sequence number depends on how many logins came before.
	volatileSeq = regexp.MustCompile(`(audit entry|"audit_seq":) ?\d+`)
	// Table columns are as wide as their widest cell, and a time's
	// fraction varies in length: gaps between cells are kept, not widths.
	tableGap = regexp.MustCompile(`(\S) {2,}`)
)

func (o *outputs) norm(s string) string {
	s = o.fixed.Replace(s)
	s = volatileTime.ReplaceAllString(s, "<time>")
	s = volatileRID.ReplaceAllString(s, "(request <rid>)")
	s = volatileID.ReplaceAllStringFunc(s, func(id string) string {
		if p, ok := o.seen[id]; ok {
			return p
		}
		prefix, _, ok := strings.Cut(strings.ReplaceAll(id, "-", "_"), "_")
		if !ok {
			prefix = "hex"
		}
		if len(id) == 64 {
			prefix = "sha256"
		}
		p := fmt.Sprintf("<%s%d>", prefix, len(o.seen)+1)
		o.seen[id] = p
		return p
	})
	s = volatileB64.ReplaceAllString(s, "<b64>")
	s = volatileState.ReplaceAllString(s, "<queued|running>")
	s = volatileSeq.ReplaceAllString(s, "$1 <seq>")
	s = tableGap.ReplaceAllString(s, "$1  ")
	return s
}

// step runs args as e with stdin and records the result; it returns the
// raw stdout for the test to pick ids from.
func (o *outputs) step(e *e2e, who, stdin string, args ...string) string {
	o.t.Helper()
	code, out, stderr := e.run(stdin, args...)
	fmt.Fprintf(&o.b, "$ [%s] firewalliq %s\nexit %d\n", who, o.norm(strings.Join(args, " ")), code)
	if out != "" {
		fmt.Fprintf(&o.b, "--- stdout\n%s", o.norm(out))
		if !strings.HasSuffix(out, "\n") {
			o.b.WriteString("<no newline>\n")
		}
	}
	if stderr != "" {
		fmt.Fprintf(&o.b, "--- stderr\n%s", o.norm(stderr))
	}
	o.b.WriteString("\n")
	return out
}

// id decodes the "id" of a JSON answer.
func jsonID(t *testing.T, out string) string {
	t.Helper()
	var v struct{ ID string }
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.ID == "" {
		t.Fatalf("no id in %q: %v", out, err)
	}
	return v.ID
}

// TestRemoteOutputs pins the text and JSON output, exit codes and step-up
// prompting of the management commands that share constructors (scope
// keys, scans and their approvals, schedules, reviews, policies, reports,
// shows) in testdata/remote-outputs.golden. Update it with -update only
// when an output is meant to change.
func TestRemoteOutputs(t *testing.T) {
	e := startE2E(t, "FIQ_VAULT_BACKEND=local", "FIQ_VAULT_LOCAL_DIR="+t.TempDir())
	e.firstLogin()
	o := &outputs{t: t, seen: map[string]string{}, fixed: strings.NewReplacer()}
	people := map[string]*e2e{"root": e}
	for _, p := range []struct{ name, role string }{{"sam", "security_lead"}, {"ann", "approver"}, {"abe", "approver"}, {"olive", "operator"}} {
		var u map[string]string
		if err := json.Unmarshal([]byte(e.must(e.code()+"\n", "user", "add", "--name", p.name, "--role", p.role, "--tenant", e.res.TenantID, "--json")), &u); err != nil {
			t.Fatal(err)
		}
		people[p.name] = e.as()
		people[p.name].firstLoginAs(p.name, u["one_time_password"])
	}
	sam, ann, abe, olive := people["sam"], people["ann"], people["abe"], people["olive"]
	code := func(p *e2e) string { return p.code() + "\n" }

	// A listener the production scope covers, so a started scan has
	// something to find.
	port := openPort(t)
	dir := t.TempDir()
	o.fixed = strings.NewReplacer(dir, "<dir>", fmt.Sprintf("tcp:%d", port), "tcp:<port>")
	sam.must("", "scope", "keygen", "--out", filepath.Join(dir, "sam"))
	now := e.clock().UTC()
	doc := func(id string) string {
		f := filepath.Join(dir, id+".json")
		d := fmt.Sprintf(`{"id":%q,"tenant":%q,"name":"pinned","environment":"production","cidrs":["127.0.0.1/32"],"exclude":[],
		"ports":"tcp:%d","probes":["tcp-connect"],"not_before":%q,"not_after":%q,"max_pps":10}`,
			id, e.res.Tenant, port, now.Add(-time.Hour).Format(time.RFC3339), now.Add(24*time.Hour).Format(time.RFC3339))
		if err := os.WriteFile(f, []byte(d), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	signed := filepath.Join(dir, "prod-1.signed.json")
	if err := os.WriteFile(signed, []byte(sam.must("", "scope", "sign", "--key", filepath.Join(dir, "sam.key"), doc("prod-1"))), 0o600); err != nil {
		t.Fatal(err)
	}

	// Scope-signing keys.
	pub := filepath.Join(dir, "sam.pub")
	o.step(sam, "sam", "", "key", "add", pub)
	o.step(sam, "sam", code(sam), "key", "add", pub)
	o.step(sam, "sam", "", "key", "generate")
	held := jsonID(t, o.step(sam, "sam", code(sam), "key", "generate", "--name", "held", "--json"))
	o.step(sam, "sam", code(sam), "key", "sign", held, doc("other"))
	o.step(sam, "sam", "", "key", "sign", held, filepath.Join(dir, "missing.json"))
	o.step(sam, "sam", "", "scope", "register", signed)

	// A production scan: requested, approved by two others, started.
	s1 := jsonID(t, o.step(sam, "sam", code(sam), "scan", "request", "--scope", "prod-1", "--target", "127.0.0.1", "--rate", "10", "--json"))
	o.step(sam, "sam", "", "scan", "show", s1)
	o.step(sam, "sam", "", "scan", "show", s1, "--json")
	o.step(sam, "sam", code(sam), "scan", "approve", s1)
	o.step(ann, "ann", "", "scan", "approve", s1)
	o.step(ann, "ann", code(ann), "scan", "approve", s1)
	o.step(ann, "ann", code(ann), "scan", "approve", s1)
	o.step(abe, "abe", code(abe), "scan", "approve", s1, "--json")
	o.step(sam, "sam", "", "scan", "start", s1)
	o.step(sam, "sam", code(sam), "scan", "start", s1)
	o.step(ann, "ann", "", "scan", "show", "scan_nope")
	// Denied, cancelled.
	s2 := jsonID(t, o.step(sam, "sam", code(sam), "scan", "request", "--scope", "prod-1", "--json"))
	o.step(sam, "sam", "", "scan", "request", "--scope", "prod-1")
	o.step(abe, "abe", "", "scan", "deny", s2)
	o.step(abe, "abe", "", "scan", "deny", s2, "--reason", " ")
	o.step(abe, "abe", "", "scan", "deny", s2, "--reason", "not during the freeze")
	o.step(abe, "abe", code(abe), "scan", "deny", s2, "--reason", "not during the freeze")
	o.step(abe, "abe", code(abe), "scan", "deny", s2, "--reason", "again", "--json")
	s3 := jsonID(t, o.step(sam, "sam", code(sam), "scan", "request", "--scope", "prod-1", "--json"))
	o.step(sam, "sam", "", "scan", "cancel", s3, "--reason", "changed my mind")
	o.step(sam, "sam", "", "scan", "cancel", s3, "--json")
	o.step(sam, "sam", "", "scan", "list", "--state", "denied")
	o.step(sam, "sam", "", "scan", "list", "--state", "cancelled", "--json")
	o.step(sam, "sam", "", "scan", "approve", "a", "b")
	o.step(sam, "sam", "", "scan", "cancel")

	// Schedules.
	sch := jsonID(t, o.step(sam, "sam", "", "scan", "schedule", "create", "--scope", "prod-1", "--spec", "@every 6h", "--valid-days", "30", "--json"))
	o.step(sam, "sam", "", "scan", "schedule", "show", sch)
	o.step(sam, "sam", "", "scan", "schedule", "show", sch, "--json")
	o.step(ann, "ann", "", "scan", "schedule", "approve", sch)
	o.step(ann, "ann", code(ann), "scan", "schedule", "approve", sch)
	sch2 := jsonID(t, o.step(sam, "sam", "", "scan", "schedule", "edit", sch, "--scope", "prod-1", "--spec", "@every 12h", "--json"))
	o.step(sam, "sam", "", "scan", "schedule", "void", sch2)
	o.step(sam, "sam", "", "scan", "schedule", "void", sch2, "--reason", "not needed")
	o.step(sam, "sam", "", "scan", "schedule", "void", sch, "--reason", "again", "--json")

	// Scope and key revocation.
	o.step(sam, "sam", "", "scope", "revoke", "prod-1")
	o.step(sam, "sam", code(sam), "scope", "revoke", "prod-1", "--reason", "engagement over")
	o.step(sam, "sam", code(sam), "key", "revoke", held, "--reason", "rotated")
	o.step(sam, "sam", "", "key", "revoke", "0000000000000000", "--json")

	// An access review, start to signature.
	rv := jsonID(t, o.step(e, "root", "", "review", "start", "--json"))
	o.step(e, "root", "", "review", "show", rv)
	o.step(e, "root", "", "review", "show", rv, "--json")
	o.step(e, "root", "", "review", "list")
	o.step(e, "root", "", "review", "decide", rv, "user:x=maybe")
	o.step(e, "root", "", "review", "decide", rv)
	o.step(e, "root", "", "review", "decide", rv, "--rest", "keep", "--note", "quarterly")
	o.step(e, "root", "", "review", "sign", rv)
	o.step(e, "root", code(e), "review", "sign", rv, "--json")
	o.step(e, "root", code(e), "review", "sign", rv)
	o.step(e, "root", "", "review", "start")
	o.step(e, "root", "", "review", "show", "rev_nope")

	// Policies and reports.
	pol := filepath.Join(dir, "edge.yaml")
	if err := os.WriteFile(pol, []byte("version: 1\nname: edge\nvantage_point: dmz\ndefault: deny\nrules:\n  - {name: ssh, action: deny, to: 10.0.0.0/24, ports: \"tcp:22\", severity: high}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o.step(olive, "olive", "", "policy", "add", pol)
	o.step(olive, "olive", "", "policy", "add", pol, "--json")
	o.step(olive, "olive", "", "policy", "list")
	o.step(olive, "olive", "", "policy", "list", "--json")
	o.step(olive, "olive", "", "policy", "show", "edge")
	o.step(olive, "olive", "", "policy", "show", "edge", "--version", "1", "--json")
	o.step(olive, "olive", "", "policy", "show", "nope")
	o.step(olive, "olive", "", "report", "list")
	o.step(olive, "olive", "", "report", "list", "--json")
	o.step(olive, "olive", "", "report", "show", "rep_nope")
	o.step(olive, "olive", "", "report", "show")

	// Other one-id shows and one-shot answers.
	o.step(olive, "olive", "", "sensor", "show", "sn_nope")
	o.step(olive, "olive", "", "sensor", "list")
	o.step(olive, "olive", "", "approval", "show", "nope")
	o.step(abe, "abe", "", "approval", "list", "--status", "denied")
	o.step(sam, "sam", "", "evidence", "list", "--prefix", "none/", "--json")
	o.step(olive, "olive", "", "whoami")
	o.step(e, "root", code(e), "tenant", "add", "acme")
	o.step(e, "root", "", "scope", "show", "nope")

	golden(t, "remote-outputs.golden", o.b.String())
}
