package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// Security keys (WebAuthn): a user registers one or more keys; a key
// answers login's second factor and step-up exactly as a TOTP code does
// (StepUpGrant, promote). The appliance is the relying party; its ID is
// the console's host name and the origins are matched exactly.
//
// Ceremonies are two calls each (begin, finish). Begin stores the
// challenge server-side (auth_webauthn_ceremonies) bound to the user, the
// session that began it, and what it is for (a key name, or a step-up's
// operation and request digest); the client only holds the ceremony id.
// Finish takes the ceremony (deleting it first, in its own transaction,
// so it is used once even when the response is refused), then verifies.
// Expiry is judged with the service's clock; go-webauthn's own wall-clock
// expiry is switched off by clearing SessionData.Expires.

// More sentinel errors.
var (
	// ErrKeyRequired means the account's role must use a security key
	// (KeyPolicy): a TOTP or recovery code is refused once the user has a
	// key, and a user without one may only register one.
	ErrKeyRequired = errors.New("security key required")
	// ErrKeyCloned means a key's signature counter did not advance: the
	// response is refused and the key flagged as possibly cloned.
	ErrKeyCloned = errors.New("security key may be cloned")
)

// KeyConfig is the relying party the appliance is to security keys.
type KeyConfig struct {
	// RPID is the relying party id: the host name users reach the console
	// at (no scheme, no port). Default "localhost".
	RPID string
	// Origins are the exact origins ("https://host:port") whose pages may
	// use the keys. Default "https://" + RPID.
	Origins []string
	// DisplayName is shown by some authenticators: "FirewallIQ Secure".
	DisplayName string
}

// MaxKeys bounds the security keys of one user; MaxKeyName a key's name.
const (
	MaxKeys    = 10
	MaxKeyName = 64
)

// Ceremony kinds (auth_webauthn_ceremonies.kind).
const (
	ceremonyRegister = "register"
	ceremonyLogin    = "login"
	ceremonyStepUp   = "stepup"
)

// settingKeyPolicy is the appliance setting holding the KeyPolicy (JSON).
const settingKeyPolicy = "auth.security_keys_required"

// newRelyingParty validates c and builds the go-webauthn relying party.
func newRelyingParty(c KeyConfig) (*webauthn.WebAuthn, KeyConfig, error) {
	if c.RPID == "" {
		c.RPID = "localhost"
	}
	if c.DisplayName == "" {
		c.DisplayName = totpIssuer
	}
	if strings.ContainsAny(c.RPID, ":/ ") || net.ParseIP(c.RPID) != nil {
		return nil, c, fmt.Errorf("auth: webauthn rp id %q must be a host name (no scheme, port or IP address)", c.RPID)
	}
	if len(c.Origins) == 0 {
		c.Origins = []string{"https://" + c.RPID}
	}
	for _, o := range c.Origins {
		u, err := url.Parse(o)
		if err != nil || u.Scheme != "https" || u.Path != "" || u.RawQuery != "" {
			return nil, c, fmt.Errorf("auth: webauthn origin %q must be https://host[:port]", o)
		}
		if h := u.Hostname(); h != c.RPID && !strings.HasSuffix(h, "."+c.RPID) {
			return nil, c, fmt.Errorf("auth: webauthn origin %q is not within rp id %q", o, c.RPID)
		}
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID: c.RPID, RPDisplayName: c.DisplayName, RPOrigins: c.Origins,
		// "none": the appliance does not judge authenticator makes; any
		// FIDO2 or U2F key serves as a second factor.
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			// A second factor after the password: user presence (a touch)
			// is what is asked; a PIN is not required.
			UserVerification: protocol.VerificationDiscouraged,
			ResidentKey:      protocol.ResidentKeyRequirementDiscouraged,
		},
	})
	if err != nil {
		return nil, c, fmt.Errorf("auth: webauthn: %w", err)
	}
	return wa, c, nil
}

// KeyConfig returns the relying party's effective configuration.
func (s *Service) KeyConfig() KeyConfig { return s.rp }

// keyUser adapts a user and their keys to go-webauthn. The user handle is
// the user's id: random, and no personal data.
type keyUser struct {
	u     store.User
	creds []webauthn.Credential
}

func (k keyUser) WebAuthnID() []byte                         { return []byte(k.u.ID) }
func (k keyUser) WebAuthnName() string                       { return k.u.Name }
func (k keyUser) WebAuthnDisplayName() string                { return k.u.Name }
func (k keyUser) WebAuthnCredentials() []webauthn.Credential { return k.creds }

// loadKeys reads user id's keys and their credential records.
func (s *Service) loadKeys(ctx context.Context, q store.Querier, userID string) ([]store.WebAuthnKey, []webauthn.Credential, error) {
	ks, err := s.st.WebAuthnKeys(ctx, q, userID)
	if err != nil {
		return nil, nil, err
	}
	creds := make([]webauthn.Credential, 0, len(ks))
	for _, k := range ks {
		var c webauthn.Credential
		if err := json.Unmarshal(k.Credential, &c); err != nil {
			return nil, nil, fmt.Errorf("security key %s: %w", k.ID, err)
		}
		creds = append(creds, c)
	}
	return ks, creds, nil
}

// KeyCeremony is a begun ceremony: its id, which the finish call names,
// and the options to hand to navigator.credentials.create() or .get()
// (a JSON object with a "publicKey" member; binary members base64url).
type KeyCeremony struct {
	ID        string          `json:"ceremony"`
	Options   json.RawMessage `json:"options"`
	ExpiresAt time.Time       `json:"expires_at"`
}

// SecurityKey describes a registered key (never its credential record).
type SecurityKey struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	CreatedAt    time.Time `json:"created_at"`
	LastUsedAt   time.Time `json:"last_used_at,omitzero"`
	LastUsedIP   string    `json:"last_used_ip,omitempty"`
	SignCount    uint32    `json:"sign_count"`
	CloneWarning bool      `json:"clone_warning"`
}

func keyInfo(k store.WebAuthnKey) SecurityKey {
	return SecurityKey{ID: k.ID, Name: k.Name, CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, LastUsedIP: k.LastUsedIP, SignCount: k.SignCount, CloneWarning: k.CloneWarning}
}

// begin stores a ceremony and returns it with options.
func (s *Service) begin(ctx context.Context, tx *sql.Tx, u store.User, sessionID, kind, binding string, options any, sd *webauthn.SessionData) (KeyCeremony, error) {
	sd.Expires = time.Time{} // the service's clock decides (expires_at)
	data, err := json.Marshal(sd)
	if err != nil {
		return KeyCeremony{}, fmt.Errorf("webauthn session: %w", err)
	}
	opts, err := json.Marshal(options)
	if err != nil {
		return KeyCeremony{}, fmt.Errorf("webauthn options: %w", err)
	}
	now := s.now()
	c := store.WebAuthnCeremony{ID: store.NewID("wac"), UserID: u.ID, SessionID: sessionID, Kind: kind, Binding: binding, Data: data, CreatedAt: now, ExpiresAt: now.Add(s.p.KeyCeremonyTTL)}
	if err := s.st.AddWebAuthnCeremony(ctx, tx, c); err != nil {
		return KeyCeremony{}, err
	}
	return KeyCeremony{ID: c.ID, Options: opts, ExpiresAt: c.ExpiresAt}, nil
}

// take removes the ceremony in its own transaction (so it is spent even
// if what follows fails) and returns its session data.
func (s *Service) take(ctx context.Context, id, userID, sessionID, kind string) (store.WebAuthnCeremony, webauthn.SessionData, error) {
	var c store.WebAuthnCeremony
	err := s.st.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		c, err = s.st.TakeWebAuthnCeremony(ctx, tx, id, userID, sessionID, kind, s.now())
		return err
	})
	var sd webauthn.SessionData
	if errors.Is(err, store.ErrNotFound) {
		return c, sd, fmt.Errorf("%w: security key ceremony unknown, already used, expired or begun elsewhere", ErrInvalidCode)
	}
	if err != nil {
		return c, sd, err
	}
	if err := json.Unmarshal(c.Data, &sd); err != nil {
		return c, sd, fmt.Errorf("webauthn session: %w", err)
	}
	return c, sd, nil
}

// keyName checks a key's name: 1..MaxKeyName printable characters.
func keyName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len([]rune(name)) > MaxKeyName || strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return "", fmt.Errorf("%w: a key name must be 1 to %d printable characters", ErrInvalid, MaxKeyName)
	}
	return name, nil
}

// registerRequest is the canonical request a key registration steps up for.
func registerRequest(p Principal, name string) []byte {
	return OpRequest(OpKeyRegister, p.HomeTenantID, map[string]string{"user": p.UserID, "name": name})
}

// BeginKeyRegistration starts registering a security key named name for
// p's own account, in p's session. It needs a step-up (code, or a grant
// for the same request: a stolen session must not be a way to add an
// authenticator). The options exclude the user's registered keys.
func (s *Service) BeginKeyRegistration(ctx context.Context, p Principal, name, code string) (KeyCeremony, error) {
	if _, err := s.Authorize(ctx, p, OpKeyRegister, ""); err != nil {
		return KeyCeremony{}, err
	}
	if p.SessionID == "" {
		return KeyCeremony{}, fmt.Errorf("%w: security keys are registered in a browser session, not with an API token", ErrInvalid)
	}
	name, err := keyName(name)
	if err != nil {
		return KeyCeremony{}, err
	}
	u, err := s.st.UserByID(ctx, p.UserID)
	if err != nil {
		return KeyCeremony{}, err
	}
	ks, creds, err := s.loadKeys(ctx, s.st.Reader(), u.ID)
	if err != nil {
		return KeyCeremony{}, err
	}
	if len(ks) >= MaxKeys {
		return KeyCeremony{}, fmt.Errorf("%w: at most %d security keys per user", ErrInvalid, MaxKeys)
	}
	creation, sd, err := s.wa.BeginRegistration(keyUser{u: u, creds: creds}, webauthn.WithExclusions(webauthn.Credentials(creds).CredentialDescriptors()))
	if err != nil {
		return KeyCeremony{}, fmt.Errorf("webauthn begin registration: %w", err)
	}
	var kc KeyCeremony
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.useStepUp(ctx, tx, p, p.HomeTenantID, OpKeyRegister, registerRequest(p, name), code); err != nil {
			return err
		}
		var err error
		kc, err = s.begin(ctx, tx, u, p.SessionID, ceremonyRegister, name, creation, sd)
		return err
	})
	if err != nil {
		return KeyCeremony{}, s.stepUpFailed(ctx, p, p.HomeTenantID, OpKeyRegister, err)
	}
	return kc, nil
}

// FinishKeyRegistration verifies the authenticator's answer
// (navigator.credentials.create()'s PublicKeyCredential as JSON) to
// ceremony id and stores the key. Attestation is "none": the key's make
// is not judged.
func (s *Service) FinishKeyRegistration(ctx context.Context, p Principal, id string, response []byte) (SecurityKey, error) {
	if _, err := s.Authorize(ctx, p, OpKeyRegister, ""); err != nil {
		return SecurityKey{}, err
	}
	u, err := s.st.UserByID(ctx, p.UserID)
	if err != nil {
		return SecurityKey{}, err
	}
	cer, sd, err := s.take(ctx, id, u.ID, p.SessionID, ceremonyRegister)
	if err != nil {
		return SecurityKey{}, s.keyFailed(ctx, p, "register", err)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return SecurityKey{}, s.keyFailed(ctx, p, "register", fmt.Errorf("%w: security key response malformed: %s", ErrInvalidCode, protocolDetail(err)))
	}
	_, creds, err := s.loadKeys(ctx, s.st.Reader(), u.ID)
	if err != nil {
		return SecurityKey{}, err
	}
	cred, err := s.wa.CreateCredential(keyUser{u: u, creds: creds}, sd, parsed)
	if err != nil {
		return SecurityKey{}, s.keyFailed(ctx, p, "register", fmt.Errorf("%w: security key response not accepted: %s", ErrInvalidCode, protocolDetail(err)))
	}
	record, err := json.Marshal(cred)
	if err != nil {
		return SecurityKey{}, fmt.Errorf("webauthn credential: %w", err)
	}
	k := store.WebAuthnKey{ID: store.NewID("key"), UserID: u.ID, CredentialID: cred.ID, Name: cer.Binding, Credential: record,
		SignCount: cred.Authenticator.SignCount, CreatedAt: s.now()}
	credSum := sha256.Sum256(cred.ID)
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		// Counted again here: several registrations may have been begun
		// while there was room for one more key.
		n, err := s.st.CountWebAuthnKeys(ctx, tx, u.ID)
		if err != nil {
			return err
		}
		if n >= MaxKeys {
			return fmt.Errorf("%w: at most %d security keys per user", ErrInvalid, MaxKeys)
		}
		if err := s.st.AddWebAuthnKey(ctx, tx, k); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("%w: this security key is already registered", ErrInvalid)
			}
			return err
		}
		return s.append(ctx, tx, p.entry(p.HomeTenantID, audit.ActAuthKeyRegister, k.ID, fields{"name": k.Name, "user": u.ID,
			"aaguid": hex.EncodeToString(cred.Authenticator.AAGUID), "attestation_format": cred.AttestationFormat,
			"credential_sha256": hex.EncodeToString(credSum[:])}))
	})
	if err != nil {
		return SecurityKey{}, err
	}
	return keyInfo(k), nil
}

// protocolDetail is the developer detail of a go-webauthn error (which
// says which check failed: origin, RP ID, challenge, signature), for the
// audit entry and the caller.
func protocolDetail(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		if pe.DevInfo != "" {
			return pe.Details + ": " + pe.DevInfo
		}
		return pe.Details
	}
	return err.Error()
}

// ListKeys lists p's own security keys.
func (s *Service) ListKeys(ctx context.Context, p Principal) ([]SecurityKey, error) {
	if _, err := s.Authorize(ctx, p, OpKeyList, ""); err != nil {
		return nil, err
	}
	ks, err := s.st.WebAuthnKeys(ctx, s.st.Reader(), p.UserID)
	if err != nil {
		return nil, err
	}
	out := make([]SecurityKey, 0, len(ks))
	for _, k := range ks {
		out = append(out, keyInfo(k))
	}
	return out, nil
}

// RemoveKeyRequest is the canonical request removing key id steps up for.
func RemoveKeyRequest(p Principal, id string) []byte {
	return OpRequest(OpKeyRemove, p.HomeTenantID, map[string]string{"user": p.UserID, "key": id})
}

// RemoveKey removes one of p's own security keys (step-up: code, or a
// grant for RemoveKeyRequest). Another user's key id is not found, and
// the probe is audited as access.denied.
func (s *Service) RemoveKey(ctx context.Context, p Principal, id, code string) error {
	if _, err := s.Authorize(ctx, p, OpKeyRemove, ""); err != nil {
		return err
	}
	err := s.st.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.useStepUp(ctx, tx, p, p.HomeTenantID, OpKeyRemove, RemoveKeyRequest(p, id), code); err != nil {
			return err
		}
		if err := s.st.DeleteWebAuthnKey(ctx, tx, p.UserID, id); err != nil {
			return err
		}
		return s.append(ctx, tx, p.entry(p.HomeTenantID, audit.ActAuthKeyRemove, id, fields{"user": p.UserID}))
	})
	if errors.Is(err, store.ErrNotFound) {
		return s.deny(ctx, p, p.HomeTenantID, OpKeyRemove, id, "no such security key of this user", fmt.Errorf("security key %s: %w", id, store.ErrNotFound))
	}
	if err != nil {
		return s.stepUpFailed(ctx, p, p.HomeTenantID, OpKeyRemove, err)
	}
	return nil
}

// BeginKeyLogin starts a security-key login for the session at stage
// password (the password was right). A user without keys gets ErrInvalid.
func (s *Service) BeginKeyLogin(ctx context.Context, token string, c Client) (KeyCeremony, error) {
	se, u, err := s.pending(ctx, token, "password", c)
	if err != nil {
		return KeyCeremony{}, err
	}
	return s.beginAssertion(ctx, u, se.ID, ceremonyLogin, "")
}

// beginAssertion starts a get() ceremony over u's keys.
func (s *Service) beginAssertion(ctx context.Context, u store.User, sessionID, kind, binding string) (KeyCeremony, error) {
	ks, creds, err := s.loadKeys(ctx, s.st.Reader(), u.ID)
	if err != nil {
		return KeyCeremony{}, err
	}
	if len(ks) == 0 {
		return KeyCeremony{}, fmt.Errorf("%w: no security key is registered for this account", ErrInvalid)
	}
	assertion, sd, err := s.wa.BeginLogin(keyUser{u: u, creds: creds})
	if err != nil {
		return KeyCeremony{}, fmt.Errorf("webauthn begin login: %w", err)
	}
	var kc KeyCeremony
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		kc, err = s.begin(ctx, tx, u, sessionID, kind, binding, assertion, sd)
		return err
	})
	return kc, err
}

// FinishKeyLogin completes a login at stage password with the
// authenticator's answer (navigator.credentials.get()'s
// PublicKeyCredential as JSON) to ceremony id; the session id is replaced.
// A refused answer counts towards the lockout like a wrong TOTP code.
func (s *Service) FinishKeyLogin(ctx context.Context, token, id string, response []byte, c Client) (Login, error) {
	complete, err := s.verifyKeyLogin(ctx, token, id, response, c)
	if err != nil {
		return Login{}, err
	}
	return complete(ctx)
}

// verifyKeyLogin is FinishKeyLogin up to the verified assertion; the
// function it returns writes the use (keyLoginUse). Two halves so that a
// test can verify two assertions of one key before either is written, as
// two concurrent logins may.
func (s *Service) verifyKeyLogin(ctx context.Context, token, id string, response []byte, c Client) (func(context.Context) (Login, error), error) {
	se, u, err := s.pending(ctx, token, "password", c)
	if err != nil {
		return nil, err
	}
	p := principalOf(u, se.ID, c)
	k, cred, err := s.assert(ctx, p, u, se.ID, ceremonyLogin, "", id, response)
	if err != nil {
		return nil, s.secondFactorFailedAs(ctx, u, c, "security key login", audit.ActAuthKeyFailed, err)
	}
	return func(ctx context.Context) (Login, error) { return s.keyLoginUse(ctx, p, se, u, c, k, cred) }, nil
}

// keyLoginUse completes a key login whose assertion assert accepted:
// records the key's use and promotes the session, in one transaction. A
// counter that another use of the key overtook meanwhile is refused as a
// clone (useKey).
func (s *Service) keyLoginUse(ctx context.Context, p Principal, se store.Session, u store.User, c Client, k store.WebAuthnKey, cred *webauthn.Credential) (Login, error) {
	var l Login
	err := s.st.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.useKey(ctx, tx, p, u, k, cred, "login", ""); err != nil {
			return err
		}
		var err error
		l, err = s.promote(ctx, tx, se, u, c, "security key")
		return err
	})
	if errors.Is(err, ErrKeyCloned) {
		return Login{}, s.flagClone(ctx, p, u, k, cred.Authenticator.SignCount)
	}
	return l, err
}

// assert verifies an assertion for ceremony id of kind with binding.
func (s *Service) assert(ctx context.Context, p Principal, u store.User, sessionID, kind, binding, id string, response []byte) (store.WebAuthnKey, *webauthn.Credential, error) {
	cer, sd, err := s.take(ctx, id, u.ID, sessionID, kind)
	if err != nil {
		return store.WebAuthnKey{}, nil, err
	}
	if cer.Binding != binding {
		return store.WebAuthnKey{}, nil, fmt.Errorf("%w: the security key ceremony was begun for another request", ErrInvalidCode)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return store.WebAuthnKey{}, nil, fmt.Errorf("%w: security key response malformed: %s", ErrInvalidCode, protocolDetail(err))
	}
	ks, creds, err := s.loadKeys(ctx, s.st.Reader(), u.ID)
	if err != nil {
		return store.WebAuthnKey{}, nil, err
	}
	cred, err := s.wa.ValidateLogin(keyUser{u: u, creds: creds}, sd, parsed)
	if err != nil {
		return store.WebAuthnKey{}, nil, fmt.Errorf("%w: security key response not accepted: %s", ErrInvalidCode, protocolDetail(err))
	}
	var k store.WebAuthnKey
	for _, x := range ks {
		if bytes.Equal(x.CredentialID, cred.ID) {
			k = x
		}
	}
	if k.ID == "" {
		return store.WebAuthnKey{}, nil, fmt.Errorf("%w: security key not registered", ErrInvalidCode)
	}
	if cred.Authenticator.CloneWarning {
		// The counter did not advance past the one read above.
		return store.WebAuthnKey{}, nil, s.flagClone(ctx, p, u, k, parsed.Response.AuthenticatorData.Counter)
	}
	return k, cred, nil
}

// flagClone refuses an answer of key k whose signature counter did not
// advance: two copies of the key may exist. It flags the key (shown in
// its list and the access review) and writes auth.key.clone, in a
// transaction of its own (the use's, if any, is rolled back); the owner
// or a review removes the key. It returns the ErrKeyCloned error, with
// any failure to record it joined.
func (s *Service) flagClone(ctx context.Context, p Principal, u store.User, k store.WebAuthnKey, counter uint32) error {
	stored := k.SignCount
	err := s.st.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if stored, err = s.st.FlagWebAuthnClone(ctx, tx, u.ID, k.ID); err != nil {
			return err
		}
		return s.append(ctx, tx, p.entry(u.TenantID, audit.ActAuthKeyClone, k.ID, fields{"user": u.ID, "counter": counter, "stored_counter": stored}))
	})
	if err != nil {
		stored = k.SignCount
	}
	return errors.Join(fmt.Errorf("%w: key %s answered with signature counter %d, last accepted %d", ErrKeyCloned, k.ID, counter, stored), err)
}

// useKey records an accepted use of key k in tx: the new counter and
// credential record, last use, and the auth.key.use entry.
//
// assert judged the counter against the one stored when it read the key;
// another use of the same key (a second tab, a second login) may have
// stored a higher one since. The store checks again against the counter
// current in tx and writes only if the new one is still larger (or both
// are 0), so the stored counter never goes down; a counter that is no
// longer larger is ErrKeyCloned, and the caller, once tx is rolled back,
// refuses and flags it as assert does (flagClone).
func (s *Service) useKey(ctx context.Context, tx *sql.Tx, p Principal, u store.User, k store.WebAuthnKey, cred *webauthn.Credential, purpose string, op Operation) error {
	record, err := json.Marshal(cred)
	if err != nil {
		return fmt.Errorf("webauthn credential: %w", err)
	}
	if err := s.st.UseWebAuthnKey(ctx, tx, u.ID, k.ID, record, cred.Authenticator.SignCount, p.Client.IP, s.now()); err != nil {
		if errors.Is(err, store.ErrStale) {
			return fmt.Errorf("%w: %w", ErrKeyCloned, err)
		}
		return err
	}
	return s.append(ctx, tx, p.entry(u.TenantID, audit.ActAuthKeyUse, k.ID, fields{"purpose": purpose, "operation": string(op), "sign_count": cred.Authenticator.SignCount, "name": k.Name}))
}

// stepUpBinding binds a step-up ceremony to an operation and request.
func stepUpBinding(op Operation, request []byte) string {
	sum := sha256.Sum256(request)
	return string(op) + " " + hex.EncodeToString(sum[:])
}

// BeginKeyStepUp starts a step-up with a security key for op on
// canonicalRequest in tenant (as StepUp takes them: a console or client
// answering a StepUpChallenge passes its Op and Request unchanged).
func (s *Service) BeginKeyStepUp(ctx context.Context, p Principal, op Operation, tenant string, canonicalRequest []byte) (KeyCeremony, error) {
	if _, err := s.Authorize(ctx, p, op, tenant); err != nil {
		return KeyCeremony{}, err
	}
	if !NeedsStepUp(op) {
		return KeyCeremony{}, fmt.Errorf("step-up for %s: %w: operation needs none", op, ErrInvalid)
	}
	if p.TokenID != "" || p.SessionID == "" {
		return KeyCeremony{}, fmt.Errorf("%w: API tokens cannot step up", ErrStepUpRequired)
	}
	u, err := s.st.UserByID(ctx, p.UserID)
	if err != nil {
		return KeyCeremony{}, err
	}
	return s.beginAssertion(ctx, u, p.SessionID, ceremonyStepUp, stepUpBinding(op, canonicalRequest))
}

// FinishKeyStepUp checks the key's answer to ceremony id and records a
// step-up grant for op on canonicalRequest, exactly as StepUp does for a
// TOTP code: the operation then spends it (ConsumeStepUp, UseStepUp with
// code ""). A refused answer counts towards the lockout.
func (s *Service) FinishKeyStepUp(ctx context.Context, p Principal, op Operation, tenant string, canonicalRequest []byte, id string, response []byte) (StepUpGrant, error) {
	complete, err := s.verifyKeyStepUp(ctx, p, op, tenant, canonicalRequest, id, response)
	if err != nil {
		return StepUpGrant{}, err
	}
	return complete(ctx)
}

// verifyKeyStepUp is FinishKeyStepUp up to the verified assertion; the
// function it returns writes the use and the grant (keyStepUpUse), as
// verifyKeyLogin.
func (s *Service) verifyKeyStepUp(ctx context.Context, p Principal, op Operation, tenant string, canonicalRequest []byte, id string, response []byte) (func(context.Context) (StepUpGrant, error), error) {
	pin, err := s.Authorize(ctx, p, op, tenant)
	if err != nil {
		return nil, err
	}
	if !NeedsStepUp(op) {
		return nil, fmt.Errorf("step-up for %s: %w: operation needs none", op, ErrInvalid)
	}
	if p.TokenID != "" || p.SessionID == "" {
		return nil, fmt.Errorf("%w: API tokens cannot step up", ErrStepUpRequired)
	}
	u, err := s.st.UserByID(ctx, p.UserID)
	if err != nil {
		return nil, err
	}
	st, err := s.st.AuthState(ctx, s.st.Reader(), u.ID)
	if err != nil {
		return nil, err
	}
	if s.now().Before(st.LockedUntil) {
		return nil, s.stepUpFailed(ctx, p, pin, op, fmt.Errorf("%w: %w until %s", ErrStepUpRequired, ErrLockedOut, st.LockedUntil.Format(time.RFC3339)))
	}
	k, cred, err := s.assert(ctx, p, u, p.SessionID, ceremonyStepUp, stepUpBinding(op, canonicalRequest), id, response)
	if err != nil {
		if errors.Is(err, ErrInvalidCode) {
			_ = s.record(ctx, nil, p.entry(pin, audit.ActAuthKeyFailed, u.ID, fields{"step": "step-up", "operation": string(op), "reason": err.Error()}))
		}
		return nil, s.stepUpFailed(ctx, p, pin, op, err)
	}
	return func(ctx context.Context) (StepUpGrant, error) {
		return s.keyStepUpUse(ctx, p, u, pin, op, canonicalRequest, k, cred)
	}, nil
}

// keyStepUpUse completes a key step-up whose assertion assert accepted:
// records the key's use and the grant, in one transaction. A counter
// that another use of the key overtook meanwhile is refused as a clone
// (useKey).
func (s *Service) keyStepUpUse(ctx context.Context, p Principal, u store.User, tenant string, op Operation, canonicalRequest []byte, k store.WebAuthnKey, cred *webauthn.Credential) (StepUpGrant, error) {
	var g StepUpGrant
	err := s.st.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.useKey(ctx, tx, p, u, k, cred, "stepup", op); err != nil {
			return err
		}
		var err error
		g, err = s.recordGrant(ctx, tx, p, tenant, op, canonicalRequest, "security key")
		return err
	})
	if errors.Is(err, ErrKeyCloned) {
		return StepUpGrant{}, s.flagClone(ctx, p, u, k, cred.Authenticator.SignCount)
	}
	return g, err
}

// keyFailed audits a refused registration answer as auth.key.failed and
// returns err; other errors pass through.
func (s *Service) keyFailed(ctx context.Context, p Principal, step string, err error) error {
	if !errors.Is(err, ErrInvalidCode) {
		return err
	}
	return s.record(ctx, err, p.entry(p.HomeTenantID, audit.ActAuthKeyFailed, p.UserID, fields{"step": step, "reason": err.Error()}))
}

// KeyPolicy says which roles must use security keys instead of TOTP.
type KeyPolicy struct {
	// ApplianceAdmins: admins of no tenant.
	ApplianceAdmins bool `json:"appliance_admins"`
	// SecurityLeads: every tenant's security leads.
	SecurityLeads bool `json:"security_leads"`
}

// keyPolicy reads the policy (the zero policy when unset).
func (s *Service) keyPolicy(ctx context.Context, q store.Querier) (KeyPolicy, error) {
	return StoredKeyPolicy(ctx, s.st, q)
}

// StoredKeyPolicy reads the security-key requirement as stored, without a
// principal: for documents that report it (the access review).
func StoredKeyPolicy(ctx context.Context, st *store.Store, q store.Querier) (KeyPolicy, error) {
	v, err := st.Setting(ctx, q, settingKeyPolicy)
	if err != nil || v == "" {
		return KeyPolicy{}, err
	}
	var kp KeyPolicy
	if err := json.Unmarshal([]byte(v), &kp); err != nil {
		return KeyPolicy{}, fmt.Errorf("setting %s: %w", settingKeyPolicy, err)
	}
	return kp, nil
}

// KeyPolicy returns the security-key requirement (appliance admins only).
func (s *Service) KeyPolicy(ctx context.Context, p Principal) (KeyPolicy, error) {
	if _, err := s.Authorize(ctx, p, OpKeyPolicy, ""); err != nil {
		return KeyPolicy{}, err
	}
	return s.keyPolicy(ctx, s.st.Reader())
}

// KeyPolicyRequest is the canonical request SetKeyPolicy steps up for.
func KeyPolicyRequest(kp KeyPolicy) []byte {
	return OpRequest(OpKeyPolicy, "", map[string]string{"appliance_admins": fmt.Sprint(kp.ApplianceAdmins), "security_leads": fmt.Sprint(kp.SecurityLeads)})
}

// SetKeyPolicy changes which roles must use security keys (appliance
// admins only, step-up). From then on, a user of such a role who has a
// key can no longer use TOTP or recovery codes; one who has none may only
// register one (and manage their own account) until they do.
func (s *Service) SetKeyPolicy(ctx context.Context, p Principal, kp KeyPolicy, code string) error {
	if _, err := s.Authorize(ctx, p, OpKeyPolicy, ""); err != nil {
		return err
	}
	b, _ := json.Marshal(kp) // two booleans always encode
	err := s.st.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.useStepUp(ctx, tx, p, "", OpKeyPolicy, KeyPolicyRequest(kp), code); err != nil {
			return err
		}
		if err := s.st.SetSetting(ctx, tx, settingKeyPolicy, string(b)); err != nil {
			return err
		}
		return s.append(ctx, tx, p.entry("", audit.ActAuthKeyPolicy, settingKeyPolicy, fields{"appliance_admins": kp.ApplianceAdmins, "security_leads": kp.SecurityLeads}))
	})
	if err != nil {
		return s.stepUpFailed(ctx, p, "", OpKeyPolicy, err)
	}
	return nil
}

// Requires reports whether user u's role must use a security key.
func (kp KeyPolicy) Requires(u store.User) bool { return kp.keyRequired(u) }

// keyRequired reports whether user u's role must use a security key.
func (kp KeyPolicy) keyRequired(u store.User) bool {
	switch {
	case kp.ApplianceAdmins && u.Role == store.RoleAdmin && u.TenantID == "":
		return true
	case kp.SecurityLeads && u.Role == store.RoleSecurityLead:
		return true
	}
	return false
}

// keyState says whether u must use a key and how many u has.
func (s *Service) keyState(ctx context.Context, q store.Querier, u store.User) (required bool, keys int, err error) {
	kp, err := s.keyPolicy(ctx, q)
	if err != nil || !kp.keyRequired(u) {
		return false, 0, err
	}
	n, err := s.st.CountWebAuthnKeys(ctx, q, u.ID)
	return true, n, err
}

// totpAllowed refuses a TOTP or recovery code from a user whose role must
// use a security key and who has one.
func (s *Service) totpAllowed(ctx context.Context, q store.Querier, u store.User) error {
	required, n, err := s.keyState(ctx, q, u)
	if err != nil {
		return err
	}
	if required && n > 0 {
		return fmt.Errorf("%w: this account's role must use a security key, not a TOTP or recovery code", ErrKeyRequired)
	}
	return nil
}
