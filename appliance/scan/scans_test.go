package scan_test

import (
	"context"
	"crypto/ed25519"
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
	"firewalliq/appliance/scan"
	"firewalliq/audit"
	"firewalliq/probe"
	"firewalliq/probe/keys"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// env is a fixture with a registered scope-signing key of the tenant's
// security lead, and loopback services to scan.
type env struct {
	f        *apptest.Fixture
	lead, op apptest.User
	pub      ed25519.PublicKey
	priv     ed25519.PrivateKey
	open     int // a listening TCP port on 127.0.0.1
	closed   int // a TCP port nobody listens on
}

func newEnv(t *testing.T, cfgMod ...func(*appliance.Config)) *env {
	t.Helper()
	f := apptest.New(t, cfgMod...)
	f.Clock.Flow()
	e := &env{f: f, lead: f.Users["security_lead"], op: f.Users["operator"]}
	e.pub, e.priv = newKey(t)
	addKey(t, f, e.lead, e.pub)
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
	e.open = ln.Addr().(*net.TCPAddr).Port
	cl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.closed = cl.Addr().(*net.TCPAddr).Port
	cl.Close()
	return e
}

// scope signs and registers a loopback scope.
func (e *env) scope(t *testing.T, id, environment string, cidrs ...string) {
	t.Helper()
	if len(cidrs) == 0 {
		cidrs = []string{"127.0.0.1/32"}
	}
	now := e.f.Clock.Now()
	doc := scope.Document{ID: id, Tenant: "alpha", Name: "loopback " + id, Environment: environment,
		CIDRs: cidrs, Exclude: []string{}, Ports: fmt.Sprintf("tcp:%d,%d", e.open, e.closed), Probes: []safety.Kind{safety.KindTCPConnect},
		NotBefore: now.Add(-time.Hour).Truncate(time.Second), NotAfter: now.Add(24 * time.Hour).Truncate(time.Second),
		MaxPPS: 50, SignerKeyID: keys.ID(e.pub)}
	b, err := scope.Sign(doc, e.priv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.f.App.Scopes.Register(e.f.Ctx, e.lead.P, "", b); err != nil {
		t.Fatal(err)
	}
}

// dispatch runs the scan service until the test ends (or stop is called).
func (e *env) dispatch(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(e.f.Ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); e.f.App.Scans.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// wait polls scan id until it reaches one of states (20 s at most).
func (e *env) wait(t *testing.T, id string, states ...string) scan.Scan {
	t.Helper()
	return e.waitWithin(t, id, 20*time.Second, states...)
}

// waitWithin is wait for scans that run longer.
func (e *env) waitWithin(t *testing.T, id string, limit time.Duration, states ...string) scan.Scan {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		sc, err := e.f.App.Scans.Get(e.f.Ctx, e.op.P, "", id)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(states, sc.State) {
			return sc
		}
		time.Sleep(20 * time.Millisecond)
	}
	sc, _ := e.f.App.Scans.Get(e.f.Ctx, e.op.P, "", id)
	t.Fatalf("scan %s is %s (%s), want %v", id, sc.State, sc.Reason, states)
	return scan.Scan{}
}

// results returns every stored result of scan id.
func (e *env) results(t *testing.T, id string) []scan.Result {
	t.Helper()
	var out []scan.Result
	f := scan.ResultFilter{Limit: scan.MaxPageSize}
	for range 100 {
		page, err := e.f.App.Scans.Results(e.f.Ctx, e.op.P, "", id, f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Items...)
		if page.Next == "" {
			return out
		}
		f.After = page.Next
	}
	t.Fatal("too many pages")
	return nil
}

// actions returns the actions of the audit entries after mark whose object
// is obj, in order.
func (e *env) actions(mark int64, obj string) []string {
	var out []string
	for _, en := range e.f.Entries(mark, "") {
		if en.Object == obj {
			out = append(out, string(en.Action))
		}
	}
	return out
}

// TestNonProductionScan: request checks (exact reasons, nothing stored),
// the requester's step-up challenge, dispatch, results, and the audit
// trail of the whole lifecycle with the acting user, IP and user agent.
func TestNonProductionScan(t *testing.T) {
	e := newEnv(t)
	e.scope(t, "lab", scope.EnvNonProduction)
	f := e.f
	bad := []struct {
		name string
		req  scan.ScanRequest
		want string
	}{
		{"target outside", scan.ScanRequest{ScopeID: "lab", Targets: []string{"127.0.0.2"}}, "127.0.0.2"},
		{"cidr not inside", scan.ScanRequest{ScopeID: "lab", Targets: []string{"127.0.0.0/30"}}, "127.0.0.0/30"},
		{"port outside", scan.ScanRequest{ScopeID: "lab", Ports: "tcp:1"}, "port tcp/1 is not in scope"},
		{"probe outside", scan.ScanRequest{ScopeID: "lab", Probes: []string{"udp"}}, "probe kind udp is not in scope"},
		{"rate above cap", scan.ScanRequest{ScopeID: "lab", Rate: 51}, "requested rate above cap: 51 pps, the cap is 50"},
		{"special address", scan.ScanRequest{ScopeID: "lab", Targets: []string{"0.0.0.0"}}, "0.0.0.0"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.App.Scans.Request(f.Ctx, e.op.P, "", tt.req, f.Code(e.op))
			if !errors.Is(err, scan.ErrBadRequest) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Request: %v, want ErrBadRequest naming %q", err, tt.want)
			}
		})
	}
	if _, err := f.App.Scans.Request(f.Ctx, f.Users["auditor"].P, "", scan.ScanRequest{ScopeID: "lab"}, f.Code(f.Users["auditor"])); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("auditor Request: %v", err)
	}
	if _, err := f.App.Scans.Request(f.Ctx, e.op.P, "", scan.ScanRequest{ScopeID: "nope"}, ""); !errors.Is(err, scan.ErrNotFound) {
		t.Fatalf("unknown scope: %v", err)
	}
	// Without a step-up: a challenge, and nothing stored. Answering it
	// and repeating the call queues the scan.
	req := scan.ScanRequest{ScopeID: "lab", Targets: []string{"127.0.0.1"}, Rate: 40}
	_, err := f.App.Scans.Request(f.Ctx, e.op.P, "", req, "")
	var ch *auth.StepUpChallenge
	if !errors.As(err, &ch) || ch.Op != auth.OpScanStart {
		t.Fatalf("Request without step-up: %v", err)
	}
	if page, _ := f.App.Scans.List(f.Ctx, e.op.P, "", scan.ListFilter{}); len(page.Items) != 0 {
		t.Fatalf("refused requests stored: %+v", page.Items)
	}
	if _, err := f.App.Auth.StepUpFor(f.Ctx, e.op.P, ch.Op, ch.Request, f.Code(e.op)); err != nil {
		t.Fatal(err)
	}
	mark := f.Head()
	sc, err := f.App.Scans.Request(f.Ctx, e.op.P, "", req, "")
	if err != nil {
		t.Fatal(err)
	}
	if sc.State != scan.StateQueued || sc.ApprovalID != "" || sc.ScopeKeyID != keys.ID(e.pub) {
		t.Fatalf("requested: %+v", sc)
	}
	e.dispatch(t)
	sc = e.wait(t, sc.ID, scan.StateCompleted, scan.StateFailed)
	if sc.State != scan.StateCompleted || sc.Job == nil || sc.Job.State != scan.JobCompleted || sc.Job.Results != 2 {
		t.Fatalf("scan: %+v job %+v", sc, sc.Job)
	}
	states := map[int]string{}
	for _, r := range e.results(t, sc.ID) {
		states[r.Port] = r.State
	}
	if states[e.open] != "open" || states[e.closed] != "closed" {
		t.Fatalf("results %v (open %d, closed %d)", states, e.open, e.closed)
	}
	got := e.actions(mark, "scan:"+sc.ID)
	if want := []string{"scan.request", "scan.start", "scan.start", "scan.complete"}; !slices.Equal(got, want) {
		t.Fatalf("audit %v, want %v", got, want)
	}
	for _, en := range f.Entries(mark, audit.ActScanRequest) {
		if en.ActorID != e.op.P.UserID || en.ActorIP != "192.0.2.7" || en.UserAgent != "apptest/1" || en.Tenant != f.Tenant {
			t.Fatalf("scan.request entry %+v", en)
		}
	}
	// A finished scan cannot be cancelled; its progress feed says so.
	if _, err := f.App.Scans.Cancel(f.Ctx, e.op.P, "", sc.ID, "late"); !errors.Is(err, scan.ErrState) {
		t.Fatalf("Cancel finished: %v", err)
	}
	ch2, err := f.App.Scans.Watch(f.Ctx, e.op.P, "", sc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := <-ch2; !ok || p.State != scan.StateCompleted {
		t.Fatalf("Watch: %+v %v", p, ok)
	}
	// Another tenant sees nothing of it, and the attempt is audited.
	mark = f.Head()
	if _, err := f.App.Scans.Get(f.Ctx, f.Users["other_admin"].P, "", sc.ID); !errors.Is(err, scan.ErrScanNotFound) {
		t.Fatalf("cross-tenant Get: %v", err)
	}
	if es := f.Entries(mark, audit.ActAccessDenied); len(es) != 1 {
		t.Fatalf("cross-tenant Get audited %d times", len(es))
	}
}

// approve has the tenant's approver and security lead approve scan id,
// each with a step-up.
func (e *env) approve(t *testing.T, id string) scan.Scan {
	t.Helper()
	var sc scan.Scan
	for _, role := range []string{"approver", "security_lead"} {
		u := e.f.Users[role]
		var err error
		if sc, err = e.f.App.Scans.Approve(e.f.Ctx, u.P, "", id, e.f.Code(u)); err != nil {
			t.Fatalf("%s Approve: %v", role, err)
		}
	}
	return sc
}

// TestProductionScan: dual approval bound to the request (never the
// requester's own), the requester's start with step-up, the signed job
// carrying the approvals, and the evidence (results file and manifest) in
// the local vault, recorded in the scan's transaction.
func TestProductionScan(t *testing.T) {
	e := newEnv(t, func(c *appliance.Config) {
		c.Production = false // the local vault is not WORM
		c.Vault.Backend = "local"
		c.Vault.LocalDir = filepath.Join(t.TempDir(), "vault")
	})
	f := e.f
	e.scope(t, "prod", scope.EnvProduction)
	mark := f.Head()
	sc, err := f.App.Scans.Request(f.Ctx, e.op.P, "", scan.ScanRequest{ScopeID: "prod"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if sc.State != scan.StatePending || sc.ApprovalID == "" {
		t.Fatalf("production request: %+v", sc)
	}
	e.dispatch(t)
	if _, err := f.App.Scans.Start(f.Ctx, e.op.P, "", sc.ID, f.Code(e.op)); !errors.Is(err, scan.ErrState) {
		t.Fatalf("Start before approval: %v", err)
	}
	if _, err := f.App.Scans.Approve(f.Ctx, e.lead.P, "", sc.ID, ""); !errors.Is(err, auth.ErrStepUpRequired) {
		t.Fatalf("Approve without step-up: %v", err)
	}
	sc = e.approve(t, sc.ID)
	if sc.State != scan.StateApproved {
		t.Fatalf("after two approvals: %s", sc.State)
	}
	if _, err := f.App.Scans.Start(f.Ctx, e.lead.P, "", sc.ID, f.Code(e.lead)); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("Start by another user: %v", err)
	}
	if sc, err = f.App.Scans.Start(f.Ctx, e.op.P, "", sc.ID, f.Code(e.op)); err != nil {
		t.Fatal(err)
	}
	sc = e.wait(t, sc.ID, scan.StateCompleted, scan.StateFailed)
	if sc.State != scan.StateCompleted || len(sc.Approvers) != 2 {
		t.Fatalf("scan %+v", sc)
	}
	got := e.actions(mark, "scan:"+sc.ID)
	if want := []string{"scan.request", "scan.approve", "scan.approve", "access.denied", "scan.start", "scan.start", "scan.complete"}; !slices.Equal(got, want) {
		t.Fatalf("audit %v, want %v", got, want)
	}
	comp := f.Entries(mark, audit.ActScanComplete)
	d := apptest.Details(t, comp[0])
	// The completion records the run's packets over time (the console's
	// timeline): per-second buckets that add up to the packets sent.
	sent, _ := d["sent"].(map[string]any)
	if sent == nil || sent["bucket_seconds"] != float64(1) {
		t.Fatalf("scan.complete send series %v", d["sent"])
	}
	var inSeries float64
	for _, n := range sent["packets"].([]any) {
		inSeries += n.(float64)
	}
	if inSeries == 0 || inSeries != d["packets"] {
		t.Fatalf("send series adds up to %v packets, the completion says %v", inSeries, d["packets"])
	}
	var ev []string
	for _, k := range d["evidence"].([]any) {
		ev = append(ev, fmt.Sprint(k))
	}
	names := []string{"/results.jsonl", "/manifest.json"}
	if probe.RawAvailable() {
		// With raw sockets the engine captures every probe and reply.
		names = []string{"/results.jsonl", "/probes.pcapng", "/manifest.json"}
	}
	if len(ev) != len(names) {
		t.Fatalf("scan.complete evidence %v, want %v", ev, names)
	}
	for i, n := range names {
		if !strings.HasSuffix(ev[i], n) {
			t.Fatalf("scan.complete evidence %v, want %v", ev, names)
		}
	}
	for _, r := range e.results(t, sc.ID) {
		if !slices.Equal(r.Evidence, ev) {
			t.Fatalf("result %d links %v", r.Seq, r.Evidence)
		}
	}
	// Each object's SHA-256 is in the audit log (evidence.spool), by the
	// appliance, before completion; the manifest names the others' hashes.
	spooled := f.Entries(mark, audit.ActEvidenceSpooled)
	if len(spooled) != len(names) || spooled[len(names)-1].Seq > comp[0].Seq {
		t.Fatalf("%d evidence.spool entries", len(spooled))
	}
	if probe.RawAvailable() && d["pcapng_sha256"] == nil {
		t.Fatalf("scan.complete names no capture hash: %v", d)
	}
	// The working capture is removed right after the completing
	// transaction commits (the spool holds its own copy), so allow that
	// housekeeping a moment.
	capture := filepath.Join(f.Cfg.DataDir, appliance.CapturesDir, sc.ID+".pcapng")
	for i := 0; ; i++ {
		_, err := os.Stat(capture)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if i == 100 {
			t.Fatalf("capture left behind: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The approval was spent: a second start is refused.
	if _, err := f.App.Scans.Start(f.Ctx, e.op.P, "", sc.ID, f.Code(e.op)); !errors.Is(err, scan.ErrState) {
		t.Fatalf("second Start: %v", err)
	}
}

// TestApprovalRules: the requester cannot approve, a denial ends the
// request, and cancelling a pending request voids its approval.
func TestApprovalRules(t *testing.T) {
	e := newEnv(t)
	f := e.f
	e.scope(t, "prod", scope.EnvProduction)
	lead := e.lead
	sc, err := f.App.Scans.Request(f.Ctx, lead.P, "", scan.ScanRequest{ScopeID: "prod"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.App.Scans.Approve(f.Ctx, lead.P, "", sc.ID, f.Code(lead)); !errors.Is(err, auth.ErrSelfApproval) {
		t.Fatalf("self approval: %v", err)
	}
	ap := f.Users["approver"]
	mark := f.Head()
	if sc, err = f.App.Scans.Deny(f.Ctx, ap.P, "", sc.ID, "not this week", f.Code(ap)); err != nil || sc.State != scan.StateDenied {
		t.Fatalf("Deny: %v %+v", err, sc)
	}
	if got := e.actions(mark, "scan:"+sc.ID); !slices.Equal(got, []string{"scan.deny"}) {
		t.Fatalf("audit %v", got)
	}
	sc2, err := f.App.Scans.Request(f.Ctx, e.op.P, "", scan.ScanRequest{ScopeID: "prod"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if sc2, err = f.App.Scans.Cancel(f.Ctx, e.op.P, "", sc2.ID, "wrong window"); err != nil || sc2.State != scan.StateCancelled {
		t.Fatalf("Cancel: %v %+v", err, sc2)
	}
	a, err := f.App.Auth.GetApproval(f.Ctx, ap.P, sc2.ApprovalID)
	if err != nil || a.Status != "void" {
		t.Fatalf("approval after cancel: %v %+v", err, a)
	}
}

// TestRevocation: revoking the scope's key, or the scope, stops requests
// not yet running (pending approvals voided) and refuses new ones.
func TestRevocation(t *testing.T) {
	e := newEnv(t)
	f := e.f
	e.scope(t, "prod", scope.EnvProduction)
	e.scope(t, "lab", scope.EnvNonProduction)
	pending, err := f.App.Scans.Request(f.Ctx, e.op.P, "", scan.ScanRequest{ScopeID: "prod"}, "")
	if err != nil {
		t.Fatal(err)
	}
	// Scope revoke: the lab scope only.
	mark := f.Head()
	if _, err := f.App.Scopes.Revoke(f.Ctx, e.lead.P, "", "lab", "decommissioned", f.Code(e.lead)); err != nil {
		t.Fatal(err)
	}
	if es := f.Entries(mark, audit.ActScopeRevoke); len(es) != 1 {
		t.Fatalf("%d scope.revoke entries", len(es))
	}
	if _, err := f.App.Scans.Request(f.Ctx, e.op.P, "", scan.ScanRequest{ScopeID: "lab"}, f.Code(e.op)); !errors.Is(err, scan.ErrScopeRevoked) {
		t.Fatalf("request on revoked scope: %v", err)
	}
	// Key revoke: another lead's key cannot be revoked by this lead; the
	// admin may; the pending production request is cancelled and its
	// approval voided.
	keysList, err := f.App.ScopeKeys.List(f.Ctx, f.Users["auditor"].P, "")
	if err != nil || len(keysList) != 1 || keysList[0].ID != keys.ID(e.pub) {
		t.Fatalf("List keys: %v %+v", err, keysList)
	}
	admin := f.Users["admin"]
	mark = f.Head()
	k, err := f.App.ScopeKeys.Revoke(f.Ctx, admin.P, "", keys.ID(e.pub), "laptop lost", f.Code(admin))
	if err != nil || k.State != scan.KeyRevoked {
		t.Fatalf("Revoke key: %v %+v", err, k)
	}
	en := f.Entries(mark, audit.ActScopeKeyRevoke)
	if len(en) != 1 || !strings.Contains(string(en[0].Details), pending.ID) {
		t.Fatalf("scope.key.revoke entries %+v", en)
	}
	got, err := f.App.Scans.Get(f.Ctx, e.op.P, "", pending.ID)
	if err != nil || got.State != scan.StateCancelled {
		t.Fatalf("pending request after key revoke: %v %+v", err, got)
	}
	if a, _ := f.App.Auth.GetApproval(f.Ctx, admin.P, pending.ApprovalID); a.Status != "void" {
		t.Fatalf("approval after key revoke: %s", a.Status)
	}
	if _, err := f.App.Scans.Request(f.Ctx, e.op.P, "", scan.ScanRequest{ScopeID: "prod"}, ""); !errors.Is(err, scan.ErrUntrusted) {
		t.Fatalf("request under a revoked key: %v", err)
	}
	if _, err := f.App.ScopeKeys.Revoke(f.Ctx, admin.P, "", keys.ID(e.pub), "again", f.Code(admin)); !errors.Is(err, scan.ErrKeyRevoked) {
		t.Fatalf("second revoke: %v", err)
	}
}

// TestHeldKey: the appliance generates and holds a lead's key, signs with
// it after step-up (audited with key id and scope hash), and the scope
// registers.
func TestHeldKey(t *testing.T) {
	e := newEnv(t)
	f := e.f
	k, err := f.App.ScopeKeys.Generate(f.Ctx, e.lead.P, "", "held", f.Code(e.lead))
	if err != nil || !k.Held {
		t.Fatalf("Generate: %v %+v", err, k)
	}
	now := f.Clock.Now()
	doc := scope.Document{ID: "held-lab", Tenant: f.Tenant, Name: "held", Environment: scope.EnvNonProduction,
		CIDRs: []string{"127.0.0.1/32"}, Exclude: []string{}, Ports: "tcp:22", Probes: []safety.Kind{safety.KindTCPConnect},
		NotBefore: now.Add(-time.Hour).Truncate(time.Second), NotAfter: now.Add(time.Hour).Truncate(time.Second), MaxPPS: 10}
	if _, err := f.App.ScopeKeys.Sign(f.Ctx, e.op.P, "", k.ID, doc, f.Code(e.op)); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("operator Sign: %v", err)
	}
	// Another security lead may neither sign with nor revoke this lead's
	// held key; each refusal is audited.
	other := f.AddUser(f.Tenant, "lead2", "security_lead")
	mark := f.Head()
	if _, err := f.App.ScopeKeys.Sign(f.Ctx, other.P, "", k.ID, doc, f.Code(other)); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("another lead's Sign: %v", err)
	}
	if _, err := f.App.ScopeKeys.Revoke(f.Ctx, other.P, "", k.ID, "not mine", f.Code(other)); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("another lead's Revoke: %v", err)
	}
	if es := f.Entries(mark, audit.ActAccessDenied); len(es) != 2 || es[0].Object != "scope-key:"+k.ID || es[1].Object != "scope-key:"+k.ID {
		t.Fatalf("access.denied entries for another lead's key: %+v", es)
	}
	mark = f.Head()
	signed, err := f.App.ScopeKeys.Sign(f.Ctx, e.lead.P, "", k.ID, doc, f.Code(e.lead))
	if err != nil {
		t.Fatal(err)
	}
	es := f.Entries(mark, audit.ActScopeSign)
	if len(es) != 1 || apptest.Details(t, es[0])["key_id"] != k.ID || apptest.Details(t, es[0])["scope_sha256"] == "" {
		t.Fatalf("scope.sign entries %+v", es)
	}
	if _, err := f.App.Scopes.Register(f.Ctx, e.lead.P, "", signed); err != nil {
		t.Fatal(err)
	}
	// The public-only key cannot sign on the appliance.
	if _, err := f.App.ScopeKeys.Sign(f.Ctx, e.lead.P, "", keys.ID(e.pub), doc, f.Code(e.lead)); !errors.Is(err, scan.ErrKeyNotHeld) {
		t.Fatalf("Sign with a public-only key: %v", err)
	}
}

// TestProductionScanApprovedThroughGenericRoute: approvers who use the
// generic approvals route (auth.Approve, as 'approval approve' does)
// instead of Scans.Approve leave the scan pending; its requester can still
// start it once the approval is complete, and not before.
func TestProductionScanApprovedThroughGenericRoute(t *testing.T) {
	e := newEnv(t)
	f := e.f
	e.scope(t, "prod", scope.EnvProduction)
	sc, err := f.App.Scans.Request(f.Ctx, e.op.P, "", scan.ScanRequest{ScopeID: "prod"}, "")
	if err != nil {
		t.Fatal(err)
	}
	e.dispatch(t)
	u := f.Users["approver"]
	if _, err := f.App.Auth.Approve(f.Ctx, u.P, sc.ApprovalID, f.Code(u)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.App.Scans.Start(f.Ctx, e.op.P, "", sc.ID, f.Code(e.op)); !errors.Is(err, scan.ErrState) || !errors.Is(err, auth.ErrApprovalPending) {
		t.Fatalf("Start with one approval: %v", err)
	}
	u = f.Users["security_lead"]
	if _, err := f.App.Auth.Approve(f.Ctx, u.P, sc.ApprovalID, f.Code(u)); err != nil {
		t.Fatal(err)
	}
	if sc, err = f.App.Scans.Start(f.Ctx, e.op.P, "", sc.ID, f.Code(e.op)); err != nil {
		t.Fatalf("Start after two generic approvals: %v", err)
	}
	if sc = e.wait(t, sc.ID, scan.StateCompleted, scan.StateFailed); sc.State != scan.StateCompleted || len(sc.Approvers) != 2 {
		t.Fatalf("scan %+v", sc)
	}
}
