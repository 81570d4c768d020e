// Package scan holds the appliance's scan-side services. Today: the scope
// registry (Scopes: register a signed scope document, list, get) and the
// record of locally run scans (Runs: start and completion entries). Scan
// requests, signed jobs, queueing and scheduling (issue 12) join them here.
package scan

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/store"
	"firewalliq/audit"
	"firewalliq/probe/keys"
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

// Trust returns the public keys allowed to sign scope documents.
type Trust func(ctx context.Context) ([]ed25519.PublicKey, error)

// TrustDir is a Trust that reads every *.pub file (probe/keys format) in
// dir; a missing directory trusts nothing. It is read at each registration,
// so a key placed there by the operator counts at once. (Issue 12 replaces
// it with signing keys registered per security lead.)
func TrustDir(dir string) Trust {
	return func(ctx context.Context) ([]ed25519.PublicKey, error) {
		names, err := filepath.Glob(filepath.Join(dir, "*.pub"))
		if err != nil {
			return nil, fmt.Errorf("trusted scope keys: %w", err)
		}
		sort.Strings(names)
		var out []ed25519.PublicKey
		for _, n := range names {
			pub, err := keys.ReadPublic(n)
			if err != nil {
				return nil, fmt.Errorf("trusted scope keys: %w", err)
			}
			out = append(out, pub)
		}
		return out, nil
	}
}

// Scopes is the scope registry.
type Scopes struct {
	st      *store.Store
	gate    Gate
	rec     auth.Recorder
	trust   Trust
	profile safety.Profile
	now     func() time.Time
}

// Deps are the scan services' dependencies.
type Deps struct {
	Store   *store.Store
	Gate    Gate
	Journal auth.Recorder
	// Trust lists the keys that may sign scopes (Scopes only).
	Trust Trust
	// Profile is the compiled-in safety profile scopes must fit.
	Profile safety.Profile
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

func (d *Deps) check() error {
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
	if d.Trust == nil {
		return nil, errors.New("scan: Trust is required")
	}
	return &Scopes{st: d.Store, gate: d.Gate, rec: d.Journal, trust: d.Trust, profile: d.Profile, now: d.Now}, nil
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

// Register verifies signed (a scope envelope: signed by a trusted key, valid
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
	trusted, err := s.trust(ctx)
	if err != nil {
		return Scope{}, fmt.Errorf("register scope: %w", err)
	}
	var pub ed25519.PublicKey
	for _, k := range trusted {
		if keys.ID(k) == sig.KeyID {
			pub = k
		}
	}
	if pub == nil {
		return Scope{}, fmt.Errorf("register scope: %w: key %s", ErrUntrusted, sig.KeyID)
	}
	sc, err := scope.Verify(signed, pub, s.now(), s.profile)
	if err != nil {
		return Scope{}, fmt.Errorf("register scope: %w", err)
	}
	doc := sc.Doc
	if err := s.sameTenant(ctx, pin, doc.Tenant); err != nil {
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
func (s *Scopes) sameTenant(ctx context.Context, pin, named string) error {
	if named == pin {
		return nil
	}
	ts, err := s.st.ListTenants(ctx)
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
		out = append(out, scopeOf(sc))
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
	return scopeOf(sc), nil
}

func (s *Scopes) scoped(ctx context.Context, p auth.Principal, tenant string) (*store.TenantStore, error) {
	pin, err := s.gate.Authorize(ctx, p, auth.OpScopeRead, tenant)
	if err != nil {
		return nil, fmt.Errorf("scopes: %w", err)
	}
	return s.st.Tenant(pin)
}

// WriteTrusted places pub in dir as a trusted scope signer (for TrustDir).
// It is an operator's local step (like copying a key file), used by the
// demo; it writes no audit entry because it changes no appliance state the
// services own.
func WriteTrusted(dir string, pub ed25519.PublicKey) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("trusted scope keys: %w", err)
	}
	b, err := keys.MarshalPublic(pub)
	if err != nil {
		return err
	}
	name := strings.NewReplacer("/", "_", ":", "_").Replace(keys.ID(pub)) + ".pub"
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		return fmt.Errorf("trusted scope keys: %w", err)
	}
	return nil
}
