package console

import (
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auditlog"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/scan"
	"firewalliq/appliance/siem"
	"firewalliq/audit"
	"firewalliq/probe/safety"
)

// dashboardData is the dashboard: the appliance's health, the safety
// profile, and (for roles that may read the audit log) recent activity.
type dashboardData struct {
	Health     Health
	HealthErr  bool
	Profile    safety.Profile
	ProfileSHA string
	Kinds      string
	SIEM       []siem.Status
	// RecentRows are the newest audit entries the user may see, newest
	// first, as rendered table rows (template "recentrows").
	RecentRows template.HTML
	CanAudit   bool
	Chart      template.HTML
	// Scans are the tenant's newest scans; ScansShown says the user's
	// dashboard has the list (a tenant user who may read scans).
	Scans      []scan.Scan
	ScansShown bool
	// Findings are the open exposures and drift with the findings chart
	// (findings.go).
	Findings dashboardFindings
}

// recentScans is how many scans the dashboard lists.
const recentScans = 5

// recentWindow is how many of the newest entries the dashboard reads for
// its list and chart: one bounded service page.
const recentWindow = 200

func (c *Console) dashboard(ec echo.Context) error {
	ctx := ec.Request().Context()
	p, _ := principal(ec)
	d := dashboardData{Profile: c.d.Profile, ProfileSHA: c.d.Profile.SHA256()}
	kinds := make([]string, 0, len(c.d.Profile.ProbeKinds))
	for _, k := range c.d.Profile.ProbeKinds {
		kinds = append(kinds, string(k))
	}
	d.Kinds = strings.Join(kinds, ", ")
	h, err := c.d.Health(ctx)
	var known *Health
	if err != nil {
		d.HealthErr = true
	} else {
		known = &h
	}
	d.Health = h
	// Destinations of other tenants are not this user's business.
	for _, s := range h.SIEM {
		if p.ApplianceAdmin() || s.Tenant == "" || s.Tenant == p.TenantID {
			d.SIEM = append(d.SIEM, s)
		}
	}
	if c.d.Audit != nil && c.allowed(p.Role, auth.OpAuditRead) && (p.TenantID != "" || p.ApplianceAdmin()) {
		d.CanAudit = true
		// The window is read once per audit-log size (cache.go); the
		// chart is drawn from it on every request (its hours move).
		var es []audit.Entry
		if known != nil {
			es, d.RecentRows, err = c.auditWindow(ctx, p, h.AuditSize)
		} else {
			var pg auditlog.Page
			if pg, err = c.d.Audit.Entries(ctx, p, "", max(h.AuditSize-recentWindow, 0), recentWindow); err == nil {
				es = pg.Entries
				d.RecentRows, err = c.recentRows(es)
			}
		}
		if err != nil {
			return err
		}
		// The chart is drawn at most once a minute per principal and
		// log size (its hour buckets move with the clock).
		now := c.d.Now()
		if known != nil {
			key := "chart\x00" + principalKey(p) + "\x00" + now.UTC().Truncate(time.Minute).Format(time.RFC3339)
			if v, ok := c.cache.get(key, h.AuditSize); ok {
				d.Chart = v.(template.HTML)
			} else {
				d.Chart = activityChart(es, now)
				c.cache.put(key, h.AuditSize, d.Chart)
			}
		} else {
			d.Chart = activityChart(es, now)
		}
	}
	if c.d.Scans != nil && p.TenantID != "" && c.allowed(p.Role, auth.OpScanRead) {
		// scan.Scans.List counts each listed scan's results (a COUNT over
		// up to 10^6 rows per scan): finished scans' lists are reused
		// while the audit log has not grown.
		size := int64(-1)
		if known != nil {
			size = h.AuditSize
		}
		var scans []scan.Scan
		if size >= 0 {
			scans, err = c.recentScansFor(ctx, p, size)
		} else {
			var pg scan.ScanPage
			pg, err = c.d.Scans.List(ctx, p, "", scan.ListFilter{Limit: recentScans})
			scans = pg.Items
		}
		if err != nil {
			return err
		}
		d.Scans, d.ScansShown = scans, true
	}
	if d.Findings, err = c.findingsSummary(ctx, p); err != nil {
		return err
	}
	return c.render(ec, http.StatusOK, "dashboard", view{Title: "Dashboard", Nav: "dashboard", Flash: flashOf(ec), Data: d, health: known})
}

// activityChart draws audit entries per hour over the last 24 hours as an
// SVG bar chart, on the server (no script). Only numbers and fixed text go
// into it, so it is safe to emit as template.HTML.
func activityChart(es []audit.Entry, now time.Time) template.HTML {
	const hours, w, h, pad = 24, 480, 120, 20
	var counts [hours]int
	start := now.Truncate(time.Hour).Add(-(hours - 1) * time.Hour)
	for _, e := range es {
		if e.Time.Before(start) || e.Time.After(now) {
			continue
		}
		i := int(e.Time.Sub(start) / time.Hour)
		if i >= 0 && i < hours {
			counts[i]++
		}
	}
	peak := 1
	total := 0
	for _, n := range counts {
		peak = max(peak, n)
		total += n
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-labelledby="chart-title"><title id="chart-title">Audit entries per hour, last 24 hours: %d in total, at most %d in one hour</title>`, w, h+pad, total, peak)
	bw := float64(w) / hours
	for i, n := range counts {
		bh := float64(h) * float64(n) / float64(peak)
		fmt.Fprintf(&b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %d</title></rect>`,
			float64(i)*bw+1, float64(h)-bh, bw-2, bh, start.Add(time.Duration(i)*time.Hour).UTC().Format("15:04"), n)
	}
	fmt.Fprintf(&b, `<line class="axis" x1="0" y1="%d" x2="%d" y2="%d"></line>`, h, w, h)
	fmt.Fprintf(&b, `<text class="label" x="0" y="%d">24 h ago</text><text class="label end" x="%d" y="%d">now (%d entries)</text>`, h+pad-4, w, h+pad-4, total)
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // numbers and fixed text only
}
