-- 0003_siem: SIEM destinations and the durable outbox (appliance/siem).
-- Forward-only: never edit a migration that has shipped; add a new file.

-- A destination receives the events of one tenant (tenant_id set) or of the
-- whole appliance (tenant_id NULL). Secrets (the TLS client key, the webhook
-- HMAC key) are sealed with the appliance master key, bound to the row id.
-- The delivery columns are the worker's bookkeeping, shown by 'siem status'.
CREATE TABLE siem_destinations (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT REFERENCES tenants(id),
    name              TEXT NOT NULL UNIQUE,
    kind              TEXT NOT NULL CHECK (kind IN ('udp','tcp','tls','webhook')),
    address           TEXT NOT NULL,
    format            TEXT NOT NULL CHECK (format IN ('ocsf','cef')),
    server_name       TEXT NOT NULL DEFAULT '',
    ca_pem            BLOB,
    client_cert_pem   BLOB,
    client_key_sealed BLOB,
    hmac_key_sealed   BLOB,
    max_message       INTEGER NOT NULL CHECK (max_message >= 480),
    budget_bytes      INTEGER NOT NULL CHECK (budget_bytes > 0),
    created_at        TEXT NOT NULL,
    -- next_seq is the sequence number the next event gets; assigned in the
    -- enqueuing transaction, so numbers are gap-free.
    next_seq          INTEGER NOT NULL DEFAULT 1,
    -- pending_bytes is the size of this destination's outbox rows, kept
    -- here so the budget check on every enqueue does not scan the outbox.
    pending_bytes     INTEGER NOT NULL DEFAULT 0,
    delivered_seq     INTEGER NOT NULL DEFAULT 0,
    delivered_at      TEXT NOT NULL DEFAULT '',
    attempts          INTEGER NOT NULL DEFAULT 0,  -- consecutive failures
    failures          INTEGER NOT NULL DEFAULT 0,  -- failed attempts, all time
    last_error        TEXT NOT NULL DEFAULT '',
    last_error_at     TEXT NOT NULL DEFAULT '',
    next_attempt_at   TEXT NOT NULL DEFAULT '',
    -- The destination's place in the audit log: the last audit seq and the
    -- last audit_checkpoints id it has taken (or skipped as another
    -- tenant's). Events past the cursors wait in the audit log itself, so a
    -- full outbox delays events but never loses one.
    audit_cursor      INTEGER NOT NULL DEFAULT 0,
    checkpoint_cursor INTEGER NOT NULL DEFAULT 0,
    fail_alerted      INTEGER NOT NULL DEFAULT 0,
    budget_alerted    INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX siem_destinations_tenant ON siem_destinations(tenant_id);

-- One row per (destination, event) not yet delivered, in sequence order.
CREATE TABLE siem_outbox (
    dest_id    TEXT NOT NULL REFERENCES siem_destinations(id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    audit_seq  INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    event      BLOB NOT NULL,
    PRIMARY KEY (dest_id, seq)
) STRICT, WITHOUT ROWID;
