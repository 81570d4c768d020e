package policy

import (
	"fmt"
	"net/netip"
	"slices"

	"firewalliq/probe/scope"
)

// Coverage is what one rule covers of a scope.
type Coverage struct {
	Rule string `json:"rule"`
	Line int    `json:"line"`
	// Targets are the overlaps of the rule's targets with the scope's
	// CIDRs (the narrower prefix of each overlapping pair).
	Targets []string `json:"targets"`
	// Ports are the rule's ports the scope probes, as a port spec.
	Ports string `json:"ports"`
}

// Warning is a dry run's remark about a rule.
type Warning struct {
	Rule string `json:"rule"`
	Line int    `json:"line"`
	Msg  string `json:"message"`
}

func (w Warning) String() string { return fmt.Sprintf("line %d: rule %s: %s", w.Line, w.Rule, w.Msg) }

// DryRun is what a policy would judge of a scope, before any scan.
type DryRun struct {
	Coverage []Coverage `json:"coverage"`
	Warnings []Warning  `json:"warnings"`
}

// Plan lists which rules cover which of the scope's targets and ports, and
// warns about rules that can never match (no target or no port in the
// scope) and rules that are shadowed (every target and port they cover is
// covered by earlier rules, so the first-match evaluation never reaches
// them). Shadowing is checked per CIDR: each of the rule's CIDRs must lie
// inside one earlier rule's CIDR for every port, which finds the common
// mistakes without a full set algebra. Canaries outside the scope are
// warned about too: they could never answer.
func Plan(d *Document, cidrs []netip.Prefix, ports []scope.Port) DryRun {
	out := DryRun{Coverage: []Coverage{}, Warnings: []Warning{}}
	inScope := map[scope.Port]bool{}
	for _, p := range ports {
		inScope[p] = true
	}
	for i, r := range d.Rules {
		var targets []string
		for _, rp := range r.prefixes {
			for _, sp := range cidrs {
				if rp.Overlaps(sp) {
					narrow := rp
					if sp.Bits() > rp.Bits() {
						narrow = sp
					}
					if !slices.Contains(targets, narrow.String()) {
						targets = append(targets, narrow.String())
					}
				}
			}
		}
		var common []scope.Port
		for _, p := range r.portList {
			if inScope[p] {
				common = append(common, p)
			}
		}
		out.Coverage = append(out.Coverage, Coverage{Rule: r.Name, Line: r.Line, Targets: nonNil(targets), Ports: scope.FormatPorts(common)})
		switch {
		case len(targets) == 0:
			out.Warnings = append(out.Warnings, Warning{r.Name, r.Line, "can never match: none of its targets is in the scope"})
		case len(common) == 0:
			out.Warnings = append(out.Warnings, Warning{r.Name, r.Line, "can never match: none of its ports is in the scope"})
		}
		if by, ok := shadowed(d.Rules[:i], r); ok {
			out.Warnings = append(out.Warnings, Warning{r.Name, r.Line, fmt.Sprintf("is shadowed by %s: earlier rules cover all its targets and ports", by)})
		}
	}
	for _, c := range d.Canaries {
		in := slices.ContainsFunc(cidrs, func(p netip.Prefix) bool { return p.Contains(c.Target) })
		if !in || !inScope[scope.Port{Proto: c.Proto, Number: c.Port}] {
			out.Warnings = append(out.Warnings, Warning{"canary " + c.Name, c.Line, fmt.Sprintf("%s/%d on %s is not in the scope, so it can never answer", c.Proto, c.Port, c.Target)})
		}
	}
	return out
}

// shadowed reports whether earlier rules cover every (CIDR, port) of r,
// each CIDR inside one earlier rule's CIDR; it names the earlier rules.
func shadowed(earlier []Rule, r Rule) (string, bool) {
	if len(earlier) == 0 || len(r.prefixes) == 0 {
		return "", false
	}
	var by []string
	for _, rp := range r.prefixes {
		for _, p := range r.portList {
			i := slices.IndexFunc(earlier, func(e Rule) bool {
				if !e.ports[p] {
					return false
				}
				return slices.ContainsFunc(e.prefixes, func(ep netip.Prefix) bool { return ep.Bits() <= rp.Bits() && ep.Contains(rp.Addr()) })
			})
			if i < 0 {
				return "", false
			}
			if !slices.Contains(by, earlier[i].Name) {
				by = append(by, earlier[i].Name)
			}
		}
	}
	s := ""
	for i, b := range by {
		if i > 0 {
			s += ", "
		}
		s += b
	}
	return s, true
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// PlanScope is Plan over a scope document's CIDRs and ports (its excludes
// are not subtracted: a rule covering only excluded addresses still
// overlaps the CIDRs, and the scan refuses those addresses anyway).
func PlanScope(d *Document, sd scope.Document) (DryRun, error) {
	var cidrs []netip.Prefix
	for _, c := range sd.CIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			a, aerr := netip.ParseAddr(c)
			if aerr != nil {
				return DryRun{}, fmt.Errorf("dry run: scope cidr %q: %w", c, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		cidrs = append(cidrs, p.Masked())
	}
	ports, err := scope.ParsePorts(sd.Ports)
	if err != nil {
		return DryRun{}, fmt.Errorf("dry run: scope ports: %w", err)
	}
	return Plan(d, cidrs, ports), nil
}
