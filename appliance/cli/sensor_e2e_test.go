package cli

import (
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// TestSensorCommandsAgainstServer: against the real 'serve' with the fleet
// on, an admin creates an enrolment token (step-up, the secret printed
// once), a sensor host enrols through the API's /api/v1/sensors/enroll
// with 'sensor enroll', 'sensor list' and 'sensor show' report it, and
// 'sensor revoke' (step-up) revokes it; a used token enrols nothing.
func TestSensorCommandsAgainstServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := l.Addr().String()
	l.Close()
	e := startE2E(t, "FIQ_SENSORS_LISTEN="+listen)
	e.firstLogin()
	tenant := e.res.TenantID // root is the appliance's admin: it names the tenant

	if code, _, stderr := e.run("", "sensor", "token", "create", "--name", "edge"); code != ExitUsage || !strings.Contains(stderr, "--vantage") {
		t.Fatalf("token create without --vantage: exit %d, %s", code, stderr)
	}
	var tok map[string]any
	if err := json.Unmarshal([]byte(e.must(e.code()+"\n", "sensor", "token", "create", "--tenant", tenant, "--name", "edge", "--vantage", "dmz", "--json")), &tok); err != nil {
		t.Fatal(err)
	}
	secret, _ := tok["secret"].(string)
	if !strings.HasPrefix(secret, "fiqst_") {
		t.Fatalf("token create: %v", tok)
	}
	dir := filepath.Join(t.TempDir(), "sensor")
	var creds map[string]any
	if err := json.Unmarshal([]byte(e.must("", "sensor", "enroll", "--console", e.addr, "--token", secret, "--cert-sha256", e.pin, "--dir", dir, "--json")), &creds); err != nil {
		t.Fatal(err)
	}
	id, _ := creds["sensor_id"].(string)
	if id == "" || creds["vantage"] != "dmz" {
		t.Fatalf("enroll: %v", creds)
	}
	if code, _, stderr := e.run("", "sensor", "enroll", "--console", e.addr, "--token", secret, "--cert-sha256", e.pin, "--dir", filepath.Join(t.TempDir(), "again")); code != ExitFailure || !strings.Contains(stderr, "token") {
		t.Fatalf("used token: exit %d, %s", code, stderr)
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(e.must("", "sensor", "list", "--tenant", tenant, "--json")), &list); err != nil || len(list) != 1 || list[0]["id"] != id || list[0]["state"] != "active" {
		t.Fatalf("list: %v (%v)", list, err)
	}
	if out := e.must("", "sensor", "list", "--tenant", tenant); !strings.Contains(out, "VANTAGE") || !strings.Contains(out, "dmz") {
		t.Fatalf("list table: %s", out)
	}
	var one map[string]any
	if err := json.Unmarshal([]byte(e.must("", "sensor", "show", id, "--tenant", tenant, "--json")), &one); err != nil || one["name"] != "edge" {
		t.Fatalf("show: %v (%v)", one, err)
	}
	if code, _, stderr := e.run("", "sensor", "show", "sn_nobody", "--tenant", tenant); code != ExitFailure || !strings.Contains(stderr, "not_found") {
		t.Fatalf("show unknown: exit %d, %s", code, stderr)
	}
	if out := e.must(e.code()+"\n", "sensor", "revoke", id, "--tenant", tenant); !strings.Contains(out, "revoked "+id) {
		t.Fatalf("revoke: %s", out)
	}
	if err := json.Unmarshal([]byte(e.must("", "sensor", "show", id, "--tenant", tenant, "--json")), &one); err != nil || one["state"] != "revoked" {
		t.Fatalf("after revoke: %v (%v)", one, err)
	}
}
