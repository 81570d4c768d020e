package console

import (
	"bytes"
	"encoding/xml"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/report"
	"firewalliq/appliance/report/verify"
	"firewalliq/probe"
)

var update = flag.Bool("update", false, "rewrite the golden SVG files in testdata/")

// svgShape parses an SVG as XML (so it is well formed) and counts its
// elements by name and class ("rect.bar"), and collects its text.
func svgShape(t testing.TB, svg string) (map[string]int, string) {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(svg))
	counts := map[string]int{}
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
		switch v := tok.(type) {
		case xml.StartElement:
			counts[v.Name.Local]++
			for _, a := range v.Attr {
				if a.Name.Local == "class" {
					counts[v.Name.Local+"."+a.Value]++
				}
				if strings.HasPrefix(strings.ToLower(a.Name.Local), "on") {
					t.Fatalf("event handler attribute %s in %s", a.Name.Local, svg)
				}
			}
		case xml.CharData:
			text.Write(v)
		}
	}
	return counts, text.String()
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != got {
		t.Fatalf("%s differs from the golden file; run with -update if the change is intended\ngot:\n%s", name, got)
	}
}

func TestTimelineChart(t *testing.T) {
	start := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	long := make([]int, 1000)
	for i := range long {
		long[i] = 10 + i%7
	}
	tests := []struct {
		name   string
		tl     report.Timeline
		bars   int
		texts  []string
		golden string
	}{
		{name: "nothing stored", tl: report.Timeline{PerSecond: []int{}}},
		{name: "short run", tl: report.Timeline{Start: start, PerSecond: []int{8, 10, 10, 4}, RequestedPPS: 10, CapPPS: 400},
			bars: 4, texts: []string{"cap 10/s", "4 s", "at most 10.0 per second; cap 10 per second"}, golden: "timeline-short.svg"},
		{name: "completed with measured rate", tl: report.Timeline{Start: start, PerSecond: []int{20, 20, 19}, RequestedPPS: 20, CapPPS: 400,
			Completed: true, MeasuredPPS: 19.6, Worst100ms: 2, Packets: 59}, bars: 3, texts: []string{"measured mean 19.6 packets per second"}, golden: "timeline-completed.svg"},
		{name: "long run in buckets", tl: report.Timeline{Start: start, PerSecond: long, RequestedPPS: 20}, bars: 112, texts: []string{"1000 s", "(mean)"}},
		{name: "completed: packets sent per second", tl: report.Timeline{Start: start, PerSecond: []int{20, 20, 19}, RequestedPPS: 20, CapPPS: 400,
			Completed: true, MeasuredPPS: 19.9, Worst100ms: 3, Packets: 66, Sent: &probe.SendSeries{BucketSeconds: 1, Packets: []uint64{20, 20, 20, 6}}},
			bars: 4, texts: []string{"Packets sent per second over 4 s: 66 in total, at most 20.0 per second; cap 20 per second", "measured mean 19.9"},
			golden: "timeline-packets.svg"},
		{name: "long run: packets in 8 s buckets", tl: report.Timeline{Start: start, PerSecond: long, RequestedPPS: 20, Completed: true, MeasuredPPS: 12,
			Sent: &probe.SendSeries{BucketSeconds: 8, Packets: []uint64{96, 160, 8}}},
			bars: 3, texts: []string{"Packets sent per second over 24 s: 264 in total, at most 20.0 per second", "(each bar the mean of 8 s)", "8–16 s: 20.0 per second (mean)"}},
		{name: "no requested rate: the profile cap", tl: report.Timeline{Start: start, PerSecond: []int{1}, CapPPS: 400}, bars: 1, texts: []string{"cap 400/s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(timelineChart(tt.tl))
			if tt.bars == 0 {
				if got != "" {
					t.Fatalf("chart of nothing: %s", got)
				}
				return
			}
			counts, text := svgShape(t, got)
			if counts["svg"] != 1 || counts["rect.bar"] != tt.bars || counts["line.cap"] != 1 || counts["line.axis"] != 1 {
				t.Fatalf("shape %v:\n%s", counts, got)
			}
			if tt.tl.Completed != (counts["line.measured"] == 1) {
				t.Fatalf("measured line %d, completed %v", counts["line.measured"], tt.tl.Completed)
			}
			for _, s := range tt.texts {
				if !strings.Contains(text, s) {
					t.Fatalf("text lacks %q: %s", s, text)
				}
			}
			if tt.golden != "" {
				golden(t, tt.golden, got)
			}
		})
	}
}

func TestFindingsChart(t *testing.T) {
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	rs := []report.Stored{ // newest first, as report.Reports.List gives them
		{ID: "rpt_3", Policy: "edge", PolicyVersion: 2, CreatedAt: at.Add(2 * time.Hour), Findings: map[string]int{"exposure": 1, "drift": 2}},
		{ID: "rpt_2", Policy: "edge", PolicyVersion: 1, CreatedAt: at.Add(time.Hour), Findings: map[string]int{}},
		{ID: `rpt_"><script>alert(1)</script>`, Policy: "<b>p</b>", PolicyVersion: 1, CreatedAt: at, Findings: map[string]int{"blocked": 3, "not-tested": 1}},
	}
	if got := findingsChart(nil); got != "" {
		t.Fatalf("chart of no reports: %s", got)
	}
	got := string(findingsChart(rs))
	counts, text := svgShape(t, got)
	// Segments: rpt_3 two kinds, rpt_2 none (a flat mark), the first two;
	// plus six legend swatches.
	if counts["rect.k-exposure"] != 2 || counts["rect.k-drift"] != 2 || counts["rect.k-blocked"] != 2 || counts["rect.none"] != 1 || counts["script"] != 0 {
		t.Fatalf("shape %v:\n%s", counts, got)
	}
	if !strings.Contains(text, `rpt_"><script>alert(1)</script> (<b>p</b> v1`) || strings.Contains(got, "<script>") || strings.Contains(got, "<b>") {
		t.Fatalf("untrusted names not escaped:\n%s", got)
	}
	// Oldest on the left: the hostile (oldest) report's bars come first.
	if strings.Index(got, "rpt_&#34;&gt;") > strings.Index(got, "rpt_3") {
		t.Fatalf("reports not oldest first:\n%s", got)
	}
	golden(t, "findings.svg", got)
}

// FuzzFindingsChart: whatever the untrusted names, the chart is one
// well-formed SVG element with no element or attribute of its own making.
func FuzzFindingsChart(f *testing.F) {
	// Seeds: markup, quotes breaking out of an attribute, CDATA, entities.
	for _, s := range []string{"edge", `<script>alert(1)</script>`, `" onload="x`, "]]><x>", "&amp;&#0;", "\x00\xff"} {
		f.Add(s, s, 3)
	}
	f.Fuzz(func(t *testing.T, id, pol string, n int) {
		n = max(0, n%1000)
		rs := []report.Stored{{ID: id, Policy: pol, CreatedAt: time.Unix(0, 0), Findings: map[string]int{"exposure": n, "drift": 1}}}
		got := string(findingsChart(rs))
		if !strings.HasPrefix(got, `<svg class="chart findings"`) || !strings.HasSuffix(got, "</svg>") {
			t.Fatalf("chart: %s", got)
		}
		// Every chart is well-formed XML, whatever the names hold
		// (control characters and invalid UTF-8 become U+FFFD).
		counts, _ := svgShape(t, got)
		if counts["svg"] != 1 || counts["script"] != 0 || counts["b"] != 0 {
			t.Fatalf("elements %v in %s", counts, got)
		}
	})
}

// TestUntrustedFindingFields renders the findings and report pages with
// markup in every field that comes from a scanned network or a user
// (banners and certificate fields in drift, titles, targets, rule and
// policy names, report and scan ids): none of it reaches the page as
// markup.
func TestUntrustedFindingFields(t *testing.T) {
	pages, err := parseTemplates(templateFS, funcs(func(string, auth.Operation) bool { return true }))
	if err != nil {
		t.Fatal(err)
	}
	const bad = `<script>window.pwned=1</script><img src=x onerror=alert(1)>`
	f := verify.Finding{ID: bad, Kind: "drift", Severity: "low", Rule: bad, Title: bad, Target: bad, Proto: "tcp", Port: 443,
		Expected: bad, Observed: bad, Reason: bad, ICMPType: -1, ICMPCode: -1}
	rows := []report.FindingRow{{Finding: f, ReportID: bad, ScanID: bad, ScopeID: bad, Policy: bad, Before: "CN=" + bad, After: bad}}
	rep := verify.Report{ID: bad, Scope: verify.Scope{Name: bad, ID: bad}, Policy: verify.Policy{Name: bad}, VantagePoint: bad,
		Findings: []verify.Finding{f}, Drift: verify.Drift{BaselineID: bad, Changes: []verify.Change{{Kind: "tls-certificate", Target: bad, Before: bad, After: bad}}},
		Verdicts: []verify.Verdict{{Rule: bad, Verdict: "fail"}}, Operators: []verify.Operator{{Name: bad}}, Evidence: []verify.Evidence{{Name: bad}}}
	tests := []struct {
		page string
		data any
	}{
		{"findings", findingsData{Rows: rows, Unreadable: []string{bad}, Policies: []string{bad}, Filter: findingsFilter{Scan: bad}, Counts: map[string]int{bad: 1}}},
		{"report", reportData{Stored: report.Stored{ID: bad, ScanID: bad, EvidenceKey: bad}, Report: rep, KeyID: bad, Command: bad, ScanURL: "/console/scans/x"}},
		{"policies", policiesData{CanEdit: true, Editor: policyEditor{Source: bad, Checked: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.page, func(t *testing.T) {
			var buf bytes.Buffer
			if err := pages[tt.page].ExecuteTemplate(&buf, "layout.html", view{Title: bad, Data: tt.data}); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			if strings.Contains(out, "<script>window") || strings.Contains(out, "<img src=x") {
				t.Fatalf("markup reached the page:\n%s", out)
			}
			if !strings.Contains(out, "&lt;script&gt;window.pwned=1&lt;/script&gt;") {
				t.Fatalf("the text is not shown (escaped):\n%s", out)
			}
		})
	}
}
