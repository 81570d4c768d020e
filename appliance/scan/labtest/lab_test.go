package labtest

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"firewalliq/audit"
	"firewalliq/probe/keys"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"firewalliq/appliance/internal/apptest"
	"firewalliq/appliance/scan"
	"firewalliq/probe/lab"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// labT builds a lab for a parent test; it skips under -short (a scan takes
// 10-20 s) and, through lab.NewT, when not root.
func labT(t *testing.T) *lab.Lab {
	t.Helper()
	if testing.Short() {
		t.Skip("scan service lab tests run real scans; skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("the scan service lab tests need root (network namespaces, nftables, raw sockets); run as root, as CI does")
	}
	if safety.LabBuild() {
		// The caps proved on the wire are the default profile's; the lab
		// profile's million pps would make these scans a flood.
		t.Skip("the scan service lab tests hold scans to the default profile; run them without -tags lab")
	}
	return lab.NewT(t, lab.Options{})
}

// profile is the compiled-in safety profile.
func profile(t *testing.T) safety.Profile {
	t.Helper()
	p, err := safety.Load()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestServiceScanMatchesGroundTruth: a production scan of the whole target
// zone (510 in-scope v4+v6 hosts, 14 ports and echo, tcp-syn/udp/icmp-echo)
// requested, dual-approved and started through the scan service; every
// stored row equals the lab's ground truth (ICMP type and code of every
// rejection included), the child checked evidence, audit trail and SIEM
// outbox, and the firewall capture shows nothing out of scope, nothing to
// the excluded host or the outside zone, and no 100 ms window above
// rate/10+1.
func TestServiceScanMatchesGroundTruth(t *testing.T) {
	l := labT(t)
	rate := profile(t).GlobalPPS
	r := runChild(t, l, childConfig{Mode: "e2e", Rate: rate})
	excluded := []netip.Addr{hostAddr(l.Target.V4, excludedHost), hostAddr(l.Target.V6, excludedHost)}
	inScope := func(a netip.Addr) bool {
		a = a.Unmap()
		return l.Target.Contains(a) && a != excluded[0] && a != excluded[1]
	}
	// What was asked: every in-scope host times every port, and echo.
	var addrs []netip.Addr
	for _, z := range []netip.Prefix{l.Target.V4, l.Target.V6} {
		for _, a := range lab.Hosts(z, 256) {
			if inScope(a) {
				addrs = append(addrs, a)
			}
		}
	}
	ports, err := scope.ParsePorts(allPorts)
	if err != nil {
		t.Fatal(err)
	}
	var asked []lab.Key
	for _, p := range ports {
		asked = append(asked, lab.Keys(addrs, p.Proto, []uint16{p.Number})...)
	}
	asked = append(asked, lab.Keys(addrs, lab.ICMP, []uint16{0})...)
	obs := make([]lab.Observation, 0, len(r.out.Results))
	rows := map[lab.Key]scan.Result{}
	for _, res := range r.out.Results {
		a, err := netip.ParseAddr(res.Target)
		if err != nil {
			t.Fatalf("stored target %q: %v", res.Target, err)
		}
		k := lab.Key{Addr: a.Unmap(), Proto: res.Proto, Port: uint16(res.Port)}
		if _, dup := rows[k]; dup {
			t.Errorf("duplicate stored row %s", k)
		}
		rows[k] = res
		obs = append(obs, lab.Observation{Key: k, State: lab.State(res.State), Reason: res.Reason})
	}
	acc := l.Truth.Compare(asked, obs)
	t.Logf("accuracy: %d/%d right, %d missing, %d extra; by state %v", acc.Right, acc.Expected, acc.Missing, acc.Extra, acc.ByState)
	if acc.Expected != len(asked) || acc.Right != acc.Expected || acc.Extra != 0 {
		t.Errorf("%d of %d rows right, %d asked, %d extra", acc.Right, acc.Expected, len(asked), acc.Extra)
	}
	for i, m := range acc.Mismatches {
		if i == 30 {
			t.Errorf("... %d more mismatches", len(acc.Mismatches)-i)
			break
		}
		t.Errorf("%s: got %q (%s), want %q (%s, rule %q)", m.Key, m.Got, m.Reason, m.Want.State, m.Want.Reason, m.Want.Rule)
	}
	rejected := 0
	for k, res := range rows {
		want, ok := l.Truth.Expect(k.Addr, k.Proto, k.Port)
		if !ok || want.ICMPType < 0 || lab.State(res.State) != want.State {
			continue
		}
		rejected++
		if res.ICMPType == nil || res.ICMPCode == nil || *res.ICMPType != want.ICMPType || *res.ICMPCode != want.ICMPCode {
			t.Errorf("%s: stored icmp %v/%v, want type %d code %d", k, res.ICMPType, res.ICMPCode, want.ICMPType, want.ICMPCode)
		}
	}
	if rejected == 0 {
		t.Error("no rejected row with an ICMP type and code: the comparison proved nothing")
	}
	// The wire.
	if bad := lab.OutOfScope(r.pkts, inScope, l.ScannerV4, l.ScannerV6); len(bad) > 0 {
		t.Errorf("%d packets left the scope, first %+v", len(bad), bad[0])
	}
	probes := lab.Probes(r.pkts, l.ScannerV4, l.ScannerV6)
	w := lab.WorstWindow(probes, 100*time.Millisecond)
	t.Logf("wire: %d probes, worst 100 ms window %d (cap %d), %.1f pps; service: wall %v, cpu %v",
		len(probes), w.Packets, rate/10+1, lab.Rate(probes), r.out.Wall.Round(time.Millisecond), r.out.CPU.Round(time.Millisecond))
	if w.Packets > rate/10+1 {
		t.Errorf("worst 100 ms window %d at %s, cap %d", w.Packets, w.Start.Format(time.RFC3339Nano), rate/10+1)
	}
	if len(probes) < len(asked) {
		t.Errorf("wire shows %d probes for %d asked", len(probes), len(asked))
	}
}

// TestTwoScansShareTheCaps: two tenants' scans started together, one over
// 16 hosts and one over 4 of them (400 TCP ports each, both asking for the
// profile's full rate), stay together under the profile's caps on the
// wire: no 100 ms window above global_pps/10+1, and none above
// per_host_pps/10+1 for any host, the 4 hosts both scans target included.
func TestTwoScansShareTheCaps(t *testing.T) {
	l := labT(t)
	prof := profile(t)
	r := runChild(t, l, childConfig{Mode: "pair", Rate: prof.GlobalPPS})
	probes := lab.Probes(r.pkts, l.ScannerV4, l.ScannerV6)
	globalCap, hostCap := prof.GlobalPPS/10+1, prof.PerHostPPS/10+1
	w := lab.WorstWindow(probes, 100*time.Millisecond)
	t.Logf("wire: %d probes, worst 100 ms window %d (global cap %d), %.1f pps; jobs %+v", len(probes), w.Packets, globalCap, lab.Rate(probes), r.out.Jobs)
	if w.Packets > globalCap {
		t.Errorf("worst 100 ms window %d at %s, global cap %d", w.Packets, w.Start.Format(time.RFC3339Nano), globalCap)
	}
	byHost := map[netip.Addr][]lab.Packet{}
	for _, p := range probes {
		byHost[p.Dst] = append(byHost[p.Dst], p)
	}
	wide, hot := netip.MustParsePrefix(wideCIDR), netip.MustParsePrefix(hotCIDR)
	for h, ps := range byHost {
		if !wide.Contains(h) {
			t.Errorf("%d probes to %s, outside both scans", len(ps), h)
			continue
		}
		hw := lab.WorstWindow(ps, 100*time.Millisecond)
		if hot.Contains(h) {
			t.Logf("host %s (both scans): %d probes, worst 100 ms window %d (per-host cap %d), %.1f pps", h, len(ps), hw.Packets, hostCap, lab.Rate(ps))
		}
		if hw.Packets > hostCap {
			t.Errorf("host %s: worst 100 ms window %d at %s, per-host cap %d", h, hw.Packets, hw.Start.Format(time.RFC3339Nano), hostCap)
		}
	}
	// Each hot host got both scans' 400 ports (retries may add some).
	for a := hot.Addr(); hot.Contains(a); a = a.Next() {
		if n := len(byHost[a]); n < 800 {
			t.Errorf("host %s: %d probes, want both scans' 400", a, n)
		}
	}
}

// TestSpecialAddresses: a scope including unspecified, multicast or
// limited broadcast addresses is refused at registration, whoever signed
// it; and the engine, asked to send to such addresses by a containment
// that allows everything, sends nothing to them (the capture shows only
// the control host's probes).
func TestSpecialAddresses(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the scan service lab tests need root (network namespaces, nftables, raw sockets); run as root, as CI does")
	}
	t.Run("registration", func(t *testing.T) {
		f := apptest.New(t)
		lead := f.Users["security_lead"]
		pub, priv := leadKey(t, f, lead)
		for _, tt := range []struct {
			name, cidr string
		}{
			{"this network", "0.0.0.0/8"},
			{"multicast v4", "224.0.0.0/24"},
			{"limited broadcast", "255.255.255.255/32"},
			{"v6 unspecified", "::/128"},
			{"v6 multicast", "ff02::/64"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				now := f.Clock.Now()
				doc := scope.Document{ID: "special", Tenant: "alpha", Name: "special", Environment: scope.EnvNonProduction,
					CIDRs: []string{"198.18.1.0/24", tt.cidr}, Exclude: []string{}, Ports: "tcp:22", Probes: []safety.Kind{safety.KindTCPConnect},
					NotBefore: now.Add(-time.Hour).Truncate(time.Second), NotAfter: now.Add(time.Hour).Truncate(time.Second), MaxPPS: 10}
				if _, err := scope.Sign(doc, priv); !errors.Is(err, scope.ErrSpecialAddress) {
					t.Fatalf("Sign: %v, want ErrSpecialAddress", err)
				}
				mark := f.Head()
				_, err := f.App.Scopes.Register(f.Ctx, lead.P, "", forge(t, doc, pub, priv))
				if !errors.Is(err, scope.ErrSpecialAddress) || !strings.Contains(err.Error(), tt.cidr) {
					t.Fatalf("Register: %v, want ErrSpecialAddress naming %s", err, tt.cidr)
				}
				if es := f.Entries(mark, audit.ActScopeRegister); len(es) != 0 {
					t.Fatalf("refused scope audited as registered: %+v", es)
				}
				if list, err := f.App.Scopes.List(f.Ctx, lead.P, ""); err != nil || len(list) != 0 {
					t.Fatalf("scopes after refusal: %v %+v", err, list)
				}
			})
		}
	})
	t.Run("wire", func(t *testing.T) {
		l := labT(t)
		r := runChild(t, l, childConfig{Mode: "special", Rate: 100})
		special := func(a netip.Addr) bool { return scope.IsSpecial(a) }
		if bad := lab.OutOfScope(r.pkts, func(a netip.Addr) bool { return !special(a) }, l.ScannerV4, l.ScannerV6); len(bad) > 0 {
			t.Errorf("%d packets to special addresses on the wire, first %+v", len(bad), bad[0])
		}
		for _, p := range r.pkts {
			if special(p.Dst) && p.Proto != lab.ICMP {
				t.Errorf("packet to a special address from %s: %+v", p.Src, p)
			}
		}
		probes := lab.Probes(r.pkts, l.ScannerV4, l.ScannerV6)
		want := len(controlTargets) * 3 // tcp/22, udp/53, echo
		if len(probes) != want || r.out.Sent != uint64(want) {
			t.Errorf("%d probes on the wire, engine sent %d, want %d (the control hosts only)", len(probes), r.out.Sent, want)
		}
		if r.out.Refused == 0 {
			t.Error("the engine reports no refused target or packet")
		}
	})
}

// forge signs doc over its canonical form without Sign's validation, as an
// old or hostile signer would, so the registry's own check is what refuses.
func forge(t *testing.T, doc scope.Document, pub ed25519.PublicKey, priv ed25519.PrivateKey) []byte {
	t.Helper()
	doc.SignerKeyID = keys.ID(pub)
	canon, err := doc.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	// The scope signing context (probe/scope/sign.go): the signature
	// covers it followed by the canonical document.
	sig := ed25519.Sign(priv, append([]byte("firewalliq scope v1\n"), canon...))
	env := `{"scope":` + string(canon) + `,"signature":{"alg":"ed25519","key_id":"` + doc.SignerKeyID + `","sig":"` + base64.StdEncoding.EncodeToString(sig) + `"}}`
	return []byte(env)
}
