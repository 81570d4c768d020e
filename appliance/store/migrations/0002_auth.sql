-- 0002_auth: identity and access (users' TOTP and lockout state, recovery
-- codes, sessions, API tokens, step-up grants, dual approvals, support tickets,
-- activity events for rate limits and anomaly alerts).
-- Forward-only: never edit a migration that has shipped; add a new file.
--
-- Every instant in these tables is an INTEGER of Unix nanoseconds (UTC), so
-- that comparisons in SQL are numeric; RFC 3339 text with trimmed fractional
-- seconds does not sort correctly.
-- Secrets are never stored: session ids, API tokens and recovery codes are
-- stored as their SHA-256 (they are 256-bit random values, so a fast hash is
-- enough: there is nothing to guess), TOTP secrets are sealed with the
-- master key (users.totp_sealed, from 0001).

-- Per-user authentication state, one row per user, made on first use.
CREATE TABLE auth_user_state (
    user_id        TEXT PRIMARY KEY REFERENCES users(id),
    -- The last TOTP time step accepted for this user. A code is accepted only
    -- for a later step, so a code cannot be used twice (replay).
    totp_last_step INTEGER NOT NULL DEFAULT 0,
    -- Consecutive failed password attempts since the last success.
    failed_logins  INTEGER NOT NULL DEFAULT 0,
    -- How many times the account was locked since the last success: the
    -- lockout doubles each time (backoff).
    lockouts       INTEGER NOT NULL DEFAULT 0,
    locked_until   INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Single-use recovery codes (SHA-256 of the normalised code).
CREATE TABLE auth_recovery_codes (
    user_id   TEXT NOT NULL REFERENCES users(id),
    code_hash BLOB NOT NULL,
    used_at   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, code_hash)
) STRICT;

-- Console sessions. id is a public handle (for listing and revoking);
-- id_hash is the SHA-256 of the secret cookie value.
CREATE TABLE auth_sessions (
    id          TEXT PRIMARY KEY,
    id_hash     BLOB NOT NULL UNIQUE,
    user_id     TEXT NOT NULL REFERENCES users(id),
    -- password: password checked, second factor pending; enrol: TOTP
    -- enrolment pending; full: signed in.
    stage       TEXT NOT NULL CHECK (stage IN ('password','enrol','full')),
    created_at  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    ip          TEXT NOT NULL,
    user_agent  TEXT NOT NULL
) STRICT;
CREATE INDEX auth_sessions_user ON auth_sessions(user_id);

-- API tokens for automation, bound to a tenant and a role.
CREATE TABLE auth_tokens (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    user_id     TEXT NOT NULL REFERENCES users(id),
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('admin','security_lead','approver','operator','auditor','support')),
    token_hash  BLOB NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX auth_tokens_tenant ON auth_tokens(tenant_id);

-- Step-up grants: one fresh TOTP for one operation on one request
-- (SHA-256 of its canonical form), used once before expires_at.
CREATE TABLE auth_stepups (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users(id),
    operation      TEXT NOT NULL,
    request_sha256 BLOB NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX auth_stepups_user ON auth_stepups(user_id, operation);

-- Dual approval requests. request holds the canonical request the approvers
-- review; request_sha256 is what approvals bind to.
CREATE TABLE auth_approvals (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    kind           TEXT NOT NULL,
    requester_id   TEXT NOT NULL REFERENCES users(id),
    request        BLOB NOT NULL,
    request_sha256 BLOB NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending','approved','denied','void','used')),
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    closed_at      INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX auth_approvals_tenant ON auth_approvals(tenant_id, status);

-- One row per approver per request; the primary key makes a second approval
-- by the same person impossible even if the service check were bypassed.
CREATE TABLE auth_approval_grants (
    approval_id    TEXT NOT NULL REFERENCES auth_approvals(id),
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    approver_id    TEXT NOT NULL REFERENCES users(id),
    request_sha256 BLOB NOT NULL,
    granted_at     INTEGER NOT NULL,
    PRIMARY KEY (approval_id, approver_id)
) STRICT;

-- Support tickets: a tenant admin grants one support user time-limited
-- access to that tenant only.
CREATE TABLE auth_support_tickets (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    support_user_id TEXT NOT NULL REFERENCES users(id),
    opened_by       TEXT NOT NULL REFERENCES users(id),
    reason          TEXT NOT NULL,
    opened_at       INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    closed_at       INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX auth_support_user ON auth_support_tickets(support_user_id, closed_at);

-- Activity events counted in sliding windows: failed logins (per user and
-- per source IP), scan requests and exports (per user). user_id is '' for a
-- failed login naming no known user.
CREATE TABLE auth_events (
    kind    TEXT NOT NULL,
    user_id TEXT NOT NULL,
    ip      TEXT NOT NULL,
    at      INTEGER NOT NULL
) STRICT;
CREATE INDEX auth_events_user ON auth_events(kind, user_id, at);
CREATE INDEX auth_events_ip ON auth_events(kind, ip, at);

-- The last anomaly alert per user and kind, so one burst raises one alert
-- per window instead of one per event.
CREATE TABLE auth_anomaly_alerts (
    user_id    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    alerted_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, kind)
) STRICT;
