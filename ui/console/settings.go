package console

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/scan"
	"firewalliq/appliance/siem"
	"firewalliq/probe/safety"
	"firewalliq/vault"
)

// The settings page: what the appliance is configured with, read through
// the services that own it. The vault (backend, bucket, lock mode and
// retention, health, spool), the SIEM destinations' delivery (managed on
// the SIEM page), the tenant's scan schedules (proposed, approved and
// voided through scan.Scans) and the compiled-in safety profile. The vault
// and the profile are read-only here: their services have no write
// method (the vault is configured in the configuration file, the profile
// is compiled into the binary and no setting raises a cap).

type settingsData struct {
	// Vault is nil without an evidence vault; VaultShown says the user's
	// role may see it.
	VaultShown bool
	Vault      *vault.Status
	Store      vault.Settings
	// RetentionDays is Store.Retention in days.
	RetentionDays int
	// SIEM is the destinations' delivery state; SIEMShown says the user
	// may read it.
	SIEMShown bool
	SIEM      []siem.Status
	// Schedules are the tenant's scan schedules; SchedulesShown says the
	// user may read them, CanPropose that they may propose one.
	SchedulesShown bool
	Schedules      []scan.Schedule
	CanPropose     bool
	CanApprove     bool
	CanVoid        bool
	Scopes         []scan.Scope
	Probes         []string
	Cap            int
	MaxDays        int
	// Profile is the verified safety profile (read-only).
	Profile    safety.Profile
	ProfileSHA string
	ProfileKey string
	Kinds      string
}

func (c *Console) settingsPage(ec echo.Context) error {
	ctx := ec.Request().Context()
	p, _ := principal(ec)
	tenant, tenants, err := c.tenantFor(ec, p)
	if err != nil {
		return err
	}
	d := settingsData{Profile: c.d.Profile, ProfileSHA: c.d.Profile.SHA256(), ProfileKey: c.d.Profile.KeyID(),
		Cap: c.d.Profile.GlobalPPS, MaxDays: scan.MaxScheduleDays}
	kinds := make([]string, 0, len(c.d.Profile.ProbeKinds))
	for _, k := range c.d.Profile.ProbeKinds {
		kinds = append(kinds, string(k))
	}
	d.Kinds = strings.Join(kinds, ", ")
	// The vault is appliance-wide and holds no tenant data; its settings
	// are for the roles that read evidence, and appliance admins.
	if p.ApplianceAdmin() || c.allowed(p.Role, auth.OpEvidenceRead) {
		d.VaultShown = true
		if c.d.Evidence != nil {
			st := c.d.Evidence.Status()
			d.Vault = &st
			d.Store = c.d.Evidence.Settings()
			d.RetentionDays = int(d.Store.Retention.Hours() / 24)
		}
	}
	if c.d.SIEM != nil && c.allowed(p.Role, auth.OpSIEMRead) {
		// An appliance admin sees every destination (tenant "" lists
		// all); the service scopes a tenant user to their own.
		siemTenant := ""
		if p.ApplianceAdmin() {
			siemTenant = ec.QueryParam("tenant")
		}
		ss, err := c.d.SIEM.Status(ctx, p, siemTenant)
		if err != nil {
			return err
		}
		d.SIEM, d.SIEMShown = ss, true
	}
	if c.d.Scans != nil && c.allowed(p.Role, auth.OpScanRead) && (p.TenantID != "" || tenant != "") {
		ss, err := c.d.Scans.ListSchedules(ctx, p, tenant)
		if err != nil {
			return err
		}
		d.Schedules, d.SchedulesShown = ss, true
		d.CanPropose = p.TenantID != "" && c.allowed(p.Role, auth.OpScanRequest)
		d.CanApprove = p.TenantID != "" && c.allowed(p.Role, auth.ApproveOperation(auth.KindScanSchedule))
		d.CanVoid = c.allowed(p.Role, auth.OpScanCancel)
		if d.CanPropose && c.d.Scopes != nil {
			scs, err := c.d.Scopes.List(ctx, p, tenant)
			if err != nil {
				return err
			}
			for _, s := range scs {
				if s.RevokedAt == "" {
					d.Scopes = append(d.Scopes, s)
				}
			}
			d.Probes = kinds
		}
	}
	return c.render(ec, http.StatusOK, "settings", view{Title: "Settings", Nav: "settings", Flash: flashOf(ec), Tenant: tenant, Tenants: tenants, Data: d})
}

// scheduleCreate proposes a scan schedule from the form (scan.Scans.
// CreateSchedule: checked like a scan request, pending until two
// approvers other than the requester approve it).
func (c *Console) scheduleCreate(ec echo.Context) error {
	if c.d.Scans == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	r := ec.Request()
	req := scan.ScheduleRequest{ScanRequest: scan.ScanRequest{ScopeID: strings.TrimSpace(r.PostFormValue("scope")), Targets: splitList(r.PostFormValue("targets")),
		Ports: strings.Join(strings.Fields(r.PostFormValue("ports")), " "), Probes: r.PostForm["probes"]},
		Spec: strings.TrimSpace(r.PostFormValue("spec"))}
	if req.ScopeID == "" {
		return errInvalid("choose a scope")
	}
	if req.Spec == "" {
		return errInvalid("give the schedule's times (@every 24h, or a five-field cron line in UTC)")
	}
	for field, dst := range map[string]*int{"rate": &req.Rate, "valid_days": &req.ValidDays} {
		if v := strings.TrimSpace(r.PostFormValue(field)); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return errInvalid(field + " must be a whole number, at least 1")
			}
			*dst = n
		}
	}
	sc, err := c.d.Scans.CreateSchedule(r.Context(), p, "", req)
	if err != nil {
		return err
	}
	return redirectFlash(ec, Prefix+"/settings#schedules", "Schedule "+sc.ID+" proposed; it runs once two approvers other than you approve it.")
}

// scheduleApprove approves another person's schedule (with step-up: the
// service challenges, stepUp prompts and posts again).
func (c *Console) scheduleApprove(ec echo.Context) error {
	if c.d.Scans == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	sc, err := c.d.Scans.ApproveSchedule(ec.Request().Context(), p, "", ec.Param("id"), "")
	if err != nil {
		return err
	}
	return redirectFlash(ec, Prefix+"/settings#schedules", "Approved; schedule "+sc.ID+" is now "+sc.State+".")
}

// scheduleVoid stops a schedule for good (scan.Scans.VoidSchedule; the
// service has no pause: a stopped schedule is proposed again to resume).
func (c *Console) scheduleVoid(ec echo.Context) error {
	if c.d.Scans == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	tenant, _, err := c.tenantFor(ec, p)
	if err != nil {
		return err
	}
	reason := strings.TrimSpace(ec.Request().PostFormValue("reason"))
	if reason == "" {
		return errInvalid("give a reason for stopping the schedule")
	}
	sc, err := c.d.Scans.VoidSchedule(ec.Request().Context(), p, tenant, ec.Param("id"), reason)
	if err != nil {
		return err
	}
	return redirectFlash(ec, back("/settings", tenant), "Schedule "+sc.ID+" stopped ("+sc.State+").")
}
