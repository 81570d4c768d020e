package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"firewalliq/appliance"
	"firewalliq/appliance/keyring"
	"firewalliq/probe/safety"
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
			console, err := ui.New(ui.Deps{Ping: app.Ping})
			if err != nil {
				return err
			}
			cert, err := app.Keys.TLSCertificate()
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
				fmt.Fprintf(env.Stderr, "firewalliq: AUDIT TAMPER ALARM: entry %d is broken (%s); scans and evidence exports are refused until an admin acknowledges it\n", alarm.BadSeq, termSafe(alarm.Reason))
			}
			bg, stopBG := context.WithCancel(ctx)
			bgDone := make(chan struct{})
			go func() {
				defer close(bgDone)
				app.Run(bg, nil) // errors go to app.Logger
			}()
			defer func() { stopBG(); <-bgDone }()
			srv := &http.Server{Handler: console.Handler(), ReadHeaderTimeout: 10 * time.Second, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
			errc := make(chan error, 1)
			go func() { errc <- srv.ServeTLS(ln, "", "") }()
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
