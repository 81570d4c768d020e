package auth

import (
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// Regression tests for issue 13, "One admin can satisfy dual approval
// alone".

// takeOver does what an admin who created an account can do with the
// one-time password: sign in as the new user, enrol TOTP, set a password.
func (f *fixture) takeOver(info UserInfo, otp string) (testUser, Principal) {
	f.t.Helper()
	l, err := f.svc.Login(f.ctx, info.Name, otp, client, "")
	if err != nil || l.Stage != "enrol" {
		f.t.Fatalf("first login of %s: %+v %v", info.Name, l, err)
	}
	en, err := f.svc.BeginEnrolment(f.ctx, l.Token, client)
	if err != nil {
		f.t.Fatal(err)
	}
	u := testUser{password: info.Name + "-taken-over-pw", secret: en.Secret}
	full, _, err := f.svc.ConfirmEnrolment(f.ctx, l.Token, f.code(u), client)
	if err != nil {
		f.t.Fatal(err)
	}
	p, err := f.svc.Authenticate(f.ctx, Request{SessionToken: full.Token, Method: "GET", Client: client})
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.svc.ChangePassword(f.ctx, p, otp, u.password); err != nil {
		f.t.Fatal(err)
	}
	if u.User, err = f.st.UserByID(f.ctx, info.ID); err != nil {
		f.t.Fatal(err)
	}
	p, _ = f.login(u)
	return u, p
}

// create makes a user through the service as admin and takes it over.
func (f *fixture) create(admin testUser, ap Principal, name, role, approvalID string) (testUser, Principal) {
	f.t.Helper()
	info, otp, err := f.svc.CreateUser(f.ctx, ap, "", NewUser{Name: name, Role: role, ApprovalID: approvalID}, f.code(admin))
	if err != nil {
		f.t.Fatalf("create %s: %v", name, err)
	}
	return f.takeOver(info, otp)
}

// lastDenial returns the reason of the last access.denied entry after mark.
func (f *fixture) lastDenial(mark int64) string {
	f.t.Helper()
	es := f.entries(audit.ActAccessDenied, mark)
	if len(es) == 0 {
		f.t.Fatal("refusal not audited")
	}
	r, _ := details(f.t, es[len(es)-1])["reason"].(string)
	return r
}

// TestOneAdminApprovesAlone is the attack: a tenant admin creates two
// approver accounts, enrols TOTP for them, and approves their own
// evidence export with both. Neither approval counts.
func TestOneAdminApprovesAlone(t *testing.T) {
	f := newFixture(t)
	adm := f.user(f.a, "ada", store.RoleAdmin)
	ap, _ := f.login(adm)
	s1, s1P := f.create(adm, ap, "sock-one", store.RoleApprover, "")
	s2, s2P := f.create(adm, ap, "sock-two", store.RoleApprover, "")
	req := []byte(`{"bundle":"scan_1"}`)
	a, err := f.svc.RequestApproval(f.ctx, ap, KindEvidenceExport, req)
	if err != nil {
		t.Fatal(err)
	}
	for _, sock := range []struct {
		p Principal
		u testUser
	}{{s1P, s1}, {s2P, s2}} {
		mark := f.head()
		if _, err := f.svc.Approve(f.ctx, sock.p, a.ID, f.code(sock.u)); !errors.Is(err, ErrApproverNotCounted) {
			t.Fatalf("%s approves the admin's request: %v, want ErrApproverNotCounted", sock.u.Name, err)
		}
		if r := f.lastDenial(mark); !strings.Contains(r, "created by the requester") {
			t.Fatalf("refusal reason %q", r)
		}
		f.expectAudit(audit.ActApprovalGrant, mark, 0)
	}
	if err := f.svc.CheckApproved(f.ctx, a.ID, req); !errors.Is(err, ErrApprovalPending) {
		t.Fatalf("after both sock puppets: %v, want ErrApprovalPending", err)
	}
	got, err := f.svc.GetApproval(f.ctx, ap, a.ID)
	if err != nil || len(got.Approvers) != 0 {
		t.Fatalf("grants stored by refused approvals: %+v %v", got, err)
	}
}

// TestTwoAdminTenantRoleGrants: in a tenant with two admins, granting a
// privileged role needs the other admin's approval; without it nothing is
// created and the refusal is audited. With it the approver exists, but
// still does not count for the admin who created it.
func TestTwoAdminTenantRoleGrants(t *testing.T) {
	f := newFixture(t)
	bob := f.user(f.a, "bob", store.RoleAdmin)
	bev := f.user(f.a, "bev", store.RoleAdmin)
	bobP, _ := f.login(bob)
	bevP, _ := f.login(bev)

	mark := f.head()
	nu := NewUser{Name: "puppet", Role: store.RoleApprover}
	if _, _, err := f.svc.CreateUser(f.ctx, bobP, "", nu, f.code(bob)); !errors.Is(err, ErrApprovalRequired) {
		t.Fatalf("approver without a second admin: %v, want ErrApprovalRequired", err)
	}
	if r := f.lastDenial(mark); !strings.Contains(r, "approval of another admin") {
		t.Fatalf("reason %q", r)
	}
	if _, err := f.st.UserByLoginName(f.ctx, nu.Name); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused grant created the user: %v", err)
	}
	f.expectAudit(audit.ActUserCreate, mark, 0)
	f.expectAudit(audit.ActAnomalyAlert, mark, 0)

	// The same through the approval machinery.
	a, err := f.svc.RequestApproval(f.ctx, bobP, KindRoleGrant, CreateUserRequest(f.a, nu))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Approve(f.ctx, bobP, a.ID, f.code(bob)); !errors.Is(err, ErrSelfApproval) {
		t.Fatalf("bob approves his own grant: %v", err)
	}
	if _, _, err := f.svc.CreateUser(f.ctx, bobP, "", NewUser{Name: nu.Name, Role: nu.Role, ApprovalID: a.ID}, f.code(bob)); !errors.Is(err, ErrApprovalPending) {
		t.Fatalf("grant with a pending approval: %v", err)
	}
	if _, err := f.svc.StepUp(f.ctx, bevP, ApproveOperation(KindRoleGrant), "", ApproveRequest(a.ID, a.RequestSHA256), f.code(bev)); err != nil {
		t.Fatal(err)
	}
	if got, err := f.svc.Approve(f.ctx, bevP, a.ID, ""); err != nil || got.Status != store.ApprovalApproved {
		t.Fatalf("bev approves: %+v %v", got, err)
	}
	// The approval is for this exact user: another name is refused.
	if _, _, err := f.svc.CreateUser(f.ctx, bobP, "", NewUser{Name: "other-puppet", Role: nu.Role, ApprovalID: a.ID}, f.code(bob)); !errors.Is(err, ErrApprovalVoid) {
		t.Fatalf("approval used for another user: %v", err)
	}
	mark = f.head()
	puppet, puppetP := f.create(bob, bobP, nu.Name, nu.Role, a.ID)
	f.expectAudit(audit.ActApprovalUse, mark, 1)
	f.expectAudit(audit.ActAnomalyAlert, mark, 0)
	// Bob's own request: the approver he created does not count.
	exp, err := f.svc.RequestApproval(f.ctx, bobP, KindEvidenceExport, []byte(`{"bundle":"b"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Approve(f.ctx, puppetP, exp.ID, f.code(puppet)); !errors.Is(err, ErrApproverNotCounted) {
		t.Fatalf("bob's approver approves bob's export: %v", err)
	}
	// A role change to a privileged role follows the same rule.
	op := f.user(f.a, "olga", store.RoleOperator)
	if err := f.svc.SetRole(f.ctx, bobP, "", op.ID, store.RoleSecurityLead, f.code(bob)); !errors.Is(err, ErrApprovalRequired) {
		t.Fatalf("promotion without approval: %v", err)
	}
	if u, _ := f.st.UserByID(f.ctx, op.ID); u.Role != store.RoleOperator {
		t.Fatalf("refused promotion changed the role to %s", u.Role)
	}
	// Approvers and security leads may not approve role grants.
	lead := f.user(f.a, "lena", store.RoleSecurityLead)
	leadP, _ := f.login(lead)
	g, err := f.svc.RequestApproval(f.ctx, bobP, KindRoleGrant, SetRoleRequest(f.a, op.ID, store.RoleSecurityLead))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Approve(f.ctx, leadP, g.ID, f.code(lead)); !errors.Is(err, ErrForbidden) {
		t.Fatalf("security lead approves a role grant: %v", err)
	}
	if err := f.svc.Deny(f.ctx, leadP, g.ID, "no", f.code(lead)); !errors.Is(err, ErrForbidden) {
		t.Fatalf("security lead denies a role grant: %v", err)
	}
	if _, err := f.svc.Approve(f.ctx, bevP, g.ID, f.code(bev)); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.SetRoleApproved(f.ctx, bobP, "", op.ID, store.RoleSecurityLead, g.ID, f.code(bob)); err != nil {
		t.Fatalf("approved promotion: %v", err)
	}
	// Used once.
	mark = f.head()
	if err := f.svc.SetRoleApproved(f.ctx, bobP, "", op.ID, store.RoleSecurityLead, g.ID, f.code(bob)); !errors.Is(err, ErrApprovalUsed) {
		t.Fatalf("approval reused: %v", err)
	}
	f.expectAudit(audit.ActAccessDenied, mark, 1)
	f.expectAudit(audit.ActUserRoleChange, mark, 0)
}

// TestAdminCreatesRequesterToo: the admin creates the requester as well as
// the approvers. Refused in a tenant with two admins (the approvers cannot
// be made); in a tenant with one admin the grants go ahead, but each raises
// an anomaly alert and is flagged for the next access review.
func TestAdminCreatesRequesterToo(t *testing.T) {
	t.Run("two admins: refused", func(t *testing.T) {
		f := newFixture(t)
		adm := f.user(f.a, "amy", store.RoleAdmin)
		_ = f.user(f.a, "ali", store.RoleAdmin)
		ap, _ := f.login(adm)
		f.create(adm, ap, "req-op", store.RoleOperator, "") // not privileged: no approval needed
		for _, name := range []string{"ap-one", "ap-two"} {
			mark := f.head()
			if _, _, err := f.svc.CreateUser(f.ctx, ap, "", NewUser{Name: name, Role: store.RoleApprover}, f.code(adm)); !errors.Is(err, ErrApprovalRequired) {
				t.Fatalf("%s: %v, want ErrApprovalRequired", name, err)
			}
			f.expectAudit(audit.ActAccessDenied, mark, 1)
		}
		at, _ := f.st.AuthTenant(f.a)
		if fs, err := at.ReviewFlags(f.ctx, f.st.Reader(), true); err != nil || len(fs) != 0 {
			t.Fatalf("flags %+v %v", fs, err)
		}
	})
	t.Run("one admin: alerted and flagged", func(t *testing.T) {
		f := newFixture(t)
		adm := f.user(f.a, "amy", store.RoleAdmin)
		ap, _ := f.login(adm)
		mark := f.head()
		_, reqP := f.create(adm, ap, "req-op", store.RoleOperator, "")
		var approvers []Principal
		var users []testUser
		for _, name := range []string{"ap-one", "ap-two"} {
			u, p := f.create(adm, ap, name, store.RoleApprover, "")
			approvers, users = append(approvers, p), append(users, u)
		}
		alerts := f.expectAudit(audit.ActAnomalyAlert, mark, 2)
		for i, e := range alerts {
			d := details(t, e)
			if d["activity"] != "role.grant.unapproved" || d["role"] != store.RoleApprover || d["user_id"] != users[i].ID || e.ActorID != adm.ID || e.Tenant != f.a {
				t.Fatalf("alert %d: %+v %s", i, e, e.Details)
			}
		}
		at, _ := f.st.AuthTenant(f.a)
		fs, err := at.ReviewFlags(f.ctx, f.st.Reader(), true)
		if err != nil || len(fs) != 2 || fs[0].UserID != users[0].ID || fs[0].GrantedBy != adm.ID || fs[1].Role != store.RoleApprover {
			t.Fatalf("review flags %+v %v", fs, err)
		}
		// The approvals themselves go through (the alert is the control
		// where no second admin exists).
		req := []byte(`{"scope":"prod","targets":["10.0.0.0/24"]}`)
		a, err := f.svc.RequestApproval(f.ctx, reqP, KindProductionScan, req)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range approvers {
			if _, err := f.svc.Approve(f.ctx, p, a.ID, f.code(users[i])); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.svc.CheckApproved(f.ctx, a.ID, req); err != nil {
			t.Fatal(err)
		}
	})
}

// TestApproverNotIndependent: approvers made or changed after the request,
// or changed by the requester, do not count; approvers disabled or demoted
// before the action runs stop counting, and the refusal is audited.
func TestApproverNotIndependent(t *testing.T) {
	tests := []struct {
		name string
		// before runs after the request, before the approvals.
		before func(f *approvalFixture, adm testUser, admP Principal) (Principal, testUser)
		// after runs after two approvals, before use.
		after  func(f *approvalFixture, adm testUser, admP Principal)
		reason string
	}{
		{name: "approver created after the request", before: func(f *approvalFixture, adm testUser, admP Principal) (Principal, testUser) {
			f.clock.advance(time.Second)
			u := f.user(f.a, "late-approver", store.RoleApprover)
			p, _ := f.login(u)
			return p, u
		}, reason: "created after the request"},
		{name: "approver role given after the request", before: func(f *approvalFixture, adm testUser, admP Principal) (Principal, testUser) {
			u := f.user(f.a, "promoted", store.RoleOperator)
			f.clock.advance(time.Second)
			if err := f.svc.SetRole(f.ctx, admP, "", u.ID, store.RoleApprover, f.code(adm)); err != nil {
				f.t.Fatal(err)
			}
			p, _ := f.login(u)
			return p, u
		}, reason: "after the request was made"},
		{name: "approver disabled before use", after: func(f *approvalFixture, adm testUser, admP Principal) {
			if err := f.svc.DisableUser(f.ctx, admP, "", f.ap1.ID, f.code(adm)); err != nil {
				f.t.Fatal(err)
			}
		}, reason: "is disabled"},
		{name: "approver demoted before use", after: func(f *approvalFixture, adm testUser, admP Principal) {
			if err := f.svc.SetRole(f.ctx, admP, "", f.ap2.ID, store.RoleOperator, f.code(adm)); err != nil {
				f.t.Fatal(err)
			}
		}, reason: "may not approve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newApprovalFixture(t)
			adm := f.user(f.a, "admiral", store.RoleAdmin)
			admP, _ := f.login(adm)
			a, err := f.svc.RequestApproval(f.ctx, f.reqP, KindProductionScan, f.request)
			if err != nil {
				t.Fatal(err)
			}
			if tt.before != nil {
				p, u := tt.before(f, adm, admP)
				mark := f.head()
				if _, err := f.svc.Approve(f.ctx, p, a.ID, f.code(u)); !errors.Is(err, ErrApproverNotCounted) {
					t.Fatalf("approve: %v, want ErrApproverNotCounted", err)
				}
				if r := f.lastDenial(mark); !strings.Contains(r, tt.reason) {
					t.Fatalf("reason %q, want %q", r, tt.reason)
				}
				return
			}
			for _, x := range []struct {
				p Principal
				u testUser
			}{{f.ap1P, f.ap1}, {f.ap2P, f.ap2}} {
				if _, err := f.svc.Approve(f.ctx, x.p, a.ID, f.code(x.u)); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.svc.CheckApproved(f.ctx, a.ID, f.request); err != nil {
				t.Fatal(err)
			}
			tt.after(f, adm, admP)
			mark := f.head()
			if err := f.svc.CheckApproved(f.ctx, a.ID, f.request); !errors.Is(err, ErrApproverNotCounted) {
				t.Fatalf("check before use: %v, want ErrApproverNotCounted", err)
			}
			es := f.expectAudit(audit.ActAccessDenied, mark, 1)
			if d := details(t, es[0]); d["operation"] != "approval.use" || !strings.Contains(d["reason"].(string), tt.reason) {
				t.Fatalf("refusal %s", es[0].Details)
			}
			// Spending it inside an action's transaction is refused too.
			err = f.st.InTx(f.ctx, func(tx *sql.Tx) error { return f.svc.SpendApproval(f.ctx, tx, f.a, a.ID) })
			if !errors.Is(err, ErrApproverNotCounted) {
				t.Fatalf("spend: %v", err)
			}
		})
	}
}

// TestRoleGrantRequestShape: only a canonical CreateUserRequest or
// SetRoleRequest for a privileged role can be put up for approval.
func TestRoleGrantRequestShape(t *testing.T) {
	f := newFixture(t)
	adm := f.user(f.a, "ida", store.RoleAdmin)
	ap, _ := f.login(adm)
	tests := []struct {
		name string
		req  []byte
		want error
	}{
		{"create approver", CreateUserRequest(f.a, NewUser{Name: "x", Role: store.RoleApprover}), nil},
		{"promote to admin", SetRoleRequest(f.a, "u_1", store.RoleAdmin), nil},
		{"not privileged", CreateUserRequest(f.a, NewUser{Name: "x", Role: store.RoleOperator}), ErrInvalid},
		{"other operation", OpRequest(OpUserDisable, f.a, map[string]string{"id": "u_1"}), ErrInvalid},
		{"not canonical", []byte(`{"op":"user.create", "tenant":"` + f.a + `","arg.name":"x","arg.role":"admin"}`), ErrInvalid},
		{"extra argument", OpRequest(OpUserCreate, f.a, map[string]string{"name": "x", "role": "admin", "more": "y"}), ErrInvalid},
		{"no tenant", CreateUserRequest("", NewUser{Name: "x", Role: store.RoleAdmin}), ErrInvalid},
		{"other tenant", CreateUserRequest(f.b, NewUser{Name: "x", Role: store.RoleAdmin}), ErrForbidden},
		{"not JSON", []byte("admin please"), ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.svc.RequestApproval(f.ctx, ap, KindRoleGrant, tt.req)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}
