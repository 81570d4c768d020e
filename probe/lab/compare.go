package lab

import (
	"bufio"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Key identifies one probe target: address, protocol, port (0 for ICMP).
type Key struct {
	Addr  netip.Addr
	Proto string
	Port  uint16
}

func (k Key) String() string { return fmt.Sprintf("%s %s/%d", k.Addr, k.Proto, k.Port) }

// Observation is what a scanner reported for one Key.
type Observation struct {
	Key
	State  State
	Reason string
}

// Mismatch is a reported (or missing) row that disagrees with the truth.
type Mismatch struct {
	Key
	Got  State // "" when the scanner reported nothing for the key
	Want Expectation
	// Reason is the scanner's reason, for the report.
	Reason string
}

// Accuracy compares a scanner's observations with the ground truth over
// the probes that were asked for.
type Accuracy struct {
	// Expected is the number of probes asked for; Right those reported
	// with exactly the true state; Missing those not reported at all.
	Expected, Right, Missing int
	// OpenRight counts probes whose open / not-open classification is
	// right (the only thing masscan reports), missing rows counting as
	// "not open".
	OpenRight int
	// ByState counts, per true state, how many were right.
	ByState map[State][2]int // [right, total]
	// Extra counts observations outside the asked-for set.
	Extra      int
	Mismatches []Mismatch
}

// Compare grades obs against the truth for every key in asked.
func (tr Truth) Compare(asked []Key, obs []Observation) Accuracy {
	got := make(map[Key]Observation, len(obs))
	for _, o := range obs {
		o.Addr = o.Addr.Unmap()
		got[o.Key] = o
	}
	a := Accuracy{ByState: map[State][2]int{}}
	seen := make(map[Key]bool, len(asked))
	for _, k := range asked {
		k.Addr = k.Addr.Unmap()
		if seen[k] {
			continue
		}
		seen[k] = true
		want, ok := tr.Expect(k.Addr, k.Proto, k.Port)
		if !ok {
			continue
		}
		a.Expected++
		bs := a.ByState[want.State]
		bs[1]++
		o, have := got[k]
		if !have {
			a.Missing++
		}
		if have && o.State == want.State {
			a.Right++
			bs[0]++
		} else {
			a.Mismatches = append(a.Mismatches, Mismatch{Key: k, Got: o.State, Want: want, Reason: o.Reason})
		}
		a.ByState[want.State] = bs
		if (have && o.State == Open) == (want.State == Open) {
			a.OpenRight++
		}
	}
	for k := range got {
		if !seen[k] {
			a.Extra++
		}
	}
	slices.SortFunc(a.Mismatches, func(x, y Mismatch) int { return strings.Compare(x.Key.String(), y.Key.String()) })
	return a
}

// Keys is the cross product of addresses, protocol and ports.
func Keys(addrs []netip.Addr, proto string, ports []uint16) []Key {
	out := make([]Key, 0, len(addrs)*len(ports))
	for _, a := range addrs {
		for _, p := range ports {
			out = append(out, Key{Addr: a, Proto: proto, Port: p})
		}
	}
	return out
}

// Hosts lists the addresses of a prefix (at most limit of them).
func Hosts(p netip.Prefix, limit int) []netip.Addr {
	var out []netip.Addr
	for a := p.Masked().Addr(); p.Contains(a) && len(out) < limit; a = a.Next() {
		out = append(out, a)
	}
	return out
}

// ParseResults reads the engine's results.jsonl (fields target, proto,
// port, state, reason).
func ParseResults(r io.Reader) ([]Observation, error) {
	var out []Observation
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var row struct {
			Target string `json:"target"`
			Proto  string `json:"proto"`
			Port   uint16 `json:"port"`
			State  string `json:"state"`
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			return out, fmt.Errorf("lab: results line %d: %w", line, err)
		}
		addr, err := netip.ParseAddr(row.Target)
		if err != nil {
			return out, fmt.Errorf("lab: results line %d: target: %w", line, err)
		}
		out = append(out, Observation{Key: Key{Addr: addr.Unmap(), Proto: row.Proto, Port: row.Port},
			State: State(row.State), Reason: row.Reason})
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("lab: results: %w", err)
	}
	return out, nil
}

// ParseNmapXML reads nmap's -oX output. States are taken as nmap reports
// them: nmap calls an ICMP admin-prohibited answer "filtered" (reason
// "admin-prohibited"), which the comparison then counts as wrong for a
// rejected port, as it is.
func ParseNmapXML(r io.Reader) ([]Observation, error) {
	var doc struct {
		Hosts []struct {
			Addrs []struct {
				Addr string `xml:"addr,attr"`
				Type string `xml:"addrtype,attr"`
			} `xml:"address"`
			Ports []struct {
				Proto string `xml:"protocol,attr"`
				Port  uint16 `xml:"portid,attr"`
				State struct {
					State  string `xml:"state,attr"`
					Reason string `xml:"reason,attr"`
				} `xml:"state"`
			} `xml:"ports>port"`
		} `xml:"host"`
	}
	if err := xml.NewDecoder(r).Decode(&doc); err != nil {
		return nil, fmt.Errorf("lab: nmap xml: %w", err)
	}
	var out []Observation
	for _, h := range doc.Hosts {
		var addr netip.Addr
		for _, a := range h.Addrs {
			if a.Type == "ipv4" || a.Type == "ipv6" {
				addr, _ = netip.ParseAddr(a.Addr)
			}
		}
		if !addr.IsValid() {
			continue
		}
		for _, p := range h.Ports {
			out = append(out, Observation{Key: Key{Addr: addr, Proto: p.Proto, Port: p.Port},
				State: State(p.State.State), Reason: p.State.Reason})
		}
	}
	return out, nil
}

// ParseMasscanList reads masscan's -oL output ("open tcp 80 198.18.1.1
// 1700000000"). masscan reports open ports only.
func ParseMasscanList(r io.Reader) ([]Observation, error) {
	var out []Observation
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || strings.HasPrefix(f[0], "#") {
			continue
		}
		port, err := strconv.ParseUint(f[2], 10, 16)
		if err != nil {
			return out, fmt.Errorf("lab: masscan line %q: %w", sc.Text(), err)
		}
		addr, err := netip.ParseAddr(f[3])
		if err != nil {
			return out, fmt.Errorf("lab: masscan line %q: %w", sc.Text(), err)
		}
		out = append(out, Observation{Key: Key{Addr: addr, Proto: f[1], Port: uint16(port)}, State: State(f[0])})
	}
	return out, sc.Err()
}
