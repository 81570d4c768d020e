package ui

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"firewalliq/appliance"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/store"
	"firewalliq/audit"
	"firewalliq/probe/keys"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// TestSIEMDestinations: adding and removing a destination needs a step-up
// (refused without one), is audited, and the lists show it without
// secrets.
func TestSIEMDestinations(t *testing.T) {
	f := newFixture(t)
	add := request{method: "POST", path: "/api/v1/siem/destinations", as: "sys",
		body: `{"name":"soc","kind":"webhook","address":"https://127.0.0.1:9/hook","hmac_key":"a shared secret of some length"}`}
	rec, got := f.sensitive(add)
	if rec.Code != 201 || strings.Contains(string(rec.body), "shared secret") {
		t.Fatalf("add: %d %s", rec.Code, rec.body)
	}
	if want := []string{"auth.stepup.failed", "auth.stepup", "siem.destination.create"}; !slices.Equal(got, want) {
		t.Fatalf("audit %v, want %v", got, want)
	}
	for _, path := range []string{"/api/v1/siem/destinations", "/api/v1/siem/status"} {
		rec := f.do(request{method: "GET", path: path, as: "sys"})
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"name":"soc"`) || strings.Contains(rec.Body.String(), "shared secret") {
			t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
		}
	}
	// A tenant admin does not see the appliance-wide destination, and
	// cannot remove it.
	if rec := f.do(request{method: "DELETE", path: "/api/v1/siem/destinations/soc", as: "a-admin"}); rec.Code != 404 {
		t.Fatalf("tenant admin removes appliance-wide: %d %s", rec.Code, rec.Body)
	}
	// siem rm without a step-up is refused; with one it goes.
	rec, got = f.sensitive(request{method: "DELETE", path: "/api/v1/siem/destinations/soc", as: "sys"})
	if rec.Code != 200 {
		t.Fatalf("remove: %d %s", rec.Code, rec.body)
	}
	if want := []string{"auth.stepup.failed", "auth.stepup", "siem.destination.delete"}; !slices.Equal(got, want) {
		t.Fatalf("audit %v, want %v", got, want)
	}
	if rec := f.do(request{method: "POST", path: "/api/v1/siem/destinations", as: "sys", body: `{"name":"bad","kind":"carrier-pigeon","address":"x"}`}); rec.Code != 400 {
		t.Fatalf("invalid destination: %d %s", rec.Code, rec.Body)
	}
}

// TestAuditRoutes: entries page by seq, tenant users see their tenant's
// only, the checkpoint and alarm state read, and acknowledging without an
// alarm is 409 no_alarm.
func TestAuditRoutes(t *testing.T) {
	f := newFixture(t)
	var seqs []int64
	path := "/api/v1/audit/entries?limit=4"
	for i := 0; i < 100; i++ {
		rec := f.do(request{method: "GET", path: path, as: "sys"})
		var l list[entryOut]
		decode(t, rec, &l)
		if rec.Code != 200 || len(l.Items) > 4 {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		for _, e := range l.Items {
			seqs = append(seqs, e.Seq)
		}
		if l.Next == "" {
			break
		}
		path = "/api/v1/audit/entries?limit=4&after=" + l.Next
	}
	if int64(len(seqs)) < f.head()-2 || !slices.IsSorted(seqs) || seqs[0] != 1 {
		t.Fatalf("paged %d of %d entries: %v", len(seqs), f.head(), seqs)
	}
	rec := f.do(request{method: "GET", path: "/api/v1/audit/entries?limit=500", as: "b-admin"})
	var l list[entryOut]
	decode(t, rec, &l)
	for _, e := range l.Items {
		if e.Tenant != f.b {
			t.Fatalf("tenant b sees entry %d of tenant %q", e.Seq, e.Tenant)
		}
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/audit/checkpoint", as: "a-aud"}); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"note"`) {
		t.Fatalf("checkpoint: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/audit/alarm", as: "a-aud"}); rec.Code != 200 || rec.Body.String() != `{"raised":false}`+"\n" {
		t.Fatalf("alarm: %d %q", rec.Code, rec.Body)
	}
	before := f.head()
	rec = f.do(request{method: "POST", path: "/api/v1/audit/alarm/ack", as: "sys", body: `{"comment":"checked"}`})
	if rec.Code != 409 || !strings.Contains(rec.Body.String(), `"no_alarm"`) {
		t.Fatalf("ack without alarm: %d %s", rec.Code, rec.Body)
	}
	if got := f.since(before); len(got) != 0 {
		t.Fatalf("audit %v", actions(got))
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/alerts", as: "a-admin"}); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"items":[]`) {
		t.Fatalf("alerts: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "POST", path: "/api/v1/alerts/abc/ack", as: "a-admin", body: `{}`}); rec.Code != 400 {
		t.Fatalf("bad alert id: %d %s", rec.Code, rec.Body)
	}
}

// TestScopeRoutes: a security lead registers a scope signed by a trusted
// key (audited); an untrusted signature is 422; the list and the document
// read back.
func TestScopeRoutes(t *testing.T) {
	f := newFixture(t)
	pub, priv, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	// The lead registers the key with step-up (the service; its route
	// is not built yet).
	if _, err := f.app.ScopeKeys.Add(f.ctx, f.principal("a-lead"), "", "lead key", pemPublic(t, pub), f.code("a-lead")); err != nil {
		t.Fatal(err)
	}
	now := f.clk.now()
	sign := func(id string, pub, priv []byte) string {
		doc := scope.Document{ID: id, Tenant: "default", Name: "dmz " + id, Environment: scope.EnvNonProduction,
			CIDRs: []string{"127.0.0.0/24"}, Exclude: []string{}, Ports: "tcp:22,443", Probes: []safety.Kind{safety.KindTCPConnect},
			NotBefore: now.Add(-time.Hour).Truncate(time.Second), NotAfter: now.Add(24 * time.Hour).Truncate(time.Second),
			MaxPPS: 10, SignerKeyID: keys.ID(pub)}
		b, err := scope.Sign(doc, priv)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	before := f.head()
	rec := f.do(request{method: "POST", path: "/api/v1/scopes", as: "a-lead", body: sign("dmz-1", pub, priv)})
	if rec.Code != 201 {
		t.Fatalf("register: %d %s", rec.Code, rec.Body)
	}
	if got := actions(f.since(before)); !slices.Equal(got, []string{"scope.register"}) {
		t.Fatalf("audit %v", got)
	}
	var sc scopeOut
	decode(t, rec, &sc)
	if rec := f.do(request{method: "GET", path: "/api/v1/scopes/" + sc.ID, as: "a-op"}); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"document"`) {
		t.Fatalf("get: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/scopes", as: "a-aud"}); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"dmz-1"`) || strings.Contains(rec.Body.String(), `"document"`) {
		t.Fatalf("list: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/scopes/" + sc.ID, as: "b-admin"}); rec.Code != 404 {
		t.Fatalf("other tenant: %d %s", rec.Code, rec.Body)
	}
	strangerPub, stranger, _ := keys.Generate(nil)
	if rec := f.do(request{method: "POST", path: "/api/v1/scopes", as: "a-lead", body: sign("dmz-2", strangerPub, stranger)}); rec.Code != 422 {
		t.Fatalf("untrusted: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "POST", path: "/api/v1/scopes", as: "a-lead", body: sign("dmz-1", pub, priv)}); rec.Code != 409 {
		t.Fatalf("again: %d %s", rec.Code, rec.Body)
	}
}

// TestEvidenceRoutes: an export request opens a dual approval bound to the
// exact export; after two approvals, the URL call for an object the vault
// never recorded answers 404 (before any step-up is spent), and for
// another object than the approved one 409 (which voids the approval).
func TestEvidenceRoutes(t *testing.T) {
	f := newFixture(t)
	if rec := f.do(request{method: "GET", path: "/api/v1/evidence", as: "a-aud"}); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"items":[]`) {
		t.Fatalf("list: %d %s", rec.Code, rec.Body)
	}
	body := `{"key":"tenants/x/scan/results.jsonl","version_id":"v1"}`
	rec := f.do(request{method: "POST", path: "/api/v1/evidence/exports", as: "a-aud", body: body})
	if rec.Code != 201 {
		t.Fatalf("request: %d %s", rec.Code, rec.Body)
	}
	var ap approvalOut
	decode(t, rec, &ap)
	if ap.Kind != "evidence.export" || ap.Status != "pending" {
		t.Fatalf("approval %+v", ap)
	}
	for _, who := range []string{"a-appr", "a-appr2"} {
		if rec, _ := f.sensitive(request{method: "POST", path: "/api/v1/approvals/" + ap.ID + "/approve", as: who}); rec.Code != 200 {
			t.Fatalf("approve: %d %s", rec.Code, rec.body)
		}
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/evidence/exports/" + ap.ID, as: "a-aud"}); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"approved"`) {
		t.Fatalf("get: %d %s", rec.Code, rec.Body)
	}
	rec = f.do(request{method: "POST", path: "/api/v1/evidence/exports/" + ap.ID + "/url", as: "a-aud", body: body})
	if rec.Code != 404 {
		t.Fatalf("url for an unrecorded object: %d %s", rec.Code, rec.Body)
	}
	// A different object under the same approval is refused (and voids it).
	rec = f.do(request{method: "POST", path: "/api/v1/evidence/exports/" + ap.ID + "/url", as: "a-aud", body: `{"key":"other","version_id":"v1"}`})
	if rec.Code != 409 {
		t.Fatalf("other object: %d %s", rec.Code, rec.Body)
	}
}

// tamper opens the appliance once (a failed login appends an entry after
// the verified checkpoint), closes it, and rewrites that entry in the file
// as an attacker with the disk would: the next start raises the alarm.
func tamper(t *testing.T) func(appliance.Config, func() time.Time) {
	return func(cfg appliance.Config, now func() time.Time) {
		ctx := context.Background()
		app, err := appliance.Open(ctx, cfg, now)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = app.Auth.Login(ctx, "root", "not the password at all", auth.Client{IP: "192.0.2.9"}, "")
		app.Close()
		db, err := sql.Open("sqlite", store.DSN(filepath.Join(cfg.DataDir, appliance.DatabaseFile), false))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var head int64
		if err := db.QueryRowContext(ctx, `SELECT MAX(seq) FROM audit_entries`).Scan(&head); err != nil {
			t.Fatal(err)
		}
		e, err := audit.ReadEntry(ctx, db, head)
		if err != nil {
			t.Fatal(err)
		}
		e.ActorIP = "203.0.113.66"
		if _, err := db.ExecContext(ctx, `DROP TRIGGER audit_entries_no_update`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `UPDATE audit_entries SET entry = ? WHERE seq = ?`, audit.Canonical(e), head); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTamperAlarmOverAPI: with the alarm raised, evidence exports are 423
// tamper_alarm; the appliance admin acknowledges it through the step-up
// challenge, which is audited, and the alarm clears.
func TestTamperAlarmOverAPI(t *testing.T) {
	f := newFixtureWith(t, tamper(t))
	if rec := f.do(request{method: "GET", path: "/api/v1/audit/alarm", as: "a-aud"}); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"raised":true`) {
		t.Fatalf("alarm: %d %s", rec.Code, rec.Body)
	}
	rec := f.do(request{method: "POST", path: "/api/v1/evidence/exports/" + noSuchID + "/url", as: "a-aud", body: `{"key":"k","version_id":"v"}`})
	if rec.Code != 423 || !strings.Contains(rec.Body.String(), `"tamper_alarm"`) {
		t.Fatalf("export during alarm: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "POST", path: "/api/v1/audit/alarm/ack", as: "a-admin", body: `{"comment":"x"}`}); rec.Code != 403 {
		t.Fatalf("tenant admin acknowledges: %d %s", rec.Code, rec.Body)
	}
	ack, got := f.sensitive(request{method: "POST", path: "/api/v1/audit/alarm/ack", as: "sys", body: `{"comment":"entry edited on disk; investigated, disk image kept"}`})
	if ack.Code != 200 {
		t.Fatalf("ack: %d %s", ack.Code, ack.body)
	}
	if want := []string{"auth.stepup.failed", "auth.stepup", "audit.tamper.ack"}; !slices.Equal(got, want) {
		t.Fatalf("audit %v, want %v", got, want)
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/audit/alarm", as: "a-aud"}); !strings.Contains(rec.Body.String(), `"raised":false`) {
		t.Fatalf("after ack: %s", rec.Body)
	}
}

// pemPublic is pub in the PEM form keys are registered in.
func pemPublic(t *testing.T, pub ed25519.PublicKey) []byte {
	t.Helper()
	b, err := keys.MarshalPublic(pub)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
