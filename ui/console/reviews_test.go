package console_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"firewalliq/appliance/store"
)

var reviewLineRe = regexp.MustCompile(`name="d:([^"]+)"`)

// TestAccessReview: a security lead starts the tenant's access review,
// decides every line (revoking the operator's account), and signs after
// step-up; the revocation takes effect then, and the signed document
// downloads. An auditor reads without forms and is refused changes; a
// bad decision, signing with undecided lines and a missing CSRF token are
// refused.
func TestAccessReview(t *testing.T) {
	f := newFixture(t)
	root, rootSecret, _ := f.firstRun("root", f.init.OneTimePassword)
	tenant := f.init.TenantID
	lead, leadS, _ := f.firstRun("lena", f.addUser(root, rootSecret, tenant, "lena", store.RoleSecurityLead))
	op, _, _ := f.firstRun("otto", f.addUser(root, rootSecret, tenant, "otto", store.RoleOperator))
	aud, _, _ := f.firstRun("aud", f.addUser(root, rootSecret, tenant, "aud", store.RoleAuditor))

	want(t, lead.get("/console/reviews"), http.StatusOK, "No access reviews yet", `id="review-start"`)
	want(t, lead.post("/console/reviews", url.Values{"csrf": {""}}), http.StatusForbidden, "CSRF")
	want(t, aud.post("/console/reviews", nil), http.StatusForbidden)
	a := lead.post("/console/reviews", nil)
	wantRedirect(t, a, "/console/reviews/")
	path := strings.SplitN(a.location(), "?", 2)[0]
	a = lead.get(path)
	want(t, a, http.StatusOK, `id="review-decide"`, `id="review-sign"`, "undecided")
	items := reviewLineRe.FindAllStringSubmatch(a.body, -1)
	if len(items) < 3 {
		t.Fatalf("lines: %v\n%s", items, a.body)
	}
	opID := f.principalOf(op).UserID

	// Refusals: nothing marked, an unknown decision, signing too early.
	want(t, lead.post(path+"/decide", nil), http.StatusBadRequest, "at least one line")
	want(t, lead.post(path+"/decide", url.Values{"d:" + html.UnescapeString(items[0][1]): {"maybe"}}), http.StatusBadRequest)
	sign := f.stepUpIfAsked(lead, path+"/sign", leadS, lead.post(path+"/sign", nil))
	want(t, sign, http.StatusConflict)

	// The auditor reads the review without forms.
	a = aud.get(path)
	want(t, a, http.StatusOK, "undecided")
	if strings.Contains(a.body, `id="review-sign"`) || strings.Contains(a.body, `name="d:`) {
		t.Fatalf("the auditor is offered decisions:\n%s", a.body)
	}
	want(t, aud.post(path+"/decide", url.Values{"d:" + html.UnescapeString(items[0][1]): {"keep"}}), http.StatusForbidden)

	// Every line decided: the operator's account revoked, the rest kept.
	form := url.Values{}
	for _, m := range items {
		item := html.UnescapeString(m[1])
		d := "keep"
		if item == "user:"+opID {
			d = "revoke"
			form.Set("n:"+item, "left the team <b>")
		}
		form.Set("d:"+item, d)
	}
	if form.Get("d:user:"+opID) != "revoke" {
		t.Fatalf("no line for the operator %s: %v", opID, items)
	}
	wantRedirect(t, lead.post(path+"/decide", form), path)
	a = lead.get(path)
	want(t, a, http.StatusOK, "left the team &lt;b&gt;")
	want(t, op.get("/console/"), http.StatusOK) // nothing revoked before signing

	a = lead.post(path+"/sign", nil)
	want(t, a, http.StatusUnauthorized, `id="stepup-form"`, "review.sign")
	wantRedirect(t, f.stepUpIfAsked(lead, path+"/sign", leadS, a), path)
	a = lead.get(path)
	want(t, a, http.StatusOK, `id="review-downloads"`)
	if strings.Contains(a.body, `id="review-sign"`) {
		t.Fatal("a signed review offers signing")
	}
	wantRedirect(t, op.get("/console/"), "/console/login")

	for _, tt := range []struct{ format, media string }{{"json", "application/json"}, {"pdf", "application/pdf"}, {"html", "text/html"}} {
		t.Run(tt.format, func(t *testing.T) {
			a := aud.get(path + "/download/" + tt.format)
			if a.status != 200 || !strings.HasPrefix(a.header.Get("Content-Type"), tt.media) || !strings.HasPrefix(a.header.Get("Content-Disposition"), "attachment;") || len(a.body) < 100 {
				t.Fatalf("%s: %d %q %q %d bytes", tt.format, a.status, a.header.Get("Content-Type"), a.header.Get("Content-Disposition"), len(a.body))
			}
		})
	}
	want(t, aud.get(path+"/download/exe"), http.StatusNotFound)
}
