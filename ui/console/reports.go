package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/policy"
	"firewalliq/appliance/report"
	"firewalliq/appliance/report/verify"
	"firewalliq/appliance/scan"
)

// The report pages: the tenant's signed compliance reports (from their
// report.sign audit entries), creating one from a completed scan and a
// policy (report.Reports.Create: evaluates, signs, spools the report as
// evidence, audits), one report read from its signed file, and downloads
// of the signed JSON, HTML and PDF (always attachments: the rendered HTML
// carries its own styles, which the console's CSP would block as a page).

type reportsData struct {
	Reports []report.Stored
	// CanCreate says the user may create reports; Scans (completed) and
	// Policies are the form's choices.
	CanCreate bool
	Scans     []scan.Scan
	Policies  []policy.Stored
	// Form is what was typed, kept when the form is refused.
	Form reportForm
}

type reportForm struct {
	Scan, Policy, Version string
}

func (c *Console) reportsPage(ec echo.Context) error {
	return c.renderReports(ec, http.StatusOK, reportForm{Scan: ec.QueryParam("scan")}, "")
}

func (c *Console) renderReports(ec echo.Context, status int, form reportForm, problem string) error {
	if c.d.Reports == nil {
		return errUnavailable
	}
	ctx := ec.Request().Context()
	p, _ := principal(ec)
	tenant, tenants, err := c.tenantFor(ec, p)
	if err != nil {
		return err
	}
	rs, err := c.d.Reports.List(ctx, p, tenant)
	if err != nil {
		return err
	}
	d := reportsData{Reports: rs, Form: form, CanCreate: p.TenantID != "" && c.allowed(p.Role, auth.OpReportCreate)}
	if d.CanCreate {
		if c.d.Scans != nil {
			pg, err := c.d.Scans.List(ctx, p, tenant, scan.ListFilter{State: scan.StateCompleted, Limit: 50})
			if err != nil {
				return err
			}
			d.Scans = pg.Items
		}
		if c.d.Policies != nil {
			if d.Policies, err = c.d.Policies.List(ctx, p, tenant); err != nil {
				return err
			}
		}
	}
	return c.render(ec, status, "reports", view{Title: "Compliance reports", Nav: "reports", Flash: flashOf(ec), Error: problem, Tenant: tenant, Tenants: tenants, Data: d})
}

// reportCreate creates a report of a completed scan against a policy.
// Missing choices are refused with the form kept and nothing done.
func (c *Console) reportCreate(ec echo.Context) error {
	if c.d.Reports == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	r := ec.Request()
	form := reportForm{Scan: strings.TrimSpace(r.PostFormValue("scan")), Policy: strings.TrimSpace(r.PostFormValue("policy")),
		Version: strings.TrimSpace(r.PostFormValue("version"))}
	if !c.allowed(p.Role, auth.OpReportCreate) {
		return auth.ErrForbidden
	}
	if form.Scan == "" || form.Policy == "" {
		return c.renderReports(ec, http.StatusBadRequest, form, "Choose a completed scan and a policy.")
	}
	v := 0
	if form.Version != "" {
		n, err := strconv.Atoi(form.Version)
		if err != nil || n < 1 {
			return c.renderReports(ec, http.StatusBadRequest, form, "The policy version must be a positive number (or empty for the newest).")
		}
		v = n
	}
	cr, err := c.d.Reports.Create(r.Context(), p, "", report.CreateRequest{ScanID: form.Scan, Policy: form.Policy, PolicyVersion: v})
	if err != nil {
		return err
	}
	return redirectFlash(ec, Prefix+"/reports/"+url.PathEscape(cr.ID), "Report "+cr.ID+" signed and stored as evidence.")
}

type reportData struct {
	Stored report.Stored
	Report verify.Report
	// KeyID is the signature's key id, Alg its algorithm.
	KeyID, Alg string
	// Command verifies the downloaded file offline.
	Command string
	// Measured is the long-run rate in packets per second.
	Measured string
	// Downloads are the report's files.
	Downloads []download
	ScanURL   string
}

type download struct {
	Format, Label, URL string
}

// reportPage shows a report as its signed file says (the working copy,
// checked against the SHA-256 of its audit entry by Download).
func (c *Console) reportPage(ec echo.Context) error {
	if c.d.Reports == nil {
		return errUnavailable
	}
	ctx := ec.Request().Context()
	p, _ := principal(ec)
	tenant, tenants, err := c.tenantFor(ec, p)
	if err != nil {
		return err
	}
	id := ec.Param("id")
	st, err := c.d.Reports.Get(ctx, p, tenant, id)
	if err != nil {
		return err
	}
	signed, _, err := c.d.Reports.Download(ctx, p, tenant, id, "json")
	if err != nil {
		return err
	}
	var file verify.File
	if err := json.Unmarshal(signed, &file); err != nil {
		return fmt.Errorf("report %s: %w", id, err)
	}
	d := reportData{Stored: st, KeyID: file.Signature.KeyID, Alg: file.Signature.Alg, Command: report.VerifyCommand,
		ScanURL: Prefix + "/scans/" + url.PathEscape(st.ScanID) + tenantQuery(tenant)}
	if err := json.Unmarshal(file.Report, &d.Report); err != nil {
		return fmt.Errorf("report %s: %w", id, err)
	}
	if d.Report.Verification.Command != "" {
		d.Command = d.Report.Verification.Command
	}
	d.Measured = strconv.FormatFloat(float64(d.Report.Rate.MeasuredMilliPPS)/1000, 'f', 1, 64)
	for _, f := range []struct{ format, label string }{{"pdf", "PDF"}, {"html", "HTML"}, {"json", "Signed JSON"}} {
		d.Downloads = append(d.Downloads, download{Format: f.format, Label: f.label,
			URL: Prefix + "/reports/" + url.PathEscape(st.ID) + "/download/" + f.format + tenantQuery(tenant)})
	}
	return c.render(ec, http.StatusOK, "report", view{Title: "Report " + st.ID, Nav: "reports", Flash: flashOf(ec), Tenant: tenant, Tenants: tenants, Data: d})
}

// reportDownload serves a report as json (the signed file), html or pdf,
// as an attachment.
func (c *Console) reportDownload(ec echo.Context) error {
	if c.d.Reports == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	tenant, _, err := c.tenantFor(ec, p)
	if err != nil {
		return err
	}
	format := ec.Param("format")
	switch format {
	case "json", "html", "pdf":
	default:
		return errPageNotFound
	}
	id := ec.Param("id")
	b, media, err := c.d.Reports.Download(ec.Request().Context(), p, tenant, id, format)
	if err != nil {
		return err
	}
	ec.Response().Header().Set("Content-Disposition", `attachment; filename="report-`+strings.Map(safeName, id)+`.`+format+`"`)
	return ec.Blob(http.StatusOK, media, b)
}
