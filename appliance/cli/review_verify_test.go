package cli

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"firewalliq/appliance/report/verify"
	"firewalliq/probe/keys"
)

// TestReportVerifyReview: 'report verify' checks a signed access review
// with --pub alone, and fails with exit 1 on a changed one; a compliance
// report without --audit-pub is a usage error.
func TestReportVerifyReview(t *testing.T) {
	dir := t.TempDir()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	r := verify.AccessReview{
		Format: verify.FormatReviewV1, ID: "rev_cli", Tenant: "t_1", TenantName: "alpha",
		StartedAt: "2026-11-27T14:00:05Z", SignedAt: "2026-11-27T15:00:05Z",
		StartedBy: verify.Operator{ID: "u_a", Name: "admin", Role: "admin"}, Reviewer: verify.Operator{ID: "u_a", Name: "admin", Role: "admin"},
		Users: []verify.ReviewUser{{ID: "u_o", Name: "op", Role: "operator", Changes: []string{}}}, Tokens: []verify.ReviewToken{},
		Tickets: []verify.ReviewTicket{}, Flags: []verify.ReviewFlag{}, ScopeSigners: []verify.ReviewKey{}, NotTracked: []string{},
		Lines: []verify.ReviewLine{{Item: "user:u_o", Decision: verify.DecisionRevoke}},
	}
	r.Summary = verify.Summarize(r)
	file, err := verify.SignReview(r, priv)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pubPEM, err := keys.MarshalPublic(priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	rpub := write("report.pub", pubPEM)
	good := write("review.json", file)
	bad := write("bad.json", bytes.Replace(file, []byte(`"decision":"revoke"`), []byte(`"decision":"keep"`), 1))
	golden, err := os.ReadFile("../report/testdata/report.json")
	if err != nil {
		t.Fatal(err)
	}
	report := write("report.json", golden)
	tests := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"review verifies", []string{"report", "verify", good, "--pub", rpub}, 0, "access review rev_cli verified"},
		{"review summary", []string{"report", "verify", good, "--pub", rpub}, 0, "keep 0, revoke 1"},
		{"changed review", []string{"report", "verify", bad, "--pub", rpub}, 1, "report signature does not verify"},
		{"compliance report needs the audit key", []string{"report", "verify", report, "--pub", rpub}, 2, "--audit-pub are required for a compliance report"},
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
