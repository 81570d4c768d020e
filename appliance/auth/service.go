package auth

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// Sentinel errors of the service. The console maps them to HTTP statuses:
// ErrUnauthenticated 401; ErrForbidden, ErrCSRF, ErrSelfApproval,
// ErrAlreadyApproved, ErrApprovalRequired, ErrApproverNotCounted 403; ErrStepUpRequired, ErrInvalidCode, ErrReplay 401
// with a prompt for a fresh code; ErrLockedOut, ErrRateLimited 429; the
// approval state errors 409.
var (
	// ErrUnauthenticated means no valid session or token: wrong password,
	// unknown user, expired or revoked credentials. It never says which.
	ErrUnauthenticated = errors.New("not authenticated")
	// ErrForbidden means the principal may not perform the operation (by
	// role, by tenant, or without a support ticket).
	ErrForbidden = errors.New("forbidden")
	// ErrLockedOut means the account is locked after repeated wrong
	// second-factor codes. Login reports it only after a right password,
	// so it tells nobody else that the account exists.
	ErrLockedOut = errors.New("account temporarily locked")
	// ErrRateLimited means too many failed attempts from the source
	// address: across all names, or for this name (the per name and
	// address throttle, whose message says when to retry).
	ErrRateLimited = errors.New("too many attempts from this address")
	// ErrInvalidCode means a TOTP or recovery code is wrong.
	ErrInvalidCode = errors.New("invalid code")
	// ErrReplay means a TOTP code was already used (its time step is not
	// later than the last accepted one).
	ErrReplay = errors.New("code already used")
	// ErrStepUpRequired means the operation needs a fresh TOTP for this
	// exact request and none was given or found.
	ErrStepUpRequired = errors.New("step-up authentication required")
	// ErrEnrolmentRequired means the user must enrol TOTP before anything else.
	ErrEnrolmentRequired = errors.New("TOTP enrolment required")
	// ErrPasswordChangeRequired means the user must replace a one-time
	// password before anything else.
	ErrPasswordChangeRequired = errors.New("password change required")
	// ErrCSRF means a state-changing request lacked the session's CSRF token.
	ErrCSRF = errors.New("missing or invalid CSRF token")
	// ErrSelfApproval means the requester tried to approve their own request.
	ErrSelfApproval = errors.New("requester cannot approve their own request")
	// ErrAlreadyApproved means this approver already approved the request.
	ErrAlreadyApproved = errors.New("already approved by this approver")
	// ErrApprovalPending means the request does not have two approvals yet.
	ErrApprovalPending = errors.New("approval pending")
	// ErrApprovalVoid means the request changed after it was made, or was
	// withdrawn: its approvals no longer count.
	ErrApprovalVoid = errors.New("approval void")
	// ErrApprovalDenied means an approver denied the request.
	ErrApprovalDenied = errors.New("approval denied")
	// ErrApprovalExpired means the request's approval window has passed.
	ErrApprovalExpired = errors.New("approval expired")
	// ErrApprovalUsed means the approved action already ran once.
	ErrApprovalUsed = errors.New("approval already used")
	// ErrInvalid means an argument is malformed (empty name, unknown role,
	// TTL out of range).
	ErrInvalid = errors.New("invalid argument")
	// ErrApprovalRequired means granting a privileged role (approver,
	// security_lead, admin) in a tenant that has another admin needs that
	// admin's approval: a request of KindRoleGrant, approved, named in
	// NewUser.ApprovalID or SetRoleApproved.
	ErrApprovalRequired = errors.New("another admin's approval required")
	// ErrApproverNotCounted means an approver does not count towards dual
	// approval: their account or approving role was created or changed by
	// the requester or after the request was made, or they were disabled
	// or lost the approving role before the approved action ran.
	ErrApproverNotCounted = errors.New("approver does not count")
)

// Keys seals and opens secrets with the master key; keyring.Keyring
// satisfies it.
type Keys interface {
	Seal(plaintext, ad []byte) ([]byte, error)
	Open(sealed, ad []byte) ([]byte, error)
}

// Recorder is the appliance's one audit write path (journal.Journal): it
// appends an entry to the audit log and queues its SIEM event inside tx.
type Recorder interface {
	Record(ctx context.Context, tx *sql.Tx, e audit.Entry) (audit.Entry, error)
}

// Deps are the service's dependencies.
type Deps struct {
	Store *store.Store
	// Journal records every audit entry the service writes.
	Journal Recorder
	Keys    Keys
	// Now is the clock; time.Now when nil. Every expiry, window and TOTP
	// step is computed from it.
	Now func() time.Time
	// Params tune the service; zero fields take DefaultParams' values.
	Params Params
	// WebAuthn is the relying party for security keys (webauthn.go).
	WebAuthn KeyConfig
}

// Service is identity and access.
type Service struct {
	st   *store.Store
	log  Recorder
	keys Keys
	now  func() time.Time
	p    Params
	// verify checks a password against a hash: VerifyPassword. Tests wrap
	// it to count argon2 runs (unknown and known users must cost alike).
	verify func(encoded, password string) error
	// dummy is a password hash checked for unknown and disabled users, so
	// that they cost one argon2 run like everyone else. Made on first use:
	// a service that never sees a login never pays for it.
	dummyOnce sync.Once
	dummy     string
	// touching is held while a session or token timestamp is written; see
	// touch.
	touching sync.Mutex
	// wa is the WebAuthn relying party built from rp.
	wa *webauthn.WebAuthn
	rp KeyConfig
}

// NewService checks deps and returns a Service.
func NewService(d Deps) (*Service, error) {
	if d.Store == nil || d.Journal == nil || d.Keys == nil {
		return nil, fmt.Errorf("auth: Store, Journal and Keys are required")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	wa, rp, err := newRelyingParty(d.WebAuthn)
	if err != nil {
		return nil, err
	}
	s := &Service{st: d.Store, log: d.Journal, keys: d.Keys, now: d.Now, p: d.Params.withDefaults(), verify: VerifyPassword, wa: wa, rp: rp}
	return s, nil
}

// dummyHash returns the hash checked for unknown and disabled users, made
// once with the service's own argon2 parameters.
func (s *Service) dummyHash() string {
	s.dummyOnce.Do(func() {
		// Hashing fails only if crypto/rand does; then "" fails to verify
		// (ErrBadHash) and the login is refused all the same.
		s.dummy, _ = HashPasswordWith(s.p.Argon, "not a password anyone has")
	})
	return s.dummy
}

// Params returns the effective parameters.
func (s *Service) Params() Params { return s.p }

// Client is where a request came from, recorded in every audit entry.
type Client struct {
	IP        string
	UserAgent string
}

// Principal is an authenticated caller, made only by Service.Authenticate,
// AuthenticateToken or the login steps. Services receive it from the console
// and pass it back to Authorize.
type Principal struct {
	UserID string
	Name   string
	Role   string
	// TenantID is the tenant the principal acts in: the user's tenant, the
	// ticket's tenant for a support user during a ticket, "" for appliance
	// admins and for support users without a ticket.
	TenantID string
	// HomeTenantID is the user's own tenant ("" for appliance admins).
	HomeTenantID string
	// SessionID is the session's public id; TokenID the API token's id.
	SessionID string
	TokenID   string
	// SupportTicketID is set while a support ticket pins the principal.
	SupportTicketID string
	// MustChangePassword restricts the principal to OpPasswordChange.
	MustChangePassword bool
	// MustRegisterKey restricts the principal to its own account's
	// housekeeping (register a security key first): its role must use a
	// security key (KeyPolicy) and it has none.
	MustRegisterKey bool
	Client          Client
}

// ApplianceAdmin reports whether p is an admin of no tenant.
func (p Principal) ApplianceAdmin() bool {
	return p.Role == store.RoleAdmin && p.HomeTenantID == "" && p.TokenID == ""
}

// entry builds an audit entry attributed to p.
func (p Principal) entry(tenant string, action audit.Action, object string, details any) audit.Entry {
	return audit.Entry{Tenant: tenant, ActorID: p.UserID, ActorName: p.Name, ActorIP: p.Client.IP, UserAgent: p.Client.UserAgent,
		Action: action, Object: object, Details: jsonDetails(details)}
}

// jsonDetails marshals an audit details object; nil gives "{}".
func jsonDetails(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		// Details are maps of strings and numbers built here; failing to
		// marshal them is a programming error, and the log must still
		// say something.
		return json.RawMessage(`{"error":"details not encodable"}`)
	}
	return b
}

// fields is shorthand for audit details.
type fields = map[string]any

// append writes e in tx; errors are wrapped so the caller's action fails.
func (s *Service) append(ctx context.Context, tx *sql.Tx, e audit.Entry) error {
	_, err := s.log.Record(ctx, tx, e)
	return err
}

// record writes e in its own transaction: for refusals and failed attempts,
// whose own transaction (if any) is rolled back. If the audit write fails,
// the error is joined to cause, so the caller still refuses.
func (s *Service) record(ctx context.Context, cause error, entries ...audit.Entry) error {
	err := s.st.InTx(ctx, func(tx *sql.Tx) error {
		for _, e := range entries {
			if err := s.append(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

// deny audits a refused operation as access.denied and returns cause.
func (s *Service) deny(ctx context.Context, p Principal, tenant string, op Operation, object, reason string, cause error) error {
	return s.record(ctx, cause, p.entry(tenant, audit.ActAccessDenied, object, fields{"operation": string(op), "reason": reason, "error": cause.Error()}))
}

// Authorize checks that p may perform op in tenant and returns the tenant to
// confine every query to. tenant "" means the principal's own tenant. A
// refusal is audited as access.denied and wraps ErrForbidden. Other
// services call it first thing in each operation.
func (s *Service) Authorize(ctx context.Context, p Principal, op Operation, tenant string) (string, error) {
	pin, reason := s.check(p, op, tenant)
	if reason != "" {
		err := fmt.Errorf("%s: %w", op, ErrForbidden)
		switch reason {
		case "password change required":
			err = fmt.Errorf("%s: %w: %w", op, ErrForbidden, ErrPasswordChangeRequired)
		case "security key registration required":
			err = fmt.Errorf("%s: %w: %w", op, ErrForbidden, ErrKeyRequired)
		}
		at := tenant
		if at == "" {
			at = p.TenantID
		}
		return "", s.deny(ctx, p, at, op, tenant, reason, err)
	}
	return pin, nil
}

// check is Authorize without the audit: the pinned tenant, or a reason.
func (s *Service) check(p Principal, op Operation, tenant string) (string, string) {
	perm, ok := permission(op)
	switch {
	case p.UserID == "":
		return "", "no principal"
	case !ok:
		return "", "unknown operation"
	case p.MustChangePassword && !selfService(op):
		// Only the account's own housekeeping (change the password, see
		// or end one's sessions) until the one-time password is replaced.
		return "", "password change required"
	case p.MustRegisterKey && !selfService(op):
		// The role must use a security key and the user has none: only
		// registering one (and the account's own housekeeping) is open.
		return "", "security key registration required"
	case !Allowed(p.Role, op):
		return "", "role " + p.Role + " may not " + string(op)
	case perm.ApplianceOnly && !p.ApplianceAdmin():
		return "", "appliance admins only"
	}
	if selfService(op) || perm.ApplianceOnly {
		return tenant, ""
	}
	if p.Role == store.RoleSupport && p.SupportTicketID == "" {
		return "", "support user without an open support ticket"
	}
	if p.ApplianceAdmin() {
		if tenant == "" && perm.ApplianceWide {
			return "", ""
		}
		if tenant == "" {
			return "", "appliance admin must name a tenant"
		}
		return tenant, ""
	}
	if p.TenantID == "" {
		return "", "principal has no tenant"
	}
	if tenant != "" && tenant != p.TenantID {
		if p.SupportTicketID != "" {
			return "", "cross-tenant attempt during support ticket " + p.SupportTicketID
		}
		return "", "cross-tenant attempt"
	}
	return p.TenantID, ""
}

// Scoped authorises p for op in tenant and returns the store handle
// confined to the pinned tenant: the way other services should reach
// tenant-owned rows, so that no query can run for a tenant the principal
// may not act in (support users get their ticket's tenant only).
func (s *Service) Scoped(ctx context.Context, p Principal, op Operation, tenant string) (*store.TenantStore, error) {
	pin, err := s.Authorize(ctx, p, op, tenant)
	if err != nil {
		return nil, err
	}
	return s.st.Tenant(pin)
}

// Refuse audits a refusal other services decide after Authorize (the
// object is someone else's: a lead signing with another lead's held key)
// as access.denied with reason, and returns err.
func (s *Service) Refuse(ctx context.Context, p Principal, tenant string, op Operation, object, reason string, err error) error {
	return s.deny(ctx, p, tenant, op, object, reason, err)
}

// RefuseNotFound audits a lookup by id that found nothing in the pinned
// tenant as access.denied (an id of another tenant looks exactly like
// that) and returns err; errors other than store.ErrNotFound pass through
// unaudited. Services call it when a Scoped handle's lookup fails.
func (s *Service) RefuseNotFound(ctx context.Context, p Principal, tenant string, op Operation, object string, err error) error {
	return s.notInTenant(ctx, p, tenant, op, object, err)
}
