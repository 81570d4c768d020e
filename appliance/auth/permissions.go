package auth

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"firewalliq/appliance/store"
)

// Operation names one thing a principal can ask the appliance to do. The
// permission matrix (Permissions) says which roles may do it; docs/
// permissions.md is generated from the matrix and a test keeps them equal.
type Operation string

// Operations. Those with Owner "auth" are methods of Service, and
// TestMatrixWalk calls every one of them for every role. The others are
// enforced by the owning service through Service.Authorize.
const (
	OpTenantCreate Operation = "tenant.create"
	OpTenantList   Operation = "tenant.list"

	OpUserList       Operation = "user.list"
	OpUserCreate     Operation = "user.create"
	OpUserRoleChange Operation = "user.role.change"
	OpUserDisable    Operation = "user.disable"
	OpUserTOTPReset  Operation = "user.totp.reset"

	OpPasswordChange Operation = "auth.password.change"
	OpSessionList    Operation = "auth.session.list"
	OpLogoutAll      Operation = "auth.logout.all"
	OpRecoveryCodes  Operation = "auth.recovery.regenerate"
	OpTokenCreate    Operation = "token.create"
	OpTokenList      Operation = "token.list"
	OpTokenRevoke    Operation = "token.revoke"
	OpSupportOpen    Operation = "support.open"
	OpSupportClose   Operation = "support.close"
	OpSupportList    Operation = "support.list"
	OpApprovalList   Operation = "approval.list"
	OpApprovalGrant  Operation = "approval.grant"
	OpApprovalDeny   Operation = "approval.deny"
	OpApprovalVoid   Operation = "approval.void"
	// OpRoleGrantApprove approves a KindRoleGrant request: another admin's
	// grant of a privileged role.
	OpRoleGrantApprove Operation = "user.role.approve"
	OpScopeSign        Operation = "scope.sign"
	OpScopeRegister    Operation = "scope.register"
	OpScopeDelete      Operation = "scope.delete"
	OpScopeRead        Operation = "scope.read"
	OpPolicyEdit       Operation = "policy.edit"
	OpPolicyRead       Operation = "policy.read"
	OpScanRequest      Operation = "scan.request"
	OpScanCancel       Operation = "scan.cancel"
	OpScanRead         Operation = "scan.read"
	OpEvidenceExport   Operation = "evidence.export"
	OpReportRead       Operation = "report.read"
	OpAuditRead        Operation = "audit.read"
	OpAuditAlarmAck    Operation = "audit.alarm.ack"
	OpSettingsChange   Operation = "settings.change"
	OpSIEMConfigure    Operation = "siem.configure"
	OpAnomalyRead      Operation = "anomaly.read"
	OpAnomalyAck       Operation = "anomaly.ack"
	OpSIEMRead         Operation = "siem.read"
	OpSIEMTest         Operation = "siem.test"
	OpEvidenceRead     Operation = "evidence.read"

	// OpPolicyEvaluate judges a scan's results against a policy and sends
	// the findings to the SIEM; OpPolicyBaseline accepts a result set as
	// the drift baseline (step-up).
	OpPolicyEvaluate Operation = "policy.evaluate"
	OpPolicyBaseline Operation = "policy.baseline.accept"
	// OpReportCreate signs a compliance report and spools it as evidence.
	OpReportCreate Operation = "report.create"
	// OpScopeKeyAdd registers (or has the appliance generate and hold) a
	// security lead's own scope-signing key.
	OpScopeKeyAdd    Operation = "scope.key.add"
	OpScopeKeyList   Operation = "scope.key.list"
	OpScopeKeyRevoke Operation = "scope.key.revoke"
	// OpScopeRevoke revokes a registered scope: no new scan runs under it.
	OpScopeRevoke Operation = "scope.revoke"
	// OpScanStart is the requester's step-up that starts a scan: at
	// request for a non-production scope, after dual approval otherwise.
	OpScanStart Operation = "scan.start"

	// Access reviews (appliance/report/review). With tenant "" an
	// appliance admin acts on the appliance-admin review.
	OpReviewRead   Operation = "review.read"
	OpReviewStart  Operation = "review.start"
	OpReviewDecide Operation = "review.decide"
	OpReviewSign   Operation = "review.sign"
	OpSensorEnroll Operation = "sensor.enroll"
	OpSensorRead   Operation = "sensor.read"
	OpSensorRevoke Operation = "sensor.revoke"

	// Security keys (WebAuthn, webauthn.go): one's own keys, and the
	// appliance-wide requirement of keys for some roles.
	OpKeyRegister Operation = "auth.key.register"
	OpKeyList     Operation = "auth.key.list"
	OpKeyRemove   Operation = "auth.key.remove"
	OpKeyPolicy   Operation = "auth.key.policy"
)

// Permission is one row of the matrix.
type Permission struct {
	Op Operation
	// Roles that may perform Op.
	Roles []string
	// StepUp means Op needs a fresh TOTP bound to its request.
	StepUp bool
	// DualApproval means Op (for production scopes, or always for evidence
	// export) also needs two approvers through RequestApproval.
	DualApproval bool
	// ApplianceOnly means only appliance admins (users of no tenant) may do
	// it; tenant admins may not.
	ApplianceOnly bool
	// ApplianceWide means an appliance admin may also perform Op on no
	// tenant (tenant ""): on appliance-wide objects (SIEM destinations that
	// receive every tenant's events) or across all tenants (reading the
	// audit log). Authorize then pins the tenant "", which the owning
	// service reads as "appliance-wide".
	ApplianceWide bool
	// Owner is the package that enforces the check.
	Owner string
	// What describes the operation for docs/permissions.md.
	What string
}

// Permissions returns the permission matrix, in documentation order. It
// builds a fresh value each call, so no caller can change another's view.
func Permissions() []Permission {
	A, SL, AP, OP, AU := store.RoleAdmin, store.RoleSecurityLead, store.RoleApprover, store.RoleOperator, store.RoleAuditor
	all := store.Roles()
	staff := []string{A, SL, AP, OP, AU}
	return []Permission{
		{Op: OpTenantCreate, Roles: []string{A}, StepUp: true, ApplianceOnly: true, Owner: "auth", What: "create a tenant"},
		{Op: OpTenantList, Roles: []string{A}, ApplianceOnly: true, Owner: "auth", What: "list tenants"},
		{Op: OpUserList, Roles: []string{A, SL, AU}, Owner: "auth", What: "list a tenant's users and roles"},
		{Op: OpUserCreate, Roles: []string{A}, StepUp: true, Owner: "auth", What: "create a user (one-time password shown once); a privileged role needs another admin's approval if the tenant has one"},
		{Op: OpUserRoleChange, Roles: []string{A}, StepUp: true, Owner: "auth", What: "change a user's role (ends the user's sessions); a privileged role needs another admin's approval if the tenant has one"},
		{Op: OpUserDisable, Roles: []string{A}, StepUp: true, Owner: "auth", What: "disable a user (ends their sessions; their API tokens stop working)"},
		{Op: OpUserTOTPReset, Roles: []string{A}, StepUp: true, Owner: "auth", What: "reset a user's TOTP (lost device): ends sessions, voids recovery codes, re-enrolment at next login"},
		{Op: OpPasswordChange, Roles: all, Owner: "auth", What: "change one's own password"},
		{Op: OpSessionList, Roles: all, Owner: "auth", What: "list one's own sessions"},
		{Op: OpLogoutAll, Roles: all, Owner: "auth", What: "log out everywhere (end all of one's sessions)"},
		{Op: OpRecoveryCodes, Roles: all, StepUp: true, Owner: "auth", What: "replace one's own recovery codes (the old ones stop working)"},
		{Op: OpKeyRegister, Roles: all, StepUp: true, Owner: "auth", What: "register a security key (WebAuthn) for one's own account, in a browser session"},
		{Op: OpKeyList, Roles: all, Owner: "auth", What: "list one's own security keys (name, last use, clone warning)"},
		{Op: OpKeyRemove, Roles: all, StepUp: true, Owner: "auth", What: "remove one of one's own security keys"},
		{Op: OpKeyPolicy, Roles: []string{A}, StepUp: true, ApplianceOnly: true, Owner: "auth", What: "require security keys instead of TOTP for appliance admins or security leads (reading it needs no step-up)"},
		{Op: OpTokenCreate, Roles: []string{A, SL, OP, AU}, StepUp: true, Owner: "auth", What: "create an API token (shown once; role no stronger than one's own)"},
		{Op: OpTokenList, Roles: []string{A, SL, OP, AU}, Owner: "auth", What: "list API tokens (admins: all of the tenant's; others: their own)"},
		{Op: OpTokenRevoke, Roles: []string{A, SL, OP, AU}, Owner: "auth", What: "revoke an API token (admins: any of the tenant's; others: their own)"},
		{Op: OpSupportOpen, Roles: []string{A}, StepUp: true, Owner: "auth", What: "open a support ticket: one support user, this tenant only, time-limited"},
		{Op: OpSupportClose, Roles: []string{A}, Owner: "auth", What: "close a support ticket early"},
		{Op: OpSupportList, Roles: []string{A, AU}, Owner: "auth", What: "list support tickets"},
		{Op: OpApprovalList, Roles: staff, Owner: "auth", What: "list approval requests and their grants"},
		{Op: OpApprovalGrant, Roles: []string{SL, AP}, StepUp: true, Owner: "auth", What: "approve another person's request (never one's own, once per request)"},
		{Op: OpApprovalDeny, Roles: []string{SL, AP}, StepUp: true, Owner: "auth", What: "deny another person's pending request (never one's own), with a fresh step-up bound to the request as for approve"},
		{Op: OpApprovalVoid, Roles: []string{A, SL, OP, AU}, Owner: "auth", What: "withdraw (void) a request; requesters may void their own"},
		{Op: OpRoleGrantApprove, Roles: []string{A}, StepUp: true, Owner: "auth", What: "approve another admin's grant of a privileged role (approver, security_lead, admin) in one's tenant (never one's own)"},
		{Op: OpScopeSign, Roles: []string{SL}, StepUp: true, Owner: "scan", What: "sign a scope document"},
		{Op: OpScopeRegister, Roles: []string{SL}, Owner: "scan", What: "register a signed scope document"},
		{Op: OpScopeDelete, Roles: []string{SL}, StepUp: true, Owner: "scan", What: "delete a scope"},
		{Op: OpScopeRead, Roles: all, Owner: "scan", What: "read scopes"},
		{Op: OpPolicyEdit, Roles: []string{SL, OP}, Owner: "policy", What: "edit the expected policy"},
		{Op: OpPolicyRead, Roles: all, Owner: "policy", What: "read expected policies"},
		{Op: OpPolicyEvaluate, Roles: []string{SL, OP}, Owner: "policy", What: "evaluate a scan's results against a policy (findings go to the SIEM)"},
		{Op: OpPolicyBaseline, Roles: []string{SL}, StepUp: true, Owner: "policy", What: "accept a scan's results as the drift baseline of a scope and policy"},
		{Op: OpScanRequest, Roles: []string{SL, OP}, DualApproval: true, Owner: "scan", What: "request a scan (production scopes need dual approval)"},
		{Op: OpScanCancel, Roles: []string{A, SL, OP}, Owner: "scan", What: "cancel a scan"},
		{Op: OpScanRead, Roles: all, Owner: "scan", What: "read scans, results and findings"},
		{Op: OpEvidenceExport, Roles: []string{A, SL, AU}, StepUp: true, DualApproval: true, Owner: "vault", What: "export an evidence bundle (always dual approval)"},
		{Op: OpReportRead, Roles: all, Owner: "policy", What: "read, verify and download compliance reports"},
		{Op: OpReportCreate, Roles: []string{SL, OP}, Owner: "report", What: "create a signed compliance report (stored as WORM evidence)"},
		{Op: OpAuditRead, Roles: []string{A, SL, AU}, ApplianceWide: true, Owner: "audit", What: "read and verify the audit log (tenant users: their tenant's entries)"},
		{Op: OpAuditAlarmAck, Roles: []string{A}, StepUp: true, ApplianceOnly: true, Owner: "audit", What: "acknowledge an audit tamper alarm (the log is appliance-wide, so appliance admins only)"},
		{Op: OpSettingsChange, Roles: []string{A}, StepUp: true, Owner: "appliance", What: "change appliance or tenant settings"},
		{Op: OpSIEMConfigure, Roles: []string{A}, StepUp: true, ApplianceWide: true, Owner: "siem", What: "add or remove SIEM destinations"},
		{Op: OpAnomalyRead, Roles: []string{A, SL, AU}, ApplianceWide: true, Owner: "audit", What: "read anomaly alerts"},
		{Op: OpAnomalyAck, Roles: []string{A, SL}, ApplianceWide: true, Owner: "audit", What: "acknowledge an anomaly alert (once; the alert stays in the log)"},
		{Op: OpSIEMRead, Roles: []string{A, AU}, ApplianceWide: true, Owner: "siem", What: "list SIEM destinations and their delivery status"},
		{Op: OpSIEMTest, Roles: []string{A}, ApplianceWide: true, Owner: "siem", What: "send a SIEM destination a test message (outside the outbox)"},
		{Op: OpEvidenceRead, Roles: []string{A, SL, AU}, Owner: "vault", What: "list recorded evidence objects"},
		{Op: OpScopeKeyAdd, Roles: []string{SL}, StepUp: true, Owner: "scan", What: "register one's own scope-signing public key, or have the appliance generate one it holds sealed"},
		{Op: OpScopeKeyList, Roles: []string{A, SL, AU}, Owner: "scan", What: "list the tenant's scope-signing keys"},
		{Op: OpScopeKeyRevoke, Roles: []string{A, SL}, StepUp: true, Owner: "scan", What: "revoke a scope-signing key (security leads: their own; admins: any of the tenant's): its scopes run no new scan, their pending approvals are voided"},
		{Op: OpScopeRevoke, Roles: []string{SL}, StepUp: true, Owner: "scan", What: "revoke a registered scope: no new scan runs under it, pending approvals are voided"},
		{Op: OpScanStart, Roles: []string{SL, OP}, StepUp: true, Owner: "scan", What: "start one's own scan request (non-production: with the request; production: after dual approval)"},
		{Op: OpReviewRead, Roles: []string{A, SL, AU}, ApplianceWide: true, Owner: "review", What: "list, show and download access reviews and see when the next is due (appliance admins: also the appliance-admin review)"},
		{Op: OpReviewStart, Roles: []string{A, SL}, ApplianceWide: true, Owner: "review", What: "start an access review (a snapshot of users, roles, MFA, tokens, support tickets and review flags)"},
		{Op: OpReviewDecide, Roles: []string{A, SL}, ApplianceWide: true, Owner: "review", What: "mark lines of an open access review keep or revoke (never one's own account)"},
		{Op: OpReviewSign, Roles: []string{A, SL}, StepUp: true, ApplianceWide: true, Owner: "review", What: "sign an access review: its revocations take effect, its review flags close, the signed document is stored as evidence"},
		{Op: OpSensorEnroll, Roles: []string{A}, StepUp: true, Owner: "sensor", What: "create a one-time sensor enrolment token (shown once)"},
		{Op: OpSensorRead, Roles: []string{A, SL, OP, AU}, Owner: "sensor", What: "list and show sensors and their state"},
		{Op: OpSensorRevoke, Roles: []string{A}, StepUp: true, Owner: "sensor", What: "revoke a sensor (its connection closes at once, its credentials are refused)"},
	}
}

// selfService reports whether op acts only on the caller's own account, so
// a support user may do it without a ticket.
func selfService(op Operation) bool {
	switch op {
	case OpPasswordChange, OpSessionList, OpLogoutAll, OpRecoveryCodes, OpKeyRegister, OpKeyList, OpKeyRemove:
		return true
	}
	return false
}

// permission returns op's row.
func permission(op Operation) (Permission, bool) {
	for _, p := range Permissions() {
		if p.Op == op {
			return p, true
		}
	}
	return Permission{}, false
}

// Allowed reports whether role may perform op according to the matrix.
func Allowed(role string, op Operation) bool {
	p, ok := permission(op)
	return ok && slices.Contains(p.Roles, role)
}

// NeedsStepUp reports whether op needs a step-up TOTP.
func NeedsStepUp(op Operation) bool {
	p, _ := permission(op)
	return p.StepUp
}

// weaker reports whether role's rights are a subset of than's, judged on the
// matrix itself, so that a token can never carry more than its creator.
func weaker(role, than string) bool {
	for _, p := range Permissions() {
		if slices.Contains(p.Roles, role) && !slices.Contains(p.Roles, than) {
			return false
		}
	}
	return true
}

// PermissionsMarkdown renders the matrix as docs/permissions.md.
func PermissionsMarkdown() string {
	var b strings.Builder
	roles := store.Roles()
	b.WriteString("# Permissions\n\n")
	b.WriteString("Generated from `appliance/auth/permissions.go` by\n`go test ./appliance/auth -run TestPermissionsDoc -update`; a test fails when they differ,\n")
	b.WriteString("and `TestMatrixWalk` calls every `auth` operation as every role and checks the outcome\nagainst this table.\n\n")
	b.WriteString("- **x**: allowed. **x†**: allowed with a fresh step-up TOTP bound to the request (valid 5 minutes, used once).\n")
	b.WriteString("- **dual**: also needs two approvals (`approver` or `security_lead`, neither the requester nor created or changed by them, each with step-up);\n  for scans only when the scope is production, for evidence export always.\n")
	b.WriteString("- **appliance**: only appliance admins (users of no tenant), not tenant admins.\n")
	b.WriteString("- **appliance-wide**: an appliance admin may also act on no tenant: appliance-wide objects or all tenants.\n")
	b.WriteString("- `admin` is a tenant's admin (acting in that tenant) or an appliance admin; an appliance admin acts in a\n  tenant only where the operation names the tenant explicitly (it has no tenant of its own).\n")
	b.WriteString("- API tokens act with the token's role in the token's tenant; they cannot step up or create tokens.\n")
	b.WriteString("- `support` users have no rights of their own. While a tenant admin's support ticket is open they may,\n  in that tenant only: " +
		"`scope.read`, `policy.read`, `scan.read`, `report.read` (and manage their own password and sessions).\n  Every other attempt, and any attempt on another tenant, is refused and audited as `access.denied`.\n")
	b.WriteString("- Every refusal is written to the audit log as `access.denied` with the operation and reason.\n\n")
	b.WriteString("| operation | what |")
	for _, r := range roles {
		b.WriteString(" " + r + " |")
	}
	b.WriteString(" notes | enforced by |\n|---|---|")
	for range roles {
		b.WriteString("---|")
	}
	b.WriteString("---|---|\n")
	for _, p := range Permissions() {
		fmt.Fprintf(&b, "| `%s` | %s |", p.Op, p.What)
		for _, r := range roles {
			cell := ""
			switch {
			case r == store.RoleSupport && slices.Contains(p.Roles, r) && !selfService(p.Op):
				cell = "ticket"
			case slices.Contains(p.Roles, r):
				cell = "x"
				if p.StepUp {
					cell = "x†"
				}
			}
			b.WriteString(" " + cell + " |")
		}
		var notes []string
		if p.DualApproval {
			notes = append(notes, "dual")
		}
		if p.ApplianceOnly {
			notes = append(notes, "appliance")
		}
		if p.ApplianceWide {
			notes = append(notes, "appliance-wide")
		}
		fmt.Fprintf(&b, " %s | `%s` |\n", strings.Join(notes, ", "), p.Owner)
	}
	b.WriteString("\n`ticket`: only during an open support ticket, pinned to that ticket's tenant.\n")
	writeParams(&b)
	b.WriteString(serviceGuide)
	return b.String()
}

// serviceGuide tells the other services how to enforce this table.
const serviceGuide = `
## Enforcing it in a service

- Authenticate first: ` + "`auth.RequestFrom(r)`" + ` then ` + "`Service.Authenticate`" + ` (session cookie, CSRF on every
  state-changing method, idle/absolute timeouts, support pinning) or ` + "`Service.AuthenticateToken`" + ` (API token).
- Every operation starts with ` + "`Service.Authorize(ctx, p, op, tenant)`" + ` or ` + "`Service.Scoped`" + ` (which returns the
  ` + "`store.TenantStore`" + ` pinned to the allowed tenant). Refusals are audited there. A lookup by id that finds
  nothing in the pinned tenant goes through ` + "`Service.RefuseNotFound`" + `, so cross-tenant probing is audited too.
- Step-up operations call ` + "`Service.UseStepUp(ctx, tx, p, op, canonicalRequest, code)`" + ` inside the transaction that
  performs them (code "" spends a grant made earlier by ` + "`Service.StepUp`" + ` for the same bytes) and, after the
  rollback, ` + "`Service.StepUpRefused`" + ` to audit the failure.
- Dual approval: ` + "`RequestApproval(ctx, p, kind, canonicalRequest)`" + ` (kinds ` + "`scan.production`" + `,
  ` + "`evidence.export`" + `, and ` + "`user.role.grant`" + ` on ` + "`CreateUserRequest`" + `/` + "`SetRoleRequest`" + ` for a privileged
  role, approved by another admin), ` + "`Approve(ctx, approver, id, code)`" + ` (step up for ` + "`ApproveOperation(kind)`" + `), and right before acting
  ` + "`CheckApproved(ctx, id, canonicalRequest)`" + ` or ` + "`VerifiedApproval(ctx, tenant, id, canonicalRequest)`" + `
  (which also returns the approvers for manifests). Different bytes void the request for good. Approvers who no longer
  count (disabled, demoted, or changed since the request) make it fail with ` + "`ErrApproverNotCounted`" + `; ` + "`SpendApproval`" + ` counts again.
- Scan requests and exports call ` + "`Service.RecordActivity(ctx, tx, p, activity)`" + ` in their transaction; crossing
  a threshold writes ` + "`anomaly.alert`" + ` in that same transaction, and the SIEM outbox forwards it like any entry.
`

// human writes a duration the way people say it: "90 days", "15 minutes".
func human(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %ss", n, one)
	}
	switch {
	case d%(24*time.Hour) == 0:
		return unit(int64(d/(24*time.Hour)), "day")
	case d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	case d%time.Minute == 0:
		return unit(int64(d/time.Minute), "minute")
	}
	return d.String()
}

// writeParams documents the authentication defaults (DefaultParams), so the
// numbers in the document are the ones in the code.
func writeParams(b *strings.Builder) {
	d := DefaultParams()
	b.WriteString("\n## Authentication defaults\n\n")
	b.WriteString("From `auth.DefaultParams()`; every one is injectable through `auth.Deps.Params`.\n\n")
	b.WriteString("| what | default |\n|---|---|\n")
	row := func(what, v string) { fmt.Fprintf(b, "| %s | %s |\n", what, v) }
	row("password hash", fmt.Sprintf("argon2id, t=%d, m=%d KiB, p=%d, 16-byte salt, 32-byte key (PHC string; parameters stored per hash)", d.Argon.Time, d.Argon.MemoryKiB, d.Argon.Threads))
	row("minimum password length", fmt.Sprintf("%d characters", MinPasswordLength))
	row("password throttle", fmt.Sprintf("per (login name, source address), never per account: after %d wrong passwords the pair is refused for %s, doubling with every further failure up to %s; forgotten after %s without a failure, cleared by a right password from that address; unknown names alike (same answer, one argon2 run)", d.ThrottleThreshold, human(d.ThrottleBase), human(d.ThrottleMax), human(d.ThrottleForget)))
	row("second-factor lockout", fmt.Sprintf("after %d consecutive wrong TOTP, recovery or step-up codes (the password was right): the account, %s, doubling per further lockout up to %s; reset by a completed login", d.LockoutThreshold, human(d.LockoutBase), human(d.LockoutMax)))
	row("per-address limit", fmt.Sprintf("%d failed logins per %s sliding window, across all user names", d.IPMaxFailures, human(d.IPWindow)))
	row("TOTP", fmt.Sprintf("RFC 6238, SHA-1, 6 digits, %d s steps, ±%d step; last accepted step stored per user (no replay); secret sealed with the master key", totpPeriod, totpSkew))
	row("recovery codes", fmt.Sprintf("%d single-use codes, stored as SHA-256", d.RecoveryCodes))
	row("security keys", fmt.Sprintf("WebAuthn, attestation \"none\", user presence (no PIN) required; at most %d per user; a begun ceremony lives %s, once, bound to its session; a signature counter that does not advance refuses the key and flags it", MaxKeys, human(d.KeyCeremonyTTL)))
	row("half-finished login", human(d.PendingTTL))
	row("session idle / absolute timeout", human(d.SessionIdle)+" / "+human(d.SessionAbsolute))
	row("session cookie", "`"+SessionCookieName+"`: HttpOnly, Secure, SameSite=Strict, Path=/; new id at every login step, password change and role change")
	row("CSRF", "HMAC-SHA256 of the session secret; required on every method except GET, HEAD, OPTIONS, TRACE (header `"+CSRFHeader+"`)")
	row("step-up validity", human(d.StepUpTTL)+", once, bound to SHA-256 of the operation's canonical request")
	row("approval validity", human(d.ApprovalTTL)+fmt.Sprintf(", %d distinct approvers (a privileged role grant: %d other admin), each independent of the requester: not created or changed by them or after the request, still enabled and approving when the action runs", RequiredApprovals, KindRoleGrant.required()))
	row("API token lifetime", human(d.TokenDefaultTTL)+" default, "+human(d.TokenMaxTTL)+" maximum")
	row("support ticket", "at most "+human(d.SupportMaxTTL))
	for _, a := range []Activity{ActivityScanRequest, ActivityExport, ActivityLoginFailed} {
		r := d.Anomaly[a]
		row("anomaly alert: "+string(a), fmt.Sprintf("%d per user in %s (one `anomaly.alert` per window)", r.Threshold, human(r.Window)))
	}
	r := d.Anomaly[ActivityLoginSources]
	row("anomaly alert: "+string(ActivityLoginSources), fmt.Sprintf("failed logins for one account from %d distinct addresses in %s (one `anomaly.alert` per window)", r.Threshold, human(r.Window)))
	row("anomaly alert: role.grant.unapproved", "a privileged role granted in a tenant with no other independent admin; also flagged for the next access review (`auth_review_flags`)")
}

// Roles, as adapters (the console, the API) name them: the store's role
// names, re-exported so that nothing above the services imports the store.
const (
	RoleAdmin        = store.RoleAdmin
	RoleSecurityLead = store.RoleSecurityLead
)

// Roles lists every role, most privileged first.
func Roles() []string { return store.Roles() }
