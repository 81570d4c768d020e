package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"
)

// TestAuthTenantIsolation calls every method of AuthTenant from tenant B on
// tenant A's tokens, approvals and tickets and proves none reads or changes
// them. Like TestTenantIsolation, the table must name every method.
func TestAuthTenantIsolation(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	var a, b Tenant
	var userA User
	var tokA Token
	var aprA Approval
	var tkA SupportTicket
	err := s.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if a, err = s.CreateTenant(ctx, tx, "alpha"); err != nil {
			return err
		}
		if b, err = s.CreateTenant(ctx, tx, "bravo"); err != nil {
			return err
		}
		ta, _ := s.Tenant(a.ID)
		if userA, err = ta.CreateUser(ctx, tx, User{Name: "alice", Role: RoleOperator, PasswordHash: "x"}); err != nil {
			return err
		}
		aa, _ := s.AuthTenant(a.ID)
		if tokA, err = aa.CreateToken(ctx, tx, Token{ID: "tok1", UserID: userA.ID, Name: "ci", Role: RoleOperator, TokenHash: []byte("h1"), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			return err
		}
		if aprA, err = aa.CreateApproval(ctx, tx, Approval{ID: "apr1", Kind: "scan.production", RequesterID: userA.ID, Request: []byte("r"), RequestSHA256: []byte("s"), Status: ApprovalPending, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			return err
		}
		if err = aa.AddGrant(ctx, tx, Grant{ApprovalID: aprA.ID, ApproverID: userA.ID, RequestSHA256: []byte("s"), GrantedAt: now}); err != nil {
			return err
		}
		if _, err = ta.CreateUser(ctx, tx, User{Name: "adam", Role: RoleAdmin, PasswordHash: "x"}); err != nil {
			return err
		}
		if _, err = aa.AddReviewFlag(ctx, tx, ReviewFlag{ID: "rf1", UserID: userA.ID, Role: RoleApprover, GrantedBy: userA.ID, Reason: "r", FlaggedAt: now}); err != nil {
			return err
		}
		tkA, err = aa.CreateSupportTicket(ctx, tx, SupportTicket{ID: "sup1", SupportUserID: userA.ID, OpenedBy: userA.ID, Reason: "r", OpenedAt: now, ExpiresAt: now.Add(time.Hour)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ab, _ := s.AuthTenant(b.ID)
	inTx := func(fn func(tx *sql.Tx) error) error { return s.InTx(ctx, fn) }
	empty := func(n int, err error) error {
		if err != nil {
			return err
		}
		if n != 0 {
			return errors.New("listed another tenant's rows")
		}
		return ErrNotFound
	}
	// landsInB checks a create through B's handle is B's whatever the
	// caller put in TenantID, then reports ErrNotFound for the table.
	landsInB := func(got string, err error) error {
		if err != nil {
			return err
		}
		if got != b.ID {
			return errors.New("row created in another tenant")
		}
		return ErrNotFound
	}
	cases := []struct {
		method string
		run    func() error
	}{
		{"ID", func() error {
			if ab.ID() != b.ID {
				return errors.New("wrong tenant")
			}
			return ErrNotFound
		}},
		{"Token", func() error { _, err := ab.Token(ctx, tokA.ID); return err }},
		{"ListTokens", func() error { ts, err := ab.ListTokens(ctx); return empty(len(ts), err) }},
		{"RevokeToken", func() error { return inTx(func(tx *sql.Tx) error { return ab.RevokeToken(ctx, tx, tokA.ID, now) }) }},
		{"CreateToken", func() error {
			return inTx(func(tx *sql.Tx) error {
				tk, err := ab.CreateToken(ctx, tx, Token{ID: "tok2", TenantID: a.ID, UserID: userA.ID, Name: "x", Role: RoleOperator, TokenHash: []byte("h2"), CreatedAt: now, ExpiresAt: now})
				return landsInB(tk.TenantID, err)
			})
		}},
		{"Approval", func() error { _, err := ab.Approval(ctx, s.Reader(), aprA.ID); return err }},
		{"ListApprovals", func() error { as, err := ab.ListApprovals(ctx, ""); return empty(len(as), err) }},
		{"CloseApproval", func() error {
			return inTx(func(tx *sql.Tx) error { return ab.CloseApproval(ctx, tx, aprA.ID, ApprovalVoid, now) })
		}},
		{"MarkApproved", func() error { return inTx(func(tx *sql.Tx) error { return ab.MarkApproved(ctx, tx, aprA.ID) }) }},
		{"UseApproval", func() error { return inTx(func(tx *sql.Tx) error { return ab.UseApproval(ctx, tx, aprA.ID, now) }) }},
		{"AddGrant", func() error {
			return inTx(func(tx *sql.Tx) error {
				return ab.AddGrant(ctx, tx, Grant{ApprovalID: aprA.ID, TenantID: a.ID, ApproverID: userA.ID, RequestSHA256: []byte("s"), GrantedAt: now})
			})
		}},
		{"Grants", func() error { gs, err := ab.Grants(ctx, s.Reader(), aprA.ID); return empty(len(gs), err) }},
		{"CreateApproval", func() error {
			return inTx(func(tx *sql.Tx) error {
				ap, err := ab.CreateApproval(ctx, tx, Approval{ID: "apr2", TenantID: a.ID, Kind: "k", RequesterID: userA.ID, Request: []byte("r"), RequestSHA256: []byte("s"), Status: ApprovalPending, CreatedAt: now, ExpiresAt: now})
				return landsInB(ap.TenantID, err)
			})
		}},
		{"SupportTicket", func() error { _, err := ab.SupportTicket(ctx, tkA.ID); return err }},
		{"ListSupportTickets", func() error { ts, err := ab.ListSupportTickets(ctx); return empty(len(ts), err) }},
		{"CloseSupportTicket", func() error {
			return inTx(func(tx *sql.Tx) error { return ab.CloseSupportTicket(ctx, tx, tkA.ID, now) })
		}},
		{"CountAdmins", func() error { n, err := ab.CountAdmins(ctx, s.Reader(), ""); return empty(n, err) }},
		{"CloseReviewFlag", func() error {
			return inTx(func(tx *sql.Tx) error { return ab.CloseReviewFlag(ctx, tx, "rf1", userA.ID, now) })
		}},
		{"ReviewFlags", func() error { fs, err := ab.ReviewFlags(ctx, s.Reader(), false); return empty(len(fs), err) }},
		{"AddReviewFlag", func() error {
			return inTx(func(tx *sql.Tx) error {
				f, err := ab.AddReviewFlag(ctx, tx, ReviewFlag{ID: "rf2", TenantID: a.ID, UserID: userA.ID, Role: RoleAdmin, GrantedBy: userA.ID, Reason: "r", FlaggedAt: now})
				return landsInB(f.TenantID, err)
			})
		}},
		{"CreateSupportTicket", func() error {
			return inTx(func(tx *sql.Tx) error {
				st, err := ab.CreateSupportTicket(ctx, tx, SupportTicket{ID: "sup2", TenantID: a.ID, SupportUserID: userA.ID, OpenedBy: userA.ID, Reason: "r", OpenedAt: now, ExpiresAt: now})
				return landsInB(st.TenantID, err)
			})
		}},
	}
	var covered []string
	for _, c := range cases {
		covered = append(covered, c.method)
		t.Run(c.method, func(t *testing.T) {
			if err := c.run(); !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s from tenant B: %v, want ErrNotFound", c.method, err)
			}
		})
	}
	var methods []string
	typ := reflect.TypeOf(ab)
	for i := 0; i < typ.NumMethod(); i++ {
		methods = append(methods, typ.Method(i).Name)
	}
	sort.Strings(covered)
	if !reflect.DeepEqual(methods, covered) {
		t.Fatalf("AuthTenant methods %v, isolation cases %v: add a case for every method", methods, covered)
	}
	// A's rows are untouched.
	aa, _ := s.AuthTenant(a.ID)
	if tk, err := aa.Token(ctx, tokA.ID); err != nil || !tk.RevokedAt.IsZero() {
		t.Fatalf("A's token changed: %+v %v", tk, err)
	}
	if ap, err := aa.Approval(ctx, s.Reader(), aprA.ID); err != nil || ap.Status != ApprovalPending {
		t.Fatalf("A's approval changed: %+v %v", ap, err)
	}
	if gs, err := aa.Grants(ctx, s.Reader(), aprA.ID); err != nil || len(gs) != 1 {
		t.Fatalf("A's grants: %d %v", len(gs), err)
	}
	if tk, err := aa.SupportTicket(ctx, tkA.ID); err != nil || !tk.ClosedAt.IsZero() {
		t.Fatalf("A's ticket changed: %+v %v", tk, err)
	}
	if n, err := aa.CountAdmins(ctx, s.Reader(), ""); err != nil || n != 1 {
		t.Fatalf("A's admins: %d %v", n, err)
	}
	if fs, err := aa.ReviewFlags(ctx, s.Reader(), true); err != nil || len(fs) != 1 || fs[0].ID != "rf1" {
		t.Fatalf("A's review flags: %+v %v", fs, err)
	}
	if _, err := s.AuthTenant(" "); !errors.Is(err, ErrNoTenant) {
		t.Fatalf("AuthTenant without tenant: %v", err)
	}
}

// TestAuthCompareAndSet: the single-use primitives hold at the SQL level.
func TestAuthCompareAndSet(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	var u User
	err := s.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		u, err = s.CreateAdmin(ctx, tx, User{Name: "root", PasswordHash: "x"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		fn   func(tx *sql.Tx) error
		want error
	}{
		{"first step", func(tx *sql.Tx) error { return s.AdvanceTOTPStep(ctx, tx, u.ID, 100) }, nil},
		{"same step again", func(tx *sql.Tx) error { return s.AdvanceTOTPStep(ctx, tx, u.ID, 100) }, ErrStale},
		{"older step", func(tx *sql.Tx) error { return s.AdvanceTOTPStep(ctx, tx, u.ID, 99) }, ErrStale},
		{"newer step", func(tx *sql.Tx) error { return s.AdvanceTOTPStep(ctx, tx, u.ID, 101) }, nil},
		{"recovery codes", func(tx *sql.Tx) error {
			return s.ReplaceRecoveryCodes(ctx, tx, u.ID, [][]byte{[]byte("c1"), []byte("c2")})
		}, nil},
		{"use code", func(tx *sql.Tx) error { return s.UseRecoveryCode(ctx, tx, u.ID, []byte("c1"), now) }, nil},
		{"reuse code", func(tx *sql.Tx) error { return s.UseRecoveryCode(ctx, tx, u.ID, []byte("c1"), now) }, ErrNotFound},
		{"step-up grant", func(tx *sql.Tx) error {
			return s.CreateStepUp(ctx, tx, StepUp{ID: "su1", UserID: u.ID, Operation: "op", RequestSHA256: []byte("r"), CreatedAt: now, ExpiresAt: now.Add(time.Minute)})
		}, nil},
		{"wrong request", func(tx *sql.Tx) error { _, err := s.ConsumeStepUp(ctx, tx, u.ID, "op", []byte("x"), now); return err }, ErrNotFound},
		{"consume", func(tx *sql.Tx) error { _, err := s.ConsumeStepUp(ctx, tx, u.ID, "op", []byte("r"), now); return err }, nil},
		{"consume again", func(tx *sql.Tx) error { _, err := s.ConsumeStepUp(ctx, tx, u.ID, "op", []byte("r"), now); return err }, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.InTx(ctx, tt.fn); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if st, _ := s.AuthState(ctx, s.Reader(), u.ID); st.TOTPLastStep != 101 {
		t.Fatalf("last step %d", st.TOTPLastStep)
	}
	if n, _ := s.RecoveryCodesLeft(ctx, u.ID); n != 1 {
		t.Fatalf("%d codes left", n)
	}
}

// TestLoginThrottleRows: the per (name, address) state round-trips, pairs
// are independent, and pruning keeps pairs that are still blocked.
func TestLoginThrottleRows(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	name := []byte("sha-of-name")
	set := func(th Throttle) {
		t.Helper()
		if err := s.InTx(ctx, func(tx *sql.Tx) error { return s.SetLoginThrottle(ctx, tx, th) }); err != nil {
			t.Fatal(err)
		}
	}
	get := func(ip string) Throttle {
		t.Helper()
		th, err := s.LoginThrottle(ctx, s.Reader(), name, ip)
		if err != nil {
			t.Fatal(err)
		}
		return th
	}
	if th := get("192.0.2.1"); th.Failures != 0 || !th.BlockedUntil.IsZero() || th.IP != "192.0.2.1" {
		t.Fatalf("new pair %+v", th)
	}
	set(Throttle{NameSHA256: name, IP: "192.0.2.1", Failures: 5, LastFailure: now, BlockedUntil: now.Add(time.Minute)})
	set(Throttle{NameSHA256: name, IP: "192.0.2.2", Failures: 1, LastFailure: now.Add(-48 * time.Hour)})
	if th := get("192.0.2.1"); th.Failures != 5 || !th.BlockedUntil.Equal(now.Add(time.Minute)) {
		t.Fatalf("stored pair %+v", th)
	}
	err := s.InTx(ctx, func(tx *sql.Tx) error { return s.PruneLoginThrottle(ctx, tx, now.Add(-24*time.Hour), now) })
	if err != nil {
		t.Fatal(err)
	}
	if get("192.0.2.2").Failures != 0 || get("192.0.2.1").Failures != 5 {
		t.Fatal("prune removed the wrong pair")
	}
	if err := s.InTx(ctx, func(tx *sql.Tx) error { return s.ClearLoginThrottle(ctx, tx, name, "192.0.2.1") }); err != nil {
		t.Fatal(err)
	}
	if get("192.0.2.1").Failures != 0 {
		t.Fatal("clear kept the pair")
	}
}

// TestUserChangesAndSources: the change history is kept in order per user;
// distinct event sources are counted per user and kind.
func TestUserChangesAndSources(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	var u User
	err := s.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if u, err = s.CreateAdmin(ctx, tx, User{Name: "root", PasswordHash: "x"}); err != nil {
			return err
		}
		for i, c := range []UserChange{
			{UserID: u.ID, Change: ChangeCreate, Role: RoleAdmin, ChangedBy: "system", ChangedAt: now},
			{UserID: u.ID, Change: ChangeRole, Role: RoleAuditor, ChangedBy: "u_x", ChangedAt: now.Add(time.Minute)},
		} {
			if err := s.AddUserChange(ctx, tx, c); err != nil {
				return fmt.Errorf("change %d: %w", i, err)
			}
		}
		for i, ip := range []string{"192.0.2.3", "192.0.2.1", "192.0.2.1", "192.0.2.2"} {
			if err := s.AddEvent(ctx, tx, EventLoginFailed, u.ID, ip, now.Add(time.Duration(i)*time.Second)); err != nil {
				return err
			}
		}
		return s.AddEvent(ctx, tx, EventLoginFailed, "someone else", "192.0.2.9", now)
	})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := s.UserChanges(ctx, s.Reader(), u.ID)
	if err != nil || len(cs) != 2 || cs[0].Change != ChangeCreate || cs[1].ChangedBy != "u_x" || !cs[1].ChangedAt.Equal(now.Add(time.Minute)) {
		t.Fatalf("changes %+v %v", cs, err)
	}
	n, ips, err := s.UserEventSources(ctx, s.Reader(), EventLoginFailed, u.ID, now, 2)
	if err != nil || n != 3 || len(ips) != 2 || ips[0] != "192.0.2.1" || ips[1] != "192.0.2.2" {
		t.Fatalf("sources %d %v %v", n, ips, err)
	}
	if n, _, _ := s.UserEventSources(ctx, s.Reader(), EventLoginFailed, u.ID, now.Add(2*time.Second), 10); n != 2 {
		t.Fatalf("sources in a later window: %d", n)
	}
}
