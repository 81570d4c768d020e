package siem

import (
	"encoding/json"
	"strings"
	"time"

	"firewalliq/audit"
)

// Event is one thing the SIEM is told about: an audit entry or a finding.
// It is what the outbox stores (as JSON), and the formatters render it at
// delivery time together with its destination sequence number.
type Event struct {
	// AuditSeq is the audit entry's seq; for a finding, the seq of the audit
	// entry of the scan that produced it (0 if none).
	AuditSeq  int64           `json:"audit_seq"`
	Time      time.Time       `json:"time"`
	Tenant    string          `json:"tenant"` // "" for appliance-wide events
	ActorID   string          `json:"actor_id,omitempty"`
	ActorName string          `json:"actor_name,omitempty"`
	ActorIP   string          `json:"actor_ip,omitempty"`
	UserAgent string          `json:"user_agent,omitempty"`
	Action    string          `json:"action"`
	Object    string          `json:"object,omitempty"`
	Details   json.RawMessage `json:"details,omitempty"`
	// Finding is set for finding events (Action "finding").
	Finding *Finding `json:"finding,omitempty"`
}

// ActionFinding is the Action of a finding event. It is not an audit action:
// findings are results, recorded by the policy engine, not state changes.
const ActionFinding = "finding"

// Finding is a policy finding as the SIEM sees it. Kind is "exposure" (a
// must-deny service was reachable), "blocked" (a must-allow service was not)
// or "drift" (changed since the baseline).
type Finding struct {
	ID       string `json:"id"`
	ScanID   string `json:"scan_id"`
	Kind     string `json:"kind"`
	Severity string `json:"severity"` // critical, high, medium, low, info
	Title    string `json:"title"`
	Rule     string `json:"rule,omitempty"`
	Target   string `json:"target"` // IP address
	Port     int    `json:"port,omitempty"`
	Protocol string `json:"protocol,omitempty"` // tcp, udp, icmp
	// Observed is what the probe saw: open, closed, filtered (DROP) or
	// rejected (RST or ICMP admin-prohibited).
	Observed string `json:"observed,omitempty"`
	// Expected is what the policy wants: allow or deny.
	Expected string `json:"expected,omitempty"`
}

// FromAudit converts a stored audit entry (as returned by audit.Log.Append)
// into an event.
func FromAudit(e audit.Entry) Event {
	return Event{
		AuditSeq:  e.Seq,
		Time:      e.Time.UTC(),
		Tenant:    e.Tenant,
		ActorID:   e.ActorID,
		ActorName: e.ActorName,
		ActorIP:   e.ActorIP,
		UserAgent: e.UserAgent,
		Action:    string(e.Action),
		Object:    e.Object,
		Details:   compactDetails(e.Details),
	}
}

// FromFinding converts a finding into an event.
func FromFinding(tenant string, auditSeq int64, at time.Time, f Finding) Event {
	return Event{AuditSeq: auditSeq, Time: at.UTC(), Tenant: tenant, Action: ActionFinding, Object: f.ID, Finding: &f}
}

// compactDetails returns details as compact JSON, or nil when it is empty or
// not a JSON object (audit.Append guarantees an object; this keeps a bad
// value from breaking the body later).
func compactDetails(d json.RawMessage) json.RawMessage {
	if len(d) == 0 {
		return nil
	}
	var obj map[string]any
	if err := json.Unmarshal(d, &obj); err != nil || obj == nil || len(obj) == 0 {
		return nil
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return nil
	}
	return b
}

// Syslog severities (RFC 5424 section 6.2.1).
const (
	sevAlert   = 1
	sevCrit    = 2
	sevErr     = 3
	sevWarning = 4
	sevNotice  = 5
	sevInfo    = 6
)

// severity is the event's syslog severity. Failures and alarms stand out so
// that a SIEM rule on severity alone catches them.
func (e Event) severity() int {
	if e.Finding != nil {
		switch e.Finding.Severity {
		case "critical":
			return sevCrit
		case "high":
			return sevErr
		case "medium":
			return sevWarning
		case "low":
			return sevNotice
		default:
			return sevInfo
		}
	}
	switch a := e.Action; {
	case a == string(audit.ActAuditTamper):
		return sevAlert
	case a == string(audit.ActAnomalyAlert):
		return sevCrit
	case a == string(audit.ActSIEMDeliveryFailed), a == string(audit.ActScanFail):
		return sevErr
	case strings.HasSuffix(a, ".failed"), a == string(audit.ActAuthLockout), a == string(audit.ActAccessDenied),
		a == string(audit.ActReviewOverdue):
		return sevWarning
	case a == string(audit.ActAuditCheckpoint), a == string(audit.ActAuthLogin), a == string(audit.ActAuthLogout),
		a == string(audit.ActScanStart), a == string(audit.ActScanComplete):
		return sevInfo
	default:
		return sevNotice
	}
}

// failed reports whether the event records a failure or a refusal.
func (e Event) failed() bool {
	a := e.Action
	return strings.HasSuffix(a, ".failed") || a == string(audit.ActAuthLockout) ||
		a == string(audit.ActAccessDenied) || a == string(audit.ActScanFail) ||
		a == string(audit.ActApprovalDeny)
}
