package console_test

import (
	"bufio"
	"database/sql"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"firewalliq/appliance"
	"firewalliq/appliance/scan"
	"firewalliq/appliance/store"
	"firewalliq/probe"
)

// slowScanWorld is a tenant with an operator and a non-production scope
// over 100 ports of 127.0.0.1 (nothing listens there, so every probe is
// answered at once by the kernel): at 5 packets a second its scan runs for
// about 20 s, long enough to watch it while it runs.
func slowScanWorld(t *testing.T) (*fixture, *browser, string, string) {
	t.Helper()
	f := newFixture(t)
	root, rootSecret, _ := f.firstRun("root", f.init.OneTimePassword)
	tenant := f.init.TenantID
	lead, leadS, _ := f.firstRun("lena", f.addUser(root, rootSecret, tenant, "lena", store.RoleSecurityLead))
	op, opS, _ := f.firstRun("otto", f.addUser(root, rootSecret, tenant, "otto", store.RoleOperator))
	pub, priv, pem := signingKey(t)
	a := lead.post("/console/keys", url.Values{"name": {"laptop"}, "public": {string(pem)}})
	wantRedirect(t, f.stepUpIfAsked(lead, "/console/keys", leadS, a), "/console/keys")
	dev, _ := f.registerScopes(lead, pub, priv, "tcp:41000-41099")
	f.runScans()
	return f, op, opS, dev
}

// TestScanEventsETA: the event stream of a running scan carries, while
// targets remain (done < total), the probes sent, the current rate, the
// job's cap and a positive ETA; the scan is then cancelled.
func TestScanEventsETA(t *testing.T) {
	f, op, opS, dev := slowScanWorld(t)
	form := url.Values{"scope": {dev}, "targets": {"127.0.0.1"}, "ports": {"tcp:41000-41099"}, "probes": {"tcp-connect"}, "rate": {"5"}}
	a := f.stepUpIfAsked(op, "/console/scans", opS, op.post("/console/scans", form))
	wantRedirect(t, a, "/console/scans/scan_")
	id := scanIDRe.FindStringSubmatch(a.location())[1]

	// A queued scan's feed ends at once with its state; ask again until a
	// running one's events come, until 10 targets are done (90 s at most:
	// the first probe leaves a few seconds after the job starts, and the
	// tenth came after 18-25 s on a busy machine, close to the 30 s this
	// waited before).
	deadline := time.Now().Add(90 * time.Second)
	var got *scan.Progress
	var seen []string
	for got == nil && time.Now().Before(deadline) {
		req, err := http.NewRequest(http.MethodGet, f.srv.URL+"/console/scans/"+id+"/events", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := op.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
			resp.Body.Close()
			t.Fatalf("events: %d %q", resp.StatusCode, ct)
		}
		// Read this stream for at most 5 s (the body is closed then).
		stop := time.AfterFunc(5*time.Second, func() { resp.Body.Close() })
		sc := bufio.NewScanner(resp.Body)
		event := ""
		for n := 0; sc.Scan() && n < 200; n++ {
			l := sc.Text()
			if v, ok := strings.CutPrefix(l, "event: "); ok {
				event = v
				continue
			}
			v, ok := strings.CutPrefix(l, "data: ")
			if !ok || event != "progress" {
				continue
			}
			seen = append(seen, v)
			var p scan.Progress
			if err := json.Unmarshal([]byte(v), &p); err != nil {
				t.Fatalf("progress event %q: %v", v, err)
			}
			if p.State == scan.StateRunning && p.Total > 0 && p.Done >= 10 && p.Done < p.Total && p.Sent > 0 && p.RatePPS > 0 {
				got = &p
				// The raw event names the fields the page's script reads.
				for _, k := range []string{`"sent":`, `"done":`, `"total":`, `"rate_pps":`, `"cap_pps":5`, `"elapsed_seconds":`, `"eta_seconds":`} {
					if !strings.Contains(v, k) {
						t.Fatalf("progress event lacks %s: %s", k, v)
					}
				}
				break
			}
		}
		stop.Stop()
		resp.Body.Close()
		if got == nil {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if got == nil {
		t.Fatalf("no running progress event with 10 <= done < total in 90 s; saw:\n%s", strings.Join(seen, "\n"))
	}
	if got.Total != 100 || got.CapPPS != 5 || got.ETASeconds <= 0 || got.ElapsedSeconds <= 0 {
		t.Fatalf("progress %+v: want total 100, cap 5, a positive elapsed time and ETA", *got)
	}
	// The ETA is the pace so far times the targets left (a tolerance for
	// the float rounding of the JSON).
	wantETA := got.ElapsedSeconds / float64(got.Done) * float64(got.Total-got.Done)
	if d := got.ETASeconds - wantETA; d > 1e-6 || d < -1e-6 {
		t.Fatalf("eta %v, want %v from %+v", got.ETASeconds, wantETA, *got)
	}
	t.Logf("progress while running: %+v", *got)
	// Stop it: a cancellation with a reason (step-up when asked).
	path := "/console/scans/" + id + "/cancel"
	wantRedirect(t, f.stepUpIfAsked(op, path, opS, op.post(path, url.Values{"reason": {"test over"}})), "/console/scans/"+id)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if a := op.get("/console/scans/" + id); strings.Contains(a.body, `id="scan-state">cancelled<`) {
			return
		}
	}
	t.Fatalf("scan %s was not cancelled within 30 s", id)
}

// saveResults stores rs after scan id's job's last result, through
// scan.SaveBatch (the scan service's path), as one more batch.
func (f *fixture) saveResults(id string, rs []probe.Result) {
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
	if err := st.InTx(f.ctx, func(tx *sql.Tx) error { return scan.SaveBatch(f.ctx, tx, jobNo, have+1, rs, nil, int(batch)+1) }); err != nil {
		f.t.Fatal(err)
	}
}

// resultRow is the results table's row of result seq.
func resultRow(t *testing.T, body string, seq int64) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<tr><td>` + strconv.FormatInt(seq, 10) + `</td>.*?</tr>`).FindString(body)
	if m == "" {
		t.Fatalf("no row %d:\n%s", seq, body)
	}
	return m
}

// TestResultsReasonICMPRTT: the results explorer shows every probe's
// reason, ICMP type/code and round-trip time: a REJECT answered with ICMP
// 3/13 (administratively prohibited), an open port with its RTT and TTL,
// and a probe without an answer ("no answer", no ICMP, no TTL); a hostile
// reason is shown as text.
func TestResultsReasonICMPRTT(t *testing.T) {
	w := newScanWorld(t)
	f := w.f
	id := w.request(w.op, w.opS, w.dev, nil)
	w.waitState(w.op, id, "completed") // two results: seq 1 and 2
	now := f.clk.Now()
	const hostile = `<script>window.pwned=1</script>"'&`
	f.saveResults(id, []probe.Result{
		{Target: "127.0.0.1", Proto: "tcp", Port: 7, Probe: probe.KindTCPSyn, State: probe.StateRejected,
			Reason: "icmp-admin-prohibited", RTTms: 0.75, TTL: 63, Time: now, ICMP: &probe.ICMP{Type: 3, Code: 13, From: "127.0.0.1"}},
		{Target: "127.0.0.1", Proto: "tcp", Port: 8, Probe: probe.KindTCPConnect, State: probe.StateOpen,
			Reason: "syn-ack", RTTms: 1.2345, TTL: 64, Time: now},
		{Target: "127.0.0.1", Proto: "tcp", Port: 9, Probe: probe.KindTCPConnect, State: probe.StateFiltered,
			Reason: "no-response", Time: now},
		{Target: "127.0.0.1", Proto: "tcp", Port: 10, Probe: probe.KindTCPConnect, State: probe.StateClosed,
			Reason: hostile, RTTms: 0.1, TTL: 64, Time: now},
	})
	a := w.aud.get("/console/scans/" + id + "/results")
	want(t, a, http.StatusOK, "<th scope=\"col\">Reason</th>", "<th scope=\"col\">ICMP type/code</th>", "<th scope=\"col\">RTT (ms)</th>")
	cell := func(s string) string { return "<td>" + s + "</td>" }
	tests := []struct {
		name string
		seq  int64
		has  []string
	}{
		{"reject with ICMP 3/13", 3, []string{"tcp/7", `state-rejected">rejected<`, cell("icmp-admin-prohibited"), `<td class="mono">3/13</td>`, cell("0.75"), cell("63")}},
		{"open with RTT", 4, []string{"tcp/8", `state-open">open<`, cell("syn-ack"), `<td class="mono">—</td>`, cell("1.23"), cell("64")}},
		{"no answer", 5, []string{"tcp/9", `state-filtered">filtered<`, cell("no-response"), `<td class="mono">—</td>`, cell("no answer"), cell("—")}},
		{"hostile reason", 6, []string{"tcp/10", cell("&lt;script&gt;window.pwned=1&lt;/script&gt;&#34;&#39;&amp;"), cell("0.1")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			row := resultRow(t, a.body, tt.seq)
			for _, s := range tt.has {
				if !strings.Contains(row, s) {
					t.Fatalf("row %d lacks %q:\n%s", tt.seq, s, row)
				}
			}
		})
	}
	if strings.Contains(a.body, "<script>window.pwned") {
		t.Fatalf("the hostile reason is not escaped:\n%s", a.body)
	}
	// The rejected filter shows the REJECT with its ICMP code only.
	a = w.aud.get("/console/scans/" + id + "/results?state=rejected")
	want(t, a, http.StatusOK, "3/13", "icmp-admin-prohibited")
	if strings.Contains(a.body, "syn-ack") || strings.Contains(a.body, "no-response") {
		t.Fatalf("state filter shows other states:\n%s", a.body)
	}
}

var checkpointRe = regexp.MustCompile(`<dt>Last signed checkpoint</dt><dd>([^<]*)</dd>`)

// TestDashboardCheckpointVault: the dashboard shows the latest signed
// checkpoint's size and age (just signed: "just now"; 7 minutes later:
// "7m0s ago"), and the evidence vault panel: none configured says so; a
// local vault shows its backend, that it is not WORM and its check.
func TestDashboardCheckpointVault(t *testing.T) {
	t.Run("no vault", func(t *testing.T) {
		f := newFixture(t)
		root, rootSecret, _ := f.firstRun("root", f.init.OneTimePassword)
		cp, _, err := f.app.Checkpoint(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		size := strconv.FormatInt(cp.Size, 10)
		a := root.get("/console/")
		want(t, a, http.StatusOK, `<h2 id="h-vault">Evidence vault</h2>`, "No evidence vault is configured.")
		m := checkpointRe.FindStringSubmatch(a.body)
		if m == nil || m[1] != "size "+size+", just now" {
			t.Fatalf("checkpoint %q, want size %s, just now:\n%s", m, size, a.body)
		}
		f.clk.Advance(7 * time.Minute)
		m = checkpointRe.FindStringSubmatch(root.get("/console/").body)
		if m == nil || m[1] != "size "+size+", 7m0s ago" {
			t.Fatalf("checkpoint after 7 minutes: %q", m)
		}
		// A newer checkpoint (the log has grown since) is shown instead.
		f.addUser(root, rootSecret, f.init.TenantID, "amy", store.RoleAuditor)
		cp2, signed, err := f.app.Checkpoint(f.ctx)
		if err != nil || !signed || cp2.Size <= cp.Size {
			t.Fatalf("second checkpoint %+v %v %v", cp2, signed, err)
		}
		m = checkpointRe.FindStringSubmatch(root.get("/console/").body)
		if m == nil || m[1] != "size "+strconv.FormatInt(cp2.Size, 10)+", just now" {
			t.Fatalf("second checkpoint: %q, want size %d", m, cp2.Size)
		}
	})
	t.Run("local vault", func(t *testing.T) {
		dir := t.TempDir()
		f := newFixture(t, func(c *appliance.Config) {
			c.Production, c.Vault.Backend, c.Vault.LocalDir = false, "local", filepath.Join(dir, "evidence")
		})
		if err := f.app.Evidence.Vault().Check(f.ctx); err != nil {
			t.Fatal(err)
		}
		root, _, _ := f.firstRun("root", f.init.OneTimePassword)
		a := root.get("/console/")
		want(t, a, http.StatusOK, "<dt>Backend</dt><dd>local "+filepath.Join(dir, "evidence")+" (not WORM) <span class=\"bad\">not WORM</span></dd>",
			"<dt>Check</dt><dd><span class=\"ok\">ok</span>", "<dt>Spool</dt><dd>0 pending")
		if strings.Contains(a.body, "No evidence vault is configured.") {
			t.Fatal("a configured vault is reported missing")
		}
	})
}
