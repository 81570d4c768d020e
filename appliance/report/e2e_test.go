package report

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"firewalliq/appliance/policy"
	"firewalliq/appliance/report/verify"
	"firewalliq/appliance/store"
	"firewalliq/audit"
	"firewalliq/probe"
)

type loopback struct{}

func (loopback) Contains(a netip.Addr) bool { return a == netip.MustParseAddr("127.0.0.1") }

// TestEndToEndLoopback runs the whole path on loopback without a lab:
// the real probe engine scans 127.0.0.1 (a canary, a service the policy
// denies but which listens: the deliberate mistake, and a closed port);
// the results are evaluated; the results file is recorded in a real audit
// log as evidence; the report is built, signed, verified offline with the
// evidence, shows the mistake as an exposure, and fails once the evidence
// file changes. (The lab version, with a firewall, is the lab's to run.)
func TestEndToEndLoopback(t *testing.T) {
	ctx := context.Background()
	listen := func() (net.Listener, uint16) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		return l, uint16(l.Addr().(*net.TCPAddr).Port)
	}
	_, canary := listen()
	_, mistake := listen()
	cl, closed := listen()
	cl.Close() // now nothing listens there: the kernel answers RST

	var mu sync.Mutex
	var results []probe.Result
	eng, err := probe.New(probe.Config{
		ScanID: "e2e", Targets: slices.Values([]netip.Addr{netip.MustParseAddr("127.0.0.1")}), TargetCount: 1,
		Ports: []probe.Port{{Proto: "tcp", Number: canary}, {Proto: "tcp", Number: mistake}, {Proto: "tcp", Number: closed}},
		Kinds: []probe.Kind{probe.KindTCPConnect}, Scope: loopback{}, Limits: probe.Limits{Profile: 100},
		NoRaw: true, Timeout: 300 * time.Millisecond, Retries: -1,
		Results: func(r probe.Result) error { mu.Lock(); results = append(results, r); mu.Unlock(); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().UTC().Add(-time.Second)
	sum, err := eng.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now().UTC().Add(time.Second)
	if len(results) != 3 {
		t.Fatalf("%d results, want 3", len(results))
	}

	src := []byte(`version: 1
name: loopback
vantage_point: self
default: deny
canaries:
  - {name: canary, target: 127.0.0.1, port: ` + itoa(canary) + `}
rules:
  - {name: canary-open, action: allow, to: 127.0.0.1, ports: "tcp:` + itoa(canary) + `", severity: high}
  - {name: must-be-closed, action: deny, to: 127.0.0.1, ports: "tcp:` + itoa(mistake) + `,` + itoa(closed) + `", denial: reject, severity: critical}
`)
	doc, err := policy.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	w := policy.Window{Start: start, End: end}
	ev := policy.Evaluate(doc, results, w)

	// Evidence: results.jsonl, recorded in the audit log as uploaded.
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "e2e.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := audit.New(audit.Options{Signer: auditKey})
	body, err := policy.ResultsJSONL(results)
	if err != nil {
		t.Fatal(err)
	}
	evDir := filepath.Join(dir, "evidence")
	if err := os.MkdirAll(filepath.Join(evDir, "e2e"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(evDir, "e2e", "results.jsonl"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(body)
	var seq int64
	err = st.InTx(ctx, func(tx *sql.Tx) error {
		d, _ := json.Marshal(map[string]any{"sha256": hex.EncodeToString(h[:]), "size": len(body)})
		e, err := log.Append(ctx, tx, audit.Entry{Tenant: "t1", ActorName: "vault", Action: audit.ActEvidenceUpload, Object: "e2e/results.jsonl", Details: d})
		seq = e.Seq
		if err != nil {
			return err
		}
		_, _, err = log.Checkpoint(ctx, tx)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	items, cp, err := Prove(ctx, st.DB(), []Evidence{{Name: "e2e/results.jsonl", SHA256: hex.EncodeToString(h[:]), Size: int64(len(body))}}, map[string]int64{"e2e/results.jsonl": seq})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Build(Input{ID: "rpt-e2e", Tenant: "t1", CreatedAt: end, Policy: policy.Stored{Name: doc.Name, Version: 1, VantagePoint: doc.VantagePoint, SHA256: doc.SHA256(), Document: doc},
		Window: w, Rate: RateOf(sum, 0), Results: results, Outcome: policy.Outcome{Evaluation: ev}, Evidence: items, Checkpoint: cp})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := Sign(r, reportKey)
	if err != nil {
		t.Fatal(err)
	}
	res, err := verify.Verify(signed, opts(evDir))
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	verdicts := map[string]string{}
	for _, v := range res.Report.Verdicts {
		verdicts[v.Rule] = v.Verdict
	}
	if verdicts["canary-open"] != "pass" || verdicts["must-be-closed"] != "fail" || res.Report.Summary.Findings["exposure"] != 1 {
		t.Fatalf("verdicts %v, findings %v (results %+v)", verdicts, res.Report.Summary.Findings, results)
	}
	if res.Report.Rate.PacketsSent < 3 || res.Report.Rate.CapPPS != 100 {
		t.Errorf("rate %+v", res.Report.Rate)
	}
	// One changed byte of the evidence file and it no longer verifies.
	body[0] ^= 1
	if err := os.WriteFile(filepath.Join(evDir, "e2e", "results.jsonl"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := verify.Verify(signed, opts(evDir)); !errors.Is(err, verify.ErrEvidence) {
		t.Fatalf("changed evidence: %v, want ErrEvidence", err)
	}
	// And one changed byte of the report.
	if _, err := verify.Verify(bytes.Replace(signed, []byte(`"exposure"`), []byte(`"exposurf"`), 1), opts("")); err == nil {
		t.Fatal("edited report verifies")
	}
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }
