-- 0012_access_reviews: what an access review needs (issue 18).
-- Forward-only: never edit a migration that has shipped; add a new file.
-- Instants are INTEGER Unix nanoseconds (UTC), as in the auth migration.

-- The last completed login of each user (password and second factor; the
-- row of auth_user_state is made on first use) and the last use of each API
-- token. Both are written at most once a minute per user or token (like the
-- session's last_seen), never on every request. 0: never.
ALTER TABLE auth_user_state ADD COLUMN last_login_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE auth_user_state ADD COLUMN last_login_ip TEXT NOT NULL DEFAULT '';
ALTER TABLE auth_tokens ADD COLUMN last_used_at INTEGER NOT NULL DEFAULT 0;

-- Access reviews: one per tenant per cadence period, and one for the
-- appliance admins (tenant_id ''). snapshot is the review document before
-- signing (canonical JSON of report/verify.AccessReview without decisions);
-- document is the signed file once signed, with its SHA-256.
CREATE TABLE access_reviews (
    id           TEXT PRIMARY KEY,
    -- The reviewed tenant, '' for the appliance-admin review (so no
    -- foreign key: '' names no tenant row).
    tenant_id    TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('open','signed')),
    started_by   TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    snapshot     BLOB NOT NULL,
    signed_by    TEXT NOT NULL DEFAULT '',
    signed_at    INTEGER NOT NULL DEFAULT 0,
    document     BLOB,
    sha256       TEXT NOT NULL DEFAULT '',
    -- The evidence object's key when a vault is configured, else ''.
    evidence_key TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX access_reviews_tenant ON access_reviews(tenant_id, status, signed_at);
-- At most one open review per tenant (and one for the appliance).
CREATE UNIQUE INDEX access_reviews_one_open ON access_reviews(tenant_id) WHERE status = 'open';

-- A reviewer's keep or revoke decision on one line of an open review; the
-- latest decision per line counts. Revocations take effect when the review
-- is signed, in the signing transaction.
CREATE TABLE access_review_decisions (
    review_id  TEXT NOT NULL REFERENCES access_reviews(id),
    item       TEXT NOT NULL,
    decision   TEXT NOT NULL CHECK (decision IN ('keep','revoke')),
    note       TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    decided_at INTEGER NOT NULL,
    PRIMARY KEY (review_id, item)
) STRICT;

-- The overdue alerts raised, one row per tenant ('' for the appliance) with
-- the due instant of the last period alerted, so an overdue review raises
-- one review.overdue entry per overdue period, not one per check.
CREATE TABLE access_review_alerts (
    tenant_id  TEXT PRIMARY KEY,
    period_due INTEGER NOT NULL,
    alerted_at INTEGER NOT NULL
) STRICT;
