package cli

import (
	"context"
	"crypto/rand"
	"database/sql"
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
	"firewalliq/appliance/keyring"
	"firewalliq/appliance/siem"
	"firewalliq/audit"
	"firewalliq/probe/bounded"
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

// siemEnv is an opened appliance with its outbox and audit log.
type siemEnv struct {
	app *appliance.Appliance
	ob  *siem.Outbox
	log *audit.Log
}

func (s *siemEnv) Close() error { return s.app.Close() }

// openSiem opens the appliance and its outbox. The appliance id is derived
// from the audit signing key, which is unique per appliance and stable for
// its life (docs/siem.md).
func openSiem(cmd *cobra.Command, env *Env) (*siemEnv, error) {
	cfg, err := loadConfig(cmd, env)
	if err != nil {
		return nil, err
	}
	app, err := appliance.Open(cmd.Context(), cfg, env.Now)
	if err != nil {
		return nil, err
	}
	pub, err := app.Keys.Public(keyring.Audit)
	if err != nil {
		app.Close()
		return nil, fmt.Errorf("appliance id: %w", err)
	}
	id := siem.ApplianceID(pub)
	host, _ := os.Hostname()
	ob := siem.New(app.Store.DB(), siem.Options{ApplianceID: id, Hostname: host, Now: env.Now, Sealer: app.Keys})
	// The appliance's own log: it holds the audit signing key, so an entry
	// that lands on a checkpoint_every boundary gets its signed checkpoint
	// like any other (an unsigned Log would silently skip it).
	return &siemEnv{app: app, ob: ob, log: app.Audit}, nil
}

func newSiemAddCmd(env *Env) *cobra.Command {
	var (
		d                                      siem.Destination
		tenant, caFile, certFile, keyFile, key string
	)
	cmd := &cobra.Command{
		Use:   "add --name NAME --kind udp|tcp|tls|webhook --address ADDR",
		Short: "Add a SIEM destination (appliance-wide, or one tenant's with --tenant)",
		Long: `Add a SIEM destination. ADDR is host:port for udp, tcp and tls, and an
https:// URL for webhook. A tls destination needs --ca (the CA that signs the
receiver's certificate; only it is trusted). A webhook needs an HMAC key:
--hmac-key-file FILE, or none to have one generated and printed once.
Events are OCSF JSON unless --format cef. See docs/siem.md.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if d.Name == "" || d.Kind == "" || d.Address == "" {
				return usagef("siem add: --name, --kind and --address are required")
			}
			var err error
			read := func(path string, limit int64) []byte {
				if path == "" || err != nil {
					return nil
				}
				var b []byte
				b, err = bounded.ReadFile(path, limit)
				return b
			}
			d.CAPEM, d.ClientCertPEM, d.ClientKeyPEM = read(caFile, bounded.MaxCertFile), read(certFile, bounded.MaxCertFile), read(keyFile, bounded.MaxCertFile)
			if key != "" {
				d.HMACKey = []byte(strings.TrimSpace(string(read(key, bounded.MaxSecretFile))))
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
			s, err := openSiem(cmd, env)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx := cmd.Context()
			if tenant != "" {
				tn, err := s.app.Store.TenantByName(ctx, tenant)
				if err != nil {
					return fmt.Errorf("siem add: tenant %q: %w", tenant, err)
				}
				d.Tenant = tn.ID
			}
			var created siem.Destination
			err = s.app.Store.InTx(ctx, func(tx *sql.Tx) error {
				var err error
				if created, err = s.ob.CreateDestination(ctx, tx, d); err != nil {
					return err
				}
				details, _ := json.Marshal(map[string]any{"name": created.Name, "kind": created.Kind, "address": created.Address,
					"format": created.Format, "tenant": created.Tenant, "client_cert": len(d.ClientCertPEM) > 0})
				_, err = s.ob.Append(ctx, tx, s.log, audit.Entry{Tenant: created.Tenant, ActorName: "cli", Action: audit.ActSIEMDestinationCreate,
					Object: created.ID, Details: details})
				return err
			})
			if errors.Is(err, siem.ErrInvalidDestination) {
				return &UsageError{Err: fmt.Errorf("siem add: %w", err)}
			}
			if err != nil {
				return fmt.Errorf("siem add: %w", err)
			}
			fmt.Fprintf(env.Stdout, "added %s (%s %s, %s) id %s\n", termSafe(created.Name), termSafe(created.Kind), termSafe(created.Address), termSafe(created.Format), created.ID)
			if generated != "" {
				fmt.Fprintf(env.Stdout, "webhook HMAC key (shown once; configure the receiver with it): %s\n", generated)
			}
			return nil
		},
	}
	f := cmd.Flags()
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
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List SIEM destinations",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openSiem(cmd, env)
			if err != nil {
				return err
			}
			defer s.Close()
			ds, err := s.ob.Destinations(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return siemJSON(env, ds)
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKIND\tADDRESS\tFORMAT\tTENANT\tID")
			for _, d := range ds {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", termSafe(d.Name), termSafe(d.Kind), termSafe(d.Address), termSafe(d.Format), termSafe(siemDash(d.Tenant)), termSafe(d.ID))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newSiemRemoveCmd(env *Env) *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a SIEM destination and discard its undelivered events (audited)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSiem(cmd, env)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx := cmd.Context()
			d, err := s.ob.Destination(ctx, args[0])
			if err != nil {
				return err
			}
			var discarded int64
			err = s.app.Store.InTx(ctx, func(tx *sql.Tx) error {
				// Delete first: the audit entry of the removal must not be
				// refused because this destination's outbox is full.
				if discarded, err = s.ob.DeleteDestination(ctx, tx, d.ID); err != nil {
					return err
				}
				details, _ := json.Marshal(map[string]any{"name": d.Name, "kind": d.Kind, "address": d.Address, "discarded": discarded})
				_, err := s.ob.Append(ctx, tx, s.log, audit.Entry{Tenant: d.Tenant, ActorName: "cli", Action: audit.ActSIEMDestinationDelete,
					Object: d.ID, Details: details})
				return err
			})
			if err != nil {
				return fmt.Errorf("siem rm: %w", err)
			}
			fmt.Fprintf(env.Stdout, "removed %s (%d undelivered events discarded)\n", termSafe(d.Name), discarded)
			return nil
		},
	}
}

func newSiemStatusCmd(env *Env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each destination's delivery state: lag, pending events, budget use, failures",
		Long: `Show each destination's delivery state. Exit status 1 when a destination
is failing or its outbox is above 80% of its budget, so monitoring can use it.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openSiem(cmd, env)
			if err != nil {
				return err
			}
			defer s.Close()
			st, err := s.ob.Statuses(cmd.Context())
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
						lastErr = fmt.Sprintf("%s (next try %s)", termSafe(x.LastError), x.NextAttempt)
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%.1f%% of %s\t%d (%d now)\t%s\n", termSafe(x.Name), termSafe(x.Kind), x.LastSeq, x.DeliveredSeq,
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
	return cmd
}

// siemUnhealthy is the exit-1 error of 'siem status'.
type siemUnhealthy int

func (n siemUnhealthy) Error() string {
	return fmt.Sprintf("siem: %d destination(s) failing or near their budget", int(n))
}

func newSiemTestCmd(env *Env) *cobra.Command {
	return &cobra.Command{
		Use:   "test NAME",
		Short: "Send one test message (sequence number 0, outside the outbox) to a destination",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSiem(cmd, env)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*siem.NetTimeout)
			defer cancel()
			if err := s.ob.NewWorker(siem.WorkerOptions{Now: env.Now}).SendTest(ctx, args[0]); err != nil {
				return fmt.Errorf("siem test %s: %w", args[0], err)
			}
			fmt.Fprintf(env.Stdout, "test message sent to %s\n", termSafe(args[0]))
			return nil
		},
	}
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
