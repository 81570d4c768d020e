package policy

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"firewalliq/probe"
)

// Verdict is the outcome of a rule, or of one service under it.
type Verdict string

// Verdicts.
const (
	// VerdictPass: every covered service behaved as the rule demands.
	VerdictPass Verdict = "pass"
	// VerdictFail: a must-deny service was reachable (exposure) or a
	// must-allow service was not (blocked service).
	VerdictFail Verdict = "fail"
	// VerdictDenialStyle: the services were denied, but not in the
	// expected way (drop expected, reject seen, or the reverse).
	VerdictDenialStyle Verdict = "denial-style"
	// VerdictInconclusive: silence that cannot be told from lost packets
	// (no canary answered in the window), or UDP open|filtered for an
	// allow rule.
	VerdictInconclusive Verdict = "inconclusive"
	// VerdictNotTested: the scan covered none of the rule's services.
	VerdictNotTested Verdict = "not-tested"
)

// Finding kinds (the SIEM's finding vocabulary, plus the ones this
// evaluation adds).
const (
	KindExposure     = "exposure"     // must-deny reachable
	KindBlocked      = "blocked"      // must-allow not reachable
	KindDenialStyle  = "denial-style" // denied, but not as expected
	KindInconclusive = "inconclusive" // filtered with no canary answer
	KindNotTested    = "not-tested"   // a rule the scan did not cover
	KindDrift        = "drift"        // changed since the baseline
)

// Window is the time a scan ran. A canary counts for a deny only when its
// answer falls inside the window of the scan being evaluated.
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

func (w Window) contains(t time.Time) bool {
	return !t.Before(w.Start) && !t.After(w.End)
}

// Endpoint is what a scan saw of one (target, proto, port): the decisive
// result of all probe kinds that probed it (open beats a refusal beats
// silence: one kind getting through is enough to be reachable).
type Endpoint struct {
	Target netip.Addr   `json:"target"`
	Proto  string       `json:"proto"`
	Port   uint16       `json:"port"`
	Result probe.Result `json:"result"`
}

// style is the denial style a state shows: "" for open or unknown.
func style(st probe.State) Denial {
	switch st {
	case probe.StateFiltered, probe.StateOpenFiltered:
		return DenialDrop
	case probe.StateClosed, probe.StateRejected:
		return DenialReject
	}
	return ""
}

// rank orders states by how much they prove: open, then a refusal, then
// silence, then a local error.
func rank(st probe.State) int {
	switch st {
	case probe.StateOpen:
		return 0
	case probe.StateRejected, probe.StateClosed:
		return 1
	case probe.StateOpenFiltered:
		return 2
	case probe.StateFiltered:
		return 3
	}
	return 4
}

// Endpoints folds results into one Endpoint per (target, proto, port),
// sorted. ICMP echo rows (no port) and rows with an unparsable target are
// skipped.
func Endpoints(results []probe.Result) []Endpoint {
	type key struct {
		a     netip.Addr
		proto string
		port  uint16
	}
	m := map[key]probe.Result{}
	for _, r := range results {
		if r.Proto != "tcp" && r.Proto != "udp" {
			continue
		}
		a, err := netip.ParseAddr(r.Target)
		if err != nil {
			continue
		}
		k := key{a.Unmap(), r.Proto, r.Port}
		old, ok := m[k]
		if !ok || rank(r.State) < rank(old.State) || rank(r.State) == rank(old.State) && r.Time.After(old.Time) {
			m[k] = r
		}
	}
	out := make([]Endpoint, 0, len(m))
	for k, r := range m {
		out = append(out, Endpoint{Target: k.a, Proto: k.proto, Port: k.port, Result: r})
	}
	slices.SortFunc(out, func(a, b Endpoint) int {
		return cmp.Or(a.Target.Compare(b.Target), cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Port, b.Port))
	})
	return out
}

// Finding is one thing a customer must look at.
type Finding struct {
	ID       string   `json:"id"`
	Kind     string   `json:"kind"`
	Severity Severity `json:"severity"`
	Rule     string   `json:"rule"`
	Title    string   `json:"title"`
	Target   string   `json:"target,omitempty"`
	Proto    string   `json:"proto,omitempty"`
	Port     uint16   `json:"port,omitempty"`
	// Expected is the rule's action; Observed the state seen, with the
	// reason and ICMP type/code when there was one.
	Expected string      `json:"expected,omitempty"`
	Observed string      `json:"observed,omitempty"`
	Reason   string      `json:"reason,omitempty"`
	ICMP     *probe.ICMP `json:"icmp,omitempty"`
	// ExpectedDenial and ObservedDenial are set for denial-style findings.
	ExpectedDenial Denial `json:"expected_denial,omitempty"`
	ObservedDenial Denial `json:"observed_denial,omitempty"`
}

// RuleResult is a rule's verdict with its counts.
type RuleResult struct {
	Rule     string   `json:"rule"`
	Action   Action   `json:"action"`
	Severity Severity `json:"severity"`
	Verdict  Verdict  `json:"verdict"`
	// Counts per service verdict.
	Tested       int `json:"tested"`
	Passed       int `json:"passed"`
	Failed       int `json:"failed"`
	DenialStyle  int `json:"denial_style"`
	Inconclusive int `json:"inconclusive"`
}

// CanaryResult says whether a canary answered inside the window.
type CanaryResult struct {
	Name     string `json:"name"`
	Target   string `json:"target"`
	Proto    string `json:"proto"`
	Port     uint16 `json:"port"`
	Answered bool   `json:"answered"`
}

// Evaluation is a scan's result set judged against a policy.
type Evaluation struct {
	Policy       string         `json:"policy"`
	PolicySHA256 string         `json:"policy_sha256"`
	VantagePoint string         `json:"vantage_point"`
	Window       Window         `json:"window"`
	Rules        []RuleResult   `json:"rules"`
	Canaries     []CanaryResult `json:"canaries"`
	Findings     []Finding      `json:"findings"`
	// Unmatched counts services no rule covered while the default is
	// "none" (left out of the evaluation).
	Unmatched int `json:"unmatched"`
}

// Summary counts findings by kind.
func (e Evaluation) Summary() map[string]int {
	out := map[string]int{}
	for _, f := range e.Findings {
		out[f.Kind]++
	}
	return out
}

// Evaluate judges results (one scan, run inside w) against d. Each
// (target, proto, port) is judged once (see Endpoints) by the first rule
// that covers it, or by the default. It is pure: the same input gives the
// same output, finding ids included.
func Evaluate(d *Document, results []probe.Result, w Window) Evaluation {
	ev := Evaluation{Policy: d.Name, PolicySHA256: d.SHA256(), VantagePoint: d.VantagePoint, Window: w,
		Rules: []RuleResult{}, Canaries: []CanaryResult{}, Findings: []Finding{}}
	svcs := Endpoints(results)

	// Which canaries answered inside the window: an open result of any
	// probe kind, timed inside the window, for the canary's service.
	answered := map[string]bool{}
	for _, c := range d.Canaries {
		ok := false
		for _, r := range results {
			a, err := netip.ParseAddr(r.Target)
			if err == nil && a.Unmap() == c.Target && r.Proto == c.Proto && r.Port == c.Port && r.State == probe.StateOpen && w.contains(r.Time) {
				ok = true
				break
			}
		}
		answered[c.Name] = ok
		ev.Canaries = append(ev.Canaries, CanaryResult{Name: c.Name, Target: c.Target.String(), Proto: c.Proto, Port: c.Port, Answered: ok})
	}

	rules := slices.Clone(d.Rules)
	if d.Default != ActionNone {
		rules = append(rules, Rule{Name: "default", Action: d.Default, Severity: d.DefaultSeverity})
	}
	res := make([]RuleResult, len(rules))
	for i, r := range rules {
		res[i] = RuleResult{Rule: r.Name, Action: r.Action, Severity: r.Severity}
	}
	for _, s := range svcs {
		i := slices.IndexFunc(d.Rules, func(r Rule) bool { return r.Covers(s.Target, s.Proto, s.Port) })
		if i < 0 {
			if d.Default == ActionNone {
				ev.Unmatched++
				continue
			}
			i = len(rules) - 1
		}
		r := rules[i]
		v, f := judge(d, r, s, answered)
		rr := &res[i]
		if v != VerdictNotTested {
			rr.Tested++
		}
		switch v {
		case VerdictPass:
			rr.Passed++
		case VerdictFail:
			rr.Failed++
		case VerdictDenialStyle:
			rr.DenialStyle++
		case VerdictInconclusive:
			rr.Inconclusive++
		}
		if f != nil {
			f.ID = findingID(f.Kind, r.Name, s.Target.String(), s.Proto, s.Port)
			ev.Findings = append(ev.Findings, *f)
		}
	}
	for i := range res {
		rr := &res[i]
		switch {
		case rr.Tested == 0:
			rr.Verdict = VerdictNotTested
			if rules[i].Name != "default" {
				ev.Findings = append(ev.Findings, Finding{ID: findingID(KindNotTested, rr.Rule, "", "", 0), Kind: KindNotTested, Severity: SeverityInfo,
					Rule: rr.Rule, Expected: string(rr.Action), Title: fmt.Sprintf("rule %s was not tested: the scan covered none of its services", rr.Rule)})
			}
		case rr.Failed > 0:
			rr.Verdict = VerdictFail
		case rr.DenialStyle > 0:
			rr.Verdict = VerdictDenialStyle
		case rr.Inconclusive > 0:
			rr.Verdict = VerdictInconclusive
		default:
			rr.Verdict = VerdictPass
		}
	}
	// The default's row stays only if it judged something.
	if d.Default != ActionNone && res[len(res)-1].Tested == 0 {
		res = res[:len(res)-1]
	}
	ev.Rules = res
	return ev
}

// judge decides one service under rule r and returns its verdict and the
// finding it raises (nil for a pass).
func judge(d *Document, r Rule, s Endpoint, answered map[string]bool) (Verdict, *Finding) {
	st := s.Result.State
	f := &Finding{Rule: r.Name, Target: s.Target.String(), Proto: s.Proto, Port: s.Port, Expected: string(r.Action),
		Observed: string(st), Reason: s.Result.Reason, ICMP: s.Result.ICMP, Severity: r.Severity}
	where := fmt.Sprintf("%s/%d on %s", s.Proto, s.Port, s.Target)
	if st == probe.StateError || st == "" {
		f.Kind, f.Severity = KindNotTested, SeverityInfo
		f.Title = fmt.Sprintf("%s could not be probed (local error), rule %s", where, r.Name)
		return VerdictNotTested, f
	}
	if r.Action == ActionAllow {
		switch {
		case st == probe.StateOpen:
			return VerdictPass, nil
		case st == probe.StateOpenFiltered:
			// A quiet UDP service and a dropped one look the same.
			f.Kind, f.Severity = KindInconclusive, r.Severity.lower()
			f.Title = fmt.Sprintf("%s must be reachable but gave no answer (UDP open|filtered), rule %s", where, r.Name)
			return VerdictInconclusive, f
		}
		f.Kind = KindBlocked
		f.Title = fmt.Sprintf("%s must be reachable but is %s, rule %s", where, st, r.Name)
		return VerdictFail, f
	}
	// deny
	if st == probe.StateOpen {
		f.Kind = KindExposure
		f.Title = fmt.Sprintf("%s must be denied but is open, rule %s", where, r.Name)
		return VerdictFail, f
	}
	seen := style(st)
	if seen == DenialDrop && !canaryAnswered(d, r, answered) {
		f.Kind, f.Severity = KindInconclusive, r.Severity.lower()
		f.Title = fmt.Sprintf("%s is silent, but no canary answered during the scan: blocked or lost, rule %s", where, r.Name)
		return VerdictInconclusive, f
	}
	want := d.ExpectedDenial(r)
	if want != DenialEither && seen != want {
		f.Kind, f.Severity = KindDenialStyle, SeverityLow
		f.ExpectedDenial, f.ObservedDenial = want, seen
		f.Title = fmt.Sprintf("%s is denied by %s, the policy expects %s, rule %s", where, seen, want, r.Name)
		return VerdictDenialStyle, f
	}
	return VerdictPass, nil
}

// canaryAnswered reports whether a canary vouching for r's path answered:
// one the rule names, or any of the policy's when it names none.
func canaryAnswered(d *Document, r Rule, answered map[string]bool) bool {
	names := r.Canaries
	if len(names) == 0 {
		for _, c := range d.Canaries {
			names = append(names, c.Name)
		}
	}
	for _, n := range names {
		if answered[n] {
			return true
		}
	}
	return false
}

// findingID is a stable id: the same finding in two evaluations has the
// same id, so a SIEM can correlate repeats.
func findingID(kind, rule, target, proto string, port uint16) string {
	return shortHash(fmt.Sprintf("%s|%s|%s|%s|%d", kind, rule, target, proto, port))
}
