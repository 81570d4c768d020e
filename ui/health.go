package ui

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"firewalliq/appliance/auth"
)

// Status is the appliance's health, gathered by the composition root (the
// serve command) on each /readyz and /metrics request.
type Status struct {
	// StoreError is why the store is not usable ("" when it answers).
	StoreError string `json:"store_error,omitempty"`
	// AuditSize is the number of audit entries; AuditCheckpointSize the
	// size of the latest signed checkpoint, made at AuditCheckpointAt
	// (zero when unknown).
	AuditSize           int64     `json:"audit_size"`
	AuditCheckpointSize int64     `json:"audit_checkpoint_size"`
	AuditCheckpointAt   time.Time `json:"audit_checkpoint_at,omitzero"`
	// AuditAlarm describes a raised, unacknowledged tamper alarm.
	AuditAlarm string `json:"audit_alarm,omitempty"`
	// Vault is the evidence store's state; nil when none is configured.
	Vault *VaultStatus `json:"vault,omitempty"`
	// SIEM is each destination's delivery state.
	SIEM []SIEMStatus `json:"siem"`
	// Reviews says when each tenant's access review (Tenant "" the
	// appliance admins') is due, and whether it is overdue. An overdue
	// review does not make the appliance unready; it is shown here and
	// alerted through the audit log and the SIEM.
	Reviews []ReviewDue `json:"reviews,omitempty"`
	// CapPPS is the compiled-in safety profile's global packet-rate cap,
	// the line the packets-sent rate is measured against.
	CapPPS int `json:"cap_pps"`
	// Errors are problems met while gathering the status itself.
	Errors []string `json:"errors,omitempty"`
}

// ReviewDue is when one access review is due.
type ReviewDue struct {
	Tenant     string    `json:"tenant"`
	LastSigned time.Time `json:"last_signed,omitzero"`
	DueAt      time.Time `json:"due_at"`
	Overdue    bool      `json:"overdue"`
	Open       string    `json:"open,omitempty"`
}

// VaultStatus is the part of the evidence vault's state that readiness and
// metrics need.
type VaultStatus struct {
	Backend      string `json:"backend"`
	WORM         bool   `json:"worm"`
	CheckError   string `json:"check_error,omitempty"`
	SpoolBytes   int64  `json:"spool_bytes"`
	SpoolPending int    `json:"spool_pending"`
	SpoolFull    bool   `json:"spool_full"`
}

// SIEMStatus is one destination's delivery state.
type SIEMStatus struct {
	Name         string        `json:"name"`
	Pending      int64         `json:"pending"`
	PendingBytes int64         `json:"pending_bytes"`
	Lag          time.Duration `json:"lag_ns"`
	LastError    string        `json:"last_error,omitempty"`
}

// ready says whether the appliance can do its work, and why not.
func (st Status) ready() []string {
	var why []string
	if st.StoreError != "" {
		why = append(why, "store: "+st.StoreError)
	}
	if st.AuditAlarm != "" {
		why = append(why, "audit tamper alarm: "+st.AuditAlarm)
	}
	if st.Vault != nil && (st.Vault.CheckError != "" || st.Vault.SpoolFull) {
		why = append(why, "vault: not ready")
	}
	return append(why, st.Errors...)
}

// healthz answers 200 while the process serves requests; it checks
// nothing else (readiness is /readyz), so a supervisor restarts only a
// process that is really stuck.
func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 when the store is open and the audit log verified
// without a raised tamper alarm (and the vault, if configured, is
// usable), 503 otherwise; the body is the status either way. It shows
// no tenant data, so it needs no credentials.
func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 5*time.Second)
	defer cancel()
	st := s.d.Status(ctx)
	why := st.ready()
	code, status := http.StatusOK, "ready"
	if len(why) > 0 {
		code, status = http.StatusServiceUnavailable, "not ready"
	}
	if why == nil {
		why = []string{}
	}
	if st.SIEM == nil {
		st.SIEM = []SIEMStatus{}
	}
	return c.JSON(code, map[string]any{"status": status, "problems": why, "details": st})
}

func (s *Server) version(c echo.Context) error {
	return c.JSON(http.StatusOK, s.d.Version)
}

// metrics holds the server's own Prometheus registry (no global registry:
// two servers in one test process do not collide).
type metrics struct {
	reg     *prometheus.Registry
	latency *prometheus.HistogramVec
	handler http.Handler
}

func newMetrics(status func(context.Context) Status, extra prometheus.Gatherer) (*metrics, error) {
	reg := prometheus.NewRegistry()
	m := &metrics{reg: reg, latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "fiq_http_request_duration_seconds",
		Help:    "HTTP request latency by route template, method and status code.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"route", "method", "code"})}
	var g prometheus.Gatherer = reg
	if extra != nil {
		g = prometheus.Gatherers{reg, extra}
	}
	m.handler = promhttp.HandlerFor(g, promhttp.HandlerOpts{})
	for _, c := range []prometheus.Collector{
		m.latency,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newStatusCollector(status),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) observe(method, route string, code int, d time.Duration) {
	m.latency.WithLabelValues(route, method, strconv.Itoa(code)).Observe(d.Seconds())
}

// statusCollector turns Status into gauges at scrape time.
type statusCollector struct {
	status            func(context.Context) Status
	descAuditSize     *prometheus.Desc
	descCheckpointAge *prometheus.Desc
	descCheckpointLag *prometheus.Desc
	descAlarm         *prometheus.Desc
	descStoreUp       *prometheus.Desc
	descSpoolBytes    *prometheus.Desc
	descSpoolPending  *prometheus.Desc
	descSIEMLag       *prometheus.Desc
	descSIEMPending   *prometheus.Desc
	descSIEMBytes     *prometheus.Desc
	descScans         *prometheus.Desc
	descPackets       *prometheus.Desc
	descCapPPS        *prometheus.Desc
}

func newStatusCollector(status func(context.Context) Status) *statusCollector {
	return &statusCollector{
		status:            status,
		descAuditSize:     prometheus.NewDesc("fiq_audit_entries", "Number of entries in the audit log.", nil, nil),
		descCheckpointAge: prometheus.NewDesc("fiq_audit_checkpoint_age_seconds", "Seconds since the latest signed audit checkpoint (absent when unknown).", nil, nil),
		descCheckpointLag: prometheus.NewDesc("fiq_audit_unsigned_entries", "Audit entries not yet covered by a signed checkpoint.", nil, nil),
		descAlarm:         prometheus.NewDesc("fiq_audit_tamper_alarm", "1 while an audit tamper alarm is raised and not acknowledged.", nil, nil),
		descStoreUp:       prometheus.NewDesc("fiq_store_up", "1 when the SQLite store answers.", nil, nil),
		descSpoolBytes:    prometheus.NewDesc("fiq_evidence_spool_bytes", "Bytes of evidence waiting in the local spool for upload (absent without a vault).", nil, nil),
		descSpoolPending:  prometheus.NewDesc("fiq_evidence_spool_objects", "Evidence objects waiting in the local spool (absent without a vault).", nil, nil),
		descSIEMLag:       prometheus.NewDesc("fiq_siem_lag_seconds", "Age of the oldest undelivered event per SIEM destination (0 when none is pending).", []string{"destination"}, nil),
		descSIEMPending:   prometheus.NewDesc("fiq_siem_pending_events", "Undelivered events per SIEM destination.", []string{"destination"}, nil),
		descSIEMBytes:     prometheus.NewDesc("fiq_siem_pending_bytes", "Bytes of undelivered events per SIEM destination.", []string{"destination"}, nil),
		descScans:         prometheus.NewDesc("fiq_scans_running", "Scans running now. Always 0 in this build: the scan service is not wired into serve yet.", nil, nil),
		descCapPPS:        prometheus.NewDesc("fiq_probe_cap_pps", "The compiled-in safety profile's global packet-rate cap (packets per second).", nil, nil),
		descPackets:       prometheus.NewDesc("fiq_probe_packets_sent_total", "Probe packets sent by scans run by serve. Always 0 in this build: the scan service is not wired into serve yet.", nil, nil),
	}
}

func (sc *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{sc.descAuditSize, sc.descCheckpointAge, sc.descCheckpointLag, sc.descAlarm, sc.descStoreUp, sc.descSpoolBytes, sc.descSpoolPending, sc.descSIEMLag, sc.descSIEMPending, sc.descSIEMBytes, sc.descScans, sc.descPackets, sc.descCapPPS} {
		ch <- d
	}
}

func (sc *statusCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st := sc.status(ctx)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	up := 1.0
	if st.StoreError != "" {
		up = 0
	}
	gauge(sc.descStoreUp, up)
	gauge(sc.descAuditSize, float64(st.AuditSize))
	gauge(sc.descCheckpointLag, float64(max(st.AuditSize-st.AuditCheckpointSize, 0)))
	if !st.AuditCheckpointAt.IsZero() {
		gauge(sc.descCheckpointAge, time.Since(st.AuditCheckpointAt).Seconds())
	}
	alarm := 0.0
	if st.AuditAlarm != "" {
		alarm = 1
	}
	gauge(sc.descAlarm, alarm)
	if st.Vault != nil {
		gauge(sc.descSpoolBytes, float64(st.Vault.SpoolBytes))
		gauge(sc.descSpoolPending, float64(st.Vault.SpoolPending))
	}
	for _, d := range st.SIEM {
		gauge(sc.descSIEMLag, d.Lag.Seconds(), d.Name)
		gauge(sc.descSIEMPending, float64(d.Pending), d.Name)
		gauge(sc.descSIEMBytes, float64(d.PendingBytes), d.Name)
	}
	gauge(sc.descScans, 0)
	gauge(sc.descCapPPS, float64(st.CapPPS))
	ch <- prometheus.MustNewConstMetric(sc.descPackets, prometheus.CounterValue, 0)
}

// metricsHandler serves Prometheus metrics to loopback clients, and to
// others only with an API token whose role may read the audit log (admin,
// security lead, auditor): the numbers say how busy the appliance is and
// where its SIEM stands.
func (s *Server) metricsHandler(c echo.Context) error {
	r := c.Request()
	if !loopback(r) {
		tok, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			return auth.ErrUnauthenticated
		}
		p, err := s.d.Auth.AuthenticateToken(r.Context(), tok, auth.ClientFrom(r))
		if err != nil {
			return err
		}
		if !auth.Allowed(p.Role, auth.OpAuditRead) {
			return apiError("forbidden", "metrics need an API token whose role may read the audit log")
		}
	}
	s.metrics.handler.ServeHTTP(c.Response(), r)
	return nil
}

// loopback reports whether the TCP peer is on this machine.
func loopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
