package policy

import (
	"strings"
	"testing"

	"firewalliq/probe/scope"
)

func TestPlan(t *testing.T) {
	d := mustParse(t, `version: 1
name: p
vantage_point: v
canaries:
  - {name: in, target: 10.20.0.7, port: 443}
  - {name: out, target: 192.0.2.1, port: 443}
rules:
  - {name: web, action: allow, to: [10.20.0.0/24], ports: "tcp:80,443", severity: high}
  - {name: web-host, action: deny, to: [10.20.0.7/32], ports: "tcp:443", severity: low}
  - {name: elsewhere, action: deny, to: [192.168.0.0/16], ports: "tcp:22", severity: low}
  - {name: no-ports, action: deny, to: [10.20.0.0/16], ports: "udp:161", severity: low}
  - {name: wide, action: deny, to: [10.0.0.0/8], ports: "tcp:22,80", severity: low}
`)
	dr, err := PlanScope(d, scope.Document{CIDRs: []string{"10.20.0.0/24", "10.30.0.5"}, Ports: "tcp:22,80,443"})
	if err != nil {
		t.Fatal(err)
	}
	cov := map[string]Coverage{}
	for _, c := range dr.Coverage {
		cov[c.Rule] = c
	}
	if c := cov["web"]; strings.Join(c.Targets, ",") != "10.20.0.0/24" || c.Ports != "tcp:80,443" {
		t.Errorf("web covers %+v", c)
	}
	if c := cov["wide"]; strings.Join(c.Targets, ",") != "10.20.0.0/24,10.30.0.5/32" || c.Ports != "tcp:22,80" {
		t.Errorf("wide covers %+v", c)
	}
	var got []string
	for _, w := range dr.Warnings {
		got = append(got, w.String())
	}
	want := []string{
		"line 9: rule web-host: is shadowed by web: earlier rules cover all its targets and ports",
		"line 10: rule elsewhere: can never match: none of its targets is in the scope",
		"line 11: rule no-ports: can never match: none of its ports is in the scope",
		"line 6: rule canary out: tcp/443 on 192.0.2.1 is not in the scope, so it can never answer",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
