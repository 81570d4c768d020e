package scan_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"firewalliq/appliance"
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

// TestRegister: roles, trust, tenant binding, duplicates, and the audit.
func TestRegister(t *testing.T) {
	f := apptest.New(t)
	pub, priv := newKey(t)
	if err := scan.WriteTrusted(filepath.Join(f.Cfg.DataDir, appliance.ScopeSignersDir), pub); err != nil {
		t.Fatal(err)
	}
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

// TestRuns: scan start and completion entries, by who may scan, on
// non-production scopes only.
func TestRuns(t *testing.T) {
	f := apptest.New(t)
	pub, priv := newKey(t)
	if err := scan.WriteTrusted(filepath.Join(f.Cfg.DataDir, appliance.ScopeSignersDir), pub); err != nil {
		t.Fatal(err)
	}
	lead := f.Users["security_lead"]
	now := f.Clock.Now()
	for _, d := range []struct{ id, env string }{{"lab", scope.EnvNonProduction}, {"prod", scope.EnvProduction}} {
		if _, err := f.App.Scopes.Register(f.Ctx, lead.P, "", signed(t, d.id, f.Tenant, d.env, now, pub, priv)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, role, scope string
		want              error
	}{
		{name: "operator", role: "operator", scope: "lab"},
		{name: "security lead", role: "security_lead", scope: "lab"},
		{name: "auditor may not", role: "auditor", scope: "lab", want: auth.ErrForbidden},
		{name: "production needs approval", role: "operator", scope: "prod", want: scan.ErrNeedsApproval},
		{name: "unknown scope", role: "operator", scope: "nope", want: scan.ErrNotFound},
		{name: "other tenant", role: "other_admin", scope: "lab", want: auth.ErrForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mark := f.Head()
			run := scan.Run{ID: "scan-" + tt.role, ScopeID: tt.scope, Rate: 10}
			err := f.App.Runs.Start(f.Ctx, f.Users[tt.role].P, "", run)
			if err == nil {
				err = f.App.Runs.Complete(f.Ctx, f.Users[tt.role].P, "", run, 3, 0)
			}
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("run: %v, want %v", err, tt.want)
			}
			starts, completes := f.Entries(mark, audit.ActScanStart), f.Entries(mark, audit.ActScanComplete)
			if ok := tt.want == nil; (len(starts) == 1 && len(completes) == 1) != ok || (!ok && len(starts)+len(completes) != 0) {
				t.Fatalf("%d start, %d complete entries", len(starts), len(completes))
			}
		})
	}
}
