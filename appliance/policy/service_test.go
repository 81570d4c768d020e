package policy_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/journal"
	"firewalliq/appliance/keyring"
	"firewalliq/appliance/policy"
	"firewalliq/appliance/siem"
	"firewalliq/appliance/store"
	"firewalliq/audit"
	"firewalliq/probe"
	"firewalliq/probe/scope"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fixture is a real appliance core: SQLite file, audit log, SIEM outbox
// with one appliance-wide destination, identity service, policy service.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	clk   *clock
	st    *store.Store
	auth  *auth.Service
	svc   *policy.Service
	keys  *keyring.Keyring
	a, b  string
	users map[string]user
}

type user struct {
	store.User
	password, secret string
	p                auth.Principal
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 11, 29, 14, 0, 5, 0, time.UTC)}
	dir := t.TempDir()
	if _, err := keyring.Create(dir, clk.now(), []string{"localhost"}); err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, filepath.Join(dir, "policy.db"), store.Options{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	out := siem.New(st.DB(), siem.Options{ApplianceID: "fiq-test", Now: clk.now})
	jr, err := journal.New(st.DB(), audit.New(audit.Options{Now: clk.now}), out)
	if err != nil {
		t.Fatal(err)
	}
	as, err := auth.NewService(auth.Deps{Store: st, Journal: jr, Keys: kr, Now: clk.now,
		Params: auth.Params{Argon: auth.ArgonParams{Time: 1, MemoryKiB: 64, Threads: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := policy.NewService(policy.Deps{Store: st, Gate: as, Journal: jr, Findings: out})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ctx: ctx, clk: clk, st: st, auth: as, svc: svc, keys: kr, users: map[string]user{}}
	err = st.InTx(ctx, func(tx *sql.Tx) error {
		a, err := st.CreateTenant(ctx, tx, "alpha")
		if err != nil {
			return err
		}
		b, err := st.CreateTenant(ctx, tx, "bravo")
		f.a, f.b = a.ID, b.ID
		if err != nil {
			return err
		}
		_, err = out.CreateDestination(ctx, tx, siem.Destination{Name: "soc", Kind: siem.KindTCP, Address: "127.0.0.1:1"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct{ tenant, name, role string }{
		{f.a, "lead", store.RoleSecurityLead}, {f.a, "oper", store.RoleOperator}, {f.a, "audi", store.RoleAuditor}, {f.b, "lead-b", store.RoleSecurityLead},
	} {
		f.user(u.tenant, u.name, u.role)
	}
	return f
}

// user creates a user with a confirmed TOTP secret and signs them in.
func (f *fixture) user(tenant, name, role string) {
	f.t.Helper()
	pw := name + "-correct-horse"
	hash, err := auth.HashPasswordWith(auth.ArgonParams{Time: 1, MemoryKiB: 64, Threads: 1}, pw)
	if err != nil {
		f.t.Fatal(err)
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "FirewallIQ Secure", AccountName: name})
	if err != nil {
		f.t.Fatal(err)
	}
	id := store.NewID("u")
	sealed, err := f.keys.Seal([]byte(key.Secret()), []byte("totp:"+id))
	if err != nil {
		f.t.Fatal(err)
	}
	var u store.User
	err = f.st.InTx(f.ctx, func(tx *sql.Tx) error {
		ts, _ := f.st.Tenant(tenant)
		u, err = ts.CreateUser(f.ctx, tx, store.User{ID: id, Name: name, Role: role, PasswordHash: hash, TOTPSealed: sealed, TOTPConfirmed: true})
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	c := auth.Client{IP: "192.0.2.10", UserAgent: "policy-test"}
	l, err := f.auth.Login(f.ctx, name, pw, c, "")
	if err != nil {
		f.t.Fatal(err)
	}
	l, err = f.auth.VerifyTOTP(f.ctx, l.Token, f.code(key.Secret()), c)
	if err != nil {
		f.t.Fatal(err)
	}
	p, err := f.auth.Authenticate(f.ctx, auth.Request{SessionToken: l.Token, Method: "GET", Client: c})
	if err != nil {
		f.t.Fatal(err)
	}
	f.users[name] = user{User: u, password: pw, secret: key.Secret(), p: p}
}

// code moves to the next TOTP step and returns the code there.
func (f *fixture) code(secret string) string {
	f.t.Helper()
	f.clk.advance(30 * time.Second)
	c, err := auth.TOTPCode(secret, f.clk.now())
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (f *fixture) entries(action audit.Action) []audit.Entry {
	f.t.Helper()
	es, err := audit.ReadEntries(f.ctx, f.st.DB(), 1, 1<<62)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []audit.Entry
	for _, e := range es {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

func (f *fixture) findingEvents() []string {
	f.t.Helper()
	rows, err := f.st.DB().QueryContext(f.ctx, `SELECT event FROM siem_outbox ORDER BY seq`)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			f.t.Fatal(err)
		}
		if strings.Contains(string(b), `"action":"finding"`) {
			out = append(out, string(b))
		}
	}
	return out
}

func readExample(t *testing.T) []byte {
	b, err := os.ReadFile("testdata/dmz.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestServiceLifecycle: create two versions, read them, dry-run, evaluate
// without and with a baseline (accepted with step-up), and check the audit
// entries and the SIEM findings of each step.
func TestServiceLifecycle(t *testing.T) {
	f := newFixture(t)
	lead, oper, audi := f.users["lead"].p, f.users["oper"].p, f.users["audi"].p
	src := readExample(t)

	v1, err := f.svc.Create(f.ctx, oper, "", src)
	if err != nil || v1.Version != 1 || v1.Name != "dmz-from-corp" {
		t.Fatalf("create: %+v, %v", v1, err)
	}
	v2, err := f.svc.Create(f.ctx, lead, "", []byte(strings.Replace(string(src), "severity: high\n  - name: db-closed", "severity: critical\n  - name: db-closed", 1)))
	if err != nil || v2.Version != 2 || v2.SHA256 == v1.SHA256 {
		t.Fatalf("create v2: %+v, %v", v2, err)
	}
	if es := f.entries(audit.ActPolicyCreate); len(es) != 2 || es[1].Object != "policy:dmz-from-corp" || !strings.Contains(string(es[1].Details), `"version":2`) {
		t.Fatalf("policy.create entries %+v", es)
	}
	got, err := f.svc.Get(f.ctx, audi, "", "dmz-from-corp", 1)
	if err != nil || got.SHA256 != v1.SHA256 || string(got.Source) != string(src) {
		t.Fatalf("get v1: %+v, %v", got, err)
	}
	list, err := f.svc.List(f.ctx, audi, "")
	if err != nil || len(list) != 1 || list[0].Version != 2 {
		t.Fatalf("list: %+v, %v", list, err)
	}
	dr, err := f.svc.DryRun(f.ctx, audi, "", "dmz-from-corp", 0, scope.Document{CIDRs: []string{"10.20.0.0/24"}, Ports: "tcp:22,80,443"})
	if err != nil || len(dr.Coverage) != 3 || len(dr.Warnings) != 1 || !strings.Contains(dr.Warnings[0].Msg, "none of its targets") {
		t.Fatalf("dry run: %+v, %v", dr, err)
	}

	at := f.clk.now()
	w := policy.Window{Start: at, End: at.Add(time.Hour)}
	scan1 := []probe.Result{
		{Target: "10.20.0.7", Proto: "tcp", Port: 443, Probe: probe.KindTCPSyn, State: probe.StateOpen, Time: at.Add(time.Minute)},
		{Target: "10.20.0.7", Proto: "tcp", Port: 80, Probe: probe.KindTCPSyn, State: probe.StateOpen, Time: at.Add(time.Minute)},
		{Target: "10.20.0.7", Proto: "tcp", Port: 22, Probe: probe.KindTCPSyn, State: probe.StateRejected, ICMP: &probe.ICMP{Type: 3, Code: 13}, Time: at.Add(time.Minute)},
		{Target: "10.30.0.5", Proto: "tcp", Port: 3306, Probe: probe.KindTCPSyn, State: probe.StateFiltered, Time: at.Add(time.Minute)},
	}
	o1, err := f.svc.Evaluate(f.ctx, oper, "", policy.EvaluateRequest{PolicyName: "dmz-from-corp", ScopeID: "dmz", ScanID: "scan-1", Results: scan1, Window: w})
	if err != nil {
		t.Fatal(err)
	}
	if len(o1.Findings) != 0 || o1.BaselineID != "" || o1.Policy.Version != 2 {
		t.Fatalf("scan 1: %+v", o1)
	}
	// Accepting a baseline needs step-up: without a code it is a challenge
	// (audited as a failed step-up), and nothing is stored.
	req := policy.BaselineRequest{ScopeID: "dmz", PolicyName: "dmz-from-corp", ScanID: "scan-1", Results: scan1}
	var ch *auth.StepUpChallenge
	if _, err := f.svc.AcceptBaseline(f.ctx, lead, "", req, ""); !errors.As(err, &ch) {
		t.Fatalf("accept without step-up: %v, want a challenge", err)
	}
	if len(f.entries(audit.ActAuthStepUpFailed)) != 1 || len(f.entries(audit.ActPolicyBaselineAccept)) != 0 {
		t.Fatal("refused step-up not audited, or baseline stored")
	}
	// An operator may evaluate but not accept baselines.
	if _, err := f.svc.AcceptBaseline(f.ctx, oper, "", req, f.code(f.users["oper"].secret)); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("operator accept: %v, want ErrForbidden", err)
	}
	bl, err := f.svc.AcceptBaseline(f.ctx, lead, "", req, f.code(f.users["lead"].secret))
	if err != nil || bl.PolicyVersion != 2 {
		t.Fatalf("accept: %+v, %v", bl, err)
	}
	if es := f.entries(audit.ActPolicyBaselineAccept); len(es) != 1 || es[0].Object != "baseline:"+bl.ID {
		t.Fatalf("baseline entries %+v", es)
	}
	if got, rs, err := f.svc.Baseline(f.ctx, audi, "", "dmz", "dmz-from-corp"); err != nil || got.ID != bl.ID || len(rs) != len(scan1) {
		t.Fatalf("baseline: %+v, %d results, %v", got, len(rs), err)
	}
	if _, _, err := f.svc.Baseline(f.ctx, audi, "", "other", "dmz-from-corp"); !errors.Is(err, policy.ErrNotFound) {
		t.Fatalf("missing baseline: %v, want ErrNotFound", err)
	}

	// Scan 2: the DB port opened (exposure + drift), the canary is gone.
	scan2 := []probe.Result{
		{Target: "10.20.0.7", Proto: "tcp", Port: 80, Probe: probe.KindTCPSyn, State: probe.StateOpen, Time: at.Add(2 * time.Minute)},
		{Target: "10.20.0.7", Proto: "tcp", Port: 22, Probe: probe.KindTCPSyn, State: probe.StateFiltered, Time: at.Add(2 * time.Minute)},
		{Target: "10.30.0.5", Proto: "tcp", Port: 3306, Probe: probe.KindTCPSyn, State: probe.StateOpen, Time: at.Add(2 * time.Minute)},
	}
	o2, err := f.svc.Evaluate(f.ctx, oper, "", policy.EvaluateRequest{PolicyName: "dmz-from-corp", ScopeID: "dmz", ScanID: "scan-2", Results: scan2, Window: w})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, fd := range o2.Findings {
		kinds[fd.Kind]++
	}
	// exposure (3306 open), inconclusive (22 silent, no canary), drift:
	// 3306 newly open, 22 rejected -> drop.
	if o2.BaselineID != bl.ID || kinds[policy.KindExposure] != 1 || kinds[policy.KindInconclusive] != 1 || kinds[policy.KindDrift] != 2 || len(o2.Findings) != 4 {
		t.Fatalf("scan 2 findings %v (%+v)", kinds, o2.Findings)
	}
	es := f.entries(audit.ActPolicyEvaluate)
	if len(es) != 2 || es[1].Seq != o2.AuditSeq || es[1].Object != "scan:scan-2" || !strings.Contains(string(es[1].Details), `"exposure":1`) {
		t.Fatalf("policy.evaluate entries %+v", es)
	}
	// Every finding reached the SIEM outbox with its severity and the
	// evaluation's audit seq.
	evs := f.findingEvents()
	if len(evs) != 4 {
		t.Fatalf("%d finding events in the outbox, want 4", len(evs))
	}
	if !strings.Contains(strings.Join(evs, "\n"), `"kind":"exposure","severity":"critical"`) {
		t.Errorf("exposure event lacks its severity:\n%s", strings.Join(evs, "\n"))
	}

	// Imported results (another scanner's file) are marked as such in the
	// audit entry and in every SIEM finding.
	if _, err := f.svc.Evaluate(f.ctx, oper, "", policy.EvaluateRequest{PolicyName: "dmz-from-corp", ScanID: "import-1", Results: scan2, Window: w, Imported: true}); err != nil {
		t.Fatal(err)
	}
	if es := f.entries(audit.ActPolicyEvaluate); !strings.Contains(string(es[len(es)-1].Details), `"imported":true`) {
		t.Errorf("imported evaluation not marked: %s", es[len(es)-1].Details)
	}
	evs = f.findingEvents()
	if last := evs[len(evs)-1]; !strings.Contains(last, "[unsigned imported evidence]") {
		t.Errorf("imported finding not marked: %s", last)
	}
}

// TestServiceRefusals: bad input is refused with a clear error and stores
// nothing; another tenant's policy looks missing; roles are enforced.
func TestServiceRefusals(t *testing.T) {
	f := newFixture(t)
	lead, audi, leadB := f.users["lead"].p, f.users["audi"].p, f.users["lead-b"].p
	if _, err := f.svc.Create(f.ctx, audi, "", readExample(t)); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("auditor create: %v, want ErrForbidden", err)
	}
	_, err := f.svc.Create(f.ctx, lead, "", []byte("version: 1\nname: p\nvantage_point: v\nrules:\n  - name: r\n    action: maybe\n"))
	var ve *policy.ValidationError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "line 6: rules[0].action") {
		t.Fatalf("invalid create: %v", err)
	}
	if es := f.entries(audit.ActPolicyCreate); len(es) != 0 {
		t.Fatal("invalid document was stored")
	}
	if _, err := f.svc.Create(f.ctx, lead, "", readExample(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Get(f.ctx, leadB, "", "dmz-from-corp", 0); !errors.Is(err, policy.ErrNotFound) {
		t.Fatalf("tenant B get: %v, want ErrNotFound", err)
	}
	if _, err := f.svc.Get(f.ctx, leadB, f.a, "dmz-from-corp", 0); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("tenant B naming tenant A: %v, want ErrForbidden", err)
	}
	if _, err := f.svc.Evaluate(f.ctx, lead, "", policy.EvaluateRequest{PolicyName: "dmz-from-corp", ScanID: "bad id!"}); !errors.Is(err, policy.ErrInvalid) {
		t.Fatalf("bad scan id: %v, want ErrInvalid", err)
	}
	if _, err := f.svc.Evaluate(f.ctx, lead, "", policy.EvaluateRequest{PolicyName: "dmz-from-corp", ScanID: "s", Window: policy.Window{Start: time.Unix(10, 0), End: time.Unix(5, 0)}}); !errors.Is(err, policy.ErrInvalid) {
		t.Fatalf("bad window: %v, want ErrInvalid", err)
	}
	if _, err := f.svc.Evaluate(f.ctx, lead, "", policy.EvaluateRequest{PolicyName: "dmz-from-corp", ScanID: "s"}); !errors.Is(err, policy.ErrInvalid) {
		t.Fatalf("no window: %v, want ErrInvalid", err)
	}
	if len(f.entries(audit.ActPolicyEvaluate)) != 0 {
		t.Fatal("refused evaluation was recorded")
	}
}
