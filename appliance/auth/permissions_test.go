package auth

import (
	"crypto/sha256"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"firewalliq/appliance/store"
	"firewalliq/audit"
)

var update = flag.Bool("update", false, "rewrite docs/permissions.md from the matrix")

const permissionsDoc = "../../docs/permissions.md"

// TestPermissionsDoc keeps docs/permissions.md equal to the matrix.
func TestPermissionsDoc(t *testing.T) {
	want := PermissionsMarkdown()
	if *update {
		if err := os.WriteFile(permissionsDoc, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(permissionsDoc)
	if err != nil {
		t.Fatalf("%v (run go test ./appliance/auth -run TestPermissionsDoc -update)", err)
	}
	if string(got) != want {
		t.Fatal("docs/permissions.md differs from the matrix; run go test ./appliance/auth -run TestPermissionsDoc -update")
	}
}

// TestMatrixShape checks properties of the matrix itself.
func TestMatrixShape(t *testing.T) {
	seen := map[Operation]bool{}
	for _, p := range Permissions() {
		if seen[p.Op] {
			t.Errorf("%s listed twice", p.Op)
		}
		seen[p.Op] = true
		for _, r := range p.Roles {
			if !slices.Contains(store.Roles(), r) {
				t.Errorf("%s: unknown role %s", p.Op, r)
			}
		}
		// Support users only ever read (or manage their own account).
		if slices.Contains(p.Roles, store.RoleSupport) && !selfService(p.Op) {
			switch p.Op {
			case OpScopeRead, OpPolicyRead, OpScanRead, OpReportRead:
			default:
				t.Errorf("support may %s, which is not a read", p.Op)
			}
		}
		// The promises in the design: approvals and signing are
		// step-up operations, approvals are never the operator's.
		if p.Op == OpApprovalGrant && (slices.Contains(p.Roles, store.RoleOperator) || !p.StepUp) {
			t.Error("approval.grant must be step-up and not operator")
		}
	}
	for _, op := range []Operation{OpScopeSign, OpApprovalGrant, OpEvidenceExport, OpUserCreate, OpUserRoleChange, OpUserDisable, OpSettingsChange, OpTokenCreate, OpAuditAlarmAck} {
		if !NeedsStepUp(op) {
			t.Errorf("%s must need step-up (issue 6)", op)
		}
	}
	if !weaker(store.RoleOperator, store.RoleSecurityLead) || weaker(store.RoleAdmin, store.RoleOperator) || !weaker(store.RoleAuditor, store.RoleAuditor) {
		t.Error("weaker() disagrees with the matrix")
	}
}

// methodOps maps every exported Service method taking a Principal to the
// operation it enforces. Methods without one say why.
var methodOps = map[string]Operation{
	"CreateTenant": OpTenantCreate, "ListTenants": OpTenantList,
	"ListUsers": OpUserList, "CreateUser": OpUserCreate, "SetRole": OpUserRoleChange, "SetRoleApproved": OpUserRoleChange, "DisableUser": OpUserDisable, "ResetTOTP": OpUserTOTPReset, "RegenerateRecoveryCodes": OpRecoveryCodes,
	"ChangePassword": OpPasswordChange, "Sessions": OpSessionList, "LogoutEverywhere": OpLogoutAll,
	"CreateToken": OpTokenCreate, "ListTokens": OpTokenList, "RevokeToken": OpTokenRevoke,
	"OpenSupport": OpSupportOpen, "CloseSupport": OpSupportClose, "ListSupport": OpSupportList,
	"ListApprovals": OpApprovalList, "GetApproval": OpApprovalList, "Approve": OpApprovalGrant, "Deny": OpApprovalDeny, "VoidApproval": OpApprovalVoid,
	"BeginKeyRegistration": OpKeyRegister, "FinishKeyRegistration": OpKeyRegister, "ListKeys": OpKeyList, "RemoveKey": OpKeyRemove,
	"KeyPolicy": OpKeyPolicy, "SetKeyPolicy": OpKeyPolicy,
	// Ending one's own current session is always allowed.
	"Logout": "",
	// These take the operation (or kind) as an argument and are walked
	// through Authorize for every operation below.
	"Authorize": "", "StepUp": "", "StepUpFor": "", "BeginKeyStepUp": "", "FinishKeyStepUp": "", "ConsumeStepUp": "", "UseStepUp": "", "StepUpRefused": "", "RequestApproval": "", "RecordActivity": "", "Scoped": "", "RefuseNotFound": "",
}

// actor is a signed-in principal with its user.
type actor struct {
	name string
	u    testUser
	p    Principal
}

// walkFixture has one signed-in principal per role in tenant A, an
// appliance admin, and a support user with and without a ticket.
type walkFixture struct {
	*fixture
	admin   testUser
	actors  []actor
	n       int
	vendorB string
}

func (w *walkFixture) uniq(prefix string) string { w.n++; return fmt.Sprintf("%s%d", prefix, w.n) }

// TestMatrixWalk calls every auth operation as every role and checks the
// outcome against the matrix: allowed means the call is not refused as
// forbidden; not allowed means ErrForbidden and an access.denied entry.
// Operations owned by other services are walked through Authorize, which
// is what those services call.
func TestMatrixWalk(t *testing.T) {
	f := newFixture(t)
	w := &walkFixture{fixture: f, vendorB: f.b}
	w.admin = f.user(f.a, "walk-ticket-admin", store.RoleAdmin)
	adminP, _ := f.login(w.admin)
	for _, role := range store.Roles() {
		u := f.user(f.a, "walk-"+role, role)
		if role == store.RoleSupport {
			continue
		}
		p, _ := f.login(u)
		w.actors = append(w.actors, actor{name: role, u: u, p: p})
	}
	// Support: one user of the vendor tenant with a ticket for A, one
	// without any ticket.
	sup := f.user(f.b, "walk-support-ticket", store.RoleSupport)
	if _, err := f.svc.OpenSupport(f.ctx, adminP, sup.ID, 8*time.Hour, "walk", f.code(w.admin)); err != nil {
		t.Fatal(err)
	}
	supP, _ := f.login(sup)
	if supP.TenantID != f.a || supP.SupportTicketID == "" {
		t.Fatalf("support principal not pinned: %+v", supP)
	}
	w.actors = append(w.actors, actor{name: "support (ticket)", u: sup, p: supP})
	nosup, _ := f.st.UserByLoginName(f.ctx, "walk-support")
	nosupU := testUser{User: nosup, password: "walk-support-correct-horse", secret: mustSecret(t, f, "walk-support")}
	nosupP, _ := f.login(nosupU)
	w.actors = append(w.actors, actor{name: "support (no ticket)", u: nosupU, p: nosupP})
	appAdmin := f.user("", "walk-appliance", store.RoleAdmin)
	appP, _ := f.login(appAdmin)

	operator := w.actors[slices.IndexFunc(w.actors, func(a actor) bool { return a.name == store.RoleOperator })]

	cases := map[Operation]func(a actor) error{
		OpTenantCreate: func(a actor) error {
			_, err := f.svc.CreateTenant(f.ctx, a.p, w.uniq("tenant"), f.code(a.u))
			return err
		},
		OpTenantList: func(a actor) error { _, err := f.svc.ListTenants(f.ctx, a.p); return err },
		OpUserList:   func(a actor) error { _, err := f.svc.ListUsers(f.ctx, a.p, ""); return err },
		OpUserCreate: func(a actor) error {
			_, _, err := f.svc.CreateUser(f.ctx, a.p, "", NewUser{Name: w.uniq("new"), Role: store.RoleOperator}, f.code(a.u))
			return err
		},
		OpUserRoleChange: func(a actor) error {
			v := f.user(f.a, w.uniq("victim"), store.RoleOperator)
			return f.svc.SetRole(f.ctx, a.p, "", v.ID, store.RoleAuditor, f.code(a.u))
		},
		OpUserDisable: func(a actor) error {
			v := f.user(f.a, w.uniq("victim"), store.RoleOperator)
			return f.svc.DisableUser(f.ctx, a.p, "", v.ID, f.code(a.u))
		},
		OpUserTOTPReset: func(a actor) error {
			v := f.user(f.a, w.uniq("victim"), store.RoleOperator)
			return f.svc.ResetTOTP(f.ctx, a.p, "", v.ID, f.code(a.u))
		},
		OpRecoveryCodes: func(a actor) error { _, err := f.svc.RegenerateRecoveryCodes(f.ctx, a.p, f.code(a.u)); return err },
		OpPasswordChange: func(a actor) error {
			_, err := f.svc.ChangePassword(f.ctx, a.p, a.u.password, a.u.password)
			if errors.Is(err, ErrInvalid) {
				return nil // allowed, refused only for reusing the password
			}
			return err
		},
		OpSessionList: func(a actor) error { _, err := f.svc.Sessions(f.ctx, a.p); return err },
		OpLogoutAll:   func(a actor) error { return f.svc.LogoutEverywhere(f.ctx, a.p) },
		OpTokenCreate: func(a actor) error {
			_, _, err := f.svc.CreateToken(f.ctx, a.p, NewToken{Name: w.uniq("tok"), Role: a.p.Role}, f.code(a.u))
			return err
		},
		OpTokenList: func(a actor) error { _, err := f.svc.ListTokens(f.ctx, a.p); return err },
		OpTokenRevoke: func(a actor) error {
			id := w.directToken(a.u.ID)
			return f.svc.RevokeToken(f.ctx, a.p, id)
		},
		OpSupportOpen: func(a actor) error {
			s := f.user(f.b, w.uniq("sup"), store.RoleSupport)
			_, err := f.svc.OpenSupport(f.ctx, a.p, s.ID, time.Hour, "walk", f.code(a.u))
			return err
		},
		OpSupportClose: func(a actor) error { return f.svc.CloseSupport(f.ctx, a.p, w.directTicket()) },
		OpSupportList:  func(a actor) error { _, err := f.svc.ListSupport(f.ctx, a.p); return err },
		OpApprovalList: func(a actor) error { _, err := f.svc.ListApprovals(f.ctx, a.p, ""); return err },
		OpApprovalGrant: func(a actor) error {
			_, err := f.svc.Approve(f.ctx, a.p, w.directApproval(operator.u.ID), f.code(a.u))
			return err
		},
		OpApprovalDeny: func(a actor) error {
			return f.svc.Deny(f.ctx, a.p, w.directApproval(operator.u.ID), "walk", f.code(a.u))
		},
		OpApprovalVoid: func(a actor) error { return f.svc.VoidApproval(f.ctx, a.p, w.directApproval(a.u.ID), "walk") },
		OpKeyRegister: func(a actor) error {
			_, err := f.svc.BeginKeyRegistration(f.ctx, a.p, w.uniq("key"), f.code(a.u))
			return err
		},
		OpKeyList:   func(a actor) error { _, err := f.svc.ListKeys(f.ctx, a.p); return err },
		OpKeyRemove: func(a actor) error { return f.svc.RemoveKey(f.ctx, a.p, w.directKey(a.u.ID), f.code(a.u)) },
		OpKeyPolicy: func(a actor) error { return f.svc.SetKeyPolicy(f.ctx, a.p, KeyPolicy{}, f.code(a.u)) },
		OpRoleGrantApprove: func(a actor) error {
			_, err := f.svc.Approve(f.ctx, a.p, w.directRoleGrant(w.admin.ID), f.code(a.u))
			return err
		},
	}

	// Every method taking a Principal is mapped, and every auth operation
	// has a case.
	typ := reflect.TypeOf(f.svc)
	pt := reflect.TypeOf(Principal{})
	for i := 0; i < typ.NumMethod(); i++ {
		m := typ.Method(i)
		takes := false
		for j := 1; j < m.Type.NumIn(); j++ {
			takes = takes || m.Type.In(j) == pt
		}
		if _, ok := methodOps[m.Name]; takes && !ok {
			t.Errorf("Service.%s takes a Principal but is not in methodOps", m.Name)
		}
	}
	var authOps []Operation
	for _, perm := range Permissions() {
		if perm.Owner == "auth" {
			authOps = append(authOps, perm.Op)
			if cases[perm.Op] == nil {
				t.Errorf("no walk case for %s", perm.Op)
			}
		}
	}
	sort.Slice(authOps, func(i, j int) bool { return authOps[i] < authOps[j] })

	expect := func(a actor, op Operation) bool {
		perm, _ := permission(op)
		if perm.ApplianceOnly {
			return a.p.ApplianceAdmin()
		}
		if a.name == "support (no ticket)" {
			return selfService(op)
		}
		return Allowed(a.p.Role, op)
	}
	check := func(t *testing.T, a actor, op Operation, err error) {
		t.Helper()
		if expect(a, op) {
			if errors.Is(err, ErrForbidden) {
				t.Fatalf("%s refused %s, which the matrix allows: %v", a.name, op, err)
			}
			if err != nil {
				t.Fatalf("%s %s: %v", a.name, op, err)
			}
			return
		}
		if !errors.Is(err, ErrForbidden) {
			t.Fatalf("%s did %s, which the matrix forbids: %v", a.name, op, err)
		}
	}
	for _, op := range authOps {
		for _, a := range append(slices.Clone(w.actors), actor{name: "appliance admin", u: appAdmin, p: appP}) {
			perm, _ := permission(op)
			if a.name == "appliance admin" && !perm.ApplianceOnly {
				continue // appliance admins act in tenants by naming one; see TestApplianceAdminTenants
			}
			t.Run(string(op)+"/"+a.name, func(t *testing.T) {
				mark := f.head()
				err := cases[op](a)
				check(t, a, op, err)
				if !expect(a, op) {
					es := f.entries(audit.ActAccessDenied, mark)
					if len(es) == 0 || es[len(es)-1].ActorID != a.u.ID || details(t, es[len(es)-1])["operation"] != string(op) {
						t.Fatalf("refusal of %s for %s not audited: %v", op, a.name, es)
					}
				}
			})
		}
	}
	// Every operation of the matrix through Authorize, as the other
	// services call it.
	for _, perm := range Permissions() {
		for _, a := range append(slices.Clone(w.actors), actor{name: "appliance admin", u: appAdmin, p: appP}) {
			tenant := ""
			if a.name == "appliance admin" && !perm.ApplianceOnly {
				tenant = f.a
			}
			t.Run("Authorize/"+string(perm.Op)+"/"+a.name, func(t *testing.T) {
				_, err := f.svc.Authorize(f.ctx, a.p, perm.Op, tenant)
				want := expect(a, perm.Op)
				if a.name == "appliance admin" && !perm.ApplianceOnly {
					want = Allowed(store.RoleAdmin, perm.Op)
				}
				if want != (err == nil) {
					t.Fatalf("Authorize(%s, %s) = %v, matrix says allowed=%v", a.name, perm.Op, err, want)
				}
			})
		}
	}
}

// directToken inserts a token owned by userID in tenant A (bypassing the
// service, so the walk of RevokeToken does not depend on CreateToken).
func (w *walkFixture) directToken(userID string) string {
	w.t.Helper()
	at, _ := w.st.AuthTenant(w.a)
	id := w.uniq("tok_")
	err := w.st.InTx(w.ctx, func(tx *sql.Tx) error {
		_, err := at.CreateToken(w.ctx, tx, store.Token{ID: id, UserID: userID, Name: id, Role: store.RoleAuditor, TokenHash: []byte(id), CreatedAt: w.clock.now(), ExpiresAt: w.clock.now().Add(time.Hour)})
		return err
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return id
}

// directKey inserts a security key owned by userID (bypassing the
// service) and returns its id.
func (w *walkFixture) directKey(userID string) string {
	w.t.Helper()
	id := w.uniq("key_")
	err := w.st.InTx(w.ctx, func(tx *sql.Tx) error {
		return w.st.AddWebAuthnKey(w.ctx, tx, store.WebAuthnKey{ID: id, UserID: userID, CredentialID: []byte(id), Name: id, Credential: []byte(`{}`), CreatedAt: w.clock.now()})
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return id
}

// directTicket inserts an open ticket in tenant A for a new support user.
func (w *walkFixture) directTicket() string {
	w.t.Helper()
	s := w.user(w.b, w.uniq("tsup"), store.RoleSupport)
	at, _ := w.st.AuthTenant(w.a)
	id := w.uniq("sup_")
	err := w.st.InTx(w.ctx, func(tx *sql.Tx) error {
		_, err := at.CreateSupportTicket(w.ctx, tx, store.SupportTicket{ID: id, SupportUserID: s.ID, OpenedBy: w.admin.ID, Reason: "walk", OpenedAt: w.clock.now(), ExpiresAt: w.clock.now().Add(time.Hour)})
		return err
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return id
}

// directRoleGrant inserts a pending role-grant request of requester (an
// admin) in tenant A.
func (w *walkFixture) directRoleGrant(requester string) string {
	w.t.Helper()
	at, _ := w.st.AuthTenant(w.a)
	id := w.uniq("apr_")
	req := CreateUserRequest(w.a, NewUser{Name: id, Role: store.RoleApprover})
	sum := sha256.Sum256(req)
	err := w.st.InTx(w.ctx, func(tx *sql.Tx) error {
		_, err := at.CreateApproval(w.ctx, tx, store.Approval{ID: id, Kind: string(KindRoleGrant), RequesterID: requester, Request: req, RequestSHA256: sum[:],
			Status: store.ApprovalPending, CreatedAt: w.clock.now(), ExpiresAt: w.clock.now().Add(time.Hour)})
		return err
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return id
}

// directApproval inserts a pending request of requester in tenant A.
func (w *walkFixture) directApproval(requester string) string {
	w.t.Helper()
	at, _ := w.st.AuthTenant(w.a)
	id := w.uniq("apr_")
	err := w.st.InTx(w.ctx, func(tx *sql.Tx) error {
		_, err := at.CreateApproval(w.ctx, tx, store.Approval{ID: id, Kind: string(KindProductionScan), RequesterID: requester, Request: []byte(id), RequestSHA256: []byte(id),
			Status: store.ApprovalPending, CreatedAt: w.clock.now(), ExpiresAt: w.clock.now().Add(time.Hour)})
		return err
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return id
}
