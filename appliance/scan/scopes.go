package scan

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/store"
	"firewalliq/audit"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// Sentinel errors.
var (
	// ErrUntrusted means a scope document is not signed by a key the
	// appliance trusts.
	ErrUntrusted = errors.New("scope not signed by a trusted key")
	// ErrWrongTenant means a scope document names another tenant than the
	// one it is registered in.
	ErrWrongTenant = errors.New("scope document names another tenant")
	// ErrNotFound means no scope has that id in the caller's tenant.
	ErrNotFound = errors.New("scope not found")
	// ErrExists means a scope with that id is already registered.
	ErrExists = errors.New("scope already registered")
)

// MaxDocument bounds a signed scope document's size.
const MaxDocument = 1 << 20

// Gate is the identity service as the scan services need it;
// *auth.Service implements it.
type Gate interface {
	Authorize(ctx context.Context, p auth.Principal, op auth.Operation, tenant string) (string, error)
	RefuseNotFound(ctx context.Context, p auth.Principal, tenant string, op auth.Operation, object string, err error) error
}

// Scopes is the scope registry.
type Scopes struct {
	st      *store.Store
	gate    Gate
	auth    *auth.Service
	rec     auth.Recorder
	profile safety.Profile
	now     func() time.Time
	// stop cancels the requests of a revoked scope (set by the scan
	// service) and returns their ids and their approvals to void.
	stop func(ctx context.Context, tx *sql.Tx, tenant, scopeID string) ([]string, []string, error)
	// voidAll voids approvals after a revocation committed.
	voidAll func(ctx context.Context, p auth.Principal, approvals []string)
}

// Deps are the scan services' dependencies.
type Deps struct {
	Store *store.Store
	// Gate is the identity service; Auth is the same, for step-up and
	// approvals (a *auth.Service).
	Gate    Gate
	Auth    *auth.Service
	Journal auth.Recorder
	// Seal seals appliance-held scope-signing keys (the keyring).
	Seal Sealer
	// Profile is the compiled-in safety profile scopes must fit.
	Profile safety.Profile
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

func (d *Deps) check() error {
	if d.Gate == nil && d.Auth != nil {
		d.Gate = d.Auth
	}
	if d.Store == nil || d.Gate == nil || d.Journal == nil {
		return errors.New("scan: Store, Gate and Journal are required")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return nil
}

// NewScopes checks deps and returns the registry.
func NewScopes(d Deps) (*Scopes, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	return &Scopes{st: d.Store, gate: d.Gate, auth: d.Auth, rec: d.Journal, profile: d.Profile, now: d.Now}, nil
}

// NewKeys checks deps and returns the scope-signing key registry.
func NewKeys(d Deps) (*Keys, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	if d.Auth == nil {
		return nil, errors.New("scan: Auth is required")
	}
	return &Keys{st: d.Store, auth: d.Auth, rec: d.Journal, seal: d.Seal, profile: d.Profile, now: d.Now}, nil
}

// Scope is a registered scope.
type Scope struct {
	ID          string `json:"id"`
	Tenant      string `json:"tenant"`
	Name        string `json:"name"`
	Environment string `json:"environment"`
	SHA256      string `json:"sha256"`
	SignerKeyID string `json:"signer_key_id"`
	CreatedAt   string `json:"created_at"`
	// RevokedAt is set once the scope was revoked (Revoke).
	RevokedAt string `json:"revoked_at,omitempty"`
	// Document is the signed envelope exactly as registered.
	Document json.RawMessage `json:"document"`
}

func scopeOf(sc store.Scope) Scope {
	s := Scope{ID: sc.ID, Tenant: sc.TenantID, Name: sc.Name, Environment: sc.Environment, SHA256: sc.SHA256, CreatedAt: sc.CreatedAt, Document: sc.Document}
	if _, sig, err := scope.Open(sc.Document); err == nil {
		s.SignerKeyID = sig.KeyID
	}
	return s
}

// Register verifies signed (a scope envelope: signed by an active key of a
// security lead of the caller's tenant (Keys), valid
// now, fitting the safety profile, naming the caller's tenant by id or
// name) and stores it in the caller's tenant, audited as scope.register
// with the document's SHA-256 in the same transaction. Security leads only
// (scope.register).
func (s *Scopes) Register(ctx context.Context, p auth.Principal, tenant string, signed []byte) (Scope, error) {
	pin, err := s.gate.Authorize(ctx, p, auth.OpScopeRegister, tenant)
	if err != nil {
		return Scope{}, fmt.Errorf("register scope: %w", err)
	}
	if len(signed) == 0 || len(signed) > MaxDocument {
		return Scope{}, fmt.Errorf("register scope: %w: document must be 1..%d bytes", scope.ErrInvalid, MaxDocument)
	}
	_, sig, err := scope.Open(signed)
	if err != nil {
		return Scope{}, fmt.Errorf("register scope: %w", err)
	}
	pub, err := trustedKey(ctx, s.st, pin, sig.KeyID)
	if err != nil {
		return Scope{}, fmt.Errorf("register scope: %w", err)
	}
	sc, err := scope.Verify(signed, pub, s.now(), s.profile)
	if err != nil {
		return Scope{}, fmt.Errorf("register scope: %w", err)
	}
	doc := sc.Doc
	if err := sameTenant(ctx, s.st, pin, doc.Tenant); err != nil {
		return Scope{}, fmt.Errorf("register scope %q: %w", doc.ID, err)
	}
	ts, err := s.st.Tenant(pin)
	if err != nil {
		return Scope{}, fmt.Errorf("register scope: %w", err)
	}
	sum := sha256.Sum256(signed)
	hexSum := hex.EncodeToString(sum[:])
	var out store.Scope
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = ts.CreateScope(ctx, tx, store.Scope{ID: doc.ID, Name: doc.Name, Environment: doc.Environment, Document: signed, SHA256: hexSum})
		if errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("%w: %w", ErrExists, err)
		}
		if err != nil {
			return err
		}
		d, _ := json.Marshal(map[string]any{"sha256": hexSum, "signer_key_id": sig.KeyID, "name": doc.Name, "environment": doc.Environment,
			"not_before": doc.NotBefore.UTC().Format(time.RFC3339), "not_after": doc.NotAfter.UTC().Format(time.RFC3339)})
		_, err = s.rec.Record(ctx, tx, audit.Entry{Tenant: pin, ActorID: p.UserID, ActorName: p.Name, ActorIP: p.Client.IP, UserAgent: p.Client.UserAgent,
			Action: audit.ActScopeRegister, Object: "scope:" + doc.ID, Details: d})
		return err
	})
	if err != nil {
		return Scope{}, fmt.Errorf("register scope %q: %w", doc.ID, err)
	}
	return scopeOf(out), nil
}

// sameTenant checks that the document's tenant (an id or a name) is pin.
func sameTenant(ctx context.Context, st *store.Store, pin, named string) error {
	if named == pin {
		return nil
	}
	ts, err := st.ListTenants(ctx)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if t.ID == pin && t.Name == named {
			return nil
		}
	}
	return fmt.Errorf("%w: %q", ErrWrongTenant, named)
}

// List returns the caller's tenant's scopes, by name.
func (s *Scopes) List(ctx context.Context, p auth.Principal, tenant string) ([]Scope, error) {
	ts, err := s.scoped(ctx, p, tenant)
	if err != nil {
		return nil, err
	}
	scs, err := ts.ListScopes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Scope, 0, len(scs))
	for _, sc := range scs {
		o := scopeOf(sc)
		if o.RevokedAt, err = revokedAt(ctx, s.st.DB(), ts.ID(), sc.ID); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// Get returns one of the caller's tenant's scopes; another tenant's id is
// refused (and audited) like a missing one, wrapping ErrNotFound.
func (s *Scopes) Get(ctx context.Context, p auth.Principal, tenant, id string) (Scope, error) {
	ts, err := s.scoped(ctx, p, tenant)
	if err != nil {
		return Scope{}, err
	}
	sc, err := ts.Scope(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return Scope{}, fmt.Errorf("scope %q: %w", id, s.gate.RefuseNotFound(ctx, p, ts.ID(), auth.OpScopeRead, "scope:"+id, fmt.Errorf("%w: %w", ErrNotFound, err)))
		}
		return Scope{}, err
	}
	out := scopeOf(sc)
	if out.RevokedAt, err = revokedAt(ctx, s.st.DB(), ts.ID(), sc.ID); err != nil {
		return Scope{}, err
	}
	return out, nil
}

func (s *Scopes) scoped(ctx context.Context, p auth.Principal, tenant string) (*store.TenantStore, error) {
	pin, err := s.gate.Authorize(ctx, p, auth.OpScopeRead, tenant)
	if err != nil {
		return nil, fmt.Errorf("scopes: %w", err)
	}
	return s.st.Tenant(pin)
}

// ErrScopeRevoked means the scope was revoked: no new scan runs under it.
var ErrScopeRevoked = errors.New("scope revoked")

// revokedAt returns when tenant's scope id was revoked, "" if it was not.
func revokedAt(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, tenant, id string) (string, error) {
	var at string
	err := q.QueryRowContext(ctx, `SELECT revoked_at FROM scope_revocations WHERE tenant_id = ? AND scope_id = ?`, tenant, id).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("scope %q revocation: %w", id, err)
	}
	return at, nil
}

// ScopeRevokeRequest is the canonical request a scope revocation's step-up
// binds to (OpScopeRevoke).
func ScopeRevokeRequest(tenant, scopeID string) []byte {
	return auth.OpRequest(auth.OpScopeRevoke, tenant, map[string]string{"scope": scopeID})
}

// Revoke revokes tenant's ("" for p's own) scope id after p's step-up for
// ScopeRevokeRequest(tenant id, id): no scan is requested, started,
// dispatched or resumed under it any more; requests not yet running are
// cancelled and their pending approvals voided. The scope's document and
// history stay. Security leads only; audited as scope.revoke with the
// scope hash and the requests stopped.
func (s *Scopes) Revoke(ctx context.Context, p auth.Principal, tenant, id, reason, code string) (Scope, error) {
	pin, err := s.gate.Authorize(ctx, p, auth.OpScopeRevoke, tenant)
	if err != nil {
		return Scope{}, fmt.Errorf("revoke scope: %w", err)
	}
	if s.auth == nil {
		return Scope{}, errors.New("revoke scope: no identity service for step-up")
	}
	ts, err := s.st.Tenant(pin)
	if err != nil {
		return Scope{}, err
	}
	sc, err := ts.Scope(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return Scope{}, fmt.Errorf("scope %q: %w", id, s.gate.RefuseNotFound(ctx, p, pin, auth.OpScopeRevoke, "scope:"+id, fmt.Errorf("%w: %w", ErrNotFound, err)))
		}
		return Scope{}, err
	}
	if at, err := revokedAt(ctx, s.st.DB(), pin, id); err != nil {
		return Scope{}, err
	} else if at != "" {
		return Scope{}, fmt.Errorf("revoke scope %q: %w (at %s)", id, ErrScopeRevoked, at)
	}
	at := s.now().UTC().Format(time.RFC3339Nano)
	var approvals []string
	var stepErr error
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.auth.UseStepUp(ctx, tx, p, auth.OpScopeRevoke, ScopeRevokeRequest(pin, id), code); err != nil {
			stepErr = err
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO scope_revocations (tenant_id, scope_id, revoked_at, revoked_by, reason) VALUES (?, ?, ?, ?, ?)`, pin, id, at, p.UserID, reason); err != nil {
			return err
		}
		var stopped []string
		if s.stop != nil {
			var err error
			if stopped, approvals, err = s.stop(ctx, tx, pin, id); err != nil {
				return err
			}
		}
		d, _ := json.Marshal(map[string]any{"sha256": sc.SHA256, "reason": reason, "requests": stopped})
		_, err := s.rec.Record(ctx, tx, audit.Entry{Tenant: pin, ActorID: p.UserID, ActorName: p.Name, ActorIP: p.Client.IP, UserAgent: p.Client.UserAgent,
			Action: audit.ActScopeRevoke, Object: "scope:" + id, Details: d})
		return err
	})
	if stepErr != nil {
		return Scope{}, fmt.Errorf("revoke scope %q: %w", id, s.auth.StepUpRefused(ctx, p, pin, auth.OpScopeRevoke, stepErr))
	}
	if err != nil {
		return Scope{}, fmt.Errorf("revoke scope %q: %w", id, err)
	}
	if s.voidAll != nil {
		s.voidAll(ctx, p, approvals)
	}
	out := scopeOf(sc)
	out.RevokedAt = at
	return out, nil
}
