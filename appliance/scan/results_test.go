package scan

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"firewalliq/appliance/store"
	"firewalliq/probe"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// fixture opens a real SQLite store with a tenant, a requester, a scope and
// a scan request, and returns the store and the tenant id.
func fixture(tb testing.TB, dir string) (*store.Store, string) {
	tb.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "fiq.db"), store.Options{Now: func() time.Time { return t0 }})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	var tenant string
	err = st.InTx(ctx, func(tx *sql.Tx) error {
		for i, name := range []string{"acme", "globex"} {
			tn, err := st.CreateTenant(ctx, tx, name)
			if err != nil {
				return err
			}
			ts, _ := st.Tenant(tn.ID)
			u, err := ts.CreateUser(ctx, tx, store.User{Name: "req-" + name, Role: store.RoleOperator, PasswordHash: "x"})
			if err != nil {
				return err
			}
			if _, err := ts.CreateScope(ctx, tx, store.Scope{ID: "sc-1", Name: "s", Environment: "non-production", Document: []byte("{}"), SHA256: "00"}); err != nil {
				return err
			}
			if err := InsertRequest(ctx, tx, RequestRow{ID: "req-" + name, TenantID: tn.ID, RequesterID: u.ID, ScopeID: "sc-1", ScopeSHA256: "00",
				Request: []byte("{}"), RequestSHA256: "00", State: "approved", CreatedAt: t0}); err != nil {
				return err
			}
			if i == 0 {
				tenant = tn.ID
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return st, tenant
}

func addJob(tb testing.TB, st *store.Store, tenant, id string) int64 {
	tb.Helper()
	var no int64
	err := st.InTx(context.Background(), func(tx *sql.Tx) (err error) {
		no, err = InsertJob(context.Background(), tx, JobRow{ID: id, ScanID: "scan-" + id, TenantID: tenant, RequestID: "req-acme",
			JobSHA256: "00", Signed: []byte("{}"), Vantage: "local", State: "running", IssuedAt: t0})
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return no
}

// synth makes n results over hosts x 16 ports: ports 1-12 tcp-syn, 13-16
// udp; states mostly filtered, some open and closed, rare rejected.
func synth(n int) []probe.Result {
	ports := []uint16{21, 22, 25, 53, 80, 110, 143, 443, 445, 3389, 8080, 8443, 53, 123, 161, 500}
	out := make([]probe.Result, 0, n)
	for i := range n {
		host := i / 16
		pi := i % 16
		r := probe.Result{
			Target: netip.AddrFrom4([4]byte{10, byte(host >> 16), byte(host >> 8), byte(host)}).String(),
			Proto:  "tcp", Port: ports[pi], Probe: probe.KindTCPSyn, Time: t0.Add(time.Duration(i) * time.Millisecond),
		}
		if pi >= 12 {
			r.Proto, r.Probe = "udp", probe.KindUDP
		}
		h := uint32(i) * 2654435761
		switch {
		case h%1000 == 7:
			r.State, r.Reason, r.ICMP = probe.StateRejected, "admin-prohibited", &probe.ICMP{Type: 3, Code: 13, From: "10.0.0.1"}
		case h%100 < 5:
			r.State, r.Reason, r.RTTms, r.TTL = probe.StateOpen, "syn-ack", 0.4, 64
		case h%100 < 10:
			r.State, r.Reason, r.RTTms, r.TTL = probe.StateClosed, "rst", 0.3, 64
		default:
			r.State, r.Reason = probe.StateFiltered, "no-response"
		}
		out = append(out, r)
	}
	return out
}

// load stores results in batches of 4096, each with its checkpoint.
func load(tb testing.TB, st *store.Store, jobNo int64, rs []probe.Result) {
	tb.Helper()
	const batch = 4096
	for b := 0; b*batch < len(rs); b++ {
		part := rs[b*batch : min((b+1)*batch, len(rs))]
		err := st.InTx(context.Background(), func(tx *sql.Tx) error {
			return SaveBatch(context.Background(), tx, jobNo, int64(b*batch+1), part, []string{"scans/x/probes.pcapng"}, b+1)
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
}

func matches(r probe.Result, f ResultFilter) bool {
	return (f.State == "" || string(r.State) == f.State) && (f.Port == 0 || int(r.Port) == f.Port) &&
		(!f.Host.IsValid() || r.Target == f.Host.String()) && (f.Probe == "" || string(r.Probe) == f.Probe)
}

// TestQueryResultsPaging: for every combination of filters, walking the
// pages (small pages, so there are many) returns exactly the matching
// results, each once, in the plan's order.
func TestQueryResultsPaging(t *testing.T) {
	st, tenant := fixture(t, t.TempDir())
	no := addJob(t, st, tenant, "job-1")
	rs := synth(3000)
	load(t, st, no, rs)
	host := netip.MustParseAddr(rs[16*37].Target)
	var filters []ResultFilter
	for _, s := range []string{"", "open", "rejected", "filtered"} {
		for _, p := range []int{0, 443, 53} {
			for _, h := range []netip.Addr{{}, host} {
				for _, k := range []string{"", "udp", "tcp-syn"} {
					filters = append(filters, ResultFilter{State: s, Port: p, Host: h, Probe: k, Limit: 7})
				}
			}
		}
	}
	for _, f := range filters {
		name := f.key("")
		t.Run(name, func(t *testing.T) {
			var want []int64
			for i, r := range rs {
				if matches(r, f) {
					want = append(want, int64(i+1))
				}
			}
			var got []int64
			var prev []any
			p := choose(f)
			for pages := 0; ; pages++ {
				if pages > len(rs) {
					t.Fatal("paging does not end")
				}
				page, err := QueryResults(context.Background(), st.DB(), tenant, "job-1", f)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range page.Items {
					if !matches(rs[r.Seq-1], f) || r.Target != rs[r.Seq-1].Target || int(rs[r.Seq-1].Port) != r.Port {
						t.Fatalf("row %+v does not match", r)
					}
					// Keyset order: the plan's order columns never go back.
					cur := orderKey(p, r)
					if prev != nil && compareKeys(prev, cur) >= 0 {
						t.Fatalf("order: %v then %v", prev, cur)
					}
					prev = cur
					got = append(got, r.Seq)
				}
				if page.Next == "" {
					break
				}
				f.After = page.Next
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("got %d results, want %d", len(got), len(want))
			}
		})
	}
}

func orderKey(p plan, r Result) []any {
	var k []any
	for _, c := range p.order {
		switch c {
		case "seq":
			k = append(k, r.Seq)
		case "port":
			k = append(k, int64(r.Port))
		case "state":
			k = append(k, r.State)
		}
	}
	return k
}

func compareKeys(a, b []any) int {
	for i := range a {
		switch x := a[i].(type) {
		case int64:
			if y := b[i].(int64); x != y {
				return map[bool]int{true: -1, false: 1}[x < y]
			}
		case string:
			if y := b[i].(string); x != y {
				return map[bool]int{true: -1, false: 1}[x < y]
			}
		}
	}
	return 0
}

func TestQueryResultsFields(t *testing.T) {
	st, tenant := fixture(t, t.TempDir())
	no := addJob(t, st, tenant, "job-1")
	rs := synth(2000)
	load(t, st, no, rs)
	page, err := QueryResults(context.Background(), st.DB(), tenant, "job-1", ResultFilter{State: "rejected", Limit: 1})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("%+v, %v", page, err)
	}
	r := page.Items[0]
	want := rs[r.Seq-1]
	if r.ICMPType == nil || *r.ICMPType != 3 || *r.ICMPCode != 13 || r.Reason != "admin-prohibited" || r.RTTus != -1 ||
		!r.Time.Equal(want.Time) || !slices.Equal(r.Evidence, []string{"scans/x/probes.pcapng"}) || r.Proto != want.Proto {
		t.Fatalf("stored %+v from %+v", r, want)
	}
	page, _ = QueryResults(context.Background(), st.DB(), tenant, "job-1", ResultFilter{State: "open", Limit: 1})
	if r := page.Items[0]; r.RTTus != 400 || r.TTL != 64 || r.ICMPType != nil {
		t.Fatalf("open result %+v", r)
	}
}

func TestQueryResultsRefuses(t *testing.T) {
	st, tenant := fixture(t, t.TempDir())
	no := addJob(t, st, tenant, "job-1")
	addJob(t, st, tenant, "job-2")
	load(t, st, no, synth(100))
	first, err := QueryResults(context.Background(), st.DB(), tenant, "job-1", ResultFilter{State: "filtered", Limit: 5})
	if err != nil || first.Next == "" {
		t.Fatalf("%v %q", err, first.Next)
	}
	other, _ := st.TenantByName(context.Background(), "globex")
	tests := []struct {
		name   string
		tenant string
		job    string
		f      ResultFilter
		want   error
	}{
		{"unknown state", tenant, "job-1", ResultFilter{State: "up"}, ErrBadFilter},
		{"unknown probe", tenant, "job-1", ResultFilter{Probe: "ping"}, ErrBadFilter},
		{"port", tenant, "job-1", ResultFilter{Port: 70000}, ErrBadFilter},
		{"limit", tenant, "job-1", ResultFilter{Limit: MaxPageSize + 1}, ErrBadFilter},
		{"negative limit", tenant, "job-1", ResultFilter{Limit: -1}, ErrBadFilter},
		{"garbage cursor", tenant, "job-1", ResultFilter{After: "!!"}, ErrBadCursor},
		{"cursor of another filter", tenant, "job-1", ResultFilter{State: "open", After: first.Next}, ErrBadCursor},
		{"cursor of another scan", tenant, "job-2", ResultFilter{State: "filtered", After: first.Next}, ErrBadCursor},
		{"another tenant's job", other.ID, "job-1", ResultFilter{}, store.ErrNotFound},
		{"unknown job", tenant, "job-9", ResultFilter{}, store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := QueryResults(context.Background(), st.DB(), tt.tenant, tt.job, tt.f); !errors.Is(err, tt.want) {
				t.Fatalf("QueryResults = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestSaveBatchCheckpoint: a batch and its checkpoint commit together; a
// batch replayed after a restart (an old checkpoint) is refused and stores
// nothing.
func TestSaveBatchCheckpoint(t *testing.T) {
	st, tenant := fixture(t, t.TempDir())
	no := addJob(t, st, tenant, "job-1")
	rs := synth(20)
	ctx := context.Background()
	save := func(first int64, part []probe.Result, next int) error {
		return st.InTx(ctx, func(tx *sql.Tx) error { return SaveBatch(ctx, tx, no, first, part, nil, next) })
	}
	if err := save(1, rs[:10], 1); err != nil {
		t.Fatal(err)
	}
	if err := save(11, rs[10:], 1); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("replayed checkpoint: %v", err)
	}
	var n, next int
	st.DB().QueryRow(`SELECT count(*) FROM scan_results`).Scan(&n)
	st.DB().QueryRow(`SELECT next_batch FROM scan_jobs WHERE no = ?`, no).Scan(&next)
	if n != 10 || next != 1 {
		t.Fatalf("%d results, next batch %d", n, next)
	}
	if err := save(11, rs[10:], 2); err != nil {
		t.Fatal(err)
	}
	bad := []probe.Result{{Target: "not-an-address", Proto: "tcp", Port: 1, Probe: probe.KindTCPSyn, State: probe.StateOpen}}
	if err := save(21, bad, 3); err == nil {
		t.Fatal("bad target stored")
	}
	st.DB().QueryRow(`SELECT count(*) FROM scan_results`).Scan(&n)
	if n != 20 {
		t.Fatalf("%d results after a refused batch", n)
	}
}

// TestQueryPlans: every plan really uses its index (no full scan, no
// temporary B-tree for ORDER BY), checked with EXPLAIN QUERY PLAN.
func TestQueryPlans(t *testing.T) {
	st, tenant := fixture(t, t.TempDir())
	no := addJob(t, st, tenant, "job-1")
	load(t, st, no, synth(500))
	host := netip.MustParseAddr("10.0.0.3")
	for _, f := range []ResultFilter{{}, {State: "open"}, {Port: 443}, {State: "open", Port: 443}, {Host: host}, {Probe: "udp"}, {Probe: "udp", State: "open"}, {Probe: "udp", State: "open", Port: 53}, {Probe: "udp", Port: 53}} {
		t.Run(f.key(""), func(t *testing.T) {
			f.Limit = 2
			page, err := QueryResults(context.Background(), st.DB(), tenant, "job-1", f)
			if err != nil {
				t.Fatal(err)
			}
			f.After = page.Next
			plan := explain(t, st.DB(), no, f)
			t.Logf("%v", plan)
			for _, detail := range plan {
				if !strings.HasPrefix(detail, "SEARCH scan_results USING ") || strings.Contains(detail, "TEMP B-TREE") {
					t.Fatalf("plan %q", plan)
				}
			}
		})
	}
}

// explain returns the EXPLAIN QUERY PLAN details of f's query for job no.
func explain(t *testing.T, db *sql.DB, no int64, f ResultFilter) []string {
	t.Helper()
	if err := f.validate(); err != nil {
		t.Fatal(err)
	}
	q, args, err := buildQuery(no, "job-1", choose(f), f)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		out = append(out, detail)
	}
	if len(out) == 0 {
		t.Fatal("no plan")
	}
	return out
}

// BenchmarkQueryResults: one filtered page of 100 out of 10^6 results of
// one scan, first and deep pages, per filter. The database is built once
// (about a minute).
//
//	CGO_ENABLED=0 go test ./appliance/scan -run '^$' -bench QueryResults -benchtime 200x
func BenchmarkQueryResults(b *testing.B) {
	st, tenant := fixture(b, b.TempDir())
	no := addJob(b, st, tenant, "job-1")
	start := time.Now()
	rs := synth(1_000_000)
	load(b, st, no, rs)
	if _, err := st.DB().Exec("ANALYZE"); err != nil {
		b.Fatal(err)
	}
	b.Logf("loaded 10^6 results in %s", time.Since(start).Round(time.Millisecond))
	host := netip.MustParseAddr(rs[16*31337].Target)
	for _, f := range []ResultFilter{
		{}, {State: "open"}, {State: "rejected"}, {Port: 443}, {Port: 443, State: "open"}, {Port: 443, State: "rejected"},
		{Host: host}, {Host: host, State: "filtered"}, {Probe: "udp"}, {Probe: "udp", State: "rejected"}, {Probe: "udp", Port: 161},
	} {
		f.Limit = 100
		// A deep page: the cursor after 30 pages.
		deep := f
		for range 30 {
			p, err := QueryResults(context.Background(), st.DB(), tenant, "job-1", deep)
			if err != nil {
				b.Fatal(err)
			}
			if p.Next == "" {
				break
			}
			deep.After = p.Next
		}
		for _, c := range []struct {
			name string
			f    ResultFilter
		}{{"first", f}, {"deep", deep}} {
			b.Run(fmt.Sprintf("%s/%s", benchName(f), c.name), func(b *testing.B) {
				for b.Loop() {
					if _, err := QueryResults(context.Background(), st.DB(), tenant, "job-1", c.f); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func benchName(f ResultFilter) string {
	s := ""
	if f.State != "" {
		s += "state=" + f.State + ","
	}
	if f.Port != 0 {
		s += fmt.Sprintf("port=%d,", f.Port)
	}
	if f.Host.IsValid() {
		s += "host,"
	}
	if f.Probe != "" {
		s += "probe=" + f.Probe + ","
	}
	if s == "" {
		return "all"
	}
	return s[:len(s)-1]
}

// FuzzDecodeCursor: the cursor decoder never panics, accepts only cursors
// of the plan and filter given, and returns values of the columns' types.
func FuzzDecodeCursor(f *testing.F) {
	p := choose(ResultFilter{State: "open"})
	key := ResultFilter{State: "open"}.key("job-1")
	// Seeds: a valid cursor, one of another filter, wrong types, a float,
	// not base64, not JSON.
	for _, c := range []string{
		`{"i":"scan_results_state","f":"job-1|open|0||","k":[443,1200]}`,
		`{"i":"scan_results_state","f":"job-1|closed|0||","k":[443,1200]}`,
		`{"i":"scan_results_state","f":"job-1|open|0||","k":["443",1200]}`,
		`{"i":"scan_results_state","f":"job-1|open|0||","k":[443.5,1200]}`,
		`{"i":"scan_results_state","f":"job-1|open|0||","k":[443]}`,
		`[]`,
	} {
		f.Add(base64.RawURLEncoding.EncodeToString([]byte(c)))
	}
	f.Add("!!")
	f.Fuzz(func(t *testing.T, s string) {
		keys, err := decodeCursor(s, p, key)
		if err != nil {
			if !errors.Is(err, ErrBadCursor) {
				t.Fatalf("error %v is not ErrBadCursor", err)
			}
			return
		}
		if len(keys) != 2 {
			t.Fatalf("keys %v", keys)
		}
		for _, k := range keys {
			if n, ok := k.(int64); !ok || n < 0 {
				t.Fatalf("key %v (%T)", k, k)
			}
		}
	})
}
