package scope

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// MaxPortsLen bounds the length of a port specification.
const MaxPortsLen = 4096

// Port is one protocol and port number.
type Port struct {
	Proto  string `json:"proto"` // "tcp" | "udp"
	Number uint16 `json:"number"`
}

// String writes the port as "tcp/443".
func (p Port) String() string { return p.Proto + "/" + strconv.Itoa(int(p.Number)) }

// ParsePorts parses a port specification: groups separated by single spaces,
// each "PROTO:LIST" with PROTO "tcp" or "udp" and LIST comma-separated port
// numbers (1-65535, plain decimal, no leading zeros) or ranges "LO-HI" with
// LO <= HI. A protocol may appear once. The result is sorted (tcp before
// udp, then by number) and deduplicated.
func ParsePorts(spec string) ([]Port, error) {
	if spec == "" {
		return nil, errors.New("empty port specification")
	}
	if len(spec) > MaxPortsLen {
		return nil, fmt.Errorf("port specification longer than %d bytes", MaxPortsLen)
	}
	if err := checkPortChars(spec); err != nil {
		return nil, err
	}
	// One bit per port and protocol: the work and memory are bounded by the
	// port space, however many overlapping ranges the spec repeats.
	var set [2][65536 / 64]uint64
	seen := map[string]bool{}
	for _, group := range strings.Split(spec, " ") {
		if group == "" {
			return nil, fmt.Errorf("%q: groups must be separated by exactly one space", spec)
		}
		proto, list, ok := strings.Cut(group, ":")
		if !ok {
			return nil, fmt.Errorf("%q: want PROTO:PORTS such as tcp:22,443", group)
		}
		if proto != "tcp" && proto != "udp" {
			return nil, fmt.Errorf("%q: protocol %q must be tcp or udp", group, proto)
		}
		if seen[proto] {
			return nil, fmt.Errorf("%q: protocol %s appears twice; list its ports in one group", spec, proto)
		}
		seen[proto] = true
		for _, item := range strings.Split(list, ",") {
			loS, hiS, isRange := strings.Cut(item, "-")
			lo, err := portNumber(loS)
			if err != nil {
				return nil, fmt.Errorf("%q: %v", group, err)
			}
			hi := lo
			if isRange {
				if hi, err = portNumber(hiS); err != nil {
					return nil, fmt.Errorf("%q: %v", group, err)
				}
				if hi < lo {
					return nil, fmt.Errorf("%q: range %s runs backwards", group, item)
				}
			}
			p := protoIndex(proto)
			for n := int(lo); n <= int(hi); n++ {
				set[p][n/64] |= 1 << (n % 64)
			}
		}
	}
	var out []Port
	for p, proto := range []string{"tcp", "udp"} {
		for w, word := range set[p] {
			for word != 0 {
				b := bits.TrailingZeros64(word)
				word &^= 1 << b
				out = append(out, Port{Proto: proto, Number: uint16(w*64 + b)})
			}
		}
	}
	return out, nil
}

func protoIndex(proto string) int {
	if proto == "udp" {
		return 1
	}
	return 0
}

func comparePorts(a, b Port) int {
	if c := strings.Compare(a.Proto, b.Proto); c != 0 {
		return c
	}
	return int(a.Number) - int(b.Number)
}

func checkPortChars(spec string) error {
	for i := 0; i < len(spec); i++ {
		c := spec[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c == ':' || c == ',' || c == '-' || c == ' ') {
			return fmt.Errorf("%q: unexpected character %q at byte %d", spec, c, i)
		}
	}
	return nil
}

func portNumber(s string) (uint16, error) {
	if s == "" {
		return 0, errors.New("empty port number")
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("port %q has a leading zero", s)
	}
	if strings.Trim(s, "0123456789") != "" || len(s) > 5 {
		return 0, fmt.Errorf("port %q is not a decimal number", s)
	}
	n, _ := strconv.Atoi(s)
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d is outside 1-65535", n)
	}
	return uint16(n), nil
}

// FormatPorts writes ports (sorted as ParsePorts returns them) in the
// shortest specification form, merging consecutive numbers into ranges.
func FormatPorts(ports []Port) string {
	var b strings.Builder
	for i := 0; i < len(ports); {
		proto := ports[i].Proto
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(proto + ":")
		first := true
		for i < len(ports) && ports[i].Proto == proto {
			j := i
			for j+1 < len(ports) && ports[j+1].Proto == proto && ports[j+1].Number == ports[j].Number+1 {
				j++
			}
			if !first {
				b.WriteByte(',')
			}
			first = false
			b.WriteString(strconv.Itoa(int(ports[i].Number)))
			if j > i {
				b.WriteString("-" + strconv.Itoa(int(ports[j].Number)))
			}
			i = j + 1
		}
	}
	return b.String()
}
