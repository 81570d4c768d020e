package cli

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"firewalliq/appliance/cli/apiclient"
	"firewalliq/probe/bounded"
)

// maxSIEMFile bounds a PEM or key file 'siem add' reads and sends: a CA
// bundle is a few KiB, an HMAC key a few dozen bytes.
const maxSIEMFile = 256 << 10

// newSiemCmd builds the 'siem' command group, a client of /api/v1/siem.
func newSiemCmd(r *remote) *cobra.Command {
	return newGroup("siem", "SIEM destinations and delivery status (through the API)",
		newSiemAddCmd(r),
		listCmd(r, "list", "List SIEM destinations", "/siem/destinations", true,
			[]column{{"NAME", "name"}, {"KIND", "kind"}, {"ADDRESS", "address"}, {"FORMAT", "format"}, {"TENANT", "tenant"}, {"ID", "id"}}, nil),
		newSiemRemoveCmd(r),
		newSiemStatusCmd(r),
		actionCmd(r, "test NAME", "Send one test message (sequence number 0, outside the outbox) to a destination", http.MethodPost, "/siem/destinations/%s/test", nil, "test message sent to %s", true),
	)
}

// readLimited reads a regular file of at most maxSIEMFile bytes
// (probe/bounded: a FIFO or device such as /dev/zero is refused at once).
func readLimited(path string) ([]byte, error) {
	return bounded.ReadFile(path, maxSIEMFile)
}

// siemDestination is the body of POST /siem/destinations. Key material is
// read here, from files on the operator's machine, and sent once; the
// appliance seals it at rest and never returns it.
type siemDestination struct {
	Name          string `json:"name"`
	Kind          string `json:"kind"`
	Address       string `json:"address"`
	Format        string `json:"format,omitempty"`
	Tenant        string `json:"tenant,omitempty"`
	ServerName    string `json:"server_name,omitempty"`
	CAPEM         string `json:"ca_pem,omitempty"`
	ClientCertPEM string `json:"client_cert_pem,omitempty"`
	ClientKeyPEM  string `json:"client_key_pem,omitempty"`
	HMACKey       string `json:"hmac_key,omitempty"`
	BudgetBytes   int64  `json:"budget_bytes,omitempty"`
	MaxMessage    int    `json:"max_message,omitempty"`
}

func newSiemAddCmd(r *remote) *cobra.Command {
	var (
		d                                 siemDestination
		caFile, certFile, keyFile, keyArg string
		asJSON                            bool
	)
	cmd := &cobra.Command{
		Use:   "add --name NAME --kind udp|tcp|tls|webhook --address ADDR",
		Short: "Add a SIEM destination (appliance-wide, or one tenant's with --tenant; step-up)",
		Long: `Add a SIEM destination. ADDR is host:port for udp, tcp and tls, and an
https:// URL for webhook. A tls destination needs --ca (the CA that signs the
receiver's certificate; only it is trusted). A webhook needs an HMAC key:
--hmac-key-file FILE, or none to have one generated here and printed once.
Files are read on this machine and sent to the appliance, which seals keys at
rest. Events are OCSF JSON unless --format cef. See docs/siem.md.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if d.Name == "" || d.Kind == "" || d.Address == "" {
				return usagef("siem add: --name, --kind and --address are required")
			}
			for _, x := range []struct {
				path string
				dst  *string
			}{{caFile, &d.CAPEM}, {certFile, &d.ClientCertPEM}, {keyFile, &d.ClientKeyPEM}, {keyArg, &d.HMACKey}} {
				if x.path == "" {
					continue
				}
				b, err := readLimited(x.path)
				if err != nil {
					return fmt.Errorf("siem add: %w", err)
				}
				*x.dst = string(b)
			}
			d.HMACKey = strings.TrimSpace(d.HMACKey)
			if keyArg != "" && d.HMACKey == "" {
				return usagef("siem add: --hmac-key-file %s is empty", keyArg)
			}
			generated := ""
			if d.Kind == "webhook" && d.HMACKey == "" {
				b := make([]byte, 32)
				if _, err := rand.Read(b); err != nil {
					return fmt.Errorf("siem add: %w", err)
				}
				generated = hex.EncodeToString(b)
				d.HMACKey = generated
			}
			return send(r, cmd, "siem add", http.MethodPost, "/siem/destinations", nil, d, func(out map[string]any) error {
				if asJSON {
					if generated != "" {
						out["hmac_key"] = generated
					}
					return writeJSONLine(r.env.Stdout, out)
				}
				fmt.Fprintf(r.env.Stdout, "added %s (%s %s, %s) id %s\n", cell(out["name"]), cell(out["kind"]), cell(out["address"]), cell(out["format"]), cell(out["id"]))
				if generated != "" {
					fmt.Fprintf(r.env.Stdout, "webhook HMAC key (shown once; configure the receiver with it): %s\n", generated)
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&d.Name, "name", "", "unique name (required)")
	f.StringVar(&d.Kind, "kind", "", "udp, tcp, tls or webhook (required)")
	f.StringVar(&d.Address, "address", "", "host:port, or https URL for webhook (required)")
	f.StringVar(&d.Format, "format", "ocsf", "body format: ocsf or cef")
	f.StringVar(&d.Tenant, "tenant", "", "tenant id; the destination then receives only that tenant's events")
	f.StringVar(&caFile, "ca", "", "PEM CA certificate(s) to pin (tls: required; webhook: optional)")
	f.StringVar(&d.ServerName, "server-name", "", "name the receiver's certificate must carry (default: the address host)")
	f.StringVar(&certFile, "client-cert", "", "PEM client certificate for mutual TLS")
	f.StringVar(&keyFile, "client-key", "", "PEM client key for mutual TLS (sealed at rest)")
	f.StringVar(&keyArg, "hmac-key-file", "", "file holding the webhook HMAC key (sealed at rest)")
	f.Int64Var(&d.BudgetBytes, "budget", 0, "outbox disk budget in bytes (default the appliance's, 64 MiB)")
	f.IntVar(&d.MaxMessage, "max-message", 0, "largest message the receiver accepts, in bytes (default 8192, udp 2048)")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newSiemRemoveCmd(r *remote) *cobra.Command {
	var tenant string
	cmd := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a SIEM destination and discard its undelivered events (step-up)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return send(r, cmd, "siem rm", http.MethodDelete, "/siem/destinations/"+pathEscape(args[0]), tenantQuery(tenant), nil, func(out struct {
				Dropped int64 `json:"dropped_events"`
			}) error {
				fmt.Fprintf(r.env.Stdout, "removed %s (%d undelivered events discarded)\n", termSafe(args[0]), out.Dropped)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant id (appliance admins; default the appliance-wide destinations)")
	return cmd
}

func newSiemStatusCmd(r *remote) *cobra.Command {
	var (
		asJSON bool
		tenant string
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each destination's delivery state: lag, pending events, budget use, failures",
		Long: `Show each destination's delivery state. Exit status 1 when a destination
is failing or its outbox is above 80% of its budget, so monitoring can use it.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var items []json.RawMessage
			if err := r.call("siem status", func(c *apiclient.Client) error {
				var err error
				items, err = c.List(cmd.Context(), "/siem/status", tenantQuery(tenant))
				return err
			}); err != nil {
				return err
			}
			unhealthy := 0
			for _, raw := range items {
				var x struct {
					Attempts   int64   `json:"consecutive_failures"`
					BudgetUsed float64 `json:"budget_used"`
				}
				if err := json.Unmarshal(raw, &x); err != nil {
					return fmt.Errorf("siem status: %w", err)
				}
				if x.Attempts > 0 || x.BudgetUsed >= 0.8 {
					unhealthy++
				}
			}
			cols := []column{{"NAME", "name"}, {"KIND", "kind"}, {"SEQ", "last_seq"}, {"DELIVERED", "delivered_seq"}, {"PENDING", "pending"},
				{"BACKLOG", "audit_backlog"}, {"LAG S", "lag_seconds"}, {"BUDGET USED", "budget_used"}, {"FAILURES", "failures"}, {"FAILING NOW", "consecutive_failures"},
				{"NEXT TRY", "next_attempt_at"}, {"LAST ERROR", "last_error"}}
			if err := printList(r.env, items, asJSON, cols); err != nil {
				return err
			}
			if unhealthy > 0 {
				return siemUnhealthy(unhealthy)
			}
			return nil
		},
	}
	jsonFlag(cmd, &asJSON)
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant id (appliance admins)")
	return cmd
}

// siemUnhealthy is the exit-1 error of 'siem status'.
type siemUnhealthy int

func (n siemUnhealthy) Error() string {
	return fmt.Sprintf("siem: %d destination(s) failing or near their budget", int(n))
}
