package ui

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/fault"
	"firewalliq/appliance/policy"
	"firewalliq/appliance/report"
	"firewalliq/appliance/report/review"
	"firewalliq/probe/scope"
)

// The policy, compliance report and access review routes. Each handler
// calls one service method; the services authorise, ask for step-up and
// audit.

// versionParam reads ?version= (0: the newest).
func versionParam(c echo.Context) (int, error) {
	v := c.QueryParam("version")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, apiError(fault.CodeInvalid, "version must be a positive integer")
	}
	return n, nil
}

type policyOut struct {
	Name         string          `json:"name"`
	Version      int             `json:"version"`
	VantagePoint string          `json:"vantage_point"`
	SHA256       string          `json:"sha256"`
	CreatedBy    string          `json:"created_by"`
	CreatedAt    string          `json:"created_at"`
	Rules        int             `json:"rules"`
	Document     json.RawMessage `json:"document,omitempty"`
	Source       string          `json:"source,omitempty"`
}

func policyOf(p policy.Stored, full bool) policyOut {
	out := policyOut{Name: p.Name, Version: p.Version, VantagePoint: p.VantagePoint, SHA256: p.SHA256, CreatedBy: p.CreatedBy, CreatedAt: p.CreatedAt}
	if p.Document != nil {
		out.Rules = len(p.Document.Rules)
		if full {
			out.Document = p.Document.Canonical()
		}
	}
	if full {
		out.Source = string(p.Source)
	}
	return out
}

func (s *Server) listPolicies(c echo.Context) error {
	if s.d.Policies == nil {
		return unavailable("the policy service")
	}
	summary := func(p policy.Stored) policyOut { return policyOf(p, false) }
	return sendPage(c, s.d.Policies.List, summary, func(p policyOut) string { return p.Name })
}

func (s *Server) createPolicy(c echo.Context) error {
	if s.d.Policies == nil {
		return unavailable("the policy service")
	}
	var in struct {
		// Source is the policy document, YAML or JSON, as text.
		Source string `json:"source"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	p, err := s.d.Policies.Create(c.Request().Context(), principal(c), tenantParam(c), []byte(in.Source))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, policyOf(p, true))
}

func (s *Server) getPolicy(c echo.Context) error {
	if s.d.Policies == nil {
		return unavailable("the policy service")
	}
	v, err := versionParam(c)
	if err != nil {
		return err
	}
	p, err := s.d.Policies.Get(c.Request().Context(), principal(c), tenantParam(c), c.Param("name"), v)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, policyOf(p, true))
}

// policyScanBody names a scan (and a policy version) in a request body.
type policyScanBody struct {
	ScanID  string `json:"scan_id"`
	ScopeID string `json:"scope_id"`
	Version int    `json:"version"`
	// NmapXML (evaluate only, instead of ScanID) is another scanner's Nmap
	// XML document, judged as unsigned imported evidence.
	NmapXML string `json:"nmap_xml"`
}

func (s *Server) dryRunPolicy(c echo.Context) error {
	if s.d.Policies == nil {
		return unavailable("the policy service")
	}
	var in policyScanBody
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if in.ScopeID == "" {
		return apiError(fault.CodeInvalid, "scope_id is required: a dry run plans the policy against a registered scope")
	}
	ctx, p := c.Request().Context(), principal(c)
	sc, err := s.d.Scopes.Get(ctx, p, tenantParam(c), in.ScopeID)
	if err != nil {
		return err
	}
	doc, _, err := scope.Open(sc.Document)
	if err != nil {
		return err
	}
	dr, err := s.d.Policies.DryRun(ctx, p, tenantParam(c), c.Param("name"), in.Version, doc)
	if err != nil {
		return err
	}
	if dr.Coverage == nil {
		dr.Coverage = []policy.Coverage{}
	}
	if dr.Warnings == nil {
		dr.Warnings = []policy.Warning{}
	}
	return c.JSON(http.StatusOK, dr)
}

func (s *Server) evaluatePolicy(c echo.Context) error {
	if s.d.Reports == nil {
		return unavailable("the evidence vault (scan results are evaluated from recorded scans)")
	}
	var in policyScanBody
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	var (
		out policy.Outcome
		err error
	)
	switch {
	case in.NmapXML != "" && in.ScanID != "":
		return apiError(fault.CodeInvalid, "give scan_id or nmap_xml, not both")
	case in.NmapXML != "":
		out, err = s.d.Reports.EvaluateImported(c.Request().Context(), principal(c), tenantParam(c), c.Param("name"), in.Version, in.ScopeID, []byte(in.NmapXML))
	default:
		out, err = s.d.Reports.Evaluate(c.Request().Context(), principal(c), tenantParam(c), in.ScanID, c.Param("name"), in.Version)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"policy": out.Policy.Name, "version": out.Policy.Version, "baseline_id": out.BaselineID,
		"summary": out.Evaluation.Summary(), "rules": out.Evaluation.Rules, "findings": nonNilSlice(out.Findings), "drift": nonNilSlice(out.Drift), "audit_seq": out.AuditSeq,
		"imported": in.NmapXML != ""})
}

func (s *Server) acceptBaseline(c echo.Context) error {
	if s.d.Reports == nil {
		return unavailable("the evidence vault (baselines are accepted from recorded scans)")
	}
	var in policyScanBody
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	b, err := s.d.Reports.AcceptBaseline(c.Request().Context(), principal(c), tenantParam(c), in.ScanID, c.Param("name"), in.Version, "")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]any{"id": b.ID, "scope_id": b.ScopeID, "policy": b.PolicyName, "version": b.PolicyVersion,
		"scan_id": b.ScanID, "results_sha256": b.ResultsSHA256, "accepted_by": b.AcceptedBy, "accepted_at": b.AcceptedAt})
}

func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Reports.

func (s *Server) reports() (*report.Reports, error) {
	if s.d.Reports == nil {
		return nil, unavailable("the evidence vault (a report is evidence)")
	}
	return s.d.Reports, nil
}

func (s *Server) listReports(c echo.Context) error {
	rp, err := s.reports()
	if err != nil {
		return err
	}
	return sendPage(c, rp.List, asIs, func(r report.Stored) string { return r.ID })
}

func (s *Server) createReport(c echo.Context) error {
	rp, err := s.reports()
	if err != nil {
		return err
	}
	var in report.CreateRequest
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	out, err := rp.Create(c.Request().Context(), principal(c), tenantParam(c), in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, out)
}

func (s *Server) getReport(c echo.Context) error {
	rp, err := s.reports()
	if err != nil {
		return err
	}
	return sendByID(c, rp.Get, asIs)
}

func (s *Server) downloadReport(c echo.Context) error {
	rp, err := s.reports()
	if err != nil {
		return err
	}
	return download(c, rp.Download, "report")
}

// exportScan answers a completed scan's results as Nmap XML
// (?format=nmap-xml, the default) or JSON Lines (?format=jsonl).
func (s *Server) exportScan(c echo.Context) error {
	rp, err := s.reports()
	if err != nil {
		return err
	}
	format := c.QueryParam("format")
	if format == "" {
		format = report.ExportNmapXML
	}
	// The service takes the format in any case and aliases of nmap-xml:
	// JSON Lines in any spelling is .jsonl, everything else .xml.
	ext := "xml"
	if strings.EqualFold(format, report.ExportJSONL) {
		ext = "jsonl"
	}
	return sendDocument(c, rp.Export, format, "scan", ext)
}

// Access reviews.

func (s *Server) reviews() (*review.Service, error) {
	if s.d.Reviews == nil {
		return nil, unavailable("the access review service")
	}
	return s.d.Reviews, nil
}

// reviewOut is a review as the API shows it.
type reviewOut struct {
	ID          string         `json:"id"`
	Tenant      string         `json:"tenant"`
	Status      string         `json:"status"`
	StartedBy   string         `json:"started_by"`
	StartedAt   time.Time      `json:"started_at"`
	SignedBy    string         `json:"signed_by,omitempty"`
	SignedAt    *time.Time     `json:"signed_at,omitempty"`
	Undecided   []string       `json:"undecided"`
	SHA256      string         `json:"sha256,omitempty"`
	EvidenceKey string         `json:"evidence_key,omitempty"`
	Document    map[string]any `json:"document,omitempty"`
}

func reviewOf(r review.Review, full bool) (reviewOut, error) {
	out := reviewOut{ID: r.ID, Tenant: r.Tenant, Status: r.Status, StartedBy: r.StartedBy, StartedAt: r.StartedAt.UTC(), SignedBy: r.SignedBy,
		Undecided: nonNilSlice(r.Undecided), SHA256: r.SHA256, EvidenceKey: r.EvidenceKey}
	if !r.SignedAt.IsZero() {
		t := r.SignedAt.UTC()
		out.SignedAt = &t
	}
	if full {
		b, err := json.Marshal(r.Document)
		if err != nil {
			return reviewOut{}, err
		}
		if err := json.Unmarshal(b, &out.Document); err != nil {
			return reviewOut{}, err
		}
	}
	return out, nil
}

func (s *Server) listReviews(c echo.Context) error {
	rv, err := s.reviews()
	if err != nil {
		return err
	}
	pg, err := pageOf(c)
	if err != nil {
		return err
	}
	rs, err := rv.List(c.Request().Context(), principal(c), tenantParam(c))
	if err != nil {
		return err
	}
	out := make([]reviewOut, 0, len(rs))
	for _, r := range rs {
		o, err := reviewOf(r, false)
		if err != nil {
			return err
		}
		out = append(out, o)
	}
	return c.JSON(http.StatusOK, paginate(out, func(r reviewOut) string { return r.ID }, pg))
}

func (s *Server) startReview(c echo.Context) error {
	rv, err := s.reviews()
	if err != nil {
		return err
	}
	if err := decodeJSON(c, &struct{}{}); err != nil {
		return err
	}
	r, err := rv.Start(c.Request().Context(), principal(c), tenantParam(c))
	if err != nil {
		return err
	}
	out, err := reviewOf(r, true)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, out)
}

func (s *Server) getReview(c echo.Context) error {
	rv, err := s.reviews()
	if err != nil {
		return err
	}
	r, err := rv.Show(c.Request().Context(), principal(c), tenantParam(c), c.Param("id"))
	if err != nil {
		return err
	}
	out, err := reviewOf(r, true)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) decideReview(c echo.Context) error {
	rv, err := s.reviews()
	if err != nil {
		return err
	}
	var in struct {
		Decisions []review.Decision `json:"decisions"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	r, err := rv.Decide(c.Request().Context(), principal(c), tenantParam(c), c.Param("id"), in.Decisions)
	if err != nil {
		return err
	}
	out, err := reviewOf(r, true)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) signReview(c echo.Context) error {
	rv, err := s.reviews()
	if err != nil {
		return err
	}
	if err := decodeJSON(c, &struct{}{}); err != nil {
		return err
	}
	out, err := rv.Sign(c.Request().Context(), principal(c), tenantParam(c), c.Param("id"), "")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) downloadReview(c echo.Context) error {
	rv, err := s.reviews()
	if err != nil {
		return err
	}
	return download(c, rv.Download, "review")
}

func (s *Server) reviewDue(c echo.Context) error {
	rv, err := s.reviews()
	if err != nil {
		return err
	}
	d, err := rv.Due(c.Request().Context(), principal(c), tenantParam(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, d)
}
