package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// This file holds what makes dual approval the work of more than one
// person (issue 13, "One admin can satisfy dual approval alone"):
//
//   - an approver counts only if independent of the requester: their
//     account and approving role were neither created nor changed by the
//     requester, nor after the request was made, and they are still
//     enabled and still hold an approving role when the action runs;
//   - granting a privileged role needs another admin's approval
//     (KindRoleGrant) when the tenant has another independent admin, and
//     otherwise raises an anomaly alert and flags the grant for the next
//     access review (store.ReviewFlag).

// refusal marks an error found inside a transaction that must be audited
// as access.denied, with reason, once that transaction has rolled back (so
// the refused action leaves nothing behind but the audit entry).
type refusal struct {
	reason string
	err    error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// approveOperation is the operation p performs by approving requestID: the
// request's kind decides (ApproveOperation). It only picks what Approve
// authorises and audits; a request p cannot see reads as a plain approval,
// refused later as not found.
func (s *Service) approveOperation(ctx context.Context, p Principal, requestID string) Operation {
	tenant := p.TenantID
	if tenant == "" {
		// An unpinned support user: the refusal that follows is labelled
		// with the operation of the request's kind all the same.
		tenant = p.HomeTenantID
	}
	at, err := s.st.AuthTenant(tenant)
	if err != nil {
		return OpApprovalGrant
	}
	a, err := at.Approval(ctx, s.st.Reader(), requestID)
	if err != nil {
		return OpApprovalGrant
	}
	return ApproveOperation(Kind(a.Kind))
}

// changeVerb says what a recorded change did, for refusal reasons.
var changeVerb = map[string]string{
	store.ChangeCreate:    "created",
	store.ChangeRole:      "given a new role",
	store.ChangeDisable:   "disabled",
	store.ChangeTOTPReset: "given a TOTP reset",
}

// notCounted returns why approverID does not count towards request a, or
// "" if they do: disabled or gone, of another tenant, without a role that
// may approve a's kind, or with an account or role created or changed by
// a's requester or after a was made. q reads the change history (the
// caller's transaction, or the reader).
func (s *Service) notCounted(ctx context.Context, q store.Querier, a store.Approval, approverID string) (string, error) {
	u, err := s.st.UserByID(ctx, approverID)
	if err != nil {
		return "", fmt.Errorf("approver %s: %w", approverID, err)
	}
	kind := Kind(a.Kind)
	switch {
	case u.Disabled:
		return "approver " + u.Name + " is disabled", nil
	case u.TenantID != a.TenantID:
		return "approver " + u.Name + " is not in the request's tenant", nil
	case !Allowed(u.Role, ApproveOperation(kind)):
		return "approver " + u.Name + " holds role " + u.Role + ", which may not approve " + string(kind), nil
	}
	if created, err := time.Parse(time.RFC3339Nano, u.CreatedAt); err == nil && created.After(a.CreatedAt) {
		return "approver " + u.Name + "'s account was created after the request was made", nil
	}
	cs, err := s.st.UserChanges(ctx, q, approverID)
	if err != nil {
		return "", err
	}
	for _, c := range cs {
		switch {
		case c.ChangedBy == a.RequesterID:
			return "approver " + u.Name + " was " + changeVerb[c.Change] + " by the requester", nil
		case c.ChangedAt.After(a.CreatedAt):
			return "approver " + u.Name + " was " + changeVerb[c.Change] + " after the request was made", nil
		}
	}
	return "", nil
}

// counted returns the distinct approvers of a's grants gs that count now,
// and for the others why not.
func (s *Service) counted(ctx context.Context, q store.Querier, a store.Approval, gs []store.Grant) ([]string, []string, error) {
	var ids, why []string
	for _, g := range gs {
		// Only grants bound to this hash, by someone other than the
		// requester, and each approver once.
		if !bytes.Equal(g.RequestSHA256, a.RequestSHA256) || g.ApproverID == a.RequesterID || slices.Contains(ids, g.ApproverID) {
			continue
		}
		w, err := s.notCounted(ctx, q, a, g.ApproverID)
		if err != nil {
			return nil, nil, err
		}
		if w != "" {
			why = append(why, w)
			continue
		}
		ids = append(ids, g.ApproverID)
	}
	return ids, why, nil
}

// shortfall is the error for an approval whose grants no longer count.
func shortfall(requestID string, have, need int, why []string) error {
	return fmt.Errorf("approval %s: %d of %d approvers count (%s): %w", requestID, have, need, strings.Join(why, "; "), ErrApproverNotCounted)
}

// otherAdmins lists the enabled admins of tenant, other than p and
// except, who are independent of p: p neither created them nor changed
// their account. They are the people who can approve p's role grants;
// admins p made do not count, or one person could approve their own
// grants through a second account.
func (s *Service) otherAdmins(ctx context.Context, q store.Querier, p Principal, tenant, except string) ([]string, error) {
	ts, err := s.st.Tenant(tenant)
	if err != nil {
		return nil, err
	}
	us, err := ts.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, u := range us {
		if u.Role != store.RoleAdmin || u.Disabled || u.ID == p.UserID || u.ID == except {
			continue
		}
		cs, err := s.st.UserChanges(ctx, q, u.ID)
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(cs, func(c store.UserChange) bool { return c.ChangedBy == p.UserID }) {
			out = append(out, u.ID)
		}
	}
	return out, nil
}

// grantRole enforces the rule for granting role to userID in tenant, inside
// the transaction tx that grants it. others are the independent other
// admins (otherAdmins, read before the grant). With any, the grant needs
// approvalID: p's KindRoleGrant request for exactly req, approved by one
// of them; it is spent here. With none, nobody can approve: the grant goes
// ahead, raises anomaly.alert (activity role.grant.unapproved) and is
// flagged for the next access review. Roles that are not privileged pass.
func (s *Service) grantRole(ctx context.Context, tx *sql.Tx, p Principal, tenant string, req []byte, userID, role, approvalID string, others []string) error {
	if !privileged(role) {
		return nil
	}
	at, err := s.st.AuthTenant(tenant)
	if err != nil {
		return err
	}
	if len(others) > 0 {
		if approvalID == "" {
			return &refusal{reason: fmt.Sprintf("granting %s needs the approval of another admin (%d can approve)", role, len(others)),
				err: fmt.Errorf("grant %s: %w: request one with kind %s", role, ErrApprovalRequired, KindRoleGrant)}
		}
		return s.spend(ctx, tx, at, approvalID, p.UserID, KindRoleGrant, req)
	}
	now := s.now()
	f, err := at.AddReviewFlag(ctx, tx, store.ReviewFlag{ID: store.NewID("rvw"), UserID: userID, Role: role, GrantedBy: p.UserID,
		Reason: "privileged role granted without a second admin's approval: the tenant has no other independent admin", FlaggedAt: now})
	if err != nil {
		return err
	}
	return s.append(ctx, tx, p.entry(tenant, audit.ActAnomalyAlert, userID, fields{"activity": "role.grant.unapproved", "user_id": userID, "role": role,
		"granted_by": p.UserID, "review_flag": f.ID, "reason": f.Reason}))
}

// spend checks, inside tx, that approval id is requesterID's approved
// request of kind for exactly req with enough approvers that count, and
// spends it (SpendApproval). Every failure is a refusal, audited by the
// caller after rollback; nothing is voided or changed.
func (s *Service) spend(ctx context.Context, tx *sql.Tx, at *store.AuthTenant, id, requesterID string, kind Kind, req []byte) error {
	rf := func(reason string, cause error) error {
		return &refusal{reason: reason, err: fmt.Errorf("approval %s: %w", id, cause)}
	}
	a, err := at.Approval(ctx, tx, id)
	if err != nil {
		return rf("approval not found in tenant "+at.ID(), fmt.Errorf("%w: %w", ErrApprovalRequired, err))
	}
	sum := sha256.Sum256(req)
	switch {
	case Kind(a.Kind) != kind:
		return rf("approval is of kind "+a.Kind+", not "+string(kind), ErrApprovalRequired)
	case a.RequesterID != requesterID:
		return rf("approval was requested by someone else", ErrApprovalRequired)
	case !bytes.Equal(sum[:], a.RequestSHA256):
		return rf("approval is for a different request", ErrApprovalVoid)
	case a.Status == store.ApprovalUsed:
		return rf("approval already used", ErrApprovalUsed)
	case a.Status == store.ApprovalVoid:
		return rf("approval void", ErrApprovalVoid)
	case a.Status == store.ApprovalDenied:
		return rf("approval denied", ErrApprovalDenied)
	case !s.now().Before(a.ExpiresAt):
		return rf("approval expired", ErrApprovalExpired)
	case a.Status != store.ApprovalApproved:
		return rf("approval pending", ErrApprovalPending)
	}
	err = s.SpendApproval(ctx, tx, at.ID(), id)
	if errors.Is(err, ErrApprovalUsed) || errors.Is(err, ErrApproverNotCounted) {
		return &refusal{reason: err.Error(), err: err}
	}
	return err
}
