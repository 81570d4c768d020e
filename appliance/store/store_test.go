package store

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

func openTest(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "test.db"), Options{Now: func() time.Time { return time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMigrateFromEmpty(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.SchemaVersion(ctx)
	if err != nil || v != LatestVersion() {
		t.Fatalf("version = %d, %v; want %d", v, err, LatestVersion())
	}
	for _, pragma := range []struct{ name, want string }{
		{"journal_mode", "wal"}, {"foreign_keys", "1"}, {"synchronous", "2"}, {"busy_timeout", "10000"},
	} {
		var got string
		if err := s.DB().QueryRowContext(ctx, "PRAGMA "+pragma.name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != pragma.want {
			t.Errorf("PRAGMA %s = %s, want %s", pragma.name, got, pragma.want)
		}
	}
	// Versions start at 1 and strictly increase. (Gaps are tolerated
	// while parallel branches each add a numbered file; the merged tree
	// fills them.)
	for i, m := range Migrations() {
		if i == 0 && m.Version != 1 || i > 0 && m.Version <= Migrations()[i-1].Version {
			t.Fatalf("migration %d has version %d", i, m.Version)
		}
	}
	if ms := Migrations(); ms[0].Name != "init" || !strings.Contains(ms[0].SQL, "CREATE TABLE audit_entries") || ms[1].Name != "auth" {
		t.Fatalf("migrations start %q %q; want init (with the audit tables), auth", ms[0].Name, ms[1].Name)
	}
	s.Close()
	// Reopening applies nothing and keeps the version.
	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// A database from a newer binary is refused, not downgraded.
	if _, err := s.DB().ExecContext(ctx, "PRAGMA user_version = 999"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(ctx, path, Options{}); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of newer schema: %v, want ErrSchemaTooNew", err)
	}
	if _, err := Open(ctx, path, Options{ReadOnly: true}); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("read-only Open of newer schema: %v, want ErrSchemaTooNew", err)
	}
}

func TestTenantRequired(t *testing.T) {
	s := openTest(t)
	for _, id := range []string{"", "  "} {
		if _, err := s.Tenant(id); !errors.Is(err, ErrNoTenant) {
			t.Fatalf("Tenant(%q) = %v, want ErrNoTenant", id, err)
		}
	}
}

// TestTenantIsolation calls every method of TenantStore from tenant B on rows
// that belong to tenant A, and proves none of them reads or changes them. The
// table must name every exported method, so a new method without a case
// fails this test.
func TestTenantIsolation(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	var a, b Tenant
	var userA User
	var scopeA Scope
	err := s.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if a, err = s.CreateTenant(ctx, tx, "alpha"); err != nil {
			return err
		}
		if b, err = s.CreateTenant(ctx, tx, "bravo"); err != nil {
			return err
		}
		ta, _ := s.Tenant(a.ID)
		if userA, err = ta.CreateUser(ctx, tx, User{Name: "alice", Role: RoleOperator, PasswordHash: "x"}); err != nil {
			return err
		}
		scopeA, err = ta.CreateScope(ctx, tx, Scope{ID: "sc1", Name: "dmz", Environment: "production", Document: []byte("{}"), SHA256: "00"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	tb, _ := s.Tenant(b.ID)
	inTx := func(fn func(tx *sql.Tx) error) error { return s.InTx(ctx, fn) }

	cases := []struct {
		method string
		run    func() error
	}{
		{"ID", func() error {
			if tb.ID() != b.ID {
				return errors.New("ID is not the handle's tenant")
			}
			return ErrNotFound
		}},
		{"User", func() error { _, err := tb.User(ctx, userA.ID); return err }},
		{"UserByName", func() error { _, err := tb.UserByName(ctx, "alice"); return err }},
		{"ListUsers", func() error {
			us, err := tb.ListUsers(ctx)
			if err != nil || len(us) != 0 {
				return errors.New("listed another tenant's users")
			}
			return ErrNotFound
		}},
		{"SetUserRole", func() error {
			return inTx(func(tx *sql.Tx) error { return tb.SetUserRole(ctx, tx, userA.ID, RoleApprover) })
		}},
		{"DisableUser", func() error { return inTx(func(tx *sql.Tx) error { return tb.DisableUser(ctx, tx, userA.ID) }) }},
		{"CreateUser", func() error {
			// Creating in B always lands in B, whatever TenantID is passed.
			return inTx(func(tx *sql.Tx) error {
				u, err := tb.CreateUser(ctx, tx, User{TenantID: a.ID, Name: "mallory", Role: RoleOperator, PasswordHash: "x"})
				if err != nil {
					return err
				}
				if u.TenantID != b.ID {
					return errors.New("user created in another tenant")
				}
				return ErrNotFound
			})
		}},
		{"Scope", func() error { _, err := tb.Scope(ctx, scopeA.ID); return err }},
		{"ListScopes", func() error {
			ss, err := tb.ListScopes(ctx)
			if err != nil || len(ss) != 0 {
				return errors.New("listed another tenant's scopes")
			}
			return ErrNotFound
		}},
		{"CreateScope", func() error {
			return inTx(func(tx *sql.Tx) error {
				sc, err := tb.CreateScope(ctx, tx, Scope{ID: scopeA.ID, TenantID: a.ID, Name: "x", Environment: "non-production", Document: []byte("{}"), SHA256: "00"})
				if err != nil {
					return err
				}
				if sc.TenantID != b.ID {
					return errors.New("scope created in another tenant")
				}
				return ErrNotFound
			})
		}},
		{"DeleteScope", func() error { return inTx(func(tx *sql.Tx) error { return tb.DeleteScope(ctx, tx, scopeA.ID) }) }},
	}

	var covered []string
	for _, c := range cases {
		covered = append(covered, c.method)
		t.Run(c.method, func(t *testing.T) {
			if err := c.run(); !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s from tenant B: %v, want ErrNotFound", c.method, err)
			}
		})
	}
	var methods []string
	typ := reflect.TypeOf(tb)
	for i := 0; i < typ.NumMethod(); i++ {
		methods = append(methods, typ.Method(i).Name)
	}
	sort.Strings(covered)
	if !reflect.DeepEqual(methods, covered) {
		t.Fatalf("TenantStore methods %v, isolation cases %v: add a case for every method", methods, covered)
	}

	// Tenant A's rows are untouched.
	ta, _ := s.Tenant(a.ID)
	u, err := ta.User(ctx, userA.ID)
	if err != nil || u.Role != RoleOperator || u.Disabled {
		t.Fatalf("tenant A's user changed: %+v, %v", u, err)
	}
	if _, err := ta.Scope(ctx, scopeA.ID); err != nil {
		t.Fatalf("tenant A's scope gone: %v", err)
	}
}

func TestConstraints(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	tests := []struct {
		name string
		fn   func(tx *sql.Tx) error
		want error
	}{
		{"duplicate tenant", func(tx *sql.Tx) error {
			if _, err := s.CreateTenant(ctx, tx, "dup"); err != nil {
				return err
			}
			_, err := s.CreateTenant(ctx, tx, "dup")
			return err
		}, ErrConflict},
		{"empty tenant name", func(tx *sql.Tx) error { _, err := s.CreateTenant(ctx, tx, " "); return err }, nil},
		{"unknown role", func(tx *sql.Tx) error {
			tn, err := s.CreateTenant(ctx, tx, "r")
			if err != nil {
				return err
			}
			ts, _ := s.Tenant(tn.ID)
			_, err = ts.CreateUser(ctx, tx, User{Name: "x", Role: "root", PasswordHash: "x"})
			return err
		}, nil},
		{"user in missing tenant", func(tx *sql.Tx) error {
			ts, _ := s.Tenant("t_missing")
			_, err := ts.CreateUser(ctx, tx, User{Name: "z", Role: RoleOperator, PasswordHash: "x"})
			return err
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.InTx(ctx, tt.fn)
			if err == nil {
				t.Fatal("accepted")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}
