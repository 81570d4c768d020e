package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/fault"
)

// Security keys (WebAuthn) in the console. Every ceremony is a form post
// that begins it on the server (auth.Service Begin*), a page whose form
// carries the options in data-options, and static/webauthn.js, which on a
// click hands them to navigator.credentials.create() or .get(), puts the
// answer (PublicKeyCredential as JSON) in a hidden field and submits the
// form to the finishing route. No inline script: the CSP stays strict.

// Form fields of the key step-up (with fieldStepUp* in errors.go).
const (
	fieldStepUpKey        = "stepup_key"
	fieldStepUpCeremony   = "stepup_ceremony"
	fieldStepUpCredential = "stepup_credential"
)

// registerKeys adds the security-key routes; Register calls it with its
// signed-in route helper a.
func (c *Console) registerKeys(g *echo.Group, a func(method, p string, h handler, mw ...echo.MiddlewareFunc), limit func(string) echo.MiddlewareFunc) {
	g.POST("/login/key", c.page(c.limited(limit("totp"), c.keyLoginBegin)))
	g.POST("/login/key/finish", c.page(c.limited(limit("totp"), c.keyLoginFinish)))
	a(http.MethodGet, "/security-keys", c.securityKeysPage)
	a(http.MethodPost, "/security-keys", c.stepUp(c.securityKeyBegin))
	a(http.MethodPost, "/security-keys/finish", c.securityKeyFinish)
	a(http.MethodPost, "/security-keys/:id/remove", c.stepUp(c.securityKeyRemove))
	a(http.MethodPost, "/security-keys/policy", c.stepUp(c.securityKeyPolicy))
}

// keyPrompt is the page that asks for a key: the form's target, the
// ceremony and its options, and hidden fields to carry along.
type keyPrompt struct {
	Kind     string // "create" or "get"
	Action   string
	Ceremony string
	Options  string
	Button   string
	Fields   []formField
}

func (c *Console) keyLoginBegin(ec echo.Context) error {
	r := ec.Request()
	kc, err := c.d.Auth.BeginKeyLogin(r.Context(), sessionToken(ec), auth.ClientFrom(r))
	if err != nil {
		return c.secondFactor(ec, auth.Login{}, err)
	}
	return c.render(ec, http.StatusOK, "securitykey", view{Title: "Sign in with your security key",
		Data: keyPrompt{Kind: "get", Action: Prefix + "/login/key/finish", Ceremony: kc.ID, Options: string(kc.Options), Button: "Use security key"}})
}

func (c *Console) keyLoginFinish(ec echo.Context) error {
	r := ec.Request()
	l, err := c.d.Auth.FinishKeyLogin(r.Context(), sessionToken(ec), r.PostFormValue("ceremony"), []byte(r.PostFormValue("credential")), auth.ClientFrom(r))
	return c.secondFactor(ec, l, err)
}

// securityKeysData is the security keys page.
type securityKeysData struct {
	Keys []auth.SecurityKey
	// Policy is shown (and may be changed) by appliance admins only.
	Policy       *auth.KeyPolicy
	MustRegister bool
	RPID         string
}

func (c *Console) securityKeysPage(ec echo.Context) error {
	return c.showSecurityKeys(ec, http.StatusOK, "")
}

func (c *Console) showSecurityKeys(ec echo.Context, status int, problem string) error {
	p, _ := principal(ec)
	ctx := ec.Request().Context()
	ks, err := c.d.Auth.ListKeys(ctx, p)
	if err != nil {
		return err
	}
	d := securityKeysData{Keys: ks, MustRegister: p.MustRegisterKey, RPID: c.d.Auth.KeyConfig().RPID}
	if p.ApplianceAdmin() && !p.MustRegisterKey {
		kp, err := c.d.Auth.KeyPolicy(ctx, p)
		if err != nil {
			return err
		}
		d.Policy = &kp
	}
	return c.render(ec, status, "securitykeys", view{Title: "Security keys", Nav: "securitykeys", Flash: flashOf(ec), Error: problem, Data: d})
}

// securityKeyBegin begins a registration (after step-up) and shows the
// page that asks the browser to create the credential.
func (c *Console) securityKeyBegin(ec echo.Context) error {
	p, _ := principal(ec)
	r := ec.Request()
	kc, err := c.d.Auth.BeginKeyRegistration(r.Context(), p, r.PostFormValue("name"), "")
	if err != nil {
		if errors.Is(err, auth.ErrInvalid) {
			class := fault.Classify(err)
			return c.showSecurityKeys(ec, class.HTTP, fault.Message(class, err))
		}
		return err
	}
	return c.render(ec, http.StatusOK, "securitykey", view{Title: "Register a security key", Nav: "securitykeys",
		Data: keyPrompt{Kind: "create", Action: Prefix + "/security-keys/finish", Ceremony: kc.ID, Options: string(kc.Options), Button: "Register security key"}})
}

func (c *Console) securityKeyFinish(ec echo.Context) error {
	p, _ := principal(ec)
	r := ec.Request()
	k, err := c.d.Auth.FinishKeyRegistration(r.Context(), p, r.PostFormValue("ceremony"), []byte(r.PostFormValue("credential")))
	if err != nil {
		class := fault.Classify(err)
		if class.HTTP >= 500 {
			return err
		}
		return c.showSecurityKeys(ec, class.HTTP, "The security key was not registered: "+fault.Message(class, err))
	}
	return redirectFlash(ec, Prefix+"/security-keys", "Security key "+k.Name+" registered.")
}

func (c *Console) securityKeyRemove(ec echo.Context) error {
	p, _ := principal(ec)
	if err := c.d.Auth.RemoveKey(ec.Request().Context(), p, ec.Param("id"), ""); err != nil {
		return err
	}
	return redirectFlash(ec, Prefix+"/security-keys", "Security key removed.")
}

func (c *Console) securityKeyPolicy(ec echo.Context) error {
	p, _ := principal(ec)
	r := ec.Request()
	kp := auth.KeyPolicy{ApplianceAdmins: r.PostFormValue("appliance_admins") == "on", SecurityLeads: r.PostFormValue("security_leads") == "on"}
	if err := c.d.Auth.SetKeyPolicy(r.Context(), p, kp, ""); err != nil {
		return err
	}
	return redirectFlash(ec, Prefix+"/security-keys", "Security key requirement saved.")
}

// keyStepUp handles the security-key branch of a step-up prompt (see
// stepUp): with stepup_key it begins a ceremony for the challenge and
// shows the key prompt (done); with stepup_credential it records the
// grant from the key's answer, and the wrapped handler then runs (not
// done). A refused answer shows the prompt again.
func (c *Console) keyStepUp(ec echo.Context) (done bool, err error) {
	r := ec.Request()
	p, _ := principal(ec)
	op, req := auth.Operation(r.PostFormValue(fieldStepUpOp)), r.PostFormValue(fieldStepUpRequest)
	var rt struct {
		Tenant string `json:"tenant"`
	}
	if err := json.Unmarshal([]byte(req), &rt); err != nil {
		return true, fmt.Errorf("step-up request is not a JSON object: %w", auth.ErrInvalid)
	}
	challenge := &auth.StepUpChallenge{Op: op, Request: []byte(req)}
	if cred := r.PostFormValue(fieldStepUpCredential); cred != "" {
		_, err := c.d.Auth.FinishKeyStepUp(r.Context(), p, op, rt.Tenant, []byte(req), r.PostFormValue(fieldStepUpCeremony), []byte(cred))
		if err != nil {
			if errors.Is(err, auth.ErrInvalidCode) || errors.Is(err, auth.ErrStepUpRequired) || errors.Is(err, auth.ErrKeyCloned) {
				return true, c.renderStepUp(ec, challenge, "The security key's answer was not accepted; try again.")
			}
			return true, err
		}
		return false, nil
	}
	kc, err := c.d.Auth.BeginKeyStepUp(r.Context(), p, op, rt.Tenant, []byte(req))
	if err != nil {
		if errors.Is(err, auth.ErrInvalid) {
			return true, c.renderStepUp(ec, challenge, "No security key is registered for your account; use your authenticator code.")
		}
		return true, err
	}
	return true, c.renderKeyStepUp(ec, challenge, kc)
}

// renderKeyStepUp shows the step-up prompt in its security-key form.
func (c *Console) renderKeyStepUp(ec echo.Context, su *auth.StepUpChallenge, kc auth.KeyCeremony) error {
	d := c.stepUpData(ec, su)
	d.KeyCeremony, d.KeyOptions = kc.ID, string(kc.Options)
	return c.render(ec, http.StatusUnauthorized, "stepup", view{Title: "Confirm with your security key", Data: d})
}

// keyField reports whether a posted field belongs to the step-up prompt
// itself (not to the original form).
func keyField(name string) bool {
	return strings.HasPrefix(name, "stepup_")
}
