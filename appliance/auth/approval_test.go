package auth

import (
	"database/sql"
	"errors"
	"testing"
	"time"

	"firewalliq/audit"
)

// approvalFixture has, in tenant A, a requester (operator), two approvers
// and a security lead, all signed in.
type approvalFixture struct {
	*fixture
	req, ap1, ap2, lead     testUser
	reqP, ap1P, ap2P, leadP Principal
	request                 []byte
}

func newApprovalFixture(t *testing.T) *approvalFixture {
	f := &approvalFixture{fixture: newFixture(t)}
	f.req = f.user(f.a, "rita", "operator")
	f.ap1 = f.user(f.a, "abe", "approver")
	f.ap2 = f.user(f.a, "bea", "approver")
	f.lead = f.user(f.a, "lou", "security_lead")
	f.reqP, _ = f.login(f.req)
	f.ap1P, _ = f.login(f.ap1)
	f.ap2P, _ = f.login(f.ap2)
	f.leadP, _ = f.login(f.lead)
	f.request = []byte(`{"profile":"default","scope":"sc_prod","targets":["10.0.0.0/24"]}`)
	return f
}

func TestDualApprovalHappyPath(t *testing.T) {
	f := newApprovalFixture(t)
	mark := f.head()
	a, err := f.svc.RequestApproval(f.ctx, f.reqP, KindProductionScan, f.request)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.CheckApproved(f.ctx, a.ID, f.request); !errors.Is(err, ErrApprovalPending) {
		t.Fatalf("no approvals: %v", err)
	}
	if _, err := f.svc.Approve(f.ctx, f.ap1P, a.ID, f.code(f.ap1)); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.CheckApproved(f.ctx, a.ID, f.request); !errors.Is(err, ErrApprovalPending) {
		t.Fatalf("one approval: %v", err)
	}
	// The two-phase flow: step-up first, bound to the approval, then Approve
	// without a code spends it.
	if _, err := f.svc.StepUp(f.ctx, f.leadP, OpApprovalGrant, "", ApproveRequest(a.ID, a.RequestSHA256), f.code(f.lead)); err != nil {
		t.Fatal(err)
	}
	got, err := f.svc.Approve(f.ctx, f.leadP, a.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != "approved" || len(got.Approvers) != 2 {
		t.Fatalf("after two approvals: %+v", got)
	}
	if err := f.svc.CheckApproved(f.ctx, a.ID, f.request); err != nil {
		t.Fatalf("approved request: %v", err)
	}
	f.expectAudit(audit.ActApprovalRequest, mark, 1)
	f.expectAudit(audit.ActApprovalGrant, mark, 2)
	f.expectAudit(audit.ActApprovalComplete, mark, 1)
	f.expectAudit(audit.ActAuthStepUp, mark, 2)
	// A third approver adds a grant but does not re-complete.
	if _, err := f.svc.Approve(f.ctx, f.ap2P, a.ID, f.code(f.ap2)); err != nil {
		t.Fatal(err)
	}
	f.expectAudit(audit.ActApprovalComplete, mark, 1)
}

func TestApprovalRefusals(t *testing.T) {
	tests := []struct {
		name string
		run  func(f *approvalFixture, id string) error
		want error
		// audit is the action the refusal must be recorded under.
		audit audit.Action
	}{
		{"requester approves own request", func(f *approvalFixture, id string) error {
			// The requester is given the approver role meanwhile: still refused.
			lead := f.leadP
			a, err := f.svc.RequestApproval(f.ctx, lead, KindProductionScan, f.request)
			if err != nil {
				return err
			}
			_, err = f.svc.Approve(f.ctx, lead, a.ID, f.code(f.lead))
			return err
		}, ErrSelfApproval, audit.ActAccessDenied},
		{"one approver approves twice", func(f *approvalFixture, id string) error {
			if _, err := f.svc.Approve(f.ctx, f.ap1P, id, f.code(f.ap1)); err != nil {
				return err
			}
			_, err := f.svc.Approve(f.ctx, f.ap1P, id, f.code(f.ap1))
			if err == nil {
				if err := f.svc.CheckApproved(f.ctx, id, f.request); err == nil {
					return errors.New("one approver made a request approved")
				}
			}
			return err
		}, ErrAlreadyApproved, audit.ActAccessDenied},
		{"request changed after approval", func(f *approvalFixture, id string) error {
			if _, err := f.svc.Approve(f.ctx, f.ap1P, id, f.code(f.ap1)); err != nil {
				return err
			}
			changed := append([]byte{}, f.request...)
			changed[len(changed)-3] = '5' // 10.0.0.0/24 -> 10.0.0.0/25
			if err := f.svc.CheckApproved(f.ctx, id, changed); !errors.Is(err, ErrApprovalVoid) {
				return errors.New("changed request not void: " + err.Error())
			}
			// The second approval now fails, and the original bytes no
			// longer pass either: the approvals are dead.
			if _, err := f.svc.Approve(f.ctx, f.ap2P, id, f.code(f.ap2)); !errors.Is(err, ErrApprovalVoid) {
				return errors.New("approve after change: " + err.Error())
			}
			return f.svc.CheckApproved(f.ctx, id, f.request)
		}, ErrApprovalVoid, audit.ActApprovalVoid},
		{"change after full approval", func(f *approvalFixture, id string) error {
			_, _ = f.svc.Approve(f.ctx, f.ap1P, id, f.code(f.ap1))
			_, _ = f.svc.Approve(f.ctx, f.ap2P, id, f.code(f.ap2))
			if err := f.svc.CheckApproved(f.ctx, id, f.request); err != nil {
				return err
			}
			_ = f.svc.CheckApproved(f.ctx, id, append([]byte(" "), f.request...))
			return f.svc.CheckApproved(f.ctx, id, f.request)
		}, ErrApprovalVoid, audit.ActApprovalVoid},
		{"approval expired before use", func(f *approvalFixture, id string) error {
			_, _ = f.svc.Approve(f.ctx, f.ap1P, id, f.code(f.ap1))
			_, _ = f.svc.Approve(f.ctx, f.ap2P, id, f.code(f.ap2))
			f.clock.advance(24 * time.Hour)
			return f.svc.CheckApproved(f.ctx, id, f.request)
		}, ErrApprovalExpired, ""},
		{"approving an expired request", func(f *approvalFixture, id string) error {
			f.clock.advance(24 * time.Hour)
			_, err := f.svc.Approve(f.ctx, f.ap1P, id, f.code(f.ap1))
			return err
		}, ErrApprovalExpired, audit.ActAccessDenied},
		{"approval without step-up", func(f *approvalFixture, id string) error {
			_, err := f.svc.Approve(f.ctx, f.ap1P, id, "")
			return err
		}, ErrStepUpRequired, audit.ActAuthStepUpFailed},
		{"approval with a wrong code", func(f *approvalFixture, id string) error {
			_, err := f.svc.Approve(f.ctx, f.ap1P, id, "000000")
			return err
		}, ErrInvalidCode, audit.ActAuthStepUpFailed},
		{"step-up for another request does not count", func(f *approvalFixture, id string) error {
			other, err := f.svc.RequestApproval(f.ctx, f.reqP, KindProductionScan, []byte(`{"other":true}`))
			if err != nil {
				return err
			}
			if _, err := f.svc.StepUp(f.ctx, f.ap1P, OpApprovalGrant, "", ApproveRequest(other.ID, other.RequestSHA256), f.code(f.ap1)); err != nil {
				return err
			}
			_, err = f.svc.Approve(f.ctx, f.ap1P, id, "")
			return err
		}, ErrStepUpRequired, audit.ActAuthStepUpFailed},
		{"denial without step-up", func(f *approvalFixture, id string) error {
			err := f.svc.Deny(f.ctx, f.ap1P, id, "no", "")
			var su *StepUpChallenge
			if !errors.As(err, &su) || su.Op != OpApprovalDeny {
				return errors.Join(errors.New("no deny challenge"), err)
			}
			if err2 := f.stillPending(id); err2 != nil {
				return err2
			}
			return err
		}, ErrStepUpRequired, audit.ActAuthStepUpFailed},
		{"denial with a wrong code", func(f *approvalFixture, id string) error {
			err := f.svc.Deny(f.ctx, f.ap1P, id, "no", "000000")
			if err2 := f.stillPending(id); err2 != nil {
				return err2
			}
			return err
		}, ErrInvalidCode, audit.ActAuthStepUpFailed},
		{"an approval's step-up does not deny", func(f *approvalFixture, id string) error {
			a, err := f.svc.GetApproval(f.ctx, f.ap1P, id)
			if err != nil {
				return err
			}
			if _, err := f.svc.StepUp(f.ctx, f.ap1P, OpApprovalGrant, "", ApproveRequest(id, a.RequestSHA256), f.code(f.ap1)); err != nil {
				return err
			}
			return f.svc.Deny(f.ctx, f.ap1P, id, "no", "")
		}, ErrStepUpRequired, audit.ActAuthStepUpFailed},
		{"requester denies own request", func(f *approvalFixture, id string) error {
			a, err := f.svc.RequestApproval(f.ctx, f.leadP, KindProductionScan, f.request)
			if err != nil {
				return err
			}
			return f.svc.Deny(f.ctx, f.leadP, a.ID, "no", f.code(f.lead))
		}, ErrSelfApproval, audit.ActAccessDenied},
		{"operator may not approve", func(f *approvalFixture, id string) error {
			op := f.user(f.a, "otis", "operator")
			p, _ := f.login(op)
			_, err := f.svc.Approve(f.ctx, p, id, f.code(op))
			return err
		}, ErrForbidden, audit.ActAccessDenied},
		{"denied request", func(f *approvalFixture, id string) error {
			if err := f.svc.Deny(f.ctx, f.ap1P, id, "wrong window", f.code(f.ap1)); err != nil {
				return err
			}
			_, err := f.svc.Approve(f.ctx, f.ap2P, id, f.code(f.ap2))
			return err
		}, ErrApprovalDenied, audit.ActAccessDenied},
		{"voided by requester", func(f *approvalFixture, id string) error {
			_, _ = f.svc.Approve(f.ctx, f.ap1P, id, f.code(f.ap1))
			_, _ = f.svc.Approve(f.ctx, f.ap2P, id, f.code(f.ap2))
			if err := f.svc.VoidApproval(f.ctx, f.reqP, id, "editing targets"); err != nil {
				return err
			}
			return f.svc.CheckApproved(f.ctx, id, f.request)
		}, ErrApprovalVoid, audit.ActApprovalVoid},
	}
	// One fixture for all cases (each makes its own request): opening a
	// database and keyring per case costs more than the cases themselves.
	f := newApprovalFixture(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := f.svc.RequestApproval(f.ctx, f.reqP, KindProductionScan, f.request)
			if err != nil {
				t.Fatal(err)
			}
			mark := f.head()
			if err := tt.run(f, a.ID); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.audit != "" && len(f.entries(tt.audit, mark)) == 0 {
				t.Fatalf("no %s audit entry", tt.audit)
			}
		})
	}
}

// stillPending fails unless request id is still pending.
func (f *approvalFixture) stillPending(id string) error {
	a, err := f.svc.GetApproval(f.ctx, f.ap2P, id)
	if err != nil {
		return err
	}
	if a.Status != "pending" {
		return errors.New("request is " + a.Status + ", want pending")
	}
	return nil
}

// TestDenyStepUp: a denial needs the denier's step-up bound to the request
// (auth.DenyRequest), as an approval does; the two-phase flow (StepUp, then
// Deny without a code) spends the grant and closes the request.
func TestDenyStepUp(t *testing.T) {
	f := newApprovalFixture(t)
	a, err := f.svc.RequestApproval(f.ctx, f.reqP, KindProductionScan, f.request)
	if err != nil {
		t.Fatal(err)
	}
	mark := f.head()
	err = f.svc.Deny(f.ctx, f.ap1P, a.ID, "not now", "")
	var su *StepUpChallenge
	if !errors.As(err, &su) || string(su.Request) != string(DenyRequest(a.ID, a.RequestSHA256)) {
		t.Fatalf("Deny without step-up: %v", err)
	}
	if _, err := f.svc.StepUpFor(f.ctx, f.ap1P, su.Op, su.Request, f.code(f.ap1)); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Deny(f.ctx, f.ap1P, a.ID, "not now", ""); err != nil {
		t.Fatal(err)
	}
	got, err := f.svc.GetApproval(f.ctx, f.ap2P, a.ID)
	if err != nil || got.Status != "denied" {
		t.Fatalf("after deny: %+v %v", got, err)
	}
	f.expectAudit(audit.ActApprovalDeny, mark, 1)
	// The grant was spent: a second denial of another request needs its own.
	b, err := f.svc.RequestApproval(f.ctx, f.reqP, KindProductionScan, f.request)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Deny(f.ctx, f.ap1P, b.ID, "x", ""); !errors.Is(err, ErrStepUpRequired) {
		t.Fatalf("second deny without its own step-up: %v", err)
	}
}

// TestApprovalKinds: evidence export uses the same mechanism, and the
// requester must be allowed the operation the kind stands for.
func TestApprovalKinds(t *testing.T) {
	f := newApprovalFixture(t)
	aud := f.user(f.a, "audrey", "auditor")
	audP, _ := f.login(aud)
	if _, err := f.svc.RequestApproval(f.ctx, audP, KindEvidenceExport, []byte(`{"bundle":"scan_1"}`)); err != nil {
		t.Fatalf("auditor export request: %v", err)
	}
	if _, err := f.svc.RequestApproval(f.ctx, audP, KindProductionScan, f.request); !errors.Is(err, ErrForbidden) {
		t.Fatalf("auditor scan request: %v", err)
	}
	if _, err := f.svc.RequestApproval(f.ctx, f.reqP, KindEvidenceExport, []byte(`{}`)); !errors.Is(err, ErrForbidden) {
		t.Fatalf("operator export request: %v", err)
	}
	if _, err := f.svc.RequestApproval(f.ctx, f.reqP, "launch.missiles", f.request); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown kind: %v", err)
	}
	as, err := f.svc.ListApprovals(f.ctx, f.ap1P, "pending")
	if err != nil || len(as) != 1 {
		t.Fatalf("pending approvals %d, %v", len(as), err)
	}
}

// TestStepUpOnce: a step-up is bound to one operation and request, used
// once, and valid five minutes.
func TestStepUpOnce(t *testing.T) {
	f := newFixture(t)
	adm := f.user(f.a, "abby", "admin")
	p, _ := f.login(adm)
	args := map[string]string{"name": "newbie", "role": "operator"}
	req := OpRequest(OpUserCreate, f.a, args)
	if _, err := f.svc.StepUp(f.ctx, p, OpUserCreate, "", req, f.code(adm)); err != nil {
		t.Fatal(err)
	}
	// Bound to the request: a different user name needs its own step-up.
	if _, _, err := f.svc.CreateUser(f.ctx, p, "", NewUser{Name: "other", Role: "operator"}, ""); !errors.Is(err, ErrStepUpRequired) {
		t.Fatalf("step-up for another request: %v", err)
	}
	if _, _, err := f.svc.CreateUser(f.ctx, p, "", NewUser{Name: "newbie", Role: "operator"}, ""); err != nil {
		t.Fatalf("with step-up: %v", err)
	}
	// Used once.
	if _, _, err := f.svc.CreateUser(f.ctx, p, "", NewUser{Name: "newbie", Role: "operator"}, ""); !errors.Is(err, ErrStepUpRequired) {
		t.Fatalf("step-up reused: %v", err)
	}
	// Five minutes.
	req = OpRequest(OpUserCreate, f.a, map[string]string{"name": "late", "role": "operator"})
	if _, err := f.svc.StepUp(f.ctx, p, OpUserCreate, "", req, f.code(adm)); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(5 * time.Minute)
	if _, err := f.svc.Authenticate(f.ctx, Request{SessionToken: "", Method: "GET"}); err == nil {
		t.Fatal("empty session authenticated")
	}
	if _, _, err := f.svc.CreateUser(f.ctx, p, "", NewUser{Name: "late", Role: "operator"}, ""); !errors.Is(err, ErrStepUpRequired) {
		t.Fatalf("expired step-up: %v", err)
	}
	// The same TOTP code cannot serve two step-ups.
	c := f.code(adm)
	if _, err := f.svc.StepUp(f.ctx, p, OpUserCreate, "", req, c); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.StepUp(f.ctx, p, OpUserCreate, "", req, c); !errors.Is(err, ErrReplay) {
		t.Fatalf("code reused for a second step-up: %v", err)
	}
	// Operations without step-up refuse one.
	if _, err := f.svc.StepUp(f.ctx, p, OpUserList, "", nil, f.code(adm)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("step-up for user.list: %v", err)
	}
}

// TestUseStepUpForOtherServices: how scan and vault code step up inside
// their own transaction, and how a refusal is audited.
func TestUseStepUpForOtherServices(t *testing.T) {
	f := newFixture(t)
	lead := f.user(f.a, "sue", "security_lead")
	p, _ := f.login(lead)
	if _, err := f.svc.Authorize(f.ctx, p, OpScopeSign, ""); err != nil {
		t.Fatal(err)
	}
	req := []byte(`{"scope":"dmz"}`)
	code := f.code(lead)
	sign := func(code string) error {
		return f.st.InTx(f.ctx, func(tx *sql.Tx) error { return f.svc.UseStepUp(f.ctx, tx, p, OpScopeSign, req, code) })
	}
	if err := sign(code); err != nil {
		t.Fatal(err)
	}
	mark := f.head()
	err := sign(code)
	if !errors.Is(err, ErrReplay) {
		t.Fatalf("same code twice: %v", err)
	}
	if err := f.svc.StepUpRefused(f.ctx, p, f.a, OpScopeSign, err); !errors.Is(err, ErrReplay) {
		t.Fatal(err)
	}
	f.expectAudit(audit.ActAuthStepUpFailed, mark, 1)
	if err := sign(""); !errors.Is(err, ErrStepUpRequired) {
		t.Fatalf("no code, no grant: %v", err)
	}
	err = f.st.InTx(f.ctx, func(tx *sql.Tx) error { return f.svc.UseStepUp(f.ctx, tx, p, OpScanRead, req, f.code(lead)) })
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("step-up for an operation without one: %v", err)
	}
}

// TestStepUpLockout: wrong step-up codes lock further step-ups (and
// logins) like wrong login codes.
func TestStepUpLockout(t *testing.T) {
	f := newFixture(t)
	adm := f.user(f.a, "alma", "admin")
	p, _ := f.login(adm)
	req := OpRequest(OpUserCreate, f.a, map[string]string{"name": "x", "role": "operator"})
	var err error
	for i := 0; i < 5; i++ {
		_, err = f.svc.StepUp(f.ctx, p, OpUserCreate, "", req, "000000")
	}
	if !errors.Is(err, ErrLockedOut) {
		t.Fatalf("fifth wrong step-up code: %v", err)
	}
	if _, err := f.svc.StepUp(f.ctx, p, OpUserCreate, "", req, f.code(adm)); !errors.Is(err, ErrLockedOut) {
		t.Fatalf("right code while locked: %v", err)
	}
	f.clock.advance(time.Minute)
	if _, err := f.svc.StepUp(f.ctx, p, OpUserCreate, "", req, f.code(adm)); err != nil {
		t.Fatalf("after the lockout: %v", err)
	}
}

// TestApprovalUseOnceByRequester: only the requester can act on an approval,
// somebody else presenting its id neither uses nor voids it (and is
// audited), and an approval authorises exactly one action.
func TestApprovalUseOnceByRequester(t *testing.T) {
	f := newApprovalFixture(t)
	a, err := f.svc.RequestApproval(f.ctx, f.reqP, KindProductionScan, f.request)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		pr Principal
		u  testUser
	}{{f.ap1P, f.ap1}, {f.ap2P, f.ap2}} {
		if _, err := f.svc.Approve(f.ctx, p.pr, a.ID, f.code(p.u)); err != nil {
			t.Fatal(err)
		}
	}
	mark := f.head()
	// The security lead presents the request id with their own bytes.
	other := append([]byte(nil), f.request...)
	other = append(other, ' ')
	if _, err := f.svc.VerifiedApprovalFor(f.ctx, f.a, f.lead.ID, a.ID, other); !errors.Is(err, ErrForbidden) {
		t.Fatalf("another requester: %v, want ErrForbidden", err)
	}
	f.expectAudit(audit.ActAccessDenied, mark, 1)
	f.expectAudit(audit.ActApprovalVoid, mark, 0)
	if _, err := f.svc.VerifiedApprovalFor(f.ctx, f.a, f.req.ID, a.ID, f.request); err != nil {
		t.Fatalf("the requester's approval was harmed: %v", err)
	}
	use := func() error {
		return f.st.InTx(f.ctx, func(tx *sql.Tx) error { return f.svc.SpendApproval(f.ctx, tx, f.a, a.ID) })
	}
	if err := use(); err != nil {
		t.Fatal(err)
	}
	f.expectAudit(audit.ActApprovalUse, mark, 1)
	if err := use(); !errors.Is(err, ErrApprovalUsed) {
		t.Fatalf("second use: %v, want ErrApprovalUsed", err)
	}
	if _, err := f.svc.VerifiedApprovalFor(f.ctx, f.a, f.req.ID, a.ID, f.request); !errors.Is(err, ErrApprovalUsed) {
		t.Fatalf("check after use: %v, want ErrApprovalUsed", err)
	}
}
