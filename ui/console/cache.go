package console

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"sync"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/scan"
	"firewalliq/audit"
)

// readCache keeps what a page read from a service for one principal,
// tagged with the audit log's size at the time of the read. Every state
// change is a service method that writes its audit entry in the same
// transaction (one door), so while the log has not grown, a read that
// depends only on audited state gives the same answer: a hit is exact,
// not merely recent, and needs no TTL. What changes without an audit
// entry is never cached (a running scan's result count, health, vault
// and SIEM delivery state, sensors' heartbeats).
//
// Keys include the whole principal (user, role, tenant, home tenant,
// token), so a hit answers only the principal the service authorised;
// a disabled user or ended session never reaches a page (signedIn).
type readCache struct {
	mu sync.Mutex
	m  map[string]cachedRead
}

type cachedRead struct {
	version int64
	val     any
}

// maxCached bounds the cache; when full it is emptied (a page then reads
// from its service again).
const maxCached = 1024

func (rc *readCache) get(key string, version int64) (any, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	e, ok := rc.m[key]
	if !ok || e.version != version {
		return nil, false
	}
	return e.val, true
}

func (rc *readCache) put(key string, version int64, val any) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.m == nil || len(rc.m) >= maxCached {
		rc.m = map[string]cachedRead{}
	}
	rc.m[key] = cachedRead{version: version, val: val}
}

// principalKey identifies everything about p that authorisation reads.
func principalKey(p auth.Principal) string {
	return p.UserID + "\x00" + p.Role + "\x00" + p.TenantID + "\x00" + p.HomeTenantID + "\x00" + p.TokenID
}

// auditWindow returns the newest audit entries p may see among the last
// recentWindow (auditlog.Service.Entries), cached while the log holds size
// entries.
//
// rows is the dashboard's table of the newest ten of them, rendered once
// per window (template "recentrows"): html/template's escaping of fifty
// fields was the larger part of the dashboard's rendering.
func (c *Console) auditWindow(ctx context.Context, p auth.Principal, size int64) (es []audit.Entry, rows template.HTML, err error) {
	key := "audit\x00" + principalKey(p)
	if v, ok := c.cache.get(key, size); ok {
		w := v.(auditRows)
		return w.entries, w.rows, nil
	}
	pg, err := c.d.Audit.Entries(ctx, p, "", max(size-recentWindow, 0), recentWindow)
	if err != nil {
		return nil, "", err
	}
	if rows, err = c.recentRows(pg.Entries); err != nil {
		return nil, "", err
	}
	c.cache.put(key, size, auditRows{entries: pg.Entries, rows: rows})
	return pg.Entries, rows, nil
}

type auditRows struct {
	entries []audit.Entry
	rows    template.HTML
}

// recentRows renders the newest ten of es, newest first, as table rows.
func (c *Console) recentRows(es []audit.Entry) (template.HTML, error) {
	recent := make([]audit.Entry, 0, 10)
	for i := len(es) - 1; i >= 0 && len(recent) < 10; i-- {
		recent = append(recent, es[i])
	}
	var b bytes.Buffer
	if err := c.pages["dashboard"].ExecuteTemplate(&b, "recentrows", recent); err != nil {
		return "", fmt.Errorf("console: render recent entries: %w", err)
	}
	return template.HTML(b.String()), nil //nolint:gosec // the output of html/template, escaped there
}

// recentScansFor returns the tenant's newest scans (scan.Scans.List),
// cached while the log holds size entries, but only when every scan
// listed has settled (request and job final): a running job's result
// count grows without an audit entry, and a finished one's never changes.
func (c *Console) recentScansFor(ctx context.Context, p auth.Principal, size int64) ([]scan.Scan, error) {
	key := "scans\x00" + principalKey(p)
	if v, ok := c.cache.get(key, size); ok {
		return v.([]scan.Scan), nil
	}
	pg, err := c.d.Scans.List(ctx, p, "", scan.ListFilter{Limit: recentScans})
	if err != nil {
		return nil, err
	}
	for _, sc := range pg.Items {
		if !settled(sc) {
			return pg.Items, nil
		}
	}
	c.cache.put(key, size, pg.Items)
	return pg.Items, nil
}

// settled reports whether scan sc can no longer change without an audit
// entry: its request is final and so is its job, if it has one. A
// cancelled request is final at once (scan.cancel is audited), while its
// job runs on until the runner stops, saving result batches (not audited)
// before it moves to "cancelled" (audited as scan.stop).
func settled(sc scan.Scan) bool {
	if !finalState(sc.State) {
		return false
	}
	if sc.Job == nil {
		return true
	}
	switch sc.Job.State {
	case scan.JobCompleted, scan.JobFailed, scan.JobCancelled, scan.JobRefused:
		return true
	}
	return false
}

// scanFor is scan.Scans.Get for a page that may reuse a finished scan
// read while the log held size entries (the results explorer: Get counts
// the scan's results, a scan of 10^6 results costs tens of milliseconds).
// size < 0 means unknown: always read.
func (c *Console) scanFor(ec echo.Context, p auth.Principal, tenant, id string, size int64) (scan.Scan, error) {
	key := "scan\x00" + principalKey(p) + "\x00" + tenant + "\x00" + id
	if size >= 0 {
		if v, ok := c.cache.get(key, size); ok {
			return v.(scan.Scan), nil
		}
	}
	sc, err := c.d.Scans.Get(ec.Request().Context(), p, tenant, id)
	if err != nil {
		return scan.Scan{}, err
	}
	if size >= 0 && settled(sc) {
		c.cache.put(key, size, sc)
	}
	return sc, nil
}
