// Package fault is the one error table: every exported sentinel error of the
// appliance's packages maps to a stable error code string, an HTTP status
// and a CLI exit code. The HTTP API (ui) answers with the code and status,
// and the CLI exits with the exit code, so both classify an error the same
// way and neither matches error text.
//
// A test parses the source of every package below the module (go/parser)
// and fails when an exported Err* variable has no row here, so a new
// sentinel cannot ship unclassified.
//
// Package appliance (the composition root) cannot be imported from here
// (only main and appliance/cli may import it); its few sentinels are rows
// that appliance/cli passes as extra rules (see Rules, Classify).
package fault

import (
	"errors"
	"net/http"
	"strings"

	"firewalliq/appliance/auditlog"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/cli/apiclient"
	"firewalliq/appliance/evidence"
	"firewalliq/appliance/interop"
	"firewalliq/appliance/keyring"
	"firewalliq/appliance/policy"
	"firewalliq/appliance/report"
	"firewalliq/appliance/report/review"
	"firewalliq/appliance/report/verify"
	"firewalliq/appliance/sandbox"
	"firewalliq/appliance/scan"
	"firewalliq/appliance/sensor"
	"firewalliq/appliance/siem"
	"firewalliq/appliance/siem/destinations"
	"firewalliq/appliance/store"
	"firewalliq/audit"
	"firewalliq/probe"
	"firewalliq/probe/bounded"
	"firewalliq/probe/job"
	"firewalliq/probe/keys"
	"firewalliq/probe/runner"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
	"firewalliq/vault"
)

// CLI exit codes (the same numbers appliance/cli documents).
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
	ExitProfile = 3
	// ExitProduction: production mode refuses this build (a
	// development-signed profile or a lab build).
	ExitProduction = 4
)

// Class is how one kind of error is reported.
type Class struct {
	// Code is the stable snake_case code in API error bodies; clients
	// branch on it, never on the message.
	Code string `json:"code"`
	// HTTP is the response status.
	HTTP int `json:"http"`
	// Exit is the CLI exit code.
	Exit int `json:"exit"`
	// Message is the fixed text shown when the error's own text must not
	// be (Detail false).
	Message string `json:"message"`
	// Detail says whether the error's own text may be shown to the caller.
	// It is true only for refusals whose text the services write for
	// people (validation, approval state); never for 401s, whose text could
	// tell an attacker which check failed, nor for 5xx, whose text is an
	// internal cause.
	Detail bool `json:"detail"`
}

// Rule maps one sentinel error to its class.
type Rule struct {
	// Name is the sentinel's qualified name, "import/path/below/module.ErrX"
	// (for example "appliance/auth.ErrForbidden"); the coverage test
	// matches it against the source.
	Name  string
	Err   error
	Class Class
}

// The classes. Codes are part of the API contract (docs/api.md): add new
// ones, never rename.
var (
	internal = Class{Code: "internal", HTTP: http.StatusInternalServerError, Exit: ExitFailure, Message: "internal error"}

	unauthenticated = Class{Code: "unauthenticated", HTTP: http.StatusUnauthorized, Exit: ExitFailure, Message: "not authenticated"}
	forbidden       = Class{Code: "forbidden", HTTP: http.StatusForbidden, Exit: ExitFailure, Message: "forbidden", Detail: true}
	csrf            = Class{Code: "csrf", HTTP: http.StatusForbidden, Exit: ExitFailure, Message: "missing or invalid CSRF token"}
	stepUp          = Class{Code: "step_up_required", HTTP: http.StatusUnauthorized, Exit: ExitFailure, Message: "step-up authentication required: send a fresh TOTP code to /api/v1/auth/step-up and retry"}
	invalidCode     = Class{Code: "invalid_code", HTTP: http.StatusUnauthorized, Exit: ExitFailure, Message: "invalid code"}
	replayed        = Class{Code: "code_replayed", HTTP: http.StatusUnauthorized, Exit: ExitFailure, Message: "code already used; wait for the next one"}
	enrolment       = Class{Code: "enrolment_required", HTTP: http.StatusForbidden, Exit: ExitFailure, Message: "TOTP enrolment required"}
	passwordChange  = Class{Code: "password_change_required", HTTP: http.StatusForbidden, Exit: ExitFailure, Message: "password change required"}
	rateLimited     = Class{Code: "rate_limited", HTTP: http.StatusTooManyRequests, Exit: ExitFailure, Message: "too many attempts; try again later"}
	lockedOut       = Class{Code: "locked_out", HTTP: http.StatusTooManyRequests, Exit: ExitFailure, Message: "account temporarily locked", Detail: true}
	keyRequired     = Class{Code: "security_key_required", HTTP: http.StatusForbidden, Exit: ExitFailure, Message: "this account must use a security key: sign in and step up with one (or register one first)"}
	keyCloned       = Class{Code: "security_key_cloned", HTTP: http.StatusForbidden, Exit: ExitFailure, Message: "security key refused: its signature counter did not advance (it may be cloned); the key is flagged"}
	selfApproval    = Class{Code: "self_approval", HTTP: http.StatusForbidden, Exit: ExitFailure, Message: "requester cannot judge their own request"}

	notFound = Class{Code: "not_found", HTTP: http.StatusNotFound, Exit: ExitFailure, Message: "not found", Detail: true}
	conflict = Class{Code: "conflict", HTTP: http.StatusConflict, Exit: ExitFailure, Message: "conflict", Detail: true}
	invalid  = Class{Code: "invalid_argument", HTTP: http.StatusBadRequest, Exit: ExitUsage, Message: "invalid argument", Detail: true}
	tooLarge = Class{Code: "too_large", HTTP: http.StatusRequestEntityTooLarge, Exit: ExitUsage, Message: "request body too large"}
	tamper   = Class{Code: "tamper_alarm", HTTP: http.StatusLocked, Exit: ExitFailure, Message: "audit tamper alarm raised; an appliance admin must acknowledge it with step-up MFA"}
	noAlarm  = Class{Code: "no_alarm", HTTP: http.StatusConflict, Exit: ExitFailure, Message: "no unacknowledged audit tamper alarm"}

	profile = Class{Code: "profile_invalid", HTTP: http.StatusInternalServerError, Exit: ExitProfile, Message: "the compiled-in safety profile failed verification"}
)

// approval is a request in the wrong approval state.
func approval(code, msg string) Class {
	return Class{Code: code, HTTP: http.StatusConflict, Exit: ExitFailure, Message: msg, Detail: true}
}

// refused is a signed document or a request the safety rules refuse:
// well-formed, understood, and not allowed.
func refused(code, msg string) Class {
	return Class{Code: code, HTTP: http.StatusUnprocessableEntity, Exit: ExitFailure, Message: msg, Detail: true}
}

// unavailable is a dependency that is missing or not in a usable state.
func unavailable(code, msg string) Class {
	return Class{Code: code, HTTP: http.StatusServiceUnavailable, Exit: ExitFailure, Message: msg}
}

// Rules returns the table in match order: Classify takes the first row
// whose error the classified error wraps, so more specific rows come first
// (a step-up refused because the account is locked is locked_out; a
// refusal because a one-time password must be changed is
// password_change_required, not forbidden). It returns a fresh slice each
// call.
func Rules() []Rule {
	r := func(name string, err error, c Class) Rule { return Rule{Name: name, Err: err, Class: c} }
	return []Rule{
		// Authentication and authorisation, most specific first.
		r("appliance/auth.ErrPasswordChangeRequired", auth.ErrPasswordChangeRequired, passwordChange),
		r("appliance/auth.ErrKeyRequired", auth.ErrKeyRequired, keyRequired),
		r("appliance/auth.ErrKeyCloned", auth.ErrKeyCloned, keyCloned),
		r("appliance/auth.ErrLockedOut", auth.ErrLockedOut, lockedOut),
		r("appliance/auth.ErrRateLimited", auth.ErrRateLimited, rateLimited),
		r("appliance/auth.ErrCSRF", auth.ErrCSRF, csrf),
		r("appliance/auth.ErrEnrolmentRequired", auth.ErrEnrolmentRequired, enrolment),
		r("appliance/auth.ErrReplay", auth.ErrReplay, replayed),
		r("appliance/auth.ErrInvalidCode", auth.ErrInvalidCode, invalidCode),
		r("appliance/auth.ErrStepUpRequired", auth.ErrStepUpRequired, stepUp),
		r("audit.ErrStepUpRequired", audit.ErrStepUpRequired, stepUp),
		r("appliance/auth.ErrUnauthenticated", auth.ErrUnauthenticated, unauthenticated),
		r("appliance/auth.ErrWrongPassword", auth.ErrWrongPassword, unauthenticated),
		r("appliance/auth.ErrSelfApproval", auth.ErrSelfApproval, selfApproval),
		r("appliance/auth.ErrForbidden", auth.ErrForbidden, forbidden),

		// The audit log's fail-closed state.
		r("audit.ErrTamperAlarm", audit.ErrTamperAlarm, tamper),
		r("audit.ErrNoAlarm", audit.ErrNoAlarm, noAlarm),

		// Dual approval.
		r("appliance/auth.ErrAlreadyApproved", auth.ErrAlreadyApproved, approval("already_approved", "already approved by this approver")),
		r("appliance/auth.ErrApprovalPending", auth.ErrApprovalPending, approval("approval_pending", "approval pending")),
		r("appliance/auth.ErrApprovalVoid", auth.ErrApprovalVoid, approval("approval_void", "approval void")),
		r("appliance/auth.ErrApprovalDenied", auth.ErrApprovalDenied, approval("approval_denied", "approval denied")),
		r("appliance/auth.ErrApprovalExpired", auth.ErrApprovalExpired, approval("approval_expired", "approval expired")),
		r("appliance/auth.ErrApprovalUsed", auth.ErrApprovalUsed, approval("approval_used", "approval already used")),
		r("appliance/evidence.ErrNotApproved", evidence.ErrNotApproved, approval("approval_pending", "evidence export is not approved")),

		// Lookups and state.
		r("appliance/store.ErrNotFound", store.ErrNotFound, notFound),
		r("appliance/siem.ErrNotFound", siem.ErrNotFound, notFound),
		r("appliance/evidence.ErrNotFound", evidence.ErrNotFound, notFound),
		r("appliance/scan.ErrNotFound", scan.ErrNotFound, notFound),
		r("appliance/auditlog.ErrNotFound", auditlog.ErrNotFound, notFound),
		r("audit.ErrNoCheckpoint", audit.ErrNoCheckpoint, Class{Code: "no_checkpoint", HTTP: http.StatusNotFound, Exit: ExitFailure, Message: "no signed checkpoint covers this yet", Detail: true}),
		r("probe.ErrNoCheckpoint", probe.ErrNoCheckpoint, notFound),
		r("appliance/store.ErrConflict", store.ErrConflict, conflict),
		r("appliance/scan.ErrExists", scan.ErrExists, conflict),
		r("appliance/siem/destinations.ErrNameTaken", destinations.ErrNameTaken, conflict),
		r("appliance/auditlog.ErrAlreadyAcknowledged", auditlog.ErrAlreadyAcknowledged, conflict),
		r("appliance/store.ErrStale", store.ErrStale, conflict),
		r("appliance/evidence.ErrCheckpointMoved", evidence.ErrCheckpointMoved, conflict),
		r("probe.ErrExists", probe.ErrExists, conflict),
		r("probe.ErrResumeMismatch", probe.ErrResumeMismatch, conflict),
		r("probe.ErrComplete", probe.ErrComplete, conflict),
		r("vault.ErrNothingToAnchor", vault.ErrNothingToAnchor, conflict),
		r("appliance/siem.ErrReplay", siem.ErrReplay, conflict),

		// Bad input (CLI: exit 2).
		r("appliance/auth.ErrInvalid", auth.ErrInvalid, invalid),
		r("appliance/auth.ErrPasswordTooShort", auth.ErrPasswordTooShort, invalid),
		r("appliance/store.ErrNoTenant", store.ErrNoTenant, invalid),
		r("appliance/siem.ErrInvalidDestination", siem.ErrInvalidDestination, invalid),
		r("probe/scope.ErrInvalid", scope.ErrInvalid, invalid),
		r("probe/scope.ErrBadTarget", scope.ErrBadTarget, invalid),
		r("probe/safety.ErrUnknownKind", safety.ErrUnknownKind, invalid),
		r("probe.ErrRate", probe.ErrRate, invalid),
		r("probe.ErrConfig", probe.ErrConfig, invalid),
		r("probe/keys.ErrNotEd25519", keys.ErrNotEd25519, invalid),
		r("probe/keys.ErrNoPEM", keys.ErrNoPEM, invalid),
		r("vault.ErrBadKey", vault.ErrBadKey, invalid),
		r("appliance/siem.ErrSignature", siem.ErrSignature, invalid),
		r("appliance/siem.ErrStale", siem.ErrStale, invalid),

		// Understood and refused by the safety rules.
		r("probe/scope.ErrSignature", scope.ErrSignature, refused("bad_signature", "scope signature does not verify")),
		r("probe/scope.ErrUntrustedKey", scope.ErrUntrustedKey, refused("untrusted_key", "scope signed by an untrusted key")),
		r("appliance/scan.ErrUntrusted", scan.ErrUntrusted, refused("untrusted_key", "scope not signed by a trusted key")),
		r("appliance/scan.ErrWrongTenant", scan.ErrWrongTenant, refused("wrong_tenant", "scope document names another tenant")),
		r("probe/scope.ErrNotYetValid", scope.ErrNotYetValid, refused("not_yet_valid", "scope is not yet valid")),
		r("probe/scope.ErrExpired", scope.ErrExpired, refused("expired", "scope has expired")),
		r("probe/scope.ErrExceedsProfile", scope.ErrExceedsProfile, refused("exceeds_profile", "scope exceeds the safety profile")),
		r("probe/scope.ErrOutOfScope", scope.ErrOutOfScope, refused("out_of_scope", "out of scope")),
		r("probe.ErrOutOfScope", probe.ErrOutOfScope, refused("out_of_scope", "destination outside scope")),
		r("probe.ErrRateAboveCap", probe.ErrRateAboveCap, refused("above_cap", "requested rate above the safety profile's cap")),
		r("audit.ErrBadProof", audit.ErrBadProof, refused("bad_proof", "audit proof does not verify")),
		r("audit.ErrBadCheckpoint", audit.ErrBadCheckpoint, refused("bad_checkpoint", "invalid audit checkpoint")),

		// The compiled-in safety profile (CLI: exit 3).
		r("probe/safety.ErrSignature", safety.ErrSignature, profile),
		r("probe/safety.ErrInvalid", safety.ErrInvalid, profile),

		// Dependencies that are not there or not right.
		r("vault.ErrNotWORM", vault.ErrNotWORM, unavailable("vault_not_worm", "evidence store is not WORM")),
		r("vault.ErrBucketNotFound", vault.ErrBucketNotFound, unavailable("vault_not_worm", "evidence bucket does not exist")),
		r("vault.ErrBucketNotLocked", vault.ErrBucketNotLocked, unavailable("vault_not_worm", "evidence bucket has no object lock")),
		r("vault.ErrNoDefaultRetention", vault.ErrNoDefaultRetention, unavailable("vault_not_worm", "evidence bucket has no default retention")),
		r("vault.ErrGovernanceMode", vault.ErrGovernanceMode, unavailable("vault_not_worm", "evidence bucket retention is not COMPLIANCE")),
		r("vault.ErrRetentionTooShort", vault.ErrRetentionTooShort, unavailable("vault_not_worm", "evidence bucket retention is too short")),
		r("vault.ErrNotChecked", vault.ErrNotChecked, unavailable("vault_unavailable", "evidence store not verified yet")),
		r("vault.ErrSpoolFull", vault.ErrSpoolFull, unavailable("spool_full", "evidence spool is full")),
		r("vault.ErrVerify", vault.ErrVerify, Class{Code: "vault_verify_failed", HTTP: http.StatusBadGateway, Exit: ExitFailure, Message: "uploaded evidence failed verification"}),
		r("vault.ErrNoPresign", vault.ErrNoPresign, Class{Code: "unsupported", HTTP: http.StatusNotImplemented, Exit: ExitFailure, Message: "the evidence backend cannot issue pre-signed URLs"}),
		r("vault.ErrBadConfig", vault.ErrBadConfig, Class{Code: "bad_config", HTTP: http.StatusInternalServerError, Exit: ExitUsage, Message: "invalid vault configuration"}),
		r("appliance/siem.ErrBudgetExceeded", siem.ErrBudgetExceeded, unavailable("siem_budget_exceeded", "SIEM outbox budget exceeded")),
		r("appliance/siem.ErrUnconfirmed", siem.ErrUnconfirmed, Class{Code: "siem_unconfirmed", HTTP: http.StatusBadGateway, Exit: ExitFailure, Message: "SIEM delivery unconfirmed"}),
		r("probe.ErrNoRaw", probe.ErrNoRaw, unavailable("no_raw_socket", "raw sockets unavailable (CAP_NET_RAW missing)")),
		r("appliance/store.ErrSchemaTooNew", store.ErrSchemaTooNew, Class{Code: "schema_too_new", HTTP: http.StatusInternalServerError, Exit: ExitFailure, Message: "database schema is newer than this binary"}),

		// The command line's API client: refusals made on the client's side,
		// before any answer (the HTTP status is what the client stands for).
		r("appliance/cli/apiclient.ErrNoCredentials", apiclient.ErrNoCredentials, unauthenticated),
		r("appliance/cli/apiclient.ErrNoStepUp", apiclient.ErrNoStepUp, stepUp),
		r("appliance/cli/apiclient.ErrBadPin", apiclient.ErrBadPin, invalid),
		r("appliance/cli/apiclient.ErrBadAddress", apiclient.ErrBadAddress, invalid),
		r("appliance/cli/apiclient.ErrNoConfigDir", apiclient.ErrNoConfigDir, invalid),
		r("appliance/cli/apiclient.ErrPinMismatch", apiclient.ErrPinMismatch, Class{Code: "cert_pin_mismatch", HTTP: http.StatusBadGateway, Exit: ExitFailure, Message: "the server's certificate does not match the pinned SHA-256"}),
		r("appliance/cli/apiclient.ErrResponseTooLarge", apiclient.ErrResponseTooLarge, Class{Code: "response_too_large", HTTP: http.StatusBadGateway, Exit: ExitFailure, Message: "the server's answer is too large"}),
		r("appliance/cli/apiclient.ErrStreamIdle", apiclient.ErrStreamIdle, Class{Code: "stream_idle", HTTP: http.StatusGatewayTimeout, Exit: ExitFailure, Message: "the event stream went silent"}),
		r("appliance/cli/apiclient.ErrCredentialsMode", apiclient.ErrCredentialsMode, Class{Code: "credentials_insecure", HTTP: http.StatusInternalServerError, Exit: ExitFailure, Message: "the credentials file is accessible by other users"}),

		// Found since the table was made: hardening, scans, policy, reports.
		r("appliance/auth.ErrApprovalRequired", auth.ErrApprovalRequired, Class{Code: "approval_required", HTTP: http.StatusForbidden, Exit: ExitFailure, Message: "granting this role needs another admin's approval", Detail: true}),
		r("appliance/auth.ErrApproverNotCounted", auth.ErrApproverNotCounted, approval("approver_not_counted", "an approver does not count: not independent of the requester, disabled or demoted")),
		r("audit.ErrUnverified", audit.ErrUnverified, approval("audit_unverified", "the audit log does not verify against the last signed checkpoint; nothing signed")),
		r("audit.ErrBadState", audit.ErrBadState, internal),
		r("vault.ErrTampered", vault.ErrTampered, tamper),
		r("vault.ErrNotRecorded", vault.ErrNotRecorded, tamper),
		r("vault.ErrCannotReadAnchors", vault.ErrCannotReadAnchors, Class{Code: "unsupported", HTTP: http.StatusNotImplemented, Exit: ExitFailure, Message: "the evidence backend cannot list anchors"}),
		r("probe/safety.ErrNotProductionBuild", safety.ErrNotProductionBuild, Class{Code: "not_production_build", HTTP: http.StatusServiceUnavailable, Exit: ExitProduction, Message: "production mode refuses a development-signed or lab build: install a release build"}),
		r("probe/bounded.ErrNotRegular", bounded.ErrNotRegular, Class{Code: "not_regular_file", HTTP: http.StatusBadRequest, Exit: ExitFailure, Message: "not a regular file", Detail: true}),
		r("probe/bounded.ErrTooLarge", bounded.ErrTooLarge, Class{Code: "file_too_large", HTTP: http.StatusRequestEntityTooLarge, Exit: ExitFailure, Message: "file too large", Detail: true}),
		r("probe/scope.ErrSpecialAddress", scope.ErrSpecialAddress, refused("special_address", "scope includes unspecified, broadcast or multicast addresses")),
		r("probe.ErrTooManyTargets", probe.ErrTooManyTargets, refused("too_many_targets", "more targets than the safety profile allows per scan")),
		r("probe/job.ErrProfileMismatch", job.ErrProfileMismatch, Class{Code: "profile_mismatch", HTTP: http.StatusConflict, Exit: ExitProfile, Message: "the job names another safety profile", Detail: true}),
		r("probe/job.ErrUntrustedKey", job.ErrUntrustedKey, refused("untrusted_key", "job signed by an untrusted key")),
		r("probe/job.ErrSignature", job.ErrSignature, refused("bad_signature", "job signature does not verify")),
		r("probe/job.ErrScopeUntrusted", job.ErrScopeUntrusted, refused("untrusted_key", "the job's scope is signed by an untrusted key")),
		r("probe/job.ErrScope", job.ErrScope, refused("bad_scope", "the job's scope does not verify")),
		r("probe/job.ErrScopeMismatch", job.ErrScopeMismatch, refused("scope_mismatch", "the job does not match its scope")),
		r("probe/job.ErrTargetOutOfScope", job.ErrTargetOutOfScope, refused("out_of_scope", "a job target is outside its scope")),
		r("probe/job.ErrTooManyTargets", job.ErrTooManyTargets, refused("too_many_targets", "the job has more targets than the safety profile allows")),
		r("probe/job.ErrPortOutOfScope", job.ErrPortOutOfScope, refused("out_of_scope", "a job port is outside its scope")),
		r("probe/job.ErrProbeNotAllowed", job.ErrProbeNotAllowed, refused("probe_not_allowed", "a job probe kind is not allowed")),
		r("probe/job.ErrRateAboveCap", job.ErrRateAboveCap, refused("above_cap", "the job's rate is above its scope or the safety profile")),
		r("probe/job.ErrNotYetValid", job.ErrNotYetValid, approval("job_not_yet_valid", "the job is not yet valid")),
		r("probe/job.ErrExpired", job.ErrExpired, approval("job_expired", "the job has expired")),
		r("probe/job.ErrApprovalMismatch", job.ErrApprovalMismatch, approval("approval_mismatch", "the job's approvals do not bind its request")),
		r("probe/job.ErrApprovals", job.ErrApprovals, Class{Code: "approval_required", HTTP: http.StatusForbidden, Exit: ExitFailure, Message: "the job lacks the approvals it needs", Detail: true}),
		r("probe/job.ErrInvalid", job.ErrInvalid, refused("bad_job", "malformed job")),
		r("probe/runner.ErrVantage", runner.ErrVantage, approval("wrong_vantage", "the job is for another vantage point")),
		r("probe/runner.ErrMalformed", runner.ErrMalformed, Class{Code: "bad_stream", HTTP: http.StatusBadGateway, Exit: ExitFailure, Message: "the runner's result stream is malformed"}),
		r("probe/runner.ErrSequence", runner.ErrSequence, Class{Code: "bad_stream", HTTP: http.StatusBadGateway, Exit: ExitFailure, Message: "the runner's result stream has a gap"}),
		r("probe/runner.ErrTruncated", runner.ErrTruncated, Class{Code: "bad_stream", HTTP: http.StatusBadGateway, Exit: ExitFailure, Message: "the runner's result stream ended early"}),
		r("appliance/scan.ErrTransition", scan.ErrTransition, conflict),
		r("appliance/scan.ErrStopped", scan.ErrStopped, unavailable("stopped", "the scan dispatcher is stopped")),
		r("appliance/scan.ErrBadFilter", scan.ErrBadFilter, invalid),
		r("appliance/scan.ErrBadCursor", scan.ErrBadCursor, invalid),
		r("appliance/policy.ErrInvalid", policy.ErrInvalid, refused("invalid_policy", "invalid policy document")),
		r("appliance/policy.ErrNotFound", policy.ErrNotFound, notFound),
		r("appliance/interop.ErrInvalid", interop.ErrInvalid, invalid),
		r("appliance/report.ErrIncomplete", report.ErrIncomplete, invalid),
		r("appliance/report.ErrNotFound", report.ErrNotFound, notFound),
		r("appliance/report/verify.ErrFormat", verify.ErrFormat, refused("report_invalid", "report is not in its canonical format")),
		r("appliance/report/verify.ErrSignature", verify.ErrSignature, refused("bad_signature", "report signature does not verify")),
		r("appliance/report/verify.ErrCheckpoint", verify.ErrCheckpoint, refused("bad_checkpoint", "the report's audit checkpoint does not verify")),
		r("appliance/report/verify.ErrProof", verify.ErrProof, refused("bad_proof", "an inclusion proof in the report does not verify")),
		r("appliance/report/verify.ErrEvidence", verify.ErrEvidence, refused("evidence_mismatch", "an evidence file does not match the report")),

		r("appliance/scan.ErrBadRequest", scan.ErrBadRequest, invalid),
		r("appliance/scan.ErrSpec", scan.ErrSpec, invalid),
		r("appliance/scan.ErrScanNotFound", scan.ErrScanNotFound, notFound),
		r("appliance/scan.ErrScheduleNotFound", scan.ErrScheduleNotFound, notFound),
		r("appliance/scan.ErrKeyNotFound", scan.ErrKeyNotFound, notFound),
		r("appliance/scan.ErrState", scan.ErrState, conflict),
		r("appliance/scan.ErrScopeRevoked", scan.ErrScopeRevoked, approval("scope_revoked", "the scope was revoked")),
		r("appliance/scan.ErrKeyExists", scan.ErrKeyExists, conflict),
		r("appliance/scan.ErrKeyRevoked", scan.ErrKeyRevoked, approval("key_revoked", "the scope-signing key was revoked")),
		r("appliance/scan.ErrKeyNotHeld", scan.ErrKeyNotHeld, conflict),

		r("appliance/report/review.ErrOpen", review.ErrOpen, conflict),
		r("appliance/report/review.ErrNotOpen", review.ErrNotOpen, conflict),
		r("appliance/report/review.ErrNotSigned", review.ErrNotSigned, conflict),
		r("appliance/report/review.ErrUndecided", review.ErrUndecided, conflict),
		r("appliance/report/review.ErrChanged", review.ErrChanged, conflict),
		r("appliance/report/review.ErrInvalid", review.ErrInvalid, invalid),
		r("appliance/report/review.ErrNotFound", review.ErrNotFound, notFound),
		r("appliance/report/verify.ErrReview", verify.ErrReview, refused("report_invalid", "the access review is inconsistent")),

		r("appliance/auditlog.ErrNoEntry", auditlog.ErrNoEntry, notFound),
		r("appliance/auditlog.ErrNotCovered", auditlog.ErrNotCovered, conflict),
		// The demo checks for root before it builds the sandbox; the row is
		// for completeness (a Go caller of sandbox.New without root).
		r("appliance/sandbox.ErrNotRoot", sandbox.ErrNotRoot, forbidden),
		r("appliance/sensor.ErrNotFound", sensor.ErrNotFound, notFound),
		r("appliance/sensor.ErrToken", sensor.ErrToken, unauthenticated),
		r("appliance/sensor.ErrInvalid", sensor.ErrInvalid, invalid),
		r("appliance/sensor.ErrExists", sensor.ErrExists, conflict),
		r("appliance/sensor.ErrRevoked", sensor.ErrRevoked, approval("sensor_revoked", "the sensor is revoked")),
		r("appliance/sensor.ErrFleetOff", sensor.ErrFleetOff, unavailable("fleet_off", "the sensor fleet is not configured or not running")),
		r("appliance/sensor.ErrSensorLost", sensor.ErrSensorLost, Class{Code: "sensor_lost", HTTP: http.StatusGatewayTimeout, Exit: ExitFailure, Message: "nothing arrived from the sensor within the job's validity"}),
		r("appliance/sensor.ErrMessage", sensor.ErrMessage, invalid),
		r("appliance/sensor.ErrTrust", sensor.ErrTrust, internal),
		r("appliance/sensor.ErrPin", sensor.ErrPin, Class{Code: "cert_pin_mismatch", HTTP: http.StatusBadGateway, Exit: ExitFailure, Message: "the server's certificate does not match the pinned SHA-256"}),
		r("appliance/sensor.ErrEnrolled", sensor.ErrEnrolled, conflict),
		r("appliance/sensor.ErrNotEnrolled", sensor.ErrNotEnrolled, invalid),
		r("appliance/sensor.ErrRefused", sensor.ErrRefused, unauthenticated),
		// A remote run's event the console refused: the scan fails with the
		// reason (scan.fail, code result-refused); it reaches no caller.
		r("appliance/sensor.ErrResultRefused", sensor.ErrResultRefused, internal),

		// Internal: never the caller's fault, never shown.
		r("appliance/siem.ErrNoSealer", siem.ErrNoSealer, internal),
		r("appliance/keyring.ErrSealed", keyring.ErrSealed, internal),
		r("appliance/auth.ErrBadHash", auth.ErrBadHash, internal),
		r("audit.ErrBadEncoding", audit.ErrBadEncoding, internal),
		r("audit.ErrTreeCorrupt", audit.ErrTreeCorrupt, internal),
		r("audit.ErrUnknownAction", audit.ErrUnknownAction, internal),
		r("audit.ErrBadDetails", audit.ErrBadDetails, internal),
		r("audit.ErrNoSigner", audit.ErrNoSigner, internal),
		r("vault.ErrBadRecord", vault.ErrBadRecord, internal),
		r("probe.ErrTruncated", probe.ErrTruncated, internal),
		r("probe.ErrUnsupported", probe.ErrUnsupported, internal),
	}
}

// Codes of classes that the HTTP layer uses for its own errors (not
// sentinels of a service): pass them to Of.
const (
	CodeInternal         = "internal"
	CodeTooLarge         = "too_large"
	CodeRateLimited      = "rate_limited"
	CodeInvalid          = "invalid_argument"
	CodeNotFound         = "not_found"
	CodeUnauthenticated  = "unauthenticated"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeStepUpRequired   = "step_up_required"
	CodeUnsupportedMedia = "unsupported_media_type"
)

// own are the classes not tied to a sentinel.
func own() []Class {
	return []Class{internal, tooLarge, invalid, notFound, unauthenticated, rateLimited,
		{Code: CodeMethodNotAllowed, HTTP: http.StatusMethodNotAllowed, Exit: ExitUsage, Message: "method not allowed"},
		{Code: CodeUnsupportedMedia, HTTP: http.StatusUnsupportedMediaType, Exit: ExitUsage, Message: "request bodies must be application/json"}}
}

// Classify returns the class of err: the first rule (extra rules first,
// then Rules) whose error err wraps, or Internal. A nil err is Class{}
// (exit 0).
func Classify(err error, extra ...Rule) Class {
	if err == nil {
		return Class{Exit: ExitOK, HTTP: http.StatusOK}
	}
	for _, r := range extra {
		if errors.Is(err, r.Err) {
			return r.Class
		}
	}
	for _, r := range Rules() {
		if errors.Is(err, r.Err) {
			return r.Class
		}
	}
	return internal
}

// Of returns the class with code, or the internal class for an unknown
// code (a programming error the tests catch).
func Of(code string) Class {
	if c, ok := ByCode(code); ok {
		return c
	}
	return internal
}

// ByCode returns the class with the given code (for a client that read a
// code from an API error body and wants the exit code).
func ByCode(code string) (Class, bool) {
	for _, c := range own() {
		if c.Code == code {
			return c, true
		}
	}
	for _, r := range Rules() {
		if r.Class.Code == code {
			return r.Class, true
		}
	}
	return Class{}, false
}

// Message returns what a caller may be told about err of class c: the
// error's own first line when c.Detail allows it, else c.Message.
func Message(c Class, err error) string {
	if !c.Detail || err == nil {
		return c.Message
	}
	msg, _, _ := strings.Cut(err.Error(), "\n")
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return msg
}
