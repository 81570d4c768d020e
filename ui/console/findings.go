package console

import (
	"context"
	"html/template"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/report"
)

// The findings page: the findings of the tenant's signed reports
// (report.Reports.Findings; a finding exists where a report recorded it),
// filterable by kind, severity, policy and scan, with only the newest
// report of each policy ("open") by default, and a chart of findings over
// time. The dashboard shows the open exposures and drift.

// findingSeverities are the severities the filter offers.
var findingSeverities = []string{"critical", "high", "medium", "low", "info"}

type findingsFilter struct {
	Kind, Severity, Policy, Scan string
	// All shows every report's findings, not only the newest report's of
	// each policy.
	All bool
}

type findingsData struct {
	Rows       []report.FindingRow
	Reports    int
	Unreadable []string
	Filter     findingsFilter
	Kinds      []string
	Severities []string
	Policies   []string
	Chart      template.HTML
	// Counts are the listed findings by kind.
	Counts map[string]int
}

func (c *Console) findingsPage(ec echo.Context) error {
	if c.d.Reports == nil {
		return errUnavailable
	}
	ctx := ec.Request().Context()
	p, _ := principal(ec)
	tenant, tenants, err := c.tenantFor(ec, p)
	if err != nil {
		return err
	}
	fl := findingsFilter{Kind: ec.QueryParam("kind"), Severity: ec.QueryParam("severity"), Policy: ec.QueryParam("policy"),
		Scan: ec.QueryParam("scan"), All: ec.QueryParam("all") != ""}
	reports, err := c.d.Reports.Recent(ctx, p, tenant, fcReports)
	if err != nil {
		return err
	}
	list, err := c.d.Reports.Findings(ctx, p, tenant, report.FindingFilter{Kind: fl.Kind, Severity: fl.Severity, Policy: fl.Policy,
		ScanID: fl.Scan, Latest: !fl.All && fl.Scan == ""})
	if err != nil {
		return err
	}
	d := findingsData{Rows: list.Rows, Reports: list.Reports, Unreadable: list.Unreadable, Filter: fl, Kinds: findingKinds,
		Severities: findingSeverities, Chart: findingsChart(reports), Counts: map[string]int{}}
	if c.d.Policies != nil {
		ps, err := c.d.Policies.List(ctx, p, tenant)
		if err != nil {
			return err
		}
		for _, sp := range ps {
			d.Policies = append(d.Policies, sp.Name)
		}
	}
	for _, r := range list.Rows {
		d.Counts[r.Kind]++
	}
	return c.render(ec, http.StatusOK, "findings", view{Title: "Findings and drift", Nav: "findings", Tenant: tenant, Tenants: tenants, Data: d})
}

// findingsLink is the findings page filtered by kind.
func findingsLink(kind string) string {
	return Prefix + "/findings?" + url.Values{"kind": {kind}}.Encode()
}

// dashboardFindings are the dashboard's open exposures and drift: the
// findings of the newest report of each policy among the newest fcReports
// reports (from their audit entries, no report file read), and the
// findings chart. The dashboard reads only those few, so it stays cheap.
type dashboardFindings struct {
	Shown     bool
	Exposures int
	Drift     int
	Open      int
	Reports   int
	Chart     template.HTML
	// Links to the findings page filtered by kind.
	ExposureURL, DriftURL string
}

// findingsSummary fills the dashboard's findings card for a tenant user
// who may read reports.
func (c *Console) findingsSummary(ctx context.Context, p auth.Principal) (dashboardFindings, error) {
	var d dashboardFindings
	if c.d.Reports == nil || p.TenantID == "" || !c.allowed(p.Role, auth.OpReportRead) {
		return d, nil
	}
	rs, err := c.d.Reports.Recent(ctx, p, "", fcReports)
	if err != nil {
		return d, err
	}
	d.Shown, d.Reports = true, len(rs)
	seen := map[string]bool{}
	for _, r := range rs {
		if seen[r.Policy] {
			continue
		}
		seen[r.Policy] = true
		d.Exposures += r.Findings["exposure"]
		d.Drift += r.Findings["drift"]
		for _, n := range r.Findings {
			d.Open += n
		}
	}
	d.Chart = findingsChart(rs)
	d.ExposureURL, d.DriftURL = findingsLink("exposure"), findingsLink("drift")
	return d, nil
}
