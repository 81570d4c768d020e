package policy

import (
	"os"
	"testing"
	"time"

	"firewalliq/probe"
)

var (
	t0     = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	window = Window{Start: t0, End: t0.Add(10 * time.Minute)}
)

func res(target, proto string, port uint16, st probe.State, at time.Time) probe.Result {
	r := probe.Result{Target: target, Proto: proto, Port: port, Probe: probe.KindTCPSyn, State: st, Time: at}
	switch st {
	case probe.StateRejected:
		r.Reason, r.ICMP = probe.ReasonICMPProhib, &probe.ICMP{Type: 3, Code: 13, From: "10.0.0.1"}
	case probe.StateClosed:
		r.Reason = probe.ReasonRST
	}
	return r
}

func dmzPolicy(t testing.TB) *Document {
	src, err := os.ReadFile("testdata/dmz.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return mustParse(t, string(src))
}

// TestEvaluate is the verdict table: each case is one result set against
// the DMZ policy, with the verdict of the rule under test and the kinds of
// findings raised.
func TestEvaluate(t *testing.T) {
	in := t0.Add(time.Minute)
	canary := res("10.20.0.7", "tcp", 443, probe.StateOpen, in)
	web := res("10.20.0.7", "tcp", 80, probe.StateOpen, in)
	ssh := res("10.20.0.7", "tcp", 22, probe.StateRejected, in)
	tests := []struct {
		name     string
		results  []probe.Result
		rule     string
		verdict  Verdict
		findings []string // kinds, in order
	}{
		{"allow open passes", []probe.Result{canary, web, ssh}, "web", VerdictPass, []string{"not-tested"}},
		{"allow filtered is a blocked service", []probe.Result{canary, res("10.20.0.7", "tcp", 80, probe.StateFiltered, in), ssh}, "web", VerdictFail, []string{"blocked", "not-tested"}},
		{"allow rejected is a blocked service", []probe.Result{canary, res("10.20.0.7", "tcp", 80, probe.StateRejected, in), ssh}, "web", VerdictFail, []string{"blocked", "not-tested"}},
		{"deny open is an exposure", []probe.Result{canary, web, ssh, res("10.30.0.5", "tcp", 3306, probe.StateOpen, in)}, "db-closed", VerdictFail, []string{"exposure"}},
		{"deny filtered with the canary answering passes", []probe.Result{canary, web, ssh, res("10.30.0.5", "tcp", 3306, probe.StateFiltered, in)}, "db-closed", VerdictPass, nil},
		{"deny filtered without the canary is inconclusive", []probe.Result{web, ssh, res("10.30.0.5", "tcp", 3306, probe.StateFiltered, in)}, "db-closed", VerdictInconclusive, []string{"inconclusive"}},
		{"deny filtered, canary filtered too, is inconclusive", []probe.Result{res("10.20.0.7", "tcp", 443, probe.StateFiltered, in), web, ssh, res("10.30.0.5", "tcp", 3306, probe.StateFiltered, in)}, "db-closed", VerdictInconclusive, []string{"blocked", "inconclusive"}},
		{"deny filtered, canary answered outside the window, is inconclusive", []probe.Result{res("10.20.0.7", "tcp", 443, probe.StateOpen, t0.Add(-time.Hour)), web, ssh, res("10.30.0.5", "tcp", 3306, probe.StateFiltered, in)}, "db-closed", VerdictInconclusive, []string{"inconclusive"}},
		{"deny expecting drop, rejected seen", []probe.Result{canary, web, ssh, res("10.30.0.5", "tcp", 3306, probe.StateRejected, in)}, "db-closed", VerdictDenialStyle, []string{"denial-style"}},
		{"deny expecting drop, RST seen", []probe.Result{canary, web, ssh, res("10.30.0.5", "tcp", 5432, probe.StateClosed, in)}, "db-closed", VerdictDenialStyle, []string{"denial-style"}},
		{"deny expecting reject, rejected seen", []probe.Result{canary, web, ssh}, "ssh-rejected", VerdictPass, []string{"not-tested"}},
		{"deny expecting reject, drop seen with canary", []probe.Result{canary, web, res("10.20.0.7", "tcp", 22, probe.StateFiltered, in)}, "ssh-rejected", VerdictDenialStyle, []string{"denial-style", "not-tested"}},
		{"rule the scan did not cover", []probe.Result{canary, web, ssh}, "db-closed", VerdictNotTested, []string{"not-tested"}},
		{"default deny judges the rest", []probe.Result{canary, web, ssh, res("10.20.0.7", "tcp", 8080, probe.StateOpen, in)}, "default", VerdictFail, []string{"exposure", "not-tested"}},
		{"a local error is not a test", []probe.Result{canary, web, ssh, res("10.30.0.5", "tcp", 3306, probe.StateError, in)}, "db-closed", VerdictNotTested, []string{"not-tested", "not-tested"}},
		{"any kind open makes the service open", []probe.Result{canary, web, ssh, res("10.30.0.5", "tcp", 3306, probe.StateFiltered, in),
			func() probe.Result {
				r := res("10.30.0.5", "tcp", 3306, probe.StateOpen, in)
				r.Probe = probe.KindBanner
				return r
			}()}, "db-closed", VerdictFail, []string{"exposure"}},
	}
	d := dmzPolicy(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := Evaluate(d, tt.results, window)
			var got Verdict = "(absent)"
			for _, r := range ev.Rules {
				if r.Rule == tt.rule {
					got = r.Verdict
				}
			}
			if got != tt.verdict {
				t.Errorf("rule %s: verdict %s, want %s (%+v)", tt.rule, got, tt.verdict, ev.Rules)
			}
			var kinds []string
			for _, f := range ev.Findings {
				kinds = append(kinds, f.Kind)
				if f.ID == "" || f.Title == "" || f.Severity == "" {
					t.Errorf("finding without id, title or severity: %+v", f)
				}
			}
			if len(kinds) != len(tt.findings) {
				t.Fatalf("findings %v, want %v\n%+v", kinds, tt.findings, ev.Findings)
			}
			for i := range kinds {
				if kinds[i] != tt.findings[i] {
					t.Errorf("findings %v, want %v", kinds, tt.findings)
				}
			}
		})
	}
}

// TestEvaluateDetails pins severities, ICMP detail and determinism.
func TestEvaluateDetails(t *testing.T) {
	d := dmzPolicy(t)
	in := t0.Add(time.Minute)
	results := []probe.Result{res("10.30.0.5", "tcp", 3306, probe.StateOpen, in), res("10.30.0.6", "tcp", 3306, probe.StateFiltered, in)}
	ev := Evaluate(d, results, window)
	if len(ev.Canaries) != 1 || ev.Canaries[0].Answered {
		t.Fatalf("canaries %+v", ev.Canaries)
	}
	var exp, inc *Finding
	for i, f := range ev.Findings {
		switch f.Kind {
		case KindExposure:
			exp = &ev.Findings[i]
		case KindInconclusive:
			inc = &ev.Findings[i]
		}
	}
	if exp == nil || exp.Severity != SeverityCritical || exp.Target != "10.30.0.5" || exp.Expected != "deny" || exp.Observed != "open" {
		t.Errorf("exposure %+v", exp)
	}
	// Inconclusive ranks one step below the rule: the rule may hold.
	if inc == nil || inc.Severity != SeverityHigh {
		t.Errorf("inconclusive %+v", inc)
	}
	again := Evaluate(d, results, window)
	if again.Findings[0].ID != ev.Findings[0].ID || ev.PolicySHA256 != d.SHA256() {
		t.Error("evaluation is not deterministic")
	}
	// default none leaves uncovered services out.
	none := mustParse(t, "version: 1\nname: p\nvantage_point: v\ndefault: none\nrules:\n  - {name: r, action: allow, to: 10.0.0.0/8, ports: 'tcp:22', severity: low}\n")
	ev = Evaluate(none, []probe.Result{res("192.0.2.1", "tcp", 22, probe.StateOpen, in), res("10.1.1.1", "tcp", 22, probe.StateOpen, in)}, window)
	if ev.Unmatched != 1 || len(ev.Rules) != 1 || ev.Rules[0].Verdict != VerdictPass {
		t.Errorf("default none: %+v", ev)
	}
}

// TestDrift is the drift table: baseline and current result sets, and the
// changes expected.
func TestDrift(t *testing.T) {
	in := t0
	tlsRes := func(st probe.State, cert string) probe.Result {
		r := res("10.20.0.7", "tcp", 443, st, in)
		r.Probe = probe.KindTLSHello
		r.TLS = &probe.TLS{Version: "TLS 1.3", Chain: []probe.Cert{{Subject: "CN=x", SHA256: cert}}}
		return r
	}
	banner := func(text string) probe.Result {
		r := res("10.20.0.7", "tcp", 22, probe.StateOpen, in)
		r.Probe = probe.KindBanner
		r.Banner = &probe.Banner{Text: text, Bytes: len(text)}
		return r
	}
	icmp := func(code int) probe.Result {
		r := res("10.30.0.5", "tcp", 3306, probe.StateRejected, in)
		r.ICMP = &probe.ICMP{Type: 3, Code: code}
		return r
	}
	tests := []struct {
		name     string
		base     []probe.Result
		cur      []probe.Result
		want     []string // kinds
		before   string
		after    string
		severity Severity
	}{
		{"nothing changed", []probe.Result{res("10.30.0.5", "tcp", 3306, probe.StateFiltered, in)}, []probe.Result{res("10.30.0.5", "tcp", 3306, probe.StateFiltered, in)}, nil, "", "", ""},
		{"newly open", []probe.Result{res("10.30.0.5", "tcp", 3306, probe.StateFiltered, in)}, []probe.Result{res("10.30.0.5", "tcp", 3306, probe.StateOpen, in)}, []string{DriftNewlyOpen}, "filtered", "open", SeverityHigh},
		{"newly closed", []probe.Result{res("10.20.0.7", "tcp", 80, probe.StateOpen, in)}, []probe.Result{res("10.20.0.7", "tcp", 80, probe.StateRejected, in)}, []string{DriftNewlyClosed}, "open", "rejected", SeverityMedium},
		{"drop became reject", []probe.Result{res("10.30.0.5", "tcp", 3306, probe.StateFiltered, in)}, []probe.Result{res("10.30.0.5", "tcp", 3306, probe.StateRejected, in)}, []string{DriftDenial}, "drop", "icmp 3/13", SeverityLow},
		{"reset became drop", []probe.Result{res("10.30.0.5", "tcp", 3306, probe.StateClosed, in)}, []probe.Result{res("10.30.0.5", "tcp", 3306, probe.StateFiltered, in)}, []string{DriftDenial}, "reset", "drop", SeverityLow},
		{"icmp code changed", []probe.Result{icmp(13)}, []probe.Result{icmp(3)}, []string{DriftDenial}, "icmp 3/13", "icmp 3/3", SeverityLow},
		{"tls certificate changed", []probe.Result{tlsRes(probe.StateOpen, "aa")}, []probe.Result{tlsRes(probe.StateOpen, "bb")}, []string{DriftTLS}, "aa", "bb", SeverityLow},
		{"banner changed", []probe.Result{banner("SSH-2.0-A")}, []probe.Result{banner("SSH-2.0-B")}, []string{DriftBanner}, "SSH-2.0-A", "SSH-2.0-B", SeverityInfo},
		{"service only in one set is not drift", []probe.Result{res("10.30.0.5", "tcp", 3306, probe.StateFiltered, in)}, []probe.Result{res("10.30.0.6", "tcp", 3306, probe.StateOpen, in)}, nil, "", "", ""},
		{"local error is not drift", []probe.Result{res("10.30.0.5", "tcp", 3306, probe.StateOpen, in)}, []probe.Result{res("10.30.0.5", "tcp", 3306, probe.StateError, in)}, nil, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := Drift(tt.base, tt.cur)
			if len(ch) != len(tt.want) {
				t.Fatalf("changes %+v, want kinds %v", ch, tt.want)
			}
			for i, c := range ch {
				if c.Kind != tt.want[i] {
					t.Errorf("change %d kind %s, want %s", i, c.Kind, tt.want[i])
				}
			}
			if len(ch) == 1 && (ch[0].Before != tt.before || ch[0].After != tt.after || ch[0].Severity != tt.severity) {
				t.Errorf("change %+v, want %s -> %s (%s)", ch[0], tt.before, tt.after, tt.severity)
			}
			fs := DriftFindings(ch)
			if len(fs) != len(ch) || len(fs) > 0 && (fs[0].Kind != KindDrift || fs[0].ID == "") {
				t.Errorf("drift findings %+v", fs)
			}
		})
	}
}
