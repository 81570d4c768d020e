package console_test

import (
	"net/http"
	"net/url"
	"slices"
	"testing"

	"firewalliq/appliance/auth"
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
