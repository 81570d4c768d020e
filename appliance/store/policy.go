package store

import (
	"context"
	"database/sql"
	"fmt"
)

// Policy is one stored version of an expected policy.
type Policy struct {
	TenantID     string
	Name         string
	Version      int
	VantagePoint string
	Source       []byte
	Canonical    []byte
	SHA256       string
	CreatedBy    string
	CreatedAt    string
}

// Baseline is an accepted result set for a scope and a policy.
type Baseline struct {
	TenantID      string
	ID            string
	ScopeID       string
	PolicyName    string
	PolicyVersion int
	ScanID        string
	Results       []byte
	ResultsSHA256 string
	AcceptedBy    string
	AcceptedAt    string
}

// CreatePolicyVersion stores p as the next version of the tenant's policy
// p.Name (1 for a new name) and returns it with its version and date.
func (t *TenantStore) CreatePolicyVersion(ctx context.Context, tx *sql.Tx, p Policy) (Policy, error) {
	p.TenantID = t.id
	p.CreatedAt = t.s.stamp()
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) + 1 FROM policies WHERE tenant_id = ? AND name = ?`, t.id, p.Name).Scan(&p.Version); err != nil {
		return Policy{}, fmt.Errorf("create policy %q: %w", p.Name, err)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO policies (tenant_id, name, version, vantage_point, source, canonical, sha256, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.TenantID, p.Name, p.Version, p.VantagePoint, p.Source, p.Canonical, p.SHA256, p.CreatedBy, p.CreatedAt)
	if err != nil {
		return Policy{}, fmt.Errorf("create policy %q: %w", p.Name, conflict(err))
	}
	return p, nil
}

const policyCols = `SELECT tenant_id, name, version, vantage_point, source, canonical, sha256, created_by, created_at FROM policies`

func scanPolicy(r scanner) (Policy, error) {
	var p Policy
	err := r.Scan(&p.TenantID, &p.Name, &p.Version, &p.VantagePoint, &p.Source, &p.Canonical, &p.SHA256, &p.CreatedBy, &p.CreatedAt)
	return p, err
}

// Policy returns version of the tenant's policy name; version 0 means the
// newest.
func (t *TenantStore) Policy(ctx context.Context, name string, version int) (Policy, error) {
	var row *sql.Row
	if version == 0 {
		row = t.s.reads.QueryRowContext(ctx, policyCols+` WHERE tenant_id = ? AND name = ? ORDER BY version DESC LIMIT 1`, t.id, name)
	} else {
		row = t.s.reads.QueryRowContext(ctx, policyCols+` WHERE tenant_id = ? AND name = ? AND version = ?`, t.id, name, version)
	}
	p, err := scanPolicy(row)
	if err != nil {
		return Policy{}, fmt.Errorf("policy %q version %d: %w", name, version, notFound(err))
	}
	return p, nil
}

// ListPolicies lists the newest version of each of the tenant's policies,
// by name.
func (t *TenantStore) ListPolicies(ctx context.Context) ([]Policy, error) {
	rows, err := t.s.reads.QueryContext(ctx, policyCols+` p WHERE tenant_id = ? AND version = (SELECT MAX(version) FROM policies q WHERE q.tenant_id = p.tenant_id AND q.name = p.name) ORDER BY name`, t.id)
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	defer rows.Close()
	var out []Policy
	for rows.Next() {
		p, err := scanPolicy(rows)
		if err != nil {
			return nil, fmt.Errorf("list policies: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// CreateBaseline stores an accepted baseline.
func (t *TenantStore) CreateBaseline(ctx context.Context, tx *sql.Tx, b Baseline) (Baseline, error) {
	b.TenantID = t.id
	if b.ID == "" {
		b.ID = NewID("bl")
	}
	b.AcceptedAt = t.s.stamp()
	_, err := tx.ExecContext(ctx, `INSERT INTO policy_baselines (tenant_id, id, scope_id, policy_name, policy_version, scan_id, results, results_sha256, accepted_by, accepted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		b.TenantID, b.ID, b.ScopeID, b.PolicyName, b.PolicyVersion, b.ScanID, b.Results, b.ResultsSHA256, b.AcceptedBy, b.AcceptedAt)
	if err != nil {
		return Baseline{}, fmt.Errorf("create baseline: %w", conflict(err))
	}
	return b, nil
}

// CurrentBaseline returns the newest baseline accepted for the tenant's
// scope and policy (any version of it).
func (t *TenantStore) CurrentBaseline(ctx context.Context, scopeID, policyName string) (Baseline, error) {
	var b Baseline
	err := t.s.reads.QueryRowContext(ctx, `SELECT tenant_id, id, scope_id, policy_name, policy_version, scan_id, results, results_sha256, accepted_by, accepted_at
		FROM policy_baselines WHERE tenant_id = ? AND scope_id = ? AND policy_name = ? ORDER BY accepted_at DESC, rowid DESC LIMIT 1`, t.id, scopeID, policyName).
		Scan(&b.TenantID, &b.ID, &b.ScopeID, &b.PolicyName, &b.PolicyVersion, &b.ScanID, &b.Results, &b.ResultsSHA256, &b.AcceptedBy, &b.AcceptedAt)
	if err != nil {
		return Baseline{}, fmt.Errorf("baseline for scope %q policy %q: %w", scopeID, policyName, notFound(err))
	}
	return b, nil
}
