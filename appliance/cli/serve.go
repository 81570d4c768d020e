package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"firewalliq/appliance"
	"firewalliq/appliance/buildinfo"
	"firewalliq/appliance/keyring"
	"firewalliq/probe/safety"
	"firewalliq/ui"
	"firewalliq/ui/console"
)

func newServeCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the appliance: console over HTTPS and background workers",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, env)
			if err != nil {
				return err
			}
			// Production mode runs only a release build: a profile signed by
			// the (public) development key, or the lab profile, proves
			// nothing about who approved the caps (exit 4).
			if err := refuseUnfitBuild("serve", cfg.Production, safety.Load); err != nil {
				return err
			}
			ctx := cmd.Context()
			// The appliance's structured log (at log_level) goes to the
			// command's standard error.
			app, err := appliance.OpenWith(ctx, cfg, env.Now, appliance.Options{LogOutput: env.Stderr})
			if err != nil {
				return err
			}
			defer app.Close()
			ln, err := net.Listen("tcp", cfg.Listen)
			if err != nil {
				return fmt.Errorf("serve: %w", err)
			}
			return serveConsole(ctx, env, app, ln)
		},
	}
	cmd.Flags().String("listen", "", "console address (env FIQ_LISTEN, default :8443)")
	return cmd
}

// serveConsole serves the web console and the API on ln, and runs the
// appliance's background workers, until ctx ends (serve, and the demo's
// console). It closes ln.
func serveConsole(ctx context.Context, env *Env, app *appliance.Appliance, ln net.Listener) error {
	defer ln.Close()
	logger := app.Logger
	pages, err := newConsolePages(app, logger, env.Now)
	if err != nil {
		return err
	}
	console, err := ui.New(ui.Deps{
		Pages:     pages,
		Auth:      app.Auth,
		SIEM:      app.SIEM,
		Audit:     app.Audit,
		Scopes:    app.Scopes,
		ScopeKeys: app.ScopeKeys,
		Scans:     app.Scans,
		Evidence:  app.Evidence,
		Policies:  app.Policies,
		Reports:   app.Reports,
		Reviews:   app.Reviews,
		Sensors:   app.Sensors,
		Status:    func(ctx context.Context) ui.Status { return applianceStatus(ctx, app) },
		Version:   buildinfo.Get(),
		Logger:    logger,
		Now:       env.Now,
	})
	if err != nil {
		return err
	}
	cert, err := app.Keys.TLSCertificate()
	if err != nil {
		return err
	}
	fp, err := keyring.CertFingerprint(app.Keys.CertFile)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "console listening on https://%s (certificate SHA-256 %s)\n", ln.Addr(), fp)
	if alarm := app.AuditStartup.Alarm; alarm != nil {
		fmt.Fprintf(env.Stderr, "firewalliq: AUDIT TAMPER ALARM: entry %d is broken (%s); scans and evidence exports are refused until an admin acknowledges it\n", alarm.BadSeq, termSafe(alarm.Reason))
	}
	bg, stopBG := context.WithCancel(ctx)
	bgDone := make(chan struct{})
	go func() {
		defer close(bgDone)
		app.Run(bg, nil) // errors go to app.Logger
	}()
	defer func() { stopBG(); <-bgDone }()
	srv := &http.Server{Handler: console.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	// TLS 1.2 or later; HTTP/2 where the client offers it. A client
	// speaking plain HTTP to the port gets a redirect to https and
	// nothing else (ui.TLSListener).
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	// Shutdown waits for active requests, and it cancels none of their
	// contexts: a scan's event stream would hold it until the scan ends.
	// The streams end (with a retry delay for the browser) as soon as the
	// shutdown begins.
	srv.RegisterOnShutdown(console.EndStreams)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ui.TLSListener(ln, srv.TLSConfig)) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: shutdown: %w", err)
	}
	return nil
}

// applianceStatus maps the appliance's health to what /readyz and /metrics
// report. It only reads.
func applianceStatus(ctx context.Context, app *appliance.Appliance) ui.Status {
	h, err := app.Health(ctx)
	if err != nil {
		return ui.Status{StoreError: "health unavailable", Errors: []string{"health: " + err.Error()}}
	}
	st := ui.Status{StoreError: h.StoreErr, AuditSize: h.AuditSize, AuditCheckpointSize: h.CheckpointSize}
	if prof, err := safety.Load(); err == nil {
		st.CapPPS = prof.GlobalPPS
	}
	if h.CheckpointSize > 0 {
		st.AuditCheckpointAt = app.Now().Add(-h.CheckpointAge)
	}
	if h.Alarm != nil {
		st.AuditAlarm = fmt.Sprintf("entry %d is broken (%s)", h.Alarm.BadSeq, h.Alarm.Reason)
	}
	if v := h.Vault; v != nil {
		st.Vault = &ui.VaultStatus{Backend: v.Backend, WORM: v.WORM, CheckError: v.CheckErr, SpoolBytes: v.Spool.Bytes, SpoolPending: v.Spool.Pending, SpoolFull: v.Spool.Full}
	}
	if ds, err := app.Reviews.Schedule(ctx); err != nil {
		st.Errors = append(st.Errors, "access review schedule: "+err.Error())
	} else {
		for _, d := range ds {
			st.Reviews = append(st.Reviews, ui.ReviewDue{Tenant: d.Tenant, LastSigned: d.LastSigned, DueAt: d.DueAt, Overdue: d.Overdue, Open: d.Open})
		}
	}
	for _, d := range h.SIEM {
		st.SIEM = append(st.SIEM, ui.SIEMStatus{Name: d.Name, Pending: d.Pending, PendingBytes: d.PendingBytes, Lag: d.Lag, LastError: d.LastError})
	}
	return st
}

// newConsolePages builds the web console's pages over the appliance's
// services. safety.Load verifies the embedded profile's signature; a
// failure stops serve.
func newConsolePages(app *appliance.Appliance, logger *slog.Logger, now func() time.Time) (*console.Console, error) {
	prof, err := safety.Load()
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	return console.New(console.Deps{
		Auth: app.Auth, Audit: app.Audit, SIEM: app.SIEM, Scopes: app.Scopes, ScopeKeys: app.ScopeKeys, Scans: app.Scans, Reviews: app.Reviews, Evidence: app.Evidence, Policies: app.Policies, Reports: app.Reports, Sensors: app.Sensors, Profile: prof, Logger: logger, Now: now,
		Health: func(ctx context.Context) (console.Health, error) {
			h, err := app.Health(ctx)
			return console.Health{StoreErr: h.StoreErr, AuditIntact: h.AuditIntact, Alarm: h.Alarm, AuditSize: h.AuditSize,
				CheckpointSize: h.CheckpointSize, CheckpointAge: h.CheckpointAge, Vault: h.Vault, SIEM: h.SIEM}, err
		},
	})
}
