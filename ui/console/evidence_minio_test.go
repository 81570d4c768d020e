package console_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"firewalliq/appliance"
	"firewalliq/appliance/store"
	"firewalliq/vault/vaulttest"
)

// exportLinkRe reads the export link notice: its expiry and its URL.
var exportLinkRe = regexp.MustCompile(`(?s)<div class="card notice" role="status" id="export-link">.*?It expires at ([0-9-]+ [0-9:]+Z) and is shown only now:</p>\s*<p><a class="mono" href="([^"]+)" rel="noreferrer">`)

// TestEvidenceExportMinIO is the evidence export with the real WORM vault
// (MinIO on 127.0.0.1, TLS, object lock in compliance mode, SSE): an
// object is recorded and uploaded, an auditor requests its export, two
// approvers approve it in their inboxes after step-up, and the auditor's
// step-up gives the 5-minute pre-signed link, shown once, which downloads
// the object's exact bytes from MinIO. The dashboard shows the vault as a
// checked WORM MinIO bucket.
//
// It has its own appliance (newFixture with a MinIO vault) rather than
// changing the shared fixture: only this test needs a MinIO server.
func TestEvidenceExportMinIO(t *testing.T) {
	ctx := context.Background()
	srv := vaulttest.StartFor(t)
	bucket, secret := srv.LockedBucket(ctx, t, 5), vaulttest.SecretKeyFile(t)
	f := newFixture(t, func(c *appliance.Config) {
		c.Vault.Backend, c.Vault.Endpoint, c.Vault.Bucket = "minio", srv.Addr, bucket
		c.Vault.CAFile, c.Vault.AccessKey, c.Vault.SecretKeyFile, c.Vault.RetentionDays = srv.CAFile(), vaulttest.User, secret, 5
	})
	root, rootSecret, _ := f.firstRun("root", f.init.OneTimePassword)
	tenant := f.init.TenantID
	ann, annSecret, _ := f.firstRun("ann", f.addUser(root, rootSecret, tenant, "ann", store.RoleApprover))
	ben, benSecret, _ := f.firstRun("ben", f.addUser(root, rootSecret, tenant, "ben", store.RoleApprover))
	aud, audSecret, _ := f.firstRun("aud", f.addUser(root, rootSecret, tenant, "aud", store.RoleAuditor))

	const content = `{"probe":"tcp-syn","target":"127.0.0.1","state":"rejected"}` + "\n"
	a := f.uploadedEvidence(aud, tenant, content, 150)
	want(t, a, http.StatusOK, "results.jsonl", `<span class="ok">COMPLIANCE</span> until`, "Request export")

	// The dashboard's vault panel: the MinIO bucket, WORM, checked.
	want(t, root.get("/console/"), http.StatusOK, `<dt>Backend</dt><dd>minio https://`+srv.Addr+`/`+bucket+` <span class="ok">WORM</span></dd>`,
		`<dt>Check</dt><dd><span class="ok">ok</span> (`)

	form := hiddenFields(a.body[strings.Index(a.body, `action="/console/evidence/export"`):])
	wantRedirect(t, aud.post("/console/evidence/export", form), "/console/evidence")
	a = aud.get("/console/evidence")
	id := regexp.MustCompile(`<td class="mono small">(apr_[0-9a-f]+)</td>`).FindStringSubmatch(a.body)
	if id == nil {
		t.Fatalf("no export request listed:\n%s", a.body)
	}
	path := "/console/evidence/export/" + id[1] + "/link"
	if strings.Contains(a.body, `action="`+path+`"`) {
		t.Fatal("a link is offered before any approval")
	}
	f.approveInInbox(ann, annSecret, id[1])
	f.approveInInbox(ben, benSecret, id[1])
	a = aud.get("/console/evidence")
	want(t, a, http.StatusOK, "approved", "2 of 2", "Get 5-minute link")
	if strings.Contains(a.body, `id="export-link"`) {
		t.Fatal("the link is shown before it was asked for")
	}
	form = hiddenFields(a.body[strings.Index(a.body, `action="`+path+`"`):])
	a = aud.post(path, form)
	want(t, a, http.StatusUnauthorized, `id="stepup-form"`)
	a = f.stepUpIfAsked(aud, path, audSecret, a)
	// The approvers are named by their user ids.
	want(t, a, http.StatusOK, `id="export-link"`, "results.jsonl", f.principalOf(ann).UserID, f.principalOf(ben).UserID)
	if n := strings.Count(a.body, `id="export-link"`); n != 1 {
		t.Fatalf("%d export links on the page", n)
	}
	m := exportLinkRe.FindStringSubmatch(a.body)
	if m == nil {
		t.Fatalf("no export link notice:\n%s", a.body)
	}
	expires, err := time.Parse("2006-01-02 15:04:05Z", m[1])
	if err != nil {
		t.Fatal(err)
	}
	if d := expires.Sub(f.clk.Now()); d < 4*time.Minute || d > 5*time.Minute+time.Second {
		t.Fatalf("the link expires %s after the appliance's now, want about 5 minutes", d)
	}
	link, err := url.Parse(strings.ReplaceAll(m[2], "&amp;", "&"))
	if err != nil {
		t.Fatal(err)
	}
	if link.Scheme != "https" || link.Host != srv.Addr || link.Query().Get("X-Amz-Expires") != "300" || link.Query().Get("X-Amz-Signature") == "" {
		t.Fatalf("link %s: want a 300 s pre-signed GET on %s", link, srv.Addr)
	}

	// The URL downloads the object from MinIO: a plain GET, no credentials.
	resp, err := srv.HTTPClient().Get(link.String())
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || string(body) != content {
		t.Fatalf("download: %d %q %v, want %q", resp.StatusCode, body, err, content)
	}
	// A tampered signature is refused by MinIO.
	q := link.Query()
	q.Set("X-Amz-Signature", strings.Repeat("0", len(q.Get("X-Amz-Signature"))))
	bad := *link
	bad.RawQuery = q.Encode()
	if resp, err := srv.HTTPClient().Get(bad.String()); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a tampered link: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// Shown once: the page afterwards has no link, and the spent approval
	// gives no second one.
	a = aud.get("/console/evidence")
	want(t, a, http.StatusOK, "results.jsonl")
	if strings.Contains(a.body, `id="export-link"`) || strings.Contains(a.body, link.Query().Get("X-Amz-Signature")) {
		t.Fatalf("the link is shown again:\n%s", a.body)
	}
	a = f.stepUpIfAsked(aud, path, audSecret, aud.post(path, form))
	if a.status < 400 || strings.Contains(a.body, `id="export-link"`) {
		t.Fatalf("a second link from a spent approval: %d\n%s", a.status, a.body)
	}
}
