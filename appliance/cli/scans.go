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

// keyPrinter prints a key answer with printKey and verb.
func (r *remote) keyPrinter(verb string) func([]string, json.RawMessage, bool) error {
	return func(_ []string, out json.RawMessage, asJSON bool) error { return printKey(r.env, verb, out, asJSON) }
}

func newKeyAddCmd(r *remote) *cobra.Command {
	var name string
	cmd := r.command(apiCmd{
		use:   "add NAME.pub [--name N]",
		short: "Register your scope-signing public key ('scope keygen' makes one; security leads, step-up)",
		what:  "key add", method: http.MethodPost, path: fixedPath("/scope-keys"),
		body: func(args []string) (any, error) {
			pub, err := readUserFile("key add", args[0], maxKeyFile)
			if err != nil {
				return nil, err
			}
			if len(pub) > maxKeyFile {
				return nil, usagef("key add: %s is larger than %d bytes: not a public key file", args[0], maxKeyFile)
			}
			if name == "" {
				name = strings.TrimSuffix(filepath.Base(args[0]), ".pub")
			}
			return map[string]string{"name": name, "public": string(pub)}, nil
		},
		print: r.keyPrinter("added"), tenant: true, json: true,
	})
	cmd.Flags().StringVar(&name, "name", "", "the key's name (default: the file name without .pub)")
	return cmd
}

func newKeyGenerateCmd(r *remote) *cobra.Command {
	var name string
	cmd := r.command(apiCmd{
		use:   "generate --name N",
		short: "Have the appliance generate a scope-signing key it holds sealed ('key sign' uses it; step-up)",
		args:  cobra.NoArgs, what: "key generate", method: http.MethodPost, path: fixedPath("/scope-keys/generate"),
		body: func([]string) (any, error) {
			if strings.TrimSpace(name) == "" {
				return nil, usagef("key generate: --name is required")
			}
			return map[string]string{"name": name}, nil
		},
		print: r.keyPrinter("generated"), tenant: true, json: true,
	})
	cmd.Flags().StringVar(&name, "name", "", "the key's name (required)")
	return cmd
}

func newKeyRevokeCmd(r *remote) *cobra.Command {
	var reason string
	cmd := r.command(apiCmd{
		use:   "revoke KEY_ID [--reason R]",
		short: "Revoke a scope-signing key: its scopes run no new scan (step-up)",
		what:  "key revoke", method: http.MethodDelete, path: idPath("/scope-keys/%s"),
		body:  func([]string) (any, error) { return map[string]string{"reason": reason}, nil },
		print: r.keyPrinter("revoked"), tenant: true, json: true,
	})
	cmd.Flags().StringVar(&reason, "reason", "", "why (kept in the audit entry)")
	return cmd
}

func newKeySignCmd(r *remote) *cobra.Command {
	return r.command(apiCmd{
		use:   "sign KEY_ID SCOPE.json",
		short: "Sign a scope document with your appliance-held key; prints the signed document (step-up)",
		args:  cobra.ExactArgs(2), what: "key sign", method: http.MethodPost, path: idPath("/scope-keys/%s/sign"),
		body: func(args []string) (any, error) {
			doc, err := readUserFile("key sign", args[1], maxScopeFile)
			if err != nil {
				return nil, err
			}
			if len(doc) > maxScopeFile || !json.Valid(doc) {
				return nil, usagef("key sign: %s is not a scope document (JSON of at most %d bytes)", args[1], maxScopeFile)
			}
			return json.RawMessage(doc), nil
		},
		print: func(_ []string, out json.RawMessage, _ bool) error {
			_, err := r.env.Stdout.Write(append(out, '\n'))
			return err
		},
		tenant: true,
	})
}

func newScopeRevokeCmd(r *remote) *cobra.Command {
	var reason string
	cmd := r.command(apiCmd{
		use:   "revoke SCOPE_ID --reason R",
		short: "Revoke a registered scope: no new scan runs under it (security leads, step-up)",
		what:  "scope revoke", method: http.MethodPost, path: idPath("/scopes/%s/revoke"),
		body: func([]string) (any, error) {
			if strings.TrimSpace(reason) == "" {
				return nil, usagef("scope revoke: --reason is required")
			}
			return map[string]string{"reason": reason}, nil
		},
		done: "revoked scope %s", tenant: true,
	})
	cmd.Flags().StringVar(&reason, "reason", "", "why (required; kept in the audit entry)")
	return cmd
}

func newScanCmd(r *remote) *cobra.Command {
	return newGroup("scan", "Scan requests, approvals, runs and results (through the API)",
		newScanRequestCmd(r),
		newScanListCmd(r),
		showCmd(r, "scan show", "show SCAN_ID", "Show one scan with its job", "/scans/%s"),
		scanTransition(r, "approve", "Approve another person's production scan request (approvers, step-up)", "", false),
		scanTransition(r, "deny", "Deny a pending scan request (approvers)", "why (required)", true),
		scanTransition(r, "start", "Start your approved production scan (step-up)", "", false),
		scanTransition(r, "cancel", "Cancel a scan that has not ended", "why (kept in the audit entry)", false),
		newScanResultsCmd(r),
		newScanExportCmd(r),
		newScanWatchCmd(r),
		newScheduleCmd(r),
	)
}

// printScan prints a scan or schedule answer: JSON, or one line with its
// id and state.
func (r *remote) printScan(_ []string, raw json.RawMessage, asJSON bool) error {
	env := r.env
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
	var rf requestFlags
	cmd := r.command(apiCmd{
		use:   "request --scope ID [--target T]... [--ports P] [--probe K]... [--rate PPS]",
		short: "Request a scan of a registered scope (non-production: step-up and it runs; production: waits for two approvers)",
		args:  cobra.NoArgs, what: "scan request", method: http.MethodPost, path: fixedPath("/scans"),
		body:  func([]string) (any, error) { return rf.body("scan request") },
		print: r.printScan, tenant: true, json: true,
	})
	rf.add(cmd)
	return cmd
}

var scheduleCols = []column{{"ID", "id"}, {"STATE", "state"}, {"SPEC", "spec"}, {"SCOPE", "scope_id"}, {"REQUESTER", "requester_id"}, {"VALID UNTIL", "valid_until"}, {"NEXT RUN", "next_run"}, {"LAST RUN", "last_run"}}

func newScheduleCmd(r *remote) *cobra.Command {
	return newGroup("schedule", "Scan schedules with a standing dual approval (through the API)",
		newScheduleWriteCmd(r, "create"),
		listCmd(r, "list", "List scan schedules", "/scan-schedules", true, scheduleCols, nil),
		showCmd(r, "scan schedule show", "show SCHEDULE_ID", "Show one scan schedule", "/scan-schedules/%s"),
		transitionCmd(r, "scan schedule", "/scan-schedules", "SCHEDULE_ID", "approve", "Approve another person's schedule (approvers, step-up)", "", false),
		newScheduleWriteCmd(r, "edit"),
		transitionCmd(r, "scan schedule", "/scan-schedules", "SCHEDULE_ID", "void", "Void a schedule", "why (required)", true),
	)
}

// newScheduleWriteCmd builds 'schedule create' and 'schedule edit ID'
// (which voids the schedule and prints its pending replacement).
func newScheduleWriteCmd(r *remote, verb string) *cobra.Command {
	var (
		rf        requestFlags
		spec      string
		validDays int
	)
	what := "scan schedule " + verb
	a := apiCmd{
		use:   "create --scope ID --spec S [--valid-days N] [request flags]",
		short: "Propose a scan schedule; it runs once two approvers approve it",
		args:  cobra.NoArgs, what: what, method: http.MethodPost, path: fixedPath("/scan-schedules"),
		body: func([]string) (any, error) {
			body, err := rf.body(what)
			if err != nil {
				return nil, err
			}
			if spec == "" {
				return nil, usagef("%s: --spec is required", what)
			}
			body["spec"] = spec
			if validDays != 0 {
				body["valid_days"] = validDays
			}
			return body, nil
		},
		print: r.printScan, tenant: true, json: true,
	}
	if verb == "edit" {
		a.use, a.short, a.args = "edit SCHEDULE_ID --scope ID --spec S [--valid-days N] [request flags]", "Change a schedule: voids it and proposes the replacement (approved again)", cobra.ExactArgs(1)
		a.path = idPath("/scan-schedules/%s/edit")
	}
	cmd := r.command(a)
	rf.add(cmd)
	cmd.Flags().StringVar(&spec, "spec", "", `"@every 6h" or a five-field cron line in UTC (required)`)
	cmd.Flags().IntVar(&validDays, "valid-days", 0, "how long the standing approval lasts, 1-90 (default 90)")
	return cmd
}

func newScanListCmd(r *remote) *cobra.Command {
	return listCmd(r, "list [--state S]", "List scans, newest first", "/scans", true, scanCols, queryFlag("state", "pending, approved, denied, queued, running, completed, failed or cancelled"))
}

// scanTransition builds scan approve, deny, start and cancel.
func scanTransition(r *remote, verb, short, reasonHelp string, needReason bool) *cobra.Command {
	return transitionCmd(r, "scan", "/scans", "SCAN_ID", verb, short, reasonHelp, needReason)
}

// transitionCmd builds a command that moves a scan or a schedule on:
// POST collection/{id}/VERB, printing its new state. reasonHelp, when
// set, adds --reason (sent, even empty); needReason requires it.
func transitionCmd(r *remote, noun, collection, idArg, verb, short, reasonHelp string, needReason bool) *cobra.Command {
	var reason string
	use := verb + " " + idArg
	if reasonHelp != "" {
		use += " --reason R"
	}
	cmd := r.command(apiCmd{
		use: use, short: short, what: noun + " " + verb, method: http.MethodPost, path: idPath(collection + "/%s/" + verb),
		body: func([]string) (any, error) {
			if needReason && strings.TrimSpace(reason) == "" {
				return nil, usagef("%s %s: --reason is required", noun, verb)
			}
			if reasonHelp == "" {
				return struct{}{}, nil
			}
			return map[string]string{"reason": reason}, nil
		},
		print: r.printScan, tenant: true, json: true,
	})
	if reasonHelp != "" {
		cmd.Flags().StringVar(&reason, "reason", "", reasonHelp)
	}
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

// errStreamShutdown is what 'scan watch' returns when the appliance ended
// the stream because it is shutting down: the scan goes on (or resumes)
// without the watcher.
var errStreamShutdown = errors.New("the appliance is shutting down; watch again once it is back")

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
			shutdown := false
			err := r.call("scan watch", func(c *apiclient.Client) error {
				return c.Events(cmd.Context(), "/scans/"+pathEscape(args[0])+"/events", tenantQuery(tenant), func(ev apiclient.Event) error {
					if ev.Type == "shutdown" {
						shutdown = true
						return nil
					}
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
			if shutdown {
				return fmt.Errorf("scan watch: %s (last seen %s): %w", termSafe(args[0]), termSafe(last.State), errStreamShutdown)
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
