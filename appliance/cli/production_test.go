//go:build !lab

package cli

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"firewalliq/probe/keys"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// TestProductionModeRefusesDevBuild is the regression test of "Production
// mode accepts a development-signed profile": this repository build carries
// the development-signed profile, so with production mode on (the default)
// serve exits 4 with a clear message, while the offline commands
// still run; with production mode off everything runs as before.
func TestProductionModeRefusesDevBuild(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	if code, _, stderr := runCLI(t, nil, "init", "--data", data, "--admin", "root"); code != 0 {
		t.Fatalf("init in production mode: exit %d %s", code, stderr)
	}
	signed, pub := probeScope(t, scope.EnvNonProduction, "tcp:9")
	prod := map[string]string{"FIQ_DATA": data}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		code int
		msg  string
	}{
		{name: "serve refused", env: prod, args: []string{"serve", "--listen", "127.0.0.1:0"}, code: ExitProduction, msg: "development key " + safety.DevelopmentKeyID},
		{name: "serve refused with production explicit", env: map[string]string{"FIQ_DATA": data, "FIQ_PRODUCTION": "true"}, args: []string{"serve", "--listen", "127.0.0.1:0"}, code: ExitProduction, msg: "may not run in production mode"},
		// The shipped build has no stand-alone scan: scans go through the
		// scan service; the probe command exists only in a lab build
		// (TestLabBuildRefusesProduction).
		{name: "no probe command", env: labModeEnv(prod), args: []string{"probe"}, code: ExitUsage, msg: `unknown command "probe"`},
		{name: "serve passes the check with production off", env: map[string]string{"FIQ_DATA": data + "-missing", "FIQ_PRODUCTION": "false"}, args: []string{"serve"}, code: 1, msg: "not initialised"},
		{name: "version runs", env: prod, args: []string{"version"}, code: 0},
		{name: "profile show runs", env: prod, args: []string{"profile", "show"}, code: 0},
		{name: "audit verify runs", env: prod, args: []string{"audit", "verify"}, code: 0},
		{name: "scope verify runs", env: prod, args: []string{"scope", "verify", "--pub", pub, signed}, code: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tt.env, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.msg) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.msg)
			}
			if code != 0 && strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Fatalf("refusal is not one line: %q", stderr)
			}
		})
	}
}

// TestRefuseUnfitBuild drives the check with a release-signed profile too,
// which a repository build cannot embed.
func TestRefuseUnfitBuild(t *testing.T) {
	dev, err := safety.Load()
	if err != nil {
		t.Fatal(err)
	}
	pk, sk, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	release, err := safety.Verify(dev.Bytes(), safety.Sign(dev.Bytes(), sk), pk)
	if err != nil {
		t.Fatal(err)
	}
	loader := func(p safety.Profile, err error) func() (safety.Profile, error) {
		return func() (safety.Profile, error) { return p, err }
	}
	tests := []struct {
		name       string
		production bool
		load       func() (safety.Profile, error)
		refused    bool
	}{
		{name: "development key, production", production: true, load: loader(dev, nil), refused: true},
		{name: "development key, production off", production: false, load: loader(dev, nil)},
		{name: "release key, production", production: true, load: loader(release, nil)},
		{name: "profile fails to verify, production", production: true, load: loader(safety.Profile{}, safety.ErrSignature), refused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := refuseUnfitBuild("serve", tt.production, tt.load)
			if tt.refused != (err != nil) {
				t.Fatalf("refuseUnfitBuild = %v, refused want %v", err, tt.refused)
			}
			var ec exitCoder
			if err != nil && (!errors.As(err, &ec) || ec.ExitCode() != ExitProduction) {
				t.Fatalf("error %v does not exit %d", err, ExitProduction)
			}
		})
	}
}

// TestVersionAndProfileShowSigner: both say which key signed the profile
// and whether production mode accepts the build.
func TestVersionAndProfileShowSigner(t *testing.T) {
	want := "signed by:  development key " + safety.DevelopmentKeyID + " (not a vendor release); production mode: refused"
	if code, stdout, stderr := runCLI(t, nil, "version"); code != 0 || !strings.Contains(stdout, want) {
		t.Fatalf("version: exit %d %s\n%s", code, stderr, stdout)
	}
	want = "signed by:            development key " + safety.DevelopmentKeyID
	if code, stdout, stderr := runCLI(t, nil, "profile", "show"); code != 0 || !strings.Contains(stdout, want) {
		t.Fatalf("profile show: exit %d %s\n%s", code, stderr, stdout)
	}
	for _, tc := range []struct {
		args   []string
		nested bool // version --json holds the report under "profile"
	}{{[]string{"profile", "show", "--json"}, false}, {[]string{"version", "--json"}, true}} {
		code, stdout, stderr := runCLI(t, nil, tc.args...)
		if code != 0 {
			t.Fatalf("%v: exit %d %s", tc.args, code, stderr)
		}
		var p profileReport
		var v struct {
			Profile profileReport `json:"profile"`
		}
		var err error
		if tc.nested {
			err = json.Unmarshal([]byte(stdout), &v)
			p = v.Profile
		} else {
			err = json.Unmarshal([]byte(stdout), &p)
		}
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if p.Signer != safety.SignerDevelopment || p.ReleaseKeyID != safety.DevelopmentKeyID || p.Production || p.ProductionError == "" || p.LabBuild {
			t.Fatalf("%v: %+v", tc.args, p)
		}
	}
}
