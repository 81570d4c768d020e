package scan

import (
	"bytes"
	"net/netip"
	"testing"

	"firewalliq/probe/job"
	"firewalliq/probe/safety"
)

// FuzzDecodeRequest: a stored request is accepted only in canonical form,
// and what is accepted re-encodes to the same bytes.
func FuzzDecodeRequest(f *testing.F) {
	r := job.Request{ID: "scan_1", Tenant: "alpha", Requester: "u_1", ScopeSHA256: "ab", Targets: []string{"127.0.0.1", "10.0.0.0/24"},
		Ports: "tcp:22,443", Probes: []safety.Kind{safety.KindTCPConnect}, Rate: 50, Vantage: "local"}
	good, err := r.Canonical()
	if err != nil {
		f.Fatal(err)
	}
	// Seeds: a canonical request, the same with whitespace, reordered
	// members, a wrong type, and not JSON.
	f.Add(good)
	f.Add(bytes.ReplaceAll(good, []byte(","), []byte(", ")))
	f.Add([]byte(`{"tenant":"alpha","id":"scan_1"}`))
	f.Add([]byte(`{"rate":"fast"}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRequest(b)
		if err != nil {
			return
		}
		c, err := r.Canonical()
		if err != nil || !bytes.Equal(c, b) {
			t.Fatalf("accepted %q, re-encodes to %q (%v)", b, c, err)
		}
	})
}

// TestSubtract: the parts of a prefix outside the excludes cover exactly
// the addresses not excluded.
func TestSubtract(t *testing.T) {
	tests := []struct {
		name    string
		p       string
		ex      []string
		want    int // addresses left
		entries int // prefixes
	}{
		{"no excludes", "10.0.0.0/24", nil, 256, 1},
		{"one half out", "10.0.0.0/24", []string{"10.0.0.128/25"}, 128, 1},
		{"one address out", "10.0.0.0/24", []string{"10.0.0.7/32"}, 255, 8},
		{"all out", "10.0.0.0/24", []string{"10.0.0.0/16"}, 0, 0},
		{"ipv6", "2001:db8::/120", []string{"2001:db8::80/121"}, 128, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ex []netip.Prefix
			for _, e := range tt.ex {
				ex = append(ex, netip.MustParsePrefix(e))
			}
			out := subtract(netip.MustParsePrefix(tt.p), ex, nil, 1<<20)
			n := 0
			for _, p := range out {
				n += 1 << (p.Addr().BitLen() - p.Bits())
				for _, e := range ex {
					if p.Overlaps(e) {
						t.Fatalf("%s overlaps exclude %s", p, e)
					}
				}
			}
			if n != tt.want || len(out) != tt.entries {
				t.Fatalf("%v: %d addresses in %d prefixes, want %d in %d", out, n, len(out), tt.want, tt.entries)
			}
		})
	}
}
