-- 0004_evidence: evidence objects recorded from the vault, and daily anchors.
-- Forward-only: never edit a migration that has shipped; add a new file.

-- One row per verified upload (object version). Written in the same
-- transaction as the evidence.upload audit entry. tenant is '' for
-- appliance-wide objects (audit anchors), so there is no foreign key.
CREATE TABLE evidence_objects (
    key          TEXT NOT NULL,
    version_id   TEXT NOT NULL,
    tenant       TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    size         INTEGER NOT NULL,
    mode         TEXT NOT NULL,          -- 'COMPLIANCE', or '' when not WORM
    retain_until TEXT NOT NULL,          -- RFC 3339, '' when not WORM
    sse          TEXT NOT NULL,
    backend      TEXT NOT NULL,
    worm         INTEGER NOT NULL,
    spooled_at   TEXT NOT NULL,
    verified_at  TEXT NOT NULL,
    audit_seq    INTEGER NOT NULL,
    PRIMARY KEY (key, version_id)
) STRICT;
CREATE INDEX evidence_objects_tenant ON evidence_objects(tenant, key);

-- One row per daily anchor: the audit tree size it covers, so the next
-- anchor proves consistency from it.
CREATE TABLE evidence_anchors (
    to_size    INTEGER PRIMARY KEY,
    from_size  INTEGER NOT NULL,
    day        TEXT NOT NULL,
    checkpoint TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
