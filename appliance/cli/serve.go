package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
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
			logger := newLogger(env.Stderr, cfg.LogLevel)
			pages, err := newConsolePages(app, logger, env.Now)
			if err != nil {
				return err
			}
			console, err := ui.New(ui.Deps{
				Pages:   pages,
				Auth:    app.Auth,
				Status:  func(ctx context.Context) ui.Status { return applianceStatus(ctx, app) },
				Version: buildinfo.Get(),
				Logger:  logger,
				Now:     env.Now,
			})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", cfg.Listen)
			if err != nil {
				return fmt.Errorf("serve: %w", err)
			}
			fp, err := keyring.CertFingerprint(app.Keys.CertFile)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "console listening on https://%s (certificate SHA-256 %s)\n", ln.Addr(), fp)
			if alarm := app.AuditStartup.Alarm; alarm != nil {
				fmt.Fprintf(env.Stderr, "firewalliq: AUDIT TAMPER ALARM: entry %d is broken (%s); scans and evidence exports are refused until an admin acknowledges it\n", alarm.BadSeq, alarm.Reason)
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
			errc := make(chan error, 1)
			go func() { errc <- srv.ServeTLS(ln, app.Keys.CertFile, app.Keys.KeyFile) }()
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
		},
	}
	cmd.Flags().String("listen", "", "console address (env FIQ_LISTEN, default :8443)")
	return cmd
}

// newLogger returns the JSON slog logger of serve at the configured level.
func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// applianceStatus gathers what /readyz and /metrics report from
// appliance.Health. It only reads.
func applianceStatus(ctx context.Context, app *appliance.Appliance) ui.Status {
	var st ui.Status
	h, err := app.Health(ctx)
	if err != nil {
		st.Errors = append(st.Errors, "health unreadable")
		return st
	}
	if h.StoreErr != "" {
		st.StoreError = "store unavailable"
		return st
	}
	st.AuditSize, st.AuditCheckpointSize = h.AuditSize, h.CheckpointSize
	if h.CheckpointSize > 0 {
		st.AuditCheckpointAt = time.Now().Add(-h.CheckpointAge)
	}
	if h.Alarm != nil {
		st.AuditAlarm = fmt.Sprintf("entry %d is broken (%s)", h.Alarm.BadSeq, h.Alarm.Reason)
	}
	if vs := h.Vault; vs != nil {
		st.Vault = &ui.VaultStatus{Backend: vs.Backend, WORM: vs.WORM, CheckError: vs.CheckErr, SpoolBytes: vs.Spool.Bytes, SpoolPending: vs.Spool.Pending, SpoolFull: vs.Spool.Full}
	}
	for _, d := range h.SIEM {
		st.SIEM = append(st.SIEM, ui.SIEMStatus{Name: d.Name, Pending: d.Pending, PendingBytes: d.PendingBytes, Lag: d.Lag, LastError: d.LastError})
	}
	return st
}

// newConsolePages builds the web console's pages over the appliance's
// services. The profile was verified at start-up (Open refuses a binary
// whose profile fails); a failure here is reported, not ignored.
func newConsolePages(app *appliance.Appliance, logger *slog.Logger, now func() time.Time) (*console.Console, error) {
	prof, err := safety.Load()
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	return console.New(console.Deps{
		Auth: app.Auth, Audit: app.Audit, SIEM: app.SIEM, Scopes: app.Scopes, Profile: prof, Logger: logger, Now: now,
		Health: func(ctx context.Context) (console.Health, error) {
			h, err := app.Health(ctx)
			return console.Health{StoreErr: h.StoreErr, AuditIntact: h.AuditIntact, Alarm: h.Alarm, AuditSize: h.AuditSize,
				CheckpointSize: h.CheckpointSize, CheckpointAge: h.CheckpointAge, Vault: h.Vault, SIEM: h.SIEM}, err
		},
	})
}
