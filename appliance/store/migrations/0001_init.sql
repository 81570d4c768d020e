-- 0001_init: tenants, users, scopes and appliance settings.
-- Forward-only: never edit a migration that has shipped; add a new file.

CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
) STRICT;

-- Users belong to one tenant, except appliance admins (tenant_id NULL).
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT REFERENCES tenants(id),
    name          TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('admin','security_lead','approver','operator','auditor','support')),
    password_hash TEXT NOT NULL,
    -- must_change_password is set for one-time passwords printed at creation.
    must_change_password INTEGER NOT NULL DEFAULT 1,
    totp_sealed   BLOB,
    totp_confirmed INTEGER NOT NULL DEFAULT 0,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    CHECK (tenant_id IS NOT NULL OR role = 'admin')
) STRICT;
CREATE INDEX users_tenant ON users(tenant_id);

-- Signed scope documents as registered with the appliance.
CREATE TABLE scopes (
    id          TEXT NOT NULL,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    environment TEXT NOT NULL CHECK (environment IN ('production','non-production')),
    document    BLOB NOT NULL,
    sha256      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;

-- Appliance-wide settings (not tenant-owned). Safety caps never live here.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
