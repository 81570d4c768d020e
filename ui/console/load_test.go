package console_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"runtime/trace"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"firewalliq/appliance"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/scan"
	"firewalliq/appliance/store"
	"firewalliq/probe"
)

// TestDashboardLoad runs wrk against console pages on a store holding
// FIQ_CONSOLE_WRK_RESULTS results (default 10^6) of one completed scan:
// the dashboard of a security lead (who sees that scan, audit activity and
// the appliance's health), the dashboard of the appliance admin, and the
// lead's results explorer on that scan (filtered: open results on one
// port). 50 connections, FIQ_CONSOLE_WRK_DURATION each (default 10s),
// FIQ_CONSOLE_WRK_RUNS runs per page (default 1); the process's resident
// memory is sampled every 250 ms. Each run is logged as a JSON line
// ("WRK {...}") that bench/console.sh takes medians of. It is a
// benchmark, not a check: it runs only with FIQ_CONSOLE_WRK=1 (see
// docs/benchmarks.md).
//
// To find where a tail comes from: FIQ_CONSOLE_WRK_PAGES=substring runs
// only the pages whose name contains it; FIQ_CONSOLE_WRK_PROFILE=dir
// writes, for each page's first run, a CPU profile, block and mutex
// profiles and an execution trace of its first 3 s into dir;
// FIQ_CONSOLE_WRK_SLOW=50ms logs ("SLOW") how many requests took at least
// that long inside the server's handler chain (its access log), and the
// first 20 of their log lines.
//
// The scan itself runs for real (a listener on 127.0.0.1); the extra
// results are then stored through scan.SaveBatch, the path the scan
// service stores results by, in batches of 20,000 with their checkpoints.
func TestDashboardLoad(t *testing.T) {
	if os.Getenv("FIQ_CONSOLE_WRK") == "" {
		t.Skip("set FIQ_CONSOLE_WRK=1 to measure the console with wrk")
	}
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		t.Skip("wrk is not installed (Debian: apt-get install -y wrk)")
	}
	total := envInt(t, "FIQ_CONSOLE_WRK_RESULTS", 1_000_000)
	runs := envInt(t, "FIQ_CONSOLE_WRK_RUNS", 1)
	dur := "10s"
	if v := os.Getenv("FIQ_CONSOLE_WRK_DURATION"); v != "" {
		dur = v
	}

	f := newFixture(t)
	root, rootSecret, _ := f.firstRun("root", f.init.OneTimePassword)
	w := newScanWorldOn(t, f, root, rootSecret)
	f.runScans()
	id := w.request(w.lead, w.leadS, w.dev, nil)
	w.waitState(w.lead, id, "completed")
	start := time.Now()
	f.seedResults(id, total)
	t.Logf("stored %d results of scan %s in %s", total, id, time.Since(start).Round(time.Millisecond))
	// What one uncached read of the scan costs (scan.Scans.Get counts its
	// results): what the dashboard and results page paid per request
	// before they reused finished scans' reads.
	var took []float64
	for range 3 {
		t0 := time.Now()
		sc, err := f.app.Scans.Get(f.ctx, f.principalOf(w.lead), "", id)
		if err != nil || sc.Job == nil || sc.Job.Results != int64(total) {
			t.Fatalf("Get: %v (%+v)", err, sc.Job)
		}
		took = append(took, float64(time.Since(t0).Microseconds())/1000)
	}
	t.Logf("COUNT: scan.Scans.Get of the scan (counts %d results): median %.1f ms of %v", total, median(took), took)

	pages := []struct {
		name string
		b    *browser
		path string
	}{
		{"dashboard (security lead)", w.lead, "/console/"},
		{"dashboard (appliance admin)", root, "/console/"},
		{"results (security lead, state=open, one port)", w.lead, "/console/scans/" + id + "/results?state=open&port=" + strconv.Itoa(w.port)},
	}
	if only := os.Getenv("FIQ_CONSOLE_WRK_PAGES"); only != "" {
		kept := pages[:0]
		for _, pg := range pages {
			if strings.Contains(pg.name, only) {
				kept = append(kept, pg)
			}
		}
		pages = kept
	}
	profDir := os.Getenv("FIQ_CONSOLE_WRK_PROFILE")
	var slow time.Duration
	if v := os.Getenv("FIQ_CONSOLE_WRK_SLOW"); v != "" {
		if slow, err = time.ParseDuration(v); err != nil {
			t.Fatalf("FIQ_CONSOLE_WRK_SLOW=%q: %v", v, err)
		}
	}
	for _, pg := range pages {
		a := pg.b.get(pg.path)
		if a.status != 200 {
			t.Fatalf("%s: %d\n%s", pg.path, a.status, a.body)
		}
	}
	// The fixture keeps the server's log in memory to show it on failure;
	// under wrk that is hundreds of MB of access log, not the server's.
	f.logs.quiet()
	f.logs.keepSlow(slow)
	runtime.GC()
	debug.FreeOSMemory()
	t.Logf("RSS before: %d MB (%s)", rssKB()/1024, heapFigures())
	rps, p99 := map[string][]float64{}, map[string][]float64{}
	for run := 1; run <= runs; run++ {
		for _, pg := range pages {
			peak := sampleRSS()
			sched0 := readSched()
			stopProf := func() {}
			if profDir != "" && run == 1 {
				stopProf = startProfiles(t, profDir, pg.name)
			}
			out, err := exec.Command(wrk, "-t2", "-c50", "-d"+dur, "--latency", "-H", "Cookie: "+f.sessionCookie(pg.b), "-s", wrkScript(t), f.srv.URL+pg.path).CombinedOutput()
			maxKB := peak()
			stopProf()
			if slow > 0 {
				lines := strings.Split(strings.TrimSpace(f.logs.takeSlow()), "\n")
				if lines[0] == "" {
					lines = nil
				}
				t.Logf("SLOW %s: %d requests took >= %s in the handler chain (access log)", pg.name, len(lines), slow)
				for _, l := range lines[:min(len(lines), 20)] {
					t.Logf("SLOW   %s", l)
				}
			}
			if err != nil {
				t.Fatalf("wrk: %v\n%s", err, out)
			}
			var line string
			for _, l := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(l, "JSON ") {
					line = strings.TrimPrefix(l, "JSON ")
				}
			}
			var res map[string]any
			if err := json.Unmarshal([]byte(line), &res); err != nil {
				t.Fatalf("wrk printed no figures: %v\n%s", err, out)
			}
			res["page"], res["run"], res["results"], res["rss_peak_mb"] = pg.name, run, total, maxKB/1024
			res["loadavg"] = loadavg()
			res["heap"] = heapFigures()
			res["runtime"] = readSched().since(sched0)
			b, _ := json.Marshal(res)
			t.Logf("WRK %s", b)
			r, _ := res["rps"].(float64)
			q, _ := res["p99_ms"].(float64)
			rps[pg.name], p99[pg.name] = append(rps[pg.name], r), append(p99[pg.name], q)
			if testing.Verbose() {
				t.Logf("wrk %s:\n%s", pg.path, out)
			}
		}
	}
	t.Logf("RSS after: %d MB (%s)", rssKB()/1024, heapFigures())
	for _, pg := range pages {
		t.Logf("MEDIAN of %d: %s: %.0f req/s, p99 %.1f ms (runs: rps %v, p99 %v)", runs, pg.name, median(rps[pg.name]), median(p99[pg.name]), rps[pg.name], p99[pg.name])
	}
}

// schedFigures are the runtime's histograms of how long goroutines waited
// to run once runnable and of stop-the-world pauses (runtime/metrics), to
// tell a Go scheduling or GC tail from one inside the handlers.
type schedFigures struct {
	lat, pause *metrics.Float64Histogram
	gcs        uint64
}

func readSched() schedFigures {
	ms := []metrics.Sample{{Name: "/sched/latencies:seconds"}, {Name: "/sched/pauses/total/gc:seconds"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(ms)
	return schedFigures{lat: ms[0].Value.Float64Histogram(), pause: ms[1].Value.Float64Histogram(), gcs: ms[2].Value.Uint64()}
}

// since summarises what happened between s0 and s: GC cycles, the p99
// and worst scheduling latency and GC pause (upper bucket bounds, ms).
func (s schedFigures) since(s0 schedFigures) string {
	q := func(h, h0 *metrics.Float64Histogram, frac float64) (p, worst float64) {
		counts := make([]uint64, len(h.Counts))
		var n uint64
		for i := range h.Counts {
			counts[i] = h.Counts[i] - h0.Counts[i]
			n += counts[i]
		}
		var acc uint64
		p = -1
		for i, c := range counts {
			acc += c
			if c > 0 {
				worst = h.Buckets[i+1]
			}
			if p < 0 && n > 0 && float64(acc) >= frac*float64(n) {
				p = h.Buckets[i+1]
			}
		}
		return p * 1000, worst * 1000
	}
	lp, lw := q(s.lat, s0.lat, 0.99)
	pp, pw := q(s.pause, s0.pause, 0.99)
	return fmt.Sprintf("%d GCs; goroutine run-queue wait p99 %.2f ms, worst %.1f ms; GC pause p99 %.2f ms, worst %.1f ms", s.gcs-s0.gcs, lp, lw, pp, pw)
}

// startProfiles starts a CPU profile, block and mutex profiling, and an
// execution trace of the first 3 s, into dir, named after page; the
// returned function stops them and writes the block and mutex profiles
// (FIQ_CONSOLE_WRK_PROFILE: where a tail comes from, see
// docs/benchmarks.md).
func startProfiles(t *testing.T, dir, page string) func() {
	t.Helper()
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(page))
	create := func(ext string) *os.File {
		fh, err := os.Create(filepath.Join(dir, name+"."+ext))
		if err != nil {
			t.Fatal(err)
		}
		return fh
	}
	cpu, tr := create("cpu"), create("trace")
	if err := pprof.StartCPUProfile(cpu); err != nil {
		t.Fatal(err)
	}
	runtime.SetBlockProfileRate(int(10 * time.Microsecond))
	runtime.SetMutexProfileFraction(10)
	if err := trace.Start(tr); err != nil {
		t.Fatal(err)
	}
	stopTrace := sync.OnceFunc(trace.Stop)
	tm := time.AfterFunc(3*time.Second, stopTrace)
	return func() {
		tm.Stop()
		stopTrace()
		pprof.StopCPUProfile()
		for _, p := range []string{"block", "mutex"} {
			fh := create(p)
			if err := pprof.Lookup(p).WriteTo(fh, 0); err != nil {
				t.Fatal(err)
			}
			_ = fh.Close()
		}
		runtime.SetBlockProfileRate(0)
		runtime.SetMutexProfileFraction(0)
		_ = cpu.Close()
		_ = tr.Close()
	}
}

// wrkScript writes the Lua script that prints wrk's summary as a JSON line.
func wrkScript(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "report.lua")
	const lua = `done = function(summary, latency, requests)
  io.write(string.format("JSON {\"requests\":%d,\"errors\":%d,\"non2xx\":%d,\"rps\":%.1f,\"p50_ms\":%.2f,\"p99_ms\":%.2f}\n",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
`
	if err := os.WriteFile(p, []byte(lua), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// seedResults stores n results in all for scan id's job (its own first),
// through scan.SaveBatch: 254 hosts x 1 port x 4 states, seq from the job's
// last result on.
func (f *fixture) seedResults(id string, n int) {
	f.t.Helper()
	st, err := store.Open(f.ctx, filepath.Join(f.dir, appliance.DatabaseFile), store.Options{Now: f.clk.Now})
	if err != nil {
		f.t.Fatal(err)
	}
	defer st.Close()
	var jobNo, have, batch int64
	if err := st.DB().QueryRowContext(f.ctx, `SELECT j.no, (SELECT COUNT(*) FROM scan_results r WHERE r.job_no = j.no), j.next_batch FROM scan_jobs j WHERE j.scan_id = ?`, id).Scan(&jobNo, &have, &batch); err != nil {
		f.t.Fatal(err)
	}
	states := []probe.State{probe.StateClosed, probe.StateFiltered, probe.StateRejected, probe.StateOpen}
	now := f.clk.Now()
	const per = 20_000
	for seq := have + 1; seq <= int64(n); {
		k := min(per, int64(n)-seq+1)
		rs := make([]probe.Result, k)
		for i := range rs {
			x := seq + int64(i)
			a := netip.AddrFrom4([4]byte{10, byte(x >> 16), byte(x >> 8), byte(x%254 + 1)})
			rs[i] = probe.Result{Target: a.String(), Proto: "tcp", Port: uint16(1 + x%1024), Probe: probe.KindTCPConnect, State: states[x%4],
				Reason: "seeded", RTTms: 0.5, TTL: 64, Time: now}
		}
		batch++
		err := st.InTx(f.ctx, func(tx *sql.Tx) error { return scan.SaveBatch(f.ctx, tx, jobNo, seq, rs, nil, int(batch)) })
		if err != nil {
			f.t.Fatal(err)
		}
		seq += k
	}
}

// sessionCookie is b's session cookie as a Cookie header value.
func (f *fixture) sessionCookie(b *browser) string {
	f.t.Helper()
	u, _ := url.Parse(f.srv.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == auth.SessionCookieName {
			return c.Name + "=" + c.Value
		}
	}
	f.t.Fatal("no session cookie")
	return ""
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// sampleRSS samples this process's resident set every 250 ms until the
// returned function is called, which answers the peak in KiB.
func sampleRSS() func() int64 {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	peak := rssKB()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				r := rssKB()
				mu.Lock()
				peak = max(peak, r)
				mu.Unlock()
			}
		}
	}()
	return func() int64 {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

// rssKB is this process's resident set size in KiB (the server runs in
// it), 0 when unknown.
func rssKB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			n, _ := strconv.ParseInt(strings.Fields(strings.TrimPrefix(l, "VmRSS:"))[0], 10, 64)
			return n
		}
	}
	return 0
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// median is the middle value (the lower middle of an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[(len(s)-1)/2]
}

// heapFigures is the Go heap as the runtime sees it, to tell heap from
// other resident memory (SQLite page caches live in the Go heap too: the
// driver is pure Go).
func heapFigures() string {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return fmt.Sprintf("heap in use %d MB, idle not returned %d MB, sys %d MB, goroutines %d",
		m.HeapInuse>>20, (m.HeapIdle-m.HeapReleased)>>20, m.Sys>>20, runtime.NumGoroutine())
}
