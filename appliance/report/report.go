// Package report builds the signed compliance report from a scan's
// results, its policy evaluation and the audit proofs of its evidence, and
// renders it as HTML and PDF. The document format and the offline verifier
// live in the leaf package report/verify; this package only fills it in.
// The format is documented in docs/report.md.
package report

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"firewalliq/appliance/policy"
	"firewalliq/appliance/report/verify"
	"firewalliq/audit"
	"firewalliq/probe"
)

// ErrIncomplete means the input lacks something a report must carry.
var ErrIncomplete = errors.New("report input incomplete")

// Input is everything a report is built from.
type Input struct {
	ID        string
	Tenant    string
	CreatedAt time.Time
	Appliance verify.Appliance
	// Imported marks results imported from another scanner (unsigned).
	Imported bool
	// Scan names the scan and the runner (vantage) it ran from.
	Scan      verify.Scan
	Scope     verify.Scope
	Policy    policy.Stored
	Profile   verify.Profile
	Job       verify.Job
	Approvals []verify.Approval
	Operators []verify.Operator
	Window    policy.Window
	Rate      verify.Rate
	Results   []probe.Result
	Outcome   policy.Outcome
	Evidence  []Evidence
	// Checkpoint is the signed audit checkpoint every proof leads to.
	Checkpoint audit.Checkpoint
	// Anchor is the daily anchor the checkpoint is consistent with; nil
	// when none covers it yet.
	Anchor *Anchor
	// AuditKeyID and ReportKeyID name the keys a reader verifies with.
	AuditKeyID, ReportKeyID string
}

// Evidence is one evidence object and the inclusion proof of the audit
// entry that recorded its SHA-256.
type Evidence struct {
	Name   string
	SHA256 string
	Size   int64
	Proof  audit.InclusionProof
}

// Anchor is a daily anchor and the consistency proof to the checkpoint.
type Anchor struct {
	Day         string
	Checkpoint  string
	Consistency audit.ConsistencyProof
}

// VerifyCommand is the command a reader runs to check a report offline.
const VerifyCommand = "firewalliq report verify report.json --pub report.pub --audit-pub audit.pub --evidence DIR"

// Build fills in the report document. It is pure: the same input gives
// the same document.
func Build(in Input) (verify.Report, error) {
	switch {
	case in.ID == "" || in.Tenant == "":
		return verify.Report{}, fmt.Errorf("%w: id and tenant", ErrIncomplete)
	case in.Policy.Document == nil:
		return verify.Report{}, fmt.Errorf("%w: policy", ErrIncomplete)
	case in.Checkpoint.Note == "":
		return verify.Report{}, fmt.Errorf("%w: audit checkpoint", ErrIncomplete)
	}
	ev := in.Outcome.Evaluation
	r := verify.Report{
		Format:       verify.FormatV1,
		ID:           in.ID,
		Tenant:       in.Tenant,
		CreatedAt:    stamp(in.CreatedAt),
		Appliance:    in.Appliance,
		Imported:     in.Imported,
		VantagePoint: in.Policy.VantagePoint,
		Scan:         in.Scan,
		Window:       verify.Window{Start: stamp(in.Window.Start), End: stamp(in.Window.End)},
		Scope:        in.Scope,
		Policy: verify.Policy{Name: in.Policy.Name, Version: in.Policy.Version, SHA256: in.Policy.SHA256,
			VantagePoint: in.Policy.VantagePoint, Document: string(in.Policy.Document.Canonical())},
		Profile:      in.Profile,
		Job:          in.Job,
		Approvals:    nonNil(in.Approvals),
		Operators:    nonNil(in.Operators),
		Rate:         in.Rate,
		Verdicts:     []verify.Verdict{},
		Canaries:     []verify.Canary{},
		Findings:     []verify.Finding{},
		Drift:        verify.Drift{BaselineID: in.Outcome.BaselineID, Changes: []verify.Change{}},
		Evidence:     []verify.Evidence{},
		Checkpoint:   in.Checkpoint.Note,
		Verification: verify.Verification{Command: VerifyCommand, AuditKeyID: in.AuditKeyID, ReportKeyID: in.ReportKeyID},
	}
	if r.Scope.CIDRs == nil {
		r.Scope.CIDRs = []string{}
	}
	if r.Scope.Exclude == nil {
		r.Scope.Exclude = []string{}
	}
	sum := verify.Summary{Rules: map[string]int{}, Findings: map[string]int{}, Results: len(in.Results)}
	for _, v := range ev.Rules {
		r.Verdicts = append(r.Verdicts, verify.Verdict{Rule: v.Rule, Action: string(v.Action), Severity: string(v.Severity), Verdict: string(v.Verdict),
			Tested: v.Tested, Passed: v.Passed, Failed: v.Failed, DenialStyle: v.DenialStyle, Inconclusive: v.Inconclusive})
		sum.Rules[string(v.Verdict)]++
	}
	for _, c := range ev.Canaries {
		r.Canaries = append(r.Canaries, verify.Canary{Name: c.Name, Target: c.Target, Proto: c.Proto, Port: int(c.Port), Answered: c.Answered})
	}
	findings := in.Outcome.Findings
	if findings == nil {
		findings = append(append([]policy.Finding{}, ev.Findings...), policy.DriftFindings(in.Outcome.Drift)...)
	}
	for _, f := range findings {
		vf := verify.Finding{ID: f.ID, Kind: f.Kind, Severity: string(f.Severity), Rule: f.Rule, Title: f.Title, Target: f.Target, Proto: f.Proto,
			Port: int(f.Port), Expected: f.Expected, Observed: f.Observed, Reason: f.Reason, ICMPType: -1, ICMPCode: -1}
		if f.ICMP != nil {
			vf.ICMPType, vf.ICMPCode = f.ICMP.Type, f.ICMP.Code
		}
		r.Findings = append(r.Findings, vf)
		sum.Findings[f.Kind]++
	}
	for _, c := range in.Outcome.Drift {
		r.Drift.Changes = append(r.Drift.Changes, verify.Change{Kind: c.Kind, Severity: string(c.Severity), Target: c.Target, Proto: c.Proto, Port: int(c.Port), Before: c.Before, After: c.After})
	}
	r.Summary = sum
	r.Compliance = Compliance(ev.Rules)
	for _, e := range in.Evidence {
		p, err := json.Marshal(e.Proof)
		if err != nil {
			return verify.Report{}, fmt.Errorf("report: proof of %s: %w", e.Name, err)
		}
		if e.Proof.Checkpoint != in.Checkpoint.Note {
			return verify.Report{}, fmt.Errorf("%w: proof of %s leads to another checkpoint", ErrIncomplete, e.Name)
		}
		r.Evidence = append(r.Evidence, verify.Evidence{Name: e.Name, SHA256: e.SHA256, Size: int(e.Size), AuditSeq: int(e.Proof.Entry.Seq), Proof: string(p)})
	}
	sort.Slice(r.Evidence, func(i, j int) bool { return r.Evidence[i].Name < r.Evidence[j].Name })
	if a := in.Anchor; a != nil {
		p, err := json.Marshal(a.Consistency)
		if err != nil {
			return verify.Report{}, fmt.Errorf("report: anchor proof: %w", err)
		}
		r.Anchor = &verify.Anchor{Day: a.Day, Checkpoint: a.Checkpoint, Consistency: string(p)}
	}
	return r, nil
}

// Combine builds the combined report of several scans: each input (with
// the combined report's id, tenant and creation time) becomes a complete
// part, judged against its own policy; the summary totals the parts and
// the control mapping rests on every part's rules, named
// "vantage_point/rule". Pure, as Build.
func Combine(id, tenant string, created time.Time, app verify.Appliance, ins []Input) (verify.Combined, error) {
	if len(ins) == 0 || len(ins) > verify.MaxParts {
		return verify.Combined{}, fmt.Errorf("%w: %d scans, a combined report holds 1 to %d", ErrIncomplete, len(ins), verify.MaxParts)
	}
	c := verify.Combined{Format: verify.FormatCombinedV1, ID: id, Tenant: tenant, CreatedAt: stamp(created), Appliance: app,
		Summary: verify.Summary{Rules: map[string]int{}, Findings: map[string]int{}}, Parts: []verify.Report{}}
	var rules []policy.RuleResult
	seen := map[string]bool{}
	for i, in := range ins {
		if in.Scan.ID == "" || seen[in.Scan.ID] {
			return verify.Combined{}, fmt.Errorf("%w: part %d: scan %q is missing or given twice", ErrIncomplete, i+1, in.Scan.ID)
		}
		seen[in.Scan.ID] = true
		in.ID, in.Tenant, in.CreatedAt, in.Appliance = id, tenant, created, app
		r, err := Build(in)
		if err != nil {
			return verify.Combined{}, fmt.Errorf("part %d (scan %s): %w", i+1, in.Scan.ID, err)
		}
		c.Parts = append(c.Parts, r)
		for k, n := range r.Summary.Rules {
			c.Summary.Rules[k] += n
		}
		for k, n := range r.Summary.Findings {
			c.Summary.Findings[k] += n
		}
		c.Summary.Results += r.Summary.Results
		for _, v := range in.Outcome.Evaluation.Rules {
			v.Rule = r.VantagePoint + "/" + v.Rule
			rules = append(rules, v)
		}
		c.Verification = r.Verification
	}
	c.Compliance = Compliance(rules)
	return c, nil
}

// Sign encodes r canonically and signs it with the report key.
func Sign(r verify.Report, priv ed25519.PrivateKey) ([]byte, error) { return verify.Sign(r, priv) }

// Prove gathers the inclusion proof of each evidence object's audit entry
// against the latest stored checkpoint, so they all lead to one
// checkpoint. seqs maps evidence names to the seq of the entry that
// recorded them.
func Prove(ctx context.Context, q audit.Queryer, items []Evidence, seqs map[string]int64) ([]Evidence, audit.Checkpoint, error) {
	cp, err := audit.LatestStoredCheckpoint(ctx, q)
	if err != nil {
		return nil, audit.Checkpoint{}, fmt.Errorf("report proofs: %w", err)
	}
	out := slices.Clone(items)
	for i := range out {
		seq, ok := seqs[out[i].Name]
		if !ok {
			return nil, audit.Checkpoint{}, fmt.Errorf("%w: no audit entry for %s", ErrIncomplete, out[i].Name)
		}
		if out[i].Proof, err = audit.ProveInclusionAt(ctx, q, seq, cp); err != nil {
			return nil, audit.Checkpoint{}, fmt.Errorf("report proofs: %s: %w", out[i].Name, err)
		}
	}
	return out, cp, nil
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// RateOf is the report's rate section from a probe run's summary: the
// measured rate as milli-packets per second, so the signed document holds
// only integers. requested is the operator's rate (0: the cap).
func RateOf(s probe.Summary, requested int) verify.Rate {
	if requested == 0 {
		requested = s.CapPPS
	}
	return verify.Rate{RequestedPPS: requested, CapPPS: s.CapPPS, MeasuredMilliPPS: int(s.MeasuredPPS*1000 + 0.5),
		Worst100ms: s.Worst100ms, WindowLimit: s.WindowLimit, PacketsSent: int(s.PacketsSent)}
}
