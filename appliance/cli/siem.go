package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"firewalliq/appliance"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/siem"
	"firewalliq/appliance/siem/destinations"
)

// newSiemCmd builds the 'siem' command group.
func newSiemCmd(env *Env) *cobra.Command {
	return newGroup("siem", "SIEM destinations and delivery status",
		newSiemAddCmd(env),
		newSiemListCmd(env),
		newSiemRemoveCmd(env),
		newSiemStatusCmd(env),
		newSiemTestCmd(env),
	)
}

// siemEnv is an opened appliance and the signed-in principal that acts.
type siemEnv struct {
	app    *appliance.Appliance
	p      auth.Principal
	lines  *stdinLines
	logout func()
}

func (s *siemEnv) Close() error { s.logout(); return s.app.Close() }

// openSiem opens the appliance and signs --user in (password and TOTP code
// from standard input). Until the CLI is a client of the HTTP API, this is
// how it reaches the SIEM service as a principal.
func openSiem(cmd *cobra.Command, env *Env, user string) (*siemEnv, error) {
	if user == "" {
		return nil, usagef("%s: --user is required", cmd.CommandPath())
	}
	cfg, err := loadConfig(cmd, env)
	if err != nil {
		return nil, err
	}
	app, err := appliance.Open(cmd.Context(), cfg, env.Now)
	if err != nil {
		return nil, err
	}
	lines := newStdinLines(env, cmd.CommandPath())
	p, logout, err := signIn(cmd.Context(), app, lines, user)
	if err != nil {
		app.Close()
		return nil, err
	}
	return &siemEnv{app: app, p: p, lines: lines, logout: logout}, nil
}

// tenantID resolves a tenant name for an appliance admin ("" stays "").
func (s *siemEnv) tenantID(ctx context.Context, name string) (string, error) {
	if name == "" {
		return "", nil
	}
	ts, err := s.app.Auth.ListTenants(ctx, s.p)
	if err != nil {
		return "", err
	}
	for _, t := range ts {
		if t.Name == name || t.ID == name {
			return t.ID, nil
		}
	}
	return "", fmt.Errorf("tenant %q: %w", name, auth.ErrInvalid)
}

const siemSignInHelp = `
Standard input gives the --user's password and a TOTP code, one per line;
add and rm read a second, later TOTP code for the step-up.`

func newSiemAddCmd(env *Env) *cobra.Command {
	var (
		d                                            destinations.NewDestination
		user, tenant, caFile, certFile, keyFile, key string
	)
	cmd := &cobra.Command{
		Use:   "add --name NAME --kind udp|tcp|tls|webhook --address ADDR",
		Short: "Add a SIEM destination (appliance-wide, or one tenant's with --tenant)",
		Long: `Add a SIEM destination. ADDR is host:port for udp, tcp and tls, and an
https:// URL for webhook. A tls destination needs --ca (the CA that signs the
receiver's certificate; only it is trusted). A webhook needs an HMAC key:
--hmac-key-file FILE, or none to have one generated and printed once.
Events are OCSF JSON unless --format cef. See docs/siem.md.` + siemSignInHelp,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if d.Name == "" || d.Kind == "" || d.Address == "" {
				return usagef("siem add: --name, --kind and --address are required")
			}
			var err error
			read := func(path string) []byte {
				if path == "" || err != nil {
					return nil
				}
				var b []byte
				b, err = os.ReadFile(path)
				return b
			}
			d.CAPEM, d.ClientCertPEM, d.ClientKeyPEM = read(caFile), read(certFile), read(keyFile)
			if key != "" {
				d.HMACKey = []byte(strings.TrimSpace(string(read(key))))
			}
			if err != nil {
				return fmt.Errorf("siem add: %w", err)
			}
			generated := ""
			if d.Kind == siem.KindWebhook && len(d.HMACKey) == 0 {
				b := make([]byte, 32)
				if _, err := rand.Read(b); err != nil {
					return fmt.Errorf("siem add: %w", err)
				}
				generated = hex.EncodeToString(b)
				d.HMACKey = []byte(generated)
			}
			s, err := openSiem(cmd, env, user)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx := cmd.Context()
			tid, err := s.tenantID(ctx, tenant)
			if err != nil {
				return fmt.Errorf("siem add: %w", err)
			}
			code, err := s.lines.line("step-up TOTP code (the next one): ")
			if err != nil {
				return err
			}
			created, err := s.app.SIEM.Add(ctx, s.p, tid, d, code)
			if errors.Is(err, siem.ErrInvalidDestination) {
				return &UsageError{Err: err}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "added %s (%s %s, %s) id %s\n", created.Name, created.Kind, created.Address, created.Format, created.ID)
			if generated != "" {
				fmt.Fprintf(env.Stdout, "webhook HMAC key (shown once; configure the receiver with it): %s\n", generated)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&user, "user", "", "admin who signs in (required)")
	f.StringVar(&d.Name, "name", "", "unique name (required)")
	f.StringVar(&d.Kind, "kind", "", "udp, tcp, tls or webhook (required)")
	f.StringVar(&d.Address, "address", "", "host:port, or https URL for webhook (required)")
	f.StringVar(&d.Format, "format", "ocsf", "body format: ocsf or cef")
	f.StringVar(&tenant, "tenant", "", "tenant name; the destination then receives only that tenant's events")
	f.StringVar(&caFile, "ca", "", "PEM CA certificate(s) to pin (tls: required; webhook: optional)")
	f.StringVar(&d.ServerName, "server-name", "", "name the receiver's certificate must carry (default: the address host)")
	f.StringVar(&certFile, "client-cert", "", "PEM client certificate for mutual TLS")
	f.StringVar(&keyFile, "client-key", "", "PEM client key for mutual TLS (sealed at rest)")
	f.StringVar(&key, "hmac-key-file", "", "file holding the webhook HMAC key (sealed at rest)")
	f.Int64Var(&d.BudgetBytes, "budget", siem.DefaultBudget, "outbox disk budget in bytes")
	f.IntVar(&d.MaxMessage, "max-message", 0, "largest message the receiver accepts, in bytes (default 8192, udp 2048)")
	return cmd
}

func newSiemListCmd(env *Env) *cobra.Command {
	var asJSON bool
	var user string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List SIEM destinations",
		Long:  "List SIEM destinations." + siemSignInHelp,
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openSiem(cmd, env, user)
			if err != nil {
				return err
			}
			defer s.Close()
			ds, err := s.app.SIEM.List(cmd.Context(), s.p, "")
			if err != nil {
				return err
			}
			if asJSON {
				return siemJSON(env, ds)
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKIND\tADDRESS\tFORMAT\tTENANT\tID")
			for _, d := range ds {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.Name, d.Kind, d.Address, d.Format, siemDash(d.Tenant), d.ID)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&user, "user", "", "admin or auditor who signs in (required)")
	return cmd
}

func newSiemRemoveCmd(env *Env) *cobra.Command {
	var user, tenant string
	cmd := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a SIEM destination and discard its undelivered events (audited)",
		Long:  "Remove a SIEM destination and discard its undelivered events." + siemSignInHelp,
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSiem(cmd, env, user)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx := cmd.Context()
			tid, err := s.tenantID(ctx, tenant)
			if err != nil {
				return fmt.Errorf("siem rm: %w", err)
			}
			code, err := s.lines.line("step-up TOTP code (the next one): ")
			if err != nil {
				return err
			}
			discarded, err := s.app.SIEM.Remove(ctx, s.p, tid, args[0], code)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "removed %s (%d undelivered events discarded)\n", args[0], discarded)
			return nil
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "admin who signs in (required)")
	cmd.Flags().StringVar(&tenant, "tenant", "", "the destination's tenant (appliance admins; default: appliance-wide)")
	return cmd
}

func newSiemStatusCmd(env *Env) *cobra.Command {
	var asJSON bool
	var user string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each destination's delivery state: lag, pending events, budget use, failures",
		Long: `Show each destination's delivery state. Exit status 1 when a destination
is failing or its outbox is above 80% of its budget, so monitoring can use it.` + siemSignInHelp,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openSiem(cmd, env, user)
			if err != nil {
				return err
			}
			defer s.Close()
			st, err := s.app.SIEM.Status(cmd.Context(), s.p, "")
			if err != nil {
				return err
			}
			unhealthy := 0
			for _, x := range st {
				if x.Attempts > 0 || x.BudgetUsed >= 0.8 {
					unhealthy++
				}
			}
			if asJSON {
				if err := siemJSON(env, st); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tKIND\tSEQ\tDELIVERED\tPENDING\tBACKLOG\tLAG\tBUDGET\tFAILURES\tLAST ERROR")
				for _, x := range st {
					lastErr := "-"
					if x.Attempts > 0 {
						lastErr = fmt.Sprintf("%s (next try %s)", x.LastError, x.NextAttempt)
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%.1f%% of %s\t%d (%d now)\t%s\n", x.Name, x.Kind, x.LastSeq, x.DeliveredSeq,
						x.Pending, x.Backlog, x.Lag.Round(time.Second), x.BudgetUsed*100, siemBytes(x.BudgetBytes), x.Failures, x.Attempts, lastErr)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			if unhealthy > 0 {
				return siemUnhealthy(unhealthy)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&user, "user", "", "admin or auditor who signs in (required)")
	return cmd
}

// siemUnhealthy is the exit-1 error of 'siem status'.
type siemUnhealthy int

func (n siemUnhealthy) Error() string {
	return fmt.Sprintf("siem: %d destination(s) failing or near their budget", int(n))
}

func newSiemTestCmd(env *Env) *cobra.Command {
	var user, tenant string
	cmd := &cobra.Command{
		Use:   "test NAME",
		Short: "Send one test message (sequence number 0, outside the outbox) to a destination",
		Long:  "Send one test message to a destination." + siemSignInHelp,
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSiem(cmd, env, user)
			if err != nil {
				return err
			}
			defer s.Close()
			tid, err := s.tenantID(cmd.Context(), tenant)
			if err != nil {
				return fmt.Errorf("siem test: %w", err)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*siem.NetTimeout)
			defer cancel()
			if err := s.app.SIEM.Test(ctx, s.p, tid, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "test message sent to %s\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "admin who signs in (required)")
	cmd.Flags().StringVar(&tenant, "tenant", "", "the destination's tenant (appliance admins; default: appliance-wide)")
	return cmd
}

func siemJSON(env *Env, v any) error {
	enc := json.NewEncoder(env.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func siemDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func siemBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
