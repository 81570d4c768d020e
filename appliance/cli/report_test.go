package cli

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"firewalliq/probe/keys"
)

// TestReportVerify runs 'report verify' on the signed golden report of
// package report (keys from the same fixed seeds, evidence with the same
// bytes): it verifies, and fails with exit 1 and the reason when the
// report, a key or an evidence file is wrong.
func TestReportVerify(t *testing.T) {
	dir := t.TempDir()
	golden, err := os.ReadFile("../report/testdata/report.json")
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pubPEM := func(seed byte) []byte {
		b, err := keys.MarshalPublic(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32)).Public().(ed25519.PublicKey))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	report := write("report.json", golden)
	combinedGolden, err := os.ReadFile("../report/testdata/combined.json")
	if err != nil {
		t.Fatal(err)
	}
	combined := write("combined.json", combinedGolden)
	rpub, apub, other := write("report.pub", pubPEM(1)), write("audit.pub", pubPEM(2)), write("other.pub", pubPEM(3))
	// The evidence bytes of the report package's fixture.
	write("ev/scans/scan-1/results.jsonl", []byte(`{"target":"10.30.0.5","proto":"tcp","port":3306,"state":"open"}`+"\n"))
	write("ev/scans/scan-1/probes.pcapng", bytes.Repeat([]byte{0x0a, 0x0d, 0x0d, 0x0a}, 64))
	write("ev-bad/scans/scan-1/results.jsonl", []byte("changed\n"))
	write("ev-bad/scans/scan-1/probes.pcapng", bytes.Repeat([]byte{0x0a, 0x0d, 0x0d, 0x0a}, 64))
	tampered := write("tampered.json", bytes.Replace(golden, []byte(`"severity":"critical"`), []byte(`"severity":"low"`), 1))

	tests := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"verifies with evidence", []string{"report", "verify", report, "--pub", rpub, "--audit-pub", apub, "--evidence", filepath.Join(dir, "ev")}, 0,
			"report rpt_fixture verified: signed by report key 34750f98bd59fcfc"},
		{"verifies without evidence", []string{"report", "verify", report, "--pub", rpub, "--audit-pub", apub}, 0, "files not checked"},
		{"tampered report", []string{"report", "verify", tampered, "--pub", rpub, "--audit-pub", apub}, 1, "report signature does not verify"},
		{"wrong report key", []string{"report", "verify", report, "--pub", other, "--audit-pub", apub}, 1, "signed by key 34750f98bd59fcfc, the given report key is"},
		{"wrong audit key", []string{"report", "verify", report, "--pub", rpub, "--audit-pub", other}, 1, "report audit checkpoint does not verify"},
		{"changed evidence file", []string{"report", "verify", report, "--pub", rpub, "--audit-pub", apub, "--evidence", filepath.Join(dir, "ev-bad")}, 1, "evidence file does not match the report"},
		{"missing keys", []string{"report", "verify", report}, 2, "--pub and --audit-pub are required"},
		{"names the scan and its vantage", []string{"report", "verify", report, "--pub", rpub, "--audit-pub", apub}, 0, "scan scan-1 from sensor sn_corp (corp-lan)"},
		{"combined report", []string{"report", "verify", combined, "--pub", rpub, "--audit-pub", apub, "--evidence", filepath.Join(dir, "ev")}, 0,
			"part 2: scan scan-2 from the appliance itself (local); policy dmz-from-corp v3, vantage point internet"},
		{"combined report counts every part", []string{"report", "verify", combined, "--pub", rpub, "--audit-pub", apub, "--evidence", filepath.Join(dir, "ev")}, 0,
			"4 inclusion proofs verified, 4 files hashed and matched"},
		{"combined report, changed evidence", []string{"report", "verify", combined, "--pub", rpub, "--audit-pub", apub, "--evidence", filepath.Join(dir, "ev-bad")}, 1,
			"part 1 (scan scan-1, vantage corp-lan): evidence file does not match the report"},
		{"create: policies do not pair with scans", []string{"report", "create", "--scan", "a", "--scan", "b", "--policy", "p", "--policy", "q", "--policy", "r"}, 2,
			"give one --policy, or one per --scan"},
		{"no report", []string{"report", "verify", "--pub", rpub, "--audit-pub", apub}, 2, "accepts 1 arg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, tt.args...)
			if code != tt.code || !strings.Contains(out+errOut, tt.out) {
				t.Fatalf("exit %d, want %d; output:\n%s%s\nwant %q", code, tt.code, out, errOut, tt.out)
			}
		})
	}
}
