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
	"strings"
	"time"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/report/verify"
	"firewalliq/probe"
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
	// The newest MaxFindingReports reports decide which is the newest of
	// each policy; a policy whose newest report is older is left out.
	all, err := r.recent(ctx, pin, MaxFindingReports)
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

// Recent returns the newest limit (1 to MaxList) reports of tenant (""
// for p's own), newest first: List, bounded, for pages that show only
// the latest. Needs report.read.
func (r *Reports) Recent(ctx context.Context, p auth.Principal, tenant string, limit int) ([]Stored, error) {
	pin, err := r.d.Service.gate.Authorize(ctx, p, auth.OpReportRead, tenant)
	if err != nil {
		return nil, fmt.Errorf("list reports: %w", err)
	}
	return r.recent(ctx, pin, limit)
}

// recent is entries(pin, "") with a limit.
func (r *Reports) recent(ctx context.Context, pin string, limit int) ([]Stored, error) {
	return r.entriesUpTo(ctx, pin, "", min(max(limit, 1), MaxList))
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
	// Sampled says the counts were derived from every k-th result's time
	// stamp (a scan of more than 50,000 results): close, not exact.
	Sampled bool `json:"sampled"`
	// RequestedPPS is the job's rate; CapPPS the profile's global cap.
	RequestedPPS int `json:"requested_pps"`
	CapPPS       int `json:"cap_pps"`
	// Completed is set when the figures below were recorded.
	Completed   bool    `json:"completed"`
	MeasuredPPS float64 `json:"measured_pps"`
	Worst100ms  int     `json:"worst_100ms"`
	Packets     uint64  `json:"packets"`
	// Sent is the final run's packets per bucket of seconds, recorded at
	// completion: when present, the chart draws packets per second.
	Sent *probe.SendSeries `json:"sent,omitempty"`

	frac []float64 // fractional counts of a sampled timeline
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
	// seq counts from 1 per job without gaps (appliance/scan SaveBatch),
	// and max is one seek.
	var n int64
	if err := r.d.DB.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM scan_results WHERE job_no = ?`, no).Scan(&n); err != nil {
		return Timeline{}, fmt.Errorf("scan timeline: %w", err)
	}
	if n <= timelineExact {
		err = r.exactTimeline(ctx, no, &tl)
	} else {
		err = r.sampledTimeline(ctx, no, n, &tl)
	}
	if err != nil {
		return Timeline{}, fmt.Errorf("scan timeline: %w", err)
	}
	if c, err := r.completion(ctx, sc); err == nil {
		tl.Completed, tl.MeasuredPPS, tl.Worst100ms, tl.Packets, tl.Sent = true, c.MeasuredPPS, c.Worst100ms, c.Packets, c.Sent
	}
	return tl, nil
}

// timelineExact is the most results a timeline counts one by one (one
// grouped pass, about 27 ms at 50,000 here); a larger scan is sampled
// (timelineSamples index seeks, about 20 ms at 10^6 results here),
// since a pass over 10^6 results takes about 1.4 s on this machine.
const (
	timelineExact   = 50_000
	timelineSamples = 4000
)

// exactTimeline counts job no's results per second of their time stamps
// (RFC 3339 UTC text: the first 19 characters are the second).
func (r *Reports) exactTimeline(ctx context.Context, no int64, tl *Timeline) error {
	rows, err := r.d.DB.QueryContext(ctx, `SELECT substr(time, 1, 19) AS s, count(*) FROM scan_results WHERE job_no = ? GROUP BY s ORDER BY s LIMIT ?`,
		no, MaxTimelineSeconds+1)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return err
		}
		at, err := time.Parse("2006-01-02T15:04:05", s)
		if err != nil {
			continue // not a time stamp the engine writes
		}
		tl.add(at, float64(n))
	}
	return rows.Err()
}

// sampledTimeline reads the time stamps of every k-th of job no's n
// results (seq 1, 1+k, ..., n: primary key seeks) and spreads the results
// between two samples evenly over the seconds between their stamps.
// Results are stored about in the order they were stamped, so the counts
// are close; the chart says they are sampled.
func (r *Reports) sampledTimeline(ctx context.Context, no, n int64, tl *Timeline) error {
	tl.Sampled = true
	step := max(n/timelineSamples, 1)
	args := []any{no}
	marks := make([]string, 0, timelineSamples+2)
	for q := int64(1); q <= n; q += step {
		args, marks = append(args, q), append(marks, "?")
	}
	if (n-1)%step != 0 {
		args, marks = append(args, n), append(marks, "?")
	}
	// seq IN (...) on the primary key: one seek per sample.
	rows, err := r.d.DB.QueryContext(ctx, `SELECT seq, time FROM scan_results WHERE job_no = ? AND seq IN (`+strings.Join(marks, ",")+`) ORDER BY seq`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var ss []timeSample
	for rows.Next() {
		var x timeSample
		var ts string
		if err := rows.Scan(&x.seq, &ts); err != nil {
			return err
		}
		if x.at, err = time.Parse(time.RFC3339Nano, ts); err == nil {
			ss = append(ss, x)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	tl.spread(ss)
	return nil
}

// timeSample is the time stamp of result seq.
type timeSample struct {
	seq int64
	at  time.Time
}

// spread counts the results between consecutive samples (in seq order)
// evenly over the seconds from the earlier stamp to the later one.
func (tl *Timeline) spread(ss []timeSample) {
	for i, x := range ss {
		if i == 0 {
			tl.add(x.at.Truncate(time.Second), 1)
			continue
		}
		prev := ss[i-1]
		count := float64(x.seq - prev.seq)
		from, to := prev.at.Truncate(time.Second), x.at.Truncate(time.Second)
		if !to.After(from) {
			tl.add(from, count)
			continue
		}
		secs := int(to.Sub(from)/time.Second) + 1
		for j := range secs {
			tl.add(from.Add(time.Duration(j)*time.Second), count/float64(secs))
		}
	}
}

// add counts n results in the second at (the first call sets Start;
// earlier seconds go into the first). Counts are rounded when read.
func (tl *Timeline) add(at time.Time, n float64) {
	if tl.Start.IsZero() {
		tl.Start = at
	}
	i := max(int(at.Sub(tl.Start)/time.Second), 0)
	if i >= MaxTimelineSeconds {
		tl.Truncated = true
		return
	}
	for len(tl.frac) <= i {
		tl.frac = append(tl.frac, 0)
		tl.PerSecond = append(tl.PerSecond, 0)
	}
	tl.frac[i] += n
	tl.PerSecond[i] = int(tl.frac[i] + 0.5)
}
