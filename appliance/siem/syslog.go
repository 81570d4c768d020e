package siem

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// FacilityLogAudit is the syslog facility of every message: 13, "log audit"
// (RFC 5424 table 1), which is what the events are.
const FacilityLogAudit = 13

// SDID is the structured-data element id. 32473 is the private enterprise
// number RFC 5612 reserves for documentation and examples; a registered
// number would replace it without changing the parameters.
const SDID = "fiq@32473"

// AppName is the RFC 5424 APP-NAME of every message.
const AppName = "firewalliq"

// timeLayout is the RFC 5424 TIMESTAMP: RFC 3339 in UTC with microseconds
// (the most TIME-SECFRAC allows is six digits).
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// Header field limits from RFC 5424 section 6.
const (
	maxHostname = 255
	maxAppName  = 48
	maxMsgID    = 32
)

// Body formats.
const (
	FormatOCSF = "ocsf"
	FormatCEF  = "cef"
)

// Body renders the event in the destination's format: one line, no control
// characters.
func Body(format string, e Event, m Meta) []byte {
	if format == FormatCEF {
		return []byte(CEF(e, m))
	}
	return OCSF(e, m)
}

// Syslog renders e as one RFC 5424 message (without transport framing):
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [fiq@32473 ...] BODY
//
// Header fields are reduced to PRINTUSASCII and cut to their RFC lengths; SD
// parameter values are escaped as section 6.3.3 requires, so no input string
// can end the element early, add one, or start a new line.
func Syslog(format string, e Event, m Meta) []byte {
	var b strings.Builder
	pri := FacilityLogAudit*8 + e.severity()
	b.WriteString("<")
	b.WriteString(strconv.Itoa(pri))
	b.WriteString(">1 ")
	b.WriteString(e.Time.UTC().Format(timeLayout))
	b.WriteByte(' ')
	b.WriteString(headerField(m.Hostname, maxHostname))
	b.WriteByte(' ')
	b.WriteString(AppName)
	b.WriteString(" - ")
	b.WriteString(headerField(e.Action, maxMsgID))
	b.WriteString(" [")
	b.WriteString(SDID)
	for _, p := range sdParams(e, m) {
		b.WriteByte(' ')
		b.WriteString(p[0])
		b.WriteString(`="`)
		b.WriteString(sdEscape(p[1]))
		b.WriteByte('"')
	}
	b.WriteString("] ")
	b.Write(Body(format, e, m))
	return []byte(b.String())
}

// sdParams are the structured-data parameters, in a fixed order. The names
// are ours and fixed (valid SD-NAMEs); only the values come from data.
func sdParams(e Event, m Meta) [][2]string {
	return [][2]string{
		{"appliance", m.ApplianceID},
		{"tenant", e.Tenant},
		{"seq", strconv.FormatInt(m.Seq, 10)},
		{"auditSeq", strconv.FormatInt(e.AuditSeq, 10)},
		{"class", strconv.Itoa(mapAction(e.Action).class)},
	}
}

// headerField makes s a valid RFC 5424 header field: PRINTUSASCII (33-126)
// only, at most max octets, "-" (the NILVALUE) when nothing is left. Other
// bytes become '_' rather than vanishing, so a field's length still hints
// at what was there.
func headerField(s string, max int) string {
	if s == "" {
		return "-"
	}
	b := make([]byte, 0, min(len(s), max))
	for i := 0; i < len(s) && len(b) < max; i++ {
		c := s[i]
		if c < 33 || c > 126 {
			c = '_'
		}
		b = append(b, c)
	}
	return string(b)
}

// sdEscape escapes an SD-PARAM value: '"', '\' and ']' get a backslash
// (RFC 5424 section 6.3.3). Control characters, which the RFC allows but
// which would let a value start a new line in a receiver's file, become
// U+FFFD, as does invalid UTF-8 (PARAM-VALUE is UTF-8).
func sdEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case r == '"' || r == '\\' || r == ']':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == utf8.RuneError && n <= 1, r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0,
			r == '\u2028', r == '\u2029':
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// OctetFrame wraps a message for TCP and TLS: "LEN SP MSG" (RFC 6587
// section 3.4.1, RFC 5425 section 4.3). The receiver reads exactly LEN
// octets, so nothing inside the message can end or start a frame.
func OctetFrame(msg []byte) []byte {
	out := make([]byte, 0, len(msg)+8)
	out = strconv.AppendInt(out, int64(len(msg)), 10)
	out = append(out, ' ')
	return append(out, msg...)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
