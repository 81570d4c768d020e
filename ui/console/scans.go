package console

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/scan"
	"firewalliq/appliance/sensor"
	"firewalliq/probe"
)

// The scan pages: the tenant's scans (keyset pages, filter by state) with
// the request form; one scan with its canonical request, its approvals
// (approve and deny for production scopes), start and cancel, and live
// progress over Server-Sent Events (scanEvents relays scan.Scans.Watch);
// and the results explorer. Every action is a scan.Scans method: the
// service authorises, asks for step-up and audits.

// scanStates are the states the list filters by (scan.State*).
var scanStates = []string{scan.StatePending, scan.StateApproved, scan.StateDenied, scan.StateQueued,
	scan.StateRunning, scan.StateCompleted, scan.StateFailed, scan.StateCancelled}

// resultStates are the probe states the results explorer filters by.
var resultStates = []probe.State{probe.StateOpen, probe.StateClosed, probe.StateFiltered, probe.StateRejected,
	probe.StateOpenFiltered, probe.StateError}

type scansData struct {
	Scans  []scan.Scan
	State  string
	States []string
	// Next is the query of the next (older) page, "" on the last.
	Next string
	// Scopes are the tenant's scopes the request form offers (not
	// revoked); CanRequest says the user may request scans.
	Scopes     []scan.Scope
	CanRequest bool
	Probes     []string
	// Cap is the profile's global packet-rate cap, the rate field's
	// upper bound.
	Cap int
	// Sensors are the tenant's active sensors the request form offers as
	// vantage points besides this appliance.
	Sensors []sensor.Sensor
}

// tenantQuery is "?tenant=T" for an appliance admin's picked tenant.
func tenantQuery(tenant string) string {
	if tenant == "" {
		return ""
	}
	return "?tenant=" + url.QueryEscape(tenant)
}

func (c *Console) scansPage(ec echo.Context) error {
	if c.d.Scans == nil {
		return errUnavailable
	}
	ctx := ec.Request().Context()
	p, _ := principal(ec)
	tenant, tenants, err := c.tenantFor(ec, p)
	if err != nil {
		return err
	}
	state := ec.QueryParam("state")
	page, err := c.d.Scans.List(ctx, p, tenant, scan.ListFilter{State: state, Before: ec.QueryParam("before")})
	if err != nil {
		return err
	}
	d := scansData{Scans: page.Items, State: state, States: scanStates, Cap: c.d.Profile.GlobalPPS,
		CanRequest: p.TenantID != "" && c.allowed(p.Role, auth.OpScanRequest)}
	if page.Next != "" {
		q := url.Values{"before": {page.Next}}
		if state != "" {
			q.Set("state", state)
		}
		if tenant != "" {
			q.Set("tenant", tenant)
		}
		d.Next = "?" + q.Encode()
	}
	if d.CanRequest && c.d.Scopes != nil {
		scs, err := c.d.Scopes.List(ctx, p, tenant)
		if err != nil {
			return err
		}
		for _, s := range scs {
			if s.RevokedAt == "" {
				d.Scopes = append(d.Scopes, s)
			}
		}
		for _, k := range c.d.Profile.ProbeKinds {
			d.Probes = append(d.Probes, string(k))
		}
		if c.d.Sensors != nil && c.allowed(p.Role, auth.OpSensorRead) {
			xs, err := c.d.Sensors.List(ctx, p, tenant)
			if err != nil {
				return err
			}
			for _, x := range xs {
				if x.State == "active" {
					d.Sensors = append(d.Sensors, x)
				}
			}
		}
	}
	return c.render(ec, http.StatusOK, "scans", view{Title: "Scans", Nav: "scans", Flash: flashOf(ec), Tenant: tenant, Tenants: tenants, Data: d})
}

// splitList splits a form field on commas and white space.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

// scanRequest files a scan request from the form. A non-production scope's
// scan runs on the requester's step-up (the service challenges; stepUp
// shows the prompt and posts the same fields again); a production scope's
// opens a dual approval and waits.
func (c *Console) scanRequest(ec echo.Context) error {
	if c.d.Scans == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	r := ec.Request()
	req := scan.ScanRequest{ScopeID: strings.TrimSpace(r.PostFormValue("scope")), Targets: splitList(r.PostFormValue("targets")),
		Ports: strings.Join(strings.Fields(r.PostFormValue("ports")), " "), Probes: r.PostForm["probes"],
		Vantage: strings.TrimSpace(r.PostFormValue("vantage"))}
	if req.ScopeID == "" {
		return errInvalid("choose a scope")
	}
	if v := strings.TrimSpace(r.PostFormValue("rate")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return errInvalid("the rate must be a whole number of packets per second, at least 1")
		}
		req.Rate = n
	}
	sc, err := c.d.Scans.Request(r.Context(), p, "", req, "")
	if err != nil {
		return err
	}
	flash := "Scan " + sc.ID + " queued."
	if sc.State == scan.StatePending {
		flash = "Scan " + sc.ID + " requested; its production scope needs two approvers other than you."
	}
	return redirectFlash(ec, Prefix+"/scans/"+sc.ID, flash)
}

type scanData struct {
	Scan scan.Scan
	// Request is the canonical request, indented for reading.
	Request string
	// Final says the scan will not run (any more).
	Final                                    bool
	CanApprove, CanDeny, CanStart, CanCancel bool
	// Events is the Server-Sent Events URL of the progress feed.
	Events string
	// Results is the results explorer's URL.
	Results string
	// Figures of a finished run, from its job (the live feed has ended):
	// results stored, run time, average rate against the request's cap.
	Stored, Elapsed, Rate string
	// Timeline is the results-per-second chart against the cap, and
	// ReportURL/FindingsURL the scan's report form and findings (charts.go).
	Timeline               template.HTML
	ReportURL, FindingsURL string
}

func finalState(s string) bool {
	switch s {
	case scan.StateDenied, scan.StateCompleted, scan.StateFailed, scan.StateCancelled:
		return true
	}
	return false
}

func (c *Console) scanPage(ec echo.Context) error {
	if c.d.Scans == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	tenant, tenants, err := c.tenantFor(ec, p)
	if err != nil {
		return err
	}
	sc, err := c.d.Scans.Get(ec.Request().Context(), p, tenant, ec.Param("id"))
	if err != nil {
		return err
	}
	d := scanData{Scan: sc, Final: finalState(sc.State),
		Events:  Prefix + "/scans/" + url.PathEscape(sc.ID) + "/events" + tenantQuery(tenant),
		Results: Prefix + "/scans/" + url.PathEscape(sc.ID) + "/results" + tenantQuery(tenant)}
	var buf strings.Builder
	var v any
	if json.Unmarshal(sc.Request, &v) == nil {
		b, _ := json.MarshalIndent(v, "", "  ")
		buf.Write(b)
	} else {
		buf.Write(sc.Request)
	}
	d.Request = buf.String()
	if d.Final && sc.Job != nil && sc.Job.FinishedAt != "" {
		d.finalFigures(sc)
	}
	mine := sc.RequesterID == p.UserID
	if p.TenantID != "" && sc.ApprovalID != "" {
		d.CanApprove = !mine && sc.State == scan.StatePending && c.allowed(p.Role, auth.ApproveOperation(auth.KindProductionScan))
		d.CanDeny = !mine && (sc.State == scan.StatePending || sc.State == scan.StateApproved) && c.allowed(p.Role, auth.OpApprovalDeny)
		d.CanStart = mine && sc.State == scan.StateApproved && c.allowed(p.Role, auth.OpScanStart)
	}
	d.CanCancel = !d.Final && sc.State != scan.StateDenied && c.allowed(p.Role, auth.OpScanCancel)
	if err := c.scanTimeline(ec.Request().Context(), p, tenant, &d); err != nil {
		// The chart is an extra: the scan page stands without it.
		c.log.Warn("scan timeline", "scan", sc.ID, "error", err.Error())
	}
	return c.render(ec, http.StatusOK, "scan", view{Title: "Scan " + sc.ID, Nav: "scans", Flash: flashOf(ec), Tenant: tenant, Tenants: tenants, Data: d})
}

// finalFigures fills the figures of sc's finished run from its job: the
// live feed of a finished scan carries only its state.
func (d *scanData) finalFigures(sc scan.Scan) {
	var req struct {
		Rate int `json:"rate"`
	}
	_ = json.Unmarshal(sc.Request, &req) // the canonical request; a bad one shows no cap
	d.Stored = strconv.FormatInt(sc.Job.Results, 10) + " results"
	start, err1 := time.Parse(time.RFC3339Nano, sc.Job.StartedAt)
	end, err2 := time.Parse(time.RFC3339Nano, sc.Job.FinishedAt)
	if err1 != nil || err2 != nil || end.Before(start) {
		return
	}
	el := end.Sub(start)
	d.Elapsed = el.Round(time.Millisecond).String()
	if el > 0 && req.Rate > 0 {
		d.Rate = strconv.FormatFloat(float64(sc.Job.Results)/el.Seconds(), 'f', 1, 64) + " results/s on average, cap " + strconv.Itoa(req.Rate) + "/s"
	}
}

// scanAction runs one of the scan page's forms and returns to the page.
func (c *Console) scanAction(ec echo.Context, do func(ctx context.Context, p auth.Principal, tenant, id string) (scan.Scan, error), flash string) error {
	if c.d.Scans == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	tenant, _, err := c.tenantFor(ec, p)
	if err != nil {
		return err
	}
	sc, err := do(ec.Request().Context(), p, tenant, ec.Param("id"))
	if err != nil {
		return err
	}
	return redirectFlash(ec, Prefix+"/scans/"+sc.ID+tenantQuery(tenant), fmt.Sprintf(flash, sc.State))
}

func (c *Console) scanApprove(ec echo.Context) error {
	return c.scanAction(ec, func(ctx context.Context, p auth.Principal, tenant, id string) (scan.Scan, error) {
		return c.d.Scans.Approve(ctx, p, tenant, id, "")
	}, "Approved; the scan is now %s.")
}

func (c *Console) scanDeny(ec echo.Context) error {
	reason := strings.TrimSpace(ec.Request().PostFormValue("reason"))
	if reason == "" {
		return errInvalid("give a reason for the denial")
	}
	return c.scanAction(ec, func(ctx context.Context, p auth.Principal, tenant, id string) (scan.Scan, error) {
		return c.d.Scans.Deny(ctx, p, tenant, id, reason, "")
	}, "Scan denied; it is now %s.")
}

func (c *Console) scanStart(ec echo.Context) error {
	return c.scanAction(ec, func(ctx context.Context, p auth.Principal, tenant, id string) (scan.Scan, error) {
		return c.d.Scans.Start(ctx, p, tenant, id, "")
	}, "Scan started; it is now %s.")
}

func (c *Console) scanCancel(ec echo.Context) error {
	reason := strings.TrimSpace(ec.Request().PostFormValue("reason"))
	if reason == "" {
		return errInvalid("give a reason for the cancellation")
	}
	return c.scanAction(ec, func(ctx context.Context, p auth.Principal, tenant, id string) (scan.Scan, error) {
		return c.d.Scans.Cancel(ctx, p, tenant, id, reason)
	}, "Scan cancelled; it is now %s.")
}

// Bounds of one progress stream: a browser reconnects (EventSource) after
// maxStream, and a comment every keepAlive keeps proxies from closing an
// idle stream of a queued scan. A stream ended by the appliance's shutdown
// asks the browser to wait shutdownRetry before it connects again (the
// SSE "retry" field), time for a restart.
const (
	maxStream     = 30 * time.Minute
	keepAlive     = 15 * time.Second
	shutdownRetry = 5 * time.Second
)

// progressEvent is one "progress" event: scan.Progress with the figures
// the page shows already worked out.
type progressEvent struct {
	scan.Progress
	Final bool `json:"final"`
}

// scanEvents streams scan id's progress (scan.Scans.Watch, which checks
// scan.read) as text/event-stream: one "progress" event per snapshot, then
// an "end" event when the run ends (or the scan is not running), and the
// stream closes. When the appliance shuts down (EndStreams) the stream
// ends at once with a "shutdown" event and a retry delay instead: the
// browser's EventSource (which has no listener for "shutdown") connects
// again after the delay, to the restarted appliance. Refusals before the
// stream starts are ordinary error pages.
func (c *Console) scanEvents(ec echo.Context) error {
	if c.d.Scans == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	tenant, _, err := c.tenantFor(ec, p)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ec.Request().Context(), maxStream)
	defer cancel()
	ch, err := c.d.Scans.Watch(ctx, p, tenant, ec.Param("id"))
	if err != nil {
		return err
	}
	w := ec.Response()
	w.Header().Set(echo.HeaderContentType, "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	w.Flush()
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	last := ""
	for {
		select {
		case pr, ok := <-ch:
			if !ok {
				_, _ = fmt.Fprintf(w, "event: end\ndata: {\"state\":%q}\n\n", last)
				w.Flush()
				return nil
			}
			last = pr.State
			b, err := json.Marshal(progressEvent{Progress: pr, Final: finalState(pr.State)})
			if err != nil {
				return nil // the stream has started; nothing sensible to send
			}
			if _, err := fmt.Fprintf(w, "event: progress\ndata: %s\n\n", b); err != nil {
				return nil // the browser went away
			}
			w.Flush()
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return nil
			}
			w.Flush()
		case <-c.stopping:
			_, _ = fmt.Fprintf(w, "retry: %d\nevent: shutdown\ndata: {\"state\":%q}\n\n", shutdownRetry.Milliseconds(), last)
			w.Flush()
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// --- results explorer ---

type resultsData struct {
	Scan    scan.Scan
	Items   []resultView
	Filter  resultsFilter
	States  []probe.State
	Probes  []string
	Next    string
	First   string
	ScanURL string
}

// resultsFilter is the explorer's form as typed (shown back in the form).
type resultsFilter struct {
	State, Port, Host, Probe string
}

// resultView is a result with its figures ready to show.
type resultView struct {
	scan.Result
	// ICMP is "type/code" or "".
	ICMP string
	// RTT is the round-trip time in milliseconds, "" without an answer.
	RTT string
	// Detail is the engine's extra detail as JSON text (untrusted: it
	// carries banners and certificate fields; shown escaped).
	Detail string
}

// readableJSON is raw re-encoded without HTML escapes (\u003c for '<'),
// so a banner reads as the server sent it; the template escapes it for
// the page. Invalid JSON is shown as it is.
func readableJSON(raw []byte) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return string(raw)
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return string(raw)
	}
	return strings.TrimSpace(b.String())
}

// maxDetail bounds the detail text one row shows.
const maxDetail = 600

func (c *Console) resultsPage(ec echo.Context) error {
	if c.d.Scans == nil {
		return errUnavailable
	}
	ctx := ec.Request().Context()
	p, _ := principal(ec)
	tenant, tenants, err := c.tenantFor(ec, p)
	if err != nil {
		return err
	}
	id := ec.Param("id")
	// A finished scan is reused while the audit log has not grown
	// (cache.go): Get counts its results.
	size := int64(-1)
	var known *Health
	if h, err := c.d.Health(ctx); err == nil {
		size, known = h.AuditSize, &h
	}
	sc, err := c.scanFor(ec, p, tenant, id, size)
	if err != nil {
		return err
	}
	fl := resultsFilter{State: ec.QueryParam("state"), Port: strings.TrimSpace(ec.QueryParam("port")),
		Host: strings.TrimSpace(ec.QueryParam("host")), Probe: ec.QueryParam("probe")}
	f := scan.ResultFilter{State: fl.State, Probe: fl.Probe, After: ec.QueryParam("after")}
	if fl.Port != "" {
		n, err := strconv.Atoi(fl.Port)
		if err != nil || n < 1 || n > 65535 {
			return errInvalid("the port must be a number from 1 to 65535")
		}
		f.Port = n
	}
	if fl.Host != "" {
		a, err := netip.ParseAddr(fl.Host)
		if err != nil {
			return errInvalid("the host must be one IP address")
		}
		f.Host = a
	}
	if v := ec.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errInvalid("the page size must be a number")
		}
		f.Limit = n
	}
	page, err := c.d.Scans.Results(ctx, p, tenant, id, f)
	if err != nil {
		return err
	}
	d := resultsData{Scan: sc, Filter: fl, States: resultStates,
		ScanURL: Prefix + "/scans/" + url.PathEscape(sc.ID) + tenantQuery(tenant)}
	for _, k := range c.d.Profile.ProbeKinds {
		d.Probes = append(d.Probes, string(k))
	}
	for _, r := range page.Items {
		v := resultView{Result: r}
		if r.ICMPType != nil {
			v.ICMP = strconv.Itoa(*r.ICMPType)
			if r.ICMPCode != nil {
				v.ICMP += "/" + strconv.Itoa(*r.ICMPCode)
			}
		}
		if r.RTTus >= 0 {
			v.RTT = strconv.FormatFloat(math.Round(float64(r.RTTus)/10)/100, 'f', -1, 64)
		}
		if len(r.Detail) > 0 && string(r.Detail) != "{}" && string(r.Detail) != "null" {
			v.Detail = readableJSON(r.Detail)
			if len(v.Detail) > maxDetail {
				v.Detail = v.Detail[:maxDetail] + "…"
			}
		}
		d.Items = append(d.Items, v)
	}
	q := url.Values{}
	for k, v := range map[string]string{"state": fl.State, "port": fl.Port, "host": fl.Host, "probe": fl.Probe, "tenant": tenant, "limit": ec.QueryParam("limit")} {
		if v != "" {
			q.Set(k, v)
		}
	}
	base := Prefix + "/scans/" + url.PathEscape(sc.ID) + "/results"
	if f.After != "" {
		d.First = base + "?" + q.Encode()
	}
	if page.Next != "" {
		q.Set("after", page.Next)
		d.Next = base + "?" + q.Encode()
	}
	return c.render(ec, http.StatusOK, "results", view{Title: "Results of " + sc.ID, Nav: "scans", Tenant: tenant, Tenants: tenants, Data: d, health: known})
}
