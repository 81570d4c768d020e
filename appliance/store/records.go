package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Roles a user can hold; see docs/permissions.md.
const (
	RoleAdmin        = "admin"
	RoleSecurityLead = "security_lead"
	RoleApprover     = "approver"
	RoleOperator     = "operator"
	RoleAuditor      = "auditor"
	RoleSupport      = "support"
)

// Roles lists every role, in the order they are documented.
func Roles() []string {
	return []string{RoleAdmin, RoleSecurityLead, RoleApprover, RoleOperator, RoleAuditor, RoleSupport}
}

// NewID returns prefix + "_" + 16 random hex characters.
func NewID(prefix string) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on Linux; if it ever does, ids must not
		// silently collide.
		panic("store: crypto/rand failed: " + err.Error())
	}
	return prefix + "_" + hex.EncodeToString(b[:])
}

// Tenant is a customer organisation; its rows are invisible to other tenants.
type Tenant struct {
	ID, Name, CreatedAt string
}

// User is a console or API user. TenantID is empty for appliance admins.
type User struct {
	ID, TenantID, Name, Role string
	PasswordHash             string
	MustChangePassword       bool
	TOTPSealed               []byte
	TOTPConfirmed            bool
	Disabled                 bool
	CreatedAt                string
}

// Scope is a registered, signed scope document.
type Scope struct {
	ID, TenantID, Name, Environment string
	Document                        []byte
	SHA256                          string
	CreatedAt                       string
}

// CreateTenant adds a tenant with a new id and returns it.
func (s *Store) CreateTenant(ctx context.Context, tx *sql.Tx, name string) (Tenant, error) {
	if strings.TrimSpace(name) == "" {
		return Tenant{}, fmt.Errorf("create tenant: empty name")
	}
	t := Tenant{ID: NewID("t"), Name: name, CreatedAt: s.stamp()}
	_, err := tx.ExecContext(ctx, `INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)`, t.ID, t.Name, t.CreatedAt)
	if err != nil {
		return Tenant{}, fmt.Errorf("create tenant %q: %w", name, conflict(err))
	}
	return t, nil
}

// TenantByName looks a tenant up by its unique name.
func (s *Store) TenantByName(ctx context.Context, name string) (Tenant, error) {
	var t Tenant
	err := s.reads.QueryRowContext(ctx, `SELECT id, name, created_at FROM tenants WHERE name = ?`, name).Scan(&t.ID, &t.Name, &t.CreatedAt)
	if err != nil {
		return Tenant{}, fmt.Errorf("tenant %q: %w", name, notFound(err))
	}
	return t, nil
}

// ListTenants lists all tenants (appliance-wide; admins only).
func (s *Store) ListTenants(ctx context.Context) ([]Tenant, error) {
	rows, err := s.reads.QueryContext(ctx, `SELECT id, name, created_at FROM tenants ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	defer rows.Close()
	var out []Tenant
	for rows.Next() {
		var t Tenant
		if err := rows.Scan(&t.ID, &t.Name, &t.CreatedAt); err != nil {
			return nil, fmt.Errorf("list tenants: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// CreateAdmin adds an appliance admin (a user of no tenant).
func (s *Store) CreateAdmin(ctx context.Context, tx *sql.Tx, u User) (User, error) {
	u.TenantID = ""
	u.Role = RoleAdmin
	return s.insertUser(ctx, tx, u)
}

// AdminByName finds an appliance admin by name.
func (s *Store) AdminByName(ctx context.Context, name string) (User, error) {
	return s.scanUser(s.reads.QueryRowContext(ctx, userCols+` WHERE tenant_id IS NULL AND name = ?`, name))
}

// Tenant returns the handle for tenant-owned rows of tenant id.
func (s *Store) Tenant(id string) (*TenantStore, error) {
	if strings.TrimSpace(id) == "" {
		return nil, ErrNoTenant
	}
	return &TenantStore{s: s, id: id}, nil
}

// TenantStore runs queries confined to one tenant. Every statement carries
// "tenant_id = ?" bound to the handle's tenant; no method takes a tenant id.
type TenantStore struct {
	s  *Store
	id string
}

// ID is the tenant this handle is confined to.
func (t *TenantStore) ID() string { return t.id }

// CreateUser adds a user to the tenant. A tenant user with role admin is that
// tenant's admin; appliance admins (no tenant) are made with Store.CreateAdmin.
func (t *TenantStore) CreateUser(ctx context.Context, tx *sql.Tx, u User) (User, error) {
	u.TenantID = t.id
	return t.s.insertUser(ctx, tx, u)
}

// User returns the tenant's user with id.
func (t *TenantStore) User(ctx context.Context, id string) (User, error) {
	return t.s.scanUser(t.s.reads.QueryRowContext(ctx, userCols+` WHERE tenant_id = ? AND id = ?`, t.id, id))
}

// UserByName returns the tenant's user called name.
func (t *TenantStore) UserByName(ctx context.Context, name string) (User, error) {
	return t.s.scanUser(t.s.reads.QueryRowContext(ctx, userCols+` WHERE tenant_id = ? AND name = ?`, t.id, name))
}

// ListUsers lists the tenant's users by name.
func (t *TenantStore) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := t.s.reads.QueryContext(ctx, userCols+` WHERE tenant_id = ? ORDER BY name`, t.id)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := t.s.scanUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// SetUserRole changes the role of the tenant's user id.
func (t *TenantStore) SetUserRole(ctx context.Context, tx *sql.Tx, id, role string) error {
	res, err := tx.ExecContext(ctx, `UPDATE users SET role = ? WHERE tenant_id = ? AND id = ?`, role, t.id, id)
	return affected("set role", res, err)
}

// DisableUser disables the tenant's user id.
func (t *TenantStore) DisableUser(ctx context.Context, tx *sql.Tx, id string) error {
	res, err := tx.ExecContext(ctx, `UPDATE users SET disabled = 1 WHERE tenant_id = ? AND id = ?`, t.id, id)
	return affected("disable user", res, err)
}

// CreateScope registers a signed scope document for the tenant.
func (t *TenantStore) CreateScope(ctx context.Context, tx *sql.Tx, sc Scope) (Scope, error) {
	sc.TenantID = t.id
	sc.CreatedAt = t.s.stamp()
	_, err := tx.ExecContext(ctx, `INSERT INTO scopes (id, tenant_id, name, environment, document, sha256, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		sc.ID, sc.TenantID, sc.Name, sc.Environment, sc.Document, sc.SHA256, sc.CreatedAt)
	if err != nil {
		return Scope{}, fmt.Errorf("create scope %q: %w", sc.ID, conflict(err))
	}
	return sc, nil
}

// Scope returns the tenant's scope id.
func (t *TenantStore) Scope(ctx context.Context, id string) (Scope, error) {
	var sc Scope
	err := t.s.reads.QueryRowContext(ctx, `SELECT id, tenant_id, name, environment, document, sha256, created_at FROM scopes WHERE tenant_id = ? AND id = ?`, t.id, id).
		Scan(&sc.ID, &sc.TenantID, &sc.Name, &sc.Environment, &sc.Document, &sc.SHA256, &sc.CreatedAt)
	if err != nil {
		return Scope{}, fmt.Errorf("scope %q: %w", id, notFound(err))
	}
	return sc, nil
}

// ListScopes lists the tenant's scopes by name.
func (t *TenantStore) ListScopes(ctx context.Context) ([]Scope, error) {
	rows, err := t.s.reads.QueryContext(ctx, `SELECT id, tenant_id, name, environment, document, sha256, created_at FROM scopes WHERE tenant_id = ? ORDER BY name, id`, t.id)
	if err != nil {
		return nil, fmt.Errorf("list scopes: %w", err)
	}
	defer rows.Close()
	var out []Scope
	for rows.Next() {
		var sc Scope
		if err := rows.Scan(&sc.ID, &sc.TenantID, &sc.Name, &sc.Environment, &sc.Document, &sc.SHA256, &sc.CreatedAt); err != nil {
			return nil, fmt.Errorf("list scopes: %w", err)
		}
		out = append(out, sc)
	}
	return out, rows.Err()
}

// DeleteScope removes the tenant's scope id.
func (t *TenantStore) DeleteScope(ctx context.Context, tx *sql.Tx, id string) error {
	res, err := tx.ExecContext(ctx, `DELETE FROM scopes WHERE tenant_id = ? AND id = ?`, t.id, id)
	return affected("delete scope", res, err)
}

const userCols = `SELECT id, COALESCE(tenant_id, ''), name, role, password_hash, must_change_password, totp_sealed, totp_confirmed, disabled, created_at FROM users`

type scanner interface{ Scan(dest ...any) error }

func (s *Store) scanUser(r scanner) (User, error) {
	var u User
	err := r.Scan(&u.ID, &u.TenantID, &u.Name, &u.Role, &u.PasswordHash, &u.MustChangePassword, &u.TOTPSealed, &u.TOTPConfirmed, &u.Disabled, &u.CreatedAt)
	if err != nil {
		return User{}, fmt.Errorf("user: %w", notFound(err))
	}
	return u, nil
}

func (s *Store) insertUser(ctx context.Context, tx *sql.Tx, u User) (User, error) {
	if strings.TrimSpace(u.Name) == "" {
		return User{}, fmt.Errorf("create user: empty name")
	}
	if u.ID == "" {
		u.ID = NewID("u")
	}
	u.CreatedAt = s.stamp()
	var tenant any
	if u.TenantID != "" {
		tenant = u.TenantID
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO users (id, tenant_id, name, role, password_hash, must_change_password, totp_sealed, totp_confirmed, disabled, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, tenant, u.Name, u.Role, u.PasswordHash, u.MustChangePassword, u.TOTPSealed, u.TOTPConfirmed, u.Disabled, u.CreatedAt)
	if err != nil {
		return User{}, fmt.Errorf("create user %q: %w", u.Name, conflict(err))
	}
	return u, nil
}

func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

func conflict(err error) error {
	if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") || err != nil && strings.Contains(err.Error(), "PRIMARY KEY") {
		return fmt.Errorf("%w (%w)", ErrConflict, err)
	}
	return err
}

func affected(what string, res sql.Result, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}
