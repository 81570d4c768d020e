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
		"milli": func(v int) string { return fmt.Sprintf("%d.%03d", v/1000, v%1000) },
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

// View is what the renderings show: the report, its signature, the SHA-256
// of the signed file and two charts.
type View struct {
	Report       verify.Report
	Signature    verify.Signature
	FileSHA256   string
	Command      string
	Verdicts     []Bar
	Severities   []Bar
	ChartHeight  int
	SevHeight    int
	PolicyDigest string
}

// ParseView reads a signed report file for display. It does not verify
// the report: that is Verify's job, and the renderings tell the reader how.
func ParseView(signed []byte) (View, error) {
	var f verify.File
	if err := json.Unmarshal(signed, &f); err != nil {
		return View{}, fmt.Errorf("render report: %w", err)
	}
	var r verify.Report
	if err := json.Unmarshal(f.Report, &r); err != nil {
		return View{}, fmt.Errorf("render report: %w", err)
	}
	sum := sha256.Sum256(signed)
	v := View{Report: r, Signature: f.Signature, FileSHA256: hex.EncodeToString(sum[:]), Command: VerifyCommand}
	v.Verdicts = bars([]string{"pass", "fail", "denial-style", "inconclusive", "not-tested"}, r.Summary.Rules)
	sev := map[string]int{}
	for _, fd := range r.Findings {
		sev[fd.Severity]++
	}
	v.Severities = bars([]string{"critical", "high", "medium", "low", "info"}, sev)
	v.ChartHeight = 24 * len(v.Verdicts)
	v.SevHeight = 24 * len(v.Severities)
	return v, nil
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
