package labtest

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"firewalliq/appliance"
	"firewalliq/appliance/internal/apptest"
	"firewalliq/appliance/scan"
	"firewalliq/appliance/siem"
	"firewalliq/appliance/siem/destinations"
	"firewalliq/appliance/store"
	"firewalliq/audit"
	"firewalliq/probe"
	"firewalliq/probe/keys"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// childOut is what a child reports to its parent.
type childOut struct {
	// Results are the stored results of the scan ("e2e", "bench-service").
	Results []scan.Result `json:"results,omitempty"`
	// Jobs are the scans' job records ("pair").
	Jobs []scan.JobInfo `json:"jobs,omitempty"`
	// Sent and Refused are the engine's counts ("special", "bench-engine").
	Sent    uint64 `json:"sent"`
	Refused uint64 `json:"refused"`
	// Wall is the scan's wall time: from Start to completed through the
	// service, eng.Run for the bare engine. CPU is the process's user+system
	// time over the same span.
	Wall time.Duration `json:"wall"`
	CPU  time.Duration `json:"cpu"`
}

// allPorts is every port the lab's ground truth distinguishes.
const allPorts = "tcp:22,25,80,443,3306,8080,8081,8443 udp:53,123,161,514,1900,5060"

// excludedHost is excluded from the end-to-end scope in both families.
const excludedHost = 50

func hostAddr(p netip.Prefix, h uint8) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	b[len(b)-1] = h
	a, _ := netip.AddrFromSlice(b)
	return a
}

// cpuTime is the process's user+system time so far.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fixture opens a real appliance (production off, local vault) in the
// child, its clock flowing at real speed so the runner's pacing is real.
func fixture(t *testing.T) (*apptest.Fixture, string) {
	t.Helper()
	vault := filepath.Join(t.TempDir(), "vault")
	f := apptest.New(t, func(c *appliance.Config) {
		c.Production = false // the local vault is not WORM
		c.Vault.Backend = "local"
		c.Vault.LocalDir = vault
	})
	f.Clock.Flow()
	return f, vault
}

// leadKey registers a fresh scope-signing key of lead with lead's step-up.
func leadKey(t *testing.T, f *apptest.Fixture, lead apptest.User) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := keys.MarshalPublic(pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.App.ScopeKeys.Add(f.Ctx, lead.P, "", "lab key of "+lead.P.Name, pem, f.Code(lead)); err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// register signs doc with priv and registers it as lead.
func register(t *testing.T, f *apptest.Fixture, lead apptest.User, doc scope.Document, pub ed25519.PublicKey, priv ed25519.PrivateKey) {
	t.Helper()
	now := f.Clock.Now()
	doc.NotBefore = now.Add(-time.Hour).UTC().Truncate(time.Second)
	doc.NotAfter = now.Add(24 * time.Hour).UTC().Truncate(time.Second)
	doc.SignerKeyID = keys.ID(pub)
	if doc.Exclude == nil {
		doc.Exclude = []string{}
	}
	b, err := scope.Sign(doc, priv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.App.Scopes.Register(f.Ctx, lead.P, "", b); err != nil {
		t.Fatal(err)
	}
}

// dispatch runs the scan service until the test ends.
func dispatch(t *testing.T, f *apptest.Fixture) {
	t.Helper()
	ctx, cancel := context.WithCancel(f.Ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f.App.Scans.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// wait polls scan id as u until it completes or fails (3 minutes at most).
func wait(t *testing.T, f *apptest.Fixture, u apptest.User, id string) scan.Scan {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		sc, err := f.App.Scans.Get(f.Ctx, u.P, "", id)
		if err != nil {
			t.Fatal(err)
		}
		switch sc.State {
		case scan.StateCompleted:
			return sc
		case scan.StateFailed, scan.StateCancelled:
			t.Fatalf("scan %s %s: %s", id, sc.State, sc.Reason)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("scan %s did not finish in 3 minutes", id)
	return scan.Scan{}
}

// results returns every stored result of scan id, page by page.
func results(t *testing.T, f *apptest.Fixture, u apptest.User, id string) []scan.Result {
	t.Helper()
	var out []scan.Result
	rf := scan.ResultFilter{Limit: scan.MaxPageSize}
	for range 1000 {
		page, err := f.App.Scans.Results(f.Ctx, u.P, "", id, rf)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Items...)
		if page.Next == "" {
			return out
		}
		rf.After = page.Next
	}
	t.Fatal("more than 1000 result pages")
	return nil
}

// childE2E is the end-to-end scan through the service: a security lead's
// key, a production scope over the lab's target zone, a request, two
// approvals with step-up, the requester's start, the stored results,
// evidence in the local vault, the audit trail and the SIEM outbox.
func childE2E(t *testing.T, cfg childConfig) childOut {
	f, vault := fixture(t)
	// An appliance-wide SIEM destination: every entry is queued for it
	// (nothing delivers it here; the outbox rows are the proof).
	root := f.Users["appliance_admin"]
	if _, err := f.App.SIEM.Add(f.Ctx, root.P, "", destinations.NewDestination{Name: "soc", Kind: siem.KindTCP, Address: "127.0.0.1:9", Format: siem.FormatOCSF}, f.Code(root)); err != nil {
		t.Fatal(err)
	}
	lead, op := f.Users["security_lead"], f.Users["operator"]
	pub, priv := leadKey(t, f, lead)
	v4, v6 := netip.MustParsePrefix(cfg.V4), netip.MustParsePrefix(cfg.V6)
	register(t, f, lead, scope.Document{ID: "lab-zone", Tenant: "alpha", Name: "lab target zone",
		Environment: scope.EnvProduction, CIDRs: []string{cfg.V4, cfg.V6},
		Exclude: []string{netip.PrefixFrom(hostAddr(v4, excludedHost), 32).String(), netip.PrefixFrom(hostAddr(v6, excludedHost), 128).String()},
		Ports:   allPorts, Probes: []safety.Kind{safety.KindTCPSyn, safety.KindUDP, safety.KindICMPEcho}, MaxPPS: cfg.Rate,
	}, pub, priv)
	// A second approver, made before the request (an account created
	// after it would not count).
	approver2 := f.AddUser(f.Tenant, "approver2", store.RoleApprover)
	mark := f.Head()
	sc, err := f.App.Scans.Request(f.Ctx, op.P, "", scan.ScanRequest{ScopeID: "lab-zone", Rate: cfg.Rate}, "")
	if err != nil {
		t.Fatal(err)
	}
	if sc.State != scan.StatePending || sc.ApprovalID == "" {
		t.Fatalf("production request: %+v", sc)
	}
	for _, u := range []apptest.User{f.Users["approver"], approver2} {
		if sc, err = f.App.Scans.Approve(f.Ctx, u.P, "", sc.ID, f.Code(u)); err != nil {
			t.Fatalf("%s approves: %v", u.P.Name, err)
		}
	}
	if sc.State != scan.StateApproved {
		t.Fatalf("after two approvals: %s", sc.State)
	}
	dispatch(t, f)
	code := f.Code(op)
	cpu0, wall0 := cpuTime(t), time.Now()
	if sc, err = f.App.Scans.Start(f.Ctx, op.P, "", sc.ID, code); err != nil {
		t.Fatal(err)
	}
	sc = wait(t, f, op, sc.ID)
	out := childOut{Wall: time.Since(wall0), CPU: cpuTime(t) - cpu0}
	if cfg.Mode == "bench-service" {
		out.Results = results(t, f, op, sc.ID)
		return out
	}
	if len(sc.Approvers) != 2 || sc.Job == nil || sc.Job.State != scan.JobCompleted {
		t.Fatalf("scan %+v job %+v", sc, sc.Job)
	}
	// The audit trail of the scan, in order, by the right people.
	var got []string
	var scanEntries []audit.Entry
	for _, en := range f.Entries(mark, "") {
		if en.Object == "scan:"+sc.ID && strings.HasPrefix(string(en.Action), "scan.") {
			got = append(got, string(en.Action))
			scanEntries = append(scanEntries, en)
		}
	}
	want := []string{"scan.request", "scan.approve", "scan.approve", "scan.start", "scan.start", "scan.complete"}
	if !slices.Equal(got, want) {
		t.Errorf("audit %v, want %v", got, want)
	}
	for _, en := range scanEntries {
		if en.Action == audit.ActScanRequest && (en.ActorID != op.P.UserID || en.ActorIP == "" || en.UserAgent == "") {
			t.Errorf("scan.request entry %+v", en)
		}
	}
	approvers := map[string]bool{}
	for _, en := range f.Entries(mark, audit.ActScanApprove) {
		approvers[en.ActorID] = true
	}
	if len(approvers) != 2 || approvers[op.P.UserID] {
		t.Errorf("scan.approve by %v", approvers)
	}
	// Evidence: results file, capture and manifest, each spooled with its
	// SHA-256 before completion, linked from every result, in the vault.
	comp := f.Entries(mark, audit.ActScanComplete)
	if len(comp) != 1 {
		t.Fatalf("%d scan.complete entries", len(comp))
	}
	var ev []string
	if list, ok := apptest.Details(t, comp[0])["evidence"].([]any); ok {
		for _, k := range list {
			ev = append(ev, fmt.Sprint(k))
		}
	}
	names := []string{"/results.jsonl", "/probes.pcapng", "/manifest.json"}
	if len(ev) != len(names) {
		t.Fatalf("scan.complete evidence %v, want %v", ev, names)
	}
	for i, n := range names {
		if !strings.HasSuffix(ev[i], n) {
			t.Errorf("evidence %v, want %v", ev, names)
		}
	}
	if sp := f.Entries(mark, audit.ActEvidenceSpooled); len(sp) != len(names) {
		t.Errorf("%d evidence.spool entries, want %d", len(sp), len(names))
	}
	if err := f.App.Evidence.Vault().Flush(f.Ctx); err != nil {
		t.Fatalf("vault flush: %v", err)
	}
	// The local backend keeps each object's versions in KEY.v/.
	for _, k := range ev {
		vs, err := os.ReadDir(filepath.Join(vault, filepath.FromSlash(k)+".v"))
		if err != nil || len(vs) != 1 {
			t.Errorf("evidence object %s in the local vault: %v, %d versions", k, err, len(vs))
		}
	}
	out.Results = results(t, f, op, sc.ID)
	for _, r := range out.Results {
		if !slices.Equal(r.Evidence, ev) {
			t.Fatalf("result %d links %v, want %v", r.Seq, r.Evidence, ev)
		}
	}
	// SIEM: every scan.* entry of the scan has its outbox row.
	for _, en := range scanEntries {
		var n int
		if err := f.DB.QueryRowContext(f.Ctx, `SELECT COUNT(*) FROM siem_outbox WHERE audit_seq = ?`, en.Seq).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("%s (seq %d): %d SIEM outbox rows, want 1", en.Action, en.Seq, n)
		}
	}
	return out
}

// hot and wide are the two scans' target sets: the hot hosts are in both.
const (
	pairPorts = "tcp:1-400"
	wideCIDR  = "198.18.1.16/28"
	hotCIDR   = "198.18.1.16/30"
)

// childPair starts two scans of two tenants together against overlapping
// targets; the parent judges the wire.
func childPair(t *testing.T, cfg childConfig) childOut {
	f, _ := fixture(t)
	alphaLead, alphaOp := f.Users["security_lead"], f.Users["operator"]
	bravoLead := f.AddUser(f.Other, "bravo_lead", store.RoleSecurityLead)
	bravoOp := f.AddUser(f.Other, "bravo_op", store.RoleOperator)
	for _, x := range []struct {
		lead   apptest.User
		tenant string
	}{{alphaLead, "alpha"}, {bravoLead, "bravo"}} {
		pub, priv := leadKey(t, f, x.lead)
		register(t, f, x.lead, scope.Document{ID: "lab-zone", Tenant: x.tenant, Name: "lab target zone",
			Environment: scope.EnvNonProduction, CIDRs: []string{cfg.V4},
			Ports: pairPorts, Probes: []safety.Kind{safety.KindTCPSyn}, MaxPPS: cfg.Rate}, pub, priv)
	}
	// Both queued before the dispatcher starts, so both start together
	// (the profile's max_concurrent_scans is 2).
	var ids []string
	for _, x := range []struct {
		op     apptest.User
		target string
	}{{alphaOp, wideCIDR}, {bravoOp, hotCIDR}} {
		sc, err := f.App.Scans.Request(f.Ctx, x.op.P, "", scan.ScanRequest{ScopeID: "lab-zone", Targets: []string{x.target}, Rate: cfg.Rate}, f.Code(x.op))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sc.ID)
	}
	dispatch(t, f)
	var out childOut
	for i, u := range []apptest.User{alphaOp, bravoOp} {
		sc := wait(t, f, u, ids[i])
		out.Jobs = append(out.Jobs, *sc.Job)
	}
	// The two ran at the same time: each started before the other ended.
	a, b := out.Jobs[0], out.Jobs[1]
	if !(a.StartedAt < b.FinishedAt && b.StartedAt < a.FinishedAt) {
		t.Errorf("the scans did not overlap: %+v %+v", a, b)
	}
	return out
}

// allowAll is a containment that accepts every address: the engine is
// asked to send wherever the targets say, and only its own send-path check
// of special addresses stands in the way.
type allowAll struct{}

func (allowAll) Contains(netip.Addr) bool { return true }

// specialTargets are addresses no scope may include; control is a lab host
// that proves the engine did send.
var (
	specialTargets = []string{"0.0.0.0", "0.1.2.3", "224.0.0.1", "239.255.255.250", "255.255.255.255", "::", "ff02::1", "ff05::2"}
	controlTargets = []string{"198.18.1.1", "fd00:f1a9:1::1"}
)

// childSpecial runs the bare engine with a containment that allows
// everything and targets that include special addresses.
func childSpecial(t *testing.T, cfg childConfig) childOut {
	var targets []netip.Addr
	for _, s := range append(slices.Clone(specialTargets), controlTargets...) {
		targets = append(targets, netip.MustParseAddr(s))
	}
	var rows []probe.Result
	eng, err := probe.New(probe.Config{
		ScanID: "special", Targets: slices.Values(targets), TargetCount: uint64(len(targets)),
		Ports: []probe.Port{{Proto: "tcp", Number: 22}, {Proto: "udp", Number: 53}},
		Kinds: []probe.Kind{probe.KindTCPSyn, probe.KindUDP, probe.KindICMPEcho}, Scope: allowAll{},
		Limits: probe.Limits{Requested: cfg.Rate}, Retries: -1, Timeout: 500 * time.Millisecond,
		Results: func(r probe.Result) error { rows = append(rows, r); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := eng.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("special: sent %d, refused packets %d %v, refused targets %d, %d results", s.PacketsSent, s.RefusedPackets, s.RefusedSample, s.RefusedTargets, len(rows))
	return childOut{Sent: s.PacketsSent, Refused: s.RefusedPackets + s.RefusedTargets}
}

// childEngine is the benchmark's baseline: the bare engine, as the lab
// build's probe command runs it, over the same scope and rate as the
// service scan (results and capture written to a directory).
func childEngine(t *testing.T, cfg childConfig) childOut {
	pub, priv, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	v4, v6 := netip.MustParsePrefix(cfg.V4), netip.MustParsePrefix(cfg.V6)
	now := time.Now()
	doc := scope.Document{ID: "lab-zone", Tenant: "alpha", Name: "lab target zone",
		Environment: scope.EnvNonProduction, CIDRs: []string{cfg.V4, cfg.V6},
		Exclude: []string{netip.PrefixFrom(hostAddr(v4, excludedHost), 32).String(), netip.PrefixFrom(hostAddr(v6, excludedHost), 128).String()},
		Ports:   allPorts, Probes: []safety.Kind{safety.KindTCPSyn, safety.KindUDP, safety.KindICMPEcho}, MaxPPS: cfg.Rate,
		NotBefore: now.Add(-time.Hour).UTC().Truncate(time.Second), NotAfter: now.Add(time.Hour).UTC().Truncate(time.Second)}
	signed, err := scope.Sign(doc, priv)
	if err != nil {
		t.Fatal(err)
	}
	prof, err := safety.Load()
	if err != nil {
		t.Fatal(err)
	}
	sc, err := scope.Verify(signed, pub, now, prof)
	if err != nil {
		t.Fatal(err)
	}
	var ports []probe.Port
	for _, p := range sc.Ports() {
		ports = append(ports, probe.Port{Proto: p.Proto, Number: p.Number})
	}
	d, err := probe.OpenDir(filepath.Join(t.TempDir(), "scan"), probe.Checkpoint{ScanID: "bench", Fingerprint: "bench", Seed: 7}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cpu0, wall0 := cpuTime(t), time.Now()
	eng, err := probe.New(probe.Config{
		ScanID: "bench", Targets: sc.Targets(7), TargetCount: sc.Size(),
		Ports: ports, Kinds: []probe.Kind{probe.KindTCPSyn, probe.KindUDP, probe.KindICMPEcho}, Scope: sc,
		Limits:  probe.Limits{Scope: sc.Doc.MaxPPS, Requested: cfg.Rate},
		Results: d.Result, Evidence: d.Evidence(), Checkpoint: d.Checkpoint,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, runErr := eng.Run(ctx)
	if err := d.Finish(s, runErr == nil); err != nil {
		t.Fatal(err)
	}
	if runErr != nil {
		t.Fatal(runErr)
	}
	return childOut{Sent: s.PacketsSent, Wall: time.Since(wall0), CPU: cpuTime(t) - cpu0}
}
