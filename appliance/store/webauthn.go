package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// This file holds the queries of security keys (migration 0013_webauthn):
// registered keys, unfinished ceremonies, and the appliance setting that
// requires keys for some roles. Keys are reached by their owner's user id
// (like sessions and TOTP state): the auth service only ever reads the
// authenticated user's own keys, and the access review reads the keys of
// the users it lists.

// WebAuthnKey is a registered security key.
type WebAuthnKey struct {
	ID           string
	UserID       string
	CredentialID []byte
	Name         string
	// Credential is the go-webauthn credential record as JSON.
	Credential   []byte
	SignCount    uint32
	CloneWarning bool
	CreatedAt    time.Time
	LastUsedAt   time.Time
	LastUsedIP   string
}

const webauthnKeyCols = `SELECT id, user_id, credential_id, name, credential, sign_count, clone_warning, created_at, last_used_at, last_used_ip FROM auth_webauthn_keys`

func scanWebAuthnKey(r scanner) (WebAuthnKey, error) {
	var k WebAuthnKey
	var sc, created, used int64
	err := r.Scan(&k.ID, &k.UserID, &k.CredentialID, &k.Name, &k.Credential, &sc, &k.CloneWarning, &created, &used, &k.LastUsedIP)
	if errors.Is(err, sql.ErrNoRows) {
		return k, ErrNotFound
	}
	if err != nil {
		return k, fmt.Errorf("scan security key: %w", err)
	}
	k.SignCount, k.CreatedAt, k.LastUsedAt = uint32(sc), fromNanos(created), fromNanos(used)
	return k, nil
}

// AddWebAuthnKey stores a newly registered key. A credential id already
// registered (to anyone) is ErrConflict.
func (s *Store) AddWebAuthnKey(ctx context.Context, tx *sql.Tx, k WebAuthnKey) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO auth_webauthn_keys (id, user_id, credential_id, name, credential, sign_count, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, k.ID, k.UserID, k.CredentialID, k.Name, k.Credential, int64(k.SignCount), nanos(k.CreatedAt))
	if err != nil {
		return conflict(fmt.Errorf("add security key: %w", err))
	}
	return nil
}

// WebAuthnKeys lists user id's keys, oldest first.
func (s *Store) WebAuthnKeys(ctx context.Context, q Querier, userID string) ([]WebAuthnKey, error) {
	rows, err := q.QueryContext(ctx, webauthnKeyCols+` WHERE user_id = ? ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, fmt.Errorf("security keys: %w", err)
	}
	defer rows.Close()
	return collect(rows, scanWebAuthnKey)
}

// CountWebAuthnKeys counts user id's keys.
func (s *Store) CountWebAuthnKeys(ctx context.Context, q Querier, userID string) (int, error) {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM auth_webauthn_keys WHERE user_id = ?`, userID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count security keys: %w", err)
	}
	return n, nil
}

// UseWebAuthnKey records an accepted use of key id: the updated credential
// record, its signature counter, when and from where; but only if
// signCount advances the stored counter (is larger, or both are 0: an
// authenticator without a counter). The check is the UPDATE's own WHERE,
// so it judges the counter current inside tx, not the one read when the
// assertion was verified: of two uses of one key verified against the
// same stored counter, the one finishing last cannot write back a lower
// counter. A counter that does not advance is ErrStale (nothing is
// written); a key that is gone (or another user's) is ErrNotFound.
func (s *Store) UseWebAuthnKey(ctx context.Context, tx *sql.Tx, userID, id string, credential []byte, signCount uint32, ip string, now time.Time) error {
	n := int64(signCount)
	res, err := tx.ExecContext(ctx, `UPDATE auth_webauthn_keys SET credential = ?, sign_count = ?, last_used_at = ?, last_used_ip = ?
		WHERE id = ? AND user_id = ? AND (sign_count < ? OR (sign_count = 0 AND ? = 0))`,
		credential, n, nanos(now), ip, id, userID, n, n)
	if err != nil {
		return fmt.Errorf("use security key: %w", err)
	}
	rows, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("use security key: %w", err)
	}
	if rows == 1 {
		return nil
	}
	var stored int64
	err = tx.QueryRowContext(ctx, `SELECT sign_count FROM auth_webauthn_keys WHERE id = ? AND user_id = ?`, id, userID).Scan(&stored)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("use security key: %w", ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("use security key: %w", err)
	}
	return fmt.Errorf("use security key: signature counter %d, stored %d: %w", signCount, stored, ErrStale)
}

// FlagWebAuthnClone marks key id as possibly cloned and returns its
// stored signature counter (the last one accepted).
func (s *Store) FlagWebAuthnClone(ctx context.Context, tx *sql.Tx, userID, id string) (uint32, error) {
	var stored int64
	err := tx.QueryRowContext(ctx, `UPDATE auth_webauthn_keys SET clone_warning = 1 WHERE id = ? AND user_id = ? RETURNING sign_count`, id, userID).Scan(&stored)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("flag security key: %w", ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("flag security key: %w", err)
	}
	return uint32(stored), nil
}

// DeleteWebAuthnKey removes key id of user userID; another user's key (or
// none) is ErrNotFound.
func (s *Store) DeleteWebAuthnKey(ctx context.Context, tx *sql.Tx, userID, id string) error {
	res, err := tx.ExecContext(ctx, `DELETE FROM auth_webauthn_keys WHERE id = ? AND user_id = ?`, id, userID)
	return affected("delete security key", res, err)
}

// WebAuthnCeremony is a begun, unfinished WebAuthn ceremony.
type WebAuthnCeremony struct {
	ID        string
	UserID    string
	SessionID string
	// Kind is "register", "login" or "stepup".
	Kind      string
	Binding   string
	Data      []byte
	CreatedAt time.Time
	ExpiresAt time.Time
}

// AddWebAuthnCeremony stores a begun ceremony, first deleting the user's
// expired ones (so the table holds only live ceremonies).
func (s *Store) AddWebAuthnCeremony(ctx context.Context, tx *sql.Tx, c WebAuthnCeremony) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM auth_webauthn_ceremonies WHERE user_id = ? AND expires_at <= ?`, c.UserID, nanos(c.CreatedAt)); err != nil {
		return fmt.Errorf("prune ceremonies: %w", err)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO auth_webauthn_ceremonies (id, user_id, session_id, kind, binding, data, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, c.ID, c.UserID, c.SessionID, c.Kind, c.Binding, c.Data, nanos(c.CreatedAt), nanos(c.ExpiresAt))
	if err != nil {
		return fmt.Errorf("add ceremony: %w", err)
	}
	return nil
}

// TakeWebAuthnCeremony deletes and returns ceremony id if it belongs to
// userID, was begun by sessionID, is of kind and has not expired at now;
// anything else is ErrNotFound. Taking it is what makes it single-use: a
// second finish finds nothing.
func (s *Store) TakeWebAuthnCeremony(ctx context.Context, tx *sql.Tx, id, userID, sessionID, kind string, now time.Time) (WebAuthnCeremony, error) {
	var c WebAuthnCeremony
	var created, expires int64
	err := tx.QueryRowContext(ctx, `DELETE FROM auth_webauthn_ceremonies WHERE id = ? AND user_id = ? AND session_id = ? AND kind = ?
		RETURNING id, user_id, session_id, kind, binding, data, created_at, expires_at`, id, userID, sessionID, kind).
		Scan(&c.ID, &c.UserID, &c.SessionID, &c.Kind, &c.Binding, &c.Data, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("ceremony: %w", ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("take ceremony: %w", err)
	}
	c.CreatedAt, c.ExpiresAt = fromNanos(created), fromNanos(expires)
	if !now.Before(c.ExpiresAt) {
		return c, fmt.Errorf("ceremony expired: %w", ErrNotFound)
	}
	return c, nil
}

// Setting returns the appliance setting key ("" when unset).
func (s *Store) Setting(ctx context.Context, q Querier, key string) (string, error) {
	var v string
	err := q.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("setting %s: %w", key, err)
	}
	return v, nil
}

// SetSetting stores the appliance setting key.
func (s *Store) SetSetting(ctx context.Context, tx *sql.Tx, key, value string) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value); err != nil {
		return fmt.Errorf("set setting %s: %w", key, err)
	}
	return nil
}
