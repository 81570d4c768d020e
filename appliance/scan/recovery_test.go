package scan_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"firewalliq/appliance"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/internal/apptest"
	"firewalliq/appliance/keyring"
	"firewalliq/appliance/scan"
	"firewalliq/appliance/siem"
	"firewalliq/appliance/siem/destinations"
	"firewalliq/appliance/store"
	"firewalliq/audit"
	"firewalliq/probe/job"
	"firewalliq/probe/keys"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// slowScan requests a scan of the addresses of cidr x 2 ports at 20 pps,
// in two or more batches (the engine's batch is about one second of
// sending, at least 16 targets), so a run can be stopped between
// checkpoints.
func (e *env) slowScan(t *testing.T, cidr string) scan.Scan {
	t.Helper()
	return e.slowScanOf(t, "block", cidr)
}

// slowScanOf is slowScan with a scope named id.
func (e *env) slowScanOf(t *testing.T, id, cidr string) scan.Scan {
	t.Helper()
	e.scope(t, id, scope.EnvNonProduction, cidr)
	sc, err := e.f.App.Scans.Request(e.f.Ctx, e.op.P, "", scan.ScanRequest{ScopeID: id, Rate: 20}, e.f.Code(e.op))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// waitCheckpoint polls until scan id's job has a checkpoint (20 s at most).
func waitCheckpoint(t *testing.T, db *sql.DB, id string) int {
	t.Helper()
	for range 8000 {
		var n int
		err := db.QueryRow(`SELECT next_batch FROM scan_jobs WHERE scan_id = ?`, id).Scan(&n)
		if err == nil && n > 0 {
			return n
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("scan %s reached no checkpoint", id)
	return 0
}

// checkResumed runs the dispatcher until scan id completes and checks that
// it resumed under its job (scan.resume audited) and stored every result
// exactly once.
func (e *env) checkResumed(t *testing.T, mark int64, id, jobID string, want int, minBatch float64) {
	t.Helper()
	e.dispatch(t)
	// A slow scan's 128 connect probes cost three packets each: about
	// 19 s at 20 pps, and a resume from batch 0 has all of it ahead (after
	// the SIGKILL it took 19-20 s here, and wait's 20 s ran out in 3 of
	// 6 runs).
	start := time.Now()
	sc := e.waitWithin(t, id, 60*time.Second, scan.StateCompleted, scan.StateFailed)
	t.Logf("the resumed scan was %s %s after the restart", sc.State, time.Since(start).Round(time.Millisecond))
	if sc.State != scan.StateCompleted || sc.Job.ID != jobID {
		t.Fatalf("after restart: %+v job %+v", sc, sc.Job)
	}
	rs := e.results(t, id)
	seen := map[string]bool{}
	for _, r := range rs {
		k := fmt.Sprintf("%s:%d", r.Target, r.Port)
		if seen[k] {
			t.Fatalf("result %s stored twice", k)
		}
		seen[k] = true
	}
	if len(rs) != want {
		t.Fatalf("%d results, want %d", len(rs), want)
	}
	res := e.f.Entries(mark, audit.ActScanResume)
	if len(res) != 1 || res[0].Object != "scan:"+id || apptest.Details(t, res[0])["job"] != jobID {
		t.Fatalf("scan.resume entries %+v", res)
	}
	if n := apptest.Details(t, res[0])["next_batch"].(float64); n < minBatch {
		t.Fatalf("resumed from batch %v", n)
	}
}

// TestResumeAfterStop: stopping the appliance mid-scan (the dispatcher's
// context ends) leaves the job running with its checkpoint; the next Run
// resumes it under the same job from that batch.
//
// The engine finalises the batches it has in flight close together, so
// on a loaded machine the last ones may complete before the stop takes
// effect; then the scenario is run again with a new scan (three times at
// most).
func TestResumeAfterStop(t *testing.T) {
	e := newEnv(t)
	for attempt := range 3 {
		sc := e.slowScanOf(t, fmt.Sprintf("block%d", attempt), "127.0.0.0/26")
		stop := e.dispatch(t)
		waitCheckpoint(t, e.f.DB, sc.ID)
		stop()
		got, err := e.f.App.Scans.Get(e.f.Ctx, e.op.P, "", sc.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State == scan.StateCompleted {
			t.Logf("attempt %d: the scan completed before the stop took effect", attempt+1)
			continue
		}
		// Stopped after one checkpoint or more (possibly the last, before
		// the completion was recorded): resumed from there.
		if got.State != scan.StateRunning || got.Job.State != scan.JobRunning || got.Job.NextBatch < 1 || got.Job.Results == 0 || got.Job.Results > 128 {
			t.Fatalf("after stop: %s %+v", got.State, got.Job)
		}
		mark := e.f.Head()
		e.checkResumed(t, mark, sc.ID, got.Job.ID, 128, 1)
		return
	}
	t.Fatal("the scan completed before the stop took effect, three times")
}

// TestResumeAfterSIGKILL runs the scan in a child process (this test
// binary, re-executed), kills it with SIGKILL two seconds into the run
// (mid-scan: this scan's batches complete after about 18 s on loopback),
// and resumes the scan here under the same job.
func TestResumeAfterSIGKILL(t *testing.T) {
	e := newEnv(t)
	sc := e.slowScan(t, "127.0.0.0/26")
	cmd := exec.Command(os.Args[0], "-test.run=^TestScanChild$", "-test.v")
	cmd.Env = append(os.Environ(), "FIQ_SCAN_CHILD_DIR="+e.f.Cfg.DataDir, "FIQ_SCAN_CHILD_NOW="+e.f.Clock.Now().Format(time.RFC3339Nano))
	out, err := os.Create(filepath.Join(t.TempDir(), "child.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitJob(t, e.f.DB, sc.ID)
	time.Sleep(2 * time.Second)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	werr := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		b, _ := os.ReadFile(out.Name())
		t.Fatalf("child did not die of SIGKILL: %v\n%s", werr, b)
	}
	got, err := e.f.App.Scans.Get(e.f.Ctx, e.op.P, "", sc.ID)
	if err != nil || got.Job == nil || got.Job.State != scan.JobRunning || got.Job.Results > 128 {
		t.Fatalf("after SIGKILL: %v %+v", err, got.Job)
	}
	mark := e.f.Head()
	e.checkResumed(t, mark, sc.ID, got.Job.ID, 128, 0)
}

// waitJob polls until scan id's job is running (20 s at most).
func waitJob(t *testing.T, db *sql.DB, id string) {
	t.Helper()
	for range 1000 {
		var st string
		if db.QueryRow(`SELECT state FROM scan_jobs WHERE scan_id = ?`, id).Scan(&st) == nil && st == "running" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("scan %s did not start", id)
}

// TestScanChild is the child of TestResumeAfterSIGKILL: it opens the
// appliance in FIQ_SCAN_CHILD_DIR with a clock starting at
// FIQ_SCAN_CHILD_NOW and runs the scan service until it is killed (60 s at
// most).
func TestScanChild(t *testing.T) {
	dir := os.Getenv("FIQ_SCAN_CHILD_DIR")
	if dir == "" {
		t.Skip("helper process of TestResumeAfterSIGKILL")
	}
	base, err := time.Parse(time.RFC3339Nano, os.Getenv("FIQ_SCAN_CHILD_NOW"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	clock := func() time.Time { return base.Add(time.Since(start)) }
	cfg := appliance.DefaultConfig()
	cfg.DataDir = dir
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := appliance.OpenWith(ctx, cfg, clock, appliance.Options{LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.Scans.Run(ctx)
}

// TestTamperedJobsRefused: jobs left unfinished whose signed document was
// altered in the database (each field in turn, re-signed or not) are not
// resumed: recovery refuses each with the verifier's code, audited as
// scan.refuse, and fails the scan.
func TestTamperedJobsRefused(t *testing.T) {
	e := newEnv(t)
	f := e.f
	e.scope(t, "lab", scope.EnvNonProduction)
	sc, err := f.App.Scans.Request(f.Ctx, e.op.P, "", scan.ScanRequest{ScopeID: "lab", Targets: []string{"127.0.0.1"}}, f.Code(e.op))
	if err != nil {
		t.Fatal(err)
	}
	stop := e.dispatch(t)
	sc = e.wait(t, sc.ID, scan.StateCompleted)
	stop()
	var signed []byte
	if err := f.DB.QueryRow(`SELECT signed FROM scan_jobs WHERE scan_id = ?`, sc.ID).Scan(&signed); err != nil {
		t.Fatal(err)
	}
	base, _, err := job.Open(signed)
	if err != nil {
		t.Fatal(err)
	}
	jobKey, err := f.App.Keys.Signer(keyring.Job)
	if err != nil {
		t.Fatal(err)
	}
	_, stranger := newKey(t)
	now := f.Clock.Now().UTC().Truncate(time.Second)
	tests := []struct {
		name   string
		edit   func(j *job.Job)
		key    string // "job" (default), "stranger", or "none" (edited after signing)
		code   string
		action audit.Action
	}{
		{name: "edited after signing", key: "none", edit: func(j *job.Job) { j.Request.Rate = 49 }, code: "signature", action: audit.ActScanRefuse},
		{name: "signed by another key", key: "stranger", edit: func(j *job.Job) {}, code: "untrusted-key", action: audit.ActScanRefuse},
		{name: "expired", edit: func(j *job.Job) {
			j.IssuedAt, j.NotBefore, j.NotAfter = now.Add(-2*time.Hour), now.Add(-2*time.Hour), now.Add(-time.Hour)
		}, code: "expired", action: audit.ActScanRefuse},
		{name: "rate above the scope", edit: func(j *job.Job) { j.Request.Rate = 51 }, code: "rate-above-cap", action: audit.ActScanRefuse},
		{name: "target outside", edit: func(j *job.Job) { j.Request.Targets = []string{"127.0.0.2"} }, code: "target-out-of-scope", action: audit.ActScanRefuse},
		{name: "other profile", edit: func(j *job.Job) { j.Profile.SHA256 = strings.Repeat("ab", 32) }, code: "profile-mismatch", action: audit.ActScanRefuse},
		{name: "port outside", edit: func(j *job.Job) { j.Request.Ports = "tcp:1" }, code: "port-out-of-scope", action: audit.ActScanRefuse},
		{name: "approval of another request", edit: func(j *job.Job) {
			j.Approvals = []job.Approval{{ID: "apr_x", Approver: "u_x", RequestSHA256: strings.Repeat("cd", 32)}}
		}, code: "approval-mismatch", action: audit.ActScanRefuse},
	}
	ids := map[string]string{}
	for i, tt := range tests {
		j := base
		id := fmt.Sprintf("scan_t%d", i)
		j.ID, j.ScanID = fmt.Sprintf("job_t%d", i), id
		j.Request.ID = id
		tt.edit(&j)
		j.SignerKeyID = "" // Sign names the key that signs
		var b []byte
		switch tt.key {
		case "stranger":
			b, err = job.Sign(j, stranger)
		case "none":
			jj := base
			jj.ID, jj.ScanID, jj.Request.ID = j.ID, j.ScanID, j.Request.ID
			jj.SignerKeyID = ""
			b, err = job.Sign(jj, jobKey)
			b = []byte(strings.Replace(string(b), `"rate":50`, `"rate":49`, 1))
		default:
			b, err = job.Sign(j, jobKey)
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		canon, _ := j.Request.Canonical()
		sum, _ := j.Request.SHA256()
		if _, err := f.DB.Exec(`INSERT INTO scan_requests (id, tenant_id, requester_id, scope_id, scope_sha256, request, request_sha256, state, created_at, updated_at)
			SELECT ?, tenant_id, requester_id, scope_id, scope_sha256, ?, ?, 'running', created_at, updated_at FROM scan_requests WHERE id = ?`, id, canon, sum, sc.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.DB.Exec(`INSERT INTO scan_jobs (id, scan_id, tenant_id, request_id, job_sha256, signed, vantage, state, issued_at)
			VALUES (?, ?, ?, ?, 'x', ?, 'local', 'running', ?)`, j.ID, id, f.Tenant, id, b, now.Format(time.RFC3339)); err != nil {
			t.Fatal(err)
		}
		ids[id] = tt.name
	}
	mark := f.Head()
	if err := f.App.Scans.Recover(f.Ctx); err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("scan_t%d", i)
			var found bool
			for _, en := range f.Entries(mark, tt.action) {
				if en.Object == "scan:"+id {
					found = true
					if d := apptest.Details(t, en); d["code"] != tt.code {
						t.Fatalf("%s: code %v (%v), want %s", en.Action, d["code"], d["reason"], tt.code)
					}
				}
			}
			if !found {
				t.Fatalf("no %s entry for %s", tt.action, id)
			}
			got, err := f.App.Scans.Get(f.Ctx, e.op.P, "", id)
			if err != nil || got.State != scan.StateFailed || got.Job.State != scan.JobFailed {
				t.Fatalf("after recovery: %v %+v %+v", err, got, got.Job)
			}
		})
	}
	if es := f.Entries(mark, audit.ActScanResume); len(es) != 0 {
		t.Fatalf("a tampered job was resumed: %+v", es)
	}
}

// TestTamperAlarmRefuses: with the audit tamper alarm raised, no scan is
// requested or started: a queued one fails with the reason, audited.
func TestTamperAlarmRefuses(t *testing.T) {
	e := newEnv(t)
	f := e.f
	e.scope(t, "lab", scope.EnvNonProduction)
	queued, err := f.App.Scans.Request(f.Ctx, e.op.P, "", scan.ScanRequest{ScopeID: "lab"}, f.Code(e.op))
	if err != nil {
		t.Fatal(err)
	}
	// Edit an entry in the file and start the appliance again: start-up
	// verification raises the alarm.
	en, err := audit.ReadEntry(f.Ctx, f.DB, 3)
	if err != nil {
		t.Fatal(err)
	}
	en.ActorIP = "203.0.113.66"
	if _, err := f.DB.Exec(`DROP TRIGGER audit_entries_no_update`); err != nil {
		t.Fatal(err)
	}
	if _, err := f.DB.Exec(`UPDATE audit_entries SET entry = ? WHERE seq = 3`, audit.Canonical(en)); err != nil {
		t.Fatal(err)
	}
	again, err := appliance.OpenWith(f.Ctx, f.Cfg, f.Clock.Now, appliance.Options{LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if again.AuditStartup.Alarm == nil {
		t.Fatal("no alarm raised")
	}
	again.Close()
	mark := f.Head()
	if _, err := f.App.Scans.Request(f.Ctx, e.op.P, "", scan.ScanRequest{ScopeID: "lab"}, f.Code(e.op)); !errors.Is(err, audit.ErrTamperAlarm) {
		t.Fatalf("Request under alarm: %v", err)
	}
	if es := f.Entries(mark, audit.ActAccessDenied); len(es) != 1 {
		t.Fatalf("refusal audited %d times", len(es))
	}
	e.dispatch(t)
	got := e.wait(t, queued.ID, scan.StateFailed, scan.StateCompleted)
	if got.State != scan.StateFailed || got.Job != nil || !strings.Contains(got.Reason, "tamper alarm") {
		t.Fatalf("queued scan under alarm: %+v", got)
	}
	fails := f.Entries(mark, audit.ActScanFail)
	if len(fails) != 1 || fails[0].Object != "scan:"+queued.ID {
		t.Fatalf("scan.fail entries %+v", fails)
	}
}

// TestTenantsServedFairly: with one tenant's backlog queued first, the
// other tenant's scans are issued in turn, not after the backlog; never
// more than max_concurrent_scans run at once; and every lifecycle entry
// reaches the SIEM outbox.
func TestTenantsServedFairly(t *testing.T) {
	e := newEnv(t)
	f := e.f
	// An appliance-wide SIEM destination: every entry is queued for it.
	root := f.Users["appliance_admin"]
	if _, err := f.App.SIEM.Add(f.Ctx, root.P, "", destinations.NewDestination{Name: "soc", Kind: siem.KindTCP, Address: "127.0.0.1:9", Format: siem.FormatOCSF}, f.Code(root)); err != nil {
		t.Fatal(err)
	}
	e.scope(t, "lab", scope.EnvNonProduction)
	// Tenant bravo: its own lead, key, scope and operator.
	bLead := f.AddUser(f.Other, "bravo_lead", store.RoleSecurityLead)
	bOp := f.AddUser(f.Other, "bravo_op", store.RoleOperator)
	bPub, bPriv := newKey(t)
	addKey(t, f, bLead, bPub)
	now := f.Clock.Now()
	doc := scope.Document{ID: "lab", Tenant: "bravo", Name: "bravo loopback", Environment: scope.EnvNonProduction,
		CIDRs: []string{"127.0.0.1/32"}, Exclude: []string{}, Ports: fmt.Sprintf("tcp:%d,%d", e.open, e.closed), Probes: []safety.Kind{safety.KindTCPConnect},
		NotBefore: now.Add(-time.Hour).Truncate(time.Second), NotAfter: now.Add(24 * time.Hour).Truncate(time.Second), MaxPPS: 50, SignerKeyID: keys.ID(bPub)}
	b, err := scope.Sign(doc, bPriv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.App.Scopes.Register(f.Ctx, bLead.P, "", b); err != nil {
		t.Fatal(err)
	}
	// alpha's key does not sign for bravo.
	doc.ID, doc.SignerKeyID = "stolen", keys.ID(e.pub)
	if b, err = scope.Sign(doc, e.priv); err != nil {
		t.Fatal(err)
	}
	if _, err := f.App.Scopes.Register(f.Ctx, bLead.P, "", b); !errors.Is(err, scan.ErrUntrusted) {
		t.Fatalf("alpha's key in bravo: %v", err)
	}
	mark := f.Head()
	var alpha, bravo []string
	for range 4 {
		sc, err := f.App.Scans.Request(f.Ctx, e.op.P, "", scan.ScanRequest{ScopeID: "lab", Rate: 10}, f.Code(e.op))
		if err != nil {
			t.Fatal(err)
		}
		alpha = append(alpha, sc.ID)
	}
	for range 2 {
		sc, err := f.App.Scans.Request(f.Ctx, bOp.P, "", scan.ScanRequest{ScopeID: "lab", Rate: 10}, f.Code(bOp))
		if err != nil {
			t.Fatal(err)
		}
		bravo = append(bravo, sc.ID)
	}
	e.dispatch(t)
	for _, id := range alpha {
		e.wait(t, id, scan.StateCompleted)
	}
	for _, id := range bravo {
		if sc, err := f.App.Scans.Get(f.Ctx, bOp.P, "", id); err != nil {
			t.Fatal(err)
		} else if sc.State != scan.StateCompleted {
			e.waitAs(t, bOp.P, id)
		}
	}
	// Issue order: the running scan.start entries.
	var order []string
	for _, en := range f.Entries(mark, audit.ActScanStart) {
		if apptest.Details(t, en)["state"] == scan.StateRunning {
			order = append(order, strings.TrimPrefix(en.Object, "scan:"))
		}
	}
	// Two slots: each pair is popped round robin, and the two of a pair
	// may record their start in either order.
	want := []string{alpha[0], bravo[0], alpha[1], bravo[1], alpha[2], alpha[3]}
	pairs := func(l []string) [][]string {
		var out [][]string
		for i := 0; i+1 < len(l); i += 2 {
			p := []string{l[i], l[i+1]}
			slices.Sort(p)
			out = append(out, p)
		}
		return out
	}
	if len(order) != len(want) || !slices.EqualFunc(pairs(order), pairs(want), slices.Equal) {
		t.Fatalf("issue order %v, want %v (round robin, in pairs)", order, want)
	}
	// At most max_concurrent_scans (2) jobs ran at any moment.
	rows, err := f.DB.Query(`SELECT started_at, finished_at FROM scan_jobs`)
	if err != nil {
		t.Fatal(err)
	}
	type span struct{ a, b string }
	var spans []span
	for rows.Next() {
		var s span
		if err := rows.Scan(&s.a, &s.b); err != nil {
			t.Fatal(err)
		}
		spans = append(spans, s)
	}
	rows.Close()
	for _, s := range spans {
		n := 0
		for _, o := range spans {
			if o.a <= s.a && s.a < o.b {
				n++
			}
		}
		if n > 2 {
			t.Fatalf("%d jobs running at %s", n, s.a)
		}
	}
	// Every scan.* entry since mark is in the SIEM outbox.
	var entries, got int
	for _, en := range f.Entries(mark, "") {
		if strings.HasPrefix(string(en.Action), "scan.") {
			entries++
		}
	}
	if err := f.DB.QueryRow(`SELECT COUNT(*) FROM siem_outbox WHERE CAST(event AS TEXT) LIKE '%scan.%'`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if entries == 0 || got < entries {
		t.Fatalf("%d scan events in the SIEM outbox, %d scan entries", got, entries)
	}
}

// waitAs is wait for a scan of another tenant.
func (e *env) waitAs(t *testing.T, p auth.Principal, id string) {
	t.Helper()
	for range 1000 {
		sc, err := e.f.App.Scans.Get(e.f.Ctx, p, "", id)
		if err != nil {
			t.Fatal(err)
		}
		if sc.State == scan.StateCompleted {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("scan %s did not complete", id)
}

// TestRunnerRefusalAudited: a job the runner refuses before its first
// packet (here: it names a vantage point that is not this runner) fails
// the scan, audited as scan.refuse with the runner's code, and nothing is
// stored.
func TestRunnerRefusalAudited(t *testing.T) {
	e := newEnv(t)
	f := e.f
	e.scope(t, "lab", scope.EnvNonProduction)
	sc, err := f.App.Scans.Request(f.Ctx, e.op.P, "", scan.ScanRequest{ScopeID: "lab", Vantage: "sensor-7"}, f.Code(e.op))
	if err != nil {
		t.Fatal(err)
	}
	mark := f.Head()
	e.dispatch(t)
	got := e.wait(t, sc.ID, scan.StateFailed, scan.StateCompleted)
	if got.State != scan.StateFailed || got.Job == nil || got.Job.State != scan.JobRefused || got.Job.Results != 0 {
		t.Fatalf("refused scan %+v %+v", got, got.Job)
	}
	rs := f.Entries(mark, audit.ActScanRefuse)
	if len(rs) != 1 || rs[0].Object != "scan:"+sc.ID || apptest.Details(t, rs[0])["code"] != "vantage-mismatch" {
		t.Fatalf("scan.refuse entries %+v", rs)
	}
}
