package console_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"firewalliq/appliance"
	"firewalliq/appliance/keyring"
	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// TestAuditVerifyAndProof: "Verify now" recomputes the log and says it is
// intact; every entry links its inclusion proof, whose page says it was
// checked and whose download verifies offline with the audit public key;
// an entry newer than the latest checkpoint has no proof yet; a tenant
// user cannot prove an appliance-wide entry or another tenant's.
// And after an entry is edited behind the appliance's back, "Verify now"
// says the log is broken, at that entry.
func TestAuditVerifyAndProof(t *testing.T) {
	f := newFixture(t)
	admin, secret, _ := f.firstRun("root", f.init.OneTimePassword)
	tina, _, _ := f.firstRun("tina", f.addUser(admin, secret, f.init.TenantID, "tina", store.RoleAdmin))
	cp, _, err := f.app.Checkpoint(f.ctx)
	if err != nil {
		t.Fatal(err)
	}

	a := admin.get("/console/audit?verify=1")
	want(t, a, http.StatusOK, `id="verify-result"`, "intact", `id="proof-1"`)

	// Entry 1 (appliance.init) as the appliance admin.
	a = admin.get("/console/audit/proof/1")
	want(t, a, http.StatusOK, `id="proof-verified"`, "appliance.init", fmt.Sprintf("Tree size of the checkpoint</dt><dd>%d", cp.Size), "audit verify-proof --pub audit.pub audit-proof-1.json")
	d := admin.get("/console/audit/proof/1?download=1")
	if d.status != http.StatusOK || !strings.Contains(d.header.Get("Content-Disposition"), "audit-proof-1.json") {
		t.Fatalf("download: %d %v", d.status, d.header)
	}
	var proof audit.InclusionProof
	if err := json.Unmarshal([]byte(d.body), &proof); err != nil {
		t.Fatal(err)
	}
	pub, err := f.app.Keys.Public(keyring.Audit)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.VerifyInclusion(proof, pub); err != nil || proof.Entry.Seq != 1 {
		t.Fatalf("downloaded proof of %d: %v", proof.Entry.Seq, err)
	}

	// A tenant admin: their own tenant's entry yes, the appliance's no.
	m := regexp.MustCompile(`id="proof-(\d+)"`).FindStringSubmatch(tina.get("/console/audit").body)
	if m == nil {
		t.Fatal("no entry of the tenant on its audit page")
	}
	own, _ := strconv.ParseInt(m[1], 10, 64)
	if own > cp.Size {
		t.Fatalf("the tenant's first entry %d is not under the checkpoint (%d)", own, cp.Size)
	}
	want(t, tina.get(fmt.Sprintf("/console/audit/proof/%d", own)), http.StatusOK, `id="proof-verified"`)
	want(t, tina.get("/console/audit/proof/1"), http.StatusNotFound)
	want(t, tina.get("/console/audit/proof/999999"), http.StatusNotFound)
	want(t, tina.get("/console/audit/proof/x"), http.StatusBadRequest)

	// A newer entry (tina's page loads sign nothing; a login does) has no
	// proof until the next checkpoint.
	f.firstRun("otto", f.addUser(admin, secret, f.init.TenantID, "otto", store.RoleOperator))
	h, err := f.app.Health(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	last := h.AuditSize
	if last <= cp.Size {
		t.Fatalf("no entry after the checkpoint (%d <= %d)", last, cp.Size)
	}
	want(t, admin.get(fmt.Sprintf("/console/audit/proof/%d", last)), http.StatusOK, `id="proof-pending"`)

	// An entry edited behind the appliance's back: "Verify now" says the
	// log is broken and where.
	db, err := sql.Open("sqlite", store.DSN(filepath.Join(f.dir, appliance.DatabaseFile), false))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e, err := audit.ReadEntry(f.ctx, db, 2)
	if err != nil {
		t.Fatal(err)
	}
	e.Object = "tenant:forged"
	if _, err := db.Exec(`DROP TRIGGER audit_entries_no_update`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_entries SET entry = ? WHERE seq = 2`, audit.Canonical(e)); err != nil {
		t.Fatal(err)
	}
	a = admin.get("/console/audit?verify=1")
	want(t, a, http.StatusOK, `id="verify-result"`, `<span class="bad">broken</span>`, "at entry 2")
	if r := regexp.MustCompile(`<p id="verify-result">.*?</p>`).FindString(a.body); strings.Contains(r, "intact") {
		t.Fatalf("Verify now calls an edited log intact: %s", r)
	}
}
