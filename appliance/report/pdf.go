package report

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-pdf/fpdf"
)

// PDF writes the report as a PDF: the same sections as the HTML, the
// signature block first, and the verdict and severity charts drawn from
// the data. The file's dates are the report's, so equal reports give
// equal bytes.
func (rd *Renderer) PDF(w io.Writer, signed []byte) error {
	v, err := ParseView(signed)
	if err != nil {
		return err
	}
	pdf := fpdf.New("P", "mm", "A4", "")
	created, err := time.Parse(time.RFC3339, v.Head.CreatedAt)
	if err != nil {
		created = time.Unix(0, 0).UTC()
	}
	pdf.SetCreationDate(created)
	pdf.SetModificationDate(created)
	pdf.SetCatalogSort(true)
	pdf.SetProducer("FirewallIQ Secure", false)
	pdf.SetTitle("Perimeter compliance report "+v.Head.ID, false)
	pdf.SetAutoPageBreak(true, 15)
	pdf.SetMargins(15, 15, 15)
	// Core fonts are cp1252; every text passes through the translator.
	// Strings from the wire were escaped to ASCII (probe.Clean) already.
	tr := pdf.UnicodeTranslatorFromDescriptor("")
	hd := v.Head
	pdf.AddPage()

	h1 := func(s string) {
		pdf.SetFont("Helvetica", "B", 16)
		pdf.MultiCell(0, 8, tr(s), "", "L", false)
		pdf.Ln(1)
	}
	h2 := func(s string) {
		if pdf.GetY() > 250 {
			pdf.AddPage()
		}
		pdf.Ln(3)
		pdf.SetFont("Helvetica", "B", 12)
		pdf.MultiCell(0, 6, tr(s), "", "L", false)
		pdf.SetFont("Helvetica", "", 9)
	}
	para := func(s string) {
		pdf.SetFont("Helvetica", "", 9)
		pdf.MultiCell(0, 4.5, tr(s), "", "L", false)
	}
	mono := func(s string) {
		pdf.SetFont("Courier", "", 8)
		pdf.MultiCell(0, 4, tr(wrapLong(s, 95)), "", "L", false)
		pdf.SetFont("Helvetica", "", 9)
	}
	kv := func(k, val string) {
		pdf.SetFont("Helvetica", "B", 9)
		y := pdf.GetY()
		pdf.CellFormat(35, 4.5, tr(k), "", 0, "L", false, 0, "")
		pdf.SetFont("Helvetica", "", 9)
		pdf.SetXY(50, y)
		pdf.MultiCell(0, 4.5, tr(val), "", "L", false)
	}
	table := func(widths []float64, head []string, rows [][]string) {
		pdf.SetFont("Helvetica", "B", 8)
		pdf.SetFillColor(230, 230, 230)
		for i, hd := range head {
			pdf.CellFormat(widths[i], 5, tr(hd), "1", 0, "L", true, 0, "")
		}
		pdf.Ln(-1)
		pdf.SetFont("Helvetica", "", 8)
		for _, row := range rows {
			// Each row as tall as its tallest wrapped cell.
			lines := 1
			for i, c := range row {
				lines = max(lines, len(pdf.SplitText(tr(c), widths[i]-2)))
			}
			hgt := float64(lines) * 4
			if pdf.GetY()+hgt > 280 {
				pdf.AddPage()
			}
			x, y := pdf.GetXY()
			for i, c := range row {
				pdf.Rect(x, y, widths[i], hgt, "D")
				pdf.SetXY(x+1, y)
				pdf.MultiCell(widths[i]-2, 4, tr(c), "", "L", false)
				x += widths[i]
			}
			pdf.SetXY(15, y+hgt)
		}
		pdf.Ln(2)
	}
	chart := func(title string, bars []Bar) {
		para(title)
		y0 := pdf.GetY() + 1
		for i, b := range bars {
			y := y0 + float64(i)*6
			pdf.SetXY(15, y)
			pdf.CellFormat(30, 5, tr(b.Label), "", 0, "L", false, 0, "")
			cr, cg, cb := barColour(b.Class)
			pdf.SetFillColor(cr, cg, cb)
			if b.Width > 0 {
				pdf.Rect(48, y, float64(b.Width)*0.4, 5, "F")
			}
			pdf.SetXY(48+float64(b.Width)*0.4+2, y)
			pdf.CellFormat(20, 5, fmt.Sprint(b.Value), "", 0, "L", false, 0, "")
		}
		pdf.SetXY(15, y0+float64(len(bars))*6+2)
	}

	h1("Perimeter compliance report")
	para(fmt.Sprintf("Report %s, tenant %s, created %s by appliance %s (version %s).", hd.ID, hd.Tenant, hd.CreatedAt, hd.Appliance.ID, hd.Appliance.Version))
	if c := v.Combined; c != nil {
		para(fmt.Sprintf("This report combines %d scans, each judged against the policy written for its vantage point:", len(c.Parts)))
		var rows [][]string
		for i, p := range c.Parts {
			rows = append(rows, []string{fmt.Sprint(i + 1), p.Scan.ID, vantageOf(p), fmt.Sprintf("%s version %d", p.Policy.Name, p.Policy.Version), fmt.Sprint(len(p.Findings))})
		}
		table([]float64{12, 40, 68, 40, 20}, []string{"Part", "Scan", "Scanned from", "Policy", "Findings"}, rows)
	}
	if hd.Imported {
		para("These results were imported from another scanner: unsigned imported evidence, not produced by this appliance's probes.")
	}

	h2("Signature")
	para(fmt.Sprintf("Signed with Ed25519 by the appliance report key %s.", v.Signature.KeyID))
	para("Signature:")
	mono(v.Signature.Sig)
	para("SHA-256 of report.json:")
	mono(v.FileSHA256)
	para(fmt.Sprintf("Audit checkpoint key: %s. Verify offline, with public keys only:", hd.AuditKeyID))
	mono(v.Command)
	para("This PDF is a rendering; the signed document is report.json.")

	for _, part := range v.Parts {
		renderPart(part, h2, para, mono, kv, table, chart)
	}
	if c := v.Combined; c != nil {
		h2("Compliance mapping over all scans")
		var rows [][]string
		for _, x := range c.Compliance {
			rows = append(rows, []string{x.Framework, x.Control + " " + x.Title, x.Status, x.Basis + ". Rules: " + orNone(x.Rules)})
		}
		table([]float64{30, 55, 25, 70}, []string{"Framework", "Control", "Status", "Criterion"}, rows)
	}

	var buf bytes.Buffer
	if err := pdf.Output(&buf); err != nil {
		return fmt.Errorf("render report pdf: %w", err)
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// renderPart writes one scan's sections with the page's writers.
func renderPart(p PartView, h2, para, mono func(string), kv func(k, v string), table func([]float64, []string, [][]string), chart func(string, []Bar)) {
	r := p.Report
	h2(p.Title)
	kv("Scanned from", vantageOf(r))
	kv("Vantage point", r.VantagePoint)
	kv("Scan", r.Scan.ID)
	kv("Window", r.Window.Start+" to "+r.Window.End)
	kv("Scope", fmt.Sprintf("%s (%s, %s), SHA-256 %s, signed by %s; CIDRs %s%s; ports %s", r.Scope.Name, r.Scope.ID, r.Scope.Environment, r.Scope.SHA256,
		r.Scope.SignerKeyID, strings.Join(r.Scope.CIDRs, ", "), excluded(r.Scope.Exclude), r.Scope.Ports))
	kv("Policy", fmt.Sprintf("%s version %d, SHA-256 %s", r.Policy.Name, r.Policy.Version, r.Policy.SHA256))
	kv("Safety profile", fmt.Sprintf("%s (SHA-256 %s), cap %d packets/s", r.Profile.ID, r.Profile.SHA256, r.Profile.MaxPPS))
	kv("Job", fmt.Sprintf("%s, SHA-256 %s, signed by %s", r.Job.ID, r.Job.SHA256, r.Job.KeyID))
	kv("Packet rate", fmt.Sprintf("requested %d/s, cap %d/s, measured %d.%03d/s; worst 100 ms window %d packets (limit %d); %d packets, %d results",
		r.Rate.RequestedPPS, r.Rate.CapPPS, r.Rate.MeasuredMilliPPS/1000, r.Rate.MeasuredMilliPPS%1000, r.Rate.Worst100ms, r.Rate.WindowLimit, r.Rate.PacketsSent, r.Summary.Results))
	var appr, ops []string
	for _, a := range r.Approvals {
		appr = append(appr, fmt.Sprintf("%s (%s) at %s", a.Approver, a.Role, a.Time))
	}
	for _, o := range r.Operators {
		ops = append(ops, fmt.Sprintf("%s (%s, %s)", o.Name, o.Role, o.ID))
	}
	kv("Approvals", orNone(appr))
	kv("Operators", orNone(ops))

	h2("Rule verdicts")
	chart("Rules by verdict", p.Verdicts)
	var rows [][]string
	for _, x := range r.Verdicts {
		rows = append(rows, []string{x.Rule, x.Action, x.Severity, x.Verdict, fmt.Sprint(x.Tested), fmt.Sprint(x.Passed), fmt.Sprint(x.Failed), fmt.Sprint(x.DenialStyle), fmt.Sprint(x.Inconclusive)})
	}
	table([]float64{40, 16, 18, 24, 16, 16, 16, 18, 16}, []string{"Rule", "Action", "Severity", "Verdict", "Tested", "Passed", "Failed", "Style", "Inconcl."}, rows)
	rows = nil
	for _, c := range r.Canaries {
		ans := "no"
		if c.Answered {
			ans = "yes"
		}
		rows = append(rows, []string{c.Name, fmt.Sprintf("%s/%d on %s", c.Proto, c.Port, c.Target), ans})
	}
	if len(rows) == 0 {
		para("The policy names no canary: silence from a denied service is inconclusive.")
	} else {
		table([]float64{50, 80, 50}, []string{"Canary", "Service", "Answered in the window"}, rows)
	}

	h2("Findings")
	chart("Findings by severity", p.Severities)
	rows = nil
	for _, f := range r.Findings {
		obs := f.Observed
		if f.Reason != "" {
			obs += " (" + f.Reason + ")"
		}
		if f.ICMPType >= 0 {
			obs += fmt.Sprintf(", ICMP %d/%d", f.ICMPType, f.ICMPCode)
		}
		rows = append(rows, []string{f.Severity, f.Kind, f.Title, obs})
	}
	if len(rows) == 0 {
		para("No findings.")
	} else {
		table([]float64{18, 24, 98, 40}, []string{"Severity", "Kind", "Finding", "Observed"}, rows)
	}

	h2("Drift")
	if r.Drift.BaselineID == "" {
		para("No baseline has been accepted for this scope and policy.")
	} else {
		para("Compared with baseline " + r.Drift.BaselineID + ".")
		rows = nil
		for _, c := range r.Drift.Changes {
			rows = append(rows, []string{c.Kind, fmt.Sprintf("%s/%d on %s", c.Proto, c.Port, c.Target), c.Before, c.After})
		}
		if len(rows) == 0 {
			para("No change since the baseline.")
		} else {
			table([]float64{30, 50, 50, 50}, []string{"Change", "Service", "Before", "After"}, rows)
		}
	}

	h2("Compliance mapping")
	rows = nil
	for _, c := range r.Compliance {
		rows = append(rows, []string{c.Framework, c.Control + " " + c.Title, c.Status, c.Basis + ". Rules: " + orNone(c.Rules)})
	}
	table([]float64{30, 55, 25, 70}, []string{"Framework", "Control", "Status", "Criterion"}, rows)

	h2("Evidence")
	para("Each object's SHA-256 is recorded in the audit log; its inclusion proof leads to the signed checkpoint below.")
	rows = nil
	for _, e := range r.Evidence {
		rows = append(rows, []string{e.Name, e.SHA256, fmt.Sprint(e.Size), fmt.Sprint(e.AuditSeq)})
	}
	table([]float64{45, 95, 20, 20}, []string{"Object", "SHA-256", "Bytes", "Audit entry"}, rows)
	para("Audit checkpoint:")
	mono(r.Checkpoint)
	if a := r.Anchor; a != nil {
		para("Consistent with the daily anchor of " + a.Day + ":")
		mono(a.Checkpoint)
	} else {
		para("No daily anchor covers this checkpoint yet.")
	}
}

func barColour(class string) (int, int, int) {
	switch class {
	case "pass":
		return 46, 158, 79
	case "fail", "critical", "high":
		return 192, 57, 43
	case "denial-style", "inconclusive", "medium":
		return 224, 160, 32
	}
	return 136, 153, 170
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func excluded(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return "; excluded " + strings.Join(s, ", ")
}

// wrapLong breaks unbroken runs (signatures, hashes) so they fit a line.
func wrapLong(s string, n int) string {
	var b strings.Builder
	for i, line := range strings.Split(s, "\n") {
		if i > 0 {
			b.WriteByte('\n')
		}
		for len(line) > n {
			b.WriteString(line[:n])
			b.WriteByte('\n')
			line = line[n:]
		}
		b.WriteString(line)
	}
	return b.String()
}
