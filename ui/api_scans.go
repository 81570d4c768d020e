package ui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/fault"
	"firewalliq/appliance/scan"
	"firewalliq/probe/scope"
)

// Scope-signing keys, scope revocation and scans (appliance/scan). Every
// handler decodes, calls one service method with code "" (so a step-up
// operation answers step_up_required with its challenge, and the retry
// spends the grant), and encodes what the service returned.

func (s *Server) listScopeKeys(c echo.Context) error {
	return sendPage(c, s.d.ScopeKeys.List, asIs, func(k scan.SigningKey) string { return k.ID })
}

func (s *Server) addScopeKey(c echo.Context) error {
	var in struct {
		Name   string `json:"name"`
		Public string `json:"public"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if in.Public == "" {
		return apiError(fault.CodeInvalid, "public is required: the public key file's text")
	}
	k, err := s.d.ScopeKeys.Add(c.Request().Context(), principal(c), tenantParam(c), in.Name, []byte(in.Public), "")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, k)
}

func (s *Server) generateScopeKey(c echo.Context) error {
	var in struct {
		Name string `json:"name"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	k, err := s.d.ScopeKeys.Generate(c.Request().Context(), principal(c), tenantParam(c), in.Name, "")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, k)
}

func (s *Server) revokeScopeKey(c echo.Context) error {
	var in reasonBody
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	k, err := s.d.ScopeKeys.Revoke(c.Request().Context(), principal(c), tenantParam(c), c.Param("id"), in.Reason, "")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, k)
}

// signScope signs the posted scope document with the caller's
// appliance-held key and answers the signed envelope (which POST
// /api/v1/scopes then registers).
func (s *Server) signScope(c echo.Context) error {
	var doc scope.Document
	if err := decodeJSON(c, &doc); err != nil {
		return err
	}
	signed, err := s.d.ScopeKeys.Sign(c.Request().Context(), principal(c), tenantParam(c), c.Param("id"), doc, "")
	if err != nil {
		return err
	}
	return c.JSONBlob(http.StatusOK, signed)
}

func (s *Server) revokeScope(c echo.Context) error {
	var in reasonBody
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	sc, err := s.d.Scopes.Revoke(c.Request().Context(), principal(c), tenantParam(c), c.Param("id"), in.Reason, "")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, scopeOf(sc, false))
}

func (s *Server) requestScan(c echo.Context) error {
	var in scan.ScanRequest
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	sc, err := s.d.Scans.Request(c.Request().Context(), principal(c), tenantParam(c), in, "")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, sc)
}

func (s *Server) listScans(c echo.Context) error {
	pg, err := pageOf(c)
	if err != nil {
		return err
	}
	out, err := s.d.Scans.List(c.Request().Context(), principal(c), tenantParam(c), scan.ListFilter{State: c.QueryParam("state"), Limit: pg.limit, Before: pg.after})
	if err != nil {
		return err
	}
	if out.Next != "" {
		out.Next = cursor(out.Next)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) getScan(c echo.Context) error {
	return sendByID(c, s.d.Scans.Get, asIs)
}

func (s *Server) approveScan(c echo.Context) error {
	if err := decodeJSON(c, &struct{}{}); err != nil {
		return err
	}
	sc, err := s.d.Scans.Approve(c.Request().Context(), principal(c), tenantParam(c), c.Param("id"), "")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, sc)
}

func (s *Server) denyScan(c echo.Context) error {
	var in reasonBody
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	sc, err := s.d.Scans.Deny(c.Request().Context(), principal(c), tenantParam(c), c.Param("id"), in.Reason, "")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, sc)
}

func (s *Server) startScan(c echo.Context) error {
	if err := decodeJSON(c, &struct{}{}); err != nil {
		return err
	}
	sc, err := s.d.Scans.Start(c.Request().Context(), principal(c), tenantParam(c), c.Param("id"), "")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, sc)
}

func (s *Server) cancelScan(c echo.Context) error {
	var in reasonBody
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	sc, err := s.d.Scans.Cancel(c.Request().Context(), principal(c), tenantParam(c), c.Param("id"), in.Reason)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, sc)
}

// scanResults serves one page of a scan's results; the filters are
// ?state=, ?port=, ?host= and ?probe=, the page ?limit= and ?after=.
func (s *Server) scanResults(c echo.Context) error {
	pg, err := pageOf(c)
	if err != nil {
		return err
	}
	f := scan.ResultFilter{State: c.QueryParam("state"), Probe: c.QueryParam("probe"), Limit: pg.limit, After: pg.after}
	if v := c.QueryParam("port"); v != "" {
		if f.Port, err = strconv.Atoi(v); err != nil || f.Port < 1 || f.Port > 65535 {
			return apiError(fault.CodeInvalid, "port must be 1 to 65535")
		}
	}
	if v := c.QueryParam("host"); v != "" {
		if f.Host, err = netip.ParseAddr(v); err != nil {
			return apiError(fault.CodeInvalid, "host must be one IP address")
		}
	}
	out, err := s.d.Scans.Results(c.Request().Context(), principal(c), tenantParam(c), c.Param("id"), f)
	if err != nil {
		return err
	}
	if out.Next != "" {
		out.Next = cursor(out.Next)
	}
	return c.JSON(http.StatusOK, out)
}

// sseKeepAlive is how often a quiet event stream sends a comment line,
// so proxies and clients see the connection is alive.
const sseKeepAlive = 15 * time.Second

// scanEvents relays Scans.Watch as Server-Sent Events: one "progress"
// event per snapshot (data: the Progress JSON), the last one carrying the
// scan's final state, then the stream ends; it also ends, without that
// last event, when the appliance shuts down. Errors before the first byte
// (not found, forbidden) are ordinary JSON errors.
func (s *Server) scanEvents(c echo.Context) error {
	ctx := c.Request().Context()
	ch, err := s.d.Scans.Watch(ctx, principal(c), tenantParam(c), c.Param("id"))
	if err != nil {
		return err
	}
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	w.Flush()
	tick := time.NewTicker(sseKeepAlive)
	defer tick.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-s.stopping:
			// The appliance is shutting down (EndStreams): end the stream
			// now rather than hold the shutdown until the scan ends, and
			// say why, so a client does not take the end for the scan's.
			_, _ = fmt.Fprint(w, "event: shutdown\ndata: {}\n\n")
			w.Flush()
			return nil
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return nil
			}
			w.Flush()
		case p, ok := <-ch:
			if !ok {
				return nil
			}
			b, err := json.Marshal(p)
			if err != nil {
				return nil
			}
			if _, err := fmt.Fprintf(w, "id: %d\nevent: progress\ndata: %s\n\n", n, b); err != nil {
				return nil // the client went away
			}
			w.Flush()
		}
	}
}

// scheduleOut keeps a schedule's approvers a list (never null).
func scheduleOut(sc scan.Schedule) scan.Schedule {
	if sc.Approvers == nil {
		sc.Approvers = []string{}
	}
	return sc
}

func (s *Server) listSchedules(c echo.Context) error {
	return sendPage(c, s.d.Scans.ListSchedules, scheduleOut, func(sc scan.Schedule) string { return sc.ID })
}

func (s *Server) createSchedule(c echo.Context) error {
	var in scan.ScheduleRequest
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	sc, err := s.d.Scans.CreateSchedule(c.Request().Context(), principal(c), tenantParam(c), in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, scheduleOut(sc))
}

func (s *Server) getSchedule(c echo.Context) error {
	return sendByID(c, s.d.Scans.GetSchedule, scheduleOut)
}

func (s *Server) approveSchedule(c echo.Context) error {
	if err := decodeJSON(c, &struct{}{}); err != nil {
		return err
	}
	sc, err := s.d.Scans.ApproveSchedule(c.Request().Context(), principal(c), tenantParam(c), c.Param("id"), "")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, scheduleOut(sc))
}

// editSchedule voids the schedule and answers its pending replacement.
func (s *Server) editSchedule(c echo.Context) error {
	var in scan.ScheduleRequest
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	sc, err := s.d.Scans.EditSchedule(c.Request().Context(), principal(c), tenantParam(c), c.Param("id"), in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, scheduleOut(sc))
}

func (s *Server) voidSchedule(c echo.Context) error {
	var in reasonBody
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	sc, err := s.d.Scans.VoidSchedule(c.Request().Context(), principal(c), tenantParam(c), c.Param("id"), in.Reason)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, scheduleOut(sc))
}
