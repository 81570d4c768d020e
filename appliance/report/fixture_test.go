package report

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"firewalliq/appliance/policy"
	"firewalliq/appliance/report/verify"
	"firewalliq/appliance/store"
	"firewalliq/audit"
	"firewalliq/probe"
	"firewalliq/probe/keys"
)

// Keys from fixed seeds, so the signed golden file is reproducible
// (Ed25519 signatures are deterministic).
var (
	reportKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	auditKey  = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32))
	otherKey  = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
	t0        = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
)

const testPolicy = `version: 1
name: dmz-from-corp
vantage_point: corp-lan
default: deny
default_severity: medium
denial: either
groups:
  - name: dmz
    cidrs: [10.20.0.0/24]
  - name: db
    cidrs: [10.30.0.0/24]
canaries:
  - {name: dmz-https, target: 10.20.0.7, port: 443}
rules:
  - {name: web, action: allow, to: [dmz], ports: "tcp:80,443", severity: high}
  - {name: db-closed, action: deny, to: [db], ports: "tcp:3306", denial: drop, severity: critical}
  - {name: ssh-rejected, action: deny, to: [dmz], ports: "tcp:22", denial: reject, severity: high}
`

// built is a signed report and what verifying it needs.
type built struct {
	signed      []byte
	evidenceDir string
	// older is a validly signed checkpoint other than the report's.
	older string
	in    Input
}

// buildReport runs the whole path on real parts: a SQLite audit log with
// evidence entries and signed checkpoints, a policy evaluation with an
// exposure (the "deliberate mistake": tcp/3306 open) and a drift change,
// the proofs, the report, its signature.
func buildReport(t testing.TB) built {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	now := t0
	clock := func() time.Time { return now }
	st, err := store.Open(ctx, filepath.Join(dir, "r.db"), store.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := audit.New(audit.Options{Now: clock, Signer: auditKey})

	// The evidence objects, as files an auditor receives.
	evDir := filepath.Join(dir, "evidence")
	files := map[string][]byte{
		"scans/scan-1/results.jsonl": []byte(`{"target":"10.30.0.5","proto":"tcp","port":3306,"state":"open"}` + "\n"),
		"scans/scan-1/probes.pcapng": bytes.Repeat([]byte{0x0a, 0x0d, 0x0d, 0x0a}, 64),
	}
	var items []Evidence
	seqs := map[string]int64{}
	append1 := func(e audit.Entry) audit.Entry {
		var out audit.Entry
		err := st.InTx(ctx, func(tx *sql.Tx) error {
			var err error
			out, err = log.Append(ctx, tx, e)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Second)
		return out
	}
	checkpoint := func() audit.Checkpoint {
		var cp audit.Checkpoint
		err := st.InTx(ctx, func(tx *sql.Tx) error {
			var err error
			cp, _, err = log.Checkpoint(ctx, tx)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return cp
	}
	append1(audit.Entry{Tenant: "t_acme", ActorName: "lead", Action: audit.ActScanStart, Object: "scan:scan-1", Details: json.RawMessage(`{"scope":"dmz"}`)})
	anchor := checkpoint() // the day's anchor covers the first entry
	for _, name := range []string{"scans/scan-1/probes.pcapng", "scans/scan-1/results.jsonl"} {
		body := files[name]
		if err := os.MkdirAll(filepath.Dir(filepath.Join(evDir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(evDir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(body)
		d, _ := json.Marshal(map[string]any{"name": name, "sha256": hex.EncodeToString(sum[:]), "size": len(body)})
		e := append1(audit.Entry{Tenant: "t_acme", ActorName: "appliance", Action: audit.ActEvidenceUpload, Object: "evidence:" + name, Details: d})
		items = append(items, Evidence{Name: name, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(body))})
		seqs[name] = e.Seq
	}
	append1(audit.Entry{Tenant: "t_acme", ActorName: "lead", Action: audit.ActScanComplete, Object: "scan:scan-1", Details: json.RawMessage(`{"results":4}`)})
	checkpoint()
	proved, cp, err := Prove(ctx, st.DB(), items, seqs)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := audit.ProveConsistency(ctx, st.DB(), anchor.Size)
	if err != nil {
		t.Fatal(err)
	}

	doc, err := policy.Parse([]byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	at := t0.Add(time.Minute)
	results := []probe.Result{
		{Target: "10.20.0.7", Proto: "tcp", Port: 443, Probe: probe.KindTCPSyn, State: probe.StateOpen, Reason: probe.ReasonSynAck, Time: at},
		{Target: "10.20.0.7", Proto: "tcp", Port: 80, Probe: probe.KindTCPSyn, State: probe.StateOpen, Reason: probe.ReasonSynAck, Time: at},
		{Target: "10.20.0.7", Proto: "tcp", Port: 22, Probe: probe.KindTCPSyn, State: probe.StateRejected, Reason: probe.ReasonICMPPortUnr,
			ICMP: &probe.ICMP{Type: 3, Code: 3, From: "10.20.0.1"}, Time: at},
		{Target: "10.30.0.5", Proto: "tcp", Port: 3306, Probe: probe.KindTCPSyn, State: probe.StateOpen, Reason: probe.ReasonSynAck, Time: at},
	}
	baseline := []probe.Result{{Target: "10.30.0.5", Proto: "tcp", Port: 3306, Probe: probe.KindTCPSyn, State: probe.StateFiltered, Time: t0.Add(-24 * time.Hour)}}
	w := policy.Window{Start: t0, End: t0.Add(10 * time.Minute)}
	ev := policy.Evaluate(doc, results, w)
	drift := policy.Drift(baseline, results)
	out := policy.Outcome{Evaluation: ev, BaselineID: "bl_fixture", Drift: drift,
		Findings: append(append([]policy.Finding{}, ev.Findings...), policy.DriftFindings(drift)...)}
	in := Input{
		ID: "rpt_fixture", Tenant: "t_acme", CreatedAt: t0.Add(time.Hour),
		Appliance: verify.Appliance{ID: "fiq-test", Version: "v0.0.0-test"},
		Scan:      verify.Scan{ID: "scan-1", Vantage: "sn_corp", VantageLabel: "corp-lan"},
		Scope: verify.Scope{ID: "dmz", Name: "dmz", Environment: "production", SHA256: "5c0be", SignerKeyID: "lead-key",
			CIDRs: []string{"10.20.0.0/24", "10.30.0.0/24"}, Exclude: []string{}, Ports: "tcp:22,80,443,3306"},
		Policy:    policy.Stored{Name: doc.Name, Version: 3, VantagePoint: doc.VantagePoint, SHA256: doc.SHA256(), Document: doc},
		Profile:   verify.Profile{ID: "default", SHA256: "pr0f1le", MaxPPS: 400},
		Job:       verify.Job{ID: "job-1", SHA256: "j0b", KeyID: "job-key"},
		Approvals: []verify.Approval{{Approver: "ann", Role: "approver", Time: "2026-11-29T11:00:00Z"}, {Approver: "bob", Role: "security_lead", Time: "2026-11-29T11:05:00Z"}},
		Operators: []verify.Operator{{ID: "u_lead", Name: "lead", Role: "security_lead"}},
		Window:    w,
		Rate:      verify.Rate{RequestedPPS: 400, CapPPS: 400, MeasuredMilliPPS: 396512, Worst100ms: 41, WindowLimit: 41, PacketsSent: 1200},
		Results:   results, Outcome: out, Evidence: proved, Checkpoint: cp,
		Anchor:     &Anchor{Day: "2026-11-29", Checkpoint: anchor.Note, Consistency: cons},
		AuditKeyID: keys.ID(auditKey.Public().(ed25519.PublicKey)), ReportKeyID: keys.ID(reportKey.Public().(ed25519.PublicKey)),
	}
	r, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := Sign(r, reportKey)
	if err != nil {
		t.Fatal(err)
	}
	return built{signed: signed, evidenceDir: evDir, older: anchor.Note, in: in}
}

func opts(evDir string) verify.Options {
	return verify.Options{ReportKey: reportKey.Public().(ed25519.PublicKey), AuditKey: auditKey.Public().(ed25519.PublicKey), EvidenceDir: evDir}
}
