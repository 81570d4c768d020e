package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/fault"
	"firewalliq/appliance/scan"
	"firewalliq/appliance/siem/destinations"
)

// Administration pages. Each handler calls exactly the service method the
// API's handler for the same action calls; the services authorise, demand
// step-up and audit. A refusal comes back as an error page (or, for
// step_up_required, the TOTP prompt).

// errUnavailable is returned by pages whose service is not configured.
var errUnavailable = fmt.Errorf("this part of the appliance is not configured: %w", auth.ErrInvalid)

// errInvalid is a refusal of the form's input, shown with msg.
func errInvalid(msg string) error { return fmt.Errorf("%s: %w", msg, auth.ErrInvalid) }

// tenantFor is the tenant an action or page is for: what an appliance
// admin picked (?tenant= or the form's "tenant"), "" (the principal's own)
// for everyone else. An appliance admin who picked none gets the first
// tenant, so tenant pages open on something.
func (c *Console) tenantFor(ec echo.Context, p auth.Principal) (string, []tenantOption, error) {
	if !p.ApplianceAdmin() {
		return "", nil, nil
	}
	ts, err := c.d.Auth.ListTenants(ec.Request().Context(), p)
	if err != nil {
		return "", nil, err
	}
	opts := make([]tenantOption, 0, len(ts))
	for _, t := range ts {
		opts = append(opts, tenantOption{ID: t.ID, Name: t.Name})
	}
	if ec.Request().Method == http.MethodPost {
		// A change acts only in the tenant the form names: never in a
		// default the admin did not see.
		picked := ec.Request().PostFormValue("tenant")
		if picked == "" {
			return "", nil, errInvalid("choose the tenant to act in")
		}
		return picked, opts, nil
	}
	picked := ec.QueryParam("tenant")
	if picked == "" && len(opts) > 0 {
		picked = opts[0].ID
	}
	return picked, opts, nil
}

// back is the page an action returns to, keeping an admin's tenant.
func back(page, tenant string) string {
	if tenant == "" {
		return Prefix + page
	}
	return Prefix + page + "?tenant=" + url.QueryEscape(tenant)
}

// --- users ---

type usersData struct {
	Users []auth.UserInfo
	Roles []string
	// NeedsApproval is a grant refused for want of another admin's
	// approval: the form that files the request.
	NeedsApproval *grantRequest
	// Created is the user just added, with the one-time password shown
	// this once.
	Created         *auth.UserInfo
	CreatedPassword string
}

// grantRequest is a privileged grant waiting for an approval request:
// a new user (Name) or a role change (UserID).
type grantRequest struct {
	Name, UserID, Role string
}

func (c *Console) usersPage(ec echo.Context) error {
	return c.showUsers(ec, nil, "")
}

// needsApproval shows the users page with the refusal and a button that
// files the approval request, when err is auth.ErrApprovalRequired.
func (c *Console) needsApproval(ec echo.Context, err error, g grantRequest) error {
	if !errors.Is(err, auth.ErrApprovalRequired) {
		return err
	}
	return c.showUsersWith(ec, http.StatusForbidden, "Granting "+g.Role+" needs another admin's approval in this tenant. File a request below; once another admin approves it, submit the change again with the request id.", usersData{NeedsApproval: &g})
}

func (c *Console) showUsers(ec echo.Context, created *auth.UserInfo, otp string) error {
	return c.showUsersWith(ec, http.StatusOK, "", usersData{Created: created, CreatedPassword: otp})
}

func (c *Console) showUsersWith(ec echo.Context, status int, problem string, d usersData) error {
	p, _ := principal(ec)
	tenant, tenants, err := c.tenantFor(ec, p)
	if err != nil {
		return err
	}
	us, err := c.d.Auth.ListUsers(ec.Request().Context(), p, tenant)
	if err != nil {
		return err
	}
	d.Users, d.Roles = us, auth.Roles()
	return c.render(ec, status, "users", view{Title: "Users and roles", Nav: "users", Flash: flashOf(ec), Error: problem, Tenant: tenant, Tenants: tenants, Data: d})
}

func (c *Console) userCreate(ec echo.Context) error {
	p, _ := principal(ec)
	r := ec.Request()
	tenant, _, err := c.tenantFor(ec, p)
	if err != nil {
		return err
	}
	nu := auth.NewUser{Name: r.PostFormValue("name"), Role: r.PostFormValue("role"), ApprovalID: strings.TrimSpace(r.PostFormValue("approval_id"))}
	u, otp, err := c.d.Auth.CreateUser(r.Context(), p, tenant, nu, "")
	if err != nil {
		return c.needsApproval(ec, err, grantRequest{Name: strings.TrimSpace(nu.Name), Role: nu.Role})
	}
	// Rendered, not redirected: the one-time password must not travel in
	// a URL, and the page is never cached (Cache-Control: no-store).
	return c.showUsers(ec, &u, otp)
}

func (c *Console) userRole(ec echo.Context) error {
	p, _ := principal(ec)
	r := ec.Request()
	tenant, _, err := c.tenantFor(ec, p)
	if err != nil {
		return err
	}
	role := r.PostFormValue("role")
	if id := strings.TrimSpace(r.PostFormValue("approval_id")); id != "" {
		err = c.d.Auth.SetRoleApproved(r.Context(), p, tenant, ec.Param("id"), role, id, "")
	} else {
		err = c.d.Auth.SetRole(r.Context(), p, tenant, ec.Param("id"), role, "")
	}
	if err != nil {
		return c.needsApproval(ec, err, grantRequest{UserID: ec.Param("id"), Role: role})
	}
	return redirectFlash(ec, back("/users", tenant), "Role changed to "+role+"; the user's sessions were ended.")
}

// roleGrantRequest files the approval request a privileged grant needs
// (auth.KindRoleGrant on the exact canonical request of the refused
// CreateUser or SetRole), for another admin to approve in the inbox.
func (c *Console) roleGrantRequest(ec echo.Context) error {
	p, _ := principal(ec)
	r := ec.Request()
	tenant, _, err := c.tenantFor(ec, p)
	if err != nil {
		return err
	}
	if tenant == "" {
		tenant = p.TenantID
	}
	role := r.PostFormValue("role")
	var req []byte
	if id := r.PostFormValue("user_id"); id != "" {
		req = auth.SetRoleRequest(tenant, id, role)
	} else {
		req = auth.CreateUserRequest(tenant, auth.NewUser{Name: r.PostFormValue("name"), Role: role})
	}
	a, err := c.d.Auth.RequestApproval(r.Context(), p, auth.KindRoleGrant, req)
	if err != nil {
		return err
	}
	return redirectFlash(ec, back("/users", ec.Request().PostFormValue("tenant")), "Approval request "+a.ID+" filed. When another admin has approved it, submit the change again with this request id.")
}

func (c *Console) userDisable(ec echo.Context) error {
	p, _ := principal(ec)
	tenant, _, err := c.tenantFor(ec, p)
	if err != nil {
		return err
	}
	if err := c.d.Auth.DisableUser(ec.Request().Context(), p, tenant, ec.Param("id"), ""); err != nil {
		return err
	}
	return redirectFlash(ec, back("/users", tenant), "User disabled.")
}

func (c *Console) userResetTOTP(ec echo.Context) error {
	p, _ := principal(ec)
	tenant, _, err := c.tenantFor(ec, p)
	if err != nil {
		return err
	}
	if err := c.d.Auth.ResetTOTP(ec.Request().Context(), p, tenant, ec.Param("id"), ""); err != nil {
		return err
	}
	return redirectFlash(ec, back("/users", tenant), "Authenticator reset; the user enrols again at next sign-in.")
}

// --- API tokens ---

type tokensData struct {
	Tokens  []auth.TokenInfo
	Roles   []string
	Created *auth.TokenInfo
	Secret  string
}

func (c *Console) tokensPage(ec echo.Context) error { return c.showTokens(ec, nil, "") }

func (c *Console) showTokens(ec echo.Context, created *auth.TokenInfo, secret string) error {
	p, _ := principal(ec)
	ts, err := c.d.Auth.ListTokens(ec.Request().Context(), p)
	if err != nil {
		return err
	}
	return c.render(ec, http.StatusOK, "tokens", view{Title: "API tokens", Nav: "tokens", Flash: flashOf(ec),
		Data: tokensData{Tokens: ts, Roles: auth.Roles(), Created: created, Secret: secret}})
}

func (c *Console) tokenCreate(ec echo.Context) error {
	p, _ := principal(ec)
	r := ec.Request()
	ttl, err := parseTTL(r.PostFormValue("ttl"))
	if err != nil {
		return err
	}
	secret, info, err := c.d.Auth.CreateToken(r.Context(), p, auth.NewToken{Name: r.PostFormValue("name"), Role: r.PostFormValue("role"), TTL: ttl}, "")
	if err != nil {
		return err
	}
	return c.showTokens(ec, &info, secret)
}

func (c *Console) tokenRevoke(ec echo.Context) error {
	p, _ := principal(ec)
	if err := c.d.Auth.RevokeToken(ec.Request().Context(), p, ec.Param("id")); err != nil {
		return err
	}
	return redirectFlash(ec, Prefix+"/tokens", "Token revoked.")
}

// parseTTL reads a Go duration ("720h"); "" is the service's default.
func parseTTL(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("lifetime must be a duration such as 24h or 90m: %w", auth.ErrInvalid)
	}
	return d, nil
}

// --- support tickets ---

func (c *Console) supportPage(ec echo.Context) error {
	p, _ := principal(ec)
	ts, err := c.d.Auth.ListSupport(ec.Request().Context(), p)
	if err != nil {
		return err
	}
	return c.render(ec, http.StatusOK, "support", view{Title: "Support tickets", Nav: "support", Flash: flashOf(ec), Data: ts})
}

func (c *Console) supportOpen(ec echo.Context) error {
	p, _ := principal(ec)
	r := ec.Request()
	ttl, err := parseTTL(r.PostFormValue("ttl"))
	if err != nil {
		return err
	}
	t, err := c.d.Auth.OpenSupport(r.Context(), p, strings.TrimSpace(r.PostFormValue("support_user_id")), ttl, r.PostFormValue("reason"), "")
	if err != nil {
		return err
	}
	return redirectFlash(ec, Prefix+"/support", "Support ticket "+t.ID+" opened.")
}

func (c *Console) supportClose(ec echo.Context) error {
	p, _ := principal(ec)
	if err := c.d.Auth.CloseSupport(ec.Request().Context(), p, ec.Param("id")); err != nil {
		return err
	}
	return redirectFlash(ec, Prefix+"/support", "Support ticket closed.")
}

// --- approvals inbox ---

type approvalsData struct {
	Approvals []approvalView
	Status    string
}

// approvalView is a request with what the viewer may do with it. The
// service decides again on every action; this only hides buttons that
// would certainly be refused.
type approvalView struct {
	auth.Approval
	CanApprove, CanDeny, CanVoid bool
	// ScanID is the scan a production-scan request belongs to: it is
	// approved and denied on the scan's page (scan.Scans.Approve, which
	// moves the scan along), not with the generic buttons.
	ScanID string
}

func (c *Console) approvalsPage(ec echo.Context) error {
	p, _ := principal(ec)
	status := ec.QueryParam("status")
	switch status {
	case "", "pending", "approved", "denied", "void":
	default:
		return fmt.Errorf("status must be pending, approved, denied or void: %w", auth.ErrInvalid)
	}
	as, err := c.d.Auth.ListApprovals(ec.Request().Context(), p, status)
	if err != nil {
		return err
	}
	scans, err := c.scansByApproval(ec, p, as)
	if err != nil {
		return err
	}
	vs := make([]approvalView, 0, len(as))
	for _, a := range as {
		mine := a.RequesterID == p.UserID
		v := approvalView{Approval: a,
			CanApprove: !mine && c.allowed(p.Role, auth.ApproveOperation(a.Kind)),
			CanDeny:    !mine && a.Kind != auth.KindRoleGrant && c.allowed(p.Role, auth.OpApprovalDeny),
			CanVoid:    c.allowed(p.Role, auth.OpApprovalVoid) && (mine || p.Role == auth.RoleAdmin || p.Role == auth.RoleSecurityLead),
		}
		if a.Kind == auth.KindProductionScan {
			v.ScanID = scans[a.ID]
			v.CanApprove, v.CanDeny, v.CanVoid = false, false, false
		}
		vs = append(vs, v)
	}
	return c.render(ec, http.StatusOK, "approvals", view{Title: "Approvals", Nav: "approvals", Flash: flashOf(ec), Data: approvalsData{Approvals: vs, Status: status}})
}

// scansByApproval maps the approval ids of the tenant's waiting scans
// (pending or approved) to their scan ids, when as holds a production-scan
// request. At most a few pages are read: the inbox links what it finds.
func (c *Console) scansByApproval(ec echo.Context, p auth.Principal, as []auth.Approval) (map[string]string, error) {
	out := map[string]string{}
	if c.d.Scans == nil || !slices.ContainsFunc(as, func(a auth.Approval) bool { return a.Kind == auth.KindProductionScan }) {
		return out, nil
	}
	for _, st := range []string{scan.StatePending, scan.StateApproved} {
		f := scan.ListFilter{State: st, Limit: 500}
		for range 4 {
			page, err := c.d.Scans.List(ec.Request().Context(), p, "", f)
			if err != nil {
				return nil, err
			}
			for _, sc := range page.Items {
				if sc.ApprovalID != "" {
					out[sc.ApprovalID] = sc.ID
				}
			}
			if page.Next == "" {
				break
			}
			f.Before = page.Next
		}
	}
	return out, nil
}

func (c *Console) approve(ec echo.Context) error {
	p, _ := principal(ec)
	a, err := c.d.Auth.Approve(ec.Request().Context(), p, ec.Param("id"), "")
	if err != nil {
		return err
	}
	return redirectFlash(ec, Prefix+"/approvals", "Approved; the request is now "+a.Status+".")
}

func (c *Console) deny(ec echo.Context) error {
	p, _ := principal(ec)
	if err := c.d.Auth.Deny(ec.Request().Context(), p, ec.Param("id"), ec.Request().PostFormValue("reason"), ""); err != nil {
		return err
	}
	return redirectFlash(ec, Prefix+"/approvals", "Request denied.")
}

func (c *Console) void(ec echo.Context) error {
	p, _ := principal(ec)
	if err := c.d.Auth.VoidApproval(ec.Request().Context(), p, ec.Param("id"), ec.Request().PostFormValue("reason")); err != nil {
		return err
	}
	return redirectFlash(ec, Prefix+"/approvals", "Request withdrawn.")
}

// --- alerts and the tamper alarm ---

type alertsData struct {
	Page  any
	Next  int64
	After int64
}

func (c *Console) alertsPage(ec echo.Context) error {
	if c.d.Audit == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	tenant, tenants, err := c.listTenant(ec, p)
	if err != nil {
		return err
	}
	after, err := cursorOf(ec)
	if err != nil {
		return err
	}
	pg, err := c.d.Audit.Alerts(ec.Request().Context(), p, tenant, after, 50)
	if err != nil {
		return err
	}
	return c.render(ec, http.StatusOK, "alerts", view{Title: "Alerts", Nav: "alerts", Flash: flashOf(ec), Tenant: tenant, Tenants: tenants,
		Data: alertsData{Page: pg.Alerts, Next: pg.Next, After: after}})
}

// listTenant is tenantFor for read pages where an appliance admin may see
// every tenant at once: no pick means all ("").
func (c *Console) listTenant(ec echo.Context, p auth.Principal) (string, []tenantOption, error) {
	if !p.ApplianceAdmin() {
		return "", nil, nil
	}
	_, opts, err := c.tenantFor(ec, p)
	return ec.QueryParam("tenant"), opts, err
}

func cursorOf(ec echo.Context) (int64, error) {
	v := ec.QueryParam("after")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("after must be an entry number: %w", auth.ErrInvalid)
	}
	return n, nil
}

func (c *Console) alertAck(ec echo.Context) error {
	if c.d.Audit == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	seq, err := strconv.ParseInt(ec.Param("seq"), 10, 64)
	if err != nil {
		return fmt.Errorf("alert number: %w", auth.ErrInvalid)
	}
	tenant := ""
	if p.ApplianceAdmin() {
		tenant = ec.Request().PostFormValue("tenant")
	}
	if _, err := c.d.Audit.AckAlert(ec.Request().Context(), p, tenant, seq, ec.Request().PostFormValue("comment")); err != nil {
		return err
	}
	return redirectFlash(ec, back("/alerts", tenant), "Alert acknowledged.")
}

func (c *Console) alarmAck(ec echo.Context) error {
	if c.d.Audit == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	if _, _, err := c.d.Audit.AcknowledgeAlarm(ec.Request().Context(), p, ec.Request().PostFormValue("comment"), ""); err != nil {
		return err
	}
	return redirectFlash(ec, Prefix+"/", "Tamper alarm acknowledged; a new signed segment has started.")
}

// --- SIEM destinations ---

type siemData struct {
	Destinations any
	Tested       string
}

func (c *Console) siemPage(ec echo.Context) error {
	if c.d.SIEM == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	tenant, tenants, err := c.listTenant(ec, p)
	if err != nil {
		return err
	}
	ss, err := c.d.SIEM.Status(ec.Request().Context(), p, tenant)
	if err != nil {
		return err
	}
	return c.render(ec, http.StatusOK, "siem", view{Title: "SIEM destinations", Nav: "siem", Flash: flashOf(ec), Tenant: tenant, Tenants: tenants,
		Data: siemData{Destinations: ss}})
}

func (c *Console) siemTenant(ec echo.Context, p auth.Principal) string {
	if p.ApplianceAdmin() {
		return ec.Request().PostFormValue("tenant")
	}
	return ""
}

func (c *Console) siemAdd(ec echo.Context) error {
	if c.d.SIEM == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	r := ec.Request()
	tenant := c.siemTenant(ec, p)
	nd, err := newDestination(r)
	if err != nil {
		return err
	}
	// The code comes with the form (not through the step-up prompt), so
	// a pasted client key or HMAC secret is never echoed back into a page.
	code := strings.TrimSpace(r.PostFormValue("code"))
	if code == "" {
		return fmt.Errorf("enter a code from your authenticator to add a destination: %w", auth.ErrInvalid)
	}
	d, err := c.d.SIEM.Add(r.Context(), p, tenant, nd, code)
	if err != nil {
		return err
	}
	return redirectFlash(ec, back("/siem", tenant), "Destination "+d.Name+" added.")
}

// newDestination reads the add form. Certificates and keys are pasted as
// PEM text: the appliance reads no files on a user's behalf.
func newDestination(r *http.Request) (destinations.NewDestination, error) {
	nd := destinations.NewDestination{
		Name: strings.TrimSpace(r.PostFormValue("name")), Kind: r.PostFormValue("kind"), Address: strings.TrimSpace(r.PostFormValue("address")),
		Format: r.PostFormValue("format"), ServerName: strings.TrimSpace(r.PostFormValue("server_name")),
		CAPEM: pem(r.PostFormValue("ca_pem")), ClientCertPEM: pem(r.PostFormValue("client_cert_pem")), ClientKeyPEM: pem(r.PostFormValue("client_key_pem")),
	}
	if k := r.PostFormValue("hmac_key"); k != "" {
		nd.HMACKey = []byte(k)
	}
	if v := strings.TrimSpace(r.PostFormValue("max_message")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nd, fmt.Errorf("max message must be a number of bytes: %w", auth.ErrInvalid)
		}
		nd.MaxMessage = n
	}
	return nd, nil
}

// pem normalises pasted PEM (browsers send CRLF line ends); "" stays nil
// so the request's digests match an empty field.
func pem(s string) []byte {
	s = strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n"))
	if s == "" {
		return nil
	}
	return []byte(s + "\n")
}

func (c *Console) siemRemove(ec echo.Context) error {
	if c.d.SIEM == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	tenant := c.siemTenant(ec, p)
	n, err := c.d.SIEM.Remove(ec.Request().Context(), p, tenant, ec.Param("name"), "")
	if err != nil {
		return err
	}
	return redirectFlash(ec, back("/siem", tenant), fmt.Sprintf("Destination removed; %d undelivered events were dropped.", n))
}

func (c *Console) siemTest(ec echo.Context) error {
	if c.d.SIEM == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	tenant := c.siemTenant(ec, p)
	// A test delivery waits on the network; bound it.
	ctx, cancel := context.WithTimeout(ec.Request().Context(), 15*time.Second)
	defer cancel()
	msg := "Test event delivered to " + ec.Param("name") + "."
	if err := c.d.SIEM.Test(ctx, p, tenant, ec.Param("name")); err != nil {
		if errors.Is(err, auth.ErrForbidden) || fault.Classify(err).Code == fault.CodeNotFound {
			return err
		}
		msg = "Test delivery failed: " + err.Error()
	}
	return redirectFlash(ec, back("/siem", tenant), msg)
}
