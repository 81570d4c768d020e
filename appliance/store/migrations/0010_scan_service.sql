-- 0010_scan_service: scope-signing keys per security lead, scope
-- revocation, and what the scan service keeps about a request besides its
-- canonical document (appliance/scan, docs/scans.md).
-- Forward-only: never edit a migration that has shipped; add a new file.

-- A security lead's Ed25519 public key for signing scope documents. A scope
-- enters the appliance only if it verifies against an active key whose
-- owner is, at that moment, an enabled security lead of the scope's tenant.
-- id is probe/keys.ID(public). sealed_private is set only for a key the
-- appliance holds for the user (sealed with the master key, associated
-- data "scope-key:" || id); otherwise the private key never reaches the
-- appliance. A revoked key stays, so history can name it.
CREATE TABLE scope_keys (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    user_id        TEXT NOT NULL REFERENCES users(id),
    name           TEXT NOT NULL,
    public         BLOB NOT NULL,
    sealed_private BLOB,
    state          TEXT NOT NULL CHECK (state IN ('active','revoked')),
    created_at     TEXT NOT NULL,
    revoked_at     TEXT NOT NULL DEFAULT '',
    revoked_by     TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX scope_keys_tenant ON scope_keys(tenant_id, state);

-- A revoked scope: no new request, start or resumed run under it. The
-- scope row and its document stay (requests and jobs refer to them).
CREATE TABLE scope_revocations (
    tenant_id  TEXT NOT NULL,
    scope_id   TEXT NOT NULL,
    revoked_at TEXT NOT NULL,
    revoked_by TEXT NOT NULL,
    reason     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, scope_id),
    FOREIGN KEY (tenant_id, scope_id) REFERENCES scopes(tenant_id, id)
) STRICT;

-- What the service keeps about a request beside the canonical document:
-- the dual-approval request (production scopes), the key that signed its
-- scope (revoking it stops the request, as does revoking the scope), and
-- why it ended.
ALTER TABLE scan_requests ADD COLUMN approval_id TEXT NOT NULL DEFAULT '';
ALTER TABLE scan_requests ADD COLUMN scope_key_id TEXT NOT NULL DEFAULT '';
ALTER TABLE scan_requests ADD COLUMN reason TEXT NOT NULL DEFAULT '';
-- approvers: JSON array of the approving user ids, copied from the spent
-- approval at start, for the job (each approval bound to request_sha256).
ALTER TABLE scan_requests ADD COLUMN approvers TEXT NOT NULL DEFAULT '[]';
CREATE INDEX scan_requests_key ON scan_requests(scope_key_id, state);

-- What a probe read beyond its state, as a JSON object ('{}' when
-- nothing): retries, fallback_from, the TLS handshake (version, cipher
-- suite, ALPN, certificate chain), the banner a server volunteered, an
-- error. Kept so the results file sent to the vault is the engine's whole
-- result, also for batches stored before a restart.
ALTER TABLE scan_results ADD COLUMN detail TEXT NOT NULL DEFAULT '{}';

-- A schedule: a standing request (the canonical job request whose id is
-- the schedule's id, so every run's job carries approvals bound to it) run
-- at the times spec names ('@every 6h' or a five-field cron line, UTC).
-- A schedule runs only while approved by two approvers (approval_id) and
-- before valid_until (at most 90 days after approval). An edit voids it (a
-- new schedule replaces it). next_run is the next time due; runs missed
-- while the appliance was down are reported, not run in a burst.
CREATE TABLE scan_schedules (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    requester_id   TEXT NOT NULL REFERENCES users(id),
    scope_id       TEXT NOT NULL,
    scope_key_id   TEXT NOT NULL,
    spec           TEXT NOT NULL,
    valid_days     INTEGER NOT NULL CHECK (valid_days BETWEEN 1 AND 90),
    request        BLOB NOT NULL,
    request_sha256 TEXT NOT NULL,
    approval_id    TEXT NOT NULL,
    approvers      TEXT NOT NULL DEFAULT '[]',
    state          TEXT NOT NULL CHECK (state IN ('pending','approved','void','expired')),
    reason         TEXT NOT NULL DEFAULT '',
    valid_until    TEXT NOT NULL DEFAULT '',
    next_run       TEXT NOT NULL DEFAULT '',
    last_run       TEXT NOT NULL DEFAULT '',
    created_at     TEXT NOT NULL,
    FOREIGN KEY (tenant_id, scope_id) REFERENCES scopes(tenant_id, id)
) STRICT;
CREATE INDEX scan_schedules_due ON scan_schedules(state, next_run);
-- A scheduled run's request names its schedule.
ALTER TABLE scan_requests ADD COLUMN schedule_id TEXT NOT NULL DEFAULT '';
