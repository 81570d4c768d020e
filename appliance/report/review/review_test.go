package review_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"firewalliq/appliance"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/auth/keytest"
	"firewalliq/appliance/internal/apptest"
	"firewalliq/appliance/keyring"
	"firewalliq/appliance/report/review"
	"firewalliq/appliance/report/verify"
	"firewalliq/appliance/store"
	"firewalliq/audit"
	"firewalliq/probe/keys"
)

// env is a fixture with what a review covers: an API token that was
// used, a support user with an open ticket, an unapproved privileged
// grant (review flag) and a trusted scope signer.
type env struct {
	*apptest.Fixture
	st       *store.Store
	rv       *review.Service
	token    string // the operator's token secret
	tokenID  string
	support  string // support user id
	ticket   string
	flagged  string // user created as approver without a second admin
	flagID   string
	signerID string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	f := apptest.New(t)
	st, err := store.Open(f.Ctx, filepath.Join(f.Cfg.DataDir, appliance.DatabaseFile), store.Options{Now: f.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{Fixture: f, st: st, rv: f.App.Reviews}
	admin, op := f.Users[store.RoleAdmin], f.Users[store.RoleOperator]

	secret, ti, err := f.App.Auth.CreateToken(f.Ctx, op.P, auth.NewToken{Name: "ci", Role: store.RoleOperator}, f.Code(op))
	if err != nil {
		t.Fatal(err)
	}
	e.token, e.tokenID = secret, ti.ID
	if _, err := f.App.Auth.AuthenticateToken(f.Ctx, secret, auth.Client{IP: "192.0.2.9"}); err != nil {
		t.Fatal(err)
	}
	sup, _, err := f.App.Auth.CreateUser(f.Ctx, admin.P, "", auth.NewUser{Name: "vendor", Role: store.RoleSupport}, f.Code(admin))
	if err != nil {
		t.Fatal(err)
	}
	e.support = sup.ID
	tk, err := f.App.Auth.OpenSupport(f.Ctx, admin.P, sup.ID, 2*time.Hour, "case 42", f.Code(admin))
	if err != nil {
		t.Fatal(err)
	}
	e.ticket = tk.ID
	// alpha has one admin, so a privileged grant cannot be approved by a
	// second one: it is flagged for the review.
	ap, _, err := f.App.Auth.CreateUser(f.Ctx, admin.P, "", auth.NewUser{Name: "newapprover", Role: store.RoleApprover}, f.Code(admin))
	if err != nil {
		t.Fatal(err)
	}
	e.flagged = ap.ID
	at, _ := st.AuthTenant(f.Tenant)
	flags, err := at.ReviewFlags(f.Ctx, st.Reader(), true)
	if err != nil || len(flags) != 1 {
		t.Fatalf("review flags = %v, %v; want one", flags, err)
	}
	e.flagID = flags[0].ID
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	pemPub, err := keys.MarshalPublic(pub)
	if err != nil {
		t.Fatal(err)
	}
	lead := f.Users[store.RoleSecurityLead]
	if _, err := f.App.ScopeKeys.Add(f.Ctx, lead.P, "", "lead key", pemPub, f.Code(lead)); err != nil {
		t.Fatal(err)
	}
	e.signerID = keys.ID(pub)
	return e
}

// decideAll marks every line keep except those in revoke.
func (e *env) decideAll(t *testing.T, p auth.Principal, tenant string, r review.Review, revoke ...string) review.Review {
	t.Helper()
	var ds []review.Decision
	for _, l := range r.Document.Lines {
		d := review.Decision{Item: l.Item, Decision: verify.DecisionKeep, Note: "needed"}
		if slices.Contains(revoke, l.Item) {
			d.Decision, d.Note = verify.DecisionRevoke, "no longer needed"
		}
		ds = append(ds, d)
	}
	r, err := e.rv.Decide(e.Ctx, p, tenant, r.ID, ds)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func user(doc verify.AccessReview, name string) verify.ReviewUser {
	for _, u := range doc.Users {
		if u.Name == name {
			return u
		}
	}
	return verify.ReviewUser{}
}

func reportPub(t *testing.T, f *apptest.Fixture) ed25519.PublicKey {
	t.Helper()
	pub, err := f.App.Keys.Public(keyring.Report)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestSnapshotListsEverything: users with roles, MFA and last login,
// tokens with role, expiry and last use, open and past support tickets,
// open review flags, scope signers, what is not tracked, and a line for
// every grant of access; a second review highlights what changed.
func TestSnapshotListsEverything(t *testing.T) {
	e := newEnv(t)
	admin := e.Users[store.RoleAdmin]
	r, err := e.rv.Start(e.Ctx, admin.P, "")
	if err != nil {
		t.Fatal(err)
	}
	doc := r.Document
	if doc.Tenant != e.Tenant || doc.TenantName != "alpha" || doc.Previous != nil || r.Status != store.ReviewOpen {
		t.Fatalf("review header %+v", doc)
	}
	for _, name := range []string{"admin", "security_lead", "approver", "operator", "auditor", "vendor", "newapprover"} {
		u := user(doc, name)
		if u.ID == "" {
			t.Fatalf("user %s missing from %+v", name, doc.Users)
		}
		fixtureUser := name != "vendor" && name != "newapprover"
		if fixtureUser && (u.LastLogin == "" || !u.TOTP) {
			t.Errorf("user %s: last login %q, TOTP %v; want both", name, u.LastLogin, u.TOTP)
		}
		if !fixtureUser && (u.LastLogin != "" || u.TOTP || !slices.Contains(u.Changes, review.ChangeNoMFA)) {
			t.Errorf("new user %s: %+v; want never logged in, no MFA, flagged no-mfa", name, u)
		}
		if len(u.Changes) > 0 && slices.Contains(u.Changes, review.ChangeNew) {
			t.Errorf("first review marks %s new", name)
		}
	}
	if user(doc, "other_admin").ID != "" || user(doc, "appliance_admin").ID != "" {
		t.Fatal("another tenant's user or an appliance admin is in the tenant review")
	}
	if len(doc.Tokens) != 1 || doc.Tokens[0].ID != e.tokenID || doc.Tokens[0].Role != store.RoleOperator || doc.Tokens[0].LastUsed == "" || doc.Tokens[0].ExpiresAt == "" || !doc.Tokens[0].Active {
		t.Fatalf("tokens %+v", doc.Tokens)
	}
	if len(doc.Tickets) != 1 || !doc.Tickets[0].Open || doc.Tickets[0].SupportUser != "vendor" {
		t.Fatalf("tickets %+v", doc.Tickets)
	}
	if len(doc.Flags) != 1 || doc.Flags[0].ID != e.flagID || doc.Flags[0].Role != store.RoleApprover {
		t.Fatalf("flags %+v", doc.Flags)
	}
	if len(doc.ScopeSigners) != 1 || doc.ScopeSigners[0].KeyID != e.signerID {
		t.Fatalf("scope signers %+v, want %s", doc.ScopeSigners, e.signerID)
	}
	if len(doc.NotTracked) == 0 || !strings.Contains(strings.Join(doc.NotTracked, "\n"), "sensors") {
		t.Fatalf("not tracked %v", doc.NotTracked)
	}
	var items []string
	for _, l := range doc.Lines {
		items = append(items, l.Item)
	}
	for _, want := range []string{review.ItemToken + e.tokenID, review.ItemTicket + e.ticket, review.ItemFlag + e.flagID, review.ItemUser + admin.P.UserID, review.ItemUser + e.support} {
		if !slices.Contains(items, want) {
			t.Errorf("line %s missing from %v", want, items)
		}
	}
	if len(r.Undecided) != len(doc.Lines) {
		t.Fatalf("undecided %d of %d lines", len(r.Undecided), len(doc.Lines))
	}
	if _, err := e.rv.Start(e.Ctx, admin.P, ""); !errors.Is(err, review.ErrOpen) {
		t.Fatalf("second open review: %v, want ErrOpen", err)
	}

	// Sign it (all keep), then change things and let 91 days pass.
	e.decideAll(t, admin.P, "", r)
	if _, err := e.rv.Sign(e.Ctx, admin.P, "", r.ID, e.Code(admin)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.App.Auth.CreateUser(e.Ctx, admin.P, "", auth.NewUser{Name: "newbie", Role: store.RoleOperator}, e.Code(admin)); err != nil {
		t.Fatal(err)
	}
	if err := e.App.Auth.SetRole(e.Ctx, admin.P, "", e.Users[store.RoleAuditor].P.UserID, store.RoleOperator, e.Code(admin)); err != nil {
		t.Fatal(err)
	}
	sl := e.Users[store.RoleSecurityLead]
	_, tk2, err := e.App.Auth.CreateToken(e.Ctx, sl.P, auth.NewToken{Name: "siem-pull", Role: store.RoleSecurityLead}, e.Code(sl))
	if err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(91 * 24 * time.Hour)
	r2, err := e.rv.Start(e.Ctx, sl.P, "")
	if err != nil {
		t.Fatal(err)
	}
	d2 := r2.Document
	if d2.Previous == nil || d2.Previous.ID != r.ID || d2.Previous.SHA256 == "" {
		t.Fatalf("previous %+v", d2.Previous)
	}
	if u := user(d2, "newbie"); !slices.Contains(u.Changes, review.ChangeNew) {
		t.Errorf("newbie changes %v, want new", u.Changes)
	}
	if u := user(d2, "auditor"); !slices.Contains(u.Changes, review.ChangeRoleChanged) || u.PreviousRole != store.RoleAuditor || u.Role != store.RoleOperator {
		t.Errorf("auditor %+v, want role-changed from auditor", u)
	}
	if u := user(d2, "operator"); !slices.Contains(u.Changes, review.ChangeUnused) || slices.Contains(u.Changes, review.ChangeNew) {
		t.Errorf("operator changes %v, want unused only", u.Changes)
	}
	var newTok bool
	for _, tk := range d2.Tokens {
		newTok = newTok || tk.ID == tk2.ID && slices.Contains(tk.Changes, review.ChangeNew)
		if tk.ID == e.tokenID && slices.Contains(tk.Changes, review.ChangeNew) {
			t.Error("old token marked new")
		}
	}
	if !newTok {
		t.Errorf("new token not highlighted: %+v", d2.Tokens)
	}
	s := d2.Summary
	if s.NewUsers != 1 || s.RoleChanges != 1 || s.NewTokens != 1 || s.Unused == 0 {
		t.Fatalf("summary %+v", s)
	}
	if len(d2.Flags) != 0 {
		t.Fatalf("the first review closed the flag, yet %+v", d2.Flags)
	}
}

// TestRevocationsApplyAtSigning: decisions change nothing; signing
// without step-up changes nothing; signing with step-up disables the
// user, revokes the token, closes the ticket, undoes the flagged grant and
// closes its flag, all audited in the signing transaction.
func TestRevocationsApplyAtSigning(t *testing.T) {
	e := newEnv(t)
	admin := e.Users[store.RoleAdmin]
	op := e.Users[store.RoleOperator]
	r, err := e.rv.Start(e.Ctx, admin.P, "")
	if err != nil {
		t.Fatal(err)
	}
	revoke := []string{review.ItemUser + e.Users[store.RoleAuditor].P.UserID, review.ItemToken + e.tokenID, review.ItemTicket + e.ticket, review.ItemFlag + e.flagID}
	// Undecided lines block signing.
	if _, err := e.rv.Decide(e.Ctx, admin.P, "", r.ID, []review.Decision{{Item: revoke[0], Decision: verify.DecisionRevoke}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rv.Sign(e.Ctx, admin.P, "", r.ID, e.Code(admin)); !errors.Is(err, review.ErrUndecided) {
		t.Fatalf("sign with undecided lines: %v", err)
	}
	r = e.decideAll(t, admin.P, "", r, revoke...)
	if len(r.Undecided) != 0 {
		t.Fatalf("undecided %v", r.Undecided)
	}
	stillWorks := func() {
		t.Helper()
		if _, err := e.App.Auth.AuthenticateToken(e.Ctx, e.token, auth.Client{}); err != nil {
			t.Fatalf("token before signing: %v", err)
		}
		u, _ := e.st.UserByID(e.Ctx, e.Users[store.RoleAuditor].P.UserID)
		f, _ := e.st.UserByID(e.Ctx, e.flagged)
		if u.Disabled || f.Disabled {
			t.Fatal("revoked before signing")
		}
	}
	stillWorks()

	// No step-up: a challenge naming the request, nothing applied.
	head := e.Head()
	_, err = e.rv.Sign(e.Ctx, admin.P, "", r.ID, "")
	var ch *auth.StepUpChallenge
	if !errors.As(err, &ch) || ch.Op != auth.OpReviewSign {
		t.Fatalf("sign without step-up: %v, want a challenge", err)
	}
	stillWorks()
	if len(e.Entries(head, audit.ActAuthStepUpFailed)) != 1 || len(e.Entries(head, audit.ActReviewSign)) != 0 {
		t.Fatal("refused signing not audited as auth.stepup.failed, or signed anyway")
	}
	// Answer the challenge the way a client does, then sign.
	if _, err := e.App.Auth.StepUpFor(e.Ctx, admin.P, ch.Op, ch.Request, e.Code(admin)); err != nil {
		t.Fatal(err)
	}
	head = e.Head()
	sg, err := e.rv.Sign(e.Ctx, admin.P, "", r.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if sg.Revoked != 4 || sg.FlagsClosed != 1 {
		t.Fatalf("signed %+v, want 4 revocations and 1 flag closed", sg)
	}
	if _, err := e.App.Auth.AuthenticateToken(e.Ctx, e.token, auth.Client{}); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("revoked token: %v", err)
	}
	if u, _ := e.st.UserByID(e.Ctx, e.Users[store.RoleAuditor].P.UserID); !u.Disabled {
		t.Fatal("auditor not disabled")
	}
	if u, _ := e.st.UserByID(e.Ctx, e.flagged); !u.Disabled {
		t.Fatal("user created with an unapproved privileged role not disabled")
	}
	if _, err := e.st.ActiveSupportTicket(e.Ctx, e.support, e.Clock.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("support ticket still open: %v", err)
	}
	at, _ := e.st.AuthTenant(e.Tenant)
	if fs, _ := at.ReviewFlags(e.Ctx, e.st.Reader(), true); len(fs) != 0 {
		t.Fatalf("flags still open: %+v", fs)
	}
	if u, _ := e.st.UserByID(e.Ctx, op.P.UserID); u.Disabled {
		t.Fatal("a kept user was disabled")
	}
	// Every effect is audited, with the review's id, in the signing
	// transaction: one run of consecutive entries ending in review.sign.
	es := e.Entries(head, "")
	var acts []string
	for _, en := range es {
		acts = append(acts, string(en.Action))
		switch en.Action {
		case audit.ActUserDisable, audit.ActTokenRevoke, audit.ActSupportClose:
			if apptest.Details(t, en)["review"] != r.ID {
				t.Errorf("%s without the review id: %s", en.Action, en.Details)
			}
		}
	}
	for _, want := range []audit.Action{audit.ActUserDisable, audit.ActTokenRevoke, audit.ActSupportClose, audit.ActReviewSign} {
		if !slices.Contains(acts, string(want)) {
			t.Errorf("no %s in %v", want, acts)
		}
	}
	if acts[len(acts)-1] != string(audit.ActReviewSign) {
		t.Errorf("entries %v do not end with review.sign", acts)
	}
	// Signed once: no second signing, no further decisions.
	if _, err := e.rv.Sign(e.Ctx, admin.P, "", r.ID, e.Code(admin)); !errors.Is(err, review.ErrNotOpen) {
		t.Fatalf("second signing: %v", err)
	}
	if _, err := e.rv.Decide(e.Ctx, admin.P, "", r.ID, []review.Decision{{Item: revoke[0], Decision: verify.DecisionKeep}}); !errors.Is(err, review.ErrNotOpen) {
		t.Fatalf("decide on signed review: %v", err)
	}
}

// TestRevokedRoleGrantRestoresRole: revoking a flagged role change
// restores the role the user held before it.
func TestRevokedRoleGrantRestoresRole(t *testing.T) {
	e := newEnv(t)
	admin := e.Users[store.RoleAdmin]
	op, _, err := e.App.Auth.CreateUser(e.Ctx, admin.P, "", auth.NewUser{Name: "newop", Role: store.RoleOperator}, e.Code(admin))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.App.Auth.SetRole(e.Ctx, admin.P, "", op.ID, store.RoleSecurityLead, e.Code(admin)); err != nil {
		t.Fatal(err)
	}
	at, _ := e.st.AuthTenant(e.Tenant)
	fs, _ := at.ReviewFlags(e.Ctx, e.st.Reader(), true)
	var flag string
	for _, f := range fs {
		if f.UserID == op.ID {
			flag = f.ID
		}
	}
	if flag == "" {
		t.Fatalf("no flag for the grant: %+v", fs)
	}
	r, err := e.rv.Start(e.Ctx, admin.P, "")
	if err != nil {
		t.Fatal(err)
	}
	e.decideAll(t, admin.P, "", r, review.ItemFlag+flag)
	if _, err := e.rv.Sign(e.Ctx, admin.P, "", r.ID, e.Code(admin)); err != nil {
		t.Fatal(err)
	}
	if u, _ := e.st.UserByID(e.Ctx, op.ID); u.Role != store.RoleOperator || u.Disabled {
		t.Fatalf("after revoking the grant: role %s disabled %v, want operator", u.Role, u.Disabled)
	}
}

// TestApplianceReview: an appliance admin reviews the appliance admins;
// revoking another admin disables them at signing; nobody can revoke
// their own account.
func TestApplianceReview(t *testing.T) {
	e := newEnv(t)
	aa := e.Users["appliance_admin"]
	r, err := e.rv.Start(e.Ctx, aa.P, "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Tenant != "" || user(r.Document, "root").ID == "" || user(r.Document, "appliance_admin").ID == "" || user(r.Document, "admin").ID != "" {
		t.Fatalf("appliance review users %+v", r.Document.Users)
	}
	if _, err := e.rv.Decide(e.Ctx, aa.P, "", r.ID, []review.Decision{{Item: review.ItemUser + aa.P.UserID, Decision: verify.DecisionRevoke}}); !errors.Is(err, review.ErrInvalid) {
		t.Fatalf("self-revocation: %v, want ErrInvalid", err)
	}
	root := user(r.Document, "root").ID
	e.decideAll(t, aa.P, "", r, review.ItemUser+root)
	if _, err := e.rv.Sign(e.Ctx, aa.P, "", r.ID, e.Code(aa)); err != nil {
		t.Fatal(err)
	}
	if u, _ := e.st.UserByID(e.Ctx, root); !u.Disabled {
		t.Fatal("root not disabled")
	}
	// The tenant admin cannot see the appliance review.
	if _, err := e.rv.Show(e.Ctx, e.Users[store.RoleAdmin].P, "", r.ID); !errors.Is(err, review.ErrNotFound) {
		t.Fatalf("tenant admin reads the appliance review: %v", err)
	}
}

// TestSignedReviewVerifies: the downloaded review verifies offline with
// the report key; any change fails.
func TestSignedReviewVerifies(t *testing.T) {
	e := newEnv(t)
	admin := e.Users[store.RoleAdmin]
	r, err := e.rv.Start(e.Ctx, admin.P, "")
	if err != nil {
		t.Fatal(err)
	}
	e.decideAll(t, admin.P, "", r, review.ItemToken+e.tokenID)
	if _, err := e.rv.Sign(e.Ctx, admin.P, "", r.ID, e.Code(admin)); err != nil {
		t.Fatal(err)
	}
	aud := e.Users[store.RoleAuditor]
	file, ct, err := e.rv.Download(e.Ctx, aud.P, "", r.ID, "json")
	if err != nil || ct != "application/json" {
		t.Fatal(err, ct)
	}
	pub := reportPub(t, e.Fixture)
	res, err := verify.Verify(file, verify.Options{ReportKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	if res.Kind != verify.KindAccessReview || res.Review == nil || res.Review.ID != r.ID || res.Review.Summary.Revoke != 1 {
		t.Fatalf("result %+v", res)
	}
	for _, f := range []string{"html", "pdf"} {
		b, _, err := e.rv.Download(e.Ctx, aud.P, "", r.ID, f)
		if err != nil || len(b) < 500 {
			t.Fatalf("%s: %d bytes, %v", f, len(b), err)
		}
		if f == "pdf" && !strings.HasPrefix(string(b), "%PDF-") {
			t.Fatal("not a PDF")
		}
		if f == "html" && !strings.Contains(string(b), e.tokenID) {
			t.Fatal("HTML lacks the token line")
		}
	}
	if _, _, err := e.rv.Download(e.Ctx, aud.P, "", r.ID, "docx"); !errors.Is(err, review.ErrInvalid) {
		t.Fatalf("unknown format: %v", err)
	}
	tamperTable(t, file, pub)
}

// TestOverdueAlert: with an injected clock, an overdue review raises one
// review.overdue entry per tenant (and the appliance) per overdue period;
// signing moves the due date.
func TestOverdueAlert(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	check := func(want int) {
		t.Helper()
		head := e.Head()
		n, err := e.rv.CheckOverdue(ctx)
		if err != nil || n != want {
			t.Fatalf("CheckOverdue = %d, %v; want %d", n, err, want)
		}
		if got := len(e.Entries(head, audit.ActReviewOverdue)); got != want {
			t.Fatalf("%d review.overdue entries, want %d", got, want)
		}
	}
	check(0)
	sched, err := e.rv.Schedule(ctx)
	if err != nil || len(sched) != 3 || sched[0].Tenant != "" || sched[0].Overdue {
		t.Fatalf("schedule %+v, %v", sched, err)
	}
	interval := e.rv.Interval()
	e.Clock.Advance(interval + time.Minute)
	check(3) // alpha, bravo, the appliance
	check(0) // once per period
	e.Clock.Advance(interval / 2)
	check(0)
	admin := e.Users[store.RoleAdmin]
	d, err := e.rv.Due(ctx, admin.P, "")
	if err != nil || !d.Overdue || d.Tenant != e.Tenant {
		t.Fatalf("due %+v, %v", d, err)
	}
	// alpha signs a review: its due date moves a full interval on.
	r, err := e.rv.Start(ctx, admin.P, "")
	if err != nil {
		t.Fatal(err)
	}
	e.decideAll(t, admin.P, "", r)
	if _, err := e.rv.Sign(ctx, admin.P, "", r.ID, e.Code(admin)); err != nil {
		t.Fatal(err)
	}
	if d, _ = e.rv.Due(ctx, admin.P, ""); d.Overdue || !d.DueAt.Equal(d.LastSigned.Add(interval)) {
		t.Fatalf("due after signing %+v", d)
	}
	e.Clock.Advance(interval / 2)
	check(2) // bravo and the appliance, in their second overdue period
	es := e.Entries(0, audit.ActReviewOverdue)
	if got := apptest.Details(t, es[len(es)-1]); got["overdue_periods"] != float64(2) {
		t.Fatalf("details %v", got)
	}
}

// TestRoles: who may read, start, decide and sign.
func TestRoles(t *testing.T) {
	e := newEnv(t)
	admin, sl := e.Users[store.RoleAdmin], e.Users[store.RoleSecurityLead]
	r, err := e.rv.Start(e.Ctx, sl.P, "")
	if err != nil {
		t.Fatal(err)
	}
	read := func(p auth.Principal) error { _, err := e.rv.Show(e.Ctx, p, "", r.ID); return err }
	list := func(p auth.Principal) error { _, err := e.rv.List(e.Ctx, p, ""); return err }
	due := func(p auth.Principal) error { _, err := e.rv.Due(e.Ctx, p, ""); return err }
	start := func(p auth.Principal) error { _, err := e.rv.Start(e.Ctx, p, ""); return err }
	decide := func(p auth.Principal) error {
		_, err := e.rv.Decide(e.Ctx, p, "", r.ID, []review.Decision{{Item: review.ItemToken + e.tokenID, Decision: verify.DecisionKeep}})
		return err
	}
	sign := func(p auth.Principal) error { _, err := e.rv.Sign(e.Ctx, p, "", r.ID, ""); return err }
	cases := []struct {
		name string
		role string
		op   func(auth.Principal) error
		ok   bool
	}{
		{"auditor reads", store.RoleAuditor, read, true},
		{"auditor lists", store.RoleAuditor, list, true},
		{"auditor sees due", store.RoleAuditor, due, true},
		{"auditor cannot start", store.RoleAuditor, start, false},
		{"auditor cannot decide", store.RoleAuditor, decide, false},
		{"auditor cannot sign", store.RoleAuditor, sign, false},
		{"operator cannot read", store.RoleOperator, read, false},
		{"operator cannot decide", store.RoleOperator, decide, false},
		{"operator cannot sign", store.RoleOperator, sign, false},
		{"approver cannot read", store.RoleApprover, read, false},
		{"admin decides", store.RoleAdmin, decide, true},
		{"security lead decides", store.RoleSecurityLead, decide, true},
		{"other tenant's admin cannot read", "other_admin", read, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.op(e.Users[c.role].P)
			if c.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !c.ok && !errors.Is(err, auth.ErrForbidden) && !errors.Is(err, review.ErrNotFound) {
				t.Fatalf("got %v, want forbidden or not found", err)
			}
		})
	}
	// The admin reading another tenant's id: audited as access.denied.
	head := e.Head()
	if _, err := e.rv.Show(e.Ctx, e.Users["other_admin"].P, "", r.ID); !errors.Is(err, review.ErrNotFound) {
		t.Fatalf("cross-tenant read: %v", err)
	}
	if len(e.Entries(head, audit.ActAccessDenied)) != 1 {
		t.Fatal("cross-tenant read not audited")
	}
	_ = admin
}

// TestDecideRejectsBadInput: unknown lines, bad decisions, long notes and
// duplicates are refused and change nothing.
func TestDecideRejectsBadInput(t *testing.T) {
	e := newEnv(t)
	admin := e.Users[store.RoleAdmin]
	r, err := e.rv.Start(e.Ctx, admin.P, "")
	if err != nil {
		t.Fatal(err)
	}
	item := r.Document.Lines[0].Item
	cases := []struct {
		name string
		ds   []review.Decision
	}{
		{"none", nil},
		{"too many", make([]review.Decision, review.MaxDecisions+1)},
		{"unknown line", []review.Decision{{Item: "user:u_nobody", Decision: verify.DecisionKeep}}},
		{"bad decision", []review.Decision{{Item: item, Decision: "maybe"}}},
		{"long note", []review.Decision{{Item: item, Decision: verify.DecisionKeep, Note: strings.Repeat("x", review.MaxNote+1)}}},
		{"twice", []review.Decision{{Item: item, Decision: verify.DecisionKeep}, {Item: item, Decision: verify.DecisionRevoke}}},
		{"own account", []review.Decision{{Item: review.ItemUser + admin.P.UserID, Decision: verify.DecisionRevoke}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := e.rv.Decide(e.Ctx, admin.P, "", r.ID, c.ds); !errors.Is(err, review.ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
		})
	}
	got, err := e.rv.Show(e.Ctx, admin.P, "", r.ID)
	if err != nil || len(got.Undecided) != len(got.Document.Lines) {
		t.Fatalf("a refused decision was stored: %v %v", got.Undecided, err)
	}
}

// TestTracking: a completed login records the last login; a token's use
// is written at most once a minute.
func TestTracking(t *testing.T) {
	e := newEnv(t)
	op := e.Users[store.RoleOperator]
	last, ip, err := e.st.LastLogin(e.Ctx, e.st.Reader(), op.P.UserID)
	if err != nil || last.IsZero() || ip != "192.0.2.7" {
		t.Fatalf("last login %v %q %v", last, ip, err)
	}
	at, _ := e.st.AuthTenant(e.Tenant)
	used := func() time.Time {
		tk, err := at.Token(e.Ctx, e.tokenID)
		if err != nil {
			t.Fatal(err)
		}
		return tk.LastUsedAt
	}
	if used().IsZero() {
		t.Fatal("token use not recorded")
	}
	e.Clock.Advance(time.Minute)
	if _, err := e.App.Auth.AuthenticateToken(e.Ctx, e.token, auth.Client{}); err != nil {
		t.Fatal(err)
	}
	first := used()
	if !first.Equal(e.Clock.Now()) {
		t.Fatal("token use not recorded")
	}
	e.Clock.Advance(30 * time.Second)
	if _, err := e.App.Auth.AuthenticateToken(e.Ctx, e.token, auth.Client{}); err != nil {
		t.Fatal(err)
	}
	if !used().Equal(first) {
		t.Fatal("a use within the minute was written")
	}
	e.Clock.Advance(31 * time.Second)
	if _, err := e.App.Auth.AuthenticateToken(e.Ctx, e.token, auth.Client{}); err != nil {
		t.Fatal(err)
	}
	if !used().After(first) {
		t.Fatal("a use after the minute was not written")
	}
}

// TestReviewSecurityKeys: the snapshot lists each user's security keys
// with their last use and the users' MFA state; a revoked key is removed
// exactly at signing, audited as auth.key.remove with the review's id, and
// the signed document verifies offline.
func TestReviewSecurityKeys(t *testing.T) {
	e := newEnv(t)
	f := e.Fixture
	admin, lead := f.Users[store.RoleAdmin], f.Users[store.RoleSecurityLead]
	origin := f.App.Auth.KeyConfig().Origins[0]
	k := keytest.New(origin)
	kc, err := f.App.Auth.BeginKeyRegistration(f.Ctx, lead.P, "lead's key", f.Code(lead))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := k.Create(kc.Options)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := f.App.Auth.FinishKeyRegistration(f.Ctx, lead.P, kc.ID, resp)
	if err != nil {
		t.Fatal(err)
	}
	// Use it once (a step-up), so its last use is known.
	f.Clock.Advance(time.Minute)
	used := f.Clock.Now().UTC().Format(time.RFC3339)
	req := auth.OpRequest(auth.OpTokenCreate, f.Tenant, map[string]string{"name": "x"})
	sc, err := f.App.Auth.BeginKeyStepUp(f.Ctx, lead.P, auth.OpTokenCreate, "", req)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err = k.Get(sc.Options); err != nil {
		t.Fatal(err)
	}
	if _, err := f.App.Auth.FinishKeyStepUp(f.Ctx, lead.P, auth.OpTokenCreate, "", req, sc.ID, resp); err != nil {
		t.Fatal(err)
	}

	r, err := e.rv.Start(f.Ctx, admin.P, "")
	if err != nil {
		t.Fatal(err)
	}
	doc := r.Document
	if len(doc.SecurityKeys) != 1 {
		t.Fatalf("security keys %+v", doc.SecurityKeys)
	}
	rk := doc.SecurityKeys[0]
	if rk.ID != sk.ID || rk.UserID != lead.P.UserID || rk.Name != "lead's key" || rk.LastUsed != used || rk.CloneWarning {
		t.Fatalf("listed key %+v, want last use %s", rk, used)
	}
	if u := user(doc, lead.P.Name); u.SecurityKeys != 1 || !u.TOTP || u.KeyRequired {
		t.Fatalf("lead's MFA state %+v", u)
	}
	if strings.Contains(strings.Join(doc.NotTracked, "\n"), "security keys") {
		t.Fatalf("security keys still listed as not tracked: %v", doc.NotTracked)
	}
	item := review.ItemSecurityKey + sk.ID
	if !slices.ContainsFunc(doc.Lines, func(l verify.ReviewLine) bool { return l.Item == item }) {
		t.Fatalf("no line %s", item)
	}

	// Decided revoke: nothing happens until the review is signed.
	r = e.decideAll(t, admin.P, "", r, item)
	if ks, _ := f.App.Auth.ListKeys(f.Ctx, lead.P); len(ks) != 1 {
		t.Fatalf("key removed before signing: %v", ks)
	}
	mark := f.Head()
	signed, err := e.rv.Sign(f.Ctx, admin.P, "", r.ID, f.Code(admin))
	if err != nil {
		t.Fatal(err)
	}
	if ks, _ := f.App.Auth.ListKeys(f.Ctx, lead.P); len(ks) != 0 {
		t.Fatalf("revoked key still registered: %v", ks)
	}
	es := f.Entries(mark, audit.ActAuthKeyRemove)
	if len(es) != 1 || es[0].Object != sk.ID || !strings.Contains(string(es[0].Details), r.ID) {
		t.Fatalf("key removal entries %v", es)
	}
	res, err := verify.Verify(signed.File, verify.Options{ReportKey: reportPub(t, f)})
	if err != nil || res.Review == nil || len(res.Review.SecurityKeys) != 1 {
		t.Fatalf("verify signed review: %v", err)
	}
}
