package ui

import (
	"fmt"
	"net"
	"net/http"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/sensor"
)

// The sensor fleet's routes (docs/fleet.md): enrolment tokens, the sensor
// list, one sensor, revocation, and the enrolment exchange a sensor host
// calls with its token. Without a fleet (Deps.Sensors nil) they answer 503
// fleet_off.

// sensorsOff answers for an appliance built without the sensor service.
func sensorsOff() error {
	return fmt.Errorf("sensors: %w", sensor.ErrFleetOff)
}

func (s *Server) createSensorToken(c echo.Context) error {
	if s.d.Sensors == nil {
		return sensorsOff()
	}
	var in struct {
		Name    string `json:"name"`
		Vantage string `json:"vantage"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	// The step-up is a grant (POST /auth/step-up), hence no code here.
	t, err := s.d.Sensors.CreateToken(c.Request().Context(), principal(c), tenantParam(c), in.Name, in.Vantage, "")
	if err != nil {
		return err
	}
	t.ExpiresAt = t.ExpiresAt.UTC()
	return c.JSON(http.StatusCreated, t)
}

func sensorOf(x sensor.Sensor) sensor.Sensor {
	x.EnrolledAt, x.RevokedAt, x.LastSeen = x.EnrolledAt.UTC(), utc(x.RevokedAt), utc(x.LastSeen)
	return x
}

func (s *Server) listSensors(c echo.Context) error {
	if s.d.Sensors == nil {
		return sensorsOff()
	}
	return sendPage(c, s.d.Sensors.List, sensorOf, func(x sensor.Sensor) string { return x.ID })
}

func (s *Server) getSensor(c echo.Context) error {
	if s.d.Sensors == nil {
		return sensorsOff()
	}
	return sendByID(c, s.d.Sensors.Get, sensorOf)
}

func (s *Server) revokeSensor(c echo.Context) error {
	if s.d.Sensors == nil {
		return sensorsOff()
	}
	x, err := s.d.Sensors.Revoke(c.Request().Context(), principal(c), tenantParam(c), c.Param("id"), "")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, sensorOf(x))
}

// enrollSensor is the enrolment exchange at sensor.EnrollPath: no
// principal, the one-time token is the credential (a bad one is audited
// as access.denied by the service); rate limited per address. It answers
// what sensor.EnrollHandler answers, with the API's error shape.
func (s *Server) enrollSensor(c echo.Context) error {
	if s.d.Sensors == nil {
		return sensorsOff()
	}
	var req sensor.EnrollRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(c.Request().Host)
	if err != nil {
		host = c.Request().Host
	}
	out, err := s.d.Sensors.Enroll(c.Request().Context(), req, auth.ClientFrom(c.Request()), host)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}
