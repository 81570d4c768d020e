package ui

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"firewalliq/appliance/fault"
)

// TestDocumentDownloads pins what the three document routes (report
// download, review download, scan export) answer: status, media type,
// attachment name, caching, and the audit entries the services write
// (none for a read; access.denied where a service records a refusal). It exists so that folding those handlers into one adapter is
// checked header by header, including the quirks (the file name keeps the
// ?format= as given; an export whose format is not one of the two
// canonical names is named .xml).
func TestDocumentDownloads(t *testing.T) {
	f := newFixture(t)
	scanID, open, closed := f.completedScan()
	src := fmt.Sprintf("version: 1\nname: edge\nvantage_point: self\ndefault: deny\nrules:\n"+
		"  - {name: web, action: allow, to: 127.0.0.1, ports: \"tcp:%d\", severity: high}\n"+
		"  - {name: closed, action: deny, to: 127.0.0.1, ports: \"tcp:%d\", severity: critical}\n", open, closed)
	if rec := f.do(request{method: "POST", path: "/api/v1/policies", as: "a-op", body: jsonBody(map[string]string{"source": src})}); rec.Code != 201 {
		t.Fatalf("create policy: %d %s", rec.Code, rec.Body)
	}
	rec := f.do(request{method: "POST", path: "/api/v1/reports", as: "a-op", body: jsonBody(map[string]string{"scan_id": scanID, "policy": "edge"})})
	if rec.Code != 201 {
		t.Fatalf("create report: %d %s", rec.Code, rec.Body)
	}
	var report struct{ ID string }
	decode(t, rec, &report)

	rec = f.do(request{method: "POST", path: "/api/v1/reviews", as: "a-admin", body: `{}`})
	if rec.Code != 201 {
		t.Fatalf("start review: %d %s", rec.Code, rec.Body)
	}
	var review struct {
		ID        string
		Undecided []string
	}
	decode(t, rec, &review)
	unsigned := "/api/v1/reviews/" + review.ID + "/download"
	if rec := f.do(request{method: "GET", path: unsigned, as: "a-aud"}); rec.Code != 409 || rec.Header().Get("Content-Disposition") != "" {
		t.Fatalf("unsigned review download: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	var ds []map[string]string
	for _, item := range review.Undecided {
		ds = append(ds, map[string]string{"item": item, "decision": "keep"})
	}
	if rec := f.do(request{method: "POST", path: "/api/v1/reviews/" + review.ID + "/decide", as: "a-lead", body: jsonBody(map[string]any{"decisions": ds})}); rec.Code != 200 {
		t.Fatalf("decide: %d %s", rec.Code, rec.Body)
	}
	if res, _ := f.sensitive(request{method: "POST", path: "/api/v1/reviews/" + review.ID + "/sign", as: "a-admin", body: `{}`}); res.Code != 200 {
		t.Fatalf("sign: %d %s", res.Code, res.Bytes())
	}

	const (
		jsonCT  = "application/json"
		htmlCT  = "text/html; charset=utf-8"
		pdfCT   = "application/pdf"
		xmlCT   = "application/xml"
		jsonlCT = "application/jsonl"
	)
	attach := func(name string) string { return `attachment; filename="` + name + `"` }
	rp, rv, sc := "/api/v1/reports/"+report.ID+"/download", "/api/v1/reviews/"+review.ID+"/download", "/api/v1/scans/"+scanID+"/export"
	tests := []struct {
		name, path, as string
		status         int
		ct             string // exact Content-Type; "" for an error answer (JSON)
		disposition    string // exact; "" for none
		audit          []string
	}{
		{"report, no format", rp, "a-aud", 200, jsonCT, attach("report-" + report.ID + ".json"), nil},
		{"report json", rp + "?format=json", "a-aud", 200, jsonCT, attach("report-" + report.ID + ".json"), nil},
		{"report html", rp + "?format=html", "a-op", 200, htmlCT, attach("report-" + report.ID + ".html"), nil},
		{"report pdf", rp + "?format=pdf", "a-op", 200, pdfCT, attach("report-" + report.ID + ".pdf"), nil},
		{"report HTML, any case, is .html", rp + "?format=HTML", "a-op", 200, htmlCT, attach("report-" + report.ID + ".html"), nil},
		{"report, appliance admin naming the tenant", rp + "?tenant=" + f.a, "sys", 200, jsonCT, attach("report-" + report.ID + ".json"), nil},
		{"report, unknown format", rp + "?format=docx", "a-op", 400, "", "", nil},
		{"report, another tenant", rp, "b-admin", 404, "", "", nil},
		{"report, unknown id", "/api/v1/reports/" + noSuchID + "/download", "a-aud", 404, "", "", nil},

		{"review, no format", rv, "a-aud", 200, jsonCT, attach("review-" + review.ID + ".json"), nil},
		{"review json", rv + "?format=json", "a-aud", 200, jsonCT, attach("review-" + review.ID + ".json"), nil},
		{"review html", rv + "?format=html", "a-admin", 200, htmlCT, attach("review-" + review.ID + ".html"), nil},
		{"review pdf", rv + "?format=pdf", "a-admin", 200, pdfCT, attach("review-" + review.ID + ".pdf"), nil},
		{"review, unknown format", rv + "?format=docx", "a-admin", 400, "", "", nil},
		{"review, another tenant", rv, "b-admin", 404, "", "", []string{"access.denied"}},

		{"export, no format", sc, "a-aud", 200, xmlCT, attach("scan-" + scanID + ".xml"), nil},
		{"export nmap-xml", sc + "?format=nmap-xml", "a-aud", 200, xmlCT, attach("scan-" + scanID + ".xml"), nil},
		{"export jsonl", sc + "?format=jsonl", "a-op", 200, jsonlCT, attach("scan-" + scanID + ".jsonl"), nil},
		{"export xml alias", sc + "?format=xml", "a-op", 200, xmlCT, attach("scan-" + scanID + ".xml"), nil},
		{"export JSONL, any case, is .jsonl", sc + "?format=JSONL", "a-op", 200, jsonlCT, attach("scan-" + scanID + ".jsonl"), nil},
		{"export, unknown format", sc + "?format=csv", "a-op", 400, "", "", nil},
		{"export, another tenant", sc, "b-admin", 404, "", "", []string{"access.denied"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.head()
			rec := f.do(request{method: "GET", path: tt.path, as: tt.as})
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			h := rec.Header()
			ct := tt.ct
			if ct == "" {
				ct = "application/json"
			}
			if got := h.Get("Content-Type"); got != ct {
				t.Errorf("Content-Type %q, want %q", got, ct)
			}
			if got := h.Get("Content-Disposition"); got != tt.disposition {
				t.Errorf("Content-Disposition %q, want %q", got, tt.disposition)
			}
			if got := h.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", got)
			}
			if tt.status == 200 && rec.Body.Len() == 0 {
				t.Error("empty document")
			}
			if tt.status != 200 && !strings.Contains(rec.Body.String(), `"error"`) {
				t.Errorf("error answer without an error body: %s", rec.Body)
			}
			if got := actions(f.since(before)); !slices.Equal(got, tt.audit) {
				t.Errorf("audit entries %v, want %v", got, tt.audit)
			}
		})
	}
}

// TestServicesOff pins what the routes of the optional services answer
// when the appliance runs without them (no vault, no fleet): 503 with the
// code and message each route names, after authentication, and before a
// body is read.
func TestServicesOff(t *testing.T) {
	f := newFixture(t, func(d *Deps) { d.Policies, d.Reports, d.Reviews, d.Sensors, d.Evidence = nil, nil, nil, nil, nil })
	const (
		policies = "the policy service is not configured on this appliance"
		reports  = "the evidence vault (a report is evidence) is not configured on this appliance"
		reviews  = "the access review service is not configured on this appliance"
		vault    = "an evidence vault is not configured on this appliance"
	)
	tests := []struct {
		method, path, body string
		code, message      string // message "" is not checked
	}{
		{"GET", "/api/v1/policies", "", "vault_unavailable", policies},
		{"POST", "/api/v1/policies", `{"source":"x"}`, "vault_unavailable", policies},
		{"GET", "/api/v1/policies/edge", "", "vault_unavailable", policies},
		{"POST", "/api/v1/policies/edge/dry-run", `{"scope_id":"lab"}`, "vault_unavailable", policies},
		{"POST", "/api/v1/policies/edge/evaluate", `{"scan_id":"x"}`, "vault_unavailable", "the evidence vault (scan results are evaluated from recorded scans) is not configured on this appliance"},
		{"POST", "/api/v1/policies/edge/baseline", `{"scan_id":"x"}`, "vault_unavailable", "the evidence vault (baselines are accepted from recorded scans) is not configured on this appliance"},
		{"GET", "/api/v1/reports", "", "vault_unavailable", reports},
		{"POST", "/api/v1/reports", `{}`, "vault_unavailable", reports},
		{"GET", "/api/v1/reports/" + noSuchID, "", "vault_unavailable", reports},
		{"GET", "/api/v1/reports/" + noSuchID + "/download?format=pdf", "", "vault_unavailable", reports},
		{"GET", "/api/v1/scans/" + noSuchID + "/export", "", "vault_unavailable", reports},
		{"GET", "/api/v1/reviews", "", "vault_unavailable", reviews},
		{"POST", "/api/v1/reviews", `{}`, "vault_unavailable", reviews},
		{"GET", "/api/v1/reviews/due", "", "vault_unavailable", reviews},
		{"GET", "/api/v1/reviews/" + noSuchID, "", "vault_unavailable", reviews},
		{"POST", "/api/v1/reviews/" + noSuchID + "/decide", `{"decisions":[]}`, "vault_unavailable", reviews},
		{"POST", "/api/v1/reviews/" + noSuchID + "/sign", `{}`, "vault_unavailable", reviews},
		{"GET", "/api/v1/reviews/" + noSuchID + "/download", "", "vault_unavailable", reviews},
		{"GET", "/api/v1/sensors", "", "fleet_off", ""},
		{"POST", "/api/v1/sensors/tokens", `{"name":"x","vantage":"dmz"}`, "fleet_off", ""},
		{"GET", "/api/v1/sensors/" + noSuchID, "", "fleet_off", ""},
		{"POST", "/api/v1/sensors/" + noSuchID + "/revoke", "", "fleet_off", ""},
		{"GET", "/api/v1/evidence", "", "vault_unavailable", vault},
		{"POST", "/api/v1/evidence/exports", `{"key":"k","version_id":"v"}`, "vault_unavailable", vault},
		{"POST", "/api/v1/evidence/exports/" + noSuchID + "/url", `{"key":"k","version_id":"v"}`, "vault_unavailable", vault},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			if rec := f.do(request{method: tt.method, path: tt.path, body: tt.body}); rec.Code != 401 {
				t.Fatalf("without a session: %d %s, want 401", rec.Code, rec.Body)
			}
			before := f.head()
			rec := f.do(request{method: tt.method, path: tt.path, body: tt.body, as: "a-admin"})
			var e apiErr
			decode(t, rec, &e)
			if rec.Code != 503 || e.Error.Code != tt.code || (tt.message != "" && e.Error.Message != tt.message) {
				t.Fatalf("%d %s, want 503 %s %q", rec.Code, rec.Body, tt.code, tt.message)
			}
			if got := actions(f.since(before)); len(got) != 0 {
				t.Errorf("audit entries %v", got)
			}
			// A service that is not there refuses before the body is read.
			if tt.body != "" {
				if rec := f.do(request{method: tt.method, path: tt.path, body: `{"unknown":`, as: "a-admin"}); rec.Code != 503 {
					t.Errorf("bad body: %d %s, want 503", rec.Code, rec.Body)
				}
			}
		})
	}
}

// TestListPageReadFirst pins the order of the list routes: the page
// parameters are checked before the service is asked, so a bad ?limit= or
// ?after= is 400 even for a caller the service would refuse, and nothing is
// audited.
func TestListPageReadFirst(t *testing.T) {
	f := newFixture(t)
	lists := []string{"/api/v1/policies", "/api/v1/reports", "/api/v1/scope-keys", "/api/v1/scan-schedules", "/api/v1/sensors",
		"/api/v1/siem/destinations", "/api/v1/siem/status", "/api/v1/scopes", "/api/v1/users"}
	for _, path := range lists {
		for _, q := range []string{"?limit=0", "?after=%21"} {
			t.Run(path+q, func(t *testing.T) {
				before := f.head()
				// b-admin naming tenant a: a caller every service refuses.
				rec := f.do(request{method: "GET", path: path + q + "&tenant=" + f.a, as: "b-admin"})
				var e apiErr
				decode(t, rec, &e)
				if rec.Code != 400 || e.Error.Code != fault.CodeInvalid {
					t.Fatalf("%d %s, want 400 invalid", rec.Code, rec.Body)
				}
				if got := actions(f.since(before)); len(got) != 0 {
					t.Errorf("audit entries %v", got)
				}
			})
		}
		t.Run(path+" refused", func(t *testing.T) {
			if rec := f.do(request{method: "GET", path: path + "?tenant=" + f.a, as: "b-admin"}); rec.Code != 403 {
				t.Fatalf("%d %s, want 403", rec.Code, rec.Body)
			}
		})
	}
}
