package scope

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// TestSpecialScopesRefused: a scope that includes an unspecified, limited
// broadcast or multicast address is refused at signing and at verification,
// with the CIDR and the block named; excluding the block makes it valid.
func TestSpecialScopesRefused(t *testing.T) {
	pub := testKey.Public().(ed25519.PublicKey)
	tests := []struct {
		name    string
		cidrs   []string
		exclude []string
		want    string // "" for accepted
	}{
		{"this network", []string{"0.0.0.0/8"}, nil, "0.0.0.0/8 includes unspecified"},
		{"inside this network", []string{"0.1.2.0/24"}, nil, "0.1.2.0/24 includes unspecified"},
		{"multicast v4", []string{"224.0.0.0/24"}, nil, "224.0.0.0/24 includes multicast addresses (224.0.0.0/4)"},
		{"multicast v4 top", []string{"239.255.255.255"}, nil, "includes multicast"},
		{"limited broadcast", []string{"255.255.255.0/24"}, nil, "includes the limited broadcast address (255.255.255.255/32)"},
		{"limited broadcast host", []string{"255.255.255.255"}, nil, "limited broadcast"},
		{"v6 unspecified", []string{"::/32"}, nil, "::/32 includes the unspecified address (::/128)"},
		{"v6 multicast", []string{"ff02::/64"}, nil, "ff02::/64 includes multicast addresses (ff00::/8)"},
		{"second cidr named", []string{"10.0.0.0/24", "ff05::/112"}, nil, "ff05::/112 includes multicast"},
		{"excluded block is fine", []string{"::/32"}, []string{"::/128"}, ""},
		{"excluded broadcast is fine", []string{"255.255.255.0/24"}, []string{"255.255.255.255"}, ""},
		{"just below multicast", []string{"223.255.255.0/24"}, nil, ""},
		{"just above multicast", []string{"240.0.0.0/24"}, nil, ""},
		{"v6 below ff00::/8", []string{"feff::/32"}, nil, ""},
		{"a /48 is fine", []string{"2001:db8:20::/48"}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := baseDoc()
			d.CIDRs, d.Exclude = tt.cidrs, tt.exclude
			signed, err := Sign(d, testKey)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Sign: %v", err)
				}
				if _, err := Verify(signed, pub, testNow, testProfile(t)); err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrSpecialAddress) || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Sign = %v, want ErrSpecialAddress with %q", err, tt.want)
			}
			if err := d.CheckProfile(testProfile(t)); !errors.Is(err, ErrSpecialAddress) {
				t.Fatalf("CheckProfile = %v", err)
			}
			// A scope signed before the rule (here: signed over the raw
			// canonical form, bypassing Sign's check) is refused by Verify.
			forged := signUnchecked(t, d)
			if _, err := Verify(forged, pub, testNow, testProfile(t)); !errors.Is(err, ErrSpecialAddress) {
				t.Fatalf("Verify = %v, want ErrSpecialAddress", err)
			}
		})
	}
}

// signUnchecked signs d without validating it, as an old or hostile signer
// would.
func signUnchecked(t *testing.T, d Document) []byte {
	t.Helper()
	d.SignerKeyID = ""
	good, err := Sign(baseDoc(), testKey)
	if err != nil {
		t.Fatal(err)
	}
	_, sig, _ := Open(good)
	d.SignerKeyID = sig.KeyID
	if d.Exclude == nil {
		d.Exclude = []string{}
	}
	canon, err := d.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	s := ed25519.Sign(testKey, signedMessage(canon))
	var b strings.Builder
	b.WriteString(`{"scope":` + string(canon) + `,"signature":{"alg":"ed25519","key_id":"` + sig.KeyID + `","sig":"`)
	b.WriteString(base64.StdEncoding.EncodeToString(s) + `"}}`)
	return []byte(b.String())
}

func TestSpecial(t *testing.T) {
	tests := []struct {
		addr    string
		special bool
	}{
		{"0.0.0.0", true}, {"0.255.255.255", true}, {"1.0.0.0", false},
		{"224.0.0.1", true}, {"239.255.255.255", true}, {"223.255.255.255", false}, {"240.0.0.1", false},
		{"255.255.255.255", true}, {"255.255.255.254", false},
		{"::", true}, {"::1", false}, {"ff02::1", true}, {"feff::1", false},
		{"::ffff:224.0.0.1", true}, {"::ffff:10.0.0.1", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			a := netip.MustParseAddr(tt.addr)
			why, got := Special(a)
			if got != tt.special || got && why == "" || IsSpecial(a) != got {
				t.Fatalf("Special(%s) = %q, %v", tt.addr, why, got)
			}
		})
	}
	if _, ok := Special(netip.Addr{}); !ok || !IsSpecial(netip.Addr{}) {
		t.Fatal("invalid address is not special")
	}
	// IsSpecial (the send path's fast check) agrees with the prefix list
	// at every block's edges.
	for _, p := range SpecialPrefixes() {
		iv := prefixInterval(p)
		is4 := p.Addr().Is4()
		for _, a := range []netip.Addr{fromU128(iv.lo, is4), fromU128(iv.hi, is4), fromU128(iv.lo, is4).Prev(), fromU128(iv.hi, is4).Next()} {
			if !a.IsValid() {
				continue
			}
			want := false
			for _, q := range SpecialPrefixes() {
				want = want || q.Contains(a)
			}
			if _, got := Special(a); IsSpecial(a) != want || got != want {
				t.Errorf("%s: IsSpecial %v, Special %v, want %v", a, IsSpecial(a), got, want)
			}
		}
	}
}

// TestCIDRTargets: scope check accepts CIDR targets; a CIDR must lie wholly
// inside the scope and outside its excludes, and the reason names the
// excluded prefix or the first address outside.
func TestCIDRTargets(t *testing.T) {
	d := baseDoc()
	d.CIDRs = []string{"10.20.0.0/16", "10.30.0.0/24", "10.30.1.0/24", "2001:db8:20::/48"}
	d.Exclude = []string{"10.20.1.128/25", "2001:db8:20:ff::/64"}
	s := mustScope(t, d)
	tests := []struct {
		target string
		want   error
		reason string
	}{
		{"10.20.2.0/24", nil, ""},
		{"10.20.1.0/25", nil, ""},
		{"10.30.0.0/23", nil, ""}, // two adjacent scope CIDRs
		{"10.20.0.7/32", nil, ""},
		{"2001:db8:20::/48", ErrOutOfScope, "overlaps the excluded 2001:db8:20:ff::/64"},
		{"2001:db8:20:1::/64", nil, ""},
		{"2001:db8:20::/57", nil, ""},
		{"10.20.1.0/24", ErrOutOfScope, "10.20.1.0/24 overlaps the excluded 10.20.1.128/25"},
		{"10.20.1.192/26", ErrOutOfScope, "overlaps the excluded 10.20.1.128/25"},
		{"10.20.0.0/15", ErrOutOfScope, "10.20.0.0/15 overlaps the excluded"},
		{"10.30.0.0/22", ErrOutOfScope, "10.30.0.0/22 includes 10.30.2.0, which is in none of the scope's CIDRs"},
		{"10.31.0.0/24", ErrOutOfScope, "10.31.0.0/24 includes 10.31.0.0, which is in none"},
		{"2001:db8:21::/64", ErrOutOfScope, "includes 2001:db8:21::, which is in none"},
		{"10.20.1.1/24", ErrBadTarget, "host bits set; did you mean 10.20.1.0/24?"},
		{"10.20.1.0/024", ErrBadTarget, "not a plain decimal"},
		{"10.20.1.0/", ErrBadTarget, "not a plain decimal"},
		{"10.20.1.0/33", ErrBadTarget, ""},
		{"224.0.0.0/24", ErrBadTarget, "multicast"},
		{"0.0.0.0/8", ErrBadTarget, "unspecified"},
		{"fe80::/64", ErrBadTarget, "link-local"},
		{"::ffff:10.20.0.0/112", ErrBadTarget, "IPv4-mapped"},
		{"10.20.1.0/24 ", ErrBadTarget, "whitespace"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			got, err := s.Resolve(context.Background(), tt.target, nil)
			if tt.want == nil {
				if err != nil || !got.Prefix.IsValid() || got.Addrs != nil {
					t.Fatalf("Resolve = %+v, %v", got, err)
				}
				return
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("Resolve = %v, want %v with %q", err, tt.want, tt.reason)
			}
		})
	}
}

// TestExpand: a scan's expansion counts overlapping targets once, is held to
// the profile's MaxTargets (refused, not truncated), and a scope bigger than
// the cap is fine as long as each scan names a subset.
func TestExpand(t *testing.T) {
	d := baseDoc()
	d.CIDRs = []string{"10.20.0.0/16", "2001:db8:20::/48"}
	d.Exclude = []string{"10.20.1.128/25"}
	s := mustScope(t, d)
	p := testProfile(t)
	resolve := func(ts ...string) []Target {
		var out []Target
		for _, x := range ts {
			r, err := s.Resolve(context.Background(), x, nil)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		return out
	}
	set, err := s.Expand(resolve("10.20.2.0/24", "10.20.2.7", "10.20.2.128/25", "2001:db8:20::1", "2001:db8:20::/126"), p)
	if err != nil {
		t.Fatal(err)
	}
	if set.Size() != 256+4 {
		t.Fatalf("size %d", set.Size())
	}
	n := 0
	for a := range set.Targets(7) {
		if !set.Contains(a) || !s.Contains(a) {
			t.Fatalf("%s yielded but not contained", a)
		}
		n++
	}
	if n != 260 || set.Contains(netip.MustParseAddr("10.20.3.0")) {
		t.Fatalf("yielded %d", n)
	}
	if _, err := s.ExpandAll(p); !errors.Is(err, ErrExceedsProfile) {
		t.Fatalf("ExpandAll of a /48 = %v", err)
	}
	if _, err := s.Expand(resolve("2001:db8:20::/64"), p); !errors.Is(err, ErrExceedsProfile) || !strings.Contains(err.Error(), "allows 65536 per scan") {
		t.Fatalf("Expand /64 = %v", err)
	}
	// Exactly the cap is fine, one more address is refused.
	if set, err := s.Expand(resolve("2001:db8:20::/112"), p); err != nil || set.Size() != uint64(p.MaxTargets) {
		t.Fatalf("Expand at the cap = %v", err)
	}
	if _, err := s.Expand(resolve("2001:db8:20::/112", "2001:db8:20::1:0"), p); !errors.Is(err, ErrExceedsProfile) {
		t.Fatalf("Expand above the cap = %v", err)
	}
	// Hand-built targets are checked again.
	bad := []struct {
		name string
		t    Target
		want error
	}{
		{"outside", Target{Input: "x", Addrs: []netip.Addr{netip.MustParseAddr("10.21.0.1")}}, ErrOutOfScope},
		{"excluded prefix", Target{Input: "x", Prefix: netip.MustParsePrefix("10.20.1.128/26")}, ErrOutOfScope},
		{"special", Target{Input: "x", Addrs: []netip.Addr{netip.MustParseAddr("224.0.0.1")}}, ErrBadTarget},
		{"empty", Target{Input: "x"}, ErrBadTarget},
		{"both", Target{Input: "x", Prefix: netip.MustParsePrefix("10.20.0.0/24"), Addrs: []netip.Addr{netip.MustParseAddr("10.20.0.1")}}, ErrBadTarget},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Expand([]Target{tt.t}, p); !errors.Is(err, tt.want) {
				t.Fatalf("Expand = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := s.Expand(nil, p); !errors.Is(err, ErrBadTarget) {
		t.Fatalf("Expand(nil) = %v", err)
	}
}
