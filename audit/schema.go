package audit

// Schema creates the audit tables. The appliance's store applies it as one
// migration (a multi-statement Exec); verification tools read the same tables
// from the file alone.
//
//   - audit_entries: one row per entry. entry is the canonical encoding
//     (see Canonical), the one authoritative copy of the fields: every
//     reader decodes it with ParseCanonical, and verification reads three
//     columns per row instead of thirteen (the column count dominated its
//     cost). hash is SHA-256(entry), kept so appends find the chain head
//     without hashing. tree holds the Merkle hashes that appending this
//     entry completed (tlog.StoredHashes: the leaf hash, then one hash per
//     level it closed), so a proof reads O(log n) rows by key.
//   - audit_checkpoints: signed notes over (origin, tree size, root).
//   - audit_alarms: tamper alarms raised at start-up and their
//     acknowledgements, each pointing at its own audit entry.
//   - audit_verified: how far start-up verification got, so the next start
//     only re-verifies what came after (always at a signed checkpoint).
//
// Every table is append-only: triggers abort UPDATE and DELETE, so a bug or
// a SQL injection through the application's own connection cannot rewrite
// history. An attacker with the file can drop the triggers; that is what the
// hash chain, the tree and the signed checkpoints are for.
const Schema = `
CREATE TABLE audit_entries (
    seq   INTEGER PRIMARY KEY,
    entry BLOB NOT NULL,
    hash  BLOB NOT NULL,
    tree  BLOB NOT NULL
) STRICT;
CREATE TABLE audit_checkpoints (
    id    INTEGER PRIMARY KEY,
    size  INTEGER NOT NULL,
    time  TEXT NOT NULL,
    note  TEXT NOT NULL
) STRICT;
CREATE TABLE audit_alarms (
    seq     INTEGER PRIMARY KEY,
    kind    TEXT NOT NULL CHECK (kind IN ('raise', 'ack')),
    bad_seq INTEGER NOT NULL,
    reason  TEXT NOT NULL
) STRICT;
CREATE TABLE audit_verified (
    id    INTEGER PRIMARY KEY,
    size  INTEGER NOT NULL,
    time  TEXT NOT NULL
) STRICT;
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_alarms_no_update BEFORE UPDATE ON audit_alarms
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_alarms_no_delete BEFORE DELETE ON audit_alarms
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_verified_no_update BEFORE UPDATE ON audit_verified
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_verified_no_delete BEFORE DELETE ON audit_verified
BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
`
