package console

import (
	"context"
	"fmt"
	"html"
	"html/template"
	"net/url"
	"slices"
	"strings"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/report"
	"firewalliq/appliance/scan"
)

// Charts drawn as SVG on the server: no script, no library. Every piece of
// text that goes into an SVG passes through esc (names of policies and
// reports come from users and are untrusted like any other field), and
// numbers are formatted by the program, so the result is safe to emit as
// template.HTML.

// esc escapes text for an SVG text node or attribute value.
func esc(s string) string { return html.EscapeString(xmlText(s)) }

// xmlText replaces what XML 1.0 does not allow in text with U+FFFD: control
// characters other than tab, newline and carriage return, invalid UTF-8,
// surrogates, U+FFFE and U+FFFF. A policy or report name carrying one would
// otherwise make the whole SVG malformed (FuzzFindingsChart found U+0002).
func xmlText(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return r
		case r < 0x20, r == 0xFFFE, r == 0xFFFF, r >= 0xD800 && r <= 0xDFFF:
			return '\uFFFD'
		}
		return r
	}, s)
}

// Timeline chart geometry.
const (
	tlWidth, tlHeight, tlPad = 640, 160, 22
	// tlColumns bounds the bars: a longer scan is drawn in buckets of
	// several seconds (the mean per second of each).
	tlColumns = 120
)

// timelineChart draws a scan's send rate against the job's rate cap (a
// dashed line) and, once completed, the measured mean rate (a dotted
// line). A completed scan's bars are the packets its final run sent per
// second (the engine's bucketed count, recorded in the audited
// completion); until then, and for completions recorded before that was
// kept, they are the results recorded per second. Nothing to draw gives "".
func timelineChart(tl report.Timeline) template.HTML {
	var vals []float64
	var per, secs int
	var total float64 // packets or results drawn
	what := "Results recorded"
	if tl.Sent != nil && len(tl.Sent.Packets) > 0 && tl.Sent.BucketSeconds > 0 {
		what, per = "Packets sent", tl.Sent.BucketSeconds
		secs = per * len(tl.Sent.Packets)
		for _, n := range tl.Sent.Packets {
			vals = append(vals, float64(n)/float64(per))
			total += float64(n)
		}
	} else {
		if len(tl.PerSecond) == 0 {
			return ""
		}
		secs = len(tl.PerSecond)
		per = (secs + tlColumns - 1) / tlColumns // seconds per column
		vals = make([]float64, (secs+per-1)/per)
		for i, n := range tl.PerSecond {
			vals[i/per] += float64(n)
			total += float64(n)
		}
		for i := range vals {
			width := per
			if i == len(vals)-1 && secs%per != 0 {
				width = secs % per
			}
			vals[i] /= float64(width)
		}
	}
	peak := slices.Max(vals)
	limit := tl.RequestedPPS
	if limit <= 0 {
		limit = tl.CapPPS
	}
	top := max(peak, float64(limit), tl.MeasuredPPS, 1) * 1.15
	y := func(v float64) float64 { return tlHeight - tlHeight*v/top }
	var b strings.Builder
	summary := fmt.Sprintf("%s per second over %d s: %.0f in total, at most %.1f per second; cap %d per second", what, secs, total, peak, limit)
	if per > 1 {
		summary += fmt.Sprintf(" (each bar the mean of %d s)", per)
	}
	if tl.Completed {
		summary += fmt.Sprintf("; measured mean %.1f packets per second", tl.MeasuredPPS)
	}
	if tl.Sampled && tl.Sent == nil {
		summary += " (counts sampled from the stored results' time stamps)"
	}
	fmt.Fprintf(&b, `<svg class="chart timeline" id="scan-timeline" viewBox="0 0 %d %d" role="img" aria-labelledby="timeline-title"><title id="timeline-title">%s</title>`,
		tlWidth, tlHeight+tlPad, esc(summary))
	cols := len(vals)
	bw := float64(tlWidth) / float64(cols)
	for i, v := range vals {
		label := fmt.Sprintf("%d s: %.1f per second", i*per, v)
		if per > 1 {
			label = fmt.Sprintf("%d–%d s: %.1f per second (mean)", i*per, min((i+1)*per, secs), v)
		}
		fmt.Fprintf(&b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s</title></rect>`,
			float64(i)*bw+0.5, y(v), max(bw-1, 0.5), tlHeight-y(v), esc(label))
	}
	fmt.Fprintf(&b, `<line class="cap" x1="0" y1="%.1f" x2="%d" y2="%.1f"><title>%s</title></line>`, y(float64(limit)), tlWidth, y(float64(limit)),
		esc(fmt.Sprintf("cap: %d per second", limit)))
	fmt.Fprintf(&b, `<text class="label" x="2" y="%.1f">cap %d/s</text>`, max(y(float64(limit))-3, 10), limit)
	if tl.Completed && tl.MeasuredPPS > 0 {
		fmt.Fprintf(&b, `<line class="measured" x1="0" y1="%.1f" x2="%d" y2="%.1f"><title>%s</title></line>`, y(tl.MeasuredPPS), tlWidth, y(tl.MeasuredPPS),
			esc(fmt.Sprintf("measured mean: %.1f packets per second", tl.MeasuredPPS)))
		fmt.Fprintf(&b, `<text class="label end" x="%d" y="%.1f">mean %.1f/s</text>`, tlWidth, max(y(tl.MeasuredPPS)-3, 10), tl.MeasuredPPS)
	}
	fmt.Fprintf(&b, `<text class="label" x="2" y="%.1f">peak %.1f/s</text>`, max(y(peak)+12, 22), peak)
	fmt.Fprintf(&b, `<line class="axis" x1="0" y1="%d" x2="%d" y2="%d"></line>`, tlHeight, tlWidth, tlHeight)
	fmt.Fprintf(&b, `<text class="label" x="0" y="%d">0 s</text><text class="label end" x="%d" y="%d">%d s</text>`, tlHeight+tlPad-6, tlWidth, tlHeight+tlPad-6, secs)
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // numbers and escaped text only
}

// findingKinds are the finding kinds the findings chart stacks, in order.
var findingKinds = []string{"exposure", "blocked", "denial-style", "inconclusive", "not-tested", "drift"}

// Findings chart geometry.
const (
	fcWidth, fcHeight, fcPad = 640, 150, 22
	// fcReports is how many of the newest reports the chart shows.
	fcReports = 30
)

// findingsChart draws the findings of the newest reports (oldest on the
// left), one stacked bar per report by finding kind, with a legend.
// Without reports it gives "".
func findingsChart(rs []report.Stored) template.HTML {
	if len(rs) == 0 {
		return ""
	}
	shown := slices.Clone(rs[:min(len(rs), fcReports)])
	slices.Reverse(shown) // oldest first
	peak, total := 1, 0
	for _, r := range shown {
		n := 0
		for _, k := range findingKinds {
			n += r.Findings[k]
		}
		peak = max(peak, n)
		total += n
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart findings" id="findings-chart" viewBox="0 0 %d %d" role="img" aria-labelledby="findings-chart-title"><title id="findings-chart-title">%s</title>`,
		fcWidth, fcHeight+2*fcPad, esc(fmt.Sprintf("Findings of the %d newest reports, oldest first: %d in total, at most %d in one report", len(shown), total, peak)))
	slot := float64(fcWidth) / float64(max(len(shown), 10))
	bw := min(slot*0.7, 40)
	for i, r := range shown {
		x := float64(i)*slot + (slot-bw)/2
		base := float64(fcHeight)
		var parts []string
		for _, k := range findingKinds {
			n := r.Findings[k]
			if n == 0 {
				continue
			}
			h := float64(fcHeight) * float64(n) / float64(peak)
			base -= h
			fmt.Fprintf(&b, `<rect class="k-%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s</title></rect>`,
				k, x, base, bw, h, esc(fmt.Sprintf("%s (%s v%d, %s): %s %d", r.ID, r.Policy, r.PolicyVersion, r.CreatedAt.UTC().Format("2006-01-02 15:04Z"), k, n)))
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
		if len(parts) == 0 {
			fmt.Fprintf(&b, `<rect class="none" x="%.1f" y="%d" width="%.1f" height="1"><title>%s</title></rect>`, x, fcHeight-1, bw,
				esc(fmt.Sprintf("%s (%s v%d, %s): no findings", r.ID, r.Policy, r.PolicyVersion, r.CreatedAt.UTC().Format("2006-01-02 15:04Z"))))
		}
	}
	fmt.Fprintf(&b, `<line class="axis" x1="0" y1="%d" x2="%d" y2="%d"></line>`, fcHeight, fcWidth, fcHeight)
	first, last := shown[0].CreatedAt.UTC().Format("2006-01-02"), shown[len(shown)-1].CreatedAt.UTC().Format("2006-01-02")
	fmt.Fprintf(&b, `<text class="label" x="0" y="%d">%s</text><text class="label end" x="%d" y="%d">%s</text>`, fcHeight+fcPad-6, esc(first), fcWidth, fcHeight+fcPad-6, esc(last))
	// Legend.
	lx := 0
	for _, k := range findingKinds {
		fmt.Fprintf(&b, `<rect class="k-%s" x="%d" y="%d" width="10" height="10"></rect><text class="label" x="%d" y="%d">%s</text>`,
			k, lx, fcHeight+fcPad+4, lx+14, fcHeight+fcPad+13, esc(k))
		lx += 14 + 8*len(k) + 14
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // numbers and escaped text only
}

// scanTimeline fills the scan page's timeline chart and its links to the
// scan's findings and to the report form, when the report service is
// there (it reads the stored results; report.Reports.Timeline).
func (c *Console) scanTimeline(ctx context.Context, p auth.Principal, tenant string, d *scanData) error {
	if c.d.Reports == nil || d.Scan.Job == nil {
		return nil
	}
	tl, err := c.d.Reports.Timeline(ctx, p, tenant, d.Scan.ID)
	if err != nil {
		return err
	}
	d.Timeline = timelineChart(tl)
	if d.Scan.State == scan.StateCompleted {
		q := url.Values{"scan": {d.Scan.ID}}
		if tenant != "" {
			q.Set("tenant", tenant)
		}
		d.FindingsURL = Prefix + "/findings?" + q.Encode() + "&all=1"
		if p.TenantID != "" && c.allowed(p.Role, auth.OpReportCreate) {
			d.ReportURL = Prefix + "/reports?" + url.Values{"scan": {d.Scan.ID}}.Encode() + "#report-form"
		}
	}
	return nil
}
