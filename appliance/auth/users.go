package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// sensitive runs fn in one transaction after authorising p for op in tenant
// and spending a step-up bound to OpRequest(op, pinned tenant, args). Every
// refusal is audited: by Authorize, by stepUpFailed, or (objects not found
// in the pinned tenant) as access.denied by notInTenant.
func (s *Service) sensitive(ctx context.Context, p Principal, op Operation, tenant string, args map[string]string, code string, fn func(tx *sql.Tx, pin string) error) error {
	pin, err := s.Authorize(ctx, p, op, tenant)
	if err != nil {
		return err
	}
	req := OpRequest(op, pin, args)
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		if NeedsStepUp(op) {
			if err := s.useStepUp(ctx, tx, p, pin, op, req, code); err != nil {
				return err
			}
		}
		return fn(tx, pin)
	})
	if err != nil {
		object := args["id"]
		if object == "" {
			object = args["name"]
		}
		var r *refusal
		if errors.As(err, &r) {
			// Found inside the transaction, audited now that it has
			// rolled back: the refused action left nothing else behind.
			return s.deny(ctx, p, pin, op, object, r.reason, err)
		}
		return s.notInTenant(ctx, p, pin, op, object, s.stepUpFailed(ctx, p, pin, op, err))
	}
	return nil
}

// notInTenant audits a lookup that found nothing in the pinned tenant: an id
// from another tenant (or a guessed one) is a cross-tenant attempt as far as
// the log is concerned. Other errors pass through.
func (s *Service) notInTenant(ctx context.Context, p Principal, tenant string, op Operation, object string, err error) error {
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return s.deny(ctx, p, tenant, op, object, "object not found in tenant "+tenant, err)
}

// UserInfo is a user as shown to admins (no secrets).
type UserInfo struct {
	ID, TenantID, Name, Role string
	TOTPConfirmed            bool
	MustChangePassword       bool
	Disabled                 bool
	CreatedAt                string
}

func infoOf(u store.User) UserInfo {
	return UserInfo{ID: u.ID, TenantID: u.TenantID, Name: u.Name, Role: u.Role, TOTPConfirmed: u.TOTPConfirmed, MustChangePassword: u.MustChangePassword, Disabled: u.Disabled, CreatedAt: u.CreatedAt}
}

// CreateTenant creates a tenant (appliance admins, step-up).
func (s *Service) CreateTenant(ctx context.Context, p Principal, name, stepUpCode string) (store.Tenant, error) {
	name = strings.TrimSpace(name)
	if err := ValidName("tenant", name); err != nil {
		return store.Tenant{}, err
	}
	var t store.Tenant
	err := s.sensitive(ctx, p, OpTenantCreate, "", map[string]string{"name": name}, stepUpCode, func(tx *sql.Tx, _ string) error {
		var err error
		if t, err = s.st.CreateTenant(ctx, tx, name); err != nil {
			return err
		}
		return s.append(ctx, tx, p.entry(t.ID, audit.ActTenantCreate, t.ID, fields{"name": name}))
	})
	return t, err
}

// ListTenants lists tenants (appliance admins).
func (s *Service) ListTenants(ctx context.Context, p Principal) ([]store.Tenant, error) {
	if _, err := s.Authorize(ctx, p, OpTenantList, ""); err != nil {
		return nil, err
	}
	return s.st.ListTenants(ctx)
}

// ListUsers lists tenant's users ("" for p's own tenant).
func (s *Service) ListUsers(ctx context.Context, p Principal, tenant string) ([]UserInfo, error) {
	pin, err := s.Authorize(ctx, p, OpUserList, tenant)
	if err != nil {
		return nil, err
	}
	ts, err := s.st.Tenant(pin)
	if err != nil {
		return nil, err
	}
	us, err := ts.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]UserInfo, 0, len(us))
	for _, u := range us {
		out = append(out, infoOf(u))
	}
	return out, nil
}

// NewUser describes a user to create.
type NewUser struct {
	Name string
	Role string
	// ApprovalID names the approved KindRoleGrant request for this exact
	// user (CreateUserRequest) when Role is privileged and the tenant has
	// another admin; "" otherwise.
	ApprovalID string
}

// CreateUserRequest is the canonical request of CreateUser in the pinned
// tenant (a tenant admin's own tenant id): what its step-up binds to, and
// what a KindRoleGrant approval for a privileged role is requested on.
func CreateUserRequest(tenant string, nu NewUser) []byte {
	return OpRequest(OpUserCreate, tenant, map[string]string{"name": strings.TrimSpace(nu.Name), "role": nu.Role})
}

// SetRoleRequest is the canonical request of SetRole in the pinned tenant,
// as CreateUserRequest is for CreateUser.
func SetRoleRequest(tenant, userID, role string) []byte {
	return OpRequest(OpUserRoleChange, tenant, map[string]string{"id": userID, "role": role})
}

// CreateUser creates a user in tenant with a one-time password, returned
// once; the user must change it and enrol TOTP at first login.
//
// A privileged role (approver, security_lead, admin) needs another admin's
// approval when the tenant has another admin independent of p (one p did
// not create or change): p first calls RequestApproval with KindRoleGrant on
// CreateUserRequest, another admin approves, and p passes its id in
// nu.ApprovalID; without it the call is refused with ErrApprovalRequired
// (audited) and nothing is created. In a tenant without such an admin the
// user is created, an anomaly.alert is written and the grant is flagged
// for the next access review.
func (s *Service) CreateUser(ctx context.Context, p Principal, tenant string, nu NewUser, stepUpCode string) (UserInfo, string, error) {
	nu.Name = strings.TrimSpace(nu.Name)
	if err := ValidUserName(nu.Name); err != nil {
		return UserInfo{}, "", err
	}
	if !slices.Contains(store.Roles(), nu.Role) {
		return UserInfo{}, "", fmt.Errorf("new user %q role %q: %w", nu.Name, nu.Role, ErrInvalid)
	}
	otp, err := RandomPassword()
	if err != nil {
		return UserInfo{}, "", err
	}
	hash, err := HashPasswordWith(s.p.Argon, otp)
	if err != nil {
		return UserInfo{}, "", err
	}
	var u store.User
	err = s.sensitive(ctx, p, OpUserCreate, tenant, map[string]string{"name": nu.Name, "role": nu.Role}, stepUpCode, func(tx *sql.Tx, pin string) error {
		ts, err := s.st.Tenant(pin)
		if err != nil {
			return err
		}
		// Counted before the new user exists, who must not count as the
		// other admin of their own grant.
		others, err := s.otherAdmins(ctx, tx, p, pin, "")
		if err != nil {
			return err
		}
		if u, err = ts.CreateUser(ctx, tx, store.User{Name: nu.Name, Role: nu.Role, PasswordHash: hash, MustChangePassword: true}); err != nil {
			return err
		}
		if err := s.st.AddUserChange(ctx, tx, store.UserChange{UserID: u.ID, TenantID: pin, Change: store.ChangeCreate, Role: u.Role, ChangedBy: p.UserID, ChangedAt: s.now()}); err != nil {
			return err
		}
		if err := s.append(ctx, tx, p.entry(pin, audit.ActUserCreate, u.ID, fields{"name": u.Name, "role": u.Role})); err != nil {
			return err
		}
		return s.grantRole(ctx, tx, p, pin, CreateUserRequest(pin, nu), u.ID, u.Role, nu.ApprovalID, others)
	})
	if err != nil {
		return UserInfo{}, "", err
	}
	return infoOf(u), otp, nil
}

// SetRole changes a user's role in tenant and ends all of that user's
// sessions, so the new rights (or their loss) apply from a fresh login.
// A privileged role is granted under the same rule as in CreateUser; use
// SetRoleApproved to name the approved KindRoleGrant request.
func (s *Service) SetRole(ctx context.Context, p Principal, tenant, userID, role, stepUpCode string) error {
	return s.SetRoleApproved(ctx, p, tenant, userID, role, "", stepUpCode)
}

// SetRoleApproved is SetRole with approvalID: p's approved KindRoleGrant
// request on SetRoleRequest for exactly this change ("" when none is
// needed).
func (s *Service) SetRoleApproved(ctx context.Context, p Principal, tenant, userID, role, approvalID, stepUpCode string) error {
	if !slices.Contains(store.Roles(), role) {
		return fmt.Errorf("role %q: %w", role, ErrInvalid)
	}
	return s.sensitive(ctx, p, OpUserRoleChange, tenant, map[string]string{"id": userID, "role": role}, stepUpCode, func(tx *sql.Tx, pin string) error {
		ts, err := s.st.Tenant(pin)
		if err != nil {
			return err
		}
		old, err := ts.User(ctx, userID)
		if err != nil {
			return err
		}
		// The user whose role changes is not the other admin of the change.
		others, err := s.otherAdmins(ctx, tx, p, pin, userID)
		if err != nil {
			return err
		}
		if err := ts.SetUserRole(ctx, tx, userID, role); err != nil {
			return err
		}
		if err := s.st.AddUserChange(ctx, tx, store.UserChange{UserID: userID, TenantID: pin, Change: store.ChangeRole, Role: role, ChangedBy: p.UserID, ChangedAt: s.now()}); err != nil {
			return err
		}
		n, err := s.st.DeleteUserSessions(ctx, tx, userID)
		if err != nil {
			return err
		}
		if err := s.append(ctx, tx, p.entry(pin, audit.ActUserRoleChange, userID, fields{"from": old.Role, "to": role, "sessions_ended": n})); err != nil {
			return err
		}
		return s.grantRole(ctx, tx, p, pin, SetRoleRequest(pin, userID, role), userID, role, approvalID, others)
	})
}

// DisableUser disables a user in tenant and ends their sessions; their API
// tokens stop working (AuthenticateToken checks the user).
func (s *Service) DisableUser(ctx context.Context, p Principal, tenant, userID, stepUpCode string) error {
	return s.sensitive(ctx, p, OpUserDisable, tenant, map[string]string{"id": userID}, stepUpCode, func(tx *sql.Tx, pin string) error {
		ts, err := s.st.Tenant(pin)
		if err != nil {
			return err
		}
		u, err := ts.User(ctx, userID)
		if err != nil {
			return err
		}
		if err := ts.DisableUser(ctx, tx, userID); err != nil {
			return err
		}
		if err := s.st.AddUserChange(ctx, tx, store.UserChange{UserID: userID, TenantID: pin, Change: store.ChangeDisable, Role: u.Role, ChangedBy: p.UserID, ChangedAt: s.now()}); err != nil {
			return err
		}
		n, err := s.st.DeleteUserSessions(ctx, tx, userID)
		if err != nil {
			return err
		}
		return s.append(ctx, tx, p.entry(pin, audit.ActUserDisable, userID, fields{"sessions_ended": n}))
	})
}

// ResetTOTP clears a user's TOTP secret and recovery codes after a lost
// device and ends the user's sessions; the next login goes through
// enrolment again. The last accepted time step is kept, so no code from
// before the reset can ever be replayed.
func (s *Service) ResetTOTP(ctx context.Context, p Principal, tenant, userID, stepUpCode string) error {
	return s.sensitive(ctx, p, OpUserTOTPReset, tenant, map[string]string{"id": userID}, stepUpCode, func(tx *sql.Tx, pin string) error {
		ts, err := s.st.Tenant(pin)
		if err != nil {
			return err
		}
		// The lookup through the tenant handle is the tenant check; the
		// updates below are by id.
		u, err := ts.User(ctx, userID)
		if err != nil {
			return err
		}
		if err := s.st.AddUserChange(ctx, tx, store.UserChange{UserID: userID, TenantID: pin, Change: store.ChangeTOTPReset, Role: u.Role, ChangedBy: p.UserID, ChangedAt: s.now()}); err != nil {
			return err
		}
		if err := s.st.SetUserTOTP(ctx, tx, userID, nil, false); err != nil {
			return err
		}
		if err := s.st.ReplaceRecoveryCodes(ctx, tx, userID, nil); err != nil {
			return err
		}
		n, err := s.st.DeleteUserSessions(ctx, tx, userID)
		if err != nil {
			return err
		}
		return s.append(ctx, tx, p.entry(pin, audit.ActUserUpdate, userID, fields{"totp": "reset", "sessions_ended": n}))
	})
}

// RegenerateRecoveryCodes replaces p's recovery codes (step-up) and returns
// the new ones, shown once.
func (s *Service) RegenerateRecoveryCodes(ctx context.Context, p Principal, stepUpCode string) ([]string, error) {
	if p.TokenID != "" {
		return nil, s.deny(ctx, p, p.TenantID, OpRecoveryCodes, p.UserID, "API tokens cannot manage recovery codes", fmt.Errorf("recovery codes: %w", ErrForbidden))
	}
	codes, hashes, err := newRecoveryCodes(s.p.RecoveryCodes)
	if err != nil {
		return nil, err
	}
	err = s.sensitive(ctx, p, OpRecoveryCodes, "", nil, stepUpCode, func(tx *sql.Tx, _ string) error {
		if err := s.st.ReplaceRecoveryCodes(ctx, tx, p.UserID, hashes); err != nil {
			return err
		}
		return s.append(ctx, tx, p.entry(p.HomeTenantID, audit.ActUserUpdate, p.UserID, fields{"recovery_codes": len(codes)}))
	})
	if err != nil {
		return nil, err
	}
	return codes, nil
}
