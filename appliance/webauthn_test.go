package appliance

import (
	"crypto/x509"
	"errors"
	"slices"
	"testing"
)

// TestKeyConfig: the WebAuthn relying party defaults to the console
// certificate's first DNS name other than localhost and the port of
// listen; configured values win.
func TestKeyConfig(t *testing.T) {
	cert := func(names ...string) func() (*x509.Certificate, error) {
		return func() (*x509.Certificate, error) { return &x509.Certificate{DNSNames: names}, nil }
	}
	broken := func() (*x509.Certificate, error) { return nil, errors.New("no certificate") }
	tests := []struct {
		name    string
		cfg     func(*Config)
		cert    func() (*x509.Certificate, error)
		rpID    string
		origins []string
	}{
		{"localhost only", nil, cert("localhost"), "localhost", []string{"https://localhost:8443"}},
		{"appliance name", nil, cert("localhost", "fw.example.net"), "fw.example.net", []string{"https://fw.example.net:8443"}},
		{"wildcard skipped", nil, cert("*.example.net", "fw.example.net"), "fw.example.net", []string{"https://fw.example.net:8443"}},
		{"port 443", func(c *Config) { c.Listen = ":443" }, cert("fw.example.net"), "fw.example.net", []string{"https://fw.example.net"}},
		{"unreadable certificate", nil, broken, "localhost", []string{"https://localhost:8443"}},
		{"configured", func(c *Config) {
			c.WebAuthn = WebAuthnConfig{RPID: "example.net", Origins: []string{"https://fw.example.net"}}
		}, cert("localhost"), "example.net", []string{"https://fw.example.net"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			kc := keyConfig(cfg, tt.cert)
			if kc.RPID != tt.rpID || !slices.Equal(kc.Origins, tt.origins) {
				t.Fatalf("got %q %v, want %q %v", kc.RPID, kc.Origins, tt.rpID, tt.origins)
			}
		})
	}
}
