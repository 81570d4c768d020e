package auth

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"firewalliq/appliance/journal"
	"firewalliq/appliance/keyring"
	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// cheapArgon keeps tests fast where password strength is not under test;
// TestPassword and TestRealArgonLogin use the production parameters.
var cheapArgon = ArgonParams{Time: 1, MemoryKiB: 64, Threads: 1}

// clock is the injected clock; tests move it explicitly.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	t     *testing.T
	ctx   context.Context
	st    *store.Store
	svc   *Service
	clock *clock
	keys  *keyring.Keyring
	// tenants A and B
	a, b string
}

// testUser is a user with a known password and TOTP secret.
type testUser struct {
	store.User
	password string
	secret   string
}

func newFixture(t *testing.T, mod ...func(*Params)) *fixture {
	t.Helper()
	ctx := context.Background()
	// 14:00:05 UTC: 5 s into a 30 s TOTP step, so "now" and "now ± 1 step"
	// are unambiguous.
	clk := &clock{t: time.Date(2026, 11, 27, 14, 0, 5, 0, time.UTC)}
	dir := t.TempDir()
	if _, err := keyring.Create(dir, clk.now(), []string{"localhost"}); err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, filepath.Join(dir, "auth.db"), store.Options{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p := Params{Argon: cheapArgon}
	for _, m := range mod {
		m(&p)
	}
	jr, err := journal.New(st.DB(), audit.New(audit.Options{Now: clk.now}), nil)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := NewService(Deps{Store: st, Journal: jr, Keys: kr, Now: clk.now, Params: p})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ctx: ctx, st: st, svc: svc, clock: clk, keys: kr}
	err = st.InTx(ctx, func(tx *sql.Tx) error {
		a, err := st.CreateTenant(ctx, tx, "alpha")
		if err != nil {
			return err
		}
		b, err := st.CreateTenant(ctx, tx, "bravo")
		f.a, f.b = a.ID, b.ID
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// user creates a user in tenant ("" for an appliance admin) with role,
// a password and a confirmed TOTP secret.
func (f *fixture) user(tenant, name, role string) testUser {
	f.t.Helper()
	pw := name + "-correct-horse"
	hash, err := HashPasswordWith(cheapArgon, pw)
	if err != nil {
		f.t.Fatal(err)
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: totpIssuer, AccountName: name})
	if err != nil {
		f.t.Fatal(err)
	}
	id := store.NewID("u")
	sealed, err := f.keys.Seal([]byte(key.Secret()), totpAD(id))
	if err != nil {
		f.t.Fatal(err)
	}
	var u store.User
	err = f.st.InTx(f.ctx, func(tx *sql.Tx) error {
		nu := store.User{ID: id, Name: name, Role: role, PasswordHash: hash, TOTPSealed: sealed, TOTPConfirmed: true}
		if tenant == "" {
			u, err = f.st.CreateAdmin(f.ctx, tx, nu)
			return err
		}
		ts, _ := f.st.Tenant(tenant)
		u, err = ts.CreateUser(f.ctx, tx, nu)
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return testUser{User: u, password: pw, secret: key.Secret()}
}

// code moves the clock to the next TOTP step and returns u's code there, so
// every call yields a code that has not been used.
func (f *fixture) code(u testUser) string {
	f.t.Helper()
	f.clock.advance(totpPeriod * time.Second)
	c, err := TOTPCode(u.secret, f.clock.now())
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

var client = Client{IP: "192.0.2.10", UserAgent: "test-agent/1.0"}

// login signs u in fully and returns the session's principal and Login.
func (f *fixture) login(u testUser) (Principal, Login) {
	f.t.Helper()
	l, err := f.svc.Login(f.ctx, u.Name, u.password, client, "")
	if err != nil {
		f.t.Fatalf("login %s: %v", u.Name, err)
	}
	if l.Stage != "password" {
		f.t.Fatalf("login %s: stage %s", u.Name, l.Stage)
	}
	l, err = f.svc.VerifyTOTP(f.ctx, l.Token, f.code(u), client)
	if err != nil {
		f.t.Fatalf("totp %s: %v", u.Name, err)
	}
	p, err := f.svc.Authenticate(f.ctx, Request{SessionToken: l.Token, Method: "GET", Client: client})
	if err != nil {
		f.t.Fatalf("authenticate %s: %v", u.Name, err)
	}
	return p, l
}

// entries returns audit entries with action (all when empty) after seq.
func (f *fixture) entries(action audit.Action, after int64) []audit.Entry {
	f.t.Helper()
	es, err := audit.ReadEntries(f.ctx, f.st.DB(), after+1, 1<<62)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []audit.Entry
	for _, e := range es {
		if action == "" || e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

// head returns the last audit seq.
func (f *fixture) head() int64 {
	f.t.Helper()
	var n sql.NullInt64
	if err := f.st.DB().QueryRowContext(f.ctx, `SELECT max(seq) FROM audit_entries`).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n.Int64
}

// details decodes an entry's details.
func details(t *testing.T, e audit.Entry) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.Details, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// expectAudit fails unless exactly want entries with action were written
// after seq, and returns them.
func (f *fixture) expectAudit(action audit.Action, after int64, want int) []audit.Entry {
	f.t.Helper()
	es := f.entries(action, after)
	if len(es) != want {
		var all []string
		for _, e := range f.entries("", after) {
			all = append(all, string(e.Action)+" "+string(e.Details))
		}
		f.t.Fatalf("%d %s entries after %d, want %d; all: %v", len(es), action, after, want, all)
	}
	return es
}
