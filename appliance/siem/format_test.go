package siem

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leodido/go-syslog/v4/rfc5424"

	"firewalliq/audit"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var t0 = time.Date(2026, 11, 27, 14, 3, 7, 123456000, time.UTC)

var testMeta = Meta{ApplianceID: "fiq-0123456789ab", Hostname: "fiq1.example.net", Version: "1.0.0", Seq: 42}

// sampleEvents covers each OCSF class the appliance emits.
func sampleEvents() map[string]Event {
	return map[string]Event{
		"auth_login_failed": FromAudit(audit.Entry{Seq: 17, Time: t0, Tenant: "t_acme", ActorID: "u_1", ActorName: "alice",
			ActorIP: "192.0.2.10", UserAgent: "Mozilla/5.0", Action: audit.ActAuthLoginFailed, Object: "u_1",
			Details: json.RawMessage(`{"reason":"bad password"}`)}),
		"scan_complete": FromAudit(audit.Entry{Seq: 230, Time: t0, Tenant: "t_acme", ActorID: "u_2", ActorName: "op",
			Action: audit.ActScanComplete, Object: "scan_9",
			Details: json.RawMessage(`{"findings":3,"exposures":2,"blocked":1,"drift":0,"probes":1536}`)}),
		"scope_register": FromAudit(audit.Entry{Seq: 5, Time: t0, Tenant: "t_acme", ActorID: "u_3", ActorName: "lead",
			ActorIP: "2001:db8::7", Action: audit.ActScopeRegister, Object: "scope_dmz"}),
		"audit_tamper": FromAudit(audit.Entry{Seq: 9001, Time: t0, Action: audit.ActAuditTamper, Object: "audit_entries",
			Details: json.RawMessage(`{"first_bad_seq":812}`)}),
		"finding_exposure": FromFinding("t_acme", 230, t0, Finding{ID: "f_1", ScanID: "scan_9", Kind: "exposure",
			Severity: "high", Title: "SSH reachable from guest VLAN", Rule: "deny-guest-ssh", Target: "10.0.5.22",
			Port: 22, Protocol: "tcp", Observed: "open", Expected: "deny"}),
		"hostile": FromAudit(audit.Entry{Seq: 66, Time: t0, Tenant: "t_\"x]\n", ActorName: "eve\r\n<13>1 - - - - - [x@1 a=\"b\"]",
			ActorIP: "not-an-ip", UserAgent: "ua|with=pipes\\", Action: audit.ActAccessDenied, Object: "obj] [fiq@32473 seq=\"1\"]\n77 <14>1 x",
			Details: json.RawMessage(`{"banner":"SSH-2.0\r\n\u0000evil|x=y\\"}`)}),
	}
}

func TestGolden(t *testing.T) {
	for name, ev := range sampleEvents() {
		for _, format := range []string{FormatOCSF, FormatCEF} {
			t.Run(name+"_"+format, func(t *testing.T) {
				got := Syslog(format, ev, testMeta)
				path := filepath.Join("testdata", name+"."+format+".golden")
				if *update {
					if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run with -update)", err)
				}
				if !bytes.Equal(append(got, '\n'), want) {
					t.Errorf("got\n%s\nwant\n%s", got, want)
				}
				checkMessage(t, got, ev, testMeta)
			})
		}
	}
}

// checkMessage parses msg with go-syslog and checks it field by field
// against the event it came from.
func checkMessage(t *testing.T, msg []byte, ev Event, m Meta) {
	t.Helper()
	if bytes.ContainsAny(msg, "\n\r\x00") {
		t.Fatalf("message contains a line break or NUL: %q", msg)
	}
	p := rfc5424.NewParser()
	parsed, err := p.Parse(msg)
	if err != nil {
		t.Fatalf("parse %q: %v", msg, err)
	}
	sm := parsed.(*rfc5424.SyslogMessage)
	if got, want := *sm.Priority, uint8(FacilityLogAudit*8+ev.severity()); got != want {
		t.Errorf("priority %d, want %d", got, want)
	}
	if !sm.Timestamp.Equal(ev.Time.Truncate(time.Microsecond)) {
		t.Errorf("timestamp %v, want %v", sm.Timestamp, ev.Time)
	}
	if *sm.Appname != AppName {
		t.Errorf("appname %q", *sm.Appname)
	}
	if got, want := deref(sm.Hostname), headerField(m.Hostname, maxHostname); got != want && !(got == "" && want == "-") {
		t.Errorf("hostname %q, want %q", got, want)
	}
	if got, want := deref(sm.MsgID), headerField(ev.Action, maxMsgID); got != want && !(got == "" && want == "-") {
		t.Errorf("msgid %q, want %q", got, want)
	}
	if sm.StructuredData == nil || len(*sm.StructuredData) != 1 {
		t.Fatalf("structured data %v, want exactly one element", sm.StructuredData)
	}
	sd := (*sm.StructuredData)[SDID]
	want := map[string]string{
		"appliance": validUTF8NoCtl(m.ApplianceID), "tenant": validUTF8NoCtl(ev.Tenant),
		"seq": strconv.FormatInt(m.Seq, 10), "auditSeq": strconv.FormatInt(ev.AuditSeq, 10),
		"class": strconv.Itoa(mapAction(ev.Action).class),
	}
	if len(sd) != len(want) {
		t.Errorf("sd params %v, want %v", sd, want)
	}
	for k, v := range want {
		if sd[k] != v {
			t.Errorf("sd %s = %q, want %q", k, sd[k], v)
		}
	}
	body := deref(sm.Message)
	if !strings.HasPrefix(body, "CEF:0|") {
		var obj map[string]any
		if err := json.Unmarshal([]byte(body), &obj); err != nil {
			t.Fatalf("body is not JSON: %v\n%s", err, body)
		}
		md := obj["metadata"].(map[string]any)
		if md["sequence"].(float64) != float64(m.Seq) {
			t.Errorf("metadata.sequence %v", md["sequence"])
		}
		if obj["unmapped"].(map[string]any)["audit_seq"].(float64) != float64(ev.AuditSeq) {
			t.Errorf("unmapped.audit_seq %v", obj["unmapped"])
		}
	}
}

// validUTF8NoCtl is what sdEscape leaves of s once the parser unescapes it.
func validUTF8NoCtl(s string) string {
	var b strings.Builder
	for _, r := range s { // range yields U+FFFD for each invalid byte
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			r = '\uFFFD'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func TestOctetFrame(t *testing.T) {
	msg := Syslog(FormatOCSF, sampleEvents()["hostile"], testMeta)
	f := OctetFrame(msg)
	sp := bytes.IndexByte(f, ' ')
	n, err := strconv.Atoi(string(f[:sp]))
	if err != nil || n != len(msg) || !bytes.Equal(f[sp+1:], msg) {
		t.Fatalf("frame %q", f[:min(len(f), 40)])
	}
}

func TestHeaderField(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"empty is nil value", "", "-"},
		{"plain", "fiq1.example.net", "fiq1.example.net"},
		{"space and newline", "a b\nc", "a_b_c"},
		{"non-ascii", "hé", "h__"},
		{"cut at max", strings.Repeat("x", 40), strings.Repeat("x", 32)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := headerField(tc.in, maxMsgID); got != tc.want {
				t.Errorf("headerField(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestCEFEscape(t *testing.T) {
	for _, tc := range []struct{ name, in, header, ext string }{
		{"pipe", "a|b", `a\|b`, "a|b"},
		{"equals", "a=b", "a=b", `a\=b`},
		{"backslash", `a\b`, `a\\b`, `a\\b`},
		{"newlines", "a\r\nb", `a\r\nb`, `a\r\nb`},
		{"nul", "a\x00b", "a\uFFFDb", "a\uFFFDb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cefHeader(tc.in); got != tc.header {
				t.Errorf("header %q, want %q", got, tc.header)
			}
			if got := cefValue(tc.in); got != tc.ext {
				t.Errorf("ext %q, want %q", got, tc.ext)
			}
		})
	}
}

func TestMapActionCoversVocabulary(t *testing.T) {
	// Every audit action must land in a known class, and the classes the
	// issue names must be used.
	used := map[int]bool{}
	for _, a := range audit.Actions() {
		m := mapAction(string(a))
		if _, ok := ocsfClasses[m.class]; !ok {
			t.Errorf("%s maps to unknown class %d", a, m.class)
		}
		used[m.class] = true
	}
	used[mapAction(ActionFinding).class] = true
	for _, c := range []int{ClassAuthentication, ClassAPIActivity, ClassComplianceFinding, ClassScanActivity} {
		if !used[c] {
			t.Errorf("class %d unused", c)
		}
	}
}

func TestRenderShrinks(t *testing.T) {
	ev := sampleEvents()["scan_complete"]
	ev.Details = json.RawMessage(`{"blob":"` + strings.Repeat("A", 20000) + `"}`)
	ev.Object = strings.Repeat("é", 5000)
	d := Destination{Kind: KindTCP, Format: FormatOCSF, MaxMessage: 2048}
	out := Render(d, ev, testMeta)
	if len(out) > 2048 {
		t.Fatalf("rendered %d bytes, max 2048", len(out))
	}
	checkMessage(t, out, shrink(ev, 32), testMeta)
}
