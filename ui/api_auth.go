package ui

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auth"
)

// loginAnswer is the answer of every login step.
type loginAnswer struct {
	Stage              string    `json:"stage"`
	Token              string    `json:"token"`
	CSRF               string    `json:"csrf"`
	SessionID          string    `json:"session_id"`
	MustChangePassword bool      `json:"must_change_password"`
	ExpiresAt          time.Time `json:"expires_at"`
	// RecoveryCodes are shown once, after enrolment.
	RecoveryCodes []string `json:"recovery_codes,omitempty"`
}

// sendLogin sets the session cookie and answers the login state. The token
// is in the body too, for clients that are not browsers (the CLI).
func sendLogin(c echo.Context, l auth.Login, codes []string) error {
	c.SetCookie(auth.SessionCookie(l.Token))
	return c.JSON(http.StatusOK, loginAnswer{Stage: l.Stage, Token: l.Token, CSRF: l.CSRF, SessionID: l.SessionID,
		MustChangePassword: l.MustChangePassword, ExpiresAt: l.ExpiresAt.UTC(), RecoveryCodes: codes})
}

// sessionCookie is the session token the request carries ("" if none).
func sessionCookie(c echo.Context) string {
	if ck, err := c.Cookie(auth.SessionCookieName); err == nil {
		return ck.Value
	}
	return ""
}

func (s *Server) login(c echo.Context) error {
	var in struct {
		Name     string `json:"name"`
		Password string `json:"password"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	r := c.Request()
	l, err := s.d.Auth.Login(r.Context(), in.Name, in.Password, auth.ClientFrom(r), sessionCookie(c))
	if err != nil {
		return err
	}
	return sendLogin(c, l, nil)
}

type codeBody struct {
	Code string `json:"code"`
}

func (s *Server) totp(c echo.Context) error {
	var in codeBody
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	r := c.Request()
	l, err := s.d.Auth.VerifyTOTP(r.Context(), sessionCookie(c), in.Code, auth.ClientFrom(r))
	if err != nil {
		return err
	}
	return sendLogin(c, l, nil)
}

func (s *Server) recovery(c echo.Context) error {
	var in codeBody
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	r := c.Request()
	l, err := s.d.Auth.UseRecoveryCode(r.Context(), sessionCookie(c), in.Code, auth.ClientFrom(r))
	if err != nil {
		return err
	}
	return sendLogin(c, l, nil)
}

func (s *Server) enrol(c echo.Context) error {
	var in struct{}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	r := c.Request()
	en, err := s.d.Auth.BeginEnrolment(r.Context(), sessionCookie(c), auth.ClientFrom(r))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"totp_secret": en.Secret, "totp_url": en.URL, "qr_png": base64.StdEncoding.EncodeToString(en.QRPNG)})
}

func (s *Server) enrolConfirm(c echo.Context) error {
	var in codeBody
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	r := c.Request()
	l, codes, err := s.d.Auth.ConfirmEnrolment(r.Context(), sessionCookie(c), in.Code, auth.ClientFrom(r))
	if err != nil {
		return err
	}
	return sendLogin(c, l, codes)
}

func (s *Server) changePassword(c echo.Context) error {
	var in struct {
		Old string `json:"old_password"`
		New string `json:"new_password"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	l, err := s.d.Auth.ChangePassword(c.Request().Context(), principal(c), in.Old, in.New)
	if err != nil {
		return err
	}
	return sendLogin(c, l, nil)
}

func (s *Server) logout(c echo.Context) error {
	p := principal(c)
	if p.SessionID == "" {
		return apiError("invalid_argument", "an API token has no session to end; revoke the token instead")
	}
	if err := s.d.Auth.Logout(c.Request().Context(), p); err != nil {
		return err
	}
	c.SetCookie(auth.ClearSessionCookie())
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) logoutAll(c echo.Context) error {
	if err := s.d.Auth.LogoutEverywhere(c.Request().Context(), principal(c)); err != nil {
		return err
	}
	c.SetCookie(auth.ClearSessionCookie())
	return c.NoContent(http.StatusNoContent)
}

type sessionOut struct {
	ID        string    `json:"id"`
	Current   bool      `json:"current"`
	IP        string    `json:"ip"`
	UserAgent string    `json:"user_agent"`
	CreatedAt time.Time `json:"created_at"`
	LastSeen  time.Time `json:"last_seen"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (s *Server) sessions(c echo.Context) error {
	pg, err := pageOf(c)
	if err != nil {
		return err
	}
	ss, err := s.d.Auth.Sessions(c.Request().Context(), principal(c))
	if err != nil {
		return err
	}
	out := make([]sessionOut, 0, len(ss))
	for _, se := range ss {
		out = append(out, sessionOut{ID: se.ID, Current: se.Current, IP: se.IP, UserAgent: se.UserAgent, CreatedAt: se.CreatedAt.UTC(), LastSeen: se.LastSeen.UTC(), ExpiresAt: se.ExpireAt.UTC()})
	}
	return c.JSON(http.StatusOK, paginate(out, func(s sessionOut) string { return s.ID }, pg))
}

func (s *Server) whoami(c echo.Context) error {
	p := principal(c)
	return c.JSON(http.StatusOK, map[string]any{"user_id": p.UserID, "name": p.Name, "role": p.Role, "tenant_id": p.TenantID,
		"home_tenant_id": p.HomeTenantID, "session_id": p.SessionID, "token_id": p.TokenID, "support_ticket_id": p.SupportTicketID,
		"must_change_password": p.MustChangePassword})
}

// stepUp records a step-up grant for the operation and canonical request
// that a step_up_required answer named; the client then repeats the
// original request unchanged.
func (s *Server) stepUp(c echo.Context) error {
	var in struct {
		Operation string `json:"operation"`
		Request   string `json:"request"`
		Code      string `json:"code"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if in.Operation == "" || in.Request == "" {
		return apiError("invalid_argument", "operation and request are required (copy them from the step_up challenge)")
	}
	g, err := s.d.Auth.StepUpFor(c.Request().Context(), principal(c), auth.Operation(in.Operation), []byte(in.Request), in.Code)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"id": g.ID, "operation": string(g.Op), "expires_at": g.ExpiresAt.UTC()})
}

func (s *Server) regenerateRecoveryCodes(c echo.Context) error {
	codes, err := s.d.Auth.RegenerateRecoveryCodes(c.Request().Context(), principal(c), "")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"recovery_codes": codes})
}

// Security keys (WebAuthn). The browser's navigator.credentials calls
// happen in the page (ui/console/static/webauthn.js); these routes begin
// a ceremony (answering its id and the options for create() or get()) and
// finish it with the PublicKeyCredential as JSON. The CLI cannot perform
// a ceremony; it can list and remove keys.

// keyAnswer finishes a ceremony: its id and the authenticator's
// PublicKeyCredential (JSON, binary members base64url).
type keyAnswer struct {
	Ceremony   string          `json:"ceremony"`
	Credential json.RawMessage `json:"credential"`
}

func (a keyAnswer) check() error {
	if a.Ceremony == "" || len(a.Credential) == 0 {
		return apiError("invalid_argument", "ceremony and credential are required")
	}
	return nil
}

type securityKeyOut struct {
	ID           string     `json:"id"`
	Name         string     `json:"name"`
	CreatedAt    time.Time  `json:"created_at"`
	LastUsedAt   *time.Time `json:"last_used_at"`
	LastUsedIP   string     `json:"last_used_ip"`
	SignCount    uint32     `json:"sign_count"`
	CloneWarning bool       `json:"clone_warning"`
}

func keyOut(k auth.SecurityKey) securityKeyOut {
	o := securityKeyOut{ID: k.ID, Name: k.Name, CreatedAt: k.CreatedAt.UTC(), LastUsedIP: k.LastUsedIP, SignCount: k.SignCount, CloneWarning: k.CloneWarning}
	if !k.LastUsedAt.IsZero() {
		t := k.LastUsedAt.UTC()
		o.LastUsedAt = &t
	}
	return o
}

func ceremonyOut(kc auth.KeyCeremony) map[string]any {
	return map[string]any{"ceremony": kc.ID, "options": kc.Options, "expires_at": kc.ExpiresAt.UTC()}
}

// keyLoginBegin starts a security-key login for the pending session.
func (s *Server) keyLoginBegin(c echo.Context) error {
	var in struct{}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	r := c.Request()
	kc, err := s.d.Auth.BeginKeyLogin(r.Context(), sessionCookie(c), auth.ClientFrom(r))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ceremonyOut(kc))
}

// keyLogin completes a login with the key's assertion.
func (s *Server) keyLogin(c echo.Context) error {
	var in keyAnswer
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := in.check(); err != nil {
		return err
	}
	r := c.Request()
	l, err := s.d.Auth.FinishKeyLogin(r.Context(), sessionCookie(c), in.Ceremony, in.Credential, auth.ClientFrom(r))
	if err != nil {
		return err
	}
	return sendLogin(c, l, nil)
}

func (s *Server) listKeys(c echo.Context) error {
	pg, err := pageOf(c)
	if err != nil {
		return err
	}
	ks, err := s.d.Auth.ListKeys(c.Request().Context(), principal(c))
	if err != nil {
		return err
	}
	out := make([]securityKeyOut, 0, len(ks))
	for _, k := range ks {
		out = append(out, keyOut(k))
	}
	return c.JSON(http.StatusOK, paginate(out, func(k securityKeyOut) string { return k.ID }, pg))
}

// keyRegisterBegin starts registering a key (step-up first).
func (s *Server) keyRegisterBegin(c echo.Context) error {
	var in struct {
		Name string `json:"name"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	kc, err := s.d.Auth.BeginKeyRegistration(c.Request().Context(), principal(c), in.Name, "")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ceremonyOut(kc))
}

func (s *Server) keyRegisterFinish(c echo.Context) error {
	var in keyAnswer
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := in.check(); err != nil {
		return err
	}
	k, err := s.d.Auth.FinishKeyRegistration(c.Request().Context(), principal(c), in.Ceremony, in.Credential)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, keyOut(k))
}

func (s *Server) removeKey(c echo.Context) error {
	if err := s.d.Auth.RemoveKey(c.Request().Context(), principal(c), c.Param("id"), ""); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// stepUpTarget reads the operation and canonical request of a step-up
// challenge, and the tenant the request names.
type stepUpTarget struct {
	Operation string `json:"operation"`
	Request   string `json:"request"`
}

func (t stepUpTarget) tenant() (string, error) {
	if t.Operation == "" || t.Request == "" {
		return "", apiError("invalid_argument", "operation and request are required (copy them from the step_up challenge)")
	}
	var m struct {
		Tenant string `json:"tenant"`
	}
	if err := json.Unmarshal([]byte(t.Request), &m); err != nil {
		return "", apiError("invalid_argument", "request is not a JSON object with a string tenant")
	}
	return m.Tenant, nil
}

// keyStepUpBegin starts a step-up with a security key for a challenge.
func (s *Server) keyStepUpBegin(c echo.Context) error {
	var in stepUpTarget
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	tenant, err := in.tenant()
	if err != nil {
		return err
	}
	kc, err := s.d.Auth.BeginKeyStepUp(c.Request().Context(), principal(c), auth.Operation(in.Operation), tenant, []byte(in.Request))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ceremonyOut(kc))
}

// keyStepUp records the grant after the key's assertion; the client then
// repeats the original request.
func (s *Server) keyStepUp(c echo.Context) error {
	var in struct {
		stepUpTarget
		keyAnswer
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	tenant, err := in.tenant()
	if err != nil {
		return err
	}
	if err := in.check(); err != nil {
		return err
	}
	g, err := s.d.Auth.FinishKeyStepUp(c.Request().Context(), principal(c), auth.Operation(in.Operation), tenant, []byte(in.Request), in.Ceremony, in.Credential)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"id": g.ID, "operation": string(g.Op), "expires_at": g.ExpiresAt.UTC()})
}

func (s *Server) keyPolicy(c echo.Context) error {
	kp, err := s.d.Auth.KeyPolicy(c.Request().Context(), principal(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, kp)
}

func (s *Server) setKeyPolicy(c echo.Context) error {
	var in auth.KeyPolicy
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := s.d.Auth.SetKeyPolicy(c.Request().Context(), principal(c), in, ""); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, in)
}
