-- 0011_sensors: remote sensors (appliance/sensor, docs/fleet.md).
-- Forward-only: never edit a migration that has shipped; add a new file.

-- A one-time enrolment token. Only its SHA-256 is stored (the secret is
-- shown once); used_at and sensor_id are set by the enrolment that spends
-- it, so a token enrols at most one sensor.
CREATE TABLE sensor_tokens (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    token_sha256 TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    vantage      TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    used_at      TEXT NOT NULL DEFAULT '',
    sensor_id    TEXT NOT NULL DEFAULT ''
) STRICT;

-- An enrolled sensor. nkey is the public NKey the sensor generated on its
-- own host (its seed never leaves it); the embedded NATS server admits a
-- connection only for an active row. last_seen, version and profile_sha256
-- come from the sensor's heartbeats; silent is set when an alert was
-- written for its silence and cleared by the next heartbeat.
CREATE TABLE sensors (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    name           TEXT NOT NULL,
    vantage        TEXT NOT NULL,
    nkey           TEXT NOT NULL UNIQUE,
    state          TEXT NOT NULL CHECK (state IN ('active','revoked')),
    enrolled_at    TEXT NOT NULL,
    revoked_at     TEXT NOT NULL DEFAULT '',
    last_seen      TEXT NOT NULL DEFAULT '',
    version        TEXT NOT NULL DEFAULT '',
    profile_sha256 TEXT NOT NULL DEFAULT '',
    silent         INTEGER NOT NULL DEFAULT 0,
    UNIQUE (tenant_id, name)
) STRICT;
CREATE INDEX sensors_tenant ON sensors(tenant_id, name);
