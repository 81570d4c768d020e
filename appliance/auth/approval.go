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
	"slices"
	"strings"
	"time"

	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// Kind is what a dual-approval request is for. There is one approval
// mechanism; the kind says which operation the requester must be allowed.
type Kind string

// Approval kinds.
const (
	// KindProductionScan is a scan of a production scope.
	KindProductionScan Kind = "scan.production"
	// KindScanSchedule is a standing approval of a scan schedule: its
	// canonical request is the schedule's standing job request; once
	// approved the scan service keeps the approvers for the schedule's
	// validity (at most 90 days).
	KindScanSchedule Kind = "scan.schedule"
	// KindEvidenceExport is an evidence bundle export.
	KindEvidenceExport Kind = "evidence.export"
	// KindRoleGrant is an admin's grant of a privileged role (approver,
	// security_lead, admin) in a tenant that has another admin, who must
	// approve it (OpRoleGrantApprove; one approval). Its canonical request
	// is CreateUserRequest or SetRoleRequest, exactly what the grant runs.
	KindRoleGrant Kind = "user.role.grant"
)

// operation is the operation a requester of kind must be allowed.
func (k Kind) operation() (Operation, bool) {
	switch k {
	case KindProductionScan, KindScanSchedule:
		return OpScanRequest, true
	case KindEvidenceExport:
		return OpEvidenceExport, true
	case KindRoleGrant:
		return OpUserRoleChange, true // refined by roleGrantTarget
	}
	return "", false
}

// roleGrantTarget checks that b is the canonical request of a grant of a
// privileged role (CreateUserRequest or SetRoleRequest, with a tenant) and
// returns its operation and tenant.
func roleGrantTarget(b []byte) (Operation, string, error) {
	bad := func(why string) (Operation, string, error) {
		return "", "", fmt.Errorf("role grant request: %s: %w", why, ErrInvalid)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return bad("not a canonical operation request")
	}
	op, tenant := Operation(m["op"]), m["tenant"]
	args := map[string]string{}
	for k, v := range m {
		if a, ok := strings.CutPrefix(k, "arg."); ok {
			args[a] = v
		}
	}
	if !bytes.Equal(OpRequest(op, tenant, args), b) {
		return bad("not in canonical form")
	}
	want := map[Operation]string{OpUserCreate: "name", OpUserRoleChange: "id"}[op]
	switch {
	case want == "":
		return bad("operation " + string(op) + " grants no role")
	case tenant == "":
		return bad("no tenant")
	case len(args) != 2 || args[want] == "":
		return bad("arguments must be " + want + " and role")
	case !privileged(args["role"]):
		return bad("role " + args["role"] + " is not privileged: no approval needed")
	}
	return op, tenant, nil
}

// RequiredApprovals is how many distinct approvers a request needs; a
// KindRoleGrant needs one other admin (the requester is the first).
const RequiredApprovals = 2

// required is how many approvers that count a request of kind needs.
func (k Kind) required() int {
	if k == KindRoleGrant {
		return 1
	}
	return RequiredApprovals
}

// ApproveOperation is the operation an approver of kind performs, and
// steps up for with ApproveRequest: OpRoleGrantApprove for KindRoleGrant
// (admins), OpApprovalGrant otherwise (approvers and security leads).
func ApproveOperation(k Kind) Operation {
	if k == KindRoleGrant {
		return OpRoleGrantApprove
	}
	return OpApprovalGrant
}

// privileged reports whether role can approve, sign scopes or administer:
// granting it needs another admin's approval.
func privileged(role string) bool {
	switch role {
	case store.RoleAdmin, store.RoleSecurityLead, store.RoleApprover:
		return true
	}
	return false
}

// Approval is a dual-approval request with its grants.
type Approval struct {
	ID, TenantID string
	Kind         Kind
	RequesterID  string
	// Request is the canonical request the approvers reviewed.
	Request       []byte
	RequestSHA256 string // hex
	// Status is pending, approved, denied or void.
	Status    string
	CreatedAt time.Time
	ExpiresAt time.Time
	ClosedAt  time.Time
	Approvers []Approver
}

// Approver is one grant.
type Approver struct {
	UserID    string
	GrantedAt time.Time
}

func approvalOf(a store.Approval, gs []store.Grant) Approval {
	out := Approval{ID: a.ID, TenantID: a.TenantID, Kind: Kind(a.Kind), RequesterID: a.RequesterID, Request: a.Request,
		RequestSHA256: hex.EncodeToString(a.RequestSHA256), Status: a.Status, CreatedAt: a.CreatedAt, ExpiresAt: a.ExpiresAt, ClosedAt: a.ClosedAt}
	for _, g := range gs {
		out.Approvers = append(out.Approvers, Approver{UserID: g.ApproverID, GrantedAt: g.GrantedAt})
	}
	return out
}

// RequestApproval opens a dual-approval request by actor for kind on the
// canonical request bytes (the caller's canonical encoding of exactly what
// will run or be exported). The approvals bind to its SHA-256; the request
// expires after Params.ApprovalTTL.
//
// For KindRoleGrant the request names its operation and tenant (it is a
// CreateUserRequest or SetRoleRequest for a privileged role), and the actor
// must be allowed that operation there.
func (s *Service) RequestApproval(ctx context.Context, actor Principal, kind Kind, canonicalRequest []byte) (Approval, error) {
	op, ok := kind.operation()
	if !ok || len(canonicalRequest) == 0 {
		return Approval{}, fmt.Errorf("approval kind %q: %w", kind, ErrInvalid)
	}
	tenant := ""
	if kind == KindRoleGrant {
		var err error
		if op, tenant, err = roleGrantTarget(canonicalRequest); err != nil {
			return Approval{}, err
		}
	}
	pin, err := s.Authorize(ctx, actor, op, tenant)
	if err != nil {
		return Approval{}, err
	}
	at, err := s.st.AuthTenant(pin)
	if err != nil {
		return Approval{}, err
	}
	now := s.now()
	sum := sha256.Sum256(canonicalRequest)
	var a store.Approval
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		a, err = at.CreateApproval(ctx, tx, store.Approval{ID: store.NewID("apr"), Kind: string(kind), RequesterID: actor.UserID,
			Request: bytes.Clone(canonicalRequest), RequestSHA256: sum[:], Status: store.ApprovalPending, CreatedAt: now, ExpiresAt: now.Add(s.p.ApprovalTTL)})
		if err != nil {
			return err
		}
		return s.append(ctx, tx, actor.entry(pin, audit.ActApprovalRequest, a.ID, fields{"kind": string(kind), "request_sha256": hex.EncodeToString(sum[:]), "expires": a.ExpiresAt.Format(time.RFC3339)}))
	})
	if err != nil {
		return Approval{}, err
	}
	return approvalOf(a, nil), nil
}

// ApproveRequest is the canonical request an approver's step-up binds to:
// the approval id and the SHA-256 of the request it approves. A console
// collecting the code first passes it to StepUp with OpApprovalGrant.
func ApproveRequest(requestID, requestSHA256Hex string) []byte {
	return OpRequest(OpApprovalGrant, "", map[string]string{"id": requestID, "request_sha256": requestSHA256Hex})
}

// Approve records approver's approval of request requestID, after a fresh
// TOTP (stepUpCode, or a grant from StepUp for ApproveRequest). The
// approver must hold approver or security_lead in the request's tenant, must
// not be the requester, and may approve once. The second distinct approval
// makes the request approved. Every refusal is audited.
//
// The approver must also be independent of the requester: an approver whose
// account or role was created or changed by the requester, or after the
// request was made, is refused with ErrApproverNotCounted (audited with the
// reason). A KindRoleGrant is approved by another admin (OpRoleGrantApprove)
// and needs one approval.
func (s *Service) Approve(ctx context.Context, approver Principal, requestID, stepUpCode string) (Approval, error) {
	op := s.approveOperation(ctx, approver, requestID)
	pin, at, a, err := s.authorizedApproval(ctx, approver, op, requestID)
	if err != nil {
		return Approval{}, err
	}
	refuse := func(reason string, cause error) (Approval, error) {
		return Approval{}, s.deny(ctx, approver, pin, op, requestID, reason, fmt.Errorf("approve %s: %w", requestID, cause))
	}
	now := s.now()
	switch {
	case a.RequesterID == approver.UserID:
		return refuse("requester approving own request", ErrSelfApproval)
	case a.Status == store.ApprovalVoid:
		return refuse("request void", ErrApprovalVoid)
	case a.Status == store.ApprovalDenied:
		return refuse("request denied", ErrApprovalDenied)
	case !now.Before(a.ExpiresAt):
		return refuse("request expired", ErrApprovalExpired)
	}
	why, err := s.notCounted(ctx, s.st.Reader(), a, approver.UserID)
	if err != nil {
		return Approval{}, err
	}
	if why != "" {
		return refuse(why, ErrApproverNotCounted)
	}
	gs, err := at.Grants(ctx, s.st.Reader(), requestID)
	if err != nil {
		return Approval{}, err
	}
	if slices.ContainsFunc(gs, func(g store.Grant) bool { return g.ApproverID == approver.UserID }) {
		return refuse("approver already approved", ErrAlreadyApproved)
	}
	shaHex := hex.EncodeToString(a.RequestSHA256)
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.useStepUp(ctx, tx, approver, pin, op, ApproveRequest(requestID, shaHex), stepUpCode); err != nil {
			return err
		}
		// Re-read inside the transaction: the request may have been voided
		// or approved meanwhile.
		cur, err := at.Approval(ctx, tx, requestID)
		if err != nil {
			return err
		}
		if cur.Status != store.ApprovalPending && cur.Status != store.ApprovalApproved {
			return fmt.Errorf("approve %s: %w", requestID, ErrApprovalVoid)
		}
		if !bytes.Equal(cur.RequestSHA256, a.RequestSHA256) {
			return fmt.Errorf("approve %s: %w", requestID, ErrApprovalVoid)
		}
		if err := at.AddGrant(ctx, tx, store.Grant{ApprovalID: requestID, ApproverID: approver.UserID, RequestSHA256: a.RequestSHA256, GrantedAt: now}); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("approve %s: %w", requestID, ErrAlreadyApproved)
			}
			return err
		}
		if err := s.append(ctx, tx, approver.entry(pin, audit.ActApprovalGrant, requestID, fields{"kind": a.Kind, "request_sha256": shaHex})); err != nil {
			return err
		}
		if gs, err = at.Grants(ctx, tx, requestID); err != nil {
			return err
		}
		if len(gs) >= Kind(a.Kind).required() && cur.Status == store.ApprovalPending {
			if err := at.MarkApproved(ctx, tx, requestID); err != nil {
				return err
			}
			ids := make([]string, 0, len(gs))
			for _, g := range gs {
				ids = append(ids, g.ApproverID)
			}
			if err := s.append(ctx, tx, approver.entry(pin, audit.ActApprovalComplete, requestID, fields{"kind": a.Kind, "request_sha256": shaHex, "approvers": ids})); err != nil {
				return err
			}
		}
		a, err = at.Approval(ctx, tx, requestID)
		return err
	})
	if err != nil {
		err = s.stepUpFailed(ctx, approver, pin, op, err)
		if errors.Is(err, ErrAlreadyApproved) || errors.Is(err, ErrApprovalVoid) {
			return refuse(err.Error(), err)
		}
		return Approval{}, err
	}
	return approvalOf(a, gs), nil
}

// DenyRequest is the canonical request a denier's step-up binds to: the
// approval id and the SHA-256 of the request it denies, as ApproveRequest
// for an approval. A console collecting the code first passes it to
// StepUp with OpApprovalDeny.
func DenyRequest(requestID, requestSHA256Hex string) []byte {
	return OpRequest(OpApprovalDeny, "", map[string]string{"id": requestID, "request_sha256": requestSHA256Hex})
}

// Deny closes a pending request as denied, after a fresh TOTP (stepUpCode,
// or a grant from StepUp for DenyRequest): a denial ends a dual approval
// for good, so it is confirmed like an approval. The step-up is spent in
// the transaction that closes the request; a missing or wrong one is
// audited (auth.stepup.failed) and nothing changes.
func (s *Service) Deny(ctx context.Context, approver Principal, requestID, reason, stepUpCode string) error {
	return s.close(ctx, approver, OpApprovalDeny, requestID, store.ApprovalDenied, audit.ActApprovalDeny, reason, stepUpCode)
}

// VoidApproval withdraws a request (its requester, or an admin or security
// lead), for example because the request is being edited: its approvals no
// longer count, and the edited request needs a new RequestApproval.
func (s *Service) VoidApproval(ctx context.Context, p Principal, requestID, reason string) error {
	return s.close(ctx, p, OpApprovalVoid, requestID, store.ApprovalVoid, audit.ActApprovalVoid, reason, "")
}

// close ends request requestID with status. stepUpCode is used only for
// operations that need step-up (OpApprovalDeny), bound to DenyRequest.
func (s *Service) close(ctx context.Context, p Principal, op Operation, requestID, status string, action audit.Action, reason, stepUpCode string) error {
	pin, at, a, err := s.authorizedApproval(ctx, p, op, requestID)
	if err != nil {
		return err
	}
	if op == OpApprovalVoid && a.RequesterID != p.UserID && p.Role != store.RoleAdmin && p.Role != store.RoleSecurityLead {
		return s.deny(ctx, p, pin, op, requestID, "only the requester, an admin or a security lead may void", fmt.Errorf("void %s: %w", requestID, ErrForbidden))
	}
	if op == OpApprovalDeny && Kind(a.Kind) == KindRoleGrant {
		// Role grants are judged by admins, who refuse one by voiding it.
		return s.deny(ctx, p, pin, op, requestID, "role grants are judged by admins (void to refuse)", fmt.Errorf("deny %s: %w", requestID, ErrForbidden))
	}
	if op == OpApprovalDeny && a.RequesterID == p.UserID {
		return s.deny(ctx, p, pin, op, requestID, "requester judging own request", fmt.Errorf("deny %s: %w", requestID, ErrSelfApproval))
	}
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		if NeedsStepUp(op) {
			if err := s.useStepUp(ctx, tx, p, pin, op, DenyRequest(requestID, hex.EncodeToString(a.RequestSHA256)), stepUpCode); err != nil {
				return err
			}
		}
		if err := at.CloseApproval(ctx, tx, requestID, status, s.now()); err != nil {
			return err
		}
		return s.append(ctx, tx, p.entry(pin, action, requestID, fields{"kind": a.Kind, "reason": reason}))
	})
	if err != nil {
		err = s.stepUpFailed(ctx, p, pin, op, err)
	}
	return s.notInTenant(ctx, p, pin, op, requestID, err)
}

// CheckApproved reports whether request requestID holds two approvals for
// exactly canonicalRequest and has neither expired nor been voided or
// denied: nil means the caller may proceed. If canonicalRequest differs from
// what was approved, the request is voided for good (audited as
// approval.void) and ErrApprovalVoid is returned: any change kills the
// approvals. Scan and evidence-export code call it right before acting, in
// the worker as well as at submission.
//
// Callers that know the tenant should prefer VerifiedApproval with it: then
// a request id of another tenant is refused (and audited) before its bytes
// are compared, so it cannot be voided from the wrong tenant.
func (s *Service) CheckApproved(ctx context.Context, requestID string, canonicalRequest []byte) error {
	_, err := s.VerifiedApproval(ctx, "", requestID, canonicalRequest)
	return err
}

// VerifiedApproval is CheckApproved confined to tenant ("" for whichever
// tenant owns the request), returning the approval with its approvers (for
// evidence manifests).
func (s *Service) VerifiedApproval(ctx context.Context, tenant, requestID string, canonicalRequest []byte) (Approval, error) {
	return s.verifiedApproval(ctx, tenant, "", requestID, canonicalRequest)
}

// verifiedApproval is VerifiedApproval, and with requesterID set also
// VerifiedApprovalFor's requester check.
func (s *Service) verifiedApproval(ctx context.Context, tenant, requesterID, requestID string, canonicalRequest []byte) (Approval, error) {
	owner, err := s.st.ApprovalTenant(ctx, requestID)
	if err != nil {
		return Approval{}, err
	}
	if tenant != "" && owner != tenant {
		err := fmt.Errorf("approval %s: %w", requestID, store.ErrNotFound)
		return Approval{}, s.record(ctx, err, audit.Entry{Tenant: tenant, ActorName: "system", Action: audit.ActAccessDenied, Object: requestID,
			Details: jsonDetails(fields{"operation": "approval.check", "reason": "cross-tenant attempt: approval belongs to another tenant"})})
	}
	tenant = owner
	at, err := s.st.AuthTenant(tenant)
	if err != nil {
		return Approval{}, err
	}
	a, err := at.Approval(ctx, s.st.Reader(), requestID)
	if err != nil {
		return Approval{}, err
	}
	if requesterID != "" && a.RequesterID != requesterID {
		err := fmt.Errorf("approval %s: %w: requested by someone else", requestID, ErrForbidden)
		return Approval{}, s.record(ctx, err, audit.Entry{Tenant: tenant, ActorID: requesterID, ActorName: requesterID, Action: audit.ActAccessDenied, Object: requestID,
			Details: jsonDetails(fields{"operation": "approval.use", "reason": "approval belongs to another requester"})})
	}
	sum := sha256.Sum256(canonicalRequest)
	if !bytes.Equal(sum[:], a.RequestSHA256) {
		if a.Status == store.ApprovalPending || a.Status == store.ApprovalApproved {
			err := s.st.InTx(ctx, func(tx *sql.Tx) error {
				if err := at.CloseApproval(ctx, tx, requestID, store.ApprovalVoid, s.now()); err != nil {
					return err
				}
				return s.append(ctx, tx, audit.Entry{Tenant: tenant, ActorName: "system", Action: audit.ActApprovalVoid, Object: requestID,
					Details: jsonDetails(fields{"reason": "request changed after approval was requested", "approved_sha256": hex.EncodeToString(a.RequestSHA256), "presented_sha256": hex.EncodeToString(sum[:])})})
			})
			if err != nil {
				return Approval{}, errors.Join(ErrApprovalVoid, err)
			}
		}
		return Approval{}, fmt.Errorf("approval %s: request changed: %w", requestID, ErrApprovalVoid)
	}
	gs, err := at.Grants(ctx, s.st.Reader(), requestID)
	if err != nil {
		return Approval{}, err
	}
	switch {
	case a.Status == store.ApprovalUsed:
		return Approval{}, fmt.Errorf("approval %s: %w", requestID, ErrApprovalUsed)
	case a.Status == store.ApprovalVoid:
		return Approval{}, fmt.Errorf("approval %s: %w", requestID, ErrApprovalVoid)
	case a.Status == store.ApprovalDenied:
		return Approval{}, fmt.Errorf("approval %s: %w", requestID, ErrApprovalDenied)
	case !s.now().Before(a.ExpiresAt):
		return Approval{}, fmt.Errorf("approval %s: %w", requestID, ErrApprovalExpired)
	}
	need := Kind(a.Kind).required()
	distinct := map[string]bool{}
	for _, g := range gs {
		// Defence in depth: count only grants bound to this hash, by
		// someone other than the requester.
		if bytes.Equal(g.RequestSHA256, a.RequestSHA256) && g.ApproverID != a.RequesterID {
			distinct[g.ApproverID] = true
		}
	}
	if a.Status != store.ApprovalApproved || len(distinct) < need {
		return Approval{}, fmt.Errorf("approval %s: %d of %d: %w", requestID, len(distinct), need, ErrApprovalPending)
	}
	// The approvers must still count now, right before the action: one
	// disabled, demoted or changed since no longer does.
	ids, why, err := s.counted(ctx, s.st.Reader(), a, gs)
	if err != nil {
		return Approval{}, err
	}
	if len(ids) < need {
		err := shortfall(requestID, len(ids), need, why)
		return Approval{}, s.record(ctx, err, audit.Entry{Tenant: tenant, ActorName: "system", Action: audit.ActAccessDenied, Object: requestID,
			Details: jsonDetails(fields{"operation": "approval.use", "reason": strings.Join(why, "; "), "error": err.Error()})})
	}
	return approvalOf(a, gs), nil
}

// VerifiedApprovalFor is VerifiedApproval for the requester about to act on
// the approval. A request of somebody else is refused, and audited as
// access.denied, before its bytes are compared: presenting another person's
// request id can neither use nor void their approval.
func (s *Service) VerifiedApprovalFor(ctx context.Context, tenant, requesterID, requestID string, canonicalRequest []byte) (Approval, error) {
	return s.verifiedApproval(ctx, tenant, requesterID, requestID, canonicalRequest)
}

// SpendApproval marks tenant's approved request requestID as used, inside
// tx: the transaction of the action it authorises, which records
// approval.complete with it. Each approval authorises one action; a second
// use (or a concurrent one that lost the race) is ErrApprovalUsed. The
// approvers are counted again inside tx: if one was disabled, demoted or
// changed since VerifiedApproval, it is ErrApproverNotCounted (the caller
// audits the refusal after rolling back).
func (s *Service) SpendApproval(ctx context.Context, tx *sql.Tx, tenant, requestID string) error {
	at, err := s.st.AuthTenant(tenant)
	if err != nil {
		return err
	}
	a, err := at.Approval(ctx, tx, requestID)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("approval %s: %w", requestID, ErrApprovalUsed)
	}
	if err != nil {
		return err
	}
	gs, err := at.Grants(ctx, tx, requestID)
	if err != nil {
		return err
	}
	ids, why, err := s.counted(ctx, tx, a, gs)
	if err != nil {
		return err
	}
	if need := Kind(a.Kind).required(); a.Status == store.ApprovalApproved && len(ids) < need {
		return shortfall(requestID, len(ids), need, why)
	}
	if err := at.UseApproval(ctx, tx, requestID, s.now()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("approval %s: %w", requestID, ErrApprovalUsed)
		}
		return err
	}
	return s.append(ctx, tx, audit.Entry{Tenant: tenant, ActorName: "system", Action: audit.ActApprovalUse, Object: requestID,
		Details: jsonDetails(fields{"status": store.ApprovalUsed})})
}

// authorizedApproval authorises p for op and reads request requestID in p's
// tenant. A request of another tenant reads as not found, audited by
// notInTenant.
func (s *Service) authorizedApproval(ctx context.Context, p Principal, op Operation, requestID string) (string, *store.AuthTenant, store.Approval, error) {
	pin, err := s.Authorize(ctx, p, op, "")
	if err != nil {
		return "", nil, store.Approval{}, err
	}
	at, err := s.st.AuthTenant(pin)
	if err != nil {
		return "", nil, store.Approval{}, err
	}
	a, err := at.Approval(ctx, s.st.Reader(), requestID)
	if err != nil {
		return "", nil, store.Approval{}, s.notInTenant(ctx, p, pin, op, requestID, err)
	}
	return pin, at, a, nil
}

// GetApproval returns a request of p's tenant with its grants.
func (s *Service) GetApproval(ctx context.Context, p Principal, requestID string) (Approval, error) {
	_, at, a, err := s.authorizedApproval(ctx, p, OpApprovalList, requestID)
	if err != nil {
		return Approval{}, err
	}
	gs, err := at.Grants(ctx, s.st.Reader(), requestID)
	if err != nil {
		return Approval{}, err
	}
	return approvalOf(a, gs), nil
}

// ListApprovals lists p's tenant's requests with status ("" for all).
func (s *Service) ListApprovals(ctx context.Context, p Principal, status string) ([]Approval, error) {
	pin, err := s.Authorize(ctx, p, OpApprovalList, "")
	if err != nil {
		return nil, err
	}
	at, err := s.st.AuthTenant(pin)
	if err != nil {
		return nil, err
	}
	as, err := at.ListApprovals(ctx, status)
	if err != nil {
		return nil, err
	}
	out := make([]Approval, 0, len(as))
	for _, a := range as {
		gs, err := at.Grants(ctx, s.st.Reader(), a.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, approvalOf(a, gs))
	}
	return out, nil
}
