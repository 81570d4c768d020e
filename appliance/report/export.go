package report

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/interop"
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
