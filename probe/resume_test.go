package probe

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"
)

// TestResume interrupts a scan after its fourth batch and resumes it: the
// second run sends nothing to the targets of finished batches, and the
// results file ends with every target exactly once.
func TestResume(t *testing.T) {
	needRoot(t)
	var targets []netip.Addr
	for i := 1; i <= 10; i++ {
		targets = append(targets, netip.AddrFrom4([4]byte{127, 0, 0, byte(i)}))
	}
	port := closedPort(t, "127.0.0.1")
	dir := t.TempDir()
	cp := Checkpoint{ScanID: "resume", Fingerprint: "fp1", Seed: 42}
	var evidence uint64
	run := func(resume bool, stopAfter int) (map[netip.Addr]int, error) {
		d, err := OpenDir(dir, cp, resume)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		e, err := newTestEngine(Config{
			ScanID: "resume", Targets: seqOf(targets...), Scope: prefixes{netip.MustParsePrefix("127.0.0.0/8")},
			Ports: []Port{{"tcp", port}}, Kinds: []Kind{KindTCPSyn}, Limits: Limits{Profile: 2000},
			Timeout: 100 * time.Millisecond, Retries: -1, BatchTargets: 1,
			Results: d.Result, Evidence: d.Evidence(), ResumeBatch: d.Resume().NextBatch,
			Checkpoint: func(next int) error {
				if err := d.Checkpoint(next); err != nil {
					return err
				}
				if next == stopAfter {
					cancel()
				}
				return nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := openRaw()
		if err != nil {
			t.Fatal(err)
		}
		cc := &countingConn{packetConn: raw, dsts: map[netip.Addr]int{}}
		e.conn = cc
		s, runErr := e.Run(ctx)
		evidence += s.EvidencePackets
		if err := d.Finish(s, runErr == nil); err != nil {
			t.Fatal(err)
		}
		return cc.dsts, runErr
	}
	first, err := run(false, 4)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v", err)
	}
	for _, a := range targets[:4] {
		if first[a] != 1 {
			t.Fatalf("first run sent %d to %s", first[a], a)
		}
	}
	// A different scan may not resume this directory.
	if _, err := OpenDir(dir, Checkpoint{Fingerprint: "other"}, true); !errors.Is(err, ErrResumeMismatch) {
		t.Fatalf("mismatched resume: %v", err)
	}
	// Simulate a crash mid-write: garbage after the checkpointed results.
	f, _ := os.OpenFile(filepath.Join(dir, ResultsFile), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"target":"127.0.0.9","sta`)
	f.Close()
	// ... and half an enhanced packet block in the evidence.
	pcap, _ := os.OpenFile(filepath.Join(dir, EvidenceFile), os.O_APPEND|os.O_WRONLY, 0)
	pcap.Write([]byte{6, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	pcap.Close()
	second, err := run(true, -1)
	if err != nil {
		t.Fatalf("resumed run: %v", err)
	}
	for i, a := range targets {
		if want := map[bool]int{true: 0, false: 1}[i < 4]; second[a] != want {
			t.Fatalf("resumed run sent %d packets to %s, want %d", second[a], a, want)
		}
	}
	seen := map[string]int{}
	rf, _ := os.Open(filepath.Join(dir, ResultsFile))
	defer rf.Close()
	sc := bufio.NewScanner(rf)
	for sc.Scan() {
		var r Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("results line %q: %v", sc.Text(), err)
		}
		seen[r.Target]++
	}
	if len(seen) != 10 {
		t.Fatalf("results cover %d targets: %v", len(seen), seen)
	}
	for k, v := range seen {
		if v != 1 {
			t.Fatalf("%s appears %d times", k, v)
		}
	}
	var s Summary
	b, _ := os.ReadFile(filepath.Join(dir, SummaryFile))
	if err := json.Unmarshal(b, &s); err != nil || s.States[StateClosed] != 10 || s.ResumedAtBatch != 4 {
		t.Fatalf("summary %s (%v)", b, err)
	}
	// The evidence of both runs is one readable section.
	pf, err := os.Open(filepath.Join(dir, EvidenceFile))
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	pr, err := pcapgo.NewNgReader(pf, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for {
		if _, _, err := pr.ReadPacketData(); err != nil {
			if err != io.EOF {
				t.Fatalf("evidence after %d packets: %v", n, err)
			}
			break
		}
		n++
	}
	if n != evidence || n < 20 {
		t.Fatalf("evidence file holds %d packets, the runs recorded %d", n, evidence)
	}
	if _, err := OpenDir(dir, cp, true); !errors.Is(err, ErrComplete) {
		t.Fatalf("resuming a complete scan: %v", err)
	}
	if _, err := OpenDir(dir, cp, false); !errors.Is(err, ErrExists) {
		t.Fatalf("new scan over old results: %v", err)
	}
}
