package ui

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// routes registers every route. The OpenAPI document (openapi.json) lists
// exactly these; TestOpenAPICoversRoutes fails when they differ.
func (s *Server) routes() {
	e := s.e
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", s.metricsHandler)
	if s.d.Pages != nil {
		s.d.Pages.Register(e, s.rateLimited) // the web console (ui/console)
	}

	v1 := e.Group("/api/v1")
	v1.GET("/openapi.json", s.openapi)
	v1.GET("/version", s.version)

	// Login steps: no principal yet; each is rate limited per address.
	v1.POST("/auth/login", s.login, s.rateLimited("login"))
	v1.POST("/auth/totp", s.totp, s.rateLimited("totp"))
	v1.POST("/auth/recovery", s.recovery, s.rateLimited("recovery"))
	v1.POST("/auth/enrol", s.enrol, s.rateLimited("enrol"))
	v1.POST("/auth/enrol/confirm", s.enrolConfirm, s.rateLimited("totp"))
	v1.POST("/auth/key/begin", s.keyLoginBegin, s.rateLimited("totp"))
	v1.POST("/auth/key", s.keyLogin, s.rateLimited("totp"))
	// A sensor host's enrolment: the one-time token is the credential.
	v1.POST("/sensors/enroll", s.enrollSensor, s.rateLimited("sensor-enroll"))

	// Everything else needs a principal. The middleware is per route, not
	// per group: an echo group with middleware registers catch-all routes,
	// which would answer 401 instead of 404 for unknown paths.
	a := authedGroup{g: v1, mw: s.authenticated}
	a.POST("/auth/password", s.changePassword, s.rateLimited("password"))
	a.POST("/auth/step-up", s.stepUp, s.rateLimited("step-up"))
	a.POST("/auth/logout", s.logout)
	a.POST("/auth/logout-all", s.logoutAll)
	a.GET("/auth/sessions", s.sessions)
	a.GET("/auth/whoami", s.whoami)
	a.POST("/auth/recovery-codes", s.regenerateRecoveryCodes)
	a.POST("/auth/step-up/key/begin", s.keyStepUpBegin, s.rateLimited("step-up"))
	a.POST("/auth/step-up/key", s.keyStepUp, s.rateLimited("step-up"))
	a.GET("/auth/keys", s.listKeys)
	a.POST("/auth/keys", s.keyRegisterBegin)
	a.POST("/auth/keys/finish", s.keyRegisterFinish)
	a.DELETE("/auth/keys/:id", s.removeKey)
	a.GET("/auth/key-policy", s.keyPolicy)
	a.POST("/auth/key-policy", s.setKeyPolicy)

	a.GET("/tenants", s.listTenants)
	a.POST("/tenants", s.createTenant)

	a.GET("/users", s.listUsers)
	a.POST("/users", s.createUser)
	a.POST("/users/:id/role", s.setRole)
	a.POST("/users/:id/disable", s.disableUser)
	a.POST("/users/:id/reset-totp", s.resetTOTP)

	a.GET("/tokens", s.listTokens)
	a.POST("/tokens", s.createToken)
	a.DELETE("/tokens/:id", s.revokeToken)

	a.GET("/support", s.listSupport)
	a.POST("/support", s.openSupport)
	a.POST("/support/:id/close", s.closeSupport)

	a.GET("/approvals", s.listApprovals)
	a.GET("/approvals/:id", s.getApproval)
	a.POST("/approvals/:id/approve", s.approve)
	a.POST("/approvals/:id/deny", s.deny)
	a.POST("/approvals/:id/void", s.voidApproval)

	a.GET("/alerts", s.listAlerts)
	a.POST("/alerts/:id/ack", s.ackAlert)

	a.GET("/siem/destinations", s.listDestinations)
	a.POST("/siem/destinations", s.addDestination)
	a.DELETE("/siem/destinations/:name", s.removeDestination)
	a.POST("/siem/destinations/:name/test", s.testDestination)
	a.GET("/siem/status", s.siemStatus)

	a.GET("/audit/entries", s.auditEntries)
	a.GET("/audit/checkpoint", s.auditCheckpoint)
	a.GET("/audit/alarm", s.auditAlarm)
	a.POST("/audit/alarm/ack", s.auditAlarmAck)

	a.GET("/scopes", s.listScopes)
	a.POST("/scopes", s.registerScope)
	a.GET("/scopes/:id", s.getScope)
	a.POST("/scopes/:id/revoke", s.revokeScope)

	a.GET("/scope-keys", s.listScopeKeys)
	a.POST("/scope-keys", s.addScopeKey)
	a.POST("/scope-keys/generate", s.generateScopeKey)
	a.DELETE("/scope-keys/:id", s.revokeScopeKey)
	a.POST("/scope-keys/:id/sign", s.signScope)

	a.GET("/scans", s.listScans)
	a.POST("/scans", s.requestScan)
	a.GET("/scans/:id", s.getScan)
	a.POST("/scans/:id/approve", s.approveScan)
	a.POST("/scans/:id/deny", s.denyScan)
	a.POST("/scans/:id/start", s.startScan)
	a.POST("/scans/:id/cancel", s.cancelScan)
	a.GET("/scans/:id/results", s.scanResults)
	a.GET("/scans/:id/export", s.exportScan)
	a.GET("/scans/:id/events", s.scanEvents)

	a.GET("/scan-schedules", s.listSchedules)
	a.POST("/scan-schedules", s.createSchedule)
	a.GET("/scan-schedules/:id", s.getSchedule)
	a.POST("/scan-schedules/:id/approve", s.approveSchedule)
	a.POST("/scan-schedules/:id/edit", s.editSchedule)
	a.POST("/scan-schedules/:id/void", s.voidSchedule)

	a.GET("/sensors", s.listSensors)
	a.POST("/sensors/tokens", s.createSensorToken)
	a.GET("/sensors/:id", s.getSensor)
	a.POST("/sensors/:id/revoke", s.revokeSensor)

	a.GET("/evidence", s.listEvidence)
	a.POST("/evidence/exports", s.requestExport)
	a.GET("/evidence/exports/:id", s.getExport)
	a.POST("/evidence/exports/:id/url", s.exportURL)

	a.GET("/policies", s.listPolicies)
	a.POST("/policies", s.createPolicy)
	a.GET("/policies/:name", s.getPolicy)
	a.POST("/policies/:name/dry-run", s.dryRunPolicy)
	a.POST("/policies/:name/evaluate", s.evaluatePolicy)
	a.POST("/policies/:name/baseline", s.acceptBaseline)

	a.GET("/reports", s.listReports)
	a.POST("/reports", s.createReport)
	a.GET("/reports/:id", s.getReport)
	a.GET("/reports/:id/download", s.downloadReport)

	a.GET("/reviews", s.listReviews)
	a.POST("/reviews", s.startReview)
	a.GET("/reviews/due", s.reviewDue)
	a.GET("/reviews/:id", s.getReview)
	a.POST("/reviews/:id/decide", s.decideReview)
	a.POST("/reviews/:id/sign", s.signReview)
	a.GET("/reviews/:id/download", s.downloadReview)
}

// authedGroup registers routes behind the authentication middleware; extra
// middleware (rate limits) runs after it.
type authedGroup struct {
	g  *echo.Group
	mw echo.MiddlewareFunc
}

func (a authedGroup) add(method, path string, h echo.HandlerFunc, mw ...echo.MiddlewareFunc) {
	a.g.Add(method, path, h, append([]echo.MiddlewareFunc{a.mw}, mw...)...)
}

func (a authedGroup) GET(path string, h echo.HandlerFunc, mw ...echo.MiddlewareFunc) {
	a.add(http.MethodGet, path, h, mw...)
}

func (a authedGroup) POST(path string, h echo.HandlerFunc, mw ...echo.MiddlewareFunc) {
	a.add(http.MethodPost, path, h, mw...)
}

func (a authedGroup) DELETE(path string, h echo.HandlerFunc, mw ...echo.MiddlewareFunc) {
	a.add(http.MethodDelete, path, h, mw...)
}
