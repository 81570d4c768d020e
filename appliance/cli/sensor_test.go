package cli

import (
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"firewalliq/appliance"
	"firewalliq/appliance/internal/apptest"
	"firewalliq/appliance/keyring"
	"firewalliq/appliance/sensor"
)

// TestSensorEnrollAndRun: 'sensor enroll' stores 0600 credentials from a
// one-time token over a pinned TLS connection; bad input exits 2; 'sensor
// run' of a directory without credentials, or of a revoked sensor, exits 1
// with the reason.
func TestSensorEnrollAndRun(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := l.Addr().String()
	l.Close()
	f := apptest.New(t, func(c *appliance.Config) { c.Sensors.Listen = listen })
	svc := f.App.Sensors
	if err := svc.Start(f.Ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Stop)
	cert, err := f.App.Keys.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(sensor.EnrollHandler(svc))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()
	fp, err := keyring.CertFingerprint(f.App.Keys.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	admin := f.Users["admin"]
	tok, err := svc.CreateToken(f.Ctx, admin.P, "", "edge", "dmz", f.Code(admin))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "sensor")
	env := map[string]string{"FIQ_SENSOR_TOKEN": tok.Secret, "FIQ_PRODUCTION": "false"}
	colons := strings.ToUpper(fp[:2]) + ":" + fp[2:]

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing console", []string{"sensor", "enroll", "--cert-sha256", fp, "--dir", dir}, ExitUsage, "required"},
		{"bad fingerprint", []string{"sensor", "enroll", "--console", srv.URL, "--cert-sha256", "abc", "--dir", dir}, ExitUsage, "64 hex"},
		{"run before enrolment", []string{"sensor", "run", "--dir", dir}, ExitFailure, "not enrolled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, env, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
		})
	}
	code, out, stderr := runCLI(t, env, "sensor", "enroll", "--console", srv.URL, "--cert-sha256", colons, "--dir", dir, "--json")
	if code != ExitOK {
		t.Fatalf("enroll: exit %d: %s", code, stderr)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(out), &got); err != nil || got["name"] != "edge" || got["vantage"] != "dmz" {
		t.Fatalf("output %q (%v)", out, err)
	}
	fi, err := os.Stat(filepath.Join(dir, sensor.CredentialsFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", fi, err)
	}
	if code, _, stderr := runCLI(t, env, "sensor", "enroll", "--console", srv.URL, "--cert-sha256", fp, "--dir", dir); code != ExitFailure || !strings.Contains(stderr, "already enrolled") {
		t.Fatalf("second enroll: exit %d: %s", code, stderr)
	}
	if _, err := svc.Revoke(f.Ctx, admin.P, "", got["sensor_id"], f.Code(admin)); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, env, "sensor", "run", "--dir", dir, "--no-raw"); code != ExitFailure || !strings.Contains(stderr, "refused") {
		t.Fatalf("run revoked: exit %d: %s", code, stderr)
	}
}
