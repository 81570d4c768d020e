-- 0008_scans: scan requests, signed jobs and their results.
-- Forward-only: never edit a migration that has shipped; add a new file.

-- A scan request: what a user asked for, as the canonical request document
-- (probe/job Request) whose SHA-256 approvals bind to. state follows the
-- request's life; the runs are scan_jobs.
CREATE TABLE scan_requests (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    requester_id   TEXT NOT NULL REFERENCES users(id),
    scope_id       TEXT NOT NULL,
    scope_sha256   TEXT NOT NULL,
    request        BLOB NOT NULL,          -- canonical request JSON
    request_sha256 TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('pending','approved','denied','queued','running','completed','failed','cancelled')),
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    FOREIGN KEY (tenant_id, scope_id) REFERENCES scopes(tenant_id, id)
) STRICT;
-- Lists per tenant, newest first, keyset on (created_at, id).
CREATE INDEX scan_requests_tenant ON scan_requests(tenant_id, created_at, id);

-- A job: one signed run of a request (probe/job, docs/job.md). no is the
-- compact key results are stored under. next_batch is the last checkpoint
-- (every batch before it is complete and stored), so a restart resumes the
-- run under the same job instead of starting over.
CREATE TABLE scan_jobs (
    no          INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    scan_id     TEXT NOT NULL UNIQUE,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    request_id  TEXT NOT NULL REFERENCES scan_requests(id),
    job_sha256  TEXT NOT NULL,
    signed      BLOB NOT NULL,             -- the signed envelope as issued
    vantage     TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('issued','running','completed','failed','cancelled','refused')),
    reason      TEXT NOT NULL DEFAULT '',  -- refusal or failure code and message
    next_batch  INTEGER NOT NULL DEFAULT 0,
    issued_at   TEXT NOT NULL,
    started_at  TEXT NOT NULL DEFAULT '',
    finished_at TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX scan_jobs_request ON scan_jobs(tenant_id, request_id);
-- Recovery looks for jobs left running.
CREATE INDEX scan_jobs_state ON scan_jobs(state) WHERE state IN ('issued','running');

-- One row per probe result, in delivery order (seq, from 1 per job).
-- target_key is the address as 16 bytes (IPv4 mapped into IPv6), so hosts
-- sort numerically and a host filter is one index seek. rtt_us is the
-- round-trip time in microseconds (-1 when there was no answer); icmp_type
-- and icmp_code are NULL without an ICMP answer. evidence is a JSON array
-- of evidence object keys ('[]' when none).
--
-- The indexes serve the results query (appliance/scan ResultFilter): the
-- query picks one explicitly (INDEXED BY) by the filters given, so every
-- filtered page is a seek plus a bounded walk (docs/benchmarks.md).
CREATE TABLE scan_results (
    job_no     INTEGER NOT NULL REFERENCES scan_jobs(no),
    seq        INTEGER NOT NULL,
    target     TEXT NOT NULL,
    target_key BLOB NOT NULL,
    proto      TEXT NOT NULL CHECK (proto IN ('tcp','udp','icmp')),
    port       INTEGER NOT NULL,
    probe      TEXT NOT NULL,
    state      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    icmp_type  INTEGER,
    icmp_code  INTEGER,
    rtt_us     INTEGER NOT NULL,
    ttl        INTEGER NOT NULL,
    time       TEXT NOT NULL,
    evidence   TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (job_no, seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX scan_results_host  ON scan_results(job_no, target_key, seq);
CREATE INDEX scan_results_port  ON scan_results(job_no, port, seq);
CREATE INDEX scan_results_state ON scan_results(job_no, state, port, seq);
CREATE INDEX scan_results_probe ON scan_results(job_no, probe, state, port, seq);
