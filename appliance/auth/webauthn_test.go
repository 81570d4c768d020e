package auth

import (
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"firewalliq/appliance/auth/keytest"
	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// origin is the fixture's default relying party origin (rp id localhost).
const origin = "https://localhost"

// registerKey registers a new software key for p (step-up with u's TOTP)
// and returns it with its record.
func (f *fixture) registerKey(u testUser, p Principal, name string) (*keytest.Key, SecurityKey) {
	f.t.Helper()
	k := keytest.New(origin)
	kc, err := f.svc.BeginKeyRegistration(f.ctx, p, name, f.code(u))
	if err != nil {
		f.t.Fatalf("begin registration: %v", err)
	}
	resp, err := k.Create(kc.Options)
	if err != nil {
		f.t.Fatal(err)
	}
	sk, err := f.svc.FinishKeyRegistration(f.ctx, p, kc.ID, resp)
	if err != nil {
		f.t.Fatalf("finish registration: %v", err)
	}
	return k, sk
}

// keyLogin signs u in with password and key k.
func (f *fixture) keyLogin(u testUser, k *keytest.Key) (Principal, Login, error) {
	f.t.Helper()
	l, err := f.svc.Login(f.ctx, u.Name, u.password, client, "")
	if err != nil {
		f.t.Fatalf("login %s: %v", u.Name, err)
	}
	kc, err := f.svc.BeginKeyLogin(f.ctx, l.Token, client)
	if err != nil {
		return Principal{}, Login{}, err
	}
	resp, err := k.Get(kc.Options)
	if err != nil {
		f.t.Fatal(err)
	}
	l, err = f.svc.FinishKeyLogin(f.ctx, l.Token, kc.ID, resp, client)
	if err != nil {
		return Principal{}, Login{}, err
	}
	p, err := f.svc.Authenticate(f.ctx, Request{SessionToken: l.Token, Method: "GET", Client: client})
	return p, l, err
}

// keyStepUp steps p up with k for op on request.
func (f *fixture) keyStepUp(p Principal, k *keytest.Key, op Operation, request []byte) (StepUpGrant, error) {
	f.t.Helper()
	kc, err := f.svc.BeginKeyStepUp(f.ctx, p, op, "", request)
	if err != nil {
		return StepUpGrant{}, err
	}
	resp, err := k.Get(kc.Options)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.svc.FinishKeyStepUp(f.ctx, p, op, "", request, kc.ID, resp)
}

// TestSecurityKeyStory registers a key, signs in with it, steps up with
// it, and removes it: every step with real signatures, audited, and last
// use tracked.
func TestSecurityKeyStory(t *testing.T) {
	f := newFixture(t)
	u := f.user(f.a, "kim", store.RoleSecurityLead)
	p, _ := f.login(u)
	mark := f.head()
	k, sk := f.registerKey(u, p, "blue key")
	if sk.Name != "blue key" || sk.ID == "" || !sk.LastUsedAt.IsZero() {
		t.Fatalf("registered key: %+v", sk)
	}
	reg := f.expectAudit(audit.ActAuthKeyRegister, mark, 1)[0]
	if reg.Object != sk.ID || details(t, reg)["name"] != "blue key" || reg.ActorID != u.ID || reg.Tenant != f.a {
		t.Fatalf("register entry: %+v %s", reg, reg.Details)
	}
	f.expectAudit(audit.ActAuthStepUp, mark, 1)

	// Login with the key as the second factor.
	f.clock.advance(time.Minute)
	mark = f.head()
	kp, _, err := f.keyLogin(u, k)
	if err != nil {
		t.Fatalf("key login: %v", err)
	}
	if kp.UserID != u.ID {
		t.Fatalf("key login principal %+v", kp)
	}
	use := f.expectAudit(audit.ActAuthKeyUse, mark, 1)[0]
	if use.Object != sk.ID || details(t, use)["purpose"] != "login" {
		t.Fatalf("use entry %s", use.Details)
	}
	var full bool
	for _, e := range f.entries(audit.ActAuthLogin, mark) {
		full = full || details(t, e)["factor"] == "security key" && details(t, e)["complete"] == true
	}
	if !full {
		t.Fatal("no completed auth.login with factor security key")
	}
	keys, err := f.svc.ListKeys(f.ctx, kp)
	if err != nil || len(keys) != 1 {
		t.Fatalf("list: %v %v", keys, err)
	}
	if !keys[0].LastUsedAt.Equal(f.clock.now()) || keys[0].LastUsedIP != client.IP || keys[0].SignCount != 1 {
		t.Fatalf("last use not tracked: %+v", keys[0])
	}

	// Step-up with the key, spent by the operation like a TOTP grant.
	mark = f.head()
	req := tokenRequest(kp, "ci")
	if _, err := f.keyStepUp(kp, k, OpTokenCreate, req); err != nil {
		t.Fatalf("key step-up: %v", err)
	}
	if _, _, err := f.svc.CreateToken(f.ctx, kp, NewToken{Name: "ci", Role: kp.Role}, ""); err != nil {
		t.Fatalf("create token with the key's grant: %v", err)
	}
	su := f.expectAudit(audit.ActAuthStepUp, mark, 1)[0]
	if details(t, su)["factor"] != "security key" {
		t.Fatalf("step-up entry %s", su.Details)
	}
	// The grant is spent: a second call needs a new step-up.
	if _, _, err := f.svc.CreateToken(f.ctx, kp, NewToken{Name: "ci", Role: kp.Role}, ""); !errors.Is(err, ErrStepUpRequired) {
		t.Fatalf("second create: %v", err)
	}

	// Removal with a key step-up.
	mark = f.head()
	if _, err := f.keyStepUp(kp, k, OpKeyRemove, RemoveKeyRequest(kp, sk.ID)); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.RemoveKey(f.ctx, kp, sk.ID, ""); err != nil {
		t.Fatalf("remove: %v", err)
	}
	f.expectAudit(audit.ActAuthKeyRemove, mark, 1)
	if _, err := f.svc.BeginKeyLogin(f.ctx, mustPending(f, u), client); !errors.Is(err, ErrInvalid) {
		t.Fatalf("key login without keys: %v", err)
	}
}

// mustPending returns a session token at stage password for u.
func mustPending(f *fixture, u testUser) string {
	f.t.Helper()
	l, err := f.svc.Login(f.ctx, u.Name, u.password, client, "")
	if err != nil {
		f.t.Fatal(err)
	}
	return l.Token
}

// TestSecurityKeyRefusals: answers that must not pass, each refused as a
// wrong code (counted towards the lockout) and audited as auth.key.failed.
func TestSecurityKeyRefusals(t *testing.T) {
	// Ceremonies live a minute here, so one expires before the pending
	// login (5 minutes) does.
	f := newFixture(t, func(p *Params) { p.KeyCeremonyTTL = time.Minute })
	u := f.user(f.a, "lee", store.RoleOperator)
	other := f.user(f.b, "oli", store.RoleOperator)
	p, _ := f.login(u)
	k, _ := f.registerKey(u, p, "lee's key")
	op, _ := f.login(other)
	ok, _ := f.registerKey(other, op, "oli's key")

	tests := []struct {
		name string
		run  func() error
	}{
		{"another origin", func() error {
			evil := k.Clone()
			evil.Origin = "https://evil.example"
			_, _, err := f.keyLogin(u, evil)
			return err
		}},
		{"another user's key", func() error {
			ok.AnyCredential = true
			_, _, err := f.keyLogin(u, ok)
			return err
		}},
		{"replayed answer", func() error {
			tok := mustPending(f, u)
			kc, err := f.svc.BeginKeyLogin(f.ctx, tok, client)
			if err != nil {
				return err
			}
			resp, _ := k.Get(kc.Options)
			if _, err := f.svc.FinishKeyLogin(f.ctx, tok, kc.ID, resp, client); err != nil {
				return err
			}
			tok2 := mustPending(f, u)
			_, err = f.svc.FinishKeyLogin(f.ctx, tok2, kc.ID, resp, client)
			return err
		}},
		{"ceremony of another session", func() error {
			tok := mustPending(f, u)
			kc, err := f.svc.BeginKeyLogin(f.ctx, tok, client)
			if err != nil {
				return err
			}
			resp, _ := k.Get(kc.Options)
			_, err = f.svc.FinishKeyLogin(f.ctx, mustPending(f, u), kc.ID, resp, client)
			return err
		}},
		{"expired ceremony", func() error {
			tok := mustPending(f, u)
			kc, err := f.svc.BeginKeyLogin(f.ctx, tok, client)
			if err != nil {
				return err
			}
			resp, _ := k.Get(kc.Options)
			f.clock.advance(time.Minute)
			_, err = f.svc.FinishKeyLogin(f.ctx, tok, kc.ID, resp, client)
			return err
		}},
		{"step-up ceremony for another request", func() error {
			kc, err := f.svc.BeginKeyStepUp(f.ctx, p, OpTokenCreate, "", tokenRequest(p, "a"))
			if err != nil {
				return err
			}
			resp, _ := k.Get(kc.Options)
			_, err = f.svc.FinishKeyStepUp(f.ctx, p, OpTokenCreate, "", tokenRequest(p, "b"), kc.ID, resp)
			return err
		}},
		{"other user finishes my registration", func() error {
			kc, err := f.svc.BeginKeyRegistration(f.ctx, p, "second", f.code(u))
			if err != nil {
				return err
			}
			resp, _ := keytest.New(origin).Create(kc.Options)
			_, err = f.svc.FinishKeyRegistration(f.ctx, op, kc.ID, resp)
			return err
		}},
		{"tampered signature", func() error {
			tok := mustPending(f, u)
			kc, err := f.svc.BeginKeyLogin(f.ctx, tok, client)
			if err != nil {
				return err
			}
			resp, _ := k.Get(kc.Options)
			var m map[string]any
			_ = json.Unmarshal(resp, &m)
			r := m["response"].(map[string]any)
			r["clientDataJSON"] = b64url(`{"type":"webauthn.get","challenge":"AAAA","origin":"https://localhost","crossOrigin":false}`)
			resp, _ = json.Marshal(m)
			_, err = f.svc.FinishKeyLogin(f.ctx, tok, kc.ID, resp, client)
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.clock.advance(time.Second)
			mark := f.head()
			err := tc.run()
			if !errors.Is(err, ErrInvalidCode) {
				t.Fatalf("err = %v, want ErrInvalidCode", err)
			}
			if len(f.entries(audit.ActAuthKeyFailed, mark)) == 0 {
				t.Fatalf("no auth.key.failed entry")
			}
			// Reset the failure count for the next case.
			if _, _, err := f.keyLogin(u, k); err != nil {
				t.Fatalf("good key login after refusal: %v", err)
			}
		})
	}
}

// TestSecurityKeyClone: an answer whose signature counter does not
// advance is refused, the key flagged, auth.key.clone written.
func TestSecurityKeyClone(t *testing.T) {
	f := newFixture(t)
	u := f.user(f.a, "cleo", store.RoleOperator)
	p, _ := f.login(u)
	k, sk := f.registerKey(u, p, "original")
	clone := k.Clone()
	if _, _, err := f.keyLogin(u, k); err != nil {
		t.Fatal(err)
	}
	mark := f.head()
	_, _, err := f.keyLogin(u, clone)
	if !errors.Is(err, ErrKeyCloned) {
		t.Fatalf("clone login: %v", err)
	}
	f.expectAudit(audit.ActAuthKeyClone, mark, 1)
	keys, err := f.svc.ListKeys(f.ctx, p)
	if err != nil || len(keys) != 1 || !keys[0].CloneWarning || keys[0].ID != sk.ID {
		t.Fatalf("key not flagged: %+v %v", keys, err)
	}
}

// TestSecurityKeyPolicy: with keys required for security leads, a lead
// without a key may only register one; once registered, TOTP and
// recovery codes are refused at login and step-up, and the key works.
// Other roles are unaffected.
func TestSecurityKeyPolicy(t *testing.T) {
	f := newFixture(t)
	root := f.user("", "root", store.RoleAdmin)
	lead := f.user(f.a, "sal", store.RoleSecurityLead)
	oper := f.user(f.a, "oto", store.RoleOperator)
	rp, _ := f.login(root)
	tenantAdmin := f.user(f.a, "tad", store.RoleAdmin)
	tp, _ := f.login(tenantAdmin)
	if err := f.svc.SetKeyPolicy(f.ctx, tp, KeyPolicy{SecurityLeads: true}, f.code(tenantAdmin)); !errors.Is(err, ErrForbidden) {
		t.Fatalf("tenant admin set the policy: %v", err)
	}
	mark := f.head()
	if err := f.svc.SetKeyPolicy(f.ctx, rp, KeyPolicy{SecurityLeads: true}, f.code(root)); err != nil {
		t.Fatal(err)
	}
	pe := f.expectAudit(audit.ActAuthKeyPolicy, mark, 1)[0]
	if details(t, pe)["security_leads"] != true || details(t, pe)["appliance_admins"] != false {
		t.Fatalf("policy entry %s", pe.Details)
	}
	if kp, err := f.svc.KeyPolicy(f.ctx, rp); err != nil || !kp.SecurityLeads || kp.ApplianceAdmins {
		t.Fatalf("policy read: %+v %v", kp, err)
	}

	// Without a key: TOTP login works, but only key registration is open.
	lp, _ := f.login(lead)
	if !lp.MustRegisterKey {
		t.Fatal("lead without a key not restricted")
	}
	if _, err := f.svc.Authorize(f.ctx, lp, OpScopeRead, ""); !errors.Is(err, ErrKeyRequired) || !errors.Is(err, ErrForbidden) {
		t.Fatalf("restricted lead read scopes: %v", err)
	}
	k, _ := f.registerKey(lead, lp, "lead key")

	// With a key: TOTP and recovery codes are refused, the key works.
	tok := mustPending(f, lead)
	if _, err := f.svc.VerifyTOTP(f.ctx, tok, f.code(lead), client); !errors.Is(err, ErrKeyRequired) {
		t.Fatalf("TOTP login of a key-required lead: %v", err)
	}
	if _, err := f.svc.UseRecoveryCode(f.ctx, tok, "aaaaa-bbbbb", client); !errors.Is(err, ErrKeyRequired) {
		t.Fatalf("recovery login of a key-required lead: %v", err)
	}
	kp, _, err := f.keyLogin(lead, k)
	if err != nil {
		t.Fatalf("key login: %v", err)
	}
	if kp.MustRegisterKey {
		t.Fatal("lead with a key still restricted")
	}
	if _, err := f.svc.Authorize(f.ctx, kp, OpScopeRead, ""); err != nil {
		t.Fatal(err)
	}
	req := tokenRequest(kp, "x")
	if _, err := f.svc.StepUp(f.ctx, kp, OpTokenCreate, "", req, f.code(lead)); !errors.Is(err, ErrKeyRequired) {
		t.Fatalf("TOTP step-up of a key-required lead: %v", err)
	}
	if _, err := f.keyStepUp(kp, k, OpTokenCreate, req); err != nil {
		t.Fatalf("key step-up: %v", err)
	}
	// A TOTP reset is no way around the key: the next login still asks
	// for the second factor at stage password, the key works, and a new
	// TOTP cannot be enrolled.
	if err := f.st.InTx(f.ctx, func(tx *sql.Tx) error { return f.st.SetUserTOTP(f.ctx, tx, lead.ID, nil, false) }); err != nil {
		t.Fatal(err)
	}
	l, err := f.svc.Login(f.ctx, lead.Name, lead.password, client, "")
	if err != nil || l.Stage != "password" {
		t.Fatalf("login after TOTP reset: stage %q, %v", l.Stage, err)
	}
	if _, _, err := f.keyLogin(lead, k); err != nil {
		t.Fatalf("key login after TOTP reset: %v", err)
	}
	// Operators are not affected.
	if op, _ := f.login(oper); op.MustRegisterKey {
		t.Fatal("operator restricted")
	}
}

// TestSecurityKeyIsolation: keys are per user; another user's (or
// tenant's) key id cannot be removed, and the attempt is audited.
func TestSecurityKeyIsolation(t *testing.T) {
	f := newFixture(t)
	a := f.user(f.a, "ada", store.RoleAdmin)
	b := f.user(f.b, "bob", store.RoleAdmin)
	ap, _ := f.login(a)
	bp, _ := f.login(b)
	_, ak := f.registerKey(a, ap, "ada's")
	mark := f.head()
	if err := f.svc.RemoveKey(f.ctx, bp, ak.ID, f.code(b)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("bob removed ada's key: %v", err)
	}
	if den := f.entries(audit.ActAccessDenied, mark); len(den) != 1 || den[0].ActorID != b.ID {
		t.Fatalf("cross-user removal not audited: %v", den)
	}
	if ks, _ := f.svc.ListKeys(f.ctx, bp); len(ks) != 0 {
		t.Fatalf("bob sees keys: %v", ks)
	}
	if ks, _ := f.svc.ListKeys(f.ctx, ap); len(ks) != 1 {
		t.Fatalf("ada's key gone: %v", ks)
	}
}

func b64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// tokenRequest is the canonical request CreateToken steps up for (a
// token of p's role with the default lifetime).
func tokenRequest(p Principal, name string) []byte {
	return OpRequest(OpTokenCreate, p.TenantID, map[string]string{"name": name, "role": p.Role, "ttl": DefaultParams().TokenDefaultTTL.String()})
}

// TestSecurityKeyLimitAtFinish: MaxKeys holds even when several
// registrations were begun before any of them finished (each begin saw
// room for one more key).
func TestSecurityKeyLimitAtFinish(t *testing.T) {
	f := newFixture(t, func(p *Params) { p.KeyCeremonyTTL = time.Hour })
	u := f.user(f.a, "max", store.RoleOperator)
	p, _ := f.login(u)
	for i := range MaxKeys - 1 {
		f.registerKey(u, p, "key "+string(rune('a'+i)))
	}
	type begun struct {
		kc KeyCeremony
		k  *keytest.Key
	}
	var bs []begun
	for _, name := range []string{"late 1", "late 2"} {
		kc, err := f.svc.BeginKeyRegistration(f.ctx, p, name, f.code(u))
		if err != nil {
			t.Fatalf("begin %s: %v", name, err)
		}
		bs = append(bs, begun{kc, keytest.New(origin)})
	}
	var errs []error
	for _, b := range bs {
		resp, err := b.k.Create(b.kc.Options)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.svc.FinishKeyRegistration(f.ctx, p, b.kc.ID, resp)
		errs = append(errs, err)
	}
	if errs[0] != nil {
		t.Fatalf("the %dth key: %v", MaxKeys, errs[0])
	}
	if !errors.Is(errs[1], ErrInvalid) {
		t.Errorf("key %d: err = %v, want ErrInvalid", MaxKeys+1, errs[1])
	}
	ks, err := f.svc.ListKeys(f.ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) != MaxKeys {
		t.Errorf("%d keys registered, want at most %d", len(ks), MaxKeys)
	}
}

// TestSecurityKeyPolicyTokens: an API token made before keys were
// required is held to what its owner's session would be: while the owner
// has no key it opens nothing, and it works again once the owner has one.
func TestSecurityKeyPolicyTokens(t *testing.T) {
	f := newFixture(t)
	root := f.user("", "root", store.RoleAdmin)
	lead := f.user(f.a, "sal", store.RoleSecurityLead)
	rp, _ := f.login(root)
	lp, _ := f.login(lead)
	secret, _, err := f.svc.CreateToken(f.ctx, lp, NewToken{Name: "ci", Role: store.RoleSecurityLead}, f.code(lead))
	if err != nil {
		t.Fatal(err)
	}
	tp, err := f.svc.AuthenticateToken(f.ctx, secret, client)
	if err != nil || tp.MustRegisterKey {
		t.Fatalf("token before the policy: %+v %v", tp, err)
	}
	if err := f.svc.SetKeyPolicy(f.ctx, rp, KeyPolicy{SecurityLeads: true}, f.code(root)); err != nil {
		t.Fatal(err)
	}
	tp, err = f.svc.AuthenticateToken(f.ctx, secret, client)
	if err != nil || !tp.MustRegisterKey {
		t.Fatalf("token of a lead without a key not restricted: %+v %v", tp, err)
	}
	if _, err := f.svc.Authorize(f.ctx, tp, OpScopeRead, ""); !errors.Is(err, ErrKeyRequired) {
		t.Fatalf("restricted token read scopes: %v", err)
	}
	lp, _ = f.login(lead)
	f.registerKey(lead, lp, "lead key")
	tp, err = f.svc.AuthenticateToken(f.ctx, secret, client)
	if err != nil || tp.MustRegisterKey {
		t.Fatalf("token after the owner registered a key: %+v %v", tp, err)
	}
	if _, err := f.svc.Authorize(f.ctx, tp, OpScopeRead, ""); err != nil {
		t.Fatal(err)
	}
}
