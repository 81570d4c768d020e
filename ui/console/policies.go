package console

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/policy"
	"firewalliq/appliance/scan"
	"firewalliq/probe/scope"
)

// The policy pages: the tenant's expected policies (newest version of
// each), one version with its rules and a dry run against a registered
// scope, the editor (validate without storing, or store as the next
// version), and accepting a completed scan as the drift baseline (step-up).
// Storing, reading, planning and baselines are policy.Service and
// report.Reports methods; only validation without storing calls the pure
// parser (policy.Parse), which reads nothing and changes nothing.

// policyEditor is the editor's state: the source as typed (kept on a
// refusal) and what validating it found.
type policyEditor struct {
	Source string
	// Checked says the source was validated; Errors are its problems
	// (line, field, message), Valid the parsed summary when none.
	Checked bool
	Errors  []policy.FieldError
	Valid   *policy.Document
}

type policiesData struct {
	Policies []policy.Stored
	CanEdit  bool
	Editor   policyEditor
}

// policyTemplate is what a new policy's editor starts with.
const policyTemplate = `version: 1
name: corp-to-dmz
vantage_point: corp-lan
description: What the corporate LAN may reach in the DMZ
default: deny
default_severity: medium
denial: either
groups:
  - name: dmz
    cidrs: [10.20.0.0/24]
canaries:
  - {name: dmz-https, target: 10.20.0.7, port: 443}
rules:
  - {name: web, action: allow, to: [dmz], ports: "tcp:80,443", severity: high}
  - {name: ssh, action: deny, to: [dmz], ports: "tcp:22", denial: reject, severity: high}
`

// policiesPage lists the policies; the editor starts with a template, or
// with the source of ?edit=NAME (&version=V, the newest when none).
func (c *Console) policiesPage(ec echo.Context) error {
	ed := policyEditor{Source: policyTemplate}
	if name := ec.QueryParam("edit"); name != "" && c.d.Policies != nil {
		p, _ := principal(ec)
		v, _ := strconv.Atoi(ec.QueryParam("version"))
		sp, err := c.d.Policies.Get(ec.Request().Context(), p, "", name, max(v, 0))
		if err != nil {
			return err
		}
		ed.Source = string(sp.Source)
	}
	return c.renderPolicies(ec, http.StatusOK, ed, "")
}

// renderPolicies renders the list with the editor in state ed.
func (c *Console) renderPolicies(ec echo.Context, status int, ed policyEditor, problem string) error {
	if c.d.Policies == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	tenant, tenants, err := c.tenantFor(ec, p)
	if err != nil {
		return err
	}
	ps, err := c.d.Policies.List(ec.Request().Context(), p, tenant)
	if err != nil {
		return err
	}
	d := policiesData{Policies: ps, CanEdit: p.TenantID != "" && c.allowed(p.Role, auth.OpPolicyEdit), Editor: ed}
	return c.render(ec, status, "policies", view{Title: "Policies", Nav: "policies", Flash: flashOf(ec), Error: problem, Tenant: tenant, Tenants: tenants, Data: d})
}

// policyPost validates the editor's source ("intent" validate) or stores
// it as the next version of the policy it names (policy.Service.Create).
// An invalid document is shown again with every error's line and field,
// the source kept as typed, and nothing stored.
func (c *Console) policyPost(ec echo.Context) error {
	if c.d.Policies == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	r := ec.Request()
	src := r.PostFormValue("source")
	ed := policyEditor{Source: src}
	if len(src) > policy.MaxDocument {
		return errInvalid("the policy document is larger than 1 MiB")
	}
	if r.PostFormValue("intent") == "validate" {
		// Validation is offered to those who may store policies; it reads
		// and changes nothing.
		if !c.allowed(p.Role, auth.OpPolicyEdit) {
			return auth.ErrForbidden
		}
		ed.Checked = true
		d, err := policy.Parse([]byte(src))
		if err != nil {
			ed.Errors = fieldErrors(err)
			return c.renderPolicies(ec, http.StatusUnprocessableEntity, ed, "The policy is not valid; nothing was stored.")
		}
		ed.Valid = d
		return c.renderPolicies(ec, http.StatusOK, ed, "")
	}
	st, err := c.d.Policies.Create(r.Context(), p, "", []byte(src))
	if err != nil {
		if errors.Is(err, policy.ErrInvalid) {
			ed.Checked = true
			ed.Errors = fieldErrors(err)
			return c.renderPolicies(ec, http.StatusUnprocessableEntity, ed, "The policy is not valid; nothing was stored.")
		}
		return err
	}
	return redirectFlash(ec, policyURL(st.Name, st.Version, ""), "Stored "+st.Name+" version "+strconv.Itoa(st.Version)+".")
}

// fieldErrors lists a validation error's problems (one line-less entry
// for any other error).
func fieldErrors(err error) []policy.FieldError {
	var ve *policy.ValidationError
	if errors.As(err, &ve) && len(ve.Errors) > 0 {
		return ve.Errors
	}
	return []policy.FieldError{{Msg: err.Error()}}
}

// policyURL is the page of version v of policy name.
func policyURL(name string, v int, tenant string) string {
	q := url.Values{}
	if v > 0 {
		q.Set("version", strconv.Itoa(v))
	}
	if tenant != "" {
		q.Set("tenant", tenant)
	}
	u := Prefix + "/policies/" + url.PathEscape(name)
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

type policyData struct {
	Policy policy.Stored
	// Versions are links to every version, newest first.
	Versions []policyVersion
	Newest   int
	// Rules are the document's rules with their expected denial.
	Rules   []policyRule
	CanEdit bool
	// EditURL opens this version's source in the editor.
	EditURL string
	// Scopes are the tenant's registered scopes for the dry run; Scope
	// the one picked; DryRun its plan.
	Scopes []scan.Scope
	Scope  string
	DryRun *policy.DryRun
	// Scans are completed scans a baseline can be accepted from;
	// CanBaseline says the user's role may.
	Scans       []scan.Scan
	CanBaseline bool
}

type policyVersion struct {
	Version int
	URL     string
	Current bool
}

type policyRule struct {
	policy.Rule
	Denial policy.Denial
}

// policyPage shows one version of a policy (?version=, the newest when
// none), its dry run against ?scope= when one is picked, the editor
// holding its source, and the baseline form.
func (c *Console) policyPage(ec echo.Context) error {
	if c.d.Policies == nil {
		return errUnavailable
	}
	ctx := ec.Request().Context()
	p, _ := principal(ec)
	tenant, tenants, err := c.tenantFor(ec, p)
	if err != nil {
		return err
	}
	name := ec.Param("name")
	v := 0
	if s := ec.QueryParam("version"); s != "" {
		if v, err = strconv.Atoi(s); err != nil || v < 1 {
			return errInvalid("the version must be a positive number")
		}
	}
	newest, err := c.d.Policies.Get(ctx, p, tenant, name, 0)
	if err != nil {
		return err
	}
	sp := newest
	if v != 0 && v != newest.Version {
		if sp, err = c.d.Policies.Get(ctx, p, tenant, name, v); err != nil {
			return err
		}
	}
	d := policyData{Policy: sp, Newest: newest.Version, CanEdit: p.TenantID != "" && c.allowed(p.Role, auth.OpPolicyEdit),
		EditURL: Prefix + "/policies?" + url.Values{"edit": {sp.Name}, "version": {strconv.Itoa(sp.Version)}}.Encode() + "#policy-editor",
		Scope:   ec.QueryParam("scope")}
	for i := newest.Version; i >= 1; i-- {
		d.Versions = append(d.Versions, policyVersion{Version: i, URL: policyURL(name, i, tenant), Current: i == sp.Version})
	}
	for _, r := range sp.Document.Rules {
		d.Rules = append(d.Rules, policyRule{Rule: r, Denial: sp.Document.ExpectedDenial(r)})
	}
	if c.d.Scopes != nil && c.allowed(p.Role, auth.OpScopeRead) {
		if d.Scopes, err = c.d.Scopes.List(ctx, p, tenant); err != nil {
			return err
		}
	}
	if d.Scope != "" {
		if c.d.Scopes == nil {
			return errUnavailable
		}
		sc, err := c.d.Scopes.Get(ctx, p, tenant, d.Scope)
		if err != nil {
			return err
		}
		doc, _, err := scope.Open(sc.Document)
		if err != nil {
			return err
		}
		dr, err := c.d.Policies.DryRun(ctx, p, tenant, name, sp.Version, doc)
		if err != nil {
			return err
		}
		d.DryRun = &dr
	}
	d.CanBaseline = p.TenantID != "" && c.d.Reports != nil && c.d.Scans != nil && c.allowed(p.Role, auth.OpPolicyBaseline)
	if d.CanBaseline {
		pg, err := c.d.Scans.List(ctx, p, tenant, scan.ListFilter{State: scan.StateCompleted, Limit: 50})
		if err != nil {
			return err
		}
		d.Scans = pg.Items
	}
	return c.render(ec, http.StatusOK, "policy", view{Title: "Policy " + sp.Name, Nav: "policies", Flash: flashOf(ec), Tenant: tenant, Tenants: tenants, Data: d})
}

// policyBaseline accepts a completed scan's results as the drift baseline
// of its scope and this policy version (report.Reports.AcceptBaseline:
// step-up, audited as policy.baseline.accept).
func (c *Console) policyBaseline(ec echo.Context) error {
	if c.d.Reports == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	r := ec.Request()
	name := ec.Param("name")
	scanID := strings.TrimSpace(r.PostFormValue("scan"))
	if scanID == "" {
		return errInvalid("choose a completed scan")
	}
	v := 0
	if s := r.PostFormValue("version"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return errInvalid("the version must be a positive number")
		}
		v = n
	}
	b, err := c.d.Reports.AcceptBaseline(r.Context(), p, "", scanID, name, v, "")
	if err != nil {
		return err
	}
	return redirectFlash(ec, policyURL(name, b.PolicyVersion, ""), "Scan "+b.ScanID+" is now the baseline of scope "+b.ScopeID+" and this policy.")
}
