package siem

import (
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// CEF renders e as one ArcSight Common Event Format line:
//
//	CEF:0|FirewallIQ|FirewallIQ Secure|VERSION|ACTION|NAME|SEVERITY|EXTENSION
//
// Header fields escape '\' and '|'; extension values escape '\', '=' and
// turn CR and LF into the two-character sequences \r and \n, as the CEF
// specification requires. Other control characters become U+FFFD, so the
// line never breaks.
func CEF(e Event, m Meta) string {
	var b strings.Builder
	name := e.Action
	if e.Finding != nil && e.Finding.Title != "" {
		name = e.Finding.Title
	}
	b.WriteString("CEF:0|FirewallIQ|FirewallIQ Secure|")
	b.WriteString(cefHeader(m.Version))
	b.WriteByte('|')
	b.WriteString(cefHeader(e.Action))
	b.WriteByte('|')
	b.WriteString(cefHeader(name))
	b.WriteByte('|')
	b.WriteString(strconv.Itoa(cefSeverity(e.severity())))
	b.WriteByte('|')
	ext := [][2]string{
		{"rt", strconv.FormatInt(e.Time.UnixMilli(), 10)},
		{"dvchost", m.Hostname},
		{"deviceExternalId", m.ApplianceID},
		{"externalId", eventUID(m.ApplianceID, e)},
		{"act", e.Action},
		{"cs1Label", "tenant"}, {"cs1", e.Tenant},
		{"cn1Label", "seq"}, {"cn1", strconv.FormatInt(m.Seq, 10)},
		{"cn2Label", "auditSeq"}, {"cn2", strconv.FormatInt(e.AuditSeq, 10)},
	}
	// Outcome is an activity's; findings and alarms have none.
	if c := mapAction(e.Action).class; c != ClassComplianceFinding && c != ClassDetectionFinding {
		outcome := "success"
		if e.failed() {
			outcome = "failure"
		}
		ext = append(ext, [2]string{"outcome", outcome})
	}
	if e.ActorName != "" {
		ext = append(ext, [2]string{"suser", e.ActorName})
	}
	if e.ActorID != "" {
		ext = append(ext, [2]string{"suid", e.ActorID})
	}
	if ip, err := netip.ParseAddr(e.ActorIP); err == nil {
		ext = append(ext, [2]string{"src", ip.String()})
	}
	if e.UserAgent != "" {
		ext = append(ext, [2]string{"requestClientApplication", e.UserAgent})
	}
	if e.Object != "" {
		ext = append(ext, [2]string{"cs2Label", "object"}, [2]string{"cs2", e.Object})
	}
	if f := e.Finding; f != nil {
		ext = append(ext, [2]string{"cat", f.Kind}, [2]string{"cs3Label", "scan"}, [2]string{"cs3", f.ScanID})
		if ip, err := netip.ParseAddr(f.Target); err == nil {
			ext = append(ext, [2]string{"dst", ip.String()})
		}
		if f.Port != 0 {
			ext = append(ext, [2]string{"dpt", strconv.Itoa(f.Port)})
		}
		if f.Protocol != "" {
			ext = append(ext, [2]string{"proto", f.Protocol})
		}
		ext = append(ext, [2]string{"cs4Label", "observed"}, [2]string{"cs4", f.Observed},
			[2]string{"cs5Label", "rule"}, [2]string{"cs5", f.Rule})
	}
	if len(e.Details) > 0 {
		ext = append(ext, [2]string{"msg", string(e.Details)})
	}
	for i, kv := range ext {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(kv[0])
		b.WriteByte('=')
		b.WriteString(cefValue(kv[1]))
	}
	return b.String()
}

// cefSeverity maps syslog severity (0 most severe) to CEF (10 most severe).
func cefSeverity(sev int) int {
	switch sev {
	case sevAlert:
		return 10
	case sevCrit:
		return 9
	case sevErr:
		return 7
	case sevWarning:
		return 5
	case sevNotice:
		return 3
	default:
		return 1
	}
}

// cefHeader escapes a CEF header field.
func cefHeader(s string) string {
	return cefEscape(s, false)
}

// cefValue escapes a CEF extension value.
func cefValue(s string) string {
	return cefEscape(s, true)
}

func cefEscape(s string, ext bool) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '|' && !ext:
			b.WriteString(`\|`)
		case r == '=' && ext:
			b.WriteString(`\=`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == utf8.RuneError && n <= 1, r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0,
			r == '\u2028', r == '\u2029':
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
