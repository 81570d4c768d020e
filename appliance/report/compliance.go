package report

import (
	"firewalliq/appliance/policy"
	"firewalliq/appliance/report/verify"
)

// Control statuses.
const (
	StatusSatisfied    = "satisfied"
	StatusNotSatisfied = "not-satisfied"
	// StatusIncomplete: nothing failed, but a rule the control rests on
	// was inconclusive or not tested, so the test does not show it.
	StatusIncomplete = "incomplete"
)

// control is one mapped control and the rules it rests on.
type control struct {
	framework, id, title, basis string
	// denyOnly: the control is about isolation, so only deny rules (the
	// default included, when it denies) count.
	denyOnly bool
}

// controls are the framework controls a perimeter test gives evidence
// for. The mapping is deliberately plain: segmentation controls rest on
// the deny rules (what must stay isolated); network-security controls on
// every rule.
var controls = []control{
	{"PCI DSS v4.0", "11.4.5", "Segmentation controls are tested and shown to isolate out-of-scope systems from the CDE",
		"every deny rule held: the denied services were unreachable from the vantage point, silence confirmed by a canary", true},
	{"PCI DSS v4.0", "11.4.6", "Service providers: segmentation testing every six months and after changes",
		"as 11.4.5; the test's date is the report's window (how often it runs is the provider's process)", true},
	{"ISO/IEC 27001:2022", "A.8.20", "Networks security",
		"every rule held: required services reachable, denied services unreachable", false},
	{"ISO/IEC 27001:2022", "A.8.22", "Segregation of networks",
		"every deny rule held between the vantage point and the segregated groups", true},
	{"SOC 2", "CC6.6", "Logical access security measures against threats from outside the system boundaries",
		"every deny rule held: no denied service was reachable from the vantage point", true},
}

// Compliance maps rule verdicts to the controls: not satisfied when a rule
// it rests on failed (an exposure, or for A.8.20 also a blocked service);
// incomplete when none failed but one was inconclusive or not tested, or
// no rule applies; satisfied otherwise. An unexpected denial style is
// still a denial, so it does not fail isolation; it is a finding.
func Compliance(rules []policy.RuleResult) []verify.Control {
	out := make([]verify.Control, 0, len(controls))
	for _, c := range controls {
		vc := verify.Control{Framework: c.framework, Control: c.id, Title: c.title, Basis: c.basis, Rules: []string{}}
		failed, open := false, false
		for _, r := range rules {
			if c.denyOnly && r.Action != policy.ActionDeny {
				continue
			}
			vc.Rules = append(vc.Rules, r.Rule)
			switch r.Verdict {
			case policy.VerdictFail:
				failed = true
			case policy.VerdictInconclusive, policy.VerdictNotTested:
				open = true
			}
		}
		switch {
		case failed:
			vc.Status = StatusNotSatisfied
		case open || len(vc.Rules) == 0:
			vc.Status = StatusIncomplete
		default:
			vc.Status = StatusSatisfied
		}
		out = append(out, vc)
	}
	return out
}
