// Package apptest builds a real appliance for the service packages' tests:
// a data directory made by appliance.Init, opened with an injected clock,
// two tenants, and one signed-in user per role (plus an appliance admin),
// each with a known TOTP secret. Everything is real (SQLite in
// t.TempDir(), the keyring, the identity service); only password hashing
// is cheap. Nothing outside tests imports it.
package apptest

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"firewalliq/appliance"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// Clock is the injected clock; tests move it.
type Clock struct {
	mu   sync.Mutex
	t    time.Time
	flow time.Time // real time Flow was called; zero while stopped
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.flow.IsZero() {
		return c.t.Add(time.Since(c.flow))
	}
	return c.t
}

// Flow makes the clock run on at real speed from its current time (Advance
// still jumps it): for tests that run real scans, whose pacing and reply
// timeouts need time to pass.
func (c *Clock) Flow() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flow.IsZero() {
		c.flow = time.Now()
	}
}

// Advance moves the clock on.
func (c *Clock) Advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// User is a signed-in test user.
type User struct {
	P      auth.Principal
	Secret string
}

// Fixture is an opened appliance with users.
type Fixture struct {
	T     *testing.T
	Ctx   context.Context
	App   *appliance.Appliance
	Cfg   appliance.Config
	Clock *Clock
	// Tenant is tenant "alpha"'s id, Other tenant "bravo"'s.
	Tenant, Other string
	// Users by role in Tenant ("admin", "security_lead", "approver",
	// "operator", "auditor"), "appliance_admin" (no tenant) and
	// "other_admin" (Other's admin).
	Users map[string]User
	// DB is a second connection to the database, for assertions.
	DB *sql.DB

	st *store.Store
}

// New builds the fixture. cfgMod may adjust the configuration first.
func New(t *testing.T, cfgMod ...func(*appliance.Config)) *Fixture {
	t.Helper()
	ctx := context.Background()
	// 5 s into a 30 s TOTP step, so codes of "now" are unambiguous.
	clk := &Clock{t: time.Date(2026, 11, 27, 14, 0, 5, 0, time.UTC)}
	cfg := appliance.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	for _, m := range cfgMod {
		m(&cfg)
	}
	res, err := appliance.Init(ctx, cfg, appliance.InitOptions{Admin: "root", Tenant: "alpha", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	app, err := appliance.Open(ctx, cfg, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	st, err := store.Open(ctx, filepath.Join(cfg.DataDir, appliance.DatabaseFile), store.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &Fixture{T: t, Ctx: ctx, App: app, Cfg: cfg, Clock: clk, Tenant: res.TenantID, Users: map[string]User{}, DB: st.DB(), st: st}
	var other store.Tenant
	if err := st.InTx(ctx, func(tx *sql.Tx) error { other, err = st.CreateTenant(ctx, tx, "bravo"); return err }); err != nil {
		t.Fatal(err)
	}
	f.Other = other.ID
	for _, r := range []string{store.RoleAdmin, store.RoleSecurityLead, store.RoleApprover, store.RoleOperator, store.RoleAuditor} {
		f.Users[r] = f.user(st, f.Tenant, r, r)
	}
	f.Users["appliance_admin"] = f.user(st, "", "appliance_admin", store.RoleAdmin)
	f.Users["other_admin"] = f.user(st, f.Other, "other_admin", store.RoleAdmin)
	return f
}

// AddUser creates and signs in another user of tenant with role (for tests
// that need users in the second tenant, or more approvers).
func (f *Fixture) AddUser(tenant, name, role string) User {
	f.T.Helper()
	return f.user(f.st, tenant, name, role)
}

// user creates and signs in a user with a known password and TOTP secret.
func (f *Fixture) user(st *store.Store, tenant, name, role string) User {
	f.T.Helper()
	pw := name + "-correct-horse-battery"
	hash, err := auth.HashPasswordWith(auth.ArgonParams{Time: 1, MemoryKiB: 64, Threads: 1}, pw)
	if err != nil {
		f.T.Fatal(err)
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "FirewallIQ Secure", AccountName: name})
	if err != nil {
		f.T.Fatal(err)
	}
	id := store.NewID("u")
	sealed, err := f.App.Keys.Seal([]byte(key.Secret()), []byte("totp:"+id))
	if err != nil {
		f.T.Fatal(err)
	}
	nu := store.User{ID: id, Name: name, Role: role, PasswordHash: hash, TOTPSealed: sealed, TOTPConfirmed: true}
	err = st.InTx(f.Ctx, func(tx *sql.Tx) error {
		if tenant == "" {
			_, err := st.CreateAdmin(f.Ctx, tx, nu)
			return err
		}
		ts, err := st.Tenant(tenant)
		if err != nil {
			return err
		}
		_, err = ts.CreateUser(f.Ctx, tx, nu)
		return err
	})
	if err != nil {
		f.T.Fatal(err)
	}
	u := User{Secret: key.Secret()}
	c := auth.Client{IP: "192.0.2.7", UserAgent: "apptest/1"}
	l, err := f.App.Auth.Login(f.Ctx, name, pw, c, "")
	if err != nil {
		f.T.Fatalf("login %s: %v", name, err)
	}
	l, err = f.App.Auth.VerifyTOTP(f.Ctx, l.Token, f.Code(u), c)
	if err != nil {
		f.T.Fatalf("totp %s: %v", name, err)
	}
	u.P, err = f.App.Auth.Authenticate(f.Ctx, auth.Request{SessionToken: l.Token, Method: "GET", Client: c})
	if err != nil {
		f.T.Fatalf("authenticate %s: %v", name, err)
	}
	return u
}

// Code moves the clock to the next TOTP step and returns u's code there,
// so every call yields an unused code.
func (f *Fixture) Code(u User) string {
	f.T.Helper()
	f.Clock.Advance(30 * time.Second)
	c, err := auth.TOTPCode(u.Secret, f.Clock.Now())
	if err != nil {
		f.T.Fatal(err)
	}
	return c
}

// Head returns the last audit seq.
func (f *Fixture) Head() int64 {
	f.T.Helper()
	var n sql.NullInt64
	if err := f.DB.QueryRowContext(f.Ctx, `SELECT MAX(seq) FROM audit_entries`).Scan(&n); err != nil {
		f.T.Fatal(err)
	}
	return n.Int64
}

// Entries returns the audit entries after seq with action ("" for all).
func (f *Fixture) Entries(after int64, action audit.Action) []audit.Entry {
	f.T.Helper()
	es, err := audit.ReadEntries(f.Ctx, f.DB, after+1, 1<<62)
	if err != nil {
		f.T.Fatal(err)
	}
	var out []audit.Entry
	for _, e := range es {
		if action == "" || e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

// Details decodes an entry's details.
func Details(t *testing.T, e audit.Entry) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.Details, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
