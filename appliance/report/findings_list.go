package report

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/report/verify"
	"firewalliq/probe/job"
)

// Read-only views for the console: the findings of the signed reports
// (the only place a finding is kept: an evaluation outside a report is
// audited as a summary and sent to the SIEM, not stored), and a scan's
// timeline of results per second against its rate cap.

// FindingFilter selects findings across a tenant's reports. Zero values
// match everything.
type FindingFilter struct {
	Kind     string // a finding kind (policy.Kind*)
	Severity string
	Policy   string
	ScanID   string
	// Latest keeps only the findings of the newest report of each policy
	// (the open ones).
	Latest bool
	// Reports bounds how many of the newest reports are read; 0 for
	// DefaultFindingReports, at most MaxFindingReports.
	Reports int
}

// Bounds of Findings: each report read is one file parsed.
const (
	DefaultFindingReports = 50
	MaxFindingReports     = 500
)

// FindingRow is one finding of one signed report, with where it came from.
type FindingRow struct {
	verify.Finding
	ReportID      string    `json:"report_id"`
	ScanID        string    `json:"scan_id"`
	ScopeID       string    `json:"scope_id"`
	Policy        string    `json:"policy"`
	PolicyVersion int       `json:"policy_version"`
	CreatedAt     time.Time `json:"created_at"`
	// Latest says the report is the newest of its policy.
	Latest   bool `json:"latest"`
	Imported bool `json:"imported"`
	// Before and After are a drift finding's states (banner, certificate,
	// denial), from the report's drift section; untrusted text.
	Before string `json:"before,omitempty"`
	After  string `json:"after,omitempty"`
}

// FindingList is the findings Findings read.
type FindingList struct {
	Rows []FindingRow `json:"rows"`
	// Reports is how many reports were read; Unreadable names the ones
	// whose working copy is missing or does not match its audit entry.
	Reports    int      `json:"reports"`
	Unreadable []string `json:"unreadable"`
}

// Findings lists the findings of tenant's ("" for p's own) newest signed
// reports that match f, newest report first. Each report's working copy
// is checked against the SHA-256 its report.sign entry recorded; a copy
// that is missing or differs is named in Unreadable and skipped. Needs
// report.read.
func (r *Reports) Findings(ctx context.Context, p auth.Principal, tenant string, f FindingFilter) (FindingList, error) {
	pin, err := r.d.Service.gate.Authorize(ctx, p, auth.OpReportRead, tenant)
	if err != nil {
		return FindingList{}, fmt.Errorf("list findings: %w", err)
	}
	n := f.Reports
	if n <= 0 {
		n = DefaultFindingReports
	}
	n = min(n, MaxFindingReports)
	all, err := r.entries(ctx, pin, "")
	if err != nil {
		return FindingList{}, err
	}
	out := FindingList{Rows: []FindingRow{}, Unreadable: []string{}}
	seen := map[string]bool{}
	for _, st := range all {
		latest := !seen[st.Policy]
		seen[st.Policy] = true
		if out.Reports >= n {
			break
		}
		if f.Latest && !latest || f.Policy != "" && st.Policy != f.Policy || f.ScanID != "" && st.ScanID != f.ScanID {
			continue
		}
		out.Reports++
		rep, err := r.readSigned(pin, st)
		if err != nil {
			out.Unreadable = append(out.Unreadable, st.ID)
			continue
		}
		for _, fd := range rep.Findings {
			if f.Kind != "" && fd.Kind != f.Kind || f.Severity != "" && fd.Severity != f.Severity {
				continue
			}
			row := FindingRow{Finding: fd, ReportID: st.ID, ScanID: st.ScanID, ScopeID: rep.Scope.ID, Policy: st.Policy, PolicyVersion: st.PolicyVersion,
				CreatedAt: st.CreatedAt, Latest: latest, Imported: st.Imported}
			if fd.Kind == "drift" {
				for _, c := range rep.Drift.Changes {
					if c.Kind == fd.Rule && c.Target == fd.Target && c.Proto == fd.Proto && c.Port == fd.Port {
						row.Before, row.After = c.Before, c.After
						break
					}
				}
			}
			out.Rows = append(out.Rows, row)
		}
	}
	return out, nil
}

// readSigned reads the working copy of st, checks it against the SHA-256
// of its audit entry and parses the signed body.
func (r *Reports) readSigned(pin string, st Stored) (verify.Report, error) {
	signed, err := os.ReadFile(filepath.Join(r.d.Dir, filepath.Base(pin), filepath.Base(st.ID)+".json"))
	if err != nil {
		return verify.Report{}, err
	}
	sum := sha256.Sum256(signed)
	if hex.EncodeToString(sum[:]) != st.SHA256 {
		return verify.Report{}, fmt.Errorf("report %s: %w", st.ID, verify.ErrSignature)
	}
	var file verify.File
	if err := json.Unmarshal(signed, &file); err != nil {
		return verify.Report{}, fmt.Errorf("report %s: %w", st.ID, err)
	}
	var rep verify.Report
	if err := json.Unmarshal(file.Report, &rep); err != nil {
		return verify.Report{}, fmt.Errorf("report %s: %w", st.ID, err)
	}
	return rep, nil
}

// MaxTimelineSeconds bounds a timeline: a longer scan's later seconds are
// left out (Truncated).
const MaxTimelineSeconds = 24 * 60 * 60

// Timeline is a scan's results recorded per second, from the stored
// results' engine time stamps, with the rate it was allowed and, once it
// completed, the figures its scan.complete entry recorded.
type Timeline struct {
	ScanID string    `json:"scan_id"`
	Start  time.Time `json:"start"`
	// PerSecond counts the results stamped in each second from Start.
	PerSecond []int `json:"per_second"`
	Truncated bool  `json:"truncated"`
	// RequestedPPS is the job's rate; CapPPS the profile's global cap.
	RequestedPPS int `json:"requested_pps"`
	CapPPS       int `json:"cap_pps"`
	// Completed is set when the figures below were recorded.
	Completed   bool    `json:"completed"`
	MeasuredPPS float64 `json:"measured_pps"`
	Worst100ms  int     `json:"worst_100ms"`
	Packets     uint64  `json:"packets"`
}

// Timeline returns scan scanID's timeline (an empty one before its job is
// issued). Needs scan.read.
func (r *Reports) Timeline(ctx context.Context, p auth.Principal, tenant, scanID string) (Timeline, error) {
	sc, err := r.d.Scans.Get(ctx, p, tenant, scanID)
	if err != nil {
		return Timeline{}, fmt.Errorf("scan timeline: %w", err)
	}
	tl := Timeline{ScanID: sc.ID, PerSecond: []int{}, CapPPS: r.d.Profile.GlobalPPS}
	if sc.Job == nil {
		return tl, nil
	}
	var no int64
	var signed []byte
	err = r.d.DB.QueryRowContext(ctx, `SELECT no, signed FROM scan_jobs WHERE scan_id = ? AND tenant_id = ?`, sc.ID, sc.Tenant).Scan(&no, &signed)
	if errors.Is(err, sql.ErrNoRows) {
		return tl, nil
	}
	if err != nil {
		return Timeline{}, fmt.Errorf("scan timeline: %w", err)
	}
	if j, _, err := job.Open(signed); err == nil {
		tl.RequestedPPS = j.Request.Rate
	}
	// Time stamps are RFC 3339 UTC text; the first 19 characters are the
	// second. One pass over the job's rows (its primary key range).
	rows, err := r.d.DB.QueryContext(ctx, `SELECT substr(time, 1, 19) AS s, count(*) FROM scan_results WHERE job_no = ? GROUP BY s ORDER BY s LIMIT ?`,
		no, MaxTimelineSeconds+1)
	if err != nil {
		return Timeline{}, fmt.Errorf("scan timeline: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return Timeline{}, fmt.Errorf("scan timeline: %w", err)
		}
		at, err := time.Parse("2006-01-02T15:04:05", s)
		if err != nil {
			continue // not a time stamp the engine writes
		}
		if tl.Start.IsZero() {
			tl.Start = at
		}
		i := int(at.Sub(tl.Start) / time.Second)
		if i >= MaxTimelineSeconds {
			tl.Truncated = true
			break
		}
		for len(tl.PerSecond) <= i {
			tl.PerSecond = append(tl.PerSecond, 0)
		}
		tl.PerSecond[i] += n
	}
	if err := rows.Err(); err != nil {
		return Timeline{}, fmt.Errorf("scan timeline: %w", err)
	}
	if c, err := r.completion(ctx, sc); err == nil {
		tl.Completed, tl.MeasuredPPS, tl.Worst100ms, tl.Packets = true, c.MeasuredPPS, c.Worst100ms, c.Packets
	}
	return tl, nil
}
