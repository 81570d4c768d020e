package auth

import (
	"errors"
	"fmt"
	"testing"

	"firewalliq/audit"
)

// TestStepUpChallengeRoundTrip: an operation refused for a missing step-up
// returns a challenge naming the operation and the exact request; stepping
// up with those bytes (StepUpFor) lets the identical call through once.
func TestStepUpChallengeRoundTrip(t *testing.T) {
	f := newFixture(t)
	adm := f.user(f.a, "abby", "admin")
	p, _ := f.login(adm)
	nu := NewUser{Name: "newbie", Role: "operator"}
	_, _, err := f.svc.CreateUser(f.ctx, p, "", nu, "")
	var ch *StepUpChallenge
	if !errors.As(err, &ch) || !errors.Is(err, ErrStepUpRequired) {
		t.Fatalf("create without step-up: %v, want a StepUpChallenge", err)
	}
	if ch.Op != OpUserCreate || string(ch.Request) != string(OpRequest(OpUserCreate, f.a, map[string]string{"name": "newbie", "role": "operator"})) {
		t.Fatalf("challenge = %s %s", ch.Op, ch.Request)
	}
	// Wrapped further, it is still found.
	if !errors.As(fmt.Errorf("api: %w", err), &ch) {
		t.Fatal("errors.As through wrapping failed")
	}
	mark := f.head()
	g, err := f.svc.StepUpFor(f.ctx, p, ch.Op, ch.Request, f.code(adm))
	if err != nil || g.Op != OpUserCreate {
		t.Fatalf("StepUpFor: %+v %v", g, err)
	}
	if es := f.expectAudit(audit.ActAuthStepUp, mark, 1); es[0].Tenant != f.a {
		t.Fatalf("step-up audited in tenant %q, want %q", es[0].Tenant, f.a)
	}
	if _, _, err := f.svc.CreateUser(f.ctx, p, "", nu, ""); err != nil {
		t.Fatalf("retry after step-up: %v", err)
	}
	if _, _, err := f.svc.CreateUser(f.ctx, p, "", NewUser{Name: "second", Role: "operator"}, ""); !errors.As(err, &ch) {
		t.Fatalf("grant reused for another request: %v", err)
	}
}

// TestStepUpForRefusals: the request's tenant is authorised like any other
// (a tenant admin cannot collect a grant for another tenant), and
// malformed requests are refused before any code is checked.
func TestStepUpForRefusals(t *testing.T) {
	f := newFixture(t)
	adm := f.user(f.a, "abby", "admin")
	p, _ := f.login(adm)
	tests := []struct {
		name    string
		op      Operation
		request string
		want    error
	}{
		{name: "other tenant", op: OpUserCreate, request: string(OpRequest(OpUserCreate, f.b, nil)), want: ErrForbidden},
		{name: "op mismatch", op: OpUserCreate, request: string(OpRequest(OpUserDisable, f.a, nil)), want: ErrInvalid},
		{name: "not JSON", op: OpUserCreate, request: "audit.alarm.ack\n", want: ErrInvalid},
		{name: "JSON array", op: OpUserCreate, request: `["tenant"]`, want: ErrInvalid},
		{name: "tenant not a string", op: OpUserCreate, request: `{"tenant":1}`, want: ErrInvalid},
		{name: "empty", op: OpUserCreate, request: "", want: ErrInvalid},
		{name: "needs no step-up", op: OpUserList, request: string(OpRequest(OpUserList, f.a, nil)), want: ErrInvalid},
		{name: "role may not", op: OpApprovalGrant, request: string(OpRequest(OpApprovalGrant, f.a, nil)), want: ErrForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mark := f.head()
			if _, err := f.svc.StepUpFor(f.ctx, p, tt.op, []byte(tt.request), f.code(adm)); !errors.Is(err, tt.want) {
				t.Fatalf("StepUpFor: %v, want %v", err, tt.want)
			}
			f.expectAudit(audit.ActAuthStepUp, mark, 0)
		})
	}
}

// FuzzRequestTenant: requestTenant never panics and, when it accepts a
// request, the op check held.
func FuzzRequestTenant(f *testing.F) {
	// Seeds: a real canonical request, one for another op, one without a
	// tenant, and malformed inputs.
	f.Add([]byte(OpRequest(OpUserCreate, "t_1", map[string]string{"name": "x"})))
	f.Add([]byte(OpRequest(OpUserDisable, "t_1", nil)))
	f.Add([]byte(`{"op":"user.create"}`))
	f.Add([]byte(`{"tenant":null}`))
	f.Add([]byte(`null`))
	f.Add([]byte{0xff, '{'})
	f.Fuzz(func(t *testing.T, req []byte) {
		if _, err := requestTenant(OpUserCreate, req); err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("error %v does not wrap ErrInvalid", err)
		}
	})
}

// TestDummyHashLazy: the hash unknown users' passwords are checked against
// is made on the first unknown-user login, not by NewService, so a command
// that never logs anyone in does not pay argon2id's memory for it.
func TestDummyHashLazy(t *testing.T) {
	f := newFixture(t)
	if f.svc.dummy != "" {
		t.Fatal("NewService computed the dummy hash")
	}
	if _, err := f.svc.Login(f.ctx, "nobody", "some password here", client, ""); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("unknown user: %v", err)
	}
	if f.svc.dummy == "" {
		t.Fatal("no dummy hash after an unknown-user login")
	}
}
