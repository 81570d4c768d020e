package auth

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// OpRequest is the canonical request of an operation the auth service
// performs itself (user and role changes, tokens, support tickets,
// approvals): JSON with sorted keys and no insignificant whitespace. A
// console that collects the step-up code first calls StepUp with the same
// bytes.
func OpRequest(op Operation, tenant string, args map[string]string) []byte {
	m := map[string]string{"op": string(op), "tenant": tenant}
	for k, v := range args {
		m["arg."+k] = v
	}
	// encoding/json sorts map keys and escapes consistently, so equal
	// requests give equal bytes.
	b, _ := json.Marshal(m)
	return b
}

// StepUpChallenge is the error an operation returns when it needs a step-up
// and no grant for its exact request exists: it says what to step up for.
// errors.Is(err, ErrStepUpRequired) holds for it, and errors.As finds it
// through any wrapping. A client shows the user the operation, collects a
// fresh TOTP code, calls StepUpFor with Op and Request unchanged, and then
// repeats the original call, which spends the grant.
type StepUpChallenge struct {
	// Op is the operation to step up for.
	Op Operation
	// Request is the operation's canonical request: JSON with sorted keys
	// and a "tenant" member (see OpRequest). It holds no secrets (services
	// put digests of secret arguments in it), so it may be shown to the
	// client that made the call.
	Request []byte
}

// Error says which operation needs a step-up.
func (c *StepUpChallenge) Error() string {
	return string(c.Op) + ": " + ErrStepUpRequired.Error()
}

// Is makes errors.Is(c, ErrStepUpRequired) true.
func (c *StepUpChallenge) Is(target error) bool { return target == ErrStepUpRequired }

// StepUpGrant is a recorded step-up: usable once, for its operation and
// request, until ExpiresAt.
type StepUpGrant struct {
	ID        string
	Op        Operation
	ExpiresAt time.Time
}

// StepUp checks a fresh TOTP code from p for op on canonicalRequest and
// records a grant that the operation consumes (ConsumeStepUp) within
// Params.StepUpTTL (5 minutes). The code itself is spent: the same code
// cannot serve a second step-up or login.
//
// tenant is where op will act ("" for p's own tenant); p must be allowed op
// there, so a step-up cannot be collected for something p may not do.
func (s *Service) StepUp(ctx context.Context, p Principal, op Operation, tenant string, canonicalRequest []byte, code string) (StepUpGrant, error) {
	pin, err := s.Authorize(ctx, p, op, tenant)
	if err != nil {
		return StepUpGrant{}, err
	}
	if !NeedsStepUp(op) {
		return StepUpGrant{}, fmt.Errorf("step-up for %s: %w: operation needs none", op, ErrInvalid)
	}
	var g StepUpGrant
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		g, err = s.grantStepUp(ctx, tx, p, pin, op, canonicalRequest, code)
		return err
	})
	if err != nil {
		return StepUpGrant{}, s.stepUpFailed(ctx, p, pin, op, err)
	}
	return g, nil
}

// StepUpFor is StepUp for a client answering a StepUpChallenge: request is
// the challenge's Request, byte for byte. The tenant the operation acts in
// is read from the request's "tenant" member (absent or "" means p's own
// tenant), p must be allowed op there, and the grant is bound to
// SHA-256(request). If the request names an operation ("op"), it must be
// op. A request that is not a JSON object wraps ErrInvalid.
func (s *Service) StepUpFor(ctx context.Context, p Principal, op Operation, request []byte, code string) (StepUpGrant, error) {
	tenant, err := requestTenant(op, request)
	if err != nil {
		return StepUpGrant{}, fmt.Errorf("step-up for %s: %w", op, err)
	}
	return s.StepUp(ctx, p, op, tenant, request, code)
}

// maxRequestLen bounds a canonical request given to StepUpFor; real ones
// are a few hundred bytes.
const maxRequestLen = 64 << 10

// requestTenant reads the "tenant" member of a canonical request, and
// checks its "op" member (if any) against op.
func requestTenant(op Operation, request []byte) (string, error) {
	if len(request) == 0 || len(request) > maxRequestLen {
		return "", fmt.Errorf("%w: request must be 1..%d bytes", ErrInvalid, maxRequestLen)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(request, &m); err != nil || m == nil {
		return "", fmt.Errorf("%w: request is not a JSON object", ErrInvalid)
	}
	str := func(key string) (string, error) {
		raw, ok := m[key]
		if !ok {
			return "", nil
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return "", fmt.Errorf("%w: request member %q is not a string", ErrInvalid, key)
		}
		return v, nil
	}
	if named, err := str("op"); err != nil {
		return "", err
	} else if named != "" && named != string(op) {
		return "", fmt.Errorf("%w: request is for %s", ErrInvalid, named)
	}
	return str("tenant")
}

// grantStepUp verifies code and inserts a grant, in tx.
func (s *Service) grantStepUp(ctx context.Context, tx *sql.Tx, p Principal, tenant string, op Operation, canonicalRequest []byte, code string) (StepUpGrant, error) {
	if p.TokenID != "" {
		return StepUpGrant{}, fmt.Errorf("%w: API tokens cannot step up", ErrStepUpRequired)
	}
	u, err := s.st.UserByID(ctx, p.UserID)
	if err != nil {
		return StepUpGrant{}, err
	}
	if !u.TOTPConfirmed {
		return StepUpGrant{}, ErrEnrolmentRequired
	}
	st, err := s.st.AuthState(ctx, tx, u.ID)
	if err != nil {
		return StepUpGrant{}, err
	}
	if s.now().Before(st.LockedUntil) {
		return StepUpGrant{}, fmt.Errorf("%w: %w until %s", ErrStepUpRequired, ErrLockedOut, st.LockedUntil.Format(time.RFC3339))
	}
	// A role that must use a security key steps up with one (webauthn.go).
	if err := s.totpAllowed(ctx, tx, u); err != nil {
		return StepUpGrant{}, err
	}
	if err := s.verifyTOTP(ctx, tx, u, code); err != nil {
		return StepUpGrant{}, err
	}
	return s.recordGrant(ctx, tx, p, tenant, op, canonicalRequest, "totp")
}

// recordGrant inserts a step-up grant after a verified second factor
// (factor "totp" or "security key") and audits it, in tx.
func (s *Service) recordGrant(ctx context.Context, tx *sql.Tx, p Principal, tenant string, op Operation, canonicalRequest []byte, factor string) (StepUpGrant, error) {
	now := s.now()
	sum := sha256.Sum256(canonicalRequest)
	g := store.StepUp{ID: store.NewID("su"), UserID: p.UserID, Operation: string(op), RequestSHA256: sum[:], CreatedAt: now, ExpiresAt: now.Add(s.p.StepUpTTL)}
	if err := s.st.CreateStepUp(ctx, tx, g); err != nil {
		return StepUpGrant{}, err
	}
	if err := s.append(ctx, tx, p.entry(tenant, audit.ActAuthStepUp, g.ID, fields{"operation": string(op), "request_sha256": hex.EncodeToString(sum[:]), "expires": g.ExpiresAt.Format(time.RFC3339), "factor": factor})); err != nil {
		return StepUpGrant{}, err
	}
	return StepUpGrant{ID: g.ID, Op: op, ExpiresAt: g.ExpiresAt}, nil
}

// ConsumeStepUp spends p's step-up grant for op on canonicalRequest inside
// the caller's transaction tx (the one that performs the operation), or
// returns a *StepUpChallenge (which is ErrStepUpRequired) naming op and
// canonicalRequest. The caller should audit that refusal with
// StepUpRefused, after its transaction has rolled back.
func (s *Service) ConsumeStepUp(ctx context.Context, tx *sql.Tx, p Principal, op Operation, canonicalRequest []byte) error {
	sum := sha256.Sum256(canonicalRequest)
	if _, err := s.st.ConsumeStepUp(ctx, tx, p.UserID, string(op), sum[:], s.now()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return &StepUpChallenge{Op: op, Request: append([]byte(nil), canonicalRequest...)}
		}
		return err
	}
	return nil
}

// StepUpRefused audits a failed or missing step-up as auth.stepup.failed
// and returns err; other errors pass through unaudited.
func (s *Service) StepUpRefused(ctx context.Context, p Principal, tenant string, op Operation, err error) error {
	return s.stepUpFailed(ctx, p, tenant, op, err)
}

// UseStepUp authenticates a sensitive operation of another service inside
// that operation's transaction tx: with code, it verifies the TOTP now and
// spends it at once; with code "", it spends a grant recorded earlier by
// StepUp for the same op and canonicalRequest. Errors wrap
// ErrStepUpRequired, ErrInvalidCode, ErrReplay or ErrEnrolmentRequired;
// after rolling back, pass them to StepUpRefused so the failure is audited.
// Authorize first: UseStepUp does not check the role.
func (s *Service) UseStepUp(ctx context.Context, tx *sql.Tx, p Principal, op Operation, canonicalRequest []byte, code string) error {
	if !NeedsStepUp(op) {
		return fmt.Errorf("step-up for %s: %w: operation needs none", op, ErrInvalid)
	}
	return s.useStepUp(ctx, tx, p, p.TenantID, op, canonicalRequest, code)
}

// useStepUp is how the service's own sensitive operations authenticate:
// with code, verify it now and spend it at once; without, spend a grant
// recorded earlier by StepUp.
func (s *Service) useStepUp(ctx context.Context, tx *sql.Tx, p Principal, tenant string, op Operation, canonicalRequest []byte, code string) error {
	if code == "" {
		return s.ConsumeStepUp(ctx, tx, p, op, canonicalRequest)
	}
	if _, err := s.grantStepUp(ctx, tx, p, tenant, op, canonicalRequest, code); err != nil {
		return err
	}
	return s.ConsumeStepUp(ctx, tx, p, op, canonicalRequest)
}

// stepUpFailed audits step-up failures; other errors pass through.
func (s *Service) stepUpFailed(ctx context.Context, p Principal, tenant string, op Operation, err error) error {
	if !errors.Is(err, ErrStepUpRequired) && !errors.Is(err, ErrInvalidCode) && !errors.Is(err, ErrReplay) && !errors.Is(err, ErrEnrolmentRequired) {
		return err
	}
	wrongCode := errors.Is(err, ErrInvalidCode) || errors.Is(err, ErrReplay)
	var locked error
	aerr := s.st.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.append(ctx, tx, p.entry(tenant, audit.ActAuthStepUpFailed, string(op), fields{"operation": string(op), "reason": err.Error()})); err != nil {
			return err
		}
		if !wrongCode {
			return nil
		}
		// A wrong step-up code counts like a wrong login code: a stolen
		// session must not be a way to guess six digits at leisure.
		u, err := s.st.UserByID(ctx, p.UserID)
		if err != nil {
			return err
		}
		locked, err = s.countFailure(ctx, tx, p, u)
		return err
	})
	return errors.Join(err, locked, aerr)
}
