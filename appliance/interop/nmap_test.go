package interop

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"firewalliq/probe"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func r(target, proto string, port uint16, st probe.State, ic *probe.ICMP) probe.Result {
	k := probe.KindTCPSyn
	if proto == "udp" {
		k = probe.KindUDP
	}
	return probe.Result{Target: target, Proto: proto, Port: port, Probe: k, State: st, ICMP: ic, Time: t0, TTL: 63}
}

func scans() (a, b []probe.Result) {
	a = []probe.Result{
		r("10.20.0.7", "tcp", 22, probe.StateOpen, nil),
		r("10.20.0.7", "tcp", 80, probe.StateFiltered, nil),
		r("10.20.0.7", "tcp", 8443, probe.StateRejected, &probe.ICMP{Type: 3, Code: 13}),
		r("10.30.0.5", "tcp", 3306, probe.StateFiltered, nil),
		r("fd00:20::7", "udp", 53, probe.StateOpen, nil),
	}
	b = []probe.Result{
		r("10.20.0.7", "tcp", 22, probe.StateOpen, nil),
		r("10.20.0.7", "tcp", 80, probe.StateFiltered, nil),
		r("10.20.0.7", "tcp", 8443, probe.StateRejected, &probe.ICMP{Type: 3, Code: 13}),
		r("10.30.0.5", "tcp", 3306, probe.StateOpen, nil), // the change
		r("fd00:20::7", "udp", 53, probe.StateOpen, nil),
	}
	return a, b
}

// TestNmapXMLRoundTrip: an export imports back to the same states (our
// rejected survives as Nmap's filtered with an ICMP reason), marked
// unsigned.
func TestNmapXMLRoundTrip(t *testing.T) {
	a, _ := scans()
	var buf bytes.Buffer
	if err := WriteNmapXML(&buf, ScanInfo{ScanID: "s1", Args: "firewalliq scan s1", Version: "test", Start: t0, End: t0.Add(time.Minute)}, a); err != nil {
		t.Fatal(err)
	}
	imp, err := ReadNmapXML(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !imp.Unsigned || imp.Scanner != "firewalliq" || len(imp.Results) != len(a) {
		t.Fatalf("imported %+v", imp)
	}
	got := map[string]probe.Result{}
	for _, x := range imp.Results {
		got[fmt.Sprint(x.Target, x.Proto, x.Port)] = x
	}
	for _, x := range a {
		g := got[fmt.Sprint(x.Target, x.Proto, x.Port)]
		if g.State != x.State || !strings.HasPrefix(g.Reason, "nmap:") {
			t.Errorf("%s %s/%d: imported %s (%s), exported %s", x.Target, x.Proto, x.Port, g.State, g.Reason, x.State)
		}
		if x.ICMP != nil && (g.ICMP == nil || g.ICMP.Type != x.ICMP.Type || g.ICMP.Code != x.ICMP.Code) {
			t.Errorf("icmp %+v, want %+v", g.ICMP, x.ICMP)
		}
	}
}

// TestNdiffReadsExports: Debian's ndiff reads two exports and reports
// exactly the port that changed.
func TestNdiffReadsExports(t *testing.T) {
	if _, err := exec.LookPath("ndiff"); err != nil {
		t.Skip("ndiff not installed (apt-get install ndiff)")
	}
	a, b := scans()
	dir := t.TempDir()
	write := func(name string, rs []probe.Result, start time.Time) string {
		var buf bytes.Buffer
		if err := WriteNmapXML(&buf, ScanInfo{Args: "firewalliq scan", Version: "test", Start: start, End: start.Add(time.Minute)}, rs); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pa, pb := write("a.xml", a, t0), write("b.xml", b, t0.Add(time.Hour))
	out, err := exec.Command("ndiff", pa, pa).CombinedOutput()
	if err != nil {
		t.Fatalf("ndiff of a file with itself: %v\n%s", err, out)
	}
	out, err = exec.Command("ndiff", pa, pb).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("ndiff a b: %v (want exit 1: differences)\n%s", err, out)
	}
	s := string(out)
	if !strings.Contains(s, "10.30.0.5") || !strings.Contains(s, "-3306/tcp filtered") || !strings.Contains(s, "+3306/tcp open") {
		t.Fatalf("ndiff did not report the 3306 change:\n%s", s)
	}
	if strings.Contains(s, "22/tcp") || strings.Contains(s, "8443") || strings.Contains(s, "53/udp") {
		t.Fatalf("ndiff reported unchanged ports:\n%s", s)
	}
}

func TestWriteJSONL(t *testing.T) {
	a, _ := scans()
	var buf bytes.Buffer
	if err := WriteJSONL(&buf, a); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "\n"); n != len(a) || !strings.Contains(buf.String(), `"state":"rejected"`) {
		t.Fatalf("jsonl:\n%s", buf.String())
	}
}

func TestReadNmapXMLRefuses(t *testing.T) {
	tests := []struct{ name, in string }{
		{"not xml", "hello"},
		{"host without address", `<nmaprun><host><ports><port protocol="tcp" portid="1"><state state="open"/></port></ports></host></nmaprun>`},
		{"bad protocol", `<nmaprun><host><address addr="10.0.0.1" addrtype="ipv4"/><ports><port protocol="sctp" portid="1"><state state="open"/></port></ports></host></nmaprun>`},
		{"bad state", `<nmaprun><host><address addr="10.0.0.1" addrtype="ipv4"/><ports><port protocol="tcp" portid="1"><state state="maybe"/></port></ports></host></nmaprun>`},
		{"entity", `<!DOCTYPE x [<!ENTITY e "x">]><nmaprun scanner="&e;"></nmaprun>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ReadNmapXML(strings.NewReader(tt.in)); !errors.Is(err, ErrInvalid) {
				t.Fatalf("%v, want ErrInvalid", err)
			}
		})
	}
}

// FuzzReadNmapXML: the importer never panics, and what it accepts is
// marked unsigned with reasons prefixed "nmap:".
func FuzzReadNmapXML(f *testing.F) {
	a, _ := scans()
	var buf bytes.Buffer
	_ = WriteNmapXML(&buf, ScanInfo{Start: t0, End: t0}, a)
	f.Add(buf.Bytes())                                                                                                                                                                           // an export of ours
	f.Add([]byte(`<nmaprun><host><address addr="::1" addrtype="ipv6"/><ports><port protocol="udp" portid="53"><state state="filtered" reason="port-unreach"/></port></ports></host></nmaprun>`)) // v6 reject
	f.Add([]byte(`<nmaprun`))                                                                                                                                                                    // truncated
	f.Fuzz(func(t *testing.T, b []byte) {
		imp, err := ReadNmapXML(bytes.NewReader(b))
		if err != nil {
			return
		}
		if !imp.Unsigned {
			t.Fatal("import not marked unsigned")
		}
		for _, x := range imp.Results {
			if !strings.HasPrefix(x.Reason, "nmap:") {
				t.Fatalf("reason %q not marked as imported", x.Reason)
			}
		}
	})
}
