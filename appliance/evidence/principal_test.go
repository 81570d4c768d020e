package evidence_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"firewalliq/appliance"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/internal/apptest"
	"firewalliq/audit"
)

// TestListByRole: evidence objects are listed for the roles that may read
// them, in their own tenant only; reading writes nothing but refusals.
func TestListByRole(t *testing.T) {
	dir := t.TempDir()
	f := apptest.New(t, func(c *appliance.Config) {
		c.Production = false
		c.Vault.Backend = "local"
		c.Vault.LocalDir = filepath.Join(dir, "evidence")
	})
	if _, err := f.App.Evidence.Add(f.Ctx, f.Tenant, "scan-1", "results.jsonl", strings.NewReader("{}\n")); err != nil {
		t.Fatal(err)
	}
	if err := f.App.Evidence.Vault().Flush(f.Ctx); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		role string
		want error
		n    int
	}{
		{role: "admin", n: 1}, {role: "security_lead", n: 1}, {role: "auditor", n: 1},
		{role: "other_admin", n: 0},
		{role: "operator", want: auth.ErrForbidden}, {role: "approver", want: auth.ErrForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.role, func(t *testing.T) {
			mark := f.Head()
			objs, err := f.App.Evidence.List(f.Ctx, f.Users[tt.role].P, "", "")
			if !errors.Is(err, tt.want) || len(objs) != tt.n {
				t.Fatalf("List: %d %v, want %d %v", len(objs), err, tt.n, tt.want)
			}
			denied := len(f.Entries(mark, audit.ActAccessDenied))
			if (tt.want != nil) != (denied == 1) || len(f.Entries(mark, "")) != denied {
				t.Fatalf("List wrote %d entries (%d denials)", len(f.Entries(mark, "")), denied)
			}
		})
	}
	if _, err := f.App.Evidence.List(f.Ctx, f.Users["admin"].P, f.Other, ""); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("cross-tenant List: %v", err)
	}
}
