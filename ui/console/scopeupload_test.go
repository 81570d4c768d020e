package console_test

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"firewalliq/probe/keys"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// TestScopeUpload registers signed scopes through the scopes page: a
// security lead uploads the file (multipart) or pastes the text and the
// scope is listed; a tampered document, an empty form and a request
// without the CSRF token are refused and register nothing; an auditor
// gets no form and is refused.
func TestScopeUpload(t *testing.T) {
	w := newScanWorld(t)
	f := w.f
	pub, priv, pem := signingKey(t)
	a := w.lead.post("/console/keys", url.Values{"name": {"second"}, "public": {string(pem)}})
	wantRedirect(t, f.stepUpIfAsked(w.lead, "/console/keys", w.leadS, a), "/console/keys")
	now := f.clk.Now()
	sign := func(id string) []byte {
		doc := scope.Document{ID: id, Tenant: "alpha", Name: "uploaded " + id, Environment: scope.EnvProduction,
			CIDRs: []string{"127.0.0.1/32"}, Exclude: []string{}, Ports: "tcp:22", Probes: []safety.Kind{safety.KindTCPConnect},
			NotBefore: now.Add(-time.Hour).Truncate(time.Second), NotAfter: now.Add(24 * time.Hour).Truncate(time.Second), MaxPPS: 10, SignerKeyID: keys.ID(pub)}
		signed, err := scope.Sign(doc, priv)
		if err != nil {
			t.Fatal(err)
		}
		return signed
	}
	upload := func(b *browser, csrf string, file []byte) answer {
		t.Helper()
		var fields [][2]string
		if csrf != "" {
			fields = append(fields, [2]string{"csrf", csrf})
		}
		return b.postDocument("/console/scopes", fields, "scope.signed.json", file)
	}

	want(t, w.lead.get("/console/scopes"), http.StatusOK, `id="scope-register"`, `enctype="multipart/form-data"`)
	tests := []struct {
		name   string
		do     func() answer
		status int
		texts  []string
	}{
		{"file upload", func() answer { return upload(w.lead, w.lead.csrf, sign("up-file")) }, http.StatusSeeOther, nil},
		{"pasted text", func() answer {
			return w.lead.post("/console/scopes", url.Values{"document_text": {string(sign("up-text"))}})
		}, http.StatusSeeOther, nil},
		{"tampered", func() answer {
			return upload(w.lead, w.lead.csrf, bytes.Replace(sign("up-bad"), []byte("127.0.0.1/32"), []byte("127.0.0.2/32"), 1))
		}, http.StatusUnprocessableEntity, []string{"bad_signature"}},
		{"empty", func() answer { return w.lead.post("/console/scopes", url.Values{}) }, http.StatusBadRequest, []string{"choose the signed scope file"}},
		{"no CSRF token", func() answer { return upload(w.lead, "", sign("up-nocsrf")) }, http.StatusForbidden, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w.lead.get("/console/scopes") // a fresh CSRF token
			a := tt.do()
			if a.status != tt.status {
				t.Fatalf("status %d, want %d:\n%s", a.status, tt.status, a.body)
			}
			for _, s := range tt.texts {
				if !strings.Contains(a.body, s) {
					t.Fatalf("body lacks %q:\n%s", s, a.body)
				}
			}
		})
	}
	a = w.lead.get("/console/scopes")
	want(t, a, http.StatusOK, "uploaded up-file", "uploaded up-text")
	for _, gone := range []string{"up-bad", "up-nocsrf"} {
		if strings.Contains(a.body, gone) {
			t.Errorf("%s was registered", gone)
		}
	}
	a = w.aud.get("/console/scopes")
	want(t, a, http.StatusOK, "uploaded up-file")
	if strings.Contains(a.body, `id="scope-register"`) {
		t.Error("the auditor is offered the upload form")
	}
	if a := w.aud.post("/console/scopes", url.Values{"document_text": {string(sign("up-aud"))}}); a.status != http.StatusForbidden {
		t.Errorf("auditor's upload: status %d, want 403", a.status)
	}
}
