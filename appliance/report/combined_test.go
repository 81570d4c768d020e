package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"firewalliq/appliance/report/verify"
)

// buildCombined signs a combined report of two scans: the fixture's scan
// from sensor sn_corp (vantage corp-lan) and the same evidence judged as
// a scan from the appliance itself under a policy for vantage point
// "internet" (the parts only need different scans; each carries its own
// proofs).
func buildCombined(t *testing.T) (built, []byte) {
	t.Helper()
	b := buildReport(t)
	a := b.in
	l := b.in
	l.Scan.ID, l.Scan.Vantage, l.Scan.VantageLabel = "scan-2", "local", "local"
	l.Policy.VantagePoint = "internet"
	c, err := Combine("rpt_combined", "t_acme", t0.Add(2*60*60*1e9), a.Appliance, []Input{a, l})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := verify.SignCombined(c, reportKey)
	if err != nil {
		t.Fatal(err)
	}
	return b, signed
}

// TestCombinedReport: a report combining two scans from two vantage
// points verifies offline (both parts' proofs and evidence), names each
// scan's vantage, totals the parts, maps the controls over both parts'
// rules, and renders both parts in HTML and PDF; the golden file holds
// its JSON.
func TestCombinedReport(t *testing.T) {
	b, signed := buildCombined(t)
	golden(t, "combined.json", signed)
	res, err := verify.Verify(signed, opts(b.evidenceDir))
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	c := res.Combined
	if res.Kind != verify.KindCombinedReport || c == nil || len(c.Parts) != 2 {
		t.Fatalf("kind %s, combined %+v", res.Kind, c)
	}
	if res.Proofs != 4 || res.EvidenceFiles != 4 || !res.Anchored {
		t.Errorf("verified %d proofs, %d files, anchored %v", res.Proofs, res.EvidenceFiles, res.Anchored)
	}
	if c.Parts[0].Scan.VantageLabel != "corp-lan" || c.Parts[1].Scan.Vantage != "local" || c.Parts[1].VantagePoint != "internet" {
		t.Errorf("parts' vantages %+v %+v", c.Parts[0].Scan, c.Parts[1].Scan)
	}
	if c.Summary.Findings["exposure"] != 2 || c.Summary.Results != 2*c.Parts[0].Summary.Results {
		t.Errorf("summary %+v", c.Summary)
	}
	for _, ctl := range c.Compliance {
		if ctl.Control == "11.4.5" && (ctl.Status != StatusNotSatisfied || !strings.Contains(strings.Join(ctl.Rules, " "), "internet/db-closed")) {
			t.Errorf("11.4.5 over both parts: %+v", ctl)
		}
	}
	rd, err := NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	var html, pdf bytes.Buffer
	if err := rd.HTML(&html, signed); err != nil {
		t.Fatal(err)
	}
	if err := rd.PDF(&pdf, signed); err != nil {
		t.Fatal(err)
	}
	wants := []string{"Scan 1 of 2: scan-1 from sensor sn_corp (corp-lan)", "Scan 2 of 2: scan-2 from the appliance itself (local), policy vantage point internet",
		"Compliance mapping over all scans", "internet/db-closed", res.KeyID}
	for _, w := range wants {
		if !strings.Contains(html.String(), w) {
			t.Errorf("HTML lacks %q", w)
		}
	}
	if _, err := exec.LookPath("pdftotext"); err != nil {
		t.Skip("pdftotext not installed (apt-get install poppler-utils): PDF text not checked")
	}
	path := filepath.Join(t.TempDir(), "combined.pdf")
	if err := os.WriteFile(path, pdf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	text, err := exec.Command("pdftotext", "-enc", "UTF-8", path, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	flat := strings.Join(strings.Fields(string(text)), " ")
	for _, w := range wants {
		if !strings.Contains(flat, w) {
			t.Errorf("PDF text lacks %q", w)
		}
	}
}

// part returns part i of a generic combined report.
func part(r map[string]any, i int) map[string]any { return r["parts"].([]any)[i].(map[string]any) }

// TestVerifyCombinedTamper is the combined report's tamper table: each
// top-level field without a new signature; with one (a stolen report key),
// the totals, a part's identity, a part's proof, checkpoint or evidence,
// and the parts list itself.
func TestVerifyCombinedTamper(t *testing.T) {
	b, signed := buildCombined(t)
	var generic map[string]any
	_ = json.Unmarshal(signed, &generic)
	for field := range generic["report"].(map[string]any) {
		t.Run("field "+field, func(t *testing.T) {
			out := edit(t, signed, false, func(r map[string]any) { r[field] = "x" })
			if _, err := verify.Verify(out, opts("")); !errors.Is(err, verify.ErrSignature) && !errors.Is(err, verify.ErrFormat) {
				t.Fatalf("edited %s: %v, want a signature failure", field, err)
			}
		})
	}
	tests := []struct {
		name  string
		edit  func(r map[string]any)
		evDir func(dir string)
		want  error
	}{
		{"summary results", func(r map[string]any) { r["summary"].(map[string]any)["results"] = float64(1) }, nil, verify.ErrFormat},
		{"summary findings", func(r map[string]any) { r["summary"].(map[string]any)["findings"] = map[string]any{} }, nil, verify.ErrFormat},
		{"part tenant", func(r map[string]any) { part(r, 1)["tenant"] = "t_other" }, nil, verify.ErrFormat},
		{"part id", func(r map[string]any) { part(r, 0)["id"] = "rpt_other" }, nil, verify.ErrFormat},
		{"part scan given twice", func(r map[string]any) {
			part(r, 1)["scan"].(map[string]any)["id"] = part(r, 0)["scan"].(map[string]any)["id"]
		}, nil, verify.ErrFormat},
		{"part format", func(r map[string]any) { part(r, 1)["format"] = "firewalliq.report/v0" }, nil, verify.ErrFormat},
		{"no parts", func(r map[string]any) { r["parts"] = []any{} }, nil, verify.ErrFormat},
		{"part 2 evidence sha256", func(r map[string]any) { evidence(part(r, 1), 0)["sha256"] = strings.Repeat("0", 64) }, nil, verify.ErrProof},
		{"part 2 checkpoint", func(r map[string]any) { part(r, 1)["checkpoint"] = b.older }, nil, verify.ErrCheckpoint},
		{"part 1 proof entry seq", func(r map[string]any) { evidence(part(r, 0), 1)["audit_seq"] = float64(2) }, nil, verify.ErrProof},
		{"evidence file changed", nil, func(dir string) {
			p := filepath.Join(dir, "scans/scan-1/results.jsonl")
			bb, _ := os.ReadFile(p)
			bb[10] ^= 1
			_ = os.WriteFile(p, bb, 0o644)
		}, verify.ErrEvidence},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := signed
			if tt.edit != nil {
				out = edit(t, signed, true, tt.edit)
			}
			dir := t.TempDir()
			if err := os.CopyFS(dir, os.DirFS(b.evidenceDir)); err != nil {
				t.Fatal(err)
			}
			if tt.evDir != nil {
				tt.evDir(dir)
			}
			_, err := verify.Verify(out, opts(dir))
			if !errors.Is(err, tt.want) {
				t.Fatalf("%v, want %v", err, tt.want)
			}
			t.Logf("refused: %v", err)
		})
	}
	t.Run("every byte", func(t *testing.T) {
		for i := 0; i < len(signed); i += 37 {
			out := bytes.Clone(signed)
			out[i] ^= 0x01
			if _, err := verify.Verify(out, opts("")); err == nil {
				t.Fatalf("byte %d changed (%q), still verifies", i, signed[i])
			}
		}
	})
}
