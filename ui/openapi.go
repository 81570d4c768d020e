package ui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/labstack/echo/v4"
)

// The OpenAPI 3.1 document of the API is built here from one table of
// operations (apiOps) and a set of schemas, then served as
// /api/v1/openapi.json. Route tests validate every answer against it, and
// TestOpenAPICoversRoutes checks that it lists exactly the registered
// routes, so the document cannot drift from the server.

// pathParam matches an OpenAPI path parameter, {name}.
var pathParam = regexp.MustCompile(`\{([a-z]+)\}`)

// apiOp documents one route.
type apiOp struct {
	method, path string // path in OpenAPI form: /api/v1/users/{id}/role
	id, summary  string
	tag          string
	// auth: "none", "session" (cookie+CSRF or bearer token), "metrics"
	// (loopback or an admin/auditor token).
	auth string
	// stepUp notes that the operation answers step_up_required first.
	stepUp bool
	// query parameters beyond limit/after (list says whether it pages).
	list   bool
	query  []string
	body   string // request schema name, "" for none
	status int    // success status
	resp   string // response schema name ("" for no content; "raw" for non-JSON)
	errors []int  // error statuses beyond the common ones
}

func apiOps() []apiOp {
	return []apiOp{
		{method: "GET", path: "/healthz", id: "healthz", summary: "Process is up", tag: "health", auth: "none", status: 200, resp: "Health"},
		{method: "GET", path: "/readyz", id: "readyz", summary: "Ready: store open, audit verified without a tamper alarm, vault usable (503 otherwise)", tag: "health", auth: "none", status: 200, resp: "Ready", errors: []int{503}},
		{method: "GET", path: "/metrics", id: "metrics", summary: "Prometheus metrics (loopback, or an API token of a role that may read the audit log)", tag: "health", auth: "metrics", status: 200, resp: "raw"},
		{method: "GET", path: "/api/v1/openapi.json", id: "openapi", summary: "This document", tag: "meta", auth: "none", status: 200, resp: "raw"},
		{method: "GET", path: "/api/v1/version", id: "version", summary: "Build information", tag: "meta", auth: "none", status: 200, resp: "Version"},

		{method: "POST", path: "/api/v1/auth/login", id: "login", summary: "Check name and password; next stage is password (TOTP) or enrol", tag: "auth", auth: "none", body: "LoginRequest", status: 200, resp: "Login"},
		{method: "POST", path: "/api/v1/auth/totp", id: "loginTOTP", summary: "Complete a login with a TOTP code (pending session cookie)", tag: "auth", auth: "none", body: "Code", status: 200, resp: "Login"},
		{method: "POST", path: "/api/v1/auth/recovery", id: "loginRecovery", summary: "Complete a login with a recovery code (pending session cookie)", tag: "auth", auth: "none", body: "Code", status: 200, resp: "Login"},
		{method: "POST", path: "/api/v1/auth/enrol", id: "enrol", summary: "Start TOTP enrolment: the secret, its otpauth URI and a QR code PNG", tag: "auth", auth: "none", body: "Empty", status: 200, resp: "Enrolment"},
		{method: "POST", path: "/api/v1/auth/enrol/confirm", id: "enrolConfirm", summary: "Confirm enrolment with the first code; returns the session and recovery codes", tag: "auth", auth: "none", body: "Code", status: 200, resp: "Login"},
		{method: "POST", path: "/api/v1/auth/password", id: "changePassword", summary: "Change one's password; ends every session and returns a new one", tag: "auth", auth: "session", body: "PasswordChange", status: 200, resp: "Login"},
		{method: "POST", path: "/api/v1/auth/step-up", id: "stepUp", summary: "Answer a step_up_required challenge with a fresh TOTP code", tag: "auth", auth: "session", body: "StepUpRequest", status: 200, resp: "StepUpGrant"},
		{method: "POST", path: "/api/v1/auth/logout", id: "logout", summary: "End this session", tag: "auth", auth: "session", status: 204},
		{method: "POST", path: "/api/v1/auth/logout-all", id: "logoutAll", summary: "End every session of this user", tag: "auth", auth: "session", status: 204},
		{method: "GET", path: "/api/v1/auth/sessions", id: "sessions", summary: "One's own sessions", tag: "auth", auth: "session", list: true, status: 200, resp: "SessionList"},
		{method: "GET", path: "/api/v1/auth/whoami", id: "whoami", summary: "The authenticated principal", tag: "auth", auth: "session", status: 200, resp: "Principal"},
		{method: "POST", path: "/api/v1/auth/recovery-codes", id: "recoveryCodes", summary: "Replace one's recovery codes", tag: "auth", auth: "session", stepUp: true, status: 200, resp: "RecoveryCodes"},
		{method: "POST", path: "/api/v1/auth/key/begin", id: "keyLoginBegin", summary: "Begin a login with a security key (pending session cookie): options for navigator.credentials.get()", tag: "auth", auth: "none", body: "Empty", status: 200, resp: "KeyCeremony"},
		{method: "POST", path: "/api/v1/auth/key", id: "keyLogin", summary: "Complete a login with the security key's assertion (pending session cookie)", tag: "auth", auth: "none", body: "KeyAnswer", status: 200, resp: "Login"},
		{method: "POST", path: "/api/v1/auth/step-up/key/begin", id: "keyStepUpBegin", summary: "Begin a step-up with a security key for a step_up challenge", tag: "auth", auth: "session", body: "StepUpTarget", status: 200, resp: "KeyCeremony"},
		{method: "POST", path: "/api/v1/auth/step-up/key", id: "keyStepUp", summary: "Answer a step_up challenge with the security key's assertion", tag: "auth", auth: "session", body: "KeyStepUp", status: 200, resp: "StepUpGrant"},
		{method: "GET", path: "/api/v1/auth/keys", id: "listKeys", summary: "One's own security keys (name, last use, clone warning)", tag: "auth", auth: "session", list: true, status: 200, resp: "SecurityKeyList"},
		{method: "POST", path: "/api/v1/auth/keys", id: "keyRegisterBegin", summary: "Begin registering a security key (browser session): options for navigator.credentials.create()", tag: "auth", auth: "session", stepUp: true, body: "KeyRegister", status: 200, resp: "KeyCeremony"},
		{method: "POST", path: "/api/v1/auth/keys/finish", id: "keyRegisterFinish", summary: "Finish registering a security key with the authenticator's attestation", tag: "auth", auth: "session", body: "KeyAnswer", status: 201, resp: "SecurityKey"},
		{method: "DELETE", path: "/api/v1/auth/keys/{id}", id: "removeKey", summary: "Remove one of one's own security keys", tag: "auth", auth: "session", stepUp: true, status: 204},
		{method: "GET", path: "/api/v1/auth/key-policy", id: "keyPolicy", summary: "Which roles must use security keys (appliance admins)", tag: "auth", auth: "session", status: 200, resp: "KeyPolicy"},
		{method: "POST", path: "/api/v1/auth/key-policy", id: "setKeyPolicy", summary: "Require security keys instead of TOTP for appliance admins or security leads (appliance admins)", tag: "auth", auth: "session", stepUp: true, body: "KeyPolicy", status: 200, resp: "KeyPolicy"},

		{method: "GET", path: "/api/v1/tenants", id: "listTenants", summary: "List tenants (appliance admins)", tag: "tenants", auth: "session", list: true, status: 200, resp: "TenantList"},
		{method: "POST", path: "/api/v1/tenants", id: "createTenant", summary: "Create a tenant (appliance admins)", tag: "tenants", auth: "session", stepUp: true, body: "TenantCreate", status: 201, resp: "Tenant", errors: []int{409}},

		{method: "GET", path: "/api/v1/users", id: "listUsers", summary: "List a tenant's users", tag: "users", auth: "session", list: true, query: []string{"tenant"}, status: 200, resp: "UserList"},
		{method: "POST", path: "/api/v1/users", id: "createUser", summary: "Create a user; the one-time password is shown once", tag: "users", auth: "session", stepUp: true, query: []string{"tenant"}, body: "UserCreate", status: 201, resp: "User", errors: []int{409}},
		{method: "POST", path: "/api/v1/users/{id}/role", id: "setRole", summary: "Change a user's role (ends their sessions)", tag: "users", auth: "session", stepUp: true, query: []string{"tenant"}, body: "RoleChange", status: 204},
		{method: "POST", path: "/api/v1/users/{id}/disable", id: "disableUser", summary: "Disable a user (ends their sessions)", tag: "users", auth: "session", stepUp: true, query: []string{"tenant"}, body: "Empty", status: 204},
		{method: "POST", path: "/api/v1/users/{id}/reset-totp", id: "resetTOTP", summary: "Reset a user's TOTP (lost device)", tag: "users", auth: "session", stepUp: true, query: []string{"tenant"}, body: "Empty", status: 204},

		{method: "GET", path: "/api/v1/tokens", id: "listTokens", summary: "List API tokens (admins: the tenant's; others: their own)", tag: "tokens", auth: "session", list: true, status: 200, resp: "TokenList"},
		{method: "POST", path: "/api/v1/tokens", id: "createToken", summary: "Create an API token; the secret is shown once", tag: "tokens", auth: "session", stepUp: true, body: "TokenCreate", status: 201, resp: "Token"},
		{method: "DELETE", path: "/api/v1/tokens/{id}", id: "revokeToken", summary: "Revoke an API token", tag: "tokens", auth: "session", status: 204},

		{method: "GET", path: "/api/v1/support", id: "listSupport", summary: "List support tickets", tag: "support", auth: "session", list: true, status: 200, resp: "TicketList"},
		{method: "POST", path: "/api/v1/support", id: "openSupport", summary: "Open a support ticket for one support user, this tenant only", tag: "support", auth: "session", stepUp: true, body: "TicketOpen", status: 201, resp: "Ticket"},
		{method: "POST", path: "/api/v1/support/{id}/close", id: "closeSupport", summary: "Close a support ticket early", tag: "support", auth: "session", body: "Empty", status: 204},

		{method: "GET", path: "/api/v1/approvals", id: "listApprovals", summary: "List dual-approval requests", tag: "approvals", auth: "session", list: true, query: []string{"status"}, status: 200, resp: "ApprovalList"},
		{method: "GET", path: "/api/v1/approvals/{id}", id: "getApproval", summary: "One approval request with its grants", tag: "approvals", auth: "session", status: 200, resp: "Approval"},
		{method: "POST", path: "/api/v1/approvals/{id}/approve", id: "approve", summary: "Approve another person's request", tag: "approvals", auth: "session", stepUp: true, body: "Empty", status: 200, resp: "Approval", errors: []int{409}},
		{method: "POST", path: "/api/v1/approvals/{id}/deny", id: "deny", summary: "Deny another person's pending request", tag: "approvals", auth: "session", stepUp: true, body: "Reason", status: 204, errors: []int{409}},
		{method: "POST", path: "/api/v1/approvals/{id}/void", id: "voidApproval", summary: "Withdraw a request", tag: "approvals", auth: "session", body: "Reason", status: 204, errors: []int{409}},

		{method: "GET", path: "/api/v1/alerts", id: "listAlerts", summary: "Anomaly alerts with their acknowledgements (keyed by audit seq)", tag: "alerts", auth: "session", list: true, query: []string{"tenant"}, status: 200, resp: "AlertList"},
		{method: "POST", path: "/api/v1/alerts/{id}/ack", id: "ackAlert", summary: "Acknowledge an anomaly alert (id: its audit seq)", tag: "alerts", auth: "session", query: []string{"tenant"}, body: "Comment", status: 200, resp: "AlertAck", errors: []int{409}},

		{method: "GET", path: "/api/v1/siem/destinations", id: "listDestinations", summary: "SIEM destinations (no secrets)", tag: "siem", auth: "session", list: true, query: []string{"tenant"}, status: 200, resp: "DestinationList"},
		{method: "POST", path: "/api/v1/siem/destinations", id: "addDestination", summary: "Add a SIEM destination", tag: "siem", auth: "session", stepUp: true, query: []string{"tenant"}, body: "DestinationCreate", status: 201, resp: "Destination", errors: []int{409}},
		{method: "DELETE", path: "/api/v1/siem/destinations/{name}", id: "removeDestination", summary: "Remove a SIEM destination (its undelivered events are dropped and counted)", tag: "siem", auth: "session", stepUp: true, query: []string{"tenant"}, status: 200, resp: "Removed"},
		{method: "POST", path: "/api/v1/siem/destinations/{name}/test", id: "testDestination", summary: "Send one test message", tag: "siem", auth: "session", query: []string{"tenant"}, body: "Empty", status: 204, errors: []int{502, 503}},
		{method: "GET", path: "/api/v1/siem/status", id: "siemStatus", summary: "Delivery state per destination", tag: "siem", auth: "session", list: true, query: []string{"tenant"}, status: 200, resp: "SIEMStatusList"},

		{method: "GET", path: "/api/v1/audit/entries", id: "auditEntries", summary: "Audit log entries, oldest first (keyed by seq)", tag: "audit", auth: "session", list: true, query: []string{"tenant"}, status: 200, resp: "EntryList"},
		{method: "GET", path: "/api/v1/audit/checkpoint", id: "auditCheckpoint", summary: "The latest signed checkpoint", tag: "audit", auth: "session", status: 200, resp: "Checkpoint", errors: []int{404}},
		{method: "GET", path: "/api/v1/audit/alarm", id: "auditAlarm", summary: "The raised tamper alarm, if any", tag: "audit", auth: "session", status: 200, resp: "AlarmState"},
		{method: "POST", path: "/api/v1/audit/alarm/ack", id: "auditAlarmAck", summary: "Acknowledge the tamper alarm (appliance admins)", tag: "audit", auth: "session", stepUp: true, body: "AlarmAck", status: 200, resp: "AlarmAckResult", errors: []int{409}},

		{method: "POST", path: "/api/v1/sensors/enroll", id: "enrollSensor", summary: "A sensor host's enrolment with a one-time token (the token is the credential; rate limited per address)", tag: "sensors", auth: "none", body: "SensorEnrollRequest", status: 200, resp: "SensorEnrollment", errors: []int{401, 409, 503}},
		{method: "POST", path: "/api/v1/sensors/tokens", id: "createSensorToken", summary: "Create a one-time sensor enrolment token (admins); the secret is shown once", tag: "sensors", auth: "session", stepUp: true, query: []string{"tenant"}, body: "SensorTokenCreate", status: 201, resp: "SensorToken", errors: []int{409, 503}},
		{method: "GET", path: "/api/v1/sensors", id: "listSensors", summary: "The tenant's sensors with their state", tag: "sensors", auth: "session", list: true, query: []string{"tenant"}, status: 200, resp: "SensorList", errors: []int{503}},
		{method: "GET", path: "/api/v1/sensors/{id}", id: "getSensor", summary: "One sensor with its state", tag: "sensors", auth: "session", query: []string{"tenant"}, status: 200, resp: "Sensor", errors: []int{503}},
		{method: "POST", path: "/api/v1/sensors/{id}/revoke", id: "revokeSensor", summary: "Revoke a sensor: its connections close and its credentials are refused", tag: "sensors", auth: "session", stepUp: true, query: []string{"tenant"}, status: 200, resp: "Sensor", errors: []int{409, 503}},
		{method: "GET", path: "/api/v1/scopes", id: "listScopes", summary: "Registered scopes (without their documents)", tag: "scopes", auth: "session", list: true, query: []string{"tenant"}, status: 200, resp: "ScopeList"},
		{method: "POST", path: "/api/v1/scopes", id: "registerScope", summary: "Register a signed scope document (the body is the signed envelope)", tag: "scopes", auth: "session", query: []string{"tenant"}, body: "SignedScope", status: 201, resp: "Scope", errors: []int{409, 422}},
		{method: "GET", path: "/api/v1/scopes/{id}", id: "getScope", summary: "One scope with its signed document", tag: "scopes", auth: "session", query: []string{"tenant"}, status: 200, resp: "Scope"},

		{method: "POST", path: "/api/v1/scopes/{id}/revoke", id: "revokeScope", summary: "Revoke a scope: no new scan runs under it, its pending approvals are voided", tag: "scopes", auth: "session", stepUp: true, query: []string{"tenant"}, body: "Reason", status: 200, resp: "Scope", errors: []int{409}},

		{method: "GET", path: "/api/v1/scope-keys", id: "listScopeKeys", summary: "The tenant's scope-signing keys", tag: "scope-keys", auth: "session", list: true, query: []string{"tenant"}, status: 200, resp: "SigningKeyList"},
		{method: "POST", path: "/api/v1/scope-keys", id: "addScopeKey", summary: "Register one's own scope-signing public key (security leads)", tag: "scope-keys", auth: "session", stepUp: true, query: []string{"tenant"}, body: "KeyAdd", status: 201, resp: "SigningKey", errors: []int{409}},
		{method: "POST", path: "/api/v1/scope-keys/generate", id: "generateScopeKey", summary: "Have the appliance generate a scope-signing key it holds sealed", tag: "scope-keys", auth: "session", stepUp: true, query: []string{"tenant"}, body: "KeyGenerate", status: 201, resp: "SigningKey", errors: []int{409}},
		{method: "DELETE", path: "/api/v1/scope-keys/{id}", id: "revokeScopeKey", summary: "Revoke a scope-signing key: its scopes run no new scan, their pending approvals are voided", tag: "scope-keys", auth: "session", stepUp: true, query: []string{"tenant"}, body: "Reason", status: 200, resp: "SigningKey", errors: []int{409}},
		{method: "POST", path: "/api/v1/scope-keys/{id}/sign", id: "signScope", summary: "Sign a scope document with one's appliance-held key; answers the signed envelope", tag: "scope-keys", auth: "session", stepUp: true, query: []string{"tenant"}, body: "ScopeDocument", status: 200, resp: "SignedScope", errors: []int{409, 422}},

		{method: "GET", path: "/api/v1/scans", id: "listScans", summary: "Scans, newest first", tag: "scans", auth: "session", list: true, query: []string{"tenant", "state"}, status: 200, resp: "ScanList"},
		{method: "POST", path: "/api/v1/scans", id: "requestScan", summary: "Request a scan of a registered scope (non-production: step-up, and it is queued; production: pending dual approval)", tag: "scans", auth: "session", stepUp: true, query: []string{"tenant"}, body: "ScanRequest", status: 201, resp: "Scan", errors: []int{404, 409, 422, 423}},
		{method: "GET", path: "/api/v1/scans/{id}", id: "getScan", summary: "One scan with its job", tag: "scans", auth: "session", query: []string{"tenant"}, status: 200, resp: "Scan"},
		{method: "POST", path: "/api/v1/scans/{id}/approve", id: "approveScan", summary: "Approve another person's production scan request", tag: "scans", auth: "session", stepUp: true, query: []string{"tenant"}, body: "Empty", status: 200, resp: "Scan", errors: []int{409, 423}},
		{method: "POST", path: "/api/v1/scans/{id}/deny", id: "denyScan", summary: "Deny another person's pending production scan request", tag: "scans", auth: "session", stepUp: true, query: []string{"tenant"}, body: "Reason", status: 200, resp: "Scan", errors: []int{409}},
		{method: "POST", path: "/api/v1/scans/{id}/start", id: "startScan", summary: "Start one's approved production scan", tag: "scans", auth: "session", stepUp: true, query: []string{"tenant"}, body: "Empty", status: 200, resp: "Scan", errors: []int{409, 422, 423}},
		{method: "POST", path: "/api/v1/scans/{id}/cancel", id: "cancelScan", summary: "Cancel a scan that has not ended", tag: "scans", auth: "session", query: []string{"tenant"}, body: "Reason", status: 200, resp: "Scan", errors: []int{409}},
		{method: "GET", path: "/api/v1/scans/{id}/results", id: "scanResults", summary: "A scan's results (filters: state, port, host, probe)", tag: "scans", auth: "session", list: true, query: []string{"tenant", "state", "port", "host", "probe"}, status: 200, resp: "ResultList"},
		{method: "GET", path: "/api/v1/scans/{id}/export", id: "exportScan", summary: "A completed scan's results as Nmap XML (?format=nmap-xml, the default; Debian's ndiff reads it) or JSON Lines (?format=jsonl): a copy for other tools, not evidence", tag: "scans", auth: "session", query: []string{"tenant", "format"}, status: 200, resp: "file", errors: []int{400, 409, 503}},
		{method: "GET", path: "/api/v1/scans/{id}/events", id: "scanEvents", summary: "Live progress as Server-Sent Events (event: progress, data: a Progress object); the stream ends after the scan's final state", tag: "scans", auth: "session", query: []string{"tenant"}, status: 200, resp: "events"},

		{method: "GET", path: "/api/v1/scan-schedules", id: "listSchedules", summary: "Scan schedules", tag: "scans", auth: "session", list: true, query: []string{"tenant"}, status: 200, resp: "ScheduleList"},
		{method: "POST", path: "/api/v1/scan-schedules", id: "createSchedule", summary: "Propose a scan schedule (@every D or 5-field UTC cron); pending until two approvers approve", tag: "scans", auth: "session", query: []string{"tenant"}, body: "ScheduleRequest", status: 201, resp: "Schedule", errors: []int{404, 409, 422, 423}},
		{method: "GET", path: "/api/v1/scan-schedules/{id}", id: "getSchedule", summary: "One scan schedule", tag: "scans", auth: "session", query: []string{"tenant"}, status: 200, resp: "Schedule"},
		{method: "POST", path: "/api/v1/scan-schedules/{id}/approve", id: "approveSchedule", summary: "Approve another person's schedule (the standing approval, at most 90 days)", tag: "scans", auth: "session", stepUp: true, query: []string{"tenant"}, body: "Empty", status: 200, resp: "Schedule", errors: []int{409, 423}},
		{method: "POST", path: "/api/v1/scan-schedules/{id}/edit", id: "editSchedule", summary: "Change a schedule: voids it and answers its pending replacement", tag: "scans", auth: "session", query: []string{"tenant"}, body: "ScheduleRequest", status: 201, resp: "Schedule", errors: []int{409, 422, 423}},
		{method: "POST", path: "/api/v1/scan-schedules/{id}/void", id: "voidSchedule", summary: "Void a schedule", tag: "scans", auth: "session", query: []string{"tenant"}, body: "Reason", status: 200, resp: "Schedule", errors: []int{409}},

		{method: "GET", path: "/api/v1/evidence", id: "listEvidence", summary: "Recorded evidence objects", tag: "evidence", auth: "session", list: true, query: []string{"tenant", "prefix"}, status: 200, resp: "EvidenceList", errors: []int{503}},
		{method: "POST", path: "/api/v1/evidence/exports", id: "requestExport", summary: "Ask for an evidence export: opens its dual-approval request", tag: "evidence", auth: "session", body: "ExportRequest", status: 201, resp: "Approval", errors: []int{503}},
		{method: "GET", path: "/api/v1/evidence/exports/{id}", id: "getExport", summary: "An export request with its approvals", tag: "evidence", auth: "session", status: 200, resp: "Approval"},
		{method: "POST", path: "/api/v1/evidence/exports/{id}/url", id: "exportURL", summary: "Mint the 5-minute pre-signed URL of an approved export (once)", tag: "evidence", auth: "session", stepUp: true, query: []string{"tenant"}, body: "ExportRequest", status: 200, resp: "ExportURL", errors: []int{409, 423, 503}},

		{method: "GET", path: "/api/v1/policies", id: "listPolicies", summary: "The newest version of each expected policy", tag: "policies", auth: "session", list: true, query: []string{"tenant"}, status: 200, resp: "PolicyList", errors: []int{503}},
		{method: "POST", path: "/api/v1/policies", id: "createPolicy", summary: "Store a policy document (YAML or JSON) as the next version of the policy it names", tag: "policies", auth: "session", query: []string{"tenant"}, body: "PolicyCreate", status: 201, resp: "Policy", errors: []int{422, 503}},
		{method: "GET", path: "/api/v1/policies/{name}", id: "getPolicy", summary: "One version of a policy (?version=, default the newest) with its document", tag: "policies", auth: "session", query: []string{"tenant", "version"}, status: 200, resp: "Policy", errors: []int{503}},
		{method: "POST", path: "/api/v1/policies/{name}/dry-run", id: "dryRunPolicy", summary: "Which rules cover which targets of a registered scope; rules that never match or are shadowed", tag: "policies", auth: "session", query: []string{"tenant"}, body: "PolicyScan", status: 200, resp: "DryRun", errors: []int{503}},
		{method: "POST", path: "/api/v1/policies/{name}/evaluate", id: "evaluatePolicy", summary: "Judge a completed scan (or an imported Nmap XML document, unsigned) against the policy and its baseline; findings go to the SIEM", tag: "policies", auth: "session", query: []string{"tenant"}, body: "PolicyScan", status: 200, resp: "Evaluation", errors: []int{409, 503}},
		{method: "POST", path: "/api/v1/policies/{name}/baseline", id: "acceptBaseline", summary: "Accept a completed scan's results as the drift baseline of its scope and the policy", tag: "policies", auth: "session", stepUp: true, query: []string{"tenant"}, body: "PolicyScan", status: 201, resp: "Baseline", errors: []int{409, 503}},

		{method: "GET", path: "/api/v1/reports", id: "listReports", summary: "Signed compliance reports, newest first", tag: "reports", auth: "session", list: true, query: []string{"tenant"}, status: 200, resp: "ReportList", errors: []int{503}},
		{method: "POST", path: "/api/v1/reports", id: "createReport", summary: "Build, sign and store (as evidence) the compliance report of a completed scan against a policy, or of several scans (parts) in one combined report", tag: "reports", auth: "session", query: []string{"tenant"}, body: "ReportCreate", status: 201, resp: "ReportCreated", errors: []int{404, 409, 503}},
		{method: "GET", path: "/api/v1/reports/{id}", id: "getReport", summary: "One report, as its report.sign audit entry recorded it", tag: "reports", auth: "session", query: []string{"tenant"}, status: 200, resp: "Report", errors: []int{503}},
		{method: "GET", path: "/api/v1/reports/{id}/download", id: "downloadReport", summary: "The signed report.json (?format=json), or its HTML or PDF rendering", tag: "reports", auth: "session", query: []string{"tenant", "format"}, status: 200, resp: "file", errors: []int{422, 503}},

		{method: "GET", path: "/api/v1/reviews", id: "listReviews", summary: "Access reviews (appliance admins without ?tenant=: the appliance-admin review)", tag: "reviews", auth: "session", list: true, query: []string{"tenant"}, status: 200, resp: "ReviewList", errors: []int{503}},
		{method: "POST", path: "/api/v1/reviews", id: "startReview", summary: "Start an access review: a snapshot of users, roles, MFA, tokens, tickets and flags", tag: "reviews", auth: "session", query: []string{"tenant"}, body: "Empty", status: 201, resp: "Review", errors: []int{409, 503}},
		{method: "GET", path: "/api/v1/reviews/due", id: "reviewDue", summary: "When the next access review is due", tag: "reviews", auth: "session", query: []string{"tenant"}, status: 200, resp: "ReviewDue", errors: []int{503}},
		{method: "GET", path: "/api/v1/reviews/{id}", id: "getReview", summary: "One access review with its lines and decisions", tag: "reviews", auth: "session", query: []string{"tenant"}, status: 200, resp: "Review", errors: []int{503}},
		{method: "POST", path: "/api/v1/reviews/{id}/decide", id: "decideReview", summary: "Mark lines keep or revoke (revocations take effect at signing)", tag: "reviews", auth: "session", query: []string{"tenant"}, body: "ReviewDecisions", status: 200, resp: "Review", errors: []int{409, 503}},
		{method: "POST", path: "/api/v1/reviews/{id}/sign", id: "signReview", summary: "Sign the review: revocations apply, the signed document is stored", tag: "reviews", auth: "session", stepUp: true, query: []string{"tenant"}, body: "Empty", status: 200, resp: "ReviewSigned", errors: []int{409, 503}},
		{method: "GET", path: "/api/v1/reviews/{id}/download", id: "downloadReview", summary: "The signed review.json (?format=json), or its HTML or PDF rendering", tag: "reviews", auth: "session", query: []string{"tenant", "format"}, status: 200, resp: "file", errors: []int{409, 503}},
	}
}

// obj is a JSON Schema object with the given required properties and no
// others (additionalProperties false: an answer with an undocumented field
// fails the route tests).
func obj(required []string, props map[string]any) map[string]any {
	if required == nil {
		required = []string{}
	}
	return map[string]any{"type": "object", "required": required, "properties": props, "additionalProperties": false}
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

// Scalar schemas, fresh maps each time (no shared mutable values).
func str() map[string]any     { return map[string]any{"type": "string"} }
func boolean() map[string]any { return map[string]any{"type": "boolean"} }
func integer() map[string]any { return map[string]any{"type": "integer"} }
func number() map[string]any  { return map[string]any{"type": "number"} }
func when() map[string]any    { return map[string]any{"type": "string", "format": "date-time"} }

func arrayOf(s any) map[string]any { return map[string]any{"type": "array", "items": s} }

func listOf(item string) map[string]any {
	return obj([]string{"items", "next"}, map[string]any{"items": arrayOf(ref(item)), "next": map[string]any{"type": "string", "description": "cursor for ?after=; empty on the last page"}})
}

func schemas() map[string]any {
	return map[string]any{
		"Error": obj([]string{"error"}, map[string]any{"error": obj([]string{"code", "message", "request_id"}, map[string]any{
			"code": str(), "message": str(), "request_id": str(),
			"step_up": obj([]string{"operation", "request"}, map[string]any{"operation": str(), "request": str()}),
		})}),
		"Health": obj([]string{"status"}, map[string]any{"status": str()}),
		"Ready":  obj([]string{"status", "problems", "details"}, map[string]any{"status": str(), "problems": arrayOf(str()), "details": map[string]any{"type": "object"}}),
		"Version": obj([]string{"version", "commit", "modified", "go_version", "platform"}, map[string]any{"version": str(), "commit": str(),
			"build_time": str(), "modified": boolean(), "go_version": str(), "platform": str()}),
		"Empty": obj(nil, map[string]any{}),

		"LoginRequest": obj([]string{"name", "password"}, map[string]any{"name": str(), "password": str()}),
		"Code":         obj([]string{"code"}, map[string]any{"code": str()}),
		"Login": obj([]string{"stage", "token", "csrf", "session_id", "must_change_password", "expires_at"}, map[string]any{
			"stage": map[string]any{"type": "string", "enum": []string{"password", "enrol", "full"}}, "token": str(), "csrf": str(),
			"session_id": str(), "must_change_password": boolean(), "expires_at": when(), "recovery_codes": arrayOf(str())}),
		"Enrolment":      obj([]string{"totp_secret", "totp_url", "qr_png"}, map[string]any{"totp_secret": str(), "totp_url": str(), "qr_png": map[string]any{"type": "string", "contentEncoding": "base64"}}),
		"PasswordChange": obj([]string{"old_password", "new_password"}, map[string]any{"old_password": str(), "new_password": str()}),
		"StepUpRequest":  obj([]string{"operation", "request", "code"}, map[string]any{"operation": str(), "request": str(), "code": str()}),
		"KeyCeremony": obj([]string{"ceremony", "options", "expires_at"}, map[string]any{"ceremony": str(), "expires_at": when(),
			"options": map[string]any{"type": "object", "description": "pass to navigator.credentials.create() or .get() after decoding its base64url members"}}),
		"KeyAnswer": obj([]string{"ceremony", "credential"}, map[string]any{"ceremony": str(),
			"credential": map[string]any{"type": "object", "description": "the PublicKeyCredential as JSON (binary members base64url)"}}),
		"StepUpTarget": obj([]string{"operation", "request"}, map[string]any{"operation": str(), "request": str()}),
		"KeyStepUp": obj([]string{"operation", "request", "ceremony", "credential"}, map[string]any{"operation": str(), "request": str(), "ceremony": str(),
			"credential": map[string]any{"type": "object"}}),
		"KeyRegister": obj([]string{"name"}, map[string]any{"name": str()}),
		"SecurityKey": obj([]string{"id", "name", "created_at", "last_used_at", "last_used_ip", "sign_count", "clone_warning"}, map[string]any{
			"id": str(), "name": str(), "created_at": when(), "last_used_at": map[string]any{"type": []string{"string", "null"}, "format": "date-time"},
			"last_used_ip": str(), "sign_count": map[string]any{"type": "integer"}, "clone_warning": map[string]any{"type": "boolean"}}),
		"SecurityKeyList": listOf("SecurityKey"),
		"KeyPolicy":       obj([]string{"appliance_admins", "security_leads"}, map[string]any{"appliance_admins": map[string]any{"type": "boolean"}, "security_leads": map[string]any{"type": "boolean"}}),
		"StepUpGrant":     obj([]string{"id", "operation", "expires_at"}, map[string]any{"id": str(), "operation": str(), "expires_at": when()}),
		"Session": obj([]string{"id", "current", "ip", "user_agent", "created_at", "last_seen", "expires_at"}, map[string]any{
			"id": str(), "current": boolean(), "ip": str(), "user_agent": str(), "created_at": when(), "last_seen": when(), "expires_at": when()}),
		"SessionList": listOf("Session"),
		"Principal": obj([]string{"user_id", "name", "role", "tenant_id"}, map[string]any{"user_id": str(), "name": str(), "role": str(), "tenant_id": str(),
			"home_tenant_id": str(), "session_id": str(), "token_id": str(), "support_ticket_id": str(), "must_change_password": boolean()}),
		"RecoveryCodes": obj([]string{"recovery_codes"}, map[string]any{"recovery_codes": arrayOf(str())}),

		"Tenant":       obj([]string{"id", "name", "created_at"}, map[string]any{"id": str(), "name": str(), "created_at": str()}),
		"TenantList":   listOf("Tenant"),
		"TenantCreate": obj([]string{"name"}, map[string]any{"name": str()}),
		"User": obj([]string{"id", "tenant_id", "name", "role", "totp_confirmed", "must_change_password", "disabled", "created_at"}, map[string]any{
			"id": str(), "tenant_id": str(), "name": str(), "role": str(), "totp_confirmed": boolean(), "must_change_password": boolean(),
			"disabled": boolean(), "created_at": str(), "one_time_password": str()}),
		"UserList":   listOf("User"),
		"UserCreate": obj([]string{"name", "role"}, map[string]any{"name": str(), "role": str(), "tenant": str()}),
		"RoleChange": obj([]string{"role"}, map[string]any{"role": str()}),
		"Token": obj([]string{"id", "tenant_id", "user_id", "name", "role", "created_at", "expires_at"}, map[string]any{
			"id": str(), "tenant_id": str(), "user_id": str(), "name": str(), "role": str(), "created_at": when(), "expires_at": when(), "revoked_at": when(), "token": str()}),
		"TokenList":   listOf("Token"),
		"TokenCreate": obj([]string{"name", "role"}, map[string]any{"name": str(), "role": str(), "ttl": map[string]any{"type": "string", "description": "Go duration, e.g. 720h; default 30 days"}, "tenant": str()}),
		"Ticket": obj([]string{"id", "tenant_id", "support_user_id", "opened_by", "reason", "opened_at", "expires_at"}, map[string]any{
			"id": str(), "tenant_id": str(), "support_user_id": str(), "opened_by": str(), "reason": str(), "opened_at": when(), "expires_at": when(), "closed_at": when()}),
		"TicketList": listOf("Ticket"),
		"TicketOpen": obj([]string{"support_user", "ttl", "reason"}, map[string]any{"support_user": str(), "ttl": str(), "reason": str()}),
		"Approval": obj([]string{"id", "tenant_id", "kind", "requester_id", "request", "request_sha256", "status", "created_at", "expires_at", "approvers"}, map[string]any{
			"id": str(), "tenant_id": str(), "kind": str(), "requester_id": str(), "request": str(), "request_sha256": str(), "status": str(),
			"created_at": when(), "expires_at": when(), "closed_at": when(),
			"approvers": arrayOf(obj([]string{"user_id", "granted_at"}, map[string]any{"user_id": str(), "granted_at": when()}))}),
		"ApprovalList": listOf("Approval"),
		"Reason":       obj(nil, map[string]any{"reason": str()}),
		"Comment":      obj(nil, map[string]any{"comment": str()}),

		"Alert": obj([]string{"seq", "time", "tenant", "user_id", "user_name", "activity", "threshold", "details"}, map[string]any{
			"seq": integer(), "time": when(), "tenant": str(), "user_id": str(), "user_name": str(), "activity": str(), "threshold": integer(),
			"details": map[string]any{"type": "object"}, "acked_by": str(), "acked_at": str(), "ack_seq": integer()}),
		"AlertList": listOf("Alert"),
		"AlertAck":  obj([]string{"seq", "acked_by", "acked_at", "ack_seq"}, map[string]any{"seq": integer(), "acked_by": str(), "acked_at": str(), "ack_seq": integer()}),

		"Destination":     obj(destinationFields(), destinationProps()),
		"DestinationList": listOf("Destination"),
		"DestinationCreate": obj([]string{"name", "kind", "address"}, map[string]any{"name": str(), "kind": str(), "address": str(), "format": str(),
			"server_name": str(), "ca_pem": str(), "client_cert_pem": str(), "client_key_pem": str(), "hmac_key": str(),
			"max_message": integer(), "budget_bytes": integer(), "tenant": str()}),
		"Removed":        obj([]string{"dropped_events"}, map[string]any{"dropped_events": integer()}),
		"SIEMStatus":     siemStatusSchema(),
		"SIEMStatusList": listOf("SIEMStatus"),

		"Entry": obj([]string{"seq", "time", "tenant", "actor_id", "actor_name", "actor_ip", "user_agent", "action", "object", "details", "prev_hash", "hash"}, map[string]any{
			"seq": integer(), "time": when(), "tenant": str(), "actor_id": str(), "actor_name": str(), "actor_ip": str(), "user_agent": str(),
			"action": str(), "object": str(), "details": map[string]any{"type": "object"}, "prev_hash": str(), "hash": str()}),
		"EntryList":      listOf("Entry"),
		"Checkpoint":     obj([]string{"origin", "size", "root", "note"}, map[string]any{"origin": str(), "size": integer(), "root": str(), "note": str()}),
		"AlarmState":     obj([]string{"raised"}, map[string]any{"raised": boolean(), "alarm": obj([]string{"seq", "bad_seq", "reason"}, map[string]any{"seq": integer(), "bad_seq": integer(), "reason": str()})}),
		"AlarmAck":       obj([]string{"comment"}, map[string]any{"comment": str(), "reason": str()}),
		"AlarmAckResult": obj([]string{"entry", "checkpoint"}, map[string]any{"entry": ref("Entry"), "checkpoint": ref("Checkpoint")}),

		"Scope": obj([]string{"id", "tenant", "name", "environment", "sha256", "signer_key_id", "created_at"}, map[string]any{
			"id": str(), "tenant": str(), "name": str(), "environment": str(), "sha256": str(), "signer_key_id": str(), "created_at": str(), "revoked_at": str(),
			"document": map[string]any{"type": "object", "description": "the signed envelope exactly as registered"}}),
		"ScopeList":     listOf("Scope"),
		"ScopeDocument": map[string]any{"type": "object", "description": "an unsigned scope document (docs/scope.md); signer_key_id is set to the key"},

		"SigningKey": obj([]string{"id", "tenant", "user_id", "name", "public", "held", "state", "created_at"}, map[string]any{
			"id": str(), "tenant": str(), "user_id": str(), "name": str(), "public": str(), "held": boolean(), "state": str(),
			"created_at": str(), "revoked_at": str(), "revoked_by": str()}),
		"SigningKeyList": listOf("SigningKey"),
		"KeyAdd":         obj([]string{"public"}, map[string]any{"name": str(), "public": map[string]any{"type": "string", "description": "the public key file's text"}}),
		"KeyGenerate":    obj(nil, map[string]any{"name": str()}),

		"ScanRequest": obj([]string{"scope_id"}, map[string]any{"scope_id": str(), "targets": arrayOf(str()), "ports": str(),
			"probes": arrayOf(str()), "rate": integer(), "policy_sha256": str(), "vantage": str()}),
		"Scan": obj([]string{"id", "tenant", "requester_id", "scope_id", "scope_sha256", "scope_key_id", "request", "request_sha256", "state", "created_at", "updated_at"}, map[string]any{
			"id": str(), "tenant": str(), "requester_id": str(), "scope_id": str(), "scope_sha256": str(), "scope_key_id": str(),
			"request": map[string]any{"type": "object", "description": "the canonical job request (docs/job.md)"}, "request_sha256": str(),
			"approval_id": str(), "approvers": arrayOf(str()), "state": str(), "reason": str(), "created_at": str(), "updated_at": str(),
			"job": obj([]string{"id", "sha256", "vantage", "state", "next_batch", "results", "issued_at"}, map[string]any{
				"id": str(), "sha256": str(), "vantage": str(), "vantage_label": str(), "state": str(), "reason": str(), "next_batch": integer(), "results": integer(),
				"issued_at": str(), "started_at": str(), "finished_at": str()})}),
		"ScanList": listOf("Scan"),
		"ScheduleRequest": obj([]string{"scope_id", "spec"}, map[string]any{"scope_id": str(), "targets": arrayOf(str()), "ports": str(),
			"probes": arrayOf(str()), "rate": integer(), "policy_sha256": str(), "vantage": str(),
			"spec":       map[string]any{"type": "string", "description": "@every DURATION (15m to 90 days) or a five-field cron line in UTC"},
			"valid_days": map[string]any{"type": "integer", "minimum": 1, "maximum": 90}}),
		"Schedule": obj([]string{"id", "tenant", "requester_id", "scope_id", "scope_key_id", "spec", "valid_days", "request", "request_sha256", "approval_id", "approvers", "state", "created_at"}, map[string]any{
			"id": str(), "tenant": str(), "requester_id": str(), "scope_id": str(), "scope_key_id": str(), "spec": str(), "valid_days": integer(),
			"request": map[string]any{"type": "object"}, "request_sha256": str(), "approval_id": str(), "approvers": arrayOf(str()),
			"state": map[string]any{"type": "string", "enum": []string{"pending", "approved", "void", "expired"}}, "reason": str(),
			"valid_until": str(), "next_run": str(), "last_run": str(), "created_at": str()}),
		"ScheduleList": listOf("Schedule"),
		"Result": obj([]string{"seq", "target", "proto", "port", "probe", "state", "reason", "rtt_us", "ttl", "time", "evidence"}, map[string]any{
			"seq": integer(), "target": str(), "proto": str(), "port": integer(), "probe": str(), "state": str(), "reason": str(),
			"icmp_type": integer(), "icmp_code": integer(), "rtt_us": integer(), "ttl": integer(), "time": when(), "evidence": arrayOf(str()),
			"detail": map[string]any{"type": "object"}}),
		"ResultList": listOf("Result"),
		"Progress": obj([]string{"scan_id", "state", "sent", "done", "total", "rate_pps", "cap_pps", "elapsed_seconds", "eta_seconds", "time"}, map[string]any{
			"scan_id": str(), "state": str(), "sent": integer(), "done": integer(), "total": integer(), "rate_pps": number(), "cap_pps": integer(),
			"elapsed_seconds": number(), "eta_seconds": number(), "time": when()}),
		"Sensor": obj([]string{"id", "tenant", "name", "vantage", "nkey", "state", "enrolled_at", "version", "profile_sha256", "silent", "connected"}, map[string]any{
			"id": str(), "tenant": str(), "name": str(), "vantage": str(), "nkey": str(), "state": str(), "enrolled_at": when(), "revoked_at": when(),
			"last_seen": when(), "version": str(), "profile_sha256": str(), "silent": boolean(), "connected": boolean()}),
		"SensorList":        listOf("Sensor"),
		"SensorTokenCreate": obj([]string{"name", "vantage"}, map[string]any{"name": str(), "vantage": str()}),
		"SensorToken": obj([]string{"id", "tenant", "name", "vantage", "secret", "expires_at"}, map[string]any{
			"id": str(), "tenant": str(), "name": str(), "vantage": str(), "secret": str(), "expires_at": when()}),
		"SensorEnrollRequest": obj([]string{"token", "nkey"}, map[string]any{"token": str(), "nkey": str(), "version": str(), "profile_sha256": str()}),
		"SensorEnrollment": obj([]string{"sensor_id", "tenant", "tenant_name", "name", "vantage", "nats_url", "job_key", "cert_sha256"}, map[string]any{
			"sensor_id": str(), "tenant": str(), "tenant_name": str(), "name": str(), "vantage": str(), "nats_url": str(),
			"job_key": map[string]any{"type": "string", "description": "the console's Ed25519 job public key, base64"}, "cert_sha256": str()}),
		"SignedScope": map[string]any{"type": "object", "description": "a signed scope envelope (docs/scope.md)"},

		"EvidenceObject": obj([]string{"key", "version_id", "tenant", "sha256", "size", "mode", "retain_until", "worm", "verified", "audit_seq"}, map[string]any{
			"key": str(), "version_id": str(), "tenant": str(), "sha256": str(), "size": integer(), "mode": str(), "retain_until": str(),
			"worm": boolean(), "verified": when(), "audit_seq": integer()}),
		"EvidenceList": listOf("EvidenceObject"),
		"Policy": obj([]string{"name", "version", "vantage_point", "sha256", "created_by", "created_at", "rules"}, map[string]any{
			"name": str(), "version": integer(), "vantage_point": str(), "sha256": str(), "created_by": str(), "created_at": str(), "rules": integer(),
			"document": map[string]any{"type": "object", "description": "the canonical JSON document"}, "source": map[string]any{"type": "string", "description": "the document as submitted"}}),
		"PolicyList":   listOf("Policy"),
		"PolicyCreate": obj([]string{"source"}, map[string]any{"source": map[string]any{"type": "string", "description": "the policy document, YAML or JSON (docs/policy.md)"}}),
		"PolicyScan": obj(nil, map[string]any{"scan_id": str(), "scope_id": str(), "version": integer(),
			"nmap_xml": map[string]any{"type": "string", "description": "evaluate only, instead of scan_id: another scanner's Nmap XML document, judged as unsigned imported evidence"}}),
		"DryRun": obj([]string{"coverage", "warnings"}, map[string]any{"coverage": arrayOf(map[string]any{"type": "object"}), "warnings": arrayOf(map[string]any{"type": "object"})}),
		"Evaluation": obj([]string{"policy", "version", "baseline_id", "summary", "rules", "findings", "drift", "audit_seq"}, map[string]any{
			"policy": str(), "version": integer(), "baseline_id": str(), "summary": map[string]any{"type": "object"}, "rules": arrayOf(map[string]any{"type": "object"}),
			"findings": arrayOf(map[string]any{"type": "object"}), "drift": arrayOf(map[string]any{"type": "object"}), "audit_seq": integer(),
			"imported": map[string]any{"type": "boolean", "description": "true when the results came from an imported Nmap XML document (unsigned evidence)"}}),
		"Baseline": obj([]string{"id", "scope_id", "policy", "version", "scan_id", "results_sha256", "accepted_by", "accepted_at"}, map[string]any{
			"id": str(), "scope_id": str(), "policy": str(), "version": integer(), "scan_id": str(), "results_sha256": str(), "accepted_by": str(), "accepted_at": str()}),
		"ReportCreate": obj(nil, map[string]any{"scan_id": str(), "policy": str(), "policy_version": integer(),
			"parts": map[string]any{"type": "array", "description": "several scans for one combined report (instead of scan_id and policy), each with its own policy",
				"items": obj([]string{"scan_id", "policy"}, map[string]any{"scan_id": str(), "policy": str(), "policy_version": integer()})}}),
		"ReportCreated": obj([]string{"id", "sha256", "key_id", "key", "audit_seq"}, map[string]any{"id": str(), "sha256": str(), "key_id": str(), "key": map[string]any{"type": "string", "description": "the evidence object's key"}, "audit_seq": integer()}),
		"Report": obj([]string{"id", "tenant", "scan_id", "vantages", "policy", "policy_version", "sha256", "key_id", "evidence_key", "findings", "imported", "created_by", "created_at", "audit_seq"}, map[string]any{
			"id": str(), "tenant": str(), "scan_id": str(), "scan_ids": arrayOf(str()), "vantages": arrayOf(str()), "policy": str(), "policy_version": integer(), "sha256": str(), "key_id": str(), "evidence_key": str(),
			"findings": map[string]any{"type": "object", "additionalProperties": integer()}, "imported": boolean(), "created_by": str(), "created_at": when(), "audit_seq": integer()}),
		"ReportList": listOf("Report"),
		"Review": obj([]string{"id", "tenant", "status", "started_by", "started_at", "undecided"}, map[string]any{
			"id": str(), "tenant": str(), "status": str(), "started_by": str(), "started_at": when(), "signed_by": str(), "signed_at": when(),
			"undecided": arrayOf(str()), "sha256": str(), "evidence_key": str(), "document": map[string]any{"type": "object", "description": "the review (docs/access-review.md)"}}),
		"ReviewList": listOf("Review"),
		"ReviewDecisions": obj([]string{"decisions"}, map[string]any{"decisions": arrayOf(obj([]string{"item", "decision"}, map[string]any{
			"item": str(), "decision": map[string]any{"type": "string", "enum": []string{"keep", "revoke"}}, "note": str()}))}),
		"ReviewSigned": obj([]string{"id", "sha256", "key_id", "audit_seq", "revoked", "flags_closed"}, map[string]any{
			"id": str(), "sha256": str(), "key_id": str(), "evidence_key": str(), "audit_seq": integer(), "revoked": integer(), "flags_closed": integer()}),
		"ReviewDue":     obj([]string{"tenant", "due_at", "overdue"}, map[string]any{"tenant": str(), "last_signed": when(), "due_at": when(), "overdue": boolean(), "open": str()}),
		"ExportRequest": obj([]string{"key", "version_id"}, map[string]any{"key": str(), "version_id": str()}),
		"ExportURL": obj([]string{"url", "expires_at", "key", "version_id", "sha256", "approvers"}, map[string]any{
			"url": str(), "expires_at": when(), "key": str(), "version_id": str(), "sha256": str(), "approvers": arrayOf(str())}),
	}
}

// destinationFields are a SIEM destination's public fields (never secrets).
func destinationFields() []string {
	return []string{"id", "tenant", "name", "kind", "address", "format", "server_name", "max_message", "budget_bytes", "created_at"}
}

func destinationProps() map[string]any {
	return map[string]any{"id": str(), "tenant": str(), "name": str(), "kind": str(), "address": str(), "format": str(),
		"server_name": str(), "max_message": integer(), "budget_bytes": integer(), "created_at": str()}
}

func siemStatusSchema() map[string]any {
	props := destinationProps()
	for _, k := range []string{"last_seq", "delivered_seq", "pending", "pending_bytes", "audit_backlog", "failures", "consecutive_failures"} {
		props[k] = integer()
	}
	for _, k := range []string{"delivered_at", "last_error", "last_error_at", "next_attempt_at"} {
		props[k] = str()
	}
	props["lag_seconds"] = number()
	props["budget_used"] = number()
	req := destinationFields()
	for k := range props {
		if !slices.Contains(req, k) {
			req = append(req, k)
		}
	}
	sort.Strings(req)
	return obj(req, props)
}

// openAPIDocument builds the document.
func openAPIDocument() map[string]any {
	paths := map[string]any{}
	errorResp := func(desc string) map[string]any {
		return map[string]any{"description": desc, "content": map[string]any{"application/json": map[string]any{"schema": ref("Error")}}}
	}
	for _, op := range apiOps() {
		item, _ := paths[op.path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[op.path] = item
		}
		o := map[string]any{"operationId": op.id, "summary": op.summary, "tags": []string{op.tag}}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(op.path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": str()})
		}
		if op.list {
			params = append(params,
				map[string]any{"name": "limit", "in": "query", "schema": map[string]any{"type": "integer", "minimum": 1, "maximum": maxLimit, "default": defaultLimit}},
				map[string]any{"name": "after", "in": "query", "schema": str(), "description": "the previous page's next"})
		}
		for _, q := range op.query {
			params = append(params, map[string]any{"name": q, "in": "query", "schema": str()})
		}
		if params != nil {
			o["parameters"] = params
		}
		switch op.auth {
		case "none":
			o["security"] = []any{}
		case "metrics":
			o["security"] = []any{map[string]any{}, map[string]any{"bearer": []string{}}}
		}
		if op.body != "" {
			o["requestBody"] = map[string]any{"required": op.body != "Empty" && op.body != "Reason",
				"content": map[string]any{"application/json": map[string]any{"schema": ref(op.body)}}}
		}
		resps := map[string]any{}
		switch op.resp {
		case "":
			resps[fmt.Sprint(op.status)] = map[string]any{"description": "done"}
		case "file":
			bin := map[string]any{"type": "string", "format": "binary"}
			resps[fmt.Sprint(op.status)] = map[string]any{"description": "the document (Content-Disposition: attachment)", "content": map[string]any{
				"application/json": map[string]any{"schema": map[string]any{"type": "object"}}, "text/html": map[string]any{"schema": bin}, "application/pdf": map[string]any{"schema": bin},
				"application/xml": map[string]any{"schema": bin}, "application/jsonl": map[string]any{"schema": bin}}}
		case "raw":
			ct, schema := "application/json", map[string]any{"type": "object"}
			if op.id == "metrics" {
				ct, schema = "text/plain", str()
			}
			resps[fmt.Sprint(op.status)] = map[string]any{"description": "ok", "content": map[string]any{ct: map[string]any{"schema": schema}}}
		case "events":
			// text/event-stream: each event is "event: progress" and one
			// "data:" line holding a Progress object.
			resps[fmt.Sprint(op.status)] = map[string]any{"description": "a stream of progress events; each data line is a Progress object",
				"content": map[string]any{"text/event-stream": map[string]any{"schema": str(), "x-event-data": ref("Progress")}}}
		default:
			resps[fmt.Sprint(op.status)] = map[string]any{"description": "ok", "content": map[string]any{"application/json": map[string]any{"schema": ref(op.resp)}}}
		}
		codes := []int{400, 413, 429, 500}
		if op.body != "" {
			codes = append(codes, 415)
		}
		if op.auth != "none" || strings.HasPrefix(op.path, "/api/v1/auth/") {
			codes = append(codes, 401, 403)
		}
		if strings.Contains(op.path, "{") {
			codes = append(codes, 404)
		}
		if op.id == "readyz" {
			codes = []int{}
		}
		codes = append(codes, op.errors...)
		for _, c := range codes {
			desc := http.StatusText(c)
			if c == 401 && op.stepUp {
				desc += "; step_up_required carries the step_up challenge"
			}
			resps[fmt.Sprint(c)] = errorResp(desc)
		}
		if op.id == "readyz" {
			resps["503"] = map[string]any{"description": "not ready", "content": map[string]any{"application/json": map[string]any{"schema": ref("Ready")}}}
		}
		o["responses"] = resps
		if op.stepUp {
			o["description"] = "Needs step-up: the first attempt answers 401 step_up_required with a step_up challenge; POST it with a fresh TOTP code to /api/v1/auth/step-up, then send the identical request again."
		}
		item[strings.ToLower(op.method)] = o
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "FirewallIQ Secure API", "version": "1",
			"description": "The appliance's JSON API. Errors: {\"error\": {\"code\", \"message\", \"request_id\"}}. Lists: ?limit=&after=, answer {\"items\", \"next\"}. See docs/api.md."},
		"servers":  []any{map[string]any{"url": "/"}},
		"security": []any{map[string]any{"session": []string{}, "csrf": []string{}}, map[string]any{"bearer": []string{}}},
		"components": map[string]any{
			"schemas": schemas(),
			"securitySchemes": map[string]any{
				"session": map[string]any{"type": "apiKey", "in": "cookie", "name": "__Host-fiq_session"},
				"csrf":    map[string]any{"type": "apiKey", "in": "header", "name": "X-CSRF-Token", "description": "required on every method but GET, HEAD, OPTIONS"},
				"bearer":  map[string]any{"type": "http", "scheme": "bearer", "description": "an API token (fiqt_...)"},
			},
		},
		"paths": paths,
	}
}

// loadOpenAPI renders the document once; New fails if it cannot.
func loadOpenAPI() ([]byte, error) {
	b, err := json.MarshalIndent(openAPIDocument(), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("ui: openapi: %w", err)
	}
	return b, nil
}

func (s *Server) openapi(c echo.Context) error {
	return c.JSONBlob(http.StatusOK, s.openAPI)
}

// documentedRoutes lists "METHOD path" (echo path syntax) of every
// documented operation, sorted.
func documentedRoutes() []string {
	var out []string
	for _, op := range apiOps() {
		p := pathParam.ReplaceAllString(op.path, ":$1")
		out = append(out, op.method+" "+p)
	}
	sort.Strings(out)
	return out
}
