package siem

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"

	"firewalliq/audit"
)

// OCSFVersion is the OCSF schema version the bodies follow.
const OCSFVersion = "1.3.0"

// OCSF classes the appliance emits. docs/siem.md maps every action to one.
const (
	ClassComplianceFinding = 2003
	ClassDetectionFinding  = 2004
	ClassAccountChange     = 3001
	ClassAuthentication    = 3002
	ClassAPIActivity       = 6003
	ClassScanActivity      = 6007
)

// ocsfClass describes a class: its name and category.
type ocsfClass struct {
	name        string
	categoryUID int
	category    string
}

var ocsfClasses = map[int]ocsfClass{
	ClassComplianceFinding: {"Compliance Finding", 2, "Findings"},
	ClassDetectionFinding:  {"Detection Finding", 2, "Findings"},
	ClassAccountChange:     {"Account Change", 3, "Identity & Access Management"},
	ClassAuthentication:    {"Authentication", 3, "Identity & Access Management"},
	ClassAPIActivity:       {"API Activity", 6, "Application Activity"},
	ClassScanActivity:      {"Scan Activity", 6, "Application Activity"},
}

// ocsfMapping is where one action lands: class and activity.
type ocsfMapping struct {
	class    int
	activity int
	name     string // activity name
}

// OCSF activity ids used below (per class, from the OCSF schema).
const (
	actOther = 99
)

// mapAction returns the OCSF class and activity of an action. Actions not
// listed are API Activity "Other", so a new audit action still reaches the
// SIEM with all its fields, only less precisely classified.
func mapAction(action string) ocsfMapping {
	switch audit.Action(action) {
	case audit.ActAuthLogin, audit.ActAuthLoginFailed, audit.ActAuthLockout:
		return ocsfMapping{ClassAuthentication, 1, "Logon"}
	case audit.ActAuthLogout, audit.ActAuthSessionRevoke:
		return ocsfMapping{ClassAuthentication, 2, "Logoff"}
	case audit.ActAuthTOTPFailed, audit.ActAuthRecoveryUse, audit.ActAuthStepUp, audit.ActAuthStepUpFailed:
		return ocsfMapping{ClassAuthentication, 6, "Preauth"}
	case audit.ActAuthPasswordChange:
		return ocsfMapping{ClassAccountChange, 3, "Password Change"}
	case audit.ActAuthTOTPEnrol, audit.ActAuthTOTPConfirm:
		return ocsfMapping{ClassAccountChange, 10, "MFA Factor Enable"}
	case audit.ActScanStart:
		return ocsfMapping{ClassScanActivity, 1, "Started"}
	case audit.ActScanComplete:
		return ocsfMapping{ClassScanActivity, 2, "Completed"}
	case audit.ActScanCancel, audit.ActScanStop:
		// scan.cancel is the user's cancel, scan.stop the run's end
		// after it (packets sent until then).
		return ocsfMapping{ClassScanActivity, 3, "Cancelled"}
	case audit.ActScanFail, audit.ActScanRefuse:
		return ocsfMapping{ClassScanActivity, 6, "Error"}
	case audit.ActScanResume:
		return ocsfMapping{ClassScanActivity, 8, "Resumed"}
	case audit.ActAuditTamper, audit.ActAnomalyAlert, audit.ActReviewOverdue, audit.ActSensorSilent:
		return ocsfMapping{ClassDetectionFinding, 1, "Create"}
	case audit.ActAuditTamperAck:
		return ocsfMapping{ClassDetectionFinding, 2, "Update"}
	}
	if action == ActionFinding {
		return ocsfMapping{ClassComplianceFinding, 1, "Create"}
	}
	switch {
	case strings.HasSuffix(action, ".create"), strings.HasSuffix(action, ".request"),
		strings.HasSuffix(action, ".register"), strings.HasSuffix(action, ".sign"),
		strings.HasSuffix(action, ".upload"), strings.HasSuffix(action, ".open"),
		action == string(audit.ActApplianceInit):
		return ocsfMapping{ClassAPIActivity, 1, "Create"}
	case action == string(audit.ActEvidenceExport):
		return ocsfMapping{ClassAPIActivity, 2, "Read"}
	case strings.HasSuffix(action, ".update"), strings.HasSuffix(action, ".change"),
		strings.HasSuffix(action, ".approve"), strings.HasSuffix(action, ".grant"),
		strings.HasSuffix(action, ".deny"), strings.HasSuffix(action, ".complete"),
		strings.HasSuffix(action, ".disable"), strings.HasSuffix(action, ".anchor"):
		return ocsfMapping{ClassAPIActivity, 3, "Update"}
	case strings.HasSuffix(action, ".delete"), strings.HasSuffix(action, ".revoke"),
		strings.HasSuffix(action, ".void"), strings.HasSuffix(action, ".close"):
		return ocsfMapping{ClassAPIActivity, 4, "Delete"}
	}
	return ocsfMapping{ClassAPIActivity, actOther, "Other"}
}

// ocsfSeverity maps a syslog severity to OCSF severity_id and name.
func ocsfSeverity(sev int) (int, string) {
	switch sev {
	case sevAlert:
		return 5, "Critical"
	case sevCrit:
		return 4, "High"
	case sevErr, sevWarning:
		return 3, "Medium"
	case sevNotice:
		return 2, "Low"
	default:
		return 1, "Informational"
	}
}

// findingSeverity maps a finding's own severity one to one onto OCSF's.
func findingSeverity(s string) (int, string) {
	switch s {
	case "critical":
		return 5, "Critical"
	case "high":
		return 4, "High"
	case "medium":
		return 3, "Medium"
	case "low":
		return 2, "Low"
	default:
		return 1, "Informational"
	}
}

// Meta is what every body carries besides the event: who sent it and its
// place in the destination's sequence.
type Meta struct {
	ApplianceID string
	Hostname    string
	Version     string // product version
	Seq         int64  // per-destination sequence number
}

// OCSF renders e as one line of OCSF JSON. The output never contains a raw
// control character (encoding/json escapes them), so it is safe inside a
// syslog frame and a webhook body alike.
func OCSF(e Event, m Meta) []byte {
	mp := mapAction(e.Action)
	cls := ocsfClasses[mp.class]
	sevID, sevName := ocsfSeverity(e.severity())
	if e.Finding != nil {
		sevID, sevName = findingSeverity(e.Finding.Severity)
	}
	logName := "audit"
	if e.Finding != nil {
		logName = "findings"
	}
	obj := map[string]any{
		"class_uid":     mp.class,
		"class_name":    cls.name,
		"category_uid":  cls.categoryUID,
		"category_name": cls.category,
		"activity_id":   mp.activity,
		"activity_name": mp.name,
		"type_uid":      mp.class*100 + mp.activity,
		"type_name":     cls.name + ": " + mp.name,
		"severity_id":   sevID,
		"severity":      sevName,
		"time":          e.Time.UnixMilli(),
		"message":       e.Action,
		"metadata": map[string]any{
			"version":       OCSFVersion,
			"uid":           eventUID(m.ApplianceID, e),
			"sequence":      m.Seq,
			"tenant_uid":    e.Tenant,
			"log_name":      logName,
			"original_time": e.Time.Format(timeLayout),
			"product": map[string]any{
				"name":        "FirewallIQ Secure",
				"vendor_name": "FirewallIQ",
				"version":     m.Version,
				"uid":         m.ApplianceID,
			},
		},
		"device":   map[string]any{"uid": m.ApplianceID, "hostname": m.Hostname},
		"unmapped": unmapped(e),
	}
	if mp.class != ClassComplianceFinding && mp.class != ClassDetectionFinding {
		if e.failed() {
			obj["status_id"], obj["status"] = 2, "Failure"
		} else {
			obj["status_id"], obj["status"] = 1, "Success"
		}
	}
	if e.ActorID != "" || e.ActorName != "" {
		user := map[string]any{}
		if e.ActorID != "" {
			user["uid"] = e.ActorID
		}
		if e.ActorName != "" {
			user["name"] = e.ActorName
		}
		obj["actor"] = map[string]any{"user": user}
		if mp.class == ClassAuthentication || mp.class == ClassAccountChange {
			obj["user"] = user
		}
	}
	if ip, err := netip.ParseAddr(e.ActorIP); err == nil {
		obj["src_endpoint"] = map[string]any{"ip": ip.String()}
	}
	if e.UserAgent != "" {
		obj["http_request"] = map[string]any{"user_agent": e.UserAgent}
	}
	switch mp.class {
	case ClassAPIActivity:
		obj["api"] = map[string]any{"operation": e.Action}
		if e.Object != "" {
			obj["resources"] = []any{map[string]any{"uid": e.Object}}
		}
	case ClassScanActivity:
		scan := map[string]any{"uid": e.Object, "type": "Network Reachability"}
		obj["scan"] = scan
		if n, ok := detailsInt(e.Details, "findings"); ok {
			obj["num_detections"] = n
		}
	case ClassDetectionFinding:
		obj["finding_info"] = map[string]any{
			"uid":   eventUID(m.ApplianceID, e),
			"title": e.Action,
			"types": []string{e.Action},
		}
		if e.Object != "" {
			obj["resources"] = []any{map[string]any{"uid": e.Object}}
		}
	case ClassComplianceFinding:
		f := e.Finding
		if f == nil {
			f = &Finding{}
		}
		obj["finding_info"] = map[string]any{"uid": f.ID, "title": f.Title, "types": []string{f.Kind}}
		obj["compliance"] = map[string]any{
			"control":   f.Rule,
			"status_id": 3, "status": "Fail",
			"standards": []string{"PCI DSS 11.4.5"},
		}
		res := map[string]any{"ip": f.Target, "type": "Network Service"}
		if f.Port != 0 {
			res["port"] = f.Port
		}
		obj["resources"] = []any{res}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// HTML escaping would turn <, > and & in banners into \u003c: valid
	// JSON but needlessly hard to read in a SIEM.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(obj); err != nil {
		// Every value above is a string, number, map or slice of those, or
		// already-validated JSON (details); Encode cannot fail on them.
		panic("siem: encode OCSF: " + err.Error())
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// unmapped carries the appliance's own fields verbatim, so nothing of the
// audit entry is lost in the mapping.
func unmapped(e Event) map[string]any {
	u := map[string]any{"action": e.Action, "audit_seq": e.AuditSeq}
	if e.Object != "" {
		u["object"] = e.Object
	}
	if len(e.Details) > 0 {
		u["details"] = e.Details
	}
	if e.Finding != nil {
		u["finding"] = e.Finding
	}
	return u
}

// eventUID identifies the event across destinations: appliance and audit
// seq (plus the finding id for findings, which share their scan's seq).
func eventUID(appliance string, e Event) string {
	uid := appliance + ":" + itoa(e.AuditSeq)
	if e.Finding != nil {
		uid += ":" + e.Finding.ID
	}
	return uid
}

// detailsInt reads an integer field of a details object.
func detailsInt(d json.RawMessage, key string) (int64, bool) {
	if len(d) == 0 {
		return 0, false
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(d, &obj) != nil {
		return 0, false
	}
	var n int64
	if json.Unmarshal(obj[key], &n) != nil {
		return 0, false
	}
	return n, true
}
