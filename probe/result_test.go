package probe

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestClean(t *testing.T) {
	tests := []struct {
		name, in string
		max      int
		want     string
		trunc    bool
	}{
		{"plain", "SSH-2.0-OpenSSH_9.6", 100, "SSH-2.0-OpenSSH_9.6", false},
		{"controls and newline", "a\r\n\x1b[2Jb", 100, `a\x0d\x0a\x1b[2Jb`, false},
		{"backslash", `a\b`, 100, `a\\b`, false},
		{"utf-8 bytes", "é", 100, `\xc3\xa9`, false},
		{"cut before an escape", "ab\x00", 5, "ab", true},
		{"cut exactly", "abc", 3, "abc", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, tr := Clean([]byte(tt.in), tt.max)
			if got != tt.want || tr != tt.trunc {
				t.Fatalf("Clean(%q) = %q, %v; want %q, %v", tt.in, got, tr, tt.want, tt.trunc)
			}
		})
	}
}

// FuzzClean: Clean's output is 7-bit printable, within the limit, and
// Unclean restores a prefix of the input (all of it when not truncated).
func FuzzClean(f *testing.F) {
	f.Add([]byte("SSH-2.0-x\r\n"), 64)   // a typical banner
	f.Add([]byte("\x1b]0;pwned\x07"), 8) // a terminal title escape, cut
	f.Add([]byte(`\\x41`), 100)          // text that looks like an escape
	f.Add([]byte{0xff, 0x00, '\n'}, 3)   // binary, limit inside an escape
	f.Fuzz(func(t *testing.T, b []byte, max int) {
		if max < 0 || max > 4096 {
			return
		}
		s, trunc := Clean(b, max)
		if len(s) > max {
			t.Fatalf("len %d > %d", len(s), max)
		}
		for i := 0; i < len(s); i++ {
			if s[i] < 0x20 || s[i] >= 0x7f {
				t.Fatalf("byte 0x%02x in output", s[i])
			}
		}
		back, err := Unclean(s)
		if err != nil {
			t.Fatalf("Unclean(%q): %v", s, err)
		}
		if !bytes.HasPrefix(b, back) || (!trunc && !bytes.Equal(b, back)) {
			t.Fatalf("round trip %q -> %q -> %q", b, s, back)
		}
	})
}

func TestResultJSON(t *testing.T) {
	var buf bytes.Buffer
	w := NewResultWriter(&buf)
	r := Result{Target: "10.0.0.1", Proto: "tcp", Port: 443, Probe: KindTCPSyn, State: StateRejected, Reason: ReasonICMPProhib,
		RTTms: 1.5, Retries: 1, TTL: 63, Time: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC), ICMP: &ICMP{Type: 3, Code: 13, From: "10.0.0.254"}}
	if err := w.Write(r); err != nil {
		t.Fatal(err)
	}
	line := buf.String()
	if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Fatalf("not one line: %q", line)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"target", "proto", "port", "probe", "state", "reason", "rtt_ms", "retries", "ttl", "time", "icmp"} {
		if _, ok := m[k]; !ok {
			t.Errorf("missing %q in %s", k, line)
		}
	}
	if m["time"] != "2026-11-27T12:00:00Z" {
		t.Errorf("time %v is not RFC 3339", m["time"])
	}
}
