package report

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"firewalliq/appliance/report/verify"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./appliance/report -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run go test ./appliance/report -update and review the diff):\n%s", name, got)
	}
}

// TestReportGolden: the signed report JSON, its HTML and its PDF's text are
// exactly the golden files, the report verifies offline with its evidence,
// and it shows the deliberate mistake (tcp/3306 open) as an exposure.
func TestReportGolden(t *testing.T) {
	b := buildReport(t)
	golden(t, "report.json", b.signed)
	res, err := verify.Verify(b.signed, opts(b.evidenceDir))
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if res.Proofs != 2 || res.EvidenceFiles != 2 || !res.Anchored {
		t.Errorf("verified %+v", res)
	}
	r := res.Report
	if r.Summary.Findings["exposure"] != 1 || r.Summary.Findings["drift"] != 1 {
		t.Errorf("summary %+v", r.Summary)
	}
	status := map[string]string{}
	for _, c := range r.Compliance {
		status[c.Control] = c.Status
	}
	if status["11.4.5"] != StatusNotSatisfied || status["A.8.22"] != StatusNotSatisfied || status["CC6.6"] != StatusNotSatisfied {
		t.Errorf("compliance %v: the exposure must fail the segmentation controls", status)
	}

	rd, err := NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	var html bytes.Buffer
	if err := rd.HTML(&html, b.signed); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.html", html.Bytes())
	for _, want := range []string{res.KeyID, "firewalliq report verify report.json", "<svg", "tcp/3306 on 10.30.0.5 must be denied but is open"} {
		if !strings.Contains(html.String(), want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	if strings.Contains(strings.ToLower(html.String()), "<script") {
		t.Error("HTML has a script")
	}

	var pdf bytes.Buffer
	if err := rd.PDF(&pdf, b.signed); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(pdf.Bytes(), []byte("%PDF-")) {
		t.Fatal("not a PDF")
	}
	var pdf2 bytes.Buffer
	if err := rd.PDF(&pdf2, b.signed); err != nil || !bytes.Equal(pdf.Bytes(), pdf2.Bytes()) {
		t.Error("PDF rendering is not deterministic")
	}
	if _, err := exec.LookPath("pdftotext"); err != nil {
		t.Skip("pdftotext not installed (apt-get install poppler-utils): PDF text golden not checked")
	}
	path := filepath.Join(t.TempDir(), "report.pdf")
	if err := os.WriteFile(path, pdf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	text, err := exec.Command("pdftotext", "-layout", "-enc", "UTF-8", path, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	golden(t, "report.pdf.txt", text)
	for _, want := range []string{res.KeyID, "firewalliq report verify report.json", "must be denied but is open", "Rules by verdict"} {
		if !bytes.Contains(text, []byte(want)) {
			t.Errorf("PDF text lacks %q", want)
		}
	}
}
