package siem

import (
	"errors"
	"strings"
	"testing"
	"unicode"
)

// FuzzValidate: Validate never panics, errors always wrap
// ErrInvalidDestination, and what it accepts has a printable name of at
// most MaxNameLen bytes and, for webhooks, no credentials in the URL.
func FuzzValidate(f *testing.F) {
	// Seeds: valid syslog and webhook destinations, then the refusals the
	// service tests name (control characters, ports, credentials).
	f.Add("soc", KindUDP, "127.0.0.1:514")
	f.Add("hook", KindWebhook, "https://127.0.0.1:8443/x")
	f.Add("soc\x1b", KindTCP, "127.0.0.1:601")
	f.Add("p", KindTCP, "127.0.0.1:65536")
	f.Add("w", KindWebhook, "https://u:p@127.0.0.1/x")
	f.Add("w", KindWebhook, "https://127.0.0.1\n/x")
	f.Add("v6", KindUDP, "[::1]:514")
	f.Fuzz(func(t *testing.T, name, kind, addr string) {
		d := Destination{Name: name, Kind: kind, Address: addr, HMACKey: []byte("0123456789abcdef")}
		err := d.Validate()
		if err != nil {
			if !errors.Is(err, ErrInvalidDestination) {
				t.Fatalf("error %v does not wrap ErrInvalidDestination", err)
			}
			return
		}
		if len(name) > MaxNameLen || strings.ContainsFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) {
			t.Fatalf("accepted name %q", name)
		}
		if kind == KindWebhook && strings.Contains(addr, "@") && strings.Contains(strings.SplitN(strings.TrimPrefix(addr, "https://"), "/", 2)[0], "@") {
			t.Fatalf("accepted credentials in %q", addr)
		}
	})
}
