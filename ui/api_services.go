package ui

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/evidence"
	"firewalliq/appliance/fault"
	"firewalliq/appliance/scan"
	"firewalliq/appliance/siem"
	"firewalliq/appliance/siem/destinations"
	"firewalliq/audit"
)

// unavailable answers for a service this appliance runs without (no
// evidence vault configured).
func unavailable(what string) error {
	return apiError("vault_unavailable", what+" is not configured on this appliance")
}

// seqPage reads the keyset cursor of a list keyed by audit sequence
// number (the audit log, alerts): the cursor holds the last seq seen.
func seqPage(c echo.Context) (int64, int, error) {
	pg, err := pageOf(c)
	if err != nil {
		return 0, 0, err
	}
	var after int64
	if pg.after != "" {
		if after, err = strconv.ParseInt(pg.after, 10, 64); err != nil || after < 0 {
			return 0, 0, apiError(fault.CodeInvalid, "after is not a cursor from this API")
		}
	}
	return after, pg.limit, nil
}

// seqCursor is the next cursor of a seq-keyed page: "" at the end.
func seqCursor(next int64) string {
	if next <= 0 {
		return ""
	}
	return cursor(strconv.FormatInt(next, 10))
}

// entryOut is an audit entry as the API shows it; hashes in hex.
type entryOut struct {
	Seq       int64           `json:"seq"`
	Time      time.Time       `json:"time"`
	Tenant    string          `json:"tenant"`
	ActorID   string          `json:"actor_id"`
	ActorName string          `json:"actor_name"`
	ActorIP   string          `json:"actor_ip"`
	UserAgent string          `json:"user_agent"`
	Action    string          `json:"action"`
	Object    string          `json:"object"`
	Details   json.RawMessage `json:"details"`
	PrevHash  string          `json:"prev_hash"`
	Hash      string          `json:"hash"`
}

func entryOf(e audit.Entry) entryOut {
	det := e.Details
	if len(det) == 0 {
		det = json.RawMessage("{}")
	}
	return entryOut{Seq: e.Seq, Time: e.Time.UTC(), Tenant: e.Tenant, ActorID: e.ActorID, ActorName: e.ActorName, ActorIP: e.ActorIP,
		UserAgent: e.UserAgent, Action: string(e.Action), Object: e.Object, Details: det, PrevHash: hexOf(e.PrevHash), Hash: hexOf(e.Hash)}
}

func (s *Server) auditEntries(c echo.Context) error {
	after, limit, err := seqPage(c)
	if err != nil {
		return err
	}
	pg, err := s.d.Audit.Entries(c.Request().Context(), principal(c), tenantParam(c), after, limit)
	if err != nil {
		return err
	}
	out := list[entryOut]{Items: make([]entryOut, 0, len(pg.Entries)), Next: seqCursor(pg.Next)}
	for _, e := range pg.Entries {
		out.Items = append(out.Items, entryOf(e))
	}
	return c.JSON(http.StatusOK, out)
}

type checkpointOut struct {
	Origin string `json:"origin"`
	Size   int64  `json:"size"`
	Root   string `json:"root"`
	Note   string `json:"note"`
}

func checkpointOf(cp audit.Checkpoint) checkpointOut {
	return checkpointOut{Origin: cp.Origin, Size: cp.Size, Root: hexOf(cp.Root[:]), Note: cp.Note}
}

func (s *Server) auditCheckpoint(c echo.Context) error {
	cp, err := s.d.Audit.Checkpoint(c.Request().Context(), principal(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, checkpointOf(cp))
}

func (s *Server) auditAlarm(c echo.Context) error {
	a, raised, err := s.d.Audit.Alarm(c.Request().Context(), principal(c))
	if err != nil {
		return err
	}
	out := map[string]any{"raised": raised}
	if raised {
		out["alarm"] = a
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) auditAlarmAck(c echo.Context) error {
	var in struct {
		Comment string `json:"comment"`
		// Reason is accepted as a synonym of comment (the agreed contract
		// named it so).
		Reason string `json:"reason"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	comment := in.Comment
	if comment == "" {
		comment = in.Reason
	}
	e, cp, err := s.d.Audit.AcknowledgeAlarm(c.Request().Context(), principal(c), comment, "")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"entry": entryOf(e), "checkpoint": checkpointOf(cp)})
}

type alertOut struct {
	Seq       int64           `json:"seq"`
	Time      time.Time       `json:"time"`
	Tenant    string          `json:"tenant"`
	UserID    string          `json:"user_id"`
	UserName  string          `json:"user_name"`
	Activity  string          `json:"activity"`
	Threshold int64           `json:"threshold"`
	Details   json.RawMessage `json:"details"`
	AckedBy   string          `json:"acked_by,omitempty"`
	AckedAt   string          `json:"acked_at,omitempty"`
	AckSeq    int64           `json:"ack_seq,omitempty"`
}

func (s *Server) listAlerts(c echo.Context) error {
	after, limit, err := seqPage(c)
	if err != nil {
		return err
	}
	pg, err := s.d.Audit.Alerts(c.Request().Context(), principal(c), tenantParam(c), after, limit)
	if err != nil {
		return err
	}
	out := list[alertOut]{Items: make([]alertOut, 0, len(pg.Alerts)), Next: seqCursor(pg.Next)}
	for _, a := range pg.Alerts {
		det := a.Details
		if len(det) == 0 {
			det = json.RawMessage("{}")
		}
		out.Items = append(out.Items, alertOut{Seq: a.Seq, Time: a.Time.UTC(), Tenant: a.Tenant, UserID: a.UserID, UserName: a.UserName,
			Activity: a.Activity, Threshold: a.Threshold, Details: det, AckedBy: a.AckedBy, AckedAt: a.AckedAt, AckSeq: a.AckSeq})
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) ackAlert(c echo.Context) error {
	var in struct {
		Comment string `json:"comment"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	seq, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || seq < 1 {
		return apiError(fault.CodeInvalid, "an alert id is its audit sequence number")
	}
	a, err := s.d.Audit.AckAlert(c.Request().Context(), principal(c), tenantParam(c), seq, in.Comment)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"seq": a.Seq, "acked_by": a.AckedBy, "acked_at": a.AckedAt, "ack_seq": a.AckSeq})
}

type destinationOut struct {
	ID          string `json:"id"`
	Tenant      string `json:"tenant"`
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	Address     string `json:"address"`
	Format      string `json:"format"`
	ServerName  string `json:"server_name"`
	MaxMessage  int    `json:"max_message"`
	BudgetBytes int64  `json:"budget_bytes"`
	CreatedAt   string `json:"created_at"`
}

func destinationOf(d siem.Destination) destinationOut {
	return destinationOut{ID: d.ID, Tenant: d.Tenant, Name: d.Name, Kind: d.Kind, Address: d.Address, Format: d.Format,
		ServerName: d.ServerName, MaxMessage: d.MaxMessage, BudgetBytes: d.BudgetBytes, CreatedAt: d.CreatedAt}
}

func (s *Server) listDestinations(c echo.Context) error {
	return sendPage(c, s.d.SIEM.List, destinationOf, func(d destinationOut) string { return d.Name })
}

func (s *Server) addDestination(c echo.Context) error {
	var in struct {
		Name          string `json:"name"`
		Kind          string `json:"kind"`
		Address       string `json:"address"`
		Format        string `json:"format"`
		ServerName    string `json:"server_name"`
		CAPEM         string `json:"ca_pem"`
		ClientCertPEM string `json:"client_cert_pem"`
		ClientKeyPEM  string `json:"client_key_pem"`
		HMACKey       string `json:"hmac_key"`
		MaxMessage    int    `json:"max_message"`
		BudgetBytes   int64  `json:"budget_bytes"`
		Tenant        string `json:"tenant"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	tenant := in.Tenant
	if tenant == "" {
		tenant = tenantParam(c)
	}
	nd := destinations.NewDestination{Name: in.Name, Kind: in.Kind, Address: in.Address, Format: in.Format, ServerName: in.ServerName,
		CAPEM: bytesOrNil(in.CAPEM), ClientCertPEM: bytesOrNil(in.ClientCertPEM), ClientKeyPEM: bytesOrNil(in.ClientKeyPEM),
		HMACKey: bytesOrNil(in.HMACKey), MaxMessage: in.MaxMessage, BudgetBytes: in.BudgetBytes}
	d, err := s.d.SIEM.Add(c.Request().Context(), principal(c), tenant, nd, "")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, destinationOf(d))
}

func (s *Server) removeDestination(c echo.Context) error {
	n, err := s.d.SIEM.Remove(c.Request().Context(), principal(c), tenantParam(c), c.Param("name"), "")
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"dropped_events": n})
}

func (s *Server) testDestination(c echo.Context) error {
	if err := decodeJSON(c, &struct{}{}); err != nil {
		return err
	}
	if err := s.d.SIEM.Test(c.Request().Context(), principal(c), tenantParam(c), c.Param("name")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

type siemStatusOut struct {
	destinationOut
	LastSeq      int64   `json:"last_seq"`
	DeliveredSeq int64   `json:"delivered_seq"`
	Pending      int64   `json:"pending"`
	PendingBytes int64   `json:"pending_bytes"`
	Backlog      int64   `json:"audit_backlog"`
	LagSeconds   float64 `json:"lag_seconds"`
	DeliveredAt  string  `json:"delivered_at"`
	Failures     int64   `json:"failures"`
	Consecutive  int64   `json:"consecutive_failures"`
	LastError    string  `json:"last_error"`
	LastErrorAt  string  `json:"last_error_at"`
	NextAttempt  string  `json:"next_attempt_at"`
	BudgetUsed   float64 `json:"budget_used"`
}

// siemStatusOf is a destination's delivery state as the API shows it.
func siemStatusOf(st siem.Status) siemStatusOut {
	return siemStatusOut{destinationOut: destinationOf(st.Destination), LastSeq: st.LastSeq, DeliveredSeq: st.DeliveredSeq,
		Pending: st.Pending, PendingBytes: st.PendingBytes, Backlog: st.Backlog, LagSeconds: st.Lag.Seconds(), DeliveredAt: st.DeliveredAt,
		Failures: st.Failures, Consecutive: st.Attempts, LastError: st.LastError, LastErrorAt: st.LastErrorAt, NextAttempt: st.NextAttempt, BudgetUsed: st.BudgetUsed}
}

func (s *Server) siemStatus(c echo.Context) error {
	return sendPage(c, s.d.SIEM.Status, siemStatusOf, func(d siemStatusOut) string { return d.Name })
}

func (s *Server) listScopes(c echo.Context) error {
	summary := func(sc scan.Scope) scopeOut { return scopeOf(sc, false) }
	return sendPage(c, s.d.Scopes.List, summary, func(sc scopeOut) string { return sc.ID })
}

func (s *Server) registerScope(c echo.Context) error {
	var doc json.RawMessage
	if err := decodeJSON(c, &doc); err != nil {
		return err
	}
	sc, err := s.d.Scopes.Register(c.Request().Context(), principal(c), tenantParam(c), doc)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, scopeOf(sc, true))
}

func (s *Server) getScope(c echo.Context) error {
	whole := func(sc scan.Scope) scopeOut { return scopeOf(sc, true) }
	return sendByID(c, s.d.Scopes.Get, whole)
}

// scopeOut is a registered scope; lists leave the signed document out.
type scopeOut struct {
	ID          string          `json:"id"`
	Tenant      string          `json:"tenant"`
	Name        string          `json:"name"`
	Environment string          `json:"environment"`
	SHA256      string          `json:"sha256"`
	SignerKeyID string          `json:"signer_key_id"`
	CreatedAt   string          `json:"created_at"`
	RevokedAt   string          `json:"revoked_at,omitempty"`
	Document    json.RawMessage `json:"document,omitempty"`
}

func scopeOf(sc scan.Scope, withDoc bool) scopeOut {
	out := scopeOut{ID: sc.ID, Tenant: sc.Tenant, Name: sc.Name, Environment: sc.Environment, SHA256: sc.SHA256, SignerKeyID: sc.SignerKeyID, CreatedAt: sc.CreatedAt, RevokedAt: sc.RevokedAt}
	if withDoc {
		out.Document = sc.Document
	}
	return out
}

type evidenceOut struct {
	Key         string    `json:"key"`
	VersionID   string    `json:"version_id"`
	Tenant      string    `json:"tenant"`
	SHA256      string    `json:"sha256"`
	Size        int64     `json:"size"`
	Mode        string    `json:"mode"`
	RetainUntil string    `json:"retain_until"`
	WORM        bool      `json:"worm"`
	Verified    time.Time `json:"verified"`
	AuditSeq    int64     `json:"audit_seq"`
}

func (s *Server) listEvidence(c echo.Context) error {
	if s.d.Evidence == nil {
		return unavailable("an evidence vault")
	}
	pg, err := pageOf(c)
	if err != nil {
		return err
	}
	os, err := s.d.Evidence.List(c.Request().Context(), principal(c), tenantParam(c), c.QueryParam("prefix"))
	if err != nil {
		return err
	}
	out := make([]evidenceOut, 0, len(os))
	for _, o := range os {
		out = append(out, evidenceOut{Key: o.Key, VersionID: o.VersionID, Tenant: o.Tenant, SHA256: o.SHA256, Size: o.Size, Mode: o.Mode,
			RetainUntil: o.RetainUntil, WORM: o.WORM, Verified: o.Verified.UTC(), AuditSeq: o.AuditSeq})
	}
	// Key then version: the same key may hold several versions.
	return c.JSON(http.StatusOK, paginate(out, func(o evidenceOut) string { return o.Key + "\x00" + o.VersionID }, pg))
}

type exportBody struct {
	Key       string `json:"key"`
	VersionID string `json:"version_id"`
}

// requestExport opens the dual-approval request for an evidence export:
// the approval binds to evidence.ExportCanonical of the caller's tenant,
// the caller, the key and the version, which the later export must match.
func (s *Server) requestExport(c echo.Context) error {
	if s.d.Evidence == nil {
		return unavailable("an evidence vault")
	}
	var in exportBody
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if in.Key == "" || in.VersionID == "" {
		return apiError(fault.CodeInvalid, "key and version_id are required")
	}
	p := principal(c)
	a, err := s.d.Auth.RequestApproval(c.Request().Context(), p, auth.KindEvidenceExport, evidence.ExportCanonical(p.TenantID, p.UserID, in.Key, in.VersionID))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, approvalOf(a))
}

func (s *Server) getExport(c echo.Context) error {
	a, err := s.d.Auth.GetApproval(c.Request().Context(), principal(c), c.Param("id"))
	if err != nil {
		return err
	}
	if a.Kind != auth.KindEvidenceExport {
		return apiError(fault.CodeNotFound, "no evidence export request with that id")
	}
	return c.JSON(http.StatusOK, approvalOf(a))
}

// exportURL mints the 5-minute pre-signed URL of an approved export, after
// the requester's step-up. It is a POST: it spends the approval and the
// step-up grant and writes evidence.export.
func (s *Server) exportURL(c echo.Context) error {
	if s.d.Evidence == nil {
		return unavailable("an evidence vault")
	}
	var in exportBody
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	res, err := s.d.Evidence.Export(c.Request().Context(), evidence.ExportRequest{Principal: principal(c), Tenant: tenantParam(c), Key: in.Key, VersionID: in.VersionID, RequestID: c.Param("id")})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"url": res.URL, "expires_at": res.Expires.UTC(), "key": res.Key, "version_id": res.VersionID, "sha256": res.SHA256, "approvers": res.Approvers})
}
