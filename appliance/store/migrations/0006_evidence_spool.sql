-- 0006_evidence_spool: what entered the evidence spool, recorded before the
-- uploader can see it. Forward-only: never edit a migration that has
-- shipped; add a new file.

-- One row per spool record. Written in the same transaction as the
-- evidence.spool audit entry (seq) that fixes the record's SHA-256; the
-- uploader checks the record against that entry, not against this row, so
-- editing the row alone cannot make a swapped record pass. tenant is ''
-- for appliance-wide objects (audit anchors).
CREATE TABLE evidence_spool (
    id          TEXT PRIMARY KEY,        -- spool record id (file name without .rec)
    seq         INTEGER NOT NULL,        -- the evidence.spool audit entry
    key         TEXT NOT NULL,
    tenant      TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    size        INTEGER NOT NULL,
    spooled_at  TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('spooled', 'uploaded', 'quarantined')),
    upload_seq  INTEGER,                 -- the evidence.upload entry, once uploaded
    reason      TEXT NOT NULL DEFAULT '' -- why it was quarantined
) STRICT;
CREATE INDEX evidence_spool_state ON evidence_spool(state);
