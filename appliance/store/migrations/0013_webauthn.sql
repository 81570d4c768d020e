-- 0013_webauthn: security keys (WebAuthn) as a second factor (issue 15)
-- and their last use for the access review (issue 18).
-- Forward-only: never edit a migration that has shipped; add a new file.
-- Instants are INTEGER Unix nanoseconds (UTC), as in the auth migration.

-- A user's registered security keys. credential_id is the authenticator's
-- credential id (unique across the appliance: one key answers for one
-- account); credential is the go-webauthn credential record as JSON (public
-- key, AAGUID, flags, transports), updated after every use with the new
-- signature counter. Public material only: nothing here signs anything.
CREATE TABLE auth_webauthn_keys (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id),
    credential_id BLOB NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    credential    BLOB NOT NULL,
    -- The last signature counter accepted; a response whose counter is not
    -- larger (unless both are 0) may come from a cloned key: it is refused
    -- and clone_warning is set (shown in the key list and the review).
    sign_count    INTEGER NOT NULL DEFAULT 0,
    clone_warning INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    -- The last accepted use (login or step-up) and its address; 0: never.
    last_used_at  INTEGER NOT NULL DEFAULT 0,
    last_used_ip  TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX auth_webauthn_keys_user ON auth_webauthn_keys(user_id);

-- Ceremonies begun and not yet finished: the challenge and what it is bound
-- to, kept on the server (the client holds only the ceremony id). Used once
-- (deleted on finish) and only before expires_at.
CREATE TABLE auth_webauthn_ceremonies (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id),
    -- The session that began it: a ceremony cannot be finished from
    -- another session (or another browser).
    session_id TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('register','login','stepup')),
    -- register: the key's name; stepup: the operation and the SHA-256 of
    -- its canonical request; login: ''.
    binding    TEXT NOT NULL,
    -- go-webauthn's SessionData as JSON (challenge, allowed credentials).
    data       BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX auth_webauthn_ceremonies_user ON auth_webauthn_ceremonies(user_id);
