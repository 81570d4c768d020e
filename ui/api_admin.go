package ui

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auth"
)

type tenantOut struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"`
}

func (s *Server) listTenants(c echo.Context) error {
	pg, err := pageOf(c)
	if err != nil {
		return err
	}
	ts, err := s.d.Auth.ListTenants(c.Request().Context(), principal(c))
	if err != nil {
		return err
	}
	out := make([]tenantOut, 0, len(ts))
	for _, t := range ts {
		out = append(out, tenantOut{ID: t.ID, Name: t.Name, CreatedAt: t.CreatedAt})
	}
	return c.JSON(http.StatusOK, paginate(out, func(t tenantOut) string { return t.ID }, pg))
}

func (s *Server) createTenant(c echo.Context) error {
	var in struct {
		Name string `json:"name"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	p := principal(c)
	t, err := s.d.Auth.CreateTenant(c.Request().Context(), p, in.Name, "")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, tenantOut{ID: t.ID, Name: t.Name, CreatedAt: t.CreatedAt})
}

type userOut struct {
	ID                 string `json:"id"`
	TenantID           string `json:"tenant_id"`
	Name               string `json:"name"`
	Role               string `json:"role"`
	TOTPConfirmed      bool   `json:"totp_confirmed"`
	MustChangePassword bool   `json:"must_change_password"`
	Disabled           bool   `json:"disabled"`
	CreatedAt          string `json:"created_at"`
	// OneTimePassword is set only in the answer that created the user.
	OneTimePassword string `json:"one_time_password,omitempty"`
}

func userOf(u auth.UserInfo) userOut {
	return userOut{ID: u.ID, TenantID: u.TenantID, Name: u.Name, Role: u.Role, TOTPConfirmed: u.TOTPConfirmed,
		MustChangePassword: u.MustChangePassword, Disabled: u.Disabled, CreatedAt: u.CreatedAt}
}

func (s *Server) listUsers(c echo.Context) error {
	return sendPage(c, s.d.Auth.ListUsers, userOf, func(u userOut) string { return u.ID })
}

func (s *Server) createUser(c echo.Context) error {
	var in struct {
		Name   string `json:"name"`
		Role   string `json:"role"`
		Tenant string `json:"tenant"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	tenant := in.Tenant
	if tenant == "" {
		tenant = tenantParam(c)
	}
	p := principal(c)
	u, otp, err := s.d.Auth.CreateUser(c.Request().Context(), p, tenant, auth.NewUser{Name: in.Name, Role: in.Role}, "")
	if err != nil {
		return err
	}
	out := userOf(u)
	out.OneTimePassword = otp
	return c.JSON(http.StatusCreated, out)
}

func (s *Server) setRole(c echo.Context) error {
	var in struct {
		Role string `json:"role"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	p, id, tenant := principal(c), c.Param("id"), tenantParam(c)
	if err := s.d.Auth.SetRole(c.Request().Context(), p, tenant, id, in.Role, ""); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) disableUser(c echo.Context) error {
	if err := decodeJSON(c, &struct{}{}); err != nil {
		return err
	}
	p, id, tenant := principal(c), c.Param("id"), tenantParam(c)
	if err := s.d.Auth.DisableUser(c.Request().Context(), p, tenant, id, ""); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) resetTOTP(c echo.Context) error {
	if err := decodeJSON(c, &struct{}{}); err != nil {
		return err
	}
	p, id, tenant := principal(c), c.Param("id"), tenantParam(c)
	if err := s.d.Auth.ResetTOTP(c.Request().Context(), p, tenant, id, ""); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

type tokenOut struct {
	ID        string    `json:"id"`
	TenantID  string    `json:"tenant_id"`
	UserID    string    `json:"user_id"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	// Token is the secret, only in the answer that created it.
	Token string `json:"token,omitempty"`
}

func tokenOf(t auth.TokenInfo) tokenOut {
	return tokenOut{ID: t.ID, TenantID: t.TenantID, UserID: t.UserID, Name: t.Name, Role: t.Role, CreatedAt: t.CreatedAt.UTC(), ExpiresAt: t.ExpiresAt.UTC(), RevokedAt: utc(t.RevokedAt)}
}

func (s *Server) listTokens(c echo.Context) error {
	pg, err := pageOf(c)
	if err != nil {
		return err
	}
	ts, err := s.d.Auth.ListTokens(c.Request().Context(), principal(c))
	if err != nil {
		return err
	}
	out := make([]tokenOut, 0, len(ts))
	for _, t := range ts {
		out = append(out, tokenOf(t))
	}
	return c.JSON(http.StatusOK, paginate(out, func(t tokenOut) string { return t.ID }, pg))
}

func (s *Server) createToken(c echo.Context) error {
	var in struct {
		Name   string `json:"name"`
		Role   string `json:"role"`
		TTL    string `json:"ttl"`
		Tenant string `json:"tenant"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	ttl, err := parseTTL(in.TTL)
	if err != nil {
		return err
	}
	p := principal(c)
	nt := auth.NewToken{Name: in.Name, Role: in.Role, TTL: ttl, Tenant: in.Tenant}
	secret, info, err := s.d.Auth.CreateToken(c.Request().Context(), p, nt, "")
	if err != nil {
		return err
	}
	out := tokenOf(info)
	out.Token = secret
	return c.JSON(http.StatusCreated, out)
}

func (s *Server) revokeToken(c echo.Context) error {
	if err := s.d.Auth.RevokeToken(c.Request().Context(), principal(c), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// ticketOut is a support ticket. Its fields are those of
// store.SupportTicket in the same order, so a ticket converts to it
// directly (ticketOut(t)) and the adapter needs no store import.
type ticketOut struct {
	ID            string    `json:"id"`
	TenantID      string    `json:"tenant_id"`
	SupportUserID string    `json:"support_user_id"`
	OpenedBy      string    `json:"opened_by"`
	Reason        string    `json:"reason"`
	OpenedAt      time.Time `json:"opened_at"`
	ExpiresAt     time.Time `json:"expires_at"`
	ClosedAt      time.Time `json:"closed_at,omitzero"`
}

func (t ticketOut) utc() ticketOut {
	t.OpenedAt, t.ExpiresAt, t.ClosedAt = utc(t.OpenedAt), utc(t.ExpiresAt), utc(t.ClosedAt)
	return t
}

func (s *Server) listSupport(c echo.Context) error {
	pg, err := pageOf(c)
	if err != nil {
		return err
	}
	ts, err := s.d.Auth.ListSupport(c.Request().Context(), principal(c))
	if err != nil {
		return err
	}
	out := make([]ticketOut, 0, len(ts))
	for _, t := range ts {
		out = append(out, ticketOut(t).utc())
	}
	return c.JSON(http.StatusOK, paginate(out, func(t ticketOut) string { return t.ID }, pg))
}

func (s *Server) openSupport(c echo.Context) error {
	var in struct {
		SupportUser string `json:"support_user"`
		TTL         string `json:"ttl"`
		Reason      string `json:"reason"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	ttl, err := parseTTL(in.TTL)
	if err != nil {
		return err
	}
	p := principal(c)
	t, err := s.d.Auth.OpenSupport(c.Request().Context(), p, in.SupportUser, ttl, in.Reason, "")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, ticketOut(t).utc())
}

func (s *Server) closeSupport(c echo.Context) error {
	if err := decodeJSON(c, &struct{}{}); err != nil {
		return err
	}
	if err := s.d.Auth.CloseSupport(c.Request().Context(), principal(c), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

type approvalOut struct {
	ID            string        `json:"id"`
	TenantID      string        `json:"tenant_id"`
	Kind          string        `json:"kind"`
	RequesterID   string        `json:"requester_id"`
	Request       string        `json:"request"`
	RequestSHA256 string        `json:"request_sha256"`
	Status        string        `json:"status"`
	CreatedAt     time.Time     `json:"created_at"`
	ExpiresAt     time.Time     `json:"expires_at"`
	ClosedAt      time.Time     `json:"closed_at,omitzero"`
	Approvers     []approverOut `json:"approvers"`
}

type approverOut struct {
	UserID    string    `json:"user_id"`
	GrantedAt time.Time `json:"granted_at"`
}

func approvalOf(a auth.Approval) approvalOut {
	out := approvalOut{ID: a.ID, TenantID: a.TenantID, Kind: string(a.Kind), RequesterID: a.RequesterID, Request: string(a.Request),
		RequestSHA256: a.RequestSHA256, Status: a.Status, CreatedAt: a.CreatedAt.UTC(), ExpiresAt: a.ExpiresAt.UTC(), ClosedAt: utc(a.ClosedAt), Approvers: []approverOut{}}
	for _, g := range a.Approvers {
		out.Approvers = append(out.Approvers, approverOut{UserID: g.UserID, GrantedAt: g.GrantedAt.UTC()})
	}
	return out
}

func (s *Server) listApprovals(c echo.Context) error {
	pg, err := pageOf(c)
	if err != nil {
		return err
	}
	as, err := s.d.Auth.ListApprovals(c.Request().Context(), principal(c), c.QueryParam("status"))
	if err != nil {
		return err
	}
	out := make([]approvalOut, 0, len(as))
	for _, a := range as {
		out = append(out, approvalOf(a))
	}
	return c.JSON(http.StatusOK, paginate(out, func(a approvalOut) string { return a.ID }, pg))
}

func (s *Server) getApproval(c echo.Context) error {
	a, err := s.d.Auth.GetApproval(c.Request().Context(), principal(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, approvalOf(a))
}

func (s *Server) approve(c echo.Context) error {
	if err := decodeJSON(c, &struct{}{}); err != nil {
		return err
	}
	ctx, p, id := c.Request().Context(), principal(c), c.Param("id")
	a, err := s.d.Auth.Approve(ctx, p, id, "")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, approvalOf(a))
}

type reasonBody struct {
	Reason string `json:"reason"`
}

func (s *Server) deny(c echo.Context) error {
	var in reasonBody
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := s.d.Auth.Deny(c.Request().Context(), principal(c), c.Param("id"), in.Reason, ""); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) voidApproval(c echo.Context) error {
	var in reasonBody
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := s.d.Auth.VoidApproval(c.Request().Context(), principal(c), c.Param("id"), in.Reason); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
