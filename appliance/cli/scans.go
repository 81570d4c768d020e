package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"firewalliq/appliance/cli/apiclient"
	"firewalliq/probe/bounded"
)

// Scope-signing keys ('key'), scope revocation and scans ('scan'): clients
// of /api/v1/scope-keys, /api/v1/scopes/{id}/revoke and /api/v1/scans
// (docs/scans.md). The appliance authorises, asks for step-up and audits.

var (
	keyCols    = []column{{"ID", "id"}, {"NAME", "name"}, {"USER", "user_id"}, {"HELD", "held"}, {"STATE", "state"}, {"CREATED", "created_at"}, {"REVOKED", "revoked_at"}}
	scanCols   = []column{{"ID", "id"}, {"STATE", "state"}, {"SCOPE", "scope_id"}, {"REQUESTER", "requester_id"}, {"CREATED", "created_at"}, {"UPDATED", "updated_at"}, {"REASON", "reason"}}
	resultCols = []column{{"TARGET", "target"}, {"PROTO", "proto"}, {"PORT", "port"}, {"PROBE", "probe"}, {"STATE", "state"}, {"REASON", "reason"}, {"RTT US", "rtt_us"}, {"TIME", "time"}}
)

// maxKeyFile bounds a public key file 'key add' reads.
const maxKeyFile = 64 << 10

func newKeyCmd(r *remote) *cobra.Command {
	return newGroup("key", "Scope-signing keys registered with the appliance (through the API)",
		newKeyAddCmd(r),
		newKeyGenerateCmd(r),
		listCmd(r, "list", "List the tenant's scope-signing keys (admins, security leads, auditors)", "/scope-keys", true, keyCols, nil),
		newKeyRevokeCmd(r),
		newKeySignCmd(r),
	)
}

// readUserFile reads a file the user named on the command line of cmd
// through probe/bounded, as every such read does (docs/cli.md#file-size-limits):
// a FIFO, device or directory is refused at once instead of blocking the
// command, and at most limit+1 bytes are read. Such a refusal, or a file
// over the limit, is exit 1 with one line naming the file; a missing or
// unreadable file stays a usage error.
func readUserFile(cmd, path string, limit int64) ([]byte, error) {
	b, err := bounded.ReadFile(path, limit)
	switch {
	case err == nil:
		return b, nil
	case errors.Is(err, bounded.ErrNotRegular), errors.Is(err, bounded.ErrTooLarge):
		return nil, fmt.Errorf("%s: %w", cmd, err)
	default:
		return nil, usagef("%s: %v", cmd, err)
	}
}

// printKey prints a key answer: JSON, or one line.
func printKey(env *Env, verb string, raw json.RawMessage, asJSON bool) error {
	if asJSON {
		return printJSON(env, raw)
	}
	var k struct{ ID, Name, State string }
	if err := json.Unmarshal(raw, &k); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	fmt.Fprintf(env.Stdout, "%s scope-signing key %s (%s), %s\n", verb, termSafe(k.ID), termSafe(k.Name), termSafe(k.State))
	return nil
}

func newKeyAddCmd(r *remote) *cobra.Command {
	var (
		name, tenant string
		asJSON       bool
	)
	cmd := &cobra.Command{
		Use:   "add NAME.pub [--name N]",
		Short: "Register your scope-signing public key ('scope keygen' makes one; security leads, step-up)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := readUserFile("key add", args[0], maxKeyFile)
			if err != nil {
				return err
			}
			if len(pub) > maxKeyFile {
				return usagef("key add: %s is larger than %d bytes: not a public key file", args[0], maxKeyFile)
			}
			if name == "" {
				name = strings.TrimSuffix(filepath.Base(args[0]), ".pub")
			}
			return r.call("key add", func(c *apiclient.Client) error {
				var out json.RawMessage
				if err := c.Do(cmd.Context(), http.MethodPost, "/scope-keys", tenantQuery(tenant), map[string]string{"name": name, "public": string(pub)}, &out); err != nil {
					return err
				}
				return printKey(r.env, "added", out, asJSON)
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the key's name (default: the file name without .pub)")
	tenantFlag(cmd, &tenant)
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newKeyGenerateCmd(r *remote) *cobra.Command {
	var (
		name, tenant string
		asJSON       bool
	)
	cmd := &cobra.Command{
		Use:   "generate --name N",
		Short: "Have the appliance generate a scope-signing key it holds sealed ('key sign' uses it; step-up)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(name) == "" {
				return usagef("key generate: --name is required")
			}
			return r.call("key generate", func(c *apiclient.Client) error {
				var out json.RawMessage
				if err := c.Do(cmd.Context(), http.MethodPost, "/scope-keys/generate", tenantQuery(tenant), map[string]string{"name": name}, &out); err != nil {
					return err
				}
				return printKey(r.env, "generated", out, asJSON)
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the key's name (required)")
	tenantFlag(cmd, &tenant)
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newKeyRevokeCmd(r *remote) *cobra.Command {
	var (
		reason, tenant string
		asJSON         bool
	)
	cmd := &cobra.Command{
		Use:   "revoke KEY_ID [--reason R]",
		Short: "Revoke a scope-signing key: its scopes run no new scan (step-up)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return r.call("key revoke", func(c *apiclient.Client) error {
				var out json.RawMessage
				if err := c.Do(cmd.Context(), http.MethodDelete, "/scope-keys/"+pathEscape(args[0]), tenantQuery(tenant), map[string]string{"reason": reason}, &out); err != nil {
					return err
				}
				return printKey(r.env, "revoked", out, asJSON)
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (kept in the audit entry)")
	tenantFlag(cmd, &tenant)
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newKeySignCmd(r *remote) *cobra.Command {
	var tenant string
	cmd := &cobra.Command{
		Use:   "sign KEY_ID SCOPE.json",
		Short: "Sign a scope document with your appliance-held key; prints the signed document (step-up)",
		Args:  usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			doc, err := readUserFile("key sign", args[1], maxScopeFile)
			if err != nil {
				return err
			}
			if len(doc) > maxScopeFile || !json.Valid(doc) {
				return usagef("key sign: %s is not a scope document (JSON of at most %d bytes)", args[1], maxScopeFile)
			}
			return r.call("key sign", func(c *apiclient.Client) error {
				var out json.RawMessage
				if err := c.Do(cmd.Context(), http.MethodPost, "/scope-keys/"+pathEscape(args[0])+"/sign", tenantQuery(tenant), json.RawMessage(doc), &out); err != nil {
					return err
				}
				_, err := r.env.Stdout.Write(append(out, '\n'))
				return err
			})
		},
	}
	tenantFlag(cmd, &tenant)
	return cmd
}

func newScopeRevokeCmd(r *remote) *cobra.Command {
	var reason, tenant string
	cmd := &cobra.Command{
		Use:   "revoke SCOPE_ID --reason R",
		Short: "Revoke a registered scope: no new scan runs under it (security leads, step-up)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return usagef("scope revoke: --reason is required")
			}
			return r.call("scope revoke", func(c *apiclient.Client) error {
				if err := c.Do(cmd.Context(), http.MethodPost, "/scopes/"+pathEscape(args[0])+"/revoke", tenantQuery(tenant), map[string]string{"reason": reason}, nil); err != nil {
					return err
				}
				fmt.Fprintf(r.env.Stdout, "revoked scope %s\n", termSafe(args[0]))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (required; kept in the audit entry)")
	tenantFlag(cmd, &tenant)
	return cmd
}

func newScanCmd(r *remote) *cobra.Command {
	return newGroup("scan", "Scan requests, approvals, runs and results (through the API)",
		newScanRequestCmd(r),
		newScanListCmd(r),
		newScanShowCmd(r),
		newScanActionCmd(r, "approve", "Approve another person's production scan request (approvers, step-up)", "", false),
		newScanActionCmd(r, "deny", "Deny a pending scan request (approvers)", "why (required)", true),
		newScanActionCmd(r, "start", "Start your approved production scan (step-up)", "", false),
		newScanActionCmd(r, "cancel", "Cancel a scan that has not ended", "why (kept in the audit entry)", false),
		newScanResultsCmd(r),
		newScanExportCmd(r),
		newScanWatchCmd(r),
		newScheduleCmd(r),
	)
}

// printScan prints a scan or schedule answer: JSON, or one line with its
// id and state.
func printScan(env *Env, raw json.RawMessage, asJSON bool) error {
	if asJSON {
		return printJSON(env, raw)
	}
	var s struct{ ID, State, Reason string }
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	line := fmt.Sprintf("%s %s", termSafe(s.ID), termSafe(s.State))
	if s.Reason != "" {
		line += ": " + termSafe(s.Reason)
	}
	fmt.Fprintln(env.Stdout, line)
	return nil
}

// requestFlags are the flags of a scan request (scan request, scan
// schedule create and edit).
type requestFlags struct {
	scope, ports, policy, vantage string
	targets, probes               []string
	rate                          int
}

func (rf *requestFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&rf.scope, "scope", "", "registered scope id (required)")
	f.StringArrayVar(&rf.targets, "target", nil, "address, CIDR or hostname inside the scope (repeat; default the whole scope)")
	f.StringVar(&rf.ports, "ports", "", `ports, a subset of the scope's ("tcp:22,443 udp:53"; default the scope's)`)
	f.StringArrayVar(&rf.probes, "probe", nil, "probe kind (repeat; default the scope's)")
	f.IntVar(&rf.rate, "rate", 0, "packets per second (default the cap)")
	f.StringVar(&rf.policy, "policy-sha256", "", "SHA-256 of the expected policy")
	f.StringVar(&rf.vantage, "vantage", "", `runner ("local", the default)`)
}

// body is the request's JSON object, or a usage error.
func (rf *requestFlags) body(what string) (map[string]any, error) {
	if rf.scope == "" {
		return nil, usagef("%s: --scope is required", what)
	}
	if rf.rate < 0 {
		return nil, usagef("%s: --rate must be positive", what)
	}
	body := map[string]any{"scope_id": rf.scope}
	if len(rf.targets) > 0 {
		body["targets"] = rf.targets
	}
	if len(rf.probes) > 0 {
		body["probes"] = rf.probes
	}
	for k, v := range map[string]string{"ports": rf.ports, "policy_sha256": rf.policy, "vantage": rf.vantage} {
		if v != "" {
			body[k] = v
		}
	}
	if rf.rate > 0 {
		body["rate"] = rf.rate
	}
	return body, nil
}

func newScanRequestCmd(r *remote) *cobra.Command {
	var (
		rf     requestFlags
		tenant string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "request --scope ID [--target T]... [--ports P] [--probe K]... [--rate PPS]",
		Short: "Request a scan of a registered scope (non-production: step-up and it runs; production: waits for two approvers)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			body, err := rf.body("scan request")
			if err != nil {
				return err
			}
			return r.call("scan request", func(c *apiclient.Client) error {
				var out json.RawMessage
				if err := c.Do(cmd.Context(), http.MethodPost, "/scans", tenantQuery(tenant), body, &out); err != nil {
					return err
				}
				return printScan(r.env, out, asJSON)
			})
		},
	}
	rf.add(cmd)
	tenantFlag(cmd, &tenant)
	jsonFlag(cmd, &asJSON)
	return cmd
}

var scheduleCols = []column{{"ID", "id"}, {"STATE", "state"}, {"SPEC", "spec"}, {"SCOPE", "scope_id"}, {"REQUESTER", "requester_id"}, {"VALID UNTIL", "valid_until"}, {"NEXT RUN", "next_run"}, {"LAST RUN", "last_run"}}

func newScheduleCmd(r *remote) *cobra.Command {
	return newGroup("schedule", "Scan schedules with a standing dual approval (through the API)",
		newScheduleWriteCmd(r, "create"),
		listCmd(r, "list", "List scan schedules", "/scan-schedules", true, scheduleCols, nil),
		newScheduleShowCmd(r),
		newScheduleActionCmd(r, "approve", "Approve another person's schedule (approvers, step-up)", false),
		newScheduleWriteCmd(r, "edit"),
		newScheduleActionCmd(r, "void", "Void a schedule", true),
	)
}

// newScheduleWriteCmd builds 'schedule create' and 'schedule edit ID'
// (which voids the schedule and prints its pending replacement).
func newScheduleWriteCmd(r *remote, verb string) *cobra.Command {
	var (
		rf        requestFlags
		spec      string
		validDays int
		tenant    string
		asJSON    bool
	)
	use, short, args := "create --scope ID --spec S [--valid-days N] [request flags]", "Propose a scan schedule; it runs once two approvers approve it", cobra.NoArgs
	if verb == "edit" {
		use, short, args = "edit SCHEDULE_ID --scope ID --spec S [--valid-days N] [request flags]", "Change a schedule: voids it and proposes the replacement (approved again)", cobra.ExactArgs(1)
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  usageArgs(args),
		RunE: func(cmd *cobra.Command, args []string) error {
			what := "scan schedule " + verb
			body, err := rf.body(what)
			if err != nil {
				return err
			}
			if spec == "" {
				return usagef("%s: --spec is required", what)
			}
			body["spec"] = spec
			if validDays != 0 {
				body["valid_days"] = validDays
			}
			path := "/scan-schedules"
			if verb == "edit" {
				path += "/" + pathEscape(args[0]) + "/edit"
			}
			return r.call(what, func(c *apiclient.Client) error {
				var out json.RawMessage
				if err := c.Do(cmd.Context(), http.MethodPost, path, tenantQuery(tenant), body, &out); err != nil {
					return err
				}
				return printScan(r.env, out, asJSON)
			})
		},
	}
	rf.add(cmd)
	cmd.Flags().StringVar(&spec, "spec", "", `"@every 6h" or a five-field cron line in UTC (required)`)
	cmd.Flags().IntVar(&validDays, "valid-days", 0, "how long the standing approval lasts, 1-90 (default 90)")
	tenantFlag(cmd, &tenant)
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newScheduleShowCmd(r *remote) *cobra.Command {
	var (
		tenant string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "show SCHEDULE_ID",
		Short: "Show one scan schedule",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return r.call("scan schedule show", func(c *apiclient.Client) error {
				var out json.RawMessage
				if err := c.Do(cmd.Context(), http.MethodGet, "/scan-schedules/"+pathEscape(args[0]), tenantQuery(tenant), nil, &out); err != nil {
					return err
				}
				if asJSON {
					return printJSON(r.env, out)
				}
				return printObject(r.env, out)
			})
		},
	}
	tenantFlag(cmd, &tenant)
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newScheduleActionCmd(r *remote, verb, short string, withReason bool) *cobra.Command {
	var (
		reason, tenant string
		asJSON         bool
	)
	use := verb + " SCHEDULE_ID"
	if withReason {
		use += " --reason R"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var body any = struct{}{}
			if withReason {
				if strings.TrimSpace(reason) == "" {
					return usagef("scan schedule %s: --reason is required", verb)
				}
				body = map[string]string{"reason": reason}
			}
			return r.call("scan schedule "+verb, func(c *apiclient.Client) error {
				var out json.RawMessage
				if err := c.Do(cmd.Context(), http.MethodPost, "/scan-schedules/"+pathEscape(args[0])+"/"+verb, tenantQuery(tenant), body, &out); err != nil {
					return err
				}
				return printScan(r.env, out, asJSON)
			})
		},
	}
	if withReason {
		cmd.Flags().StringVar(&reason, "reason", "", "why (required)")
	}
	tenantFlag(cmd, &tenant)
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newScanListCmd(r *remote) *cobra.Command {
	return listCmd(r, "list [--state S]", "List scans, newest first", "/scans", true, scanCols, func(cmd *cobra.Command, q url.Values) {
		var state string
		cmd.Flags().StringVar(&state, "state", "", "pending, approved, denied, queued, running, completed, failed or cancelled")
		prev := cmd.RunE
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			if state != "" {
				q.Set("state", state)
			}
			return prev(cmd, args)
		}
	})
}

func newScanShowCmd(r *remote) *cobra.Command {
	var (
		tenant string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "show SCAN_ID",
		Short: "Show one scan with its job",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return r.call("scan show", func(c *apiclient.Client) error {
				var out json.RawMessage
				if err := c.Do(cmd.Context(), http.MethodGet, "/scans/"+pathEscape(args[0]), tenantQuery(tenant), nil, &out); err != nil {
					return err
				}
				if asJSON {
					return printJSON(r.env, out)
				}
				return printObject(r.env, out)
			})
		},
	}
	tenantFlag(cmd, &tenant)
	jsonFlag(cmd, &asJSON)
	return cmd
}

// newScanActionCmd builds approve, deny, start and cancel: POST
// /scans/{id}/VERB, printing the scan's new state.
func newScanActionCmd(r *remote, verb, short, reasonHelp string, needReason bool) *cobra.Command {
	var (
		reason, tenant string
		asJSON         bool
	)
	use := verb + " SCAN_ID"
	if reasonHelp != "" {
		use += " --reason R"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if needReason && strings.TrimSpace(reason) == "" {
				return usagef("scan %s: --reason is required", verb)
			}
			var body any = struct{}{}
			if reasonHelp != "" {
				body = map[string]string{"reason": reason}
			}
			return r.call("scan "+verb, func(c *apiclient.Client) error {
				var out json.RawMessage
				if err := c.Do(cmd.Context(), http.MethodPost, "/scans/"+pathEscape(args[0])+"/"+verb, tenantQuery(tenant), body, &out); err != nil {
					return err
				}
				return printScan(r.env, out, asJSON)
			})
		},
	}
	if reasonHelp != "" {
		cmd.Flags().StringVar(&reason, "reason", "", reasonHelp)
	}
	tenantFlag(cmd, &tenant)
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newScanResultsCmd(r *remote) *cobra.Command {
	var (
		state, host, probe, tenant string
		port                       int
		asJSON                     bool
	)
	cmd := &cobra.Command{
		Use:   "results SCAN_ID [--state S] [--port N] [--host ADDR] [--probe K]",
		Short: "List a scan's results (every page)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if port < 0 || port > 65535 {
				return usagef("scan results: --port must be 1 to 65535")
			}
			q := url.Values{}
			for k, v := range map[string]string{"state": state, "host": host, "probe": probe, "tenant": tenant} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if port > 0 {
				q.Set("port", strconv.Itoa(port))
			}
			return r.call("scan results", func(c *apiclient.Client) error {
				items, err := c.List(cmd.Context(), "/scans/"+pathEscape(args[0])+"/results", q)
				if err != nil {
					return err
				}
				return printList(r.env, items, asJSON, resultCols)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&state, "state", "", "open, closed, filtered, rejected, open|filtered or error")
	f.IntVar(&port, "port", 0, "one port")
	f.StringVar(&host, "host", "", "one target address")
	f.StringVar(&probe, "probe", "", "one probe kind")
	tenantFlag(cmd, &tenant)
	jsonFlag(cmd, &asJSON)
	return cmd
}

// errScanEnded is what 'scan watch' returns for a scan that ended without
// completing (failed, cancelled, denied): exit 1.
var errScanEnded = errors.New("the scan did not complete")

// progress is one event of a scan's stream (scan.Progress).
type progress struct {
	ScanID         string    `json:"scan_id"`
	State          string    `json:"state"`
	Sent           uint64    `json:"sent"`
	Done           uint64    `json:"done"`
	Total          uint64    `json:"total"`
	RatePPS        float64   `json:"rate_pps"`
	CapPPS         int       `json:"cap_pps"`
	ElapsedSeconds float64   `json:"elapsed_seconds"`
	ETASeconds     float64   `json:"eta_seconds"`
	Time           time.Time `json:"time"`
}

// line is the progress as one line of text.
func (p progress) line() string {
	s := fmt.Sprintf("%s: %d/%d targets, %d probes sent, %.0f/%d pps", p.State, p.Done, p.Total, p.Sent, p.RatePPS, p.CapPPS)
	if p.State == "running" && p.ETASeconds > 0 {
		s += fmt.Sprintf(", ETA %s", time.Duration(p.ETASeconds*float64(time.Second)).Round(time.Second))
	}
	if p.ElapsedSeconds > 0 {
		s += fmt.Sprintf(", %s elapsed", time.Duration(p.ElapsedSeconds*float64(time.Second)).Round(100*time.Millisecond))
	}
	return termSafe(s)
}

func newScanWatchCmd(r *remote) *cobra.Command {
	var (
		tenant string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "watch SCAN_ID",
		Short: "Follow a scan's progress live until it ends (probes sent, rate against the cap, ETA)",
		Long: `watch follows the scan's Server-Sent Events stream and prints one line per
progress event; it returns when the scan ends: exit 0 if it completed, 1 if
it failed, was cancelled or denied. --json prints each event as a JSON line.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var last progress
			err := r.call("scan watch", func(c *apiclient.Client) error {
				return c.Events(cmd.Context(), "/scans/"+pathEscape(args[0])+"/events", tenantQuery(tenant), func(ev apiclient.Event) error {
					if ev.Type != "progress" {
						return nil
					}
					if err := json.Unmarshal(ev.Data, &last); err != nil {
						return fmt.Errorf("decode event: %w", err)
					}
					if asJSON {
						return writeJSONLine(r.env.Stdout, json.RawMessage(ev.Data))
					}
					fmt.Fprintln(r.env.Stdout, last.line())
					return nil
				})
			})
			if err != nil {
				return err
			}
			switch last.State {
			case "completed":
				return nil
			case "failed", "cancelled", "denied":
				return fmt.Errorf("scan watch: %s: %w (%s)", termSafe(args[0]), errScanEnded, last.State)
			}
			// The stream ended on a state that is not final (a pending or
			// approved request does not run until started).
			if !asJSON {
				fmt.Fprintf(r.env.Stdout, "scan %s is %s: nothing runs until it is started\n", termSafe(args[0]), termSafe(last.State))
			}
			return nil
		},
	}
	tenantFlag(cmd, &tenant)
	jsonFlag(cmd, &asJSON)
	return cmd
}
