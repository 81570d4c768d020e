package policy

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"

	"firewalliq/probe"
)

// Drift kinds.
const (
	DriftNewlyOpen   = "newly-open"   // not open in the baseline, open now
	DriftNewlyClosed = "newly-closed" // open in the baseline, not now
	DriftDenial      = "denial-style" // denied both times, differently (drop, RST, ICMP type/code)
	DriftTLS         = "tls-certificate"
	DriftBanner      = "banner"
)

// Change is one difference between a baseline and a new result set.
type Change struct {
	Kind     string   `json:"kind"`
	Severity Severity `json:"severity"`
	Target   string   `json:"target"`
	Proto    string   `json:"proto"`
	Port     uint16   `json:"port"`
	Before   string   `json:"before"`
	After    string   `json:"after"`
}

// driftSeverity ranks drift kinds: a service that opened is the one that
// can hurt; the others are changes to look at.
var driftSeverity = map[string]Severity{
	DriftNewlyOpen:   SeverityHigh,
	DriftNewlyClosed: SeverityMedium,
	DriftDenial:      SeverityLow,
	DriftTLS:         SeverityLow,
	DriftBanner:      SeverityInfo,
}

// denialOf describes how a service was denied, precisely enough to notice
// a change: "drop", "reset" or "icmp 3/13".
func denialOf(r probe.Result) string {
	switch {
	case style(r.State) == DenialDrop:
		return "drop"
	case r.ICMP != nil:
		return fmt.Sprintf("icmp %d/%d", r.ICMP.Type, r.ICMP.Code)
	case r.State == probe.StateClosed || r.State == probe.StateRejected:
		return "reset"
	}
	return string(r.State)
}

// leafCert is the SHA-256 of the server's first certificate, if any.
func leafCert(results []probe.Result, k svcKey) string {
	for _, r := range results {
		if r.TLS != nil && len(r.TLS.Chain) > 0 && keyOf(r) == k {
			return r.TLS.Chain[0].SHA256
		}
	}
	return ""
}

// bannerOf is the (escaped) banner text, if any.
func bannerOf(results []probe.Result, k svcKey) (string, bool) {
	for _, r := range results {
		if r.Banner != nil && keyOf(r) == k {
			return r.Banner.Text, true
		}
	}
	return "", false
}

type svcKey struct {
	a     netip.Addr
	proto string
	port  uint16
}

func keyOf(r probe.Result) svcKey {
	a, _ := netip.ParseAddr(r.Target)
	return svcKey{a.Unmap(), r.Proto, r.Port}
}

// Drift compares current with baseline, service by service (see Endpoints).
// Services probed in only one of the two sets are not compared: drift is
// about change, and a service outside one scan did not change. TLS and
// banner changes are reported only when both sets read them.
func Drift(baseline, current []probe.Result) []Change {
	base := map[svcKey]Endpoint{}
	for _, s := range Endpoints(baseline) {
		base[svcKey{s.Target, s.Proto, s.Port}] = s
	}
	out := []Change{}
	add := func(kind string, s Endpoint, before, after string) {
		out = append(out, Change{Kind: kind, Severity: driftSeverity[kind], Target: s.Target.String(), Proto: s.Proto, Port: s.Port, Before: before, After: after})
	}
	for _, s := range Endpoints(current) {
		k := svcKey{s.Target, s.Proto, s.Port}
		b, ok := base[k]
		if !ok {
			continue
		}
		was, now := b.Result.State, s.Result.State
		if was == probe.StateError || now == probe.StateError {
			continue
		}
		switch {
		case was != probe.StateOpen && now == probe.StateOpen:
			add(DriftNewlyOpen, s, string(was), string(now))
		case was == probe.StateOpen && now != probe.StateOpen:
			add(DriftNewlyClosed, s, string(was), string(now))
		case was != probe.StateOpen:
			if dw, dn := denialOf(b.Result), denialOf(s.Result); dw != dn {
				add(DriftDenial, s, dw, dn)
			}
		default: // open both times
			if cw, cn := leafCert(baseline, k), leafCert(current, k); cw != "" && cn != "" && cw != cn {
				add(DriftTLS, s, cw, cn)
			}
			bw, okw := bannerOf(baseline, k)
			bn, okn := bannerOf(current, k)
			if okw && okn && bw != bn {
				add(DriftBanner, s, bw, bn)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Change) int {
		ta, _ := netip.ParseAddr(a.Target)
		tb, _ := netip.ParseAddr(b.Target)
		return cmp.Or(ta.Compare(tb), cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Kind, b.Kind))
	})
	return out
}

// DriftFindings turns changes into findings (kind "drift").
func DriftFindings(changes []Change) []Finding {
	out := make([]Finding, 0, len(changes))
	for _, c := range changes {
		out = append(out, Finding{
			ID: findingID(KindDrift+"/"+c.Kind, "", c.Target, c.Proto, c.Port), Kind: KindDrift, Severity: c.Severity,
			Rule: c.Kind, Target: c.Target, Proto: c.Proto, Port: c.Port, Observed: c.After,
			Title: fmt.Sprintf("%s/%d on %s: %s since the baseline (%s -> %s)", c.Proto, c.Port, c.Target, c.Kind, c.Before, c.After),
		})
	}
	return out
}

// shortHash is 16 hex characters of SHA-256: an id, not a security value.
func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:8])
}
