package console_test

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"firewalliq/appliance/scan"
	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// heldKey has the appliance generate a key for the security lead signed in
// on b (keys page, step-up) and returns its id.
func (f *fixture) heldKey(b *browser, secret, name string) string {
	f.t.Helper()
	a := b.post("/console/keys", url.Values{"name": {name}, "generate": {"1"}})
	wantRedirect(f.t, f.stepUpIfAsked(b, "/console/keys", secret, a), "/console/keys")
	ks, err := f.app.ScopeKeys.List(f.ctx, f.principalOf(b), "")
	if err != nil {
		f.t.Fatal(err)
	}
	for _, k := range ks {
		if k.Name == name && k.Held && k.State == scan.KeyActive {
			return k.ID
		}
	}
	f.t.Fatalf("no held key %q in %+v", name, ks)
	return ""
}

// TestScopeSignHeldKey: on the scopes page a security lead pastes (or
// uploads) an unsigned scope document, picks a key the appliance holds
// for them, steps up, and the scope is signed (scan.Keys.Sign, audited
// scope.sign) and registered (scan.Scopes.Register, audited
// scope.register). Without a step-up the prompt is shown; a wrong code,
// another lead's held key, a bad document and a role that may not sign
// are refused, and none of them registers anything. A bad document's
// error is shown with the pasted text kept.
func TestScopeSignHeldKey(t *testing.T) {
	f := newFixture(t)
	root, rootSecret, _ := f.firstRun("root", f.init.OneTimePassword)
	tenant := f.init.TenantID
	lena, lenaS, _ := f.firstRun("lena", f.addUser(root, rootSecret, tenant, "lena", store.RoleSecurityLead))
	lou, louS, _ := f.firstRun("lou", f.addUser(root, rootSecret, tenant, "lou", store.RoleSecurityLead))
	otto, _, _ := f.firstRun("otto", f.addUser(root, rootSecret, tenant, "otto", store.RoleOperator))
	lenaKey := f.heldKey(lena, lenaS, "lena held")
	louKey := f.heldKey(lou, louS, "lou held")

	now := f.clk.Now().UTC()
	doc := func(id, extra string) string {
		return fmt.Sprintf(`{"id":%q,"tenant":"alpha","name":"signed here %s","environment":"non-production","cidrs":["127.0.0.1/32"],`+
			`"exclude":[],"ports":"tcp:22","probes":["tcp-connect"],"not_before":%q,"not_after":%q,"max_pps":10%s}`,
			id, id, now.Add(-time.Hour).Format(time.RFC3339), now.Add(24*time.Hour).Format(time.RFC3339), extra)
	}
	upload := func(b *browser, keyID, file string) answer {
		t.Helper()
		return b.postDocument("/console/scopes/sign", [][2]string{{"csrf", b.csrf}, {"key_id", keyID}}, "scope.json", []byte(file))
	}
	const path = "/console/scopes/sign"
	paste := func(b *browser, keyID, text string) answer {
		return b.post(path, url.Values{"key_id": {keyID}, "document_text": {text}})
	}
	// stepUp answers the prompt a with the code cd (a fresh one when "").
	stepUp := func(b *browser, secret string, a answer, cd string) answer {
		t.Helper()
		want(t, a, http.StatusUnauthorized, `id="stepup-form"`, "scope.sign")
		form := hiddenFields(a.body)
		if cd == "" {
			cd = f.code(secret)
		}
		form.Set("stepup_code", cd)
		return b.post(path, form)
	}

	a := lena.get("/console/scopes")
	want(t, a, http.StatusOK, `id="scope-sign"`, `value="`+lenaKey+`"`)
	if strings.Contains(a.body, louKey) {
		t.Fatalf("another lead's held key is offered:\n%s", a.body)
	}
	if a := otto.get("/console/scopes"); strings.Contains(a.body, `id="scope-sign"`) {
		t.Fatalf("an operator is offered the sign form:\n%s", a.body)
	}

	tests := []struct {
		name string
		// do submits and, where the case needs it, answers the prompt.
		do     func() answer
		status int
		texts  []string
		// registered is the scope id the case registers ("" for none).
		id, registered string
		audit          []audit.Action
	}{
		{"pasted, with step-up", func() answer {
			return stepUp(lena, lenaS, paste(lena, lenaKey, doc("sign-paste", "")), "")
		}, http.StatusSeeOther, nil, "sign-paste", "sign-paste", []audit.Action{audit.ActAuthStepUp, audit.ActScopeSign, audit.ActScopeRegister}},
		{"uploaded, with step-up", func() answer {
			return stepUp(lena, lenaS, upload(lena, lenaKey, doc("sign-file", "")), "")
		}, http.StatusSeeOther, nil, "sign-file", "sign-file", []audit.Action{audit.ActScopeSign, audit.ActScopeRegister}},
		{"no step-up: the prompt, with the document carried", func() answer {
			return paste(lena, lenaKey, doc("sign-nostep", ""))
		}, http.StatusUnauthorized, []string{`id="stepup-form"`, "scope.sign", `name="document_text"`, "sign-nostep"}, "sign-nostep", "", nil},
		{"a wrong code", func() answer {
			return stepUp(lena, lenaS, paste(lena, lenaKey, doc("sign-wrong", "")), "000000")
		}, http.StatusUnauthorized, []string{"not accepted"}, "sign-wrong", "", []audit.Action{audit.ActAuthStepUpFailed}},
		{"another lead's held key", func() answer {
			return paste(lena, louKey, doc("sign-other", ""))
		}, http.StatusForbidden, []string{"The document was not signed", "another user", "signed here sign-other"}, "sign-other", "", nil},
		{"an operator may not sign", func() answer {
			return paste(otto, lenaKey, doc("sign-op", ""))
		}, http.StatusForbidden, []string{"The document was not signed"}, "sign-op", "", []audit.Action{audit.ActAccessDenied}},
		{"an unknown field", func() answer {
			return paste(lena, lenaKey, doc("sign-bad", `,"cidr":"10.0.0.0/8"`))
		}, http.StatusUnprocessableEntity, []string{`unknown field &#34;cidr&#34;`, `aria-invalid="true"`, "signed here sign-bad"}, "sign-bad", "", nil},
		{"a field out of range", func() answer {
			return paste(lena, lenaKey, strings.Replace(doc("sign-pps", ""), `"max_pps":10`, `"max_pps":0`, 1))
		}, http.StatusUnprocessableEntity, []string{"max_pps must be at least 1", "signed here sign-pps"}, "sign-pps", "", nil},
		{"not JSON", func() answer {
			return paste(lena, lenaKey, `{"id": "sign-json",`)
		}, http.StatusUnprocessableEntity, []string{"invalid scope document", "sign-json"}, "sign-json", "", nil},
		{"no key chosen", func() answer {
			return paste(lena, "", doc("sign-nokey", ""))
		}, http.StatusUnprocessableEntity, []string{"choose the key", "signed here sign-nokey"}, "sign-nokey", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.t = t
			mark := f.auditHead(root)
			lena.get("/console/scopes") // a fresh CSRF token
			otto.get("/console/scopes")
			a := tt.do()
			if tt.status == http.StatusSeeOther {
				wantRedirect(t, a, "/console/scopes")
			} else {
				want(t, a, tt.status, tt.texts...)
			}
			f.wantActions(root, mark, tt.audit...)
			_, err := f.app.Scopes.Get(f.ctx, f.principalOf(lena), "", tt.id)
			if registered := err == nil; registered != (tt.registered != "") {
				t.Fatalf("scope %s registered: %v (%v)", tt.id, registered, err)
			}
			if tt.registered == "" {
				if got := actionsOf(f.auditSince(root, mark)); strings.Contains(strings.Join(got, " "), string(audit.ActScopeRegister)) {
					t.Fatalf("a refused signature registered: %v", got)
				}
			}
		})
	}
	f.t = t
	a = lena.get("/console/scopes")
	want(t, a, http.StatusOK, "signed here sign-paste", "signed here sign-file", lenaKey)
	// The kept text is shown escaped, never as markup.
	a = paste(lena, lenaKey, doc("sign-xss", `,"x":"</textarea><script>alert(1)</script>"`))
	want(t, a, http.StatusUnprocessableEntity, html.EscapeString("</textarea><script>"))
	if strings.Contains(a.body, "<script>alert(1)") {
		t.Fatalf("pasted text rendered as markup:\n%s", a.body)
	}
}
