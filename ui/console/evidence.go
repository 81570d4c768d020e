package console

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/evidence"
)

// The evidence page: recorded evidence objects, export requests (dual
// approval, auth.KindEvidenceExport on evidence.ExportCanonical) and the
// 5-minute pre-signed link of an approved export (step-up).

type evidenceData struct {
	Objects []evidence.Object
	// Exports are the tenant's export requests, newest last.
	Exports []exportView
	// CanExport says the user may request exports (a tenant user with
	// evidence.export).
	CanExport bool
	// Link is the pre-signed URL just minted, shown once.
	Link *evidence.ExportResult
}

// exportView is an export request with the object it names.
type exportView struct {
	auth.Approval
	Key, VersionID string
	Mine           bool
}

func (c *Console) evidencePage(ec echo.Context) error {
	return c.showEvidence(ec, nil)
}

func (c *Console) showEvidence(ec echo.Context, link *evidence.ExportResult) error {
	if c.d.Evidence == nil {
		return errUnavailable
	}
	ctx := ec.Request().Context()
	p, _ := principal(ec)
	tenant, tenants, err := c.tenantFor(ec, p)
	if err != nil {
		return err
	}
	objs, err := c.d.Evidence.List(ctx, p, tenant, "")
	if err != nil {
		return err
	}
	d := evidenceData{Objects: objs, Link: link,
		CanExport: p.TenantID != "" && c.allowed(p.Role, auth.OpEvidenceExport)}
	if p.TenantID != "" && c.allowed(p.Role, auth.OpApprovalList) {
		as, err := c.d.Auth.ListApprovals(ctx, p, "")
		if err != nil {
			return err
		}
		for _, a := range as {
			if a.Kind != auth.KindEvidenceExport {
				continue
			}
			var req struct {
				Key       string `json:"key"`
				VersionID string `json:"version_id"`
			}
			_ = json.Unmarshal(a.Request, &req) // written by this console or the API; a bad one shows empty
			d.Exports = append(d.Exports, exportView{Approval: a, Key: req.Key, VersionID: req.VersionID, Mine: a.RequesterID == p.UserID})
		}
	}
	return c.render(ec, http.StatusOK, "evidence", view{Title: "Evidence", Nav: "evidence", Flash: flashOf(ec), Tenant: tenant, Tenants: tenants, Data: d})
}

// exportRequest opens the dual-approval request for exporting one object
// version, bound to the caller's tenant, the caller, the key and the
// version (evidence.ExportCanonical), as the API's route does.
func (c *Console) exportRequest(ec echo.Context) error {
	if c.d.Evidence == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	r := ec.Request()
	key, version := strings.TrimSpace(r.PostFormValue("key")), strings.TrimSpace(r.PostFormValue("version_id"))
	if key == "" || version == "" {
		return errInvalid("choose an evidence object to export")
	}
	a, err := c.d.Auth.RequestApproval(r.Context(), p, auth.KindEvidenceExport, evidence.ExportCanonical(p.TenantID, p.UserID, key, version))
	if err != nil {
		return err
	}
	return redirectFlash(ec, Prefix+"/evidence", "Export request "+a.ID+" filed; two approvers other than you must approve it.")
}

// exportLink mints the pre-signed link of an approved export after the
// requester's step-up; the service spends the approval and audits
// evidence.export. The link is shown on this answer only.
func (c *Console) exportLink(ec echo.Context) error {
	if c.d.Evidence == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	r := ec.Request()
	res, err := c.d.Evidence.Export(r.Context(), evidence.ExportRequest{Principal: p, Key: r.PostFormValue("key"), VersionID: r.PostFormValue("version_id"), RequestID: ec.Param("id")})
	if err != nil {
		return err
	}
	return c.showEvidence(ec, &res)
}
