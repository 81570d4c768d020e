package console_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"firewalliq/appliance"
	"firewalliq/appliance/sensor"
	"firewalliq/appliance/store"
)

// TestSettingsPage: the settings page shows the local vault (backend, no
// lock, spool), the SIEM destinations with a link to the SIEM page, and
// the safety profile; a security lead proposes a scan schedule (pending),
// it is not offered to its requester for approval, two approvers approve
// it with step-up (approved, with a next run), and an operator stops it
// with a reason (void). An auditor sees the list without forms and is
// refused changes.
func TestSettingsPage(t *testing.T) {
	f := newFixture(t, func(c *appliance.Config) { c.Production, c.Vault.Backend = false, "local" }) // the local vault is not WORM
	root, rootSecret, _ := f.firstRun("root", f.init.OneTimePassword)
	a := root.get("/console/settings")
	want(t, a, http.StatusOK, `href="/console/settings" aria-current="page"`, `id="vault-kind">local`, `id="vault-lock">none`,
		`id="vault-spool">0 pending`, `id="siem-link"`, `id="profile-id">`)

	w := newScanWorldOn(t, f, root, rootSecret)
	a = w.lead.get("/console/settings")
	want(t, a, http.StatusOK, `id="schedule-form"`, "No schedules.")
	// A bad specification is refused with the service's reason.
	form := url.Values{"scope": {w.prod}, "spec": {"@every 1m"}, "targets": {"127.0.0.1"}, "ports": {"tcp:" + strconv.Itoa(w.port)}, "probes": {"tcp-connect"}, "rate": {"5"}}
	want(t, w.lead.post("/console/schedules", form), http.StatusBadRequest)
	form.Set("spec", "@every 24h")
	form.Set("valid_days", "7")
	wantRedirect(t, w.lead.post("/console/schedules", form), "/console/settings")
	a = w.lead.get("/console/settings")
	m := regexp.MustCompile(`<td class="mono">(sched_[0-9a-z]+|[a-z]+_[0-9a-z]+)</td><td class="mono">` + regexp.QuoteMeta(w.prod)).FindStringSubmatch(a.body)
	if m == nil {
		t.Fatalf("no schedule listed:\n%s", a.body)
	}
	id := m[1]
	want(t, a, http.StatusOK, "@every 24h", "state-pending")
	if strings.Contains(a.body, "/console/schedules/"+id+"/approve") {
		t.Fatal("the requester is offered approval of their own schedule")
	}
	// The auditor sees it, without forms, and may not stop it.
	a = w.aud.get("/console/settings")
	want(t, a, http.StatusOK, id)
	if strings.Contains(a.body, `id="schedule-form"`) || strings.Contains(a.body, "/void") {
		t.Fatal("the auditor is offered schedule forms")
	}
	want(t, w.aud.post("/console/schedules/"+id+"/void", url.Values{"reason": {"x"}}), http.StatusForbidden)
	for _, ap := range []struct {
		b      *browser
		secret string
	}{{w.ann, w.annS}, {w.ben, w.bS}} {
		path := "/console/schedules/" + id + "/approve"
		want(t, ap.b.get("/console/settings"), http.StatusOK, path)
		a := ap.b.post(path, nil)
		want(t, a, http.StatusUnauthorized, `id="stepup-form"`)
		wantRedirect(t, f.stepUpIfAsked(ap.b, path, ap.secret, a), "/console/settings")
	}
	a = w.op.get("/console/settings")
	want(t, a, http.StatusOK, "state-approved")
	want(t, w.op.post("/console/schedules/"+id+"/void", nil), http.StatusBadRequest, "reason")
	wantRedirect(t, w.op.post("/console/schedules/"+id+"/void", url.Values{"reason": {"change freeze"}}), "/console/settings")
	want(t, w.op.get("/console/settings"), http.StatusOK, "state-void", "change freeze")
}

// TestSensorsPage: an admin creates an enrolment token with step-up and is
// shown the secret and the `firewalliq sensor enroll` command once, with
// the console's address and certificate fingerprint; a sensor enrolled
// with it (through the sensor service, as the enrol endpoint does) is
// listed with its vantage point, state and version; when it goes silent
// the page says so; the admin revokes it with step-up. An operator sees
// the list without forms and is refused token creation.
func TestSensorsPage(t *testing.T) {
	// Enrolment answers the address sensors dial; nothing dials it here.
	f := newFixture(t, func(c *appliance.Config) { c.Sensors.Advertise = "tls://127.0.0.1:4222" })
	root, rootSecret, _ := f.firstRun("root", f.init.OneTimePassword)
	tenant := f.init.TenantID
	tina, tinaSecret, _ := f.firstRun("tina", f.addUser(root, rootSecret, tenant, "tina", store.RoleAdmin))
	otto, _, _ := f.firstRun("otto", f.addUser(root, rootSecret, tenant, "otto", store.RoleOperator))

	a := tina.get("/console/sensors")
	want(t, a, http.StatusOK, `aria-current="page">Sensors`, "No sensors are enrolled.", `id="sensor-token-form"`)
	form := url.Values{"name": {"dmz-1"}, "vantage": {"dmz"}}
	a = tina.post("/console/sensors/tokens", form)
	want(t, a, http.StatusUnauthorized, `id="stepup-form"`, "sensor.enroll")
	a = f.stepUpIfAsked(tina, "/console/sensors/tokens", tinaSecret, a)
	want(t, a, http.StatusOK, `id="enroll-command"`, "firewalliq sensor enroll --console https://"+strings.TrimPrefix(f.srv.URL, "https://")+" --token fiqst_")
	if fp := f.app.Sensors.CertSHA256(); fp != "" && !strings.Contains(a.body, "--cert-sha256 "+fp) {
		t.Fatalf("no fingerprint %s in the command:\n%s", fp, a.body)
	}
	// The secret is shown on this page only.
	if strings.Contains(tina.get("/console/sensors").body, "fiqst_") {
		t.Fatal("the token secret is shown again")
	}
	secret := regexp.MustCompile(`--token (fiqst_[A-Za-z0-9_-]+)`).FindStringSubmatch(a.body)[1]

	// The sensor host enrols over the API's enrolment endpoint.
	id := f.enrolSensor(secret)
	a = tina.get("/console/sensors")
	want(t, a, http.StatusOK, `id="sensor-`+id+`"`, "dmz-1", "dmz", "active", "test-version")

	// The operator sees the list and nothing to change.
	a = otto.get("/console/sensors")
	want(t, a, http.StatusOK, "dmz-1")
	if strings.Contains(a.body, `id="sensor-token-form"`) || strings.Contains(a.body, "/revoke") {
		t.Fatal("the operator is offered sensor forms")
	}
	want(t, otto.post("/console/sensors/tokens", form), http.StatusForbidden)

	// Silence: no heartbeat for longer than the threshold.
	f.clk.Advance(5 * time.Minute)
	if ids, err := f.app.Sensors.CheckSilent(f.ctx); err != nil || len(ids) != 1 {
		t.Fatalf("silent sensors %v, %v", ids, err)
	}
	a = tina.get("/console/sensors")
	want(t, a, http.StatusOK, "sensor-silent", "has gone silent")

	path := "/console/sensors/" + id + "/revoke"
	a = tina.post(path, nil)
	want(t, a, http.StatusUnauthorized, "sensor.revoke")
	wantRedirect(t, f.stepUpIfAsked(tina, path, tinaSecret, a), "/console/sensors")
	want(t, tina.get("/console/sensors"), http.StatusOK, "state-revoked")
}

// enrolSensor enrols a sensor with token secret over the API's enrolment
// endpoint, as `firewalliq sensor enroll` does, and returns its id.
func (f *fixture) enrolSensor(secret string) string {
	f.t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		f.t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		f.t.Fatal(err)
	}
	body, _ := json.Marshal(sensor.EnrollRequest{Token: secret, NKey: pub, Version: "test-version", ProfileSHA256: strings.Repeat("ab", 32)})
	resp, err := f.srv.Client().Post(f.srv.URL+sensor.EnrollPath, "application/json", bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out sensor.EnrollResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.SensorID == "" {
		f.t.Fatalf("enrol: %d %+v %v", resp.StatusCode, out, err)
	}
	return out.SensorID
}

// newScanWorldOn is newScanWorld on an existing fixture whose initial
// admin (root) has signed in.
func newScanWorldOn(t *testing.T, f *fixture, root *browser, rootSecret string) *scanWorld {
	t.Helper()
	tenant := f.init.TenantID
	w := &scanWorld{f: f, port: listener(t)}
	w.lead, w.leadS, _ = f.firstRun("lena", f.addUser(root, rootSecret, tenant, "lena", store.RoleSecurityLead))
	w.op, w.opS, _ = f.firstRun("otto", f.addUser(root, rootSecret, tenant, "otto", store.RoleOperator))
	w.ann, w.annS, _ = f.firstRun("ann", f.addUser(root, rootSecret, tenant, "ann", store.RoleApprover))
	w.ben, w.bS, _ = f.firstRun("ben", f.addUser(root, rootSecret, tenant, "ben", store.RoleApprover))
	w.aud, _, _ = f.firstRun("aud", f.addUser(root, rootSecret, tenant, "aud", store.RoleAuditor))
	pub, priv, pem := signingKey(t)
	a := w.lead.post("/console/keys", url.Values{"name": {"laptop"}, "public": {string(pem)}})
	wantRedirect(t, f.stepUpIfAsked(w.lead, "/console/keys", w.leadS, a), "/console/keys")
	w.dev, w.prod = f.registerScopes(w.lead, pub, priv, "tcp:"+strconv.Itoa(w.port)+","+strconv.Itoa(w.port+1))
	return w
}

// TestScanRequestFromSensor: the scan request form offers the tenant's
// active sensors as vantage points, and a request names the chosen one; an
// unknown sensor is refused and nothing is requested.
func TestScanRequestFromSensor(t *testing.T) {
	f := newFixture(t, func(c *appliance.Config) { c.Sensors.Advertise = "tls://127.0.0.1:4222" })
	root, rootSecret, _ := f.firstRun("root", f.init.OneTimePassword)
	tina, tinaSecret, _ := f.firstRun("tina", f.addUser(root, rootSecret, f.init.TenantID, "tina", store.RoleAdmin))
	a := f.stepUpIfAsked(tina, "/console/sensors/tokens", tinaSecret, tina.post("/console/sensors/tokens", url.Values{"name": {"core-1"}, "vantage": {"core"}}))
	id := f.enrolSensor(regexp.MustCompile(`--token (fiqst_[A-Za-z0-9_-]+)`).FindStringSubmatch(a.body)[1])
	w := newScanWorldOn(t, f, root, rootSecret)

	want(t, w.op.get("/console/scans"), http.StatusOK, `id="scan-vantage"`, `<option value="`+id+`">sensor core-1 (core)</option>`)
	a = w.op.post("/console/scans", url.Values{"scope": {w.prod}, "vantage": {id}})
	if a.status != http.StatusSeeOther {
		t.Fatalf("request from the sensor: %d %s", a.status, a.body)
	}
	want(t, w.op.get(a.location()), http.StatusOK, `&#34;vantage&#34;: &#34;`+id+`&#34;`)
}
