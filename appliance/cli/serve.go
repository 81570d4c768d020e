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
	"firewalliq/audit"
	"firewalliq/ui"
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
			ctx := cmd.Context()
			app, err := appliance.Open(ctx, cfg, env.Now)
			if err != nil {
				return err
			}
			defer app.Close()
			logger := newLogger(env.Stderr, cfg.LogLevel)
			console, err := ui.New(ui.Deps{
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
				app.Run(bg, func(err error) { fmt.Fprintf(env.Stderr, "firewalliq: %v\n", err) })
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

// applianceStatus gathers what /readyz and /metrics report. It only reads.
func applianceStatus(ctx context.Context, app *appliance.Appliance) ui.Status {
	var st ui.Status
	db := app.Store.DB()
	if err := db.PingContext(ctx); err != nil {
		st.StoreError = "store unavailable"
		return st
	}
	if as, err := audit.ReadStats(ctx, db); err != nil {
		st.Errors = append(st.Errors, "audit size unreadable")
	} else {
		st.AuditSize, st.AuditCheckpointSize, st.AuditCheckpointAt = as.Size, as.CheckpointSize, as.CheckpointTime
	}
	if alarm, raised, err := audit.CurrentAlarm(ctx, db); err != nil {
		st.Errors = append(st.Errors, "audit alarm state unreadable")
	} else if raised {
		st.AuditAlarm = fmt.Sprintf("entry %d is broken (%s)", alarm.BadSeq, alarm.Reason)
	}
	if app.Evidence != nil {
		vs := app.Evidence.Status()
		st.Vault = &ui.VaultStatus{Backend: vs.Backend, WORM: vs.WORM, CheckError: vs.CheckErr, SpoolBytes: vs.Spool.Bytes, SpoolPending: vs.Spool.Pending, SpoolFull: vs.Spool.Full}
	}
	if ss, err := app.SIEM.Statuses(ctx); err != nil {
		st.Errors = append(st.Errors, "siem status unreadable")
	} else {
		for _, d := range ss {
			st.SIEM = append(st.SIEM, ui.SIEMStatus{Name: d.Name, Pending: d.Pending, PendingBytes: d.PendingBytes, Lag: d.Lag, LastError: d.LastError})
		}
	}
	return st
}
