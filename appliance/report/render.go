package report

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io"

	"firewalliq/appliance/report/verify"
)

//go:embed templates/report.html.tmpl
var templateFS embed.FS

// Renderer renders signed reports. Its template is parsed once, when it is
// made, so a broken template fails at start-up, not at the first report.
type Renderer struct {
	html *template.Template
}

// NewRenderer parses the embedded templates.
func NewRenderer() (*Renderer, error) {
	t, err := template.New("report.html.tmpl").Funcs(template.FuncMap{
		"milli":   func(v int) string { return fmt.Sprintf("%d.%03d", v/1000, v%1000) },
		"vantage": vantageOf,
		"inc":     func(i int) int { return i + 1 },
	}).ParseFS(templateFS, "templates/report.html.tmpl")
	if err != nil {
		return nil, fmt.Errorf("report templates: %w", err)
	}
	return &Renderer{html: t}, nil
}

// Bar is one bar of a chart drawn from the report's data.
type Bar struct {
	Label string
	Value int
	// Width is the bar's length in chart units (0-300), Y its offset.
	Width, Y int
	Class    string
}

// View is what the renderings show: the report's heading, its signature,
// the SHA-256 of the signed file, and one Part per scan (one for a single
// report, one per scan for a combined report), each with two charts.
type View struct {
	Head       Head
	Signature  verify.Signature
	FileSHA256 string
	Command    string
	Parts      []PartView
	// Combined is set for a combined report; its control mapping covers
	// every part.
	Combined *verify.Combined
}

// Head is what a report says about itself, whatever its kind.
type Head struct {
	ID, Tenant, CreatedAt string
	Appliance             verify.Appliance
	Imported              bool
	AuditKeyID            string
}

// PartView is one scan's report and its charts.
type PartView struct {
	Report      verify.Report
	Verdicts    []Bar
	Severities  []Bar
	ChartHeight int
	SevHeight   int
	// Title heads the part's sections ("Scan" for a single report).
	Title string
}

// ParseView reads a signed report file for display. It does not verify
// the report: that is Verify's job, and the renderings tell the reader how.
func ParseView(signed []byte) (View, error) {
	var f verify.File
	if err := json.Unmarshal(signed, &f); err != nil {
		return View{}, fmt.Errorf("render report: %w", err)
	}
	sum := sha256.Sum256(signed)
	v := View{Signature: f.Signature, FileSHA256: hex.EncodeToString(sum[:]), Command: VerifyCommand}
	var head struct {
		Format string `json:"format"`
	}
	if err := json.Unmarshal(f.Report, &head); err != nil {
		return View{}, fmt.Errorf("render report: %w", err)
	}
	if head.Format == verify.FormatCombinedV1 {
		var c verify.Combined
		if err := json.Unmarshal(f.Report, &c); err != nil {
			return View{}, fmt.Errorf("render report: %w", err)
		}
		v.Combined = &c
		v.Head = Head{ID: c.ID, Tenant: c.Tenant, CreatedAt: c.CreatedAt, Appliance: c.Appliance, AuditKeyID: c.Verification.AuditKeyID}
		for i, r := range c.Parts {
			v.Head.Imported = v.Head.Imported || r.Imported
			v.Parts = append(v.Parts, partOf(r, fmt.Sprintf("Scan %d of %d: %s from %s", i+1, len(c.Parts), r.Scan.ID, vantageOf(r))))
		}
		return v, nil
	}
	var r verify.Report
	if err := json.Unmarshal(f.Report, &r); err != nil {
		return View{}, fmt.Errorf("render report: %w", err)
	}
	v.Head = Head{ID: r.ID, Tenant: r.Tenant, CreatedAt: r.CreatedAt, Appliance: r.Appliance, Imported: r.Imported, AuditKeyID: r.Verification.AuditKeyID}
	v.Parts = []PartView{partOf(r, "Scan")}
	return v, nil
}

// vantageOf names where a scan ran from: the runner's vantage label and
// the policy's vantage point.
func vantageOf(r verify.Report) string {
	where := r.Scan.VantageLabel
	if where == "" {
		where = r.Scan.Vantage
	}
	if where == "" {
		return "vantage point " + r.VantagePoint
	}
	if r.Scan.Vantage == "local" {
		where = "the appliance itself (local)"
	} else if r.Scan.Vantage != "" && r.Scan.Vantage != where {
		where = "sensor " + r.Scan.Vantage + " (" + where + ")"
	}
	return where + ", policy vantage point " + r.VantagePoint
}

func partOf(r verify.Report, title string) PartView {
	p := PartView{Report: r, Title: title}
	p.Verdicts = bars([]string{"pass", "fail", "denial-style", "inconclusive", "not-tested"}, r.Summary.Rules)
	sev := map[string]int{}
	for _, fd := range r.Findings {
		sev[fd.Severity]++
	}
	p.Severities = bars([]string{"critical", "high", "medium", "low", "info"}, sev)
	p.ChartHeight = 24 * len(p.Verdicts)
	p.SevHeight = 24 * len(p.Severities)
	return p
}

// bars scales counts to a 300-unit axis, in the order of labels.
func bars(labels []string, counts map[string]int) []Bar {
	maxV := 1
	for _, l := range labels {
		maxV = max(maxV, counts[l])
	}
	out := make([]Bar, 0, len(labels))
	for i, l := range labels {
		out = append(out, Bar{Label: l, Value: counts[l], Width: counts[l] * 300 / maxV, Y: i * 24, Class: l})
	}
	return out
}

// HTML writes the report as a self-contained HTML page: no script, the
// charts as inline SVG drawn from the data.
func (rd *Renderer) HTML(w io.Writer, signed []byte) error {
	v, err := ParseView(signed)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := rd.html.Execute(&buf, v); err != nil {
		return fmt.Errorf("render report html: %w", err)
	}
	_, err = w.Write(buf.Bytes())
	return err
}
