// Package interop moves results in and out of other tools' formats: Nmap
// XML (which Debian's ndiff reads) and JSON Lines out, Nmap XML in. Results
// read from another scanner are unsigned imported evidence: no job, no
// scope check, no pacing proof stands behind them, and every consumer is
// told so (Imported).
package interop

import (
	"bytes"
	"cmp"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"firewalliq/probe"
)

// ErrInvalid means an Nmap XML file cannot be imported.
var ErrInvalid = errors.New("invalid nmap xml")

// Limits on an imported file.
const (
	MaxImport      = 64 << 20
	MaxImportHosts = 1 << 16
	MaxImportPorts = 1 << 20
)

// ScanInfo describes the scan an export comes from.
type ScanInfo struct {
	ScanID string
	// Args is recorded as the nmaprun args (a description, not a command).
	Args       string
	Version    string
	Start, End time.Time
}

type xmlRun struct {
	XMLName          xml.Name     `xml:"nmaprun"`
	Scanner          string       `xml:"scanner,attr"`
	Args             string       `xml:"args,attr"`
	Start            int64        `xml:"start,attr"`
	StartStr         string       `xml:"startstr,attr"`
	Version          string       `xml:"version,attr"`
	XMLOutputVersion string       `xml:"xmloutputversion,attr"`
	ScanInfo         []xmlScanInf `xml:"scaninfo"`
	Hosts            []xmlHost    `xml:"host"`
	RunStats         *xmlRunStats `xml:"runstats"`
}

type xmlScanInf struct {
	Type     string `xml:"type,attr"`
	Protocol string `xml:"protocol,attr"`
}

type xmlHost struct {
	StartTime int64      `xml:"starttime,attr,omitempty"`
	EndTime   int64      `xml:"endtime,attr,omitempty"`
	Status    xmlStatus  `xml:"status"`
	Addresses []xmlAddr  `xml:"address"`
	Ports     []xmlPort  `xml:"ports>port"`
	Hostnames *xmlAnyTag `xml:"hostnames"`
}

type xmlAnyTag struct{}

type xmlStatus struct {
	State  string `xml:"state,attr"`
	Reason string `xml:"reason,attr"`
}

type xmlAddr struct {
	Addr     string `xml:"addr,attr"`
	AddrType string `xml:"addrtype,attr"`
}

type xmlPort struct {
	Protocol string      `xml:"protocol,attr"`
	PortID   uint16      `xml:"portid,attr"`
	State    xmlState    `xml:"state"`
	Service  *xmlService `xml:"service"`
}

type xmlState struct {
	State     string `xml:"state,attr"`
	Reason    string `xml:"reason,attr"`
	ReasonTTL int    `xml:"reason_ttl,attr"`
}

type xmlService struct {
	Name      string `xml:"name,attr"`
	Product   string `xml:"product,attr,omitempty"`
	ExtraInfo string `xml:"extrainfo,attr,omitempty"`
	Tunnel    string `xml:"tunnel,attr,omitempty"`
	Method    string `xml:"method,attr"`
	Conf      int    `xml:"conf,attr"`
}

type xmlRunStats struct {
	Finished xmlFinished `xml:"finished"`
	Hosts    xmlHostsCnt `xml:"hosts"`
}

type xmlFinished struct {
	Time    int64  `xml:"time,attr"`
	TimeStr string `xml:"timestr,attr"`
	Elapsed string `xml:"elapsed,attr"`
	Exit    string `xml:"exit,attr"`
}

type xmlHostsCnt struct {
	Up    int `xml:"up,attr"`
	Down  int `xml:"down,attr"`
	Total int `xml:"total,attr"`
}

// nmapState maps our state to Nmap's vocabulary and reason. Nmap has no
// "rejected": it calls an ICMP-refused port "filtered" with the ICMP
// message as the reason, so that is what the export says (our own formats
// keep "rejected").
func nmapState(r probe.Result) (state, reason string) {
	switch r.State {
	case probe.StateOpen:
		switch r.Reason {
		case probe.ReasonUDPResponse:
			return "open", "udp-response"
		case probe.ReasonEchoReply:
			return "open", "echo-reply"
		}
		return "open", "syn-ack"
	case probe.StateClosed:
		if r.Proto == "udp" {
			return "closed", "port-unreach"
		}
		return "closed", "reset"
	case probe.StateOpenFiltered:
		return "open|filtered", "no-response"
	case probe.StateRejected:
		return "filtered", icmpReason(r.ICMP, r.Target)
	}
	return "filtered", "no-response"
}

// icmpReason names an ICMP unreachable as Nmap does.
func icmpReason(ic *probe.ICMP, target string) string {
	if ic == nil {
		return "unreach"
	}
	a, _ := netip.ParseAddr(target)
	if a.Unmap().Is4() {
		switch ic.Code {
		case 0:
			return "net-unreach"
		case 1:
			return "host-unreach"
		case 2:
			return "proto-unreach"
		case 3:
			return "port-unreach"
		case 9:
			return "net-prohibited"
		case 10:
			return "host-prohibited"
		case 13:
			return "admin-prohibited"
		}
		return "unreach"
	}
	switch ic.Code {
	case 0:
		return "net-unreach"
	case 1:
		return "admin-prohibited"
	case 3:
		return "host-unreach"
	case 4:
		return "port-unreach"
	}
	return "unreach"
}

// WriteNmapXML writes results as an Nmap XML document (one host element
// per target; one port per protocol/port, the decisive probe kind's result
// as policy.Endpoints chooses it: open over refused over silent).
func WriteNmapXML(w io.Writer, info ScanInfo, results []probe.Result) error {
	type key struct {
		proto string
		port  uint16
	}
	hosts := map[netip.Addr]map[key]probe.Result{}
	types := map[string]bool{}
	for _, r := range results {
		if r.Proto != "tcp" && r.Proto != "udp" {
			continue
		}
		a, err := netip.ParseAddr(r.Target)
		if err != nil {
			continue
		}
		a = a.Unmap()
		if hosts[a] == nil {
			hosts[a] = map[key]probe.Result{}
		}
		k := key{r.Proto, r.Port}
		if old, ok := hosts[a][k]; !ok || rank(r.State) < rank(old.State) {
			hosts[a][k] = r
		}
		switch r.Probe {
		case probe.KindUDP:
			types["udp"] = true
		case probe.KindTCPSyn:
			types["syn"] = true
		default:
			types["connect"] = true
		}
	}
	run := xmlRun{Scanner: "firewalliq", Args: info.Args, Start: info.Start.Unix(), StartStr: info.Start.UTC().Format(time.ANSIC),
		Version: info.Version, XMLOutputVersion: "1.05"}
	for _, t := range []string{"syn", "connect", "udp"} {
		if types[t] {
			proto := "tcp"
			if t == "udp" {
				proto = "udp"
			}
			run.ScanInfo = append(run.ScanInfo, xmlScanInf{Type: t, Protocol: proto})
		}
	}
	addrs := make([]netip.Addr, 0, len(hosts))
	for a := range hosts {
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, func(x, y netip.Addr) int { return x.Compare(y) })
	for _, a := range addrs {
		h := xmlHost{StartTime: info.Start.Unix(), EndTime: info.End.Unix(), Status: xmlStatus{State: "up", Reason: "user-set"}, Hostnames: &xmlAnyTag{}}
		typ := "ipv4"
		if a.Is6() {
			typ = "ipv6"
		}
		h.Addresses = []xmlAddr{{Addr: a.String(), AddrType: typ}}
		ks := make([]key, 0, len(hosts[a]))
		for k := range hosts[a] {
			ks = append(ks, k)
		}
		slices.SortFunc(ks, func(x, y key) int { return cmp.Or(cmp.Compare(x.proto, y.proto), cmp.Compare(x.port, y.port)) })
		for _, k := range ks {
			r := hosts[a][k]
			st, why := nmapState(r)
			p := xmlPort{Protocol: k.proto, PortID: k.port, State: xmlState{State: st, Reason: why, ReasonTTL: r.TTL}}
			if r.State == probe.StateOpen {
				svc := &xmlService{Name: "unknown", Method: "table", Conf: 3}
				if r.TLS != nil {
					svc.Tunnel = "ssl"
				}
				p.Service = svc
			}
			h.Ports = append(h.Ports, p)
		}
		run.Hosts = append(run.Hosts, h)
	}
	run.RunStats = &xmlRunStats{
		Finished: xmlFinished{Time: info.End.Unix(), TimeStr: info.End.UTC().Format(time.ANSIC), Elapsed: strconv.FormatFloat(info.End.Sub(info.Start).Seconds(), 'f', 2, 64), Exit: "success"},
		Hosts:    xmlHostsCnt{Up: len(addrs), Total: len(addrs)},
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	buf.WriteString("<!DOCTYPE nmaprun>\n")
	enc := xml.NewEncoder(&buf)
	enc.Indent("", " ")
	if err := enc.Encode(run); err != nil {
		return fmt.Errorf("nmap xml: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

func rank(st probe.State) int {
	switch st {
	case probe.StateOpen:
		return 0
	case probe.StateRejected, probe.StateClosed:
		return 1
	case probe.StateOpenFiltered:
		return 2
	case probe.StateFiltered:
		return 3
	}
	return 4
}

// WriteJSONL writes results as JSON Lines (the engine's results.jsonl).
func WriteJSONL(w io.Writer, results []probe.Result) error {
	rw := probe.NewResultWriter(w)
	for _, r := range results {
		if err := rw.Write(r); err != nil {
			return err
		}
	}
	return nil
}

// Imported is a result set read from another scanner's output.
type Imported struct {
	// Source names the format ("nmap-xml"); Scanner and Args are what the
	// file claims, unverified.
	Source, Scanner, Args string
	Start, End            time.Time
	// Unsigned is always true: nothing vouches for these results.
	Unsigned bool
	Results  []probe.Result
}

// ReadNmapXML imports an Nmap XML file. States come back in our
// vocabulary: "filtered" with an ICMP unreachable reason becomes
// "rejected" with that code (Nmap's admin-prohibited is our REJECT);
// reasons are prefixed "nmap:" so they are never mistaken for our own.
func ReadNmapXML(r io.Reader) (Imported, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxImport+1))
	if err != nil {
		return Imported{}, fmt.Errorf("import nmap xml: %w", err)
	}
	if len(data) > MaxImport {
		return Imported{}, fmt.Errorf("%w: larger than %d bytes", ErrInvalid, MaxImport)
	}
	var run xmlRun
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	if err := dec.Decode(&run); err != nil {
		return Imported{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if len(run.Hosts) > MaxImportHosts {
		return Imported{}, fmt.Errorf("%w: %d hosts, at most %d", ErrInvalid, len(run.Hosts), MaxImportHosts)
	}
	kind := map[string]probe.Kind{"syn": probe.KindTCPSyn, "connect": probe.KindTCPConnect, "udp": probe.KindUDP}
	tcpKind := probe.KindTCPSyn
	for _, si := range run.ScanInfo {
		if si.Protocol == "tcp" && kind[si.Type] != "" {
			tcpKind = kind[si.Type]
		}
	}
	out := Imported{Source: "nmap-xml", Scanner: clean(run.Scanner), Args: clean(run.Args), Unsigned: true, Results: []probe.Result{}}
	if run.Start > 0 {
		out.Start = time.Unix(run.Start, 0).UTC()
	}
	if run.RunStats != nil && run.RunStats.Finished.Time > 0 {
		out.End = time.Unix(run.RunStats.Finished.Time, 0).UTC()
	}
	n := 0
	for hi, h := range run.Hosts {
		var addr netip.Addr
		for _, a := range h.Addresses {
			if a.AddrType == "ipv4" || a.AddrType == "ipv6" || a.AddrType == "" {
				if p, err := netip.ParseAddr(a.Addr); err == nil && p.Zone() == "" {
					addr = p.Unmap()
				}
			}
		}
		if !addr.IsValid() {
			return Imported{}, fmt.Errorf("%w: host %d has no IP address", ErrInvalid, hi+1)
		}
		at := out.Start
		if h.EndTime > 0 {
			at = time.Unix(h.EndTime, 0).UTC()
		}
		for _, p := range h.Ports {
			if n++; n > MaxImportPorts {
				return Imported{}, fmt.Errorf("%w: more than %d ports", ErrInvalid, MaxImportPorts)
			}
			if p.Protocol != "tcp" && p.Protocol != "udp" || p.PortID == 0 {
				return Imported{}, fmt.Errorf("%w: host %s: port %q/%d", ErrInvalid, addr, clean(p.Protocol), p.PortID)
			}
			res := probe.Result{Target: addr.String(), Proto: p.Protocol, Port: p.PortID, Probe: tcpKind, Time: at, TTL: p.State.ReasonTTL,
				Reason: "nmap:" + clean(p.State.Reason)}
			if p.Protocol == "udp" {
				res.Probe = probe.KindUDP
			}
			switch p.State.State {
			case "open":
				res.State = probe.StateOpen
			case "closed":
				res.State = probe.StateClosed
			case "open|filtered":
				res.State = probe.StateOpenFiltered
			case "filtered", "closed|filtered", "unfiltered":
				res.State = probe.StateFiltered
				if t, c, ok := icmpOf(p.State.Reason, addr); ok {
					res.State, res.ICMP = probe.StateRejected, &probe.ICMP{Type: t, Code: c}
				}
			default:
				return Imported{}, fmt.Errorf("%w: host %s port %d: state %q", ErrInvalid, addr, p.PortID, clean(p.State.State))
			}
			out.Results = append(out.Results, res)
		}
	}
	return out, nil
}

// icmpOf turns an Nmap ICMP reason back into type and code.
func icmpOf(reason string, a netip.Addr) (int, int, bool) {
	v4 := map[string]int{"net-unreach": 0, "host-unreach": 1, "proto-unreach": 2, "port-unreach": 3, "net-prohibited": 9, "host-prohibited": 10, "admin-prohibited": 13}
	v6 := map[string]int{"net-unreach": 0, "admin-prohibited": 1, "host-unreach": 3, "port-unreach": 4}
	if a.Is4() {
		c, ok := v4[reason]
		return 3, c, ok
	}
	c, ok := v6[reason]
	return 1, c, ok
}

// clean escapes text from the file (probe.Clean) and bounds it.
func clean(s string) string {
	out, _ := probe.Clean([]byte(s), probe.MaxField)
	return out
}
