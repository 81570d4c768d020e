package cli

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"firewalliq/probe/keys"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// labModeEnv adds FIQ_PRODUCTION=false to vars: a repository build carries
// the development-signed profile, which production mode (the default)
// refuses for scans (TestProductionModeRefusesDevBuild).
func labModeEnv(vars map[string]string) map[string]string {
	out := map[string]string{"FIQ_PRODUCTION": "false"}
	for k, v := range vars {
		out[k] = v
	}
	return out
}

// probeScope signs a scope over the loopback addresses with the given
// environment and writes it and the public key to a temporary directory.
func probeScope(t *testing.T, env, ports string) (signed, pub string) {
	t.Helper()
	dir := t.TempDir()
	pk, sk, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.WritePair(filepath.Join(dir, "lead"), pk, sk); err != nil {
		t.Fatal(err)
	}
	doc := scope.Document{
		ID: "loopback", Tenant: "acme", Name: "loopback test", Environment: env,
		CIDRs: []string{"127.0.0.1/32"}, Exclude: []string{}, Ports: ports,
		Probes:    []safety.Kind{safety.KindTCPSyn, safety.KindTCPConnect, safety.KindBanner},
		NotBefore: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC),
		MaxPPS: 400,
	}
	b, err := scope.Sign(doc, sk)
	if err != nil {
		t.Fatal(err)
	}
	signed = filepath.Join(dir, "scope.signed.json")
	if err := os.WriteFile(signed, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return signed, filepath.Join(dir, "lead.pub")
}
