package report

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/interop"
	"firewalliq/appliance/policy"
)

// Export formats, as Export and the API name them.
const (
	ExportNmapXML = "nmap-xml"
	ExportJSONL   = "jsonl"
)

// Export returns completed scan scanID's stored results of tenant ("" for
// p's own) as format ExportNmapXML (an Nmap XML document Debian's ndiff
// reads; interop.WriteNmapXML) or ExportJSONL (JSON Lines, the engine's
// results.jsonl form), with its media type. It is a read, like the results
// page it is made from: it needs scan.read and records no audit entry. The
// export is a convenience copy, not evidence: the signed results file in
// the evidence vault is what a report proves.
func (r *Reports) Export(ctx context.Context, p auth.Principal, tenant, scanID, format string) ([]byte, string, error) {
	sc, rs, w, err := r.scanResults(ctx, p, tenant, scanID)
	if err != nil {
		return nil, "", fmt.Errorf("export scan %s: %w", scanID, err)
	}
	var buf bytes.Buffer
	switch strings.ToLower(format) {
	case ExportNmapXML, "nmap", "xml", "":
		vantage := "local"
		if sc.Job != nil && sc.Job.VantageLabel != "" {
			vantage = sc.Job.VantageLabel
		}
		info := interop.ScanInfo{ScanID: sc.ID, Version: r.d.Appliance.Version, Start: w.Start, End: w.End,
			Args: fmt.Sprintf("firewalliq scan %s (scope %s, vantage %s)", sc.ID, sc.ScopeID, vantage)}
		if err := interop.WriteNmapXML(&buf, info, rs); err != nil {
			return nil, "", fmt.Errorf("export scan %s: %w", scanID, err)
		}
		return buf.Bytes(), "application/xml", nil
	case ExportJSONL:
		if err := interop.WriteJSONL(&buf, rs); err != nil {
			return nil, "", fmt.Errorf("export scan %s: %w", scanID, err)
		}
		return buf.Bytes(), "application/jsonl", nil
	}
	return nil, "", fmt.Errorf("export scan %s: %w: format %q (want %s or %s)", scanID, ErrIncomplete, format, ExportNmapXML, ExportJSONL)
}

// EvaluateImported judges results imported from another scanner's Nmap
// XML document against policy name (version 0: the newest) and, when
// scopeID is given, compares them with the current baseline of that scope
// and policy (drift). The results are unsigned: policy.Service.Evaluate
// records them as imported in its policy.evaluate entry and every SIEM
// finding's title says so. The evaluation's scan id is "nmap-" and the
// first 16 hex digits of the document's SHA-256, so the audit log ties the
// entry to the file. Needs policy.evaluate.
func (r *Reports) EvaluateImported(ctx context.Context, p auth.Principal, tenant, name string, version int, scopeID string, doc []byte) (policy.Outcome, error) {
	im, err := interop.ReadNmapXML(bytes.NewReader(doc))
	if err != nil {
		return policy.Outcome{}, fmt.Errorf("evaluate import: %w", err)
	}
	w := policy.Window{Start: im.Start.UTC(), End: im.End.UTC()}
	for _, res := range im.Results {
		if t := res.Time; !t.IsZero() {
			if w.Start.IsZero() || t.Before(w.Start) {
				w.Start = t.UTC()
			}
			if t.After(w.End) {
				w.End = t.UTC()
			}
		}
	}
	if !w.Start.IsZero() && w.End.Before(w.Start) {
		w.End = w.Start
	}
	sum := sha256.Sum256(doc)
	return r.d.Policies.Evaluate(ctx, p, tenant, policy.EvaluateRequest{PolicyName: name, PolicyVersion: version, ScopeID: scopeID,
		ScanID: "nmap-" + hex.EncodeToString(sum[:8]), Results: im.Results, Window: w, Imported: true})
}
