package scope

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"firewalliq/probe/safety"
)

var (
	testNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	// testKey is a fixed key so vectors are reproducible (seed 32 x 0x01).
	testKey = ed25519.NewKeyFromSeed(slices.Repeat([]byte{1}, 32))
)

func testProfile(t testing.TB) safety.Profile {
	t.Helper()
	p, err := safety.Load()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func baseDoc() Document {
	return Document{
		ID: "sc-1", Tenant: "acme", Name: "DMZ segmentation", Environment: EnvNonProduction,
		CIDRs: []string{"10.0.0.0/24", "2001:db8::/120"}, Exclude: []string{"10.0.0.0/28"},
		Ports: "tcp:22,80,443,8000-8100 udp:53,123", Probes: []safety.Kind{safety.KindTCPSyn, safety.KindUDP},
		NotBefore: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC),
		MaxPPS: 400,
	}
}

func mustScope(t testing.TB, d Document) *Scope {
	t.Helper()
	signed, err := Sign(d, testKey)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	s, err := Verify(signed, testKey.Public().(ed25519.PublicKey), testNow, testProfile(t))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return s
}

func TestSignVerifyContains(t *testing.T) {
	s := mustScope(t, baseDoc())
	if got, want := s.Size(), uint64(256-16+256); got != want {
		t.Fatalf("Size = %d, want %d", got, want)
	}
	tests := []struct {
		addr string
		in   bool
	}{
		{"10.0.0.16", true}, {"10.0.0.255", true}, {"10.0.0.15", false}, {"10.0.1.0", false},
		{"::ffff:10.0.0.20", true}, {"::ffff:10.0.0.1", false}, {"2001:db8::ff", true}, {"2001:db8::100", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if got := s.Contains(netip.MustParseAddr(tt.addr)); got != tt.in {
				t.Fatalf("Contains = %v", got)
			}
		})
	}
	r, err := s.Resolve(context.Background(), "10.0.0.3", nil)
	if !errors.Is(err, ErrOutOfScope) || !strings.Contains(err.Error(), "excluded by 10.0.0.0/28") {
		t.Fatalf("Resolve excluded = %v, %v", r, err)
	}
}
