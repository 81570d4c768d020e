package console

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/sensor"
)

// The sensors page (docs/fleet.md): the tenant's remote sensors with
// their state (connected, last seen, version, profile hash, vantage
// label, a standing silence alert), the enrolment-token form (step-up;
// the secret and the `firewalliq sensor enroll` command are shown once,
// rendered, never redirected) and revocation (step-up). Every action is a
// sensor.Service method, which authorises, asks for step-up and audits.

type sensorsData struct {
	Sensors []sensor.Sensor
	// Silent counts the sensors with a standing sensor.silent alert.
	Silent int
	// ProfileSHA is this console's safety profile hash: a sensor whose
	// heartbeat names another is flagged.
	ProfileSHA string
	// SilentAfter is the silence threshold, as text.
	SilentAfter string
	CanEnroll   bool
	CanRevoke   bool
	// Created is the token just made, with the command that uses it;
	// shown this once.
	Created *sensor.Token
	Command string
}

func (c *Console) sensorsPage(ec echo.Context) error {
	return c.showSensors(ec, nil)
}

func (c *Console) showSensors(ec echo.Context, created *sensor.Token) error {
	if c.d.Sensors == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	tenant, tenants, err := c.tenantFor(ec, p)
	if err != nil {
		return err
	}
	xs, err := c.d.Sensors.List(ec.Request().Context(), p, tenant)
	if err != nil {
		return err
	}
	d := sensorsData{Sensors: xs, ProfileSHA: c.d.Profile.SHA256(), SilentAfter: c.d.Sensors.SilentAfter(),
		CanEnroll: c.allowed(p.Role, auth.OpSensorEnroll), CanRevoke: c.allowed(p.Role, auth.OpSensorRevoke), Created: created}
	for _, x := range xs {
		if x.Silent && x.State == "active" {
			d.Silent++
		}
	}
	if created != nil {
		d.Command = enrollCommand(ec.Request(), created.Secret, c.d.Sensors.CertSHA256())
	}
	problem := ""
	if d.Silent > 0 {
		problem = "A sensor has gone silent: no heartbeat for longer than " + d.SilentAfter + " (see Alerts)."
	}
	return c.render(ec, http.StatusOK, "sensors", view{Title: "Sensors", Nav: "sensors", Flash: flashOf(ec), Error: problem, Tenant: tenant, Tenants: tenants, Data: d})
}

// enrollCommand is the command an operator runs on the sensor host: this
// console's address as the browser reached it, the one-time token, and
// the certificate fingerprint the sensor pins.
func enrollCommand(r *http.Request, token, certSHA string) string {
	host := r.Host
	// Only a host name or address with a port goes into a line meant for
	// a shell; a crafted Host header gets a placeholder instead.
	if host == "" || strings.IndexFunc(host, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:[]", c))
	}) >= 0 {
		host = "CONSOLE-ADDRESS"
	}
	cmd := "firewalliq sensor enroll --console https://" + host + " --token " + token
	if certSHA != "" {
		cmd += " --cert-sha256 " + certSHA
	}
	return cmd
}

// sensorTokenCreate makes a one-time enrolment token (step-up: the service
// challenges, stepUp prompts and posts the same fields again). The page is
// rendered, not redirected: the secret must not travel in a URL.
func (c *Console) sensorTokenCreate(ec echo.Context) error {
	if c.d.Sensors == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	r := ec.Request()
	tenant, _, err := c.tenantFor(ec, p)
	if err != nil {
		return err
	}
	t, err := c.d.Sensors.CreateToken(r.Context(), p, tenant, strings.TrimSpace(r.PostFormValue("name")), strings.TrimSpace(r.PostFormValue("vantage")), "")
	if err != nil {
		return err
	}
	return c.showSensors(ec, &t)
}

// sensorRevoke revokes a sensor (step-up); its connection closes at once.
func (c *Console) sensorRevoke(ec echo.Context) error {
	if c.d.Sensors == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	tenant, _, err := c.tenantFor(ec, p)
	if err != nil {
		return err
	}
	x, err := c.d.Sensors.Revoke(ec.Request().Context(), p, tenant, ec.Param("id"), "")
	if err != nil {
		return err
	}
	return redirectFlash(ec, back("/sensors", tenant), "Sensor "+x.Name+" revoked; its connection was closed and its credentials are refused.")
}
