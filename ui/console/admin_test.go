package console_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"testing"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/auth/keytest"
	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// auditHead is the newest audit entry's seq, read through the audit
// service as the appliance admin signed in on root.
func (f *fixture) auditHead(root *browser) int64 {
	f.t.Helper()
	es := f.auditSince(root, 0)
	if len(es) == 0 {
		return 0
	}
	return es[len(es)-1].Seq
}

// auditSince returns every audit entry after seq, oldest first (at most
// 20 pages).
func (f *fixture) auditSince(root *browser, after int64) []audit.Entry {
	f.t.Helper()
	p := f.principalOf(root)
	var out []audit.Entry
	for range 20 {
		pg, err := f.app.Audit.Entries(f.ctx, p, "", after, 1000)
		if err != nil {
			f.t.Fatal(err)
		}
		out = append(out, pg.Entries...)
		if pg.Next == 0 || len(pg.Entries) == 0 {
			break
		}
		after = pg.Next
	}
	return out
}

// actionsOf lists the entries' actions in order.
func actionsOf(es []audit.Entry) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, string(e.Action))
	}
	return out
}

// wantActions fails unless the entries after mark hold every action in
// acts.
func (f *fixture) wantActions(root *browser, mark int64, acts ...audit.Action) {
	f.t.Helper()
	got := actionsOf(f.auditSince(root, mark))
	for _, a := range acts {
		if !slices.Contains(got, string(a)) {
			f.t.Fatalf("no %s entry after %d; got %v", a, mark, got)
		}
	}
}

// TestApprovalDenyStepUp: denying a request in the approvals inbox asks
// for a step-up bound to the request (approval.deny), exactly as approving
// does; a wrong code is refused and the request stays pending; the
// service writes approval.deny; a role that may not deny is refused.
func TestApprovalDenyStepUp(t *testing.T) {
	f := newFixture(t)
	root, rootSecret, _ := f.firstRun("root", f.init.OneTimePassword)
	tenant := f.init.TenantID
	ann, annS, _ := f.firstRun("ann", f.addUser(root, rootSecret, tenant, "ann", store.RoleApprover))
	aud, _, _ := f.firstRun("aud", f.addUser(root, rootSecret, tenant, "aud", store.RoleAuditor))
	// The auditor's evidence export request, filed through the service
	// (the evidence page needs a vault this fixture does not have).
	a, err := f.app.Auth.RequestApproval(f.ctx, f.principalOf(aud), auth.KindEvidenceExport, []byte(`{"key":"scans/s1/results.jsonl","version":"v1"}`))
	if err != nil {
		t.Fatal(err)
	}
	path := "/console/approvals/" + a.ID + "/deny"
	want(t, ann.get("/console/approvals"), http.StatusOK, `action="`+path+`"`)
	tests := []struct {
		name   string
		b      *browser
		form   func(prompt answer) url.Values
		status int
		texts  []string
	}{
		{"the requester may not deny (an auditor's role may not)", aud, nil, http.StatusForbidden, nil},
		{"no step-up: the prompt", ann, nil, http.StatusUnauthorized, []string{`id="stepup-form"`, "approval.deny", a.ID}},
		{"a wrong code is refused", ann, func(prompt answer) url.Values {
			v := hiddenFields(prompt.body)
			v.Set("stepup_code", "000000")
			return v
		}, http.StatusUnauthorized, []string{"not accepted"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.t = t
			form := url.Values{"reason": {"not this quarter"}}
			got := tt.b.post(path, form)
			if tt.form != nil {
				got = tt.b.post(path, tt.form(got))
			}
			want(t, got, tt.status, tt.texts...)
			cur, err := f.app.Auth.GetApproval(f.ctx, f.principalOf(ann), a.ID)
			if err != nil || cur.Status != "pending" {
				t.Fatalf("after a refused deny: %+v %v", cur, err)
			}
		})
	}
	f.t = t
	mark := f.auditHead(root)
	got := f.stepUpIfAsked(ann, path, annS, ann.post(path, url.Values{"reason": {"not this quarter"}}))
	wantRedirect(t, got, "/console/approvals")
	f.wantActions(root, mark, audit.ActAuthStepUp, audit.ActApprovalDeny)
	cur, err := f.app.Auth.GetApproval(f.ctx, f.principalOf(ann), a.ID)
	if err != nil || cur.Status != "denied" {
		t.Fatalf("after deny: %+v %v", cur, err)
	}
	want(t, ann.get("/console/approvals?status=denied"), http.StatusOK, cur.ID)
}

var (
	optionsRe  = regexp.MustCompile(`data-options="([^"]*)"`)
	ceremonyRe = regexp.MustCompile(`name="ceremony" value="([^"]*)"`)
)

// registerKey registers a security key for the user signed in on b through
// the security keys page: a name, the step-up, then the software
// authenticator's answer to the page's options. It returns the key's id.
func (f *fixture) registerKey(b *browser, secret string, key *keytest.Key, name string) string {
	f.t.Helper()
	a := b.post("/console/security-keys", url.Values{"name": {name}})
	want(f.t, a, http.StatusUnauthorized, `id="stepup-form"`, "auth.key.register")
	a = f.stepUpIfAsked(b, "/console/security-keys", secret, a)
	want(f.t, a, http.StatusOK, `id="webauthn-form"`)
	opts, cer := optionsRe.FindStringSubmatch(a.body), ceremonyRe.FindStringSubmatch(a.body)
	if opts == nil || cer == nil {
		f.t.Fatalf("no ceremony on the key page:\n%s", a.body)
	}
	cred, err := key.Create([]byte(html.UnescapeString(opts[1])))
	if err != nil {
		f.t.Fatal(err)
	}
	wantRedirect(f.t, b.post("/console/security-keys/finish", url.Values{"ceremony": {html.UnescapeString(cer[1])}, "credential": {string(cred)}}), "/console/security-keys")
	ks, err := f.app.Auth.ListKeys(f.ctx, f.principalOf(b))
	if err != nil {
		f.t.Fatal(err)
	}
	for _, k := range ks {
		if k.Name == name {
			return k.ID
		}
	}
	f.t.Fatalf("key %q not listed: %+v", name, ks)
	return ""
}

// TestAdminForms walks the console forms no other test submits: set a
// user's role and reset their authenticator, revoke an API token, open
// and close a support ticket, remove a security key, set the security-key
// requirement, and the "register a key first" redirect it causes. Each
// is refused once (a role that may not, or no step-up) and then succeeds,
// and the service's audit entry is checked.
func TestAdminForms(t *testing.T) {
	f := newFixture(t)
	root, rootSecret, _ := f.firstRun("root", f.init.OneTimePassword)
	tenant := f.init.TenantID
	tina, tinaS, _ := f.firstRun("tina", f.addUser(root, rootSecret, tenant, "tina", store.RoleAdmin))
	aud, audS, _ := f.firstRun("aud", f.addUser(root, rootSecret, tenant, "aud", store.RoleAuditor))
	ann, _, _ := f.firstRun("ann", f.addUser(root, rootSecret, tenant, "ann", store.RoleApprover))
	lena, lenaS, _ := f.firstRun("lena", f.addUser(root, rootSecret, tenant, "lena", store.RoleSecurityLead))
	f.addUser(root, rootSecret, tenant, "otto", store.RoleOperator)
	f.addUser(root, rootSecret, tenant, "sam", store.RoleSupport)
	us, err := f.app.Auth.ListUsers(f.ctx, f.principalOf(tina), "")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, u := range us {
		ids[u.Name] = u.ID
	}
	// The auditor's API token, made on the tokens page.
	a := aud.post("/console/tokens", url.Values{"name": {"ci"}, "role": {store.RoleAuditor}})
	want(t, f.stepUpIfAsked(aud, "/console/tokens", audS, a), http.StatusOK, "ci")
	ts, err := f.app.Auth.ListTokens(f.ctx, f.principalOf(aud))
	if err != nil || len(ts) != 1 {
		t.Fatalf("tokens %+v %v", ts, err)
	}
	token := ts[0].ID
	key := keytest.New(f.app.Auth.KeyConfig().Origins[0])
	var ticket, keyID string

	// sensitive posts form to path as b, answers the step-up prompt and
	// returns the final answer.
	sensitive := func(b *browser, secret, path string, form url.Values) answer {
		t.Helper()
		a := b.post(path, form)
		want(t, a, http.StatusUnauthorized, `id="stepup-form"`)
		return f.stepUpIfAsked(b, path, secret, a)
	}
	tests := []struct {
		name string
		// refuse is the refused attempt and its status; nothing changes.
		refuse       func() answer
		refuseStatus int
		do           func() answer
		redirect     string
		audit        audit.Action
	}{
		{"set role", func() answer {
			return aud.post("/console/users/"+ids["otto"]+"/role", url.Values{"role": {store.RoleAuditor}})
		}, http.StatusForbidden, func() answer {
			return sensitive(tina, tinaS, "/console/users/"+ids["otto"]+"/role", url.Values{"role": {store.RoleAuditor}})
		}, "/console/users", audit.ActUserRoleChange},
		{"reset authenticator", func() answer {
			return ann.post("/console/users/"+ids["otto"]+"/reset-totp", nil)
		}, http.StatusForbidden, func() answer {
			return sensitive(tina, tinaS, "/console/users/"+ids["otto"]+"/reset-totp", nil)
		}, "/console/users", audit.ActUserUpdate},
		{"revoke an API token", func() answer {
			return ann.post("/console/tokens/"+token+"/revoke", nil)
		}, http.StatusForbidden, func() answer {
			return aud.post("/console/tokens/"+token+"/revoke", nil)
		}, "/console/tokens", audit.ActTokenRevoke},
		{"open a support ticket", func() answer {
			return aud.post("/console/support", url.Values{"support_user_id": {ids["sam"]}, "reason": {"case 7"}, "ttl": {"1h"}})
		}, http.StatusForbidden, func() answer {
			return sensitive(tina, tinaS, "/console/support", url.Values{"support_user_id": {ids["sam"]}, "reason": {"case 7"}, "ttl": {"1h"}})
		}, "/console/support", audit.ActSupportOpen},
		{"close a support ticket", func() answer {
			tk, err := f.app.Auth.ListSupport(f.ctx, f.principalOf(tina))
			if err != nil || len(tk) != 1 {
				t.Fatalf("tickets %+v %v", tk, err)
			}
			ticket = tk[0].ID
			return aud.post("/console/support/"+ticket+"/close", nil)
		}, http.StatusForbidden, func() answer {
			return tina.post("/console/support/"+ticket+"/close", nil)
		}, "/console/support", audit.ActSupportClose},
		{"remove a security key (no step-up: the prompt)", func() answer {
			keyID = f.registerKey(aud, audS, key, "aud's key")
			return aud.post("/console/security-keys/"+keyID+"/remove", nil)
		}, http.StatusUnauthorized, func() answer {
			return sensitive(aud, audS, "/console/security-keys/"+keyID+"/remove", nil)
		}, "/console/security-keys", audit.ActAuthKeyRemove},
		{"require security keys of security leads", func() answer {
			return tina.post("/console/security-keys/policy", url.Values{"security_leads": {"on"}})
		}, http.StatusForbidden, func() answer {
			want(t, root.get("/console/security-keys"), http.StatusOK, `id="key-policy"`)
			return sensitive(root, rootSecret, "/console/security-keys/policy", url.Values{"security_leads": {"on"}})
		}, "/console/security-keys", audit.ActAuthKeyPolicy},
		{"a security lead without a key is sent to register one", func() answer {
			a := lena.get("/console/scans")
			wantRedirect(t, a, "/console/security-keys?flash=")
			return a
		}, http.StatusSeeOther, func() answer {
			want(t, lena.get("/console/sessions"), http.StatusOK)
			want(t, lena.get("/console/security-keys"), http.StatusOK, "Your role must use a security key")
			f.registerKey(lena, lenaS, keytest.New(f.app.Auth.KeyConfig().Origins[0]), "lena's key")
			// With a key the other pages open again.
			want(t, lena.get("/console/scans"), http.StatusOK)
			return lena.post("/console/logout", nil)
		}, "/console/login", audit.ActAuthKeyRegister},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.t = t
			for _, b := range []*browser{tina, aud, ann, root, lena} {
				b.get("/console/sessions") // a fresh CSRF token
			}
			mark := f.auditHead(root)
			r := tt.refuse()
			if r.status != tt.refuseStatus {
				t.Fatalf("refusal: status %d, want %d:\n%s", r.status, tt.refuseStatus, r.body)
			}
			if got := actionsOf(f.auditSince(root, mark)); slices.Contains(got, string(tt.audit)) {
				t.Fatalf("the refused attempt wrote %s: %v", tt.audit, got)
			}
			mark = f.auditHead(root)
			wantRedirect(t, tt.do(), tt.redirect)
			f.wantActions(root, mark, tt.audit)
		})
	}
	f.t = t
	// What the services now say.
	if kp, err := f.app.Auth.KeyPolicy(f.ctx, f.principalOf(root)); err != nil || !kp.SecurityLeads || kp.ApplianceAdmins {
		t.Fatalf("key policy %+v %v", kp, err)
	}
	if u, err := f.app.Auth.ListUsers(f.ctx, f.principalOf(tina), ""); err == nil {
		for _, x := range u {
			if x.Name == "otto" && (x.Role != store.RoleAuditor || x.TOTPConfirmed) {
				t.Fatalf("otto after role change and reset: %+v", x)
			}
		}
	}
	if ks, err := f.app.Auth.ListKeys(f.ctx, f.principalOf(aud)); err != nil || len(ks) != 0 {
		t.Fatalf("aud's keys after removal: %+v %v", ks, err)
	}
}
