package probe

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/results.golden.jsonl")

// TestResultsGolden pins the results.jsonl format (docs/probe.md): one
// line per state and object kind, hostile banner and certificate text
// included.
func TestResultsGolden(t *testing.T) {
	at := time.Date(2026, 11, 27, 12, 0, 1, 204000000, time.UTC)
	banner, trunc := Clean([]byte("SSH-2.0-OpenSSH_9.6\r\n\x1b]0;owned\x07"), MaxBannerText)
	rows := []Result{
		{Target: "10.20.0.7", Proto: "tcp", Port: 22, Probe: KindTCPSyn, State: StateOpen, Reason: ReasonSynAck, RTTms: 0.412, TTL: 63, Time: at},
		{Target: "10.20.0.7", Proto: "tcp", Port: 25, Probe: KindTCPSyn, State: StateClosed, Reason: ReasonRST, RTTms: 0.39, TTL: 63, Time: at},
		{Target: "10.20.0.7", Proto: "tcp", Port: 3306, Probe: KindTCPSyn, State: StateFiltered, Reason: ReasonNoResponse, Retries: 2, Time: at},
		{Target: "10.20.0.7", Proto: "tcp", Port: 8443, Probe: KindTCPSyn, State: StateRejected, Reason: ReasonICMPProhib, RTTms: 0.5, TTL: 64, Time: at,
			ICMP: &ICMP{Type: 3, Code: 13, From: "10.20.0.1"}},
		{Target: "fd00:20::7", Proto: "udp", Port: 161, Probe: KindUDP, State: StateOpenFiltered, Reason: ReasonNoResponse, Retries: 2, Time: at},
		{Target: "fd00:20::7", Proto: "udp", Port: 123, Probe: KindUDP, State: StateClosed, Reason: ReasonICMPPortUnr, RTTms: 0.2, TTL: 64, Time: at,
			ICMP: &ICMP{Type: 1, Code: 4, From: "fd00:20::7"}},
		{Target: "10.20.0.7", Proto: "icmp", Port: 0, Probe: KindICMPEcho, State: StateOpen, Reason: ReasonEchoReply, RTTms: 0.1, TTL: 63, Time: at},
		{Target: "10.20.0.9", Proto: "tcp", Port: 22, Probe: KindTCPConnect, Fallback: KindTCPSyn, State: StateOpen, Reason: ReasonConnected, RTTms: 1.1, Time: at},
		{Target: "10.20.0.9", Proto: "tcp", Port: 22, Probe: KindBanner, State: StateOpen, Reason: ReasonConnected, RTTms: 1.9, TTL: 64, Time: at,
			Banner: &Banner{Text: banner, Bytes: 31, Truncated: trunc}},
		{Target: "10.20.0.9", Proto: "tcp", Port: 443, Probe: KindTLSHello, State: StateOpen, Reason: ReasonHandshake, RTTms: 0.8, TTL: 64, Time: at,
			TLS: &TLS{Version: "TLS 1.3", CipherSuite: "TLS_AES_128_GCM_SHA256", ALPN: "h2", Chain: []Cert{{
				Subject: cleanString("CN=web.lab\n<script>", MaxField), Issuer: "CN=lab CA",
				NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
				DNSNames: []string{"web.lab"}, IPs: []string{"10.20.0.9"}, SHA256: "9f2c1b0e5d4a3c2b1a09f8e7d6c5b4a39f2c1b0e5d4a3c2b1a09f8e7d6c5b4a3",
			}}}},
		{Target: "10.20.0.66", Proto: "tcp", Port: 22, Probe: KindTCPSyn, State: StateError, Reason: "out-of-scope-refused", Time: at, Error: ErrOutOfScope.Error()},
	}
	var buf bytes.Buffer
	w := NewResultWriter(&buf)
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join("testdata", "results.golden.jsonl")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("results format changed; if on purpose, run with -update and update docs/probe.md\ngot:\n%s\nwant:\n%s", buf.Bytes(), want)
	}
}
