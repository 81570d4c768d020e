package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// NewToken describes an API token to create.
type NewToken struct {
	Name string
	// Role the token acts with; it must be no stronger than the creator's
	// (every operation it allows, the creator's role allows too).
	Role string
	// TTL until expiry; Params.TokenDefaultTTL when zero, at most
	// Params.TokenMaxTTL.
	TTL time.Duration
	// Tenant the token is bound to; "" for the creator's own.
	Tenant string
}

// TokenInfo is a token as listed (never its secret).
type TokenInfo struct {
	ID, TenantID, UserID, Name, Role string
	CreatedAt, ExpiresAt, RevokedAt  time.Time
	// LastUsedAt is the last authenticated use, to the minute (zero: never).
	LastUsedAt time.Time
}

func tokenInfo(t store.Token) TokenInfo {
	return TokenInfo{ID: t.ID, TenantID: t.TenantID, UserID: t.UserID, Name: t.Name, Role: t.Role, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, RevokedAt: t.RevokedAt, LastUsedAt: t.LastUsedAt}
}

// CreateToken creates an API token (step-up) and returns its secret, which
// is shown once and stored only as its SHA-256.
func (s *Service) CreateToken(ctx context.Context, p Principal, nt NewToken, stepUpCode string) (string, TokenInfo, error) {
	nt.Name = strings.TrimSpace(nt.Name)
	if nt.TTL == 0 {
		nt.TTL = s.p.TokenDefaultTTL
	}
	if nt.Name == "" || !slices.Contains(store.Roles(), nt.Role) || nt.TTL < 0 || nt.TTL > s.p.TokenMaxTTL {
		return "", TokenInfo{}, fmt.Errorf("new token %q role %q ttl %s: %w", nt.Name, nt.Role, nt.TTL, ErrInvalid)
	}
	if p.TokenID != "" {
		// A token minting tokens would outlive its own expiry and revocation.
		return "", TokenInfo{}, s.deny(ctx, p, p.TenantID, OpTokenCreate, nt.Name, "API tokens cannot create tokens", fmt.Errorf("%w: tokens cannot create tokens", ErrForbidden))
	}
	if !weaker(nt.Role, p.Role) {
		return "", TokenInfo{}, s.deny(ctx, p, p.TenantID, OpTokenCreate, nt.Name, "token role "+nt.Role+" stronger than "+p.Role, fmt.Errorf("%w: token role stronger than creator's", ErrForbidden))
	}
	secret, h, err := newSecret(tokenPrefix)
	if err != nil {
		return "", TokenInfo{}, err
	}
	var t store.Token
	args := map[string]string{"name": nt.Name, "role": nt.Role, "ttl": nt.TTL.String()}
	err = s.sensitive(ctx, p, OpTokenCreate, nt.Tenant, args, stepUpCode, func(tx *sql.Tx, pin string) error {
		at, err := s.st.AuthTenant(pin)
		if err != nil {
			return err
		}
		now := s.now()
		t, err = at.CreateToken(ctx, tx, store.Token{ID: store.NewID("tok"), UserID: p.UserID, Name: nt.Name, Role: nt.Role, TokenHash: h, CreatedAt: now, ExpiresAt: now.Add(nt.TTL)})
		if err != nil {
			return err
		}
		return s.append(ctx, tx, p.entry(pin, audit.ActTokenCreate, t.ID, fields{"name": t.Name, "role": t.Role, "expires": t.ExpiresAt.Format(time.RFC3339)}))
	})
	if err != nil {
		return "", TokenInfo{}, err
	}
	return secret, tokenInfo(t), nil
}

// ListTokens lists tokens in p's tenant: all of them for admins, one's own
// for everyone else.
func (s *Service) ListTokens(ctx context.Context, p Principal) ([]TokenInfo, error) {
	pin, err := s.Authorize(ctx, p, OpTokenList, "")
	if err != nil {
		return nil, err
	}
	at, err := s.st.AuthTenant(pin)
	if err != nil {
		return nil, err
	}
	ts, err := at.ListTokens(ctx)
	if err != nil {
		return nil, err
	}
	out := []TokenInfo{}
	for _, t := range ts {
		if p.Role == store.RoleAdmin || t.UserID == p.UserID {
			out = append(out, tokenInfo(t))
		}
	}
	return out, nil
}

// RevokeToken revokes a token of p's tenant: any for admins, one's own for
// everyone else.
func (s *Service) RevokeToken(ctx context.Context, p Principal, tokenID string) error {
	pin, err := s.Authorize(ctx, p, OpTokenRevoke, "")
	if err != nil {
		return err
	}
	at, err := s.st.AuthTenant(pin)
	if err != nil {
		return err
	}
	t, err := at.Token(ctx, tokenID)
	if err != nil {
		return s.notInTenant(ctx, p, pin, OpTokenRevoke, tokenID, err)
	}
	if p.Role != store.RoleAdmin && t.UserID != p.UserID {
		return s.deny(ctx, p, pin, OpTokenRevoke, tokenID, "not the token's owner", fmt.Errorf("revoke token: %w", ErrForbidden))
	}
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		if err := at.RevokeToken(ctx, tx, tokenID, s.now()); err != nil {
			return err
		}
		return s.append(ctx, tx, p.entry(pin, audit.ActTokenRevoke, tokenID, fields{"name": t.Name}))
	})
	return s.notInTenant(ctx, p, pin, OpTokenRevoke, tokenID, err)
}

// AuthenticateToken resolves an API token (the Authorization: Bearer
// value) to a principal bound to the token's tenant and role. Expired,
// revoked and malformed tokens, and tokens of disabled users, are
// ErrUnauthenticated. Token requests need no CSRF token: they carry no
// ambient credential a browser would attach on its own.
func (s *Service) AuthenticateToken(ctx context.Context, bearer string, c Client) (Principal, error) {
	raw, err := parseSecret(tokenPrefix, bearer)
	if err != nil {
		return Principal{}, ErrUnauthenticated
	}
	t, err := s.st.TokenByHash(ctx, hashSecret(raw))
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrUnauthenticated
	}
	if err != nil {
		return Principal{}, err
	}
	now := s.now()
	if !t.RevokedAt.IsZero() || !now.Before(t.ExpiresAt) {
		return Principal{}, fmt.Errorf("%w: token revoked or expired", ErrUnauthenticated)
	}
	u, err := s.st.UserByID(ctx, t.UserID)
	if err != nil {
		return Principal{}, err
	}
	if u.Disabled {
		return Principal{}, fmt.Errorf("%w: token owner disabled", ErrUnauthenticated)
	}
	// The owner's role may have been lowered since the token was made
	// (SetRole): a token must never carry more than its owner holds now.
	if !weaker(t.Role, u.Role) {
		return Principal{}, fmt.Errorf("%w: token role %s exceeds its owner's current role %s", ErrUnauthenticated, t.Role, u.Role)
	}
	// Record the use for the access review at most once a minute, like a
	// session's last_seen: a busy token must not cost a write per request.
	if now.Sub(t.LastUsedAt) >= time.Minute {
		if err := s.touch(ctx, func(tx *sql.Tx) error { return s.st.TouchToken(ctx, tx, t.ID, now, now.Add(-time.Minute)) }); err != nil {
			return Principal{}, err
		}
	}
	p := Principal{UserID: u.ID, Name: u.Name, Role: t.Role, TenantID: t.TenantID, HomeTenantID: u.TenantID, TokenID: t.ID, Client: c}
	// The owner's role must use a security key and the owner has none: the
	// token is held to what a session would be (registering a key, which
	// a token cannot do), so an old token is no way around the policy.
	if u.Role == store.RoleAdmin || u.Role == store.RoleSecurityLead {
		required, n, err := s.keyState(ctx, s.st.Reader(), u)
		if err != nil {
			return Principal{}, err
		}
		p.MustRegisterKey = required && n == 0
	}
	return p, nil
}
