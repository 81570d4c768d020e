-- 0005_auth_hardening: what issue 13's review asked of identity and access.
-- Forward-only: never edit a migration that has shipped; add a new file.
-- Instants are INTEGER Unix nanoseconds (UTC), as in the auth migration.

-- Who created or changed a user's account or role, and when: one row per
-- change made by somebody else (creation, role change, disable, TOTP
-- reset). Dual approval reads it: an approver whose account or role was
-- created or changed by the requester, or after the request was made, does
-- not count. Append-only; rows are never updated.
CREATE TABLE auth_user_changes (
    user_id    TEXT NOT NULL REFERENCES users(id),
    -- The user's tenant ('' for appliance admins).
    tenant_id  TEXT NOT NULL,
    change     TEXT NOT NULL CHECK (change IN ('create','role','disable','totp_reset')),
    -- The user's role after the change.
    role       TEXT NOT NULL,
    -- The acting user's id ('system' for init).
    changed_by TEXT NOT NULL,
    changed_at INTEGER NOT NULL
) STRICT;
CREATE INDEX auth_user_changes_user ON auth_user_changes(user_id, changed_at);

-- Failed-password throttle per (login name, source address). The name is
-- stored as its SHA-256: any client can type any name, and what it typed
-- is in the audit log already. After a few failures the pair is refused
-- for a delay that doubles with each further failure; another address,
-- the real user's, is not affected. Unknown names are throttled exactly
-- like known ones, so the answer never tells them apart.
CREATE TABLE auth_login_throttle (
    name_sha256   BLOB NOT NULL,
    ip            TEXT NOT NULL,
    -- Consecutive failures of the pair since its last success (forgotten
    -- after a quiet day, see auth.Params.ThrottleForget).
    failures      INTEGER NOT NULL,
    last_failure  INTEGER NOT NULL,
    blocked_until INTEGER NOT NULL,
    PRIMARY KEY (name_sha256, ip)
) STRICT;

-- Grants of privileged roles (approver, security_lead, admin) that no
-- second admin approved, because the tenant had no other admin: flagged
-- for the next access review, which reads the open rows (reviewed_at 0)
-- and closes them.
CREATE TABLE auth_review_flags (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    user_id     TEXT NOT NULL REFERENCES users(id),
    role        TEXT NOT NULL,
    granted_by  TEXT NOT NULL,
    reason      TEXT NOT NULL,
    flagged_at  INTEGER NOT NULL,
    reviewed_at INTEGER NOT NULL DEFAULT 0,
    reviewed_by TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX auth_review_flags_tenant ON auth_review_flags(tenant_id, reviewed_at);
