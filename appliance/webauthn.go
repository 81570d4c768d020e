package appliance

import (
	"crypto/x509"
	"net"
	"strconv"
	"strings"

	"firewalliq/appliance/auth"
)

// keyConfig is the WebAuthn relying party of the console: the configured
// rp_id and origins, or the console certificate's first DNS name other
// than "localhost" and not a wildcard (an RP ID must be a host name; else
// "localhost") and https://<rp_id> with the port
// of listen. A browser offers a key only to pages whose origin matches
// exactly, so the defaults fit a console reached by its certificate's
// name on its configured port.
func keyConfig(cfg Config, cert func() (*x509.Certificate, error)) auth.KeyConfig {
	kc := auth.KeyConfig{RPID: cfg.WebAuthn.RPID, Origins: cfg.WebAuthn.Origins}
	if kc.RPID == "" {
		kc.RPID = "localhost"
		if c, err := cert(); err == nil {
			for _, n := range c.DNSNames {
				if n != "localhost" && !strings.Contains(n, "*") {
					kc.RPID = n
					break
				}
			}
		}
	}
	if len(kc.Origins) == 0 {
		origin := "https://" + kc.RPID
		if _, port, err := net.SplitHostPort(cfg.Listen); err == nil && port != "443" && port != "" {
			if _, err := strconv.Atoi(port); err == nil {
				origin += ":" + port
			}
		}
		kc.Origins = []string{origin}
	}
	return kc
}

// consoleCert parses the console certificate.
func (a *Appliance) consoleCert() (*x509.Certificate, error) {
	c, err := a.Keys.TLSCertificate()
	if err != nil {
		return nil, err
	}
	if c.Leaf != nil {
		return c.Leaf, nil
	}
	return x509.ParseCertificate(c.Certificate[0])
}
