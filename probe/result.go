package probe

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Kind identifies a probe kind. The identifiers are the ones used
// everywhere (scope, profile, CLI, results); the engine knows no others.
type Kind string

// The closed list of probe kinds. There is deliberately no way to add one at
// run time: the product promises that the binary contains these and nothing
// more offensive.
const (
	KindTCPSyn     Kind = "tcp-syn"
	KindTCPConnect Kind = "tcp-connect"
	KindUDP        Kind = "udp"
	KindICMPEcho   Kind = "icmp-echo"
	KindTLSHello   Kind = "tls-hello"
	KindBanner     Kind = "banner"
)

// Kinds returns the closed list of probe kinds in a fixed order.
func Kinds() []Kind {
	return []Kind{KindTCPSyn, KindTCPConnect, KindUDP, KindICMPEcho, KindTLSHello, KindBanner}
}

// proto is the transport protocol a kind probes.
func (k Kind) proto() string {
	switch k {
	case KindUDP:
		return "udp"
	case KindICMPEcho:
		return "icmp"
	default:
		return "tcp"
	}
}

// valid reports whether k is on the closed list.
func (k Kind) valid() bool {
	for _, c := range Kinds() {
		if k == c {
			return true
		}
	}
	return false
}

// Port is one port to probe.
type Port struct {
	Proto  string // "tcp" or "udp"
	Number uint16
}

// State is the classification of one probe.
type State string

// States. DROP and REJECT are told apart: a firewall that silently drops
// yields filtered (TCP) or open|filtered (UDP); one that rejects yields
// closed (TCP RST; ICMP port unreachable to a UDP probe) or rejected (any
// ICMP unreachable to a TCP probe, port unreachable included, since a host
// answers a closed TCP port with a RST; any other unreachable code to a
// UDP probe), with the ICMP type and code kept in the result.
const (
	StateOpen         State = "open"
	StateClosed       State = "closed"
	StateFiltered     State = "filtered"
	StateRejected     State = "rejected"
	StateOpenFiltered State = "open|filtered"
	// StateError means the probe could not be carried out locally (for
	// example the socket could not be created); it says nothing about the
	// target.
	StateError State = "error"
)

// Reasons: why a state was chosen. Stable strings, documented in
// docs/probe.md.
const (
	ReasonSynAck        = "syn-ack"
	ReasonRST           = "rst"
	ReasonNoResponse    = "no-response"
	ReasonICMPUnreach   = "icmp-unreachable"
	ReasonICMPPortUnr   = "icmp-port-unreachable"
	ReasonICMPProhib    = "icmp-admin-prohibited"
	ReasonICMPTimeExc   = "icmp-time-exceeded"
	ReasonUDPResponse   = "udp-response"
	ReasonEchoReply     = "echo-reply"
	ReasonConnected     = "connected"
	ReasonConnRefused   = "conn-refused"
	ReasonHostUnreach   = "host-unreachable"
	ReasonNetUnreach    = "net-unreachable"
	ReasonHandshake     = "tls-handshake"
	ReasonTLSFailed     = "tls-failed"
	ReasonLocalError    = "local-error"
	ReasonConnectTimout = "connect-timeout"
)

// ICMP is the ICMP (or ICMPv6) message that decided a result.
type ICMP struct {
	Type int `json:"type"`
	Code int `json:"code"`
	// From is the address that sent the ICMP message (a firewall or
	// router, or the target itself).
	From string `json:"from"`
}

// Result is one line of results.jsonl: one object per (target, proto,
// port, probe kind).
type Result struct {
	Target  string    `json:"target"`
	Proto   string    `json:"proto"`
	Port    uint16    `json:"port"`
	Probe   Kind      `json:"probe"`
	State   State     `json:"state"`
	Reason  string    `json:"reason"`
	RTTms   float64   `json:"rtt_ms"`
	Retries int       `json:"retries"`
	TTL     int       `json:"ttl"`
	Time    time.Time `json:"time"`
	// Fallback names the kind that was asked for when the engine had to
	// use another one (tcp-syn without CAP_NET_RAW runs as tcp-connect).
	Fallback Kind    `json:"fallback_from,omitempty"`
	ICMP     *ICMP   `json:"icmp,omitempty"`
	TLS      *TLS    `json:"tls,omitempty"`
	Banner   *Banner `json:"banner,omitempty"`
	// Error is a local failure (StateError only), never target data.
	Error string `json:"error,omitempty"`
}

// TLS is what a TLS server revealed in its handshake. Every string in it
// came from the server and is escaped and length-limited by Clean.
type TLS struct {
	Version     string `json:"version"`
	CipherSuite string `json:"cipher_suite"`
	ALPN        string `json:"alpn,omitempty"`
	Chain       []Cert `json:"chain"`
}

// Cert is one certificate of a server's chain.
type Cert struct {
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	DNSNames  []string  `json:"dns_names,omitempty"`
	IPs       []string  `json:"ip_addresses,omitempty"`
	SHA256    string    `json:"sha256"`
}

// Banner is what a server volunteered after the connection opened.
type Banner struct {
	// Text is the banner escaped by Clean: printable ASCII kept, every
	// other byte as \xNN, at most MaxBannerText characters.
	Text string `json:"text"`
	// Bytes is how many bytes were read (at most MaxBannerRead).
	Bytes     int  `json:"bytes"`
	Truncated bool `json:"truncated,omitempty"`
}

// Limits on untrusted text.
const (
	// MaxBannerRead is the most bytes read from a banner.
	MaxBannerRead = 1024
	// MaxBannerText is the longest escaped banner kept.
	MaxBannerText = 1024
	// MaxField is the longest escaped certificate field kept.
	MaxField = 256
	// maxNames caps the SANs kept per certificate.
	maxNames = 32
	// maxChain caps the certificates kept per chain.
	maxChain = 8
)

// Clean escapes untrusted bytes for storage: printable ASCII (0x20-0x7e,
// except backslash) is kept, backslash becomes \\, and every other byte
// becomes \xNN, so the output is 7-bit, has no control characters (no
// terminal escapes, no newlines that could forge a JSON Lines record) and
// round-trips through Unclean. The output is cut at max characters, never
// inside an escape; truncated reports whether anything was cut.
func Clean(b []byte, max int) (s string, truncated bool) {
	var sb strings.Builder
	for _, c := range b {
		var piece string
		switch {
		case c == '\\':
			piece = `\\`
		case c >= 0x20 && c < 0x7f:
			piece = string(rune(c))
		default:
			piece = fmt.Sprintf(`\x%02x`, c)
		}
		if sb.Len()+len(piece) > max {
			return sb.String(), true
		}
		sb.WriteString(piece)
	}
	return sb.String(), false
}

// cleanString is Clean for strings, dropping the truncation flag (the
// fields it is used for are descriptive).
func cleanString(s string, max int) string {
	out, _ := Clean([]byte(s), max)
	return out
}

// Unclean reverses Clean; it fails on input Clean cannot produce.
func Unclean(s string) ([]byte, error) {
	var out []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f {
			return nil, fmt.Errorf("unclean: raw byte 0x%02x at %d", c, i)
		}
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if i+1 < len(s) && s[i+1] == '\\' {
			out = append(out, '\\')
			i++
			continue
		}
		if i+3 < len(s) && s[i+1] == 'x' {
			v, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
			if err != nil {
				return nil, fmt.Errorf("unclean: bad escape at %d: %w", i, err)
			}
			out = append(out, byte(v))
			i += 3
			continue
		}
		return nil, fmt.Errorf("unclean: dangling backslash at %d", i)
	}
	return out, nil
}

// ResultWriter writes results as JSON Lines.
type ResultWriter struct {
	enc *json.Encoder
}

// NewResultWriter returns a writer of JSON Lines to w.
func NewResultWriter(w io.Writer) *ResultWriter {
	enc := json.NewEncoder(w)
	// Results are data, not HTML; keep '<' readable. Clean has already
	// removed every control character.
	enc.SetEscapeHTML(false)
	return &ResultWriter{enc: enc}
}

// Write writes one result line.
func (rw *ResultWriter) Write(r Result) error {
	if err := rw.enc.Encode(r); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}
