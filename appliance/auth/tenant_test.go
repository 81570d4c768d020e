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

// TestCrossTenant: principals of tenant B try every service operation that
// reaches tenant-owned rows against tenant A, by naming tenant A or by
// using the ids of A's rows. Each attempt is refused AND written to the
// audit log as access.denied, and A's rows are unchanged.
func TestCrossTenant(t *testing.T) {
	f := newFixture(t)
	// Tenant A's rows.
	adminA := f.user(f.a, "a-admin", store.RoleAdmin)
	opA := f.user(f.a, "a-op", store.RoleOperator)
	adminAP, _ := f.login(adminA)
	opAP, _ := f.login(opA)
	_, tokA, err := f.svc.CreateToken(f.ctx, opAP, NewToken{Name: "ci", Role: store.RoleOperator}, f.code(opA))
	if err != nil {
		t.Fatal(err)
	}
	aprA, err := f.svc.RequestApproval(f.ctx, opAP, KindProductionScan, []byte(`{"scan":"a"}`))
	if err != nil {
		t.Fatal(err)
	}
	vendor := f.user(f.b, "vendor-support", store.RoleSupport)
	ticketA, err := f.svc.OpenSupport(f.ctx, adminAP, vendor.ID, time.Hour, "case 1", f.code(adminA))
	if err != nil {
		t.Fatal(err)
	}
	// Tenant B's principals.
	adminB := f.user(f.b, "b-admin", store.RoleAdmin)
	apprB := f.user(f.b, "b-approver", store.RoleApprover)
	leadB := f.user(f.b, "b-lead", store.RoleSecurityLead)
	adminBP, _ := f.login(adminB)
	apprBP, _ := f.login(apprB)
	leadBP, _ := f.login(leadB)

	tests := []struct {
		name string
		run  func() error
	}{
		// Naming tenant A explicitly.
		{"ListUsers(tenant A)", func() error { _, err := f.svc.ListUsers(f.ctx, adminBP, f.a); return err }},
		{"CreateUser(tenant A)", func() error {
			_, _, err := f.svc.CreateUser(f.ctx, adminBP, f.a, NewUser{Name: "mole", Role: store.RoleAdmin}, f.code(adminB))
			return err
		}},
		{"SetRole(tenant A)", func() error { return f.svc.SetRole(f.ctx, adminBP, f.a, opA.ID, store.RoleAdmin, f.code(adminB)) }},
		{"DisableUser(tenant A)", func() error { return f.svc.DisableUser(f.ctx, adminBP, f.a, opA.ID, f.code(adminB)) }},
		{"CreateToken(tenant A)", func() error {
			_, _, err := f.svc.CreateToken(f.ctx, adminBP, NewToken{Name: "x", Role: store.RoleAuditor, Tenant: f.a}, f.code(adminB))
			return err
		}},
		{"StepUp(tenant A)", func() error {
			_, err := f.svc.StepUp(f.ctx, adminBP, OpUserCreate, f.a, []byte("x"), f.code(adminB))
			return err
		}},
		{"Authorize(scan.read, tenant A)", func() error { _, err := f.svc.Authorize(f.ctx, leadBP, OpScanRead, f.a); return err }},
		{"Authorize(scope.sign, tenant A)", func() error { _, err := f.svc.Authorize(f.ctx, leadBP, OpScopeSign, f.a); return err }},
		// Using the ids of A's rows from B's own tenant.
		{"SetRole(A's user id)", func() error { return f.svc.SetRole(f.ctx, adminBP, "", opA.ID, store.RoleAdmin, f.code(adminB)) }},
		{"DisableUser(A's user id)", func() error { return f.svc.DisableUser(f.ctx, adminBP, "", opA.ID, f.code(adminB)) }},
		{"RevokeToken(A's token)", func() error { return f.svc.RevokeToken(f.ctx, adminBP, tokA.ID) }},
		{"CloseSupport(A's ticket)", func() error { return f.svc.CloseSupport(f.ctx, adminBP, ticketA.ID) }},
		{"GetApproval(A's request)", func() error { _, err := f.svc.GetApproval(f.ctx, leadBP, aprA.ID); return err }},
		{"Approve(A's request)", func() error { _, err := f.svc.Approve(f.ctx, apprBP, aprA.ID, f.code(apprB)); return err }},
		{"Deny(A's request)", func() error { return f.svc.Deny(f.ctx, apprBP, aprA.ID, "x", f.code(apprB)) }},
		{"VoidApproval(A's request)", func() error { return f.svc.VoidApproval(f.ctx, leadBP, aprA.ID, "x") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mark := f.head()
			err := tt.run()
			if !errors.Is(err, ErrForbidden) && !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("cross-tenant attempt: %v, want ErrForbidden or ErrNotFound", err)
			}
			es := f.expectAudit(audit.ActAccessDenied, mark, 1)
			e := es[0]
			if e.ActorIP != client.IP || e.UserAgent != client.UserAgent || e.ActorID == "" {
				t.Fatalf("audit entry lacks actor: %+v", e)
			}
			if r, _ := details(t, e)["reason"].(string); !strings.Contains(r, "cross-tenant") && !strings.Contains(r, "not found in tenant "+f.b) {
				t.Fatalf("reason %q", r)
			}
		})
	}
	// Lists from B show none of A's rows.
	if us, _ := f.svc.ListUsers(f.ctx, adminBP, ""); containsUser(us, opA.ID) {
		t.Fatal("B lists A's users")
	}
	if ts, _ := f.svc.ListTokens(f.ctx, adminBP); len(ts) != 0 {
		t.Fatal("B lists A's tokens")
	}
	if as, _ := f.svc.ListApprovals(f.ctx, leadBP, ""); len(as) != 0 {
		t.Fatal("B lists A's approvals")
	}
	if ss, _ := f.svc.ListSupport(f.ctx, adminBP); len(ss) != 0 {
		t.Fatal("B lists A's tickets")
	}
	// A's rows are unchanged.
	u, _ := f.st.UserByID(f.ctx, opA.ID)
	if u.Role != store.RoleOperator || u.Disabled {
		t.Fatalf("A's user changed: %+v", u)
	}
	if _, err := f.svc.AuthenticateToken(f.ctx, mustTokenSecret(t, f, opAP, opA), client); err != nil {
		t.Fatal(err)
	}
	a, err := f.svc.GetApproval(f.ctx, opAP, aprA.ID)
	if err != nil || a.Status != store.ApprovalPending || len(a.Approvers) != 0 {
		t.Fatalf("A's approval changed: %+v %v", a, err)
	}
}

func containsUser(us []UserInfo, id string) bool {
	for _, u := range us {
		if u.ID == id {
			return true
		}
	}
	return false
}

func mustTokenSecret(t *testing.T, f *fixture, p Principal, u testUser) string {
	t.Helper()
	sec, _, err := f.svc.CreateToken(f.ctx, p, NewToken{Name: "probe", Role: p.Role}, f.code(u))
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

// TestSupportSession: a tenant admin grants a support user (of the vendor's
// tenant) time-limited, read-only access to tenant A only. During it every
// check is pinned to A; other tenants and writes are refused and audited;
// it ends by itself.
func TestSupportSession(t *testing.T) {
	f := newFixture(t)
	adminA := f.user(f.a, "a-admin", store.RoleAdmin)
	adminAP, _ := f.login(adminA)
	sup := f.user(f.b, "vendor", store.RoleSupport)
	op := f.user(f.a, "a-op", store.RoleOperator)

	// Without a ticket a support user can do nothing in any tenant.
	p0, l0 := f.login(sup)
	for _, tenant := range []string{"", f.a, f.b} {
		if _, err := f.svc.Authorize(f.ctx, p0, OpScanRead, tenant); !errors.Is(err, ErrForbidden) {
			t.Fatalf("support without ticket, tenant %q: %v", tenant, err)
		}
	}
	// Only support users, only bounded tickets, one at a time.
	for _, bad := range []struct {
		user string
		ttl  time.Duration
	}{{op.ID, time.Hour}, {sup.ID, 9 * time.Hour}, {sup.ID, 0}, {"u_missing", time.Hour}} {
		if _, err := f.svc.OpenSupport(f.ctx, adminAP, bad.user, bad.ttl, "r", f.code(adminA)); err == nil {
			t.Fatalf("ticket for %s ttl %s opened", bad.user, bad.ttl)
		}
	}
	mark := f.head()
	tk, err := f.svc.OpenSupport(f.ctx, adminAP, sup.ID, 2*time.Hour, "ticket 4711", f.code(adminA))
	if err != nil {
		t.Fatal(err)
	}
	f.expectAudit(audit.ActSupportOpen, mark, 1)
	if _, err := f.svc.OpenSupport(f.ctx, adminAP, sup.ID, time.Hour, "again", f.code(adminA)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("second ticket: %v", err)
	}
	// Opening ended the support user's earlier sessions.
	if _, err := f.svc.Authenticate(f.ctx, Request{SessionToken: l0.Token, Method: "GET"}); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("session from before the ticket: %v", err)
	}
	p, l := f.login(sup)
	if p.TenantID != f.a || p.HomeTenantID != f.b || p.SupportTicketID != tk.ID {
		t.Fatalf("support principal %+v", p)
	}
	tests := []struct {
		name   string
		op     Operation
		tenant string
		ok     bool
	}{
		{"read in ticket tenant (implicit)", OpScanRead, "", true},
		{"read in ticket tenant (explicit)", OpReportRead, f.a, true},
		{"read own home tenant", OpScanRead, f.b, false},
		{"read a third tenant", OpScopeRead, "t_other", false},
		{"write in ticket tenant", OpScanRequest, "", false},
		{"export in ticket tenant", OpEvidenceExport, "", false},
		{"audit log in ticket tenant", OpAuditRead, "", false},
		{"users in ticket tenant", OpUserList, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mark := f.head()
			pin, err := f.svc.Authorize(f.ctx, p, tt.op, tt.tenant)
			if tt.ok {
				if err != nil || pin != f.a {
					t.Fatalf("pin %q, %v; want %s", pin, err, f.a)
				}
				f.expectAudit(audit.ActAccessDenied, mark, 0)
				return
			}
			if !errors.Is(err, ErrForbidden) {
				t.Fatalf("err = %v, want ErrForbidden", err)
			}
			e := f.expectAudit(audit.ActAccessDenied, mark, 1)[0]
			if e.ActorID != sup.ID || details(t, e)["operation"] != string(tt.op) {
				t.Fatalf("audit %+v %s", e, e.Details)
			}
		})
	}
	if _, err := f.svc.ListUsers(f.ctx, p, f.b); !errors.Is(err, ErrForbidden) {
		t.Fatalf("support listing users: %v", err)
	}

	// The ticket ends by itself: after 2 hours the same session (kept
	// active) has no tenant, and Sweep audits the end and ends sessions.
	for i := 0; i < 12; i++ {
		f.clock.advance(10 * time.Minute)
		if _, err := f.svc.Authenticate(f.ctx, Request{SessionToken: l.Token, Method: "GET"}); err != nil {
			t.Fatal(err)
		}
	}
	p2, err := f.svc.Authenticate(f.ctx, Request{SessionToken: l.Token, Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	if p2.TenantID != "" || p2.SupportTicketID != "" {
		t.Fatalf("expired ticket still pins: %+v", p2)
	}
	if _, err := f.svc.Authorize(f.ctx, p2, OpScanRead, ""); !errors.Is(err, ErrForbidden) {
		t.Fatalf("after expiry: %v", err)
	}
	mark = f.head()
	if err := f.svc.Sweep(f.ctx); err != nil {
		t.Fatal(err)
	}
	e := f.expectAudit(audit.ActSupportClose, mark, 1)[0]
	if details(t, e)["reason"] != "expired" || e.Tenant != f.a {
		t.Fatalf("close entry %+v %s", e, e.Details)
	}
	if _, err := f.svc.Authenticate(f.ctx, Request{SessionToken: l.Token, Method: "GET"}); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("support session after ticket end: %v", err)
	}
	if err := f.svc.Sweep(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.expectAudit(audit.ActSupportClose, mark, 1)

	// Closing early works the same way.
	adminAP, _ = f.login(adminA)
	tk2, err := f.svc.OpenSupport(f.ctx, adminAP, sup.ID, time.Hour, "ticket 4712", f.code(adminA))
	if err != nil {
		t.Fatal(err)
	}
	_, l3 := f.login(sup)
	if err := f.svc.CloseSupport(f.ctx, adminAP, tk2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authenticate(f.ctx, Request{SessionToken: l3.Token, Method: "GET"}); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("session after close: %v", err)
	}
}

// TestTokens: API tokens need step-up, are shown once and stored hashed,
// act with their tenant and role, expire and can be revoked.
func TestTokens(t *testing.T) {
	f := newFixture(t)
	lead := f.user(f.a, "lead", store.RoleSecurityLead)
	op := f.user(f.a, "op", store.RoleOperator)
	leadP, _ := f.login(lead)
	opP, _ := f.login(op)
	if _, _, err := f.svc.CreateToken(f.ctx, leadP, NewToken{Name: "ci", Role: store.RoleOperator}, ""); !errors.Is(err, ErrStepUpRequired) {
		t.Fatalf("token without step-up: %v", err)
	}
	if _, _, err := f.svc.CreateToken(f.ctx, opP, NewToken{Name: "ci", Role: store.RoleSecurityLead}, f.code(op)); !errors.Is(err, ErrForbidden) {
		t.Fatalf("operator minting a security_lead token: %v", err)
	}
	if _, _, err := f.svc.CreateToken(f.ctx, leadP, NewToken{Name: "ci", Role: store.RoleOperator, TTL: 91 * 24 * time.Hour}, f.code(lead)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("token beyond max TTL: %v", err)
	}
	sec, info, err := f.svc.CreateToken(f.ctx, leadP, NewToken{Name: "ci", Role: store.RoleOperator, TTL: time.Hour}, f.code(lead))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sec, tokenPrefix) {
		t.Fatalf("secret %q", sec)
	}
	var stored []byte
	if err := f.st.DB().QueryRow(`SELECT token_hash FROM auth_tokens WHERE id = ?`, info.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(stored), sec[len(tokenPrefix):]) || len(stored) != 32 {
		t.Fatal("token stored in clear")
	}
	tp, err := f.svc.AuthenticateToken(f.ctx, sec, client)
	if err != nil {
		t.Fatal(err)
	}
	if tp.Role != store.RoleOperator || tp.TenantID != f.a || tp.TokenID != info.ID {
		t.Fatalf("token principal %+v", tp)
	}
	if _, err := f.svc.Authorize(f.ctx, tp, OpScanRequest, ""); err != nil {
		t.Fatalf("token with operator role: %v", err)
	}
	if _, err := f.svc.Authorize(f.ctx, tp, OpScopeSign, ""); !errors.Is(err, ErrForbidden) {
		t.Fatalf("token acting above its role: %v", err)
	}
	if _, err := f.svc.Authorize(f.ctx, tp, OpScanRead, f.b); !errors.Is(err, ErrForbidden) {
		t.Fatalf("token leaving its tenant: %v", err)
	}
	if _, _, err := f.svc.CreateToken(f.ctx, tp, NewToken{Name: "child", Role: store.RoleOperator}, ""); !errors.Is(err, ErrForbidden) {
		t.Fatalf("token creating a token: %v", err)
	}
	// A session secret is not a token, nor the reverse.
	_, l := f.login(op)
	if _, err := f.svc.AuthenticateToken(f.ctx, l.Token, client); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("session as token: %v", err)
	}
	if _, err := f.svc.Authenticate(f.ctx, Request{SessionToken: sec, Method: "GET"}); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("token as session: %v", err)
	}
	// Expiry.
	f.clock.advance(time.Hour)
	if _, err := f.svc.AuthenticateToken(f.ctx, sec, client); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("expired token: %v", err)
	}
	// Revocation, by the owner; another non-admin may not.
	sec2, info2, err := f.svc.CreateToken(f.ctx, leadP, NewToken{Name: "ci2", Role: store.RoleOperator}, f.code(lead))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.RevokeToken(f.ctx, opP, info2.ID); !errors.Is(err, ErrForbidden) {
		t.Fatalf("operator revoking lead's token: %v", err)
	}
	mark := f.head()
	if err := f.svc.RevokeToken(f.ctx, leadP, info2.ID); err != nil {
		t.Fatal(err)
	}
	f.expectAudit(audit.ActTokenRevoke, mark, 1)
	if _, err := f.svc.AuthenticateToken(f.ctx, sec2, client); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("revoked token: %v", err)
	}
	ts, err := f.svc.ListTokens(f.ctx, leadP)
	if err != nil || len(ts) != 2 {
		t.Fatalf("lead's tokens %d, %v", len(ts), err)
	}
	if ts, _ := f.svc.ListTokens(f.ctx, opP); len(ts) != 0 {
		t.Fatalf("operator sees others' tokens: %d", len(ts))
	}
	// A disabled owner's tokens stop working.
	sec3, _, err := f.svc.CreateToken(f.ctx, opP, NewToken{Name: "ci3", Role: store.RoleOperator}, f.code(op))
	if err != nil {
		t.Fatal(err)
	}
	err = f.st.InTx(f.ctx, func(tx *sql.Tx) error { ts, _ := f.st.Tenant(f.a); return ts.DisableUser(f.ctx, tx, op.ID) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.AuthenticateToken(f.ctx, sec3, client); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("disabled owner's token: %v", err)
	}
}

// TestApplianceAdminTenants: appliance admins manage any tenant by naming
// it, must name one, and are the only ones who create tenants.
func TestApplianceAdminTenants(t *testing.T) {
	f := newFixture(t)
	root := f.user("", "root", store.RoleAdmin)
	rp, _ := f.login(root)
	if !rp.ApplianceAdmin() {
		t.Fatal("not an appliance admin")
	}
	tn, err := f.svc.CreateTenant(f.ctx, rp, "charlie", f.code(root))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.ListUsers(f.ctx, rp, ""); !errors.Is(err, ErrForbidden) {
		t.Fatalf("appliance admin without a tenant: %v", err)
	}
	u, otp, err := f.svc.CreateUser(f.ctx, rp, tn.ID, NewUser{Name: "c-admin", Role: store.RoleAdmin}, f.code(root))
	if err != nil || u.TenantID != tn.ID || len(otp) != 20 {
		t.Fatalf("create user in new tenant: %+v %v", u, err)
	}
	ts, err := f.svc.ListTenants(f.ctx, rp)
	if err != nil || len(ts) != 3 {
		t.Fatalf("tenants %d %v", len(ts), err)
	}
}

// TestVerifiedApprovalTenant: checking a request id under the wrong tenant
// is refused and audited, and does not void the owner's request.
func TestVerifiedApprovalTenant(t *testing.T) {
	f := newFixture(t)
	op := f.user(f.a, "op", store.RoleOperator)
	p, _ := f.login(op)
	req := []byte(`{"scan":1}`)
	a, err := f.svc.RequestApproval(f.ctx, p, KindProductionScan, req)
	if err != nil {
		t.Fatal(err)
	}
	mark := f.head()
	if _, err := f.svc.VerifiedApproval(f.ctx, f.b, a.ID, []byte("other")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("wrong tenant: %v", err)
	}
	f.expectAudit(audit.ActAccessDenied, mark, 1)
	f.expectAudit(audit.ActApprovalVoid, mark, 0)
	if _, err := f.svc.VerifiedApproval(f.ctx, f.a, a.ID, req); !errors.Is(err, ErrApprovalPending) {
		t.Fatalf("right tenant: %v", err)
	}
}

// TestScoped: the handle other services use is pinned to the principal's
// tenant; a scope of tenant A read through B's handle is refused and, via
// RefuseNotFound, audited.
func TestScoped(t *testing.T) {
	f := newFixture(t)
	err := f.st.InTx(f.ctx, func(tx *sql.Tx) error {
		ta, _ := f.st.Tenant(f.a)
		_, err := ta.CreateScope(f.ctx, tx, store.Scope{ID: "sc1", Name: "dmz", Environment: "production", Document: []byte("{}"), SHA256: "00"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	opB := f.user(f.b, "b-op", store.RoleOperator)
	p, _ := f.login(opB)
	if _, err := f.svc.Scoped(f.ctx, p, OpScopeRead, f.a); !errors.Is(err, ErrForbidden) {
		t.Fatalf("Scoped(tenant A) from B: %v", err)
	}
	ts, err := f.svc.Scoped(f.ctx, p, OpScopeRead, "")
	if err != nil || ts.ID() != f.b {
		t.Fatalf("Scoped: %v", err)
	}
	mark := f.head()
	_, err = ts.Scope(f.ctx, "sc1")
	if err = f.svc.RefuseNotFound(f.ctx, p, ts.ID(), OpScopeRead, "sc1", err); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("A's scope through B's handle: %v", err)
	}
	e := f.expectAudit(audit.ActAccessDenied, mark, 1)[0]
	if e.Object != "sc1" || e.ActorID != opB.ID || e.Tenant != f.b {
		t.Fatalf("audit %+v", e)
	}
}

// TestTokenOwnerDemoted: a token made while its owner held a stronger role
// stops working once the owner's role is lowered; it never carries more
// than its owner holds now.
func TestTokenOwnerDemoted(t *testing.T) {
	f := newFixture(t)
	admin := f.user(f.a, "a-admin", store.RoleAdmin)
	adminP, _ := f.login(admin)
	lead := f.user(f.a, "lead", store.RoleSecurityLead)
	leadP, _ := f.login(lead)
	sec, _, err := f.svc.CreateToken(f.ctx, leadP, NewToken{Name: "ci", Role: store.RoleSecurityLead}, f.code(lead))
	if err != nil {
		t.Fatal(err)
	}
	weak, _, err := f.svc.CreateToken(f.ctx, leadP, NewToken{Name: "ops", Role: store.RoleOperator}, f.code(lead))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.AuthenticateToken(f.ctx, sec, client); err != nil {
		t.Fatalf("token before demotion: %v", err)
	}
	if err := f.svc.SetRole(f.ctx, adminP, "", lead.ID, store.RoleOperator, f.code(admin)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.AuthenticateToken(f.ctx, sec, client); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("security_lead token of an owner demoted to operator: %v", err)
	}
	tp, err := f.svc.AuthenticateToken(f.ctx, weak, client)
	if err != nil || tp.Role != store.RoleOperator {
		t.Fatalf("operator token of an operator: %+v %v", tp, err)
	}
}
