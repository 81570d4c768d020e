package scan

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"firewalliq/appliance/store"
	"firewalliq/probe"
)

// Errors of the results store and query.
var (
	// ErrBadFilter means a results filter is invalid (an unknown state or
	// probe kind, a port outside 0-65535, a limit outside 1-MaxPageSize).
	ErrBadFilter = errors.New("invalid results filter")
	// ErrBadCursor means a page cursor is malformed or belongs to another
	// filter or scan.
	ErrBadCursor = errors.New("invalid page cursor")
)

// Page sizes of the results query.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// RequestRow is a scan_requests row.
type RequestRow struct {
	ID            string
	TenantID      string
	RequesterID   string
	ScopeID       string
	ScopeSHA256   string
	Request       []byte // canonical request (job.Request.Canonical)
	RequestSHA256 string
	State         string
	CreatedAt     time.Time
}

// InsertRequest records a scan request in the caller's transaction.
func InsertRequest(ctx context.Context, tx *sql.Tx, r RequestRow) error {
	at := r.CreatedAt.UTC().Format(time.RFC3339Nano)
	_, err := tx.ExecContext(ctx, `INSERT INTO scan_requests (id, tenant_id, requester_id, scope_id, scope_sha256, request, request_sha256, state, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.TenantID, r.RequesterID, r.ScopeID, r.ScopeSHA256, r.Request, r.RequestSHA256, r.State, at, at)
	if err != nil {
		return fmt.Errorf("insert scan request %s: %w", r.ID, err)
	}
	return nil
}

// JobRow is a scan_jobs row as the orchestrator writes it.
type JobRow struct {
	No        int64
	ID        string
	ScanID    string
	TenantID  string
	RequestID string
	JobSHA256 string
	Signed    []byte
	Vantage   string
	State     string
	IssuedAt  time.Time
}

// InsertJob records an issued job in the caller's transaction and returns
// its number (the key results are stored under).
func InsertJob(ctx context.Context, tx *sql.Tx, j JobRow) (int64, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO scan_jobs (id, scan_id, tenant_id, request_id, job_sha256, signed, vantage, state, issued_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		j.ID, j.ScanID, j.TenantID, j.RequestID, j.JobSHA256, j.Signed, j.Vantage, j.State, j.IssuedAt.UTC().Format(time.RFC3339Nano))
	if err != nil {
		return 0, fmt.Errorf("insert job %s: %w", j.ID, err)
	}
	return res.LastInsertId()
}

// Result is one stored probe result.
type Result struct {
	Seq      int64     `json:"seq"`
	Target   string    `json:"target"`
	Proto    string    `json:"proto"`
	Port     int       `json:"port"`
	Probe    string    `json:"probe"`
	State    string    `json:"state"`
	Reason   string    `json:"reason"`
	ICMPType *int      `json:"icmp_type,omitempty"`
	ICMPCode *int      `json:"icmp_code,omitempty"`
	RTTus    int64     `json:"rtt_us"` // -1: no answer
	TTL      int       `json:"ttl"`
	Time     time.Time `json:"time"`
	Evidence []string  `json:"evidence"`
	// Detail is what the probe read beyond its state (retries,
	// fallback_from, tls, banner, error), as the engine reported it.
	Detail json.RawMessage `json:"detail,omitempty"`
}

// detailOf is the JSON object of r's members beyond the indexed columns.
func detailOf(r probe.Result) (string, error) {
	m := map[string]any{}
	if r.Retries > 0 {
		m["retries"] = r.Retries
	}
	if r.Fallback != "" {
		m["fallback_from"] = r.Fallback
	}
	if r.TLS != nil {
		m["tls"] = r.TLS
	}
	if r.Banner != nil {
		m["banner"] = r.Banner
	}
	if r.Error != "" {
		m["error"] = r.Error
	}
	b, err := json.Marshal(m)
	return string(b), err
}

// SaveBatch stores one completed batch of a job's results, with sequence
// numbers from firstSeq, and records the checkpoint nextBatch, in the
// caller's transaction: a batch is stored whole with its checkpoint or not
// at all, so a restart resumes at the first batch not stored (no result
// lost, none stored twice). evidence lists the evidence objects the batch's
// results link to (pcapng, results file), or nil.
func SaveBatch(ctx context.Context, tx *sql.Tx, jobNo, firstSeq int64, rs []probe.Result, evidence []string, nextBatch int) error {
	ev := "[]"
	if len(evidence) > 0 {
		b, err := json.Marshal(evidence)
		if err != nil {
			return fmt.Errorf("save batch: %w", err)
		}
		ev = string(b)
	}
	st, err := tx.PrepareContext(ctx, `INSERT INTO scan_results
		(job_no, seq, target, target_key, proto, port, probe, state, reason, icmp_type, icmp_code, rtt_us, ttl, time, evidence, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("save batch: %w", err)
	}
	defer st.Close()
	for i, r := range rs {
		a, err := netip.ParseAddr(r.Target)
		if err != nil {
			return fmt.Errorf("save batch: result target %q: %w", r.Target, err)
		}
		key := a.Unmap().As16()
		if a.Unmap().Is4() {
			key = netip.AddrFrom4(a.Unmap().As4()).As16() // ::ffff:a.b.c.d
		}
		var it, ic any
		if r.ICMP != nil {
			it, ic = r.ICMP.Type, r.ICMP.Code
		}
		rtt := int64(-1)
		if r.RTTms > 0 {
			rtt = int64(r.RTTms * 1000)
		}
		det, err := detailOf(r)
		if err != nil {
			return fmt.Errorf("save batch: result %d: %w", firstSeq+int64(i), err)
		}
		if _, err := st.ExecContext(ctx, jobNo, firstSeq+int64(i), a.Unmap().String(), key[:], r.Proto, int(r.Port), string(r.Probe),
			string(r.State), r.Reason, it, ic, rtt, r.TTL, r.Time.UTC().Format(time.RFC3339Nano), ev, det); err != nil {
			return fmt.Errorf("save batch: result %d: %w", firstSeq+int64(i), err)
		}
	}
	res, err := tx.ExecContext(ctx, `UPDATE scan_jobs SET next_batch = ? WHERE no = ? AND next_batch < ?`, nextBatch, jobNo, nextBatch)
	if err != nil {
		return fmt.Errorf("save batch: checkpoint: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("save batch: checkpoint %d of job %d: %w", nextBatch, jobNo, store.ErrConflict)
	}
	return nil
}

// ResultFilter selects results of one scan. Zero values match everything.
type ResultFilter struct {
	State string     // a probe.State ("open", "filtered", ...)
	Port  int        // 1-65535; 0 for any
	Host  netip.Addr // one address; invalid for any
	Probe string     // a probe kind
	Limit int        // page size, 1-MaxPageSize; 0 for DefaultPageSize
	After string     // the Next of the previous page; "" for the first
}

// ResultPage is one page of results; Next is "" on the last page.
type ResultPage struct {
	Items []Result `json:"items"`
	Next  string   `json:"next"`
}

// plan is how a filter is served: one index, chosen explicitly, whose
// leading columns the filter fixes (eq) and whose next columns order the
// page (order, ending with seq), so every page is an index seek plus a walk
// bounded by the page size (and, for residual filters, by how many rows of
// the index range they reject; see docs/benchmarks.md).
type plan struct {
	index    string
	eq       []string // columns fixed by the filter, after job_no
	order    []string // keyset columns, last is seq
	residual []string // filter columns checked row by row
}

// choose picks the plan for a filter. The rules keep every walk bounded:
// a host has few rows (ports x probes); a port without a state is served
// by the port index (a port has at most hosts x probes rows, and probe
// kinds are few); otherwise the most specific of probe+state+port or
// state+port.
func choose(f ResultFilter) plan {
	switch {
	case f.Host.IsValid():
		p := plan{index: "scan_results_host", eq: []string{"target_key"}, order: []string{"seq"}}
		for _, c := range []struct {
			col string
			on  bool
		}{{"port", f.Port != 0}, {"state", f.State != ""}, {"probe", f.Probe != ""}} {
			if c.on {
				p.residual = append(p.residual, c.col)
			}
		}
		return p
	case f.Port != 0 && f.State == "":
		p := plan{index: "scan_results_port", eq: []string{"port"}, order: []string{"seq"}}
		if f.Probe != "" {
			p.residual = []string{"probe"}
		}
		return p
	case f.Probe != "":
		p := plan{index: "scan_results_probe", eq: []string{"probe"}}
		rest := []string{"state", "port", "seq"}
		if f.State != "" {
			p.eq, rest = append(p.eq, "state"), rest[1:]
			if f.Port != 0 {
				p.eq, rest = append(p.eq, "port"), rest[1:]
			}
		}
		p.order = rest
		return p
	case f.State != "":
		p := plan{index: "scan_results_state", eq: []string{"state"}, order: []string{"port", "seq"}}
		if f.Port != 0 {
			p.eq, p.order = append(p.eq, "port"), []string{"seq"}
		}
		return p
	case f.Port != 0:
		return plan{index: "scan_results_port", eq: []string{"port"}, order: []string{"seq"}}
	}
	return plan{index: "", order: []string{"seq"}}
}

// cursor is the decoded form of ResultPage.Next: the plan's index, the
// filter it was made for, and the last row's keyset values.
type cursor struct {
	Index  string `json:"i"`
	Filter string `json:"f"`
	Keys   []any  `json:"k"`
}

// key names the scan and filter a cursor belongs to.
func (f ResultFilter) key(jobID string) string {
	h := ""
	if f.Host.IsValid() {
		h = f.Host.String()
	}
	return fmt.Sprintf("%s|%s|%d|%s|%s", jobID, f.State, f.Port, h, f.Probe)
}

var knownStates = []probe.State{probe.StateOpen, probe.StateClosed, probe.StateFiltered, probe.StateRejected, probe.StateOpenFiltered, probe.StateError}

func (f *ResultFilter) validate() error {
	if f.State != "" {
		ok := false
		for _, s := range knownStates {
			ok = ok || string(s) == f.State
		}
		if !ok {
			return fmt.Errorf("%w: state %q", ErrBadFilter, f.State)
		}
	}
	if f.Probe != "" {
		ok := false
		for _, k := range probe.Kinds() {
			ok = ok || string(k) == f.Probe
		}
		if !ok {
			return fmt.Errorf("%w: probe %q", ErrBadFilter, f.Probe)
		}
	}
	if f.Port < 0 || f.Port > 65535 {
		return fmt.Errorf("%w: port %d", ErrBadFilter, f.Port)
	}
	if f.Host.IsValid() {
		f.Host = f.Host.Unmap().WithZone("")
	}
	switch {
	case f.Limit == 0:
		f.Limit = DefaultPageSize
	case f.Limit < 0 || f.Limit > MaxPageSize:
		return fmt.Errorf("%w: limit %d outside 1-%d", ErrBadFilter, f.Limit, MaxPageSize)
	}
	return nil
}

// QueryResults returns one page of the results of job jobID of tenant
// tenantID that match f, in the order of the plan the filter selects
// (docs/benchmarks.md): by seq, or by port then seq for a state filter.
// A job of another tenant is store.ErrNotFound.
func QueryResults(ctx context.Context, db *sql.DB, tenantID, jobID string, f ResultFilter) (ResultPage, error) {
	if err := f.validate(); err != nil {
		return ResultPage{}, err
	}
	var jobNo int64
	err := db.QueryRowContext(ctx, `SELECT no FROM scan_jobs WHERE id = ? AND tenant_id = ?`, jobID, tenantID).Scan(&jobNo)
	if errors.Is(err, sql.ErrNoRows) {
		return ResultPage{}, fmt.Errorf("scan job %s: %w", jobID, store.ErrNotFound)
	}
	if err != nil {
		return ResultPage{}, fmt.Errorf("scan job %s: %w", jobID, err)
	}
	p := choose(f)
	query, args, err := buildQuery(jobNo, jobID, p, f)
	if err != nil {
		return ResultPage{}, err
	}
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return ResultPage{}, fmt.Errorf("query results: %w", err)
	}
	defer rows.Close()
	page := ResultPage{Items: []Result{}}
	var last []any
	for rows.Next() {
		if len(page.Items) == f.Limit {
			// One more row exists: there is a next page.
			c, err := json.Marshal(cursor{Index: p.index, Filter: f.key(jobID), Keys: last})
			if err != nil {
				return ResultPage{}, fmt.Errorf("query results: %w", err)
			}
			page.Next = base64.RawURLEncoding.EncodeToString(c)
			break
		}
		var r Result
		var it, ic sql.NullInt64
		var tm, ev, det string
		keys := make([]any, len(p.order))
		dst := []any{&r.Seq, &r.Target, &r.Proto, &r.Port, &r.Probe, &r.State, &r.Reason, &it, &ic, &r.RTTus, &r.TTL, &tm, &ev, &det}
		for i := range keys {
			dst = append(dst, &keys[i])
		}
		if err := rows.Scan(dst...); err != nil {
			return ResultPage{}, fmt.Errorf("query results: %w", err)
		}
		if it.Valid {
			v, c := int(it.Int64), int(ic.Int64)
			r.ICMPType, r.ICMPCode = &v, &c
		}
		if r.Time, err = time.Parse(time.RFC3339Nano, tm); err != nil {
			return ResultPage{}, fmt.Errorf("query results: time of %d: %w", r.Seq, err)
		}
		if err := json.Unmarshal([]byte(ev), &r.Evidence); err != nil {
			return ResultPage{}, fmt.Errorf("query results: evidence of %d: %w", r.Seq, err)
		}
		if det != "{}" && det != "" {
			r.Detail = json.RawMessage(det)
		}
		page.Items = append(page.Items, r)
		last = keys
	}
	if err := rows.Err(); err != nil {
		return ResultPage{}, fmt.Errorf("query results: %w", err)
	}
	return page, nil
}

// buildQuery writes the SQL of plan p for filter f (validated) of job
// jobNo. Column names come from the plan, never from input.
func buildQuery(jobNo int64, jobID string, p plan, f ResultFilter) (string, []any, error) {
	vals := map[string]any{"state": f.State, "port": f.Port, "probe": f.Probe}
	if f.Host.IsValid() {
		k := f.Host.As16()
		if f.Host.Is4() {
			k = netip.AddrFrom4(f.Host.As4()).As16()
		}
		vals["target_key"] = k[:]
	}
	var q strings.Builder
	args := []any{jobNo}
	q.WriteString(`SELECT seq, target, proto, port, probe, state, reason, icmp_type, icmp_code, rtt_us, ttl, time, evidence, detail, ` +
		strings.Join(p.order, ", ") + ` FROM scan_results`)
	if p.index != "" {
		q.WriteString(" INDEXED BY " + p.index)
	}
	q.WriteString(" WHERE job_no = ?")
	for _, c := range append(append([]string{}, p.eq...), p.residual...) {
		q.WriteString(" AND " + c + " = ?")
		args = append(args, vals[c])
	}
	if f.After != "" {
		keys, err := decodeCursor(f.After, p, f.key(jobID))
		if err != nil {
			return "", nil, err
		}
		q.WriteString(" AND (" + strings.Join(p.order, ", ") + ") > (" + strings.Repeat("?, ", len(p.order)-1) + "?)")
		args = append(args, keys...)
	}
	q.WriteString(" ORDER BY " + strings.Join(p.order, ", ") + " LIMIT ?")
	args = append(args, f.Limit+1)
	return q.String(), args, nil
}

// decodeCursor checks a cursor against the plan and filter it must belong
// to and returns its keyset values, typed as the columns are.
func decodeCursor(s string, p plan, filterKey string) ([]any, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) > 1024 {
		return nil, fmt.Errorf("%w: not a cursor", ErrBadCursor)
	}
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%w: not a cursor", ErrBadCursor)
	}
	if c.Index != p.index || c.Filter != filterKey || len(c.Keys) != len(p.order) {
		return nil, fmt.Errorf("%w: it belongs to another filter", ErrBadCursor)
	}
	out := make([]any, len(c.Keys))
	for i, col := range p.order {
		switch col {
		case "seq", "port":
			n, ok := c.Keys[i].(float64)
			if !ok || n != float64(int64(n)) || n < 0 || n > 1<<53 {
				return nil, fmt.Errorf("%w: %s is not an integer", ErrBadCursor, col)
			}
			out[i] = int64(n)
		default:
			v, ok := c.Keys[i].(string)
			if !ok {
				return nil, fmt.Errorf("%w: %s is not a string", ErrBadCursor, col)
			}
			out[i] = v
		}
	}
	return out, nil
}
