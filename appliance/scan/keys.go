package scan

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/store"
	"firewalliq/audit"
	"firewalliq/probe/keys"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// Errors of the signing-key registry.
var (
	// ErrKeyNotFound means no scope-signing key has that id in the
	// caller's tenant.
	ErrKeyNotFound = errors.New("scope-signing key not found")
	// ErrKeyExists means the public key is already registered (by anyone:
	// a key belongs to one person).
	ErrKeyExists = errors.New("scope-signing key already registered")
	// ErrKeyRevoked means the key was revoked; it signs and trusts nothing.
	ErrKeyRevoked = errors.New("scope-signing key revoked")
	// ErrKeyNotHeld means the appliance holds no private key for that id
	// (the key was registered as a public key only).
	ErrKeyNotHeld = errors.New("appliance holds no private key for this scope-signing key")
)

// Sealer seals and opens secrets with the appliance master key;
// *keyring.Keyring implements it.
type Sealer interface {
	Seal(plaintext, ad []byte) ([]byte, error)
	Open(sealed, ad []byte) ([]byte, error)
}

// Keys is the registry of scope-signing keys: each belongs to one security
// lead of one tenant, and a scope is trusted only if it verifies against an
// active key whose owner is, at that moment, an enabled security lead of
// the scope's tenant (Trusted).
type Keys struct {
	st      *store.Store
	auth    *auth.Service
	rec     auth.Recorder
	seal    Sealer
	profile safety.Profile
	now     func() time.Time
	// onRevoke stops what depended on a revoked key (set by the scan
	// service: requests not yet running, their pending approvals).
	onRevoke    func(ctx context.Context, tx *sql.Tx, tenant, keyID string) ([]string, error)
	afterRevoke func(ctx context.Context, p auth.Principal, approvals []string)
}

// SigningKey is a registered scope-signing key.
type SigningKey struct {
	ID        string `json:"id"`
	Tenant    string `json:"tenant"`
	UserID    string `json:"user_id"`
	Name      string `json:"name"`
	Public    string `json:"public"` // probe/keys public key file format
	Held      bool   `json:"held"`   // the appliance holds the private key, sealed
	State     string `json:"state"`  // active or revoked
	CreatedAt string `json:"created_at"`
	RevokedAt string `json:"revoked_at,omitempty"`
	RevokedBy string `json:"revoked_by,omitempty"`
}

// Key states.
const (
	KeyActive  = "active"
	KeyRevoked = "revoked"
)

// maxKeyName bounds a key's display name.
const maxKeyName = 64

// KeyAddRequest is the canonical request a key registration's step-up
// binds to (OpScopeKeyAdd): the tenant, the key id and the name. A held
// key (Generate) binds key_id "generate".
func KeyAddRequest(tenant, keyID, name string) []byte {
	return auth.OpRequest(auth.OpScopeKeyAdd, tenant, map[string]string{"key_id": keyID, "name": name})
}

// KeyRevokeRequest is the canonical request a key revocation's step-up
// binds to (OpScopeKeyRevoke).
func KeyRevokeRequest(tenant, keyID string) []byte {
	return auth.OpRequest(auth.OpScopeKeyRevoke, tenant, map[string]string{"key_id": keyID})
}

// SignRequest is the canonical request a held-key signature's step-up
// binds to (OpScopeSign): the key and the SHA-256 of the scope's
// canonical document.
func SignRequest(tenant, keyID, scopeSHA256 string) []byte {
	return auth.OpRequest(auth.OpScopeSign, tenant, map[string]string{"key_id": keyID, "scope_sha256": scopeSHA256})
}

func (k *Keys) entry(p auth.Principal, tenant string, action audit.Action, object string, details map[string]any) audit.Entry {
	d, _ := json.Marshal(details)
	return audit.Entry{Tenant: tenant, ActorID: p.UserID, ActorName: p.Name, ActorIP: p.Client.IP, UserAgent: p.Client.UserAgent,
		Action: action, Object: object, Details: d}
}

// stepUp runs fn in a transaction after spending p's step-up for op on
// request (code, or a grant made earlier for the same bytes); a missing or
// wrong step-up is audited after the rollback.
func (k *Keys) stepUp(ctx context.Context, p auth.Principal, pin string, op auth.Operation, request []byte, code string, fn func(tx *sql.Tx) error) error {
	var stepErr error
	err := k.st.InTx(ctx, func(tx *sql.Tx) error {
		if err := k.auth.UseStepUp(ctx, tx, p, op, request, code); err != nil {
			stepErr = err
			return err
		}
		return fn(tx)
	})
	if stepErr != nil {
		return k.auth.StepUpRefused(ctx, p, pin, op, stepErr)
	}
	return err
}

func validKeyName(name string) error {
	if name == "" || len(name) > maxKeyName || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("%w: key name must be 1..%d printable characters", auth.ErrInvalid, maxKeyName)
	}
	return nil
}

// Add registers p's own scope-signing public key (probe/keys public key
// format, as `firewalliq keygen` writes it) under name in tenant ("" for
// p's own), after p's step-up for KeyAddRequest(tenant id, key id, name).
// Security leads only; audited as scope.key.add with the key id.
func (k *Keys) Add(ctx context.Context, p auth.Principal, tenant, name string, public []byte, code string) (SigningKey, error) {
	pin, err := k.auth.Authorize(ctx, p, auth.OpScopeKeyAdd, tenant)
	if err != nil {
		return SigningKey{}, fmt.Errorf("add scope key: %w", err)
	}
	if err := validKeyName(name); err != nil {
		return SigningKey{}, fmt.Errorf("add scope key: %w", err)
	}
	pub, err := keys.ParsePublic(public)
	if err != nil {
		return SigningKey{}, fmt.Errorf("add scope key: %w: %w", auth.ErrInvalid, err)
	}
	return k.insert(ctx, p, pin, name, pub, nil, code, KeyAddRequest(pin, keys.ID(pub), name))
}

// Generate has the appliance make a scope-signing key pair for p and hold
// the private key sealed with the master key; the private key never leaves
// the appliance, and Sign uses it after a step-up. The step-up binds to
// KeyAddRequest(tenant id, "generate", name). Audited as scope.key.add
// with held=true.
func (k *Keys) Generate(ctx context.Context, p auth.Principal, tenant, name, code string) (SigningKey, error) {
	pin, err := k.auth.Authorize(ctx, p, auth.OpScopeKeyAdd, tenant)
	if err != nil {
		return SigningKey{}, fmt.Errorf("generate scope key: %w", err)
	}
	if err := validKeyName(name); err != nil {
		return SigningKey{}, fmt.Errorf("generate scope key: %w", err)
	}
	if k.seal == nil {
		return SigningKey{}, errors.New("generate scope key: no master key to seal with")
	}
	pub, priv, err := keys.Generate(nil)
	if err != nil {
		return SigningKey{}, err
	}
	sealed, err := k.seal.Seal(priv.Seed(), []byte("scope-key:"+keys.ID(pub)))
	if err != nil {
		return SigningKey{}, fmt.Errorf("generate scope key: %w", err)
	}
	return k.insert(ctx, p, pin, name, pub, sealed, code, KeyAddRequest(pin, "generate", name))
}

func (k *Keys) insert(ctx context.Context, p auth.Principal, pin, name string, pub ed25519.PublicKey, sealed []byte, code string, request []byte) (SigningKey, error) {
	id := keys.ID(pub)
	pubText, err := keys.MarshalPublic(pub)
	if err != nil {
		return SigningKey{}, err
	}
	at := k.now().UTC().Format(time.RFC3339Nano)
	err = k.stepUp(ctx, p, pin, auth.OpScopeKeyAdd, request, code, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO scope_keys (id, tenant_id, user_id, name, public, sealed_private, state, created_at) VALUES (?, ?, ?, ?, ?, ?, 'active', ?)`,
			id, pin, p.UserID, name, []byte(pub), sealed, at)
		if err != nil {
			if strings.Contains(err.Error(), "UNIQUE") || strings.Contains(err.Error(), "PRIMARY KEY") {
				return fmt.Errorf("%w: %s", ErrKeyExists, id)
			}
			return err
		}
		_, err = k.rec.Record(ctx, tx, k.entry(p, pin, audit.ActScopeKeyAdd, "scope-key:"+id, map[string]any{"key_id": id, "name": name, "held": sealed != nil}))
		return err
	})
	if err != nil {
		return SigningKey{}, fmt.Errorf("add scope key %s: %w", id, err)
	}
	return SigningKey{ID: id, Tenant: pin, UserID: p.UserID, Name: name, Public: strings.TrimSpace(string(pubText)), Held: sealed != nil, State: KeyActive, CreatedAt: at}, nil
}

const keyCols = `SELECT id, tenant_id, user_id, name, public, sealed_private IS NOT NULL, state, created_at, revoked_at, revoked_by FROM scope_keys`

func scanKey(r interface{ Scan(...any) error }) (SigningKey, error) {
	var sk SigningKey
	var pub []byte
	if err := r.Scan(&sk.ID, &sk.Tenant, &sk.UserID, &sk.Name, &pub, &sk.Held, &sk.State, &sk.CreatedAt, &sk.RevokedAt, &sk.RevokedBy); err != nil {
		return SigningKey{}, err
	}
	if b, err := keys.MarshalPublic(ed25519.PublicKey(pub)); err == nil {
		sk.Public = strings.TrimSpace(string(b))
	}
	return sk, nil
}

// List returns the scope-signing keys of tenant ("" for p's own), active
// and revoked, oldest first.
func (k *Keys) List(ctx context.Context, p auth.Principal, tenant string) ([]SigningKey, error) {
	pin, err := k.auth.Authorize(ctx, p, auth.OpScopeKeyList, tenant)
	if err != nil {
		return nil, fmt.Errorf("list scope keys: %w", err)
	}
	rows, err := k.st.DB().QueryContext(ctx, keyCols+` WHERE tenant_id = ? ORDER BY created_at, id`, pin)
	if err != nil {
		return nil, fmt.Errorf("list scope keys: %w", err)
	}
	defer rows.Close()
	out := []SigningKey{}
	for rows.Next() {
		sk, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list scope keys: %w", err)
		}
		out = append(out, sk)
	}
	return out, rows.Err()
}

// get reads key id of tenant pin, or ErrKeyNotFound (audited through
// RefuseNotFound, so probing other tenants' ids is recorded).
func (k *Keys) get(ctx context.Context, p auth.Principal, pin string, op auth.Operation, id string) (SigningKey, error) {
	sk, err := scanKey(k.st.DB().QueryRowContext(ctx, keyCols+` WHERE tenant_id = ? AND id = ?`, pin, id))
	if errors.Is(err, sql.ErrNoRows) {
		return SigningKey{}, k.auth.RefuseNotFound(ctx, p, pin, op, "scope-key:"+id, fmt.Errorf("%w: %s: %w", ErrKeyNotFound, id, store.ErrNotFound))
	}
	return sk, err
}

// Revoke revokes scope-signing key id of tenant ("" for p's own) after
// p's step-up for KeyRevokeRequest(tenant id, id). A security lead may
// revoke their own keys, an admin any of the tenant's. From then on the
// key trusts nothing: no scope signed by it registers, no scan of its
// scopes is requested, started, dispatched or resumed (the runner checks
// again), and requests of its scopes that were not yet running are
// cancelled, their pending approvals voided. Audited as scope.key.revoke
// with the key id and the requests it stopped.
func (k *Keys) Revoke(ctx context.Context, p auth.Principal, tenant, id, reason, code string) (SigningKey, error) {
	pin, err := k.auth.Authorize(ctx, p, auth.OpScopeKeyRevoke, tenant)
	if err != nil {
		return SigningKey{}, fmt.Errorf("revoke scope key: %w", err)
	}
	sk, err := k.get(ctx, p, pin, auth.OpScopeKeyRevoke, id)
	if err != nil {
		return SigningKey{}, fmt.Errorf("revoke scope key: %w", err)
	}
	if p.Role == store.RoleSecurityLead && sk.UserID != p.UserID {
		return SigningKey{}, fmt.Errorf("revoke scope key %s: %w", id, k.auth.Refuse(ctx, p, pin, auth.OpScopeKeyRevoke, "scope-key:"+id,
			"another user's key", fmt.Errorf("%w: security leads revoke only their own keys", auth.ErrForbidden)))
	}
	if sk.State == KeyRevoked {
		return SigningKey{}, fmt.Errorf("revoke scope key %s: %w", id, ErrKeyRevoked)
	}
	at := k.now().UTC().Format(time.RFC3339Nano)
	var approvals []string
	err = k.stepUp(ctx, p, pin, auth.OpScopeKeyRevoke, KeyRevokeRequest(pin, id), code, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE scope_keys SET state = 'revoked', revoked_at = ?, revoked_by = ? WHERE tenant_id = ? AND id = ? AND state = 'active'`, at, p.UserID, pin, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("%w: %s", ErrKeyRevoked, id)
		}
		var stopped []string
		if k.onRevoke != nil {
			if stopped, approvals, err = k.stopForKey(ctx, tx, pin, id); err != nil {
				return err
			}
		}
		_, err = k.rec.Record(ctx, tx, k.entry(p, pin, audit.ActScopeKeyRevoke, "scope-key:"+id, map[string]any{"key_id": id, "reason": reason, "requests": stopped}))
		return err
	})
	if err != nil {
		return SigningKey{}, fmt.Errorf("revoke scope key %s: %w", id, err)
	}
	if k.afterRevoke != nil {
		k.afterRevoke(ctx, p, approvals)
	}
	sk.State, sk.RevokedAt, sk.RevokedBy = KeyRevoked, at, p.UserID
	return sk, nil
}

// stopForKey asks the scan service to stop the requests of scopes signed
// by key id; it returns their ids and their approvals to void.
func (k *Keys) stopForKey(ctx context.Context, tx *sql.Tx, pin, id string) ([]string, []string, error) {
	approvals, err := pendingApprovals(ctx, tx, pin, "scope_key_id = ?", id)
	if err != nil {
		return nil, nil, err
	}
	stopped, err := k.onRevoke(ctx, tx, pin, id)
	return stopped, approvals, err
}

// Sign signs doc with p's appliance-held key id, after p's step-up for
// SignRequest(tenant id, id, the document's canonical SHA-256), and
// returns the signed envelope (which Scopes.Register then accepts). The
// document must fit the safety profile and name p's tenant. Audited as
// scope.sign with the key id and the scope hash.
func (k *Keys) Sign(ctx context.Context, p auth.Principal, tenant, id string, doc scope.Document, code string) ([]byte, error) {
	pin, err := k.auth.Authorize(ctx, p, auth.OpScopeSign, tenant)
	if err != nil {
		return nil, fmt.Errorf("sign scope: %w", err)
	}
	sk, err := k.get(ctx, p, pin, auth.OpScopeSign, id)
	if err != nil {
		return nil, fmt.Errorf("sign scope: %w", err)
	}
	switch {
	case sk.UserID != p.UserID:
		return nil, fmt.Errorf("sign scope: %w", k.auth.Refuse(ctx, p, pin, auth.OpScopeSign, "scope-key:"+id, "another user's key", fmt.Errorf("%w: the key is another user's", auth.ErrForbidden)))
	case sk.State != KeyActive:
		return nil, fmt.Errorf("sign scope: %w: %s", ErrKeyRevoked, id)
	case !sk.Held:
		return nil, fmt.Errorf("sign scope: %w: %s", ErrKeyNotHeld, id)
	}
	var sealed []byte
	if err := k.st.DB().QueryRowContext(ctx, `SELECT sealed_private FROM scope_keys WHERE id = ?`, id).Scan(&sealed); err != nil {
		return nil, fmt.Errorf("sign scope: %w", err)
	}
	seed, err := k.seal.Open(sealed, []byte("scope-key:"+id))
	if err != nil {
		return nil, fmt.Errorf("sign scope: %w", err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	if err := sameTenant(ctx, k.st, pin, doc.Tenant); err != nil {
		return nil, fmt.Errorf("sign scope %q: %w", doc.ID, err)
	}
	doc.SignerKeyID = id
	signed, err := scope.Sign(doc, priv)
	if err != nil {
		return nil, fmt.Errorf("sign scope: %w", err)
	}
	sc, err := scope.Verify(signed, priv.Public().(ed25519.PublicKey), k.now(), k.profile)
	if err != nil {
		return nil, fmt.Errorf("sign scope: %w", err)
	}
	err = k.stepUp(ctx, p, pin, auth.OpScopeSign, SignRequest(pin, id, sc.SHA256()), code, func(tx *sql.Tx) error {
		_, err := k.rec.Record(ctx, tx, k.entry(p, pin, audit.ActScopeSign, "scope:"+doc.ID, map[string]any{"key_id": id, "scope_sha256": sc.SHA256(), "environment": doc.Environment}))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sign scope %q: %w", doc.ID, err)
	}
	return signed, nil
}

// Trusted returns the public keys trusted to sign tenant's scopes now:
// active keys whose owner is an enabled security lead of that tenant.
// tenant is an id or a tenant name (a scope document names either). The
// local runner asks it again before running a job.
func (k *Keys) Trusted(ctx context.Context, tenant string) ([]ed25519.PublicKey, error) {
	return trustedKeys(ctx, k.st, tenant)
}

func trustedKeys(ctx context.Context, st *store.Store, tenant string) ([]ed25519.PublicKey, error) {
	rows, err := st.DB().QueryContext(ctx, `SELECT k.public FROM scope_keys k
		JOIN tenants t ON t.id = k.tenant_id
		JOIN users u ON u.id = k.user_id
		WHERE (t.id = ? OR t.name = ?) AND k.state = 'active'
		  AND u.tenant_id = k.tenant_id AND u.role = 'security_lead' AND u.disabled = 0
		ORDER BY k.id`, tenant, tenant)
	if err != nil {
		return nil, fmt.Errorf("trusted scope keys: %w", err)
	}
	defer rows.Close()
	var out []ed25519.PublicKey
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("trusted scope keys: %w", err)
		}
		if len(b) == ed25519.PublicKeySize {
			out = append(out, ed25519.PublicKey(b))
		}
	}
	return out, rows.Err()
}

// trustedKey returns the trusted key of tenant with id, or ErrUntrusted.
func trustedKey(ctx context.Context, st *store.Store, tenant, id string) (ed25519.PublicKey, error) {
	ks, err := trustedKeys(ctx, st, tenant)
	if err != nil {
		return nil, err
	}
	for _, k := range ks {
		if keys.ID(k) == id {
			return k, nil
		}
	}
	return nil, fmt.Errorf("%w: key %s is not an active key of a security lead of this tenant", ErrUntrusted, id)
}
