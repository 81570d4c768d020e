package console

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/scan"
)

// The scope-signing keys page: the tenant's keys (scan.Keys.List), a
// security lead's registration of their own public key or a key the
// appliance generates and holds sealed (step-up), and revocation
// (step-up; security leads their own keys, admins any of the tenant's).

type keysData struct {
	Keys []keyView
	// CanAdd says the user may register keys (security leads of a tenant).
	CanAdd bool
}

type keyView struct {
	scan.SigningKey
	CanRevoke bool
}

func (c *Console) keysPage(ec echo.Context) error {
	if c.d.ScopeKeys == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	tenant, tenants, err := c.tenantFor(ec, p)
	if err != nil {
		return err
	}
	ks, err := c.d.ScopeKeys.List(ec.Request().Context(), p, tenant)
	if err != nil {
		return err
	}
	d := keysData{CanAdd: p.TenantID != "" && c.allowed(p.Role, auth.OpScopeKeyAdd)}
	for _, k := range ks {
		d.Keys = append(d.Keys, keyView{SigningKey: k, CanRevoke: k.State == scan.KeyActive && c.allowed(p.Role, auth.OpScopeKeyRevoke) &&
			(p.Role != auth.RoleSecurityLead || k.UserID == p.UserID)})
	}
	return c.render(ec, http.StatusOK, "keys", view{Title: "Scope-signing keys", Nav: "keys", Flash: flashOf(ec), Tenant: tenant, Tenants: tenants, Data: d})
}

// keyAdd registers the pasted public key (probe/keys format, as
// `firewalliq keygen` writes it), or, with "generate", has the appliance
// generate a key it holds sealed. The service asks for step-up.
func (c *Console) keyAdd(ec echo.Context) error {
	if c.d.ScopeKeys == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	r := ec.Request()
	name := strings.TrimSpace(r.PostFormValue("name"))
	if name == "" {
		return errInvalid("give the key a name")
	}
	var k scan.SigningKey
	var err error
	if r.PostFormValue("generate") != "" {
		k, err = c.d.ScopeKeys.Generate(r.Context(), p, "", name, "")
	} else {
		pub := strings.TrimSpace(r.PostFormValue("public"))
		if pub == "" {
			return errInvalid("paste the public key file")
		}
		k, err = c.d.ScopeKeys.Add(r.Context(), p, "", name, []byte(pub+"\n"), "")
	}
	if err != nil {
		return err
	}
	return redirectFlash(ec, Prefix+"/keys", "Key "+k.ID+" registered.")
}

func (c *Console) keyRevoke(ec echo.Context) error {
	if c.d.ScopeKeys == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	tenant, _, err := c.tenantFor(ec, p)
	if err != nil {
		return err
	}
	reason := strings.TrimSpace(ec.Request().PostFormValue("reason"))
	if reason == "" {
		return errInvalid("give a reason for the revocation")
	}
	k, err := c.d.ScopeKeys.Revoke(ec.Request().Context(), p, tenant, ec.Param("id"), reason, "")
	if err != nil {
		return err
	}
	return redirectFlash(ec, Prefix+"/keys"+tenantQuery(tenant), "Key "+k.ID+" revoked; scans of its scopes that had not started were cancelled.")
}
