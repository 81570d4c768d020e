-- 0009_policy: expected policies (versioned per tenant) and accepted
-- baselines for drift. Forward-only: never edit once shipped.

-- Every version of a policy is kept: a report names the exact version
-- (and its SHA-256) it was evaluated against.
CREATE TABLE policies (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    name          TEXT NOT NULL,
    version       INTEGER NOT NULL CHECK (version >= 1),
    vantage_point TEXT NOT NULL,
    -- source is the document as submitted (YAML or JSON); canonical is
    -- its canonical JSON, whose SHA-256 is sha256.
    source        BLOB NOT NULL,
    canonical     BLOB NOT NULL,
    sha256        TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name, version)
) STRICT;

-- A baseline is a result set someone accepted (with step-up) as the
-- reference for a scope and a policy; the newest one is current.
CREATE TABLE policy_baselines (
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    id             TEXT NOT NULL,
    scope_id       TEXT NOT NULL,
    policy_name    TEXT NOT NULL,
    policy_version INTEGER NOT NULL,
    scan_id        TEXT NOT NULL,
    -- results are the accepted results as JSON Lines (probe.Result).
    results        BLOB NOT NULL,
    results_sha256 TEXT NOT NULL,
    accepted_by    TEXT NOT NULL,
    accepted_at    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, policy_name, policy_version) REFERENCES policies(tenant_id, name, version)
) STRICT;
CREATE INDEX policy_baselines_current ON policy_baselines(tenant_id, scope_id, policy_name, accepted_at);
