package review_test

import (
	"errors"
	"path/filepath"
	"testing"

	"firewalliq/appliance"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/internal/apptest"
	"firewalliq/appliance/report/review"
	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// TestSignStoresEvidence: with a vault, the signed review is spooled as
// evidence in the signing transaction; a refused signing spools nothing.
func TestSignStoresEvidence(t *testing.T) {
	dir := t.TempDir()
	f := apptest.New(t, func(c *appliance.Config) {
		c.Production = false
		c.Vault.Backend = "local"
		c.Vault.LocalDir = filepath.Join(dir, "evidence")
	})
	admin := f.Users[store.RoleAdmin]
	rv := f.App.Reviews
	r, err := rv.Start(f.Ctx, admin.P, "")
	if err != nil {
		t.Fatal(err)
	}
	var ds []review.Decision
	for _, l := range r.Document.Lines {
		ds = append(ds, review.Decision{Item: l.Item, Decision: "keep"})
	}
	if _, err := rv.Decide(f.Ctx, admin.P, "", r.ID, ds); err != nil {
		t.Fatal(err)
	}
	head := f.Head()
	if _, err := rv.Sign(f.Ctx, admin.P, "", r.ID, "000000"); !errors.Is(err, auth.ErrInvalidCode) {
		t.Fatalf("wrong code: %v", err)
	}
	if n := len(f.Entries(head, audit.ActEvidenceSpooled)); n != 0 {
		t.Fatalf("a refused signing spooled %d objects", n)
	}
	sg, err := rv.Sign(f.Ctx, admin.P, "", r.ID, f.Code(admin))
	if err != nil {
		t.Fatal(err)
	}
	want := "tenants/" + f.Tenant + "/scans/" + review.EvidenceScan + "/review-" + r.ID + ".json"
	if sg.EvidenceKey != want {
		t.Fatalf("evidence key %q, want %q", sg.EvidenceKey, want)
	}
	sp := f.Entries(head, audit.ActEvidenceSpooled)
	signs := f.Entries(head, audit.ActReviewSign)
	if len(sp) != 1 || len(signs) != 1 || apptest.Details(t, sp[0])["sha256"] != sg.SHA256 || signs[0].Seq <= sp[0].Seq {
		t.Fatalf("evidence.spool %v, review.sign %v", sp, signs)
	}
	got, err := rv.Show(f.Ctx, admin.P, "", r.ID)
	if err != nil || got.EvidenceKey != want || got.SHA256 != sg.SHA256 {
		t.Fatalf("show %+v %v", got, err)
	}
}

// TestApplianceReviewStoredAsEvidence: the appliance-admin review, which
// belongs to no tenant, is spooled as evidence too, under
// appliance/reviews/review-<id>.json, in the signing transaction.
func TestApplianceReviewStoredAsEvidence(t *testing.T) {
	dir := t.TempDir()
	f := apptest.New(t, func(c *appliance.Config) {
		c.Production = false
		c.Vault.Backend = "local"
		c.Vault.LocalDir = filepath.Join(dir, "evidence")
	})
	aa := f.Users["appliance_admin"]
	rv := f.App.Reviews
	r, err := rv.Start(f.Ctx, aa.P, "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Tenant != "" {
		t.Fatalf("not the appliance-admin review: tenant %q", r.Tenant)
	}
	var ds []review.Decision
	for _, l := range r.Document.Lines {
		ds = append(ds, review.Decision{Item: l.Item, Decision: "keep"})
	}
	if _, err := rv.Decide(f.Ctx, aa.P, "", r.ID, ds); err != nil {
		t.Fatal(err)
	}
	head := f.Head()
	sg, err := rv.Sign(f.Ctx, aa.P, "", r.ID, f.Code(aa))
	if err != nil {
		t.Fatal(err)
	}
	want := "appliance/reviews/review-" + r.ID + ".json"
	if sg.EvidenceKey != want {
		t.Fatalf("evidence key %q, want %q", sg.EvidenceKey, want)
	}
	sp := f.Entries(head, audit.ActEvidenceSpooled)
	signs := f.Entries(head, audit.ActReviewSign)
	if len(sp) != 1 || len(signs) != 1 || sp[0].Object != want || sp[0].Tenant != "" || apptest.Details(t, sp[0])["sha256"] != sg.SHA256 || signs[0].Seq <= sp[0].Seq {
		t.Fatalf("evidence.spool %v, review.sign %v", sp, signs)
	}
}
