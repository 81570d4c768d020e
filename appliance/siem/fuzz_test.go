package siem

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"firewalliq/audit"
)

// FuzzSyslog feeds hostile strings into every field a message carries and
// checks that the result is still exactly one RFC 5424 message with exactly
// one structured-data element whose parameters are ours and whose values
// round-trip, with no line break anywhere, in both body formats and inside
// an octet-counted frame.
func FuzzSyslog(f *testing.F) {
	// Seeds: a plain entry; each framing character; an attempt to close the
	// SD element and open another; an embedded octet-counted frame; invalid
	// UTF-8; C1 controls and Unicode line separators; a huge details value.
	f.Add("t_acme", "alice", "192.0.2.1", "curl/8", "scan_1", `{"n":1}`, "auth.login", "fiq1", int64(1), int64(1), false)
	f.Add("t\"]", "a\\b", "::1", "x|y=z", "]", `{"k":"\"]\\"}`, "a b", "h h", int64(2), int64(3), true)
	f.Add("x", "y", "z", "\n", "obj] [fiq@32473 seq=\"9\"]", `{}`, "scan.start", "-", int64(0), int64(0), false)
	f.Add("", "", "", "", "12 <13>1 - - - - - -\n", `{"a":"\r\n"}`, "", "", int64(-1), int64(-5), true)
	f.Add("\xff\xfe", "\xc3", "\x00", "\x7f\u0085", "\u2028\u2029", `not json`, "\x80", "\xff", int64(1<<62), int64(7), false)
	f.Add(strings.Repeat("T", 300), "", "", "", "", `{"blob":"`+strings.Repeat("b", 9000)+`"}`, strings.Repeat("m", 40), strings.Repeat("h", 300), int64(5), int64(5), true)
	f.Fuzz(func(t *testing.T, tenant, actor, ip, ua, object, details, action, host string, seq, auditSeq int64, cef bool) {
		ev := FromAudit(audit.Entry{Seq: auditSeq, Time: t0, Tenant: tenant, ActorID: actor, ActorName: actor,
			ActorIP: ip, UserAgent: ua, Action: audit.Action(action), Object: object, Details: json.RawMessage(details)})
		m := Meta{ApplianceID: "fiq-" + tenant, Hostname: host, Version: ua, Seq: seq}
		format := FormatOCSF
		if cef {
			format = FormatCEF
		}
		msg := Syslog(format, ev, m)
		checkMessage(t, msg, ev, m)
		frame := OctetFrame(msg)
		if !bytes.HasSuffix(frame, msg) || bytes.Count(frame[:len(frame)-len(msg)], []byte(" ")) != 1 {
			t.Fatalf("bad frame prefix %q", frame[:len(frame)-len(msg)])
		}
		if cef {
			body := CEF(ev, m)
			// A CEF line has exactly 7 unescaped pipes before the extension.
			if n := unescapedPipes(body); n < 7 {
				t.Fatalf("CEF header has %d pipes: %q", n, body)
			}
		}
		// A finding through the same path.
		fe := FromFinding(tenant, auditSeq, t0, Finding{ID: object, ScanID: actor, Kind: ua, Severity: ip, Title: details, Rule: host, Target: ip, Observed: ua})
		checkMessage(t, Syslog(format, fe, m), fe, m)
		// Shrunk renderings stay valid too.
		d := Destination{Kind: KindTCP, Format: format, MaxMessage: 480}
		if out := Render(d, ev, m); !bytes.Equal(out, msg) {
			checkMessage(t, out, shrink(ev, 32), m)
		}
	})
}

// unescapedPipes counts '|' not preceded by an escaping backslash, up to the
// first '=' (the extension).
func unescapedPipes(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '|':
			n++
			if n == 7 {
				return n
			}
		}
	}
	return n
}

// FuzzVerify checks that the webhook verifier accepts exactly the requests
// signed with its key inside the window, once.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(`{"a":1}`), int64(0), "", false)
	f.Add([]byte(``), int64(-301), "v1=00", true)
	f.Add([]byte("\x00\xff"), int64(299), "v1=", true)
	f.Add([]byte(`{}`), int64(10), "0001700000000", false)
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, body []byte, skew int64, forged string, sign bool) {
		v := NewVerifier(key, ReplayWindow, func() time.Time { return now })
		ts := now.Unix() + skew
		h := http.Header{}
		h.Set(HeaderTimestamp, forged)
		h.Set(HeaderSignature, forged)
		h.Set(HeaderNonce, forged)
		if sign {
			h.Set(HeaderTimestamp, itoa(ts))
			h.Set(HeaderNonce, "00112233445566778899aabbccddeeff")
			h.Set(HeaderSignature, Sign(key, ts, "00112233445566778899aabbccddeeff", body))
		}
		err := v.Verify(h, body)
		inWindow := skew >= -int64(ReplayWindow/time.Second) && skew <= int64(ReplayWindow/time.Second)
		switch {
		case !sign && err == nil:
			t.Fatalf("unsigned request accepted: %q", forged)
		case sign && inWindow && err != nil:
			t.Fatalf("good request refused: %v", err)
		case sign && !inWindow && !errors.Is(err, ErrStale):
			t.Fatalf("stale request: %v", err)
		}
		if err == nil {
			if err := v.Verify(h, body); !errors.Is(err, ErrReplay) {
				t.Fatalf("replay: %v", err)
			}
		}
	})
}
