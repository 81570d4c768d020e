package ui

import (
	"database/sql"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"

	"firewalliq/appliance/sensor"
)

// addSensor writes an enrolled sensor of tenant straight into the store
// (test set-up: the fixture runs no fleet, so no sensor can enrol).
func (f *fixture) addSensor(tenant, id, name string) {
	f.t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		f.t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	err = f.st.InTx(f.ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(f.ctx, `INSERT INTO sensors (id, tenant_id, name, vantage, nkey, state, enrolled_at, version, profile_sha256)
			VALUES (?, ?, ?, ?, ?, 'active', ?, 'test', '')`, id, tenant, name, "vantage-"+name, pub, f.clk.now().UTC().Format("2006-01-02T15:04:05.999999999Z07:00"))
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// TestSensorRoutes: an enrolment token is created by an admin with
// step-up and shown once; sensors are listed and shown to the tenant's
// readers only; revocation needs step-up and is audited; the enrolment
// exchange needs no session, refuses malformed requests and answers
// fleet_off when no fleet runs.
func TestSensorRoutes(t *testing.T) {
	f := newFixture(t)
	tok := request{method: "POST", path: "/api/v1/sensors/tokens", as: "a-admin", body: jsonBody(map[string]string{"name": "edge-1", "vantage": "dmz"})}
	rec, acts := f.sensitive(tok)
	if rec.Code != 201 || !strings.Contains(string(rec.body), `"secret":"fiqst_`) {
		t.Fatalf("create token: %d %s", rec.Code, rec.body)
	}
	if !slices.Contains(acts, "sensor.token.create") {
		t.Fatalf("audit %v", acts)
	}
	bad := []struct {
		name string
		r    request
		want int
	}{
		{"operator may not create tokens", request{method: "POST", path: "/api/v1/sensors/tokens", as: "a-op", body: jsonBody(map[string]string{"name": "x", "vantage": "dmz"})}, 403},
		{"no session", request{method: "POST", path: "/api/v1/sensors/tokens", body: jsonBody(map[string]string{"name": "x", "vantage": "dmz"})}, 401},
		{"unknown field", request{method: "POST", path: "/api/v1/sensors/tokens", as: "a-admin", body: `{"name":"x","vantage":"dmz","role":"admin"}`}, 400},
		{"enrol: malformed nkey", request{method: "POST", path: sensor.EnrollPath, body: jsonBody(map[string]string{"token": "fiqst_x", "nkey": "not-a-key"})}, 400},
		{"enrol: not JSON", request{method: "POST", path: sensor.EnrollPath, body: "token"}, 400},
		{"support may not list", request{method: "GET", path: "/api/v1/sensors", as: "a-sup"}, 403},
		{"unknown sensor", request{method: "GET", path: "/api/v1/sensors/sn_nobody", as: "a-admin"}, 404},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if rec := f.do(tt.r); rec.Code != tt.want {
				t.Fatalf("%d %s, want %d", rec.Code, rec.Body, tt.want)
			}
		})
	}
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	if rec := f.do(request{method: "POST", path: sensor.EnrollPath, body: jsonBody(map[string]string{"token": "fiqst_x", "nkey": pub})}); rec.Code != 503 || !strings.Contains(rec.Body.String(), "fleet_off") {
		t.Fatalf("enrol without a fleet: %d %s", rec.Code, rec.Body)
	}

	f.addSensor(f.a, "sn_0123456789abcdef", "edge-1")
	if rec := f.do(request{method: "GET", path: "/api/v1/sensors", as: "a-aud"}); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"vantage":"vantage-edge-1"`) {
		t.Fatalf("list: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/sensors/sn_0123456789abcdef", as: "a-op"}); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"state":"active"`) {
		t.Fatalf("show: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/sensors/sn_0123456789abcdef", as: "b-admin"}); rec.Code != 404 {
		t.Fatalf("other tenant: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/sensors", as: "b-admin"}); rec.Code != 200 || strings.Contains(rec.Body.String(), "edge-1") {
		t.Fatalf("other tenant's list: %d %s", rec.Code, rec.Body)
	}
	rev := request{method: "POST", path: "/api/v1/sensors/sn_0123456789abcdef/revoke", as: "a-admin"}
	rec, acts = f.sensitive(rev)
	if rec.Code != 200 || !strings.Contains(string(rec.body), `"state":"revoked"`) || !slices.Contains(acts, "sensor.revoke") {
		t.Fatalf("revoke: %d %s, audit %v", rec.Code, rec.body, acts)
	}
	// Revoking again is refused before any step-up is asked for.
	if rec := f.do(rev); rec.Code != 409 {
		t.Fatalf("revoke again: %d %s", rec.Code, rec.Body)
	}
}
