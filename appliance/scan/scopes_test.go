package scan_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/internal/apptest"
	"firewalliq/appliance/scan"
	"firewalliq/audit"
	"firewalliq/probe/keys"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// signed returns a scope document for tenant, signed by priv.
func signed(t *testing.T, id, tenant, env string, now time.Time, pub ed25519.PublicKey, priv ed25519.PrivateKey) []byte {
	t.Helper()
	doc := scope.Document{ID: id, Tenant: tenant, Name: "dmz " + id, Environment: env,
		CIDRs: []string{"10.20.1.0/24"}, Exclude: []string{}, Ports: "tcp:22,443", Probes: []safety.Kind{safety.KindTCPConnect},
		NotBefore: now.Add(-time.Hour).Truncate(time.Second), NotAfter: now.Add(24 * time.Hour).Truncate(time.Second),
		MaxPPS: 10, SignerKeyID: keys.ID(pub)}
	b, err := scope.Sign(doc, priv)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// addKey registers pub as u's scope-signing key, with u's step-up.
func addKey(t *testing.T, f *apptest.Fixture, u apptest.User, pub ed25519.PublicKey) scan.SigningKey {
	t.Helper()
	b, err := keys.MarshalPublic(pub)
	if err != nil {
		t.Fatal(err)
	}
	k, err := f.App.ScopeKeys.Add(f.Ctx, u.P, "", "key of "+u.P.Name, b, f.Code(u))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestRegister: roles, trust, tenant binding, duplicates, and the audit.
func TestRegister(t *testing.T) {
	f := apptest.New(t)
	pub, priv := newKey(t)
	addKey(t, f, f.Users["security_lead"], pub)
	strangerPub, strangerPriv := newKey(t)
	now := f.Clock.Now()
	good := signed(t, "dmz-1", "alpha", scope.EnvNonProduction, now, pub, priv)
	tests := []struct {
		name, role string
		doc        []byte
		want       error
		audited    bool
	}{
		{name: "operator may not", role: "operator", doc: good, want: auth.ErrForbidden},
		{name: "admin may not", role: "admin", doc: good, want: auth.ErrForbidden},
		{name: "auditor may not", role: "auditor", doc: good, want: auth.ErrForbidden},
		{name: "untrusted key", role: "security_lead", doc: signed(t, "x", "alpha", scope.EnvNonProduction, now, strangerPub, strangerPriv), want: scan.ErrUntrusted},
		{name: "other tenant's name", role: "security_lead", doc: signed(t, "y", "bravo", scope.EnvNonProduction, now, pub, priv), want: scan.ErrWrongTenant},
		{name: "not a document", role: "security_lead", doc: []byte(`{"scope":1}`), want: scope.ErrInvalid},
		{name: "empty", role: "security_lead", doc: nil, want: scope.ErrInvalid},
		{name: "security lead", role: "security_lead", doc: good, audited: true},
		{name: "again", role: "security_lead", doc: good, want: scan.ErrExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mark := f.Head()
			sc, err := f.App.Scopes.Register(f.Ctx, f.Users[tt.role].P, "", tt.doc)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Register: %v, want %v", err, tt.want)
			}
			es := f.Entries(mark, audit.ActScopeRegister)
			if len(es) != map[bool]int{true: 1}[tt.audited] {
				t.Fatalf("%d scope.register entries", len(es))
			}
			if tt.audited {
				sum := sha256.Sum256(tt.doc)
				d := apptest.Details(t, es[0])
				if d["sha256"] != hex.EncodeToString(sum[:]) || sc.SHA256 != d["sha256"] || es[0].Tenant != f.Tenant || sc.SignerKeyID != keys.ID(pub) {
					t.Fatalf("entry %v, scope %+v", d, sc)
				}
			}
		})
	}
	// Reading: everyone in the tenant; other tenants see nothing, and a
	// lookup of alpha's id from bravo is refused like a missing one.
	for _, role := range []string{"operator", "auditor", "approver", "admin"} {
		if scs, err := f.App.Scopes.List(f.Ctx, f.Users[role].P, ""); err != nil || len(scs) != 1 {
			t.Fatalf("%s List: %d %v", role, len(scs), err)
		}
	}
	if scs, err := f.App.Scopes.List(f.Ctx, f.Users["other_admin"].P, ""); err != nil || len(scs) != 0 {
		t.Fatalf("other tenant List: %d %v", len(scs), err)
	}
	if sc, err := f.App.Scopes.Get(f.Ctx, f.Users["operator"].P, "", "dmz-1"); err != nil || string(sc.Document) != string(good) {
		t.Fatalf("Get: %v", err)
	}
	mark := f.Head()
	if _, err := f.App.Scopes.Get(f.Ctx, f.Users["other_admin"].P, "", "dmz-1"); !errors.Is(err, scan.ErrNotFound) {
		t.Fatalf("cross-tenant Get: %v", err)
	}
	if es := f.Entries(mark, audit.ActAccessDenied); len(es) != 1 {
		t.Fatalf("cross-tenant Get audited %d times", len(es))
	}
}
