package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"firewalliq/appliance/cli/apiclient"
	"firewalliq/probe/bounded"
)

// The policy, report and review commands are clients of /api/v1 like the
// other management commands: the appliance authorises, asks for step-up
// and audits (docs/cli.md).

var (
	policyCols = []column{{"NAME", "name"}, {"VERSION", "version"}, {"VANTAGE", "vantage_point"}, {"RULES", "rules"}, {"SHA-256", "sha256"}, {"CREATED", "created_at"}}
	reportCols = []column{{"ID", "id"}, {"SCAN", "scan_id"}, {"VANTAGES", "vantages"}, {"POLICY", "policy"}, {"VERSION", "policy_version"}, {"FINDINGS", "findings"}, {"CREATED", "created_at"}, {"BY", "created_by"}}
	reviewCols = []column{{"ID", "id"}, {"TENANT", "tenant"}, {"STATUS", "status"}, {"STARTED", "started_at"}, {"BY", "started_by"}, {"SIGNED", "signed_at"}}
)

// tenantFlag adds --tenant.
func tenantFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVar(p, "tenant", "", "tenant id (appliance admins; default your own)")
}

// versionQuery is ?version=N (and ?tenant=) when set.
func versionQuery(tenant string, version int) url.Values {
	q := url.Values{}
	if tenant != "" {
		q.Set("tenant", tenant)
	}
	if version > 0 {
		q.Set("version", strconv.Itoa(version))
	}
	return q
}

// fetchTo GETs path?format=F[&tenant=T] through the API and writes the
// body to output ("-": standard output). It never overwrites a file
// (O_EXCL): a download must not clobber evidence already on disk.
func (r *remote) fetchTo(cmd *cobra.Command, path, format, tenant, output string) error {
	return r.call(cmd.CommandPath(), func(c *apiclient.Client) error {
		q := url.Values{"format": {format}}
		if tenant != "" {
			q.Set("tenant", tenant)
		}
		var b []byte
		if err := c.Get(cmd.Context(), path, q, &b); err != nil {
			return err
		}
		if output == "-" {
			_, err := r.env.Stdout.Write(b)
			return err
		}
		f, err := os.OpenFile(output, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		if _, err := f.Write(b); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Fprintf(r.env.Stdout, "wrote %s (%d bytes)\n", termSafe(output), len(b))
		return nil
	})
}

// downloadCmd builds 'download ID [--format json|html|pdf] [-o FILE]'.
func downloadCmd(r *remote, what, pathFmt string) *cobra.Command {
	var tenant, format, output string
	cmd := &cobra.Command{
		Use:   "download ID [--format json|html|pdf] [-o FILE]",
		Short: "Download a signed " + what + " (json: the signed file 'report verify' checks) or its HTML or PDF rendering",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch format {
			case "json", "html", "pdf":
			default:
				return usagef("%s: --format must be json, html or pdf", cmd.CommandPath())
			}
			if output == "" {
				output = strings.ReplaceAll(what, " ", "-") + "-" + args[0] + "." + format
			}
			return r.fetchTo(cmd, fmt.Sprintf(pathFmt, pathEscape(args[0])), format, tenant, output)
		},
	}
	tenantFlag(cmd, &tenant)
	cmd.Flags().StringVar(&format, "format", "json", "json, html or pdf")
	cmd.Flags().StringVarP(&output, "output", "o", "", `file to write (never overwritten; "-" for standard output); default <kind>-ID.<format>`)
	return cmd
}

func newPolicyCmd(r *remote) *cobra.Command {
	return newGroup("policy", "Expected policies (through the API)",
		newPolicyAddCmd(r),
		listCmd(r, "list", "List policies (the newest version of each)", "/policies", true, policyCols, nil),
		newPolicyShowCmd(r),
		newPolicyDryRunCmd(r),
		newPolicyEvaluateCmd(r),
	)
}

// storedPolicy is the answer to 'policy add'.
type storedPolicy struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	SHA256  string `json:"sha256"`
	Rules   int    `json:"rules"`
}

func newPolicyAddCmd(r *remote) *cobra.Command {
	var (
		tenant string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "add FILE",
		Short: "Store a policy document (YAML or JSON) as the next version of the policy it names",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			// The API takes request bodies up to 1 MiB, so a larger
			// policy could not be sent anyway.
			src, err := bounded.ReadFile(args[0], bounded.MaxConfigFile)
			if err != nil {
				return err
			}
			return send(r, cmd, "policy add", http.MethodPost, "/policies", tenantQuery(tenant), map[string]string{"source": string(src)}, func(out storedPolicy) error {
				if asJSON {
					return writeJSONLine(r.env.Stdout, out)
				}
				fmt.Fprintf(r.env.Stdout, "policy %s version %d stored (%d rules, SHA-256 %s)\n", termSafe(out.Name), out.Version, out.Rules, termSafe(out.SHA256))
				return nil
			})
		},
	}
	tenantFlag(cmd, &tenant)
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newPolicyShowCmd(r *remote) *cobra.Command {
	var (
		tenant  string
		version int
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "show NAME [--version N]",
		Short: "Show a policy version (default the newest) and its document as submitted",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return send(r, cmd, "policy show", http.MethodGet, "/policies/"+pathEscape(args[0]), versionQuery(tenant, version), nil, func(out map[string]any) error {
				if asJSON {
					return printJSON(r.env, out)
				}
				src, _ := out["source"].(string)
				delete(out, "source")
				delete(out, "document")
				b, _ := json.Marshal(out)
				if err := printObject(r.env, b); err != nil {
					return err
				}
				fmt.Fprintf(r.env.Stdout, "\n%s", termSafeText(src))
				return nil
			})
		},
	}
	tenantFlag(cmd, &tenant)
	cmd.Flags().IntVar(&version, "version", 0, "version (default the newest)")
	jsonFlag(cmd, &asJSON)
	return cmd
}

// termSafeText makes multi-line text safe for a terminal, line by line.
func termSafeText(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = termSafe(l)
	}
	return strings.Join(lines, "\n")
}

// dryRun is the answer to 'policy dry-run'.
type dryRun struct {
	Coverage []map[string]any `json:"coverage"`
	Warnings []map[string]any `json:"warnings"`
}

func newPolicyDryRunCmd(r *remote) *cobra.Command {
	var (
		tenant, scopeID string
		version         int
		asJSON          bool
	)
	cmd := &cobra.Command{
		Use:   "dry-run NAME --scope SCOPE_ID [--version N]",
		Short: "Which rules cover which targets of a registered scope; rules that never match or are shadowed",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if scopeID == "" {
				return usagef("policy dry-run: --scope is required")
			}
			body := map[string]any{"scope_id": scopeID, "version": version}
			return send(r, cmd, "policy dry-run", http.MethodPost, "/policies/"+pathEscape(args[0])+"/dry-run", tenantQuery(tenant), body, func(out dryRun) error {
				if asJSON {
					return printJSON(r.env, out)
				}
				fmt.Fprintf(r.env.Stdout, "coverage (%d):\n", len(out.Coverage))
				for _, c := range out.Coverage {
					b, _ := json.Marshal(c)
					fmt.Fprintf(r.env.Stdout, "  %s\n", termSafe(string(b)))
				}
				fmt.Fprintf(r.env.Stdout, "warnings (%d):\n", len(out.Warnings))
				for _, w := range out.Warnings {
					fmt.Fprintf(r.env.Stdout, "  line %s: rule %s: %s\n", cell(w["line"]), cell(w["rule"]), cell(w["message"]))
				}
				return nil
			})
		},
	}
	tenantFlag(cmd, &tenant)
	cmd.Flags().StringVar(&scopeID, "scope", "", "registered scope id (required)")
	cmd.Flags().IntVar(&version, "version", 0, "policy version (default the newest)")
	jsonFlag(cmd, &asJSON)
	return cmd
}

// evaluation is the answer to 'policy evaluate'.
type evaluation struct {
	Policy     string           `json:"policy"`
	Version    int              `json:"version"`
	BaselineID string           `json:"baseline_id"`
	Summary    map[string]any   `json:"summary"`
	Findings   []map[string]any `json:"findings"`
	AuditSeq   int64            `json:"audit_seq"`
	Imported   bool             `json:"imported"`
}

func newPolicyEvaluateCmd(r *remote) *cobra.Command {
	var (
		tenant, scanID, nmapXML, scopeID string
		version                          int
		asJSON                           bool
	)
	cmd := &cobra.Command{
		Use:   "evaluate NAME (--scan SCAN_ID | --nmap-xml FILE [--scope SCOPE_ID]) [--version N]",
		Short: "Judge a completed scan, or another scanner's Nmap XML (unsigned), against a policy; findings go to the SIEM",
		Long: `Evaluate judges a completed scan's stored results against the policy and the
current baseline of the scan's scope (drift), records policy.evaluate and
queues every finding to the SIEM destinations, with its severity.

With --nmap-xml FILE it judges another scanner's Nmap XML output instead (at
most 1 MiB): unsigned imported evidence, so marked in the audit entry and in
every finding sent to the SIEM. --scope compares it with that scope's
baseline too. An import never becomes a report.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (scanID == "") == (nmapXML == "") {
				return usagef("policy evaluate: give --scan or --nmap-xml")
			}
			body := map[string]any{"scan_id": scanID, "version": version}
			if nmapXML != "" {
				b, err := bounded.ReadFile(nmapXML, bounded.MaxConfigFile)
				if err != nil {
					return err
				}
				body = map[string]any{"nmap_xml": string(b), "scope_id": scopeID, "version": version}
			}
			return send(r, cmd, "policy evaluate", http.MethodPost, "/policies/"+pathEscape(args[0])+"/evaluate", tenantQuery(tenant), body, func(out evaluation) error {
				if asJSON {
					return printJSON(r.env, out)
				}
				what := "scan " + scanID
				if out.Imported {
					what = nmapXML + " (IMPORTED: unsigned evidence)"
				}
				base := out.BaselineID
				if base == "" {
					base = "none"
				}
				fmt.Fprintf(r.env.Stdout, "%s judged against policy %s v%d (baseline %s; audit entry %d)\n", termSafe(what), termSafe(out.Policy), out.Version, termSafe(base), out.AuditSeq)
				for _, f := range out.Findings {
					fmt.Fprintf(r.env.Stdout, "  %s %s: %s\n", cell(f["severity"]), cell(f["kind"]), cell(f["title"]))
				}
				if len(out.Findings) == 0 {
					fmt.Fprintln(r.env.Stdout, "  no findings")
				}
				return nil
			})
		},
	}
	tenantFlag(cmd, &tenant)
	cmd.Flags().StringVar(&scanID, "scan", "", "completed scan id")
	cmd.Flags().StringVar(&nmapXML, "nmap-xml", "", "another scanner's Nmap XML output (unsigned imported evidence)")
	cmd.Flags().StringVar(&scopeID, "scope", "", "with --nmap-xml: compare with this scope's baseline")
	cmd.Flags().IntVar(&version, "version", 0, "policy version (default the newest)")
	jsonFlag(cmd, &asJSON)
	return cmd
}

// reportRemoteCmds are the report commands that go through the API.
func reportRemoteCmds(r *remote) []*cobra.Command {
	return []*cobra.Command{
		newReportCreateCmd(r),
		listCmd(r, "list", "List signed compliance reports, newest first", "/reports", true, reportCols, nil),
		showCmd(r, "", "show ID", "Show a report as its audit entry recorded it", "/reports/%s"),
		downloadCmd(r, "report", "/reports/%s/download"),
	}
}

func newReportCreateCmd(r *remote) *cobra.Command {
	var (
		tenant          string
		scans, policies []string
		versions        []int
		asJSON          bool
	)
	cmd := &cobra.Command{
		Use:   "create --scan SCAN_ID --policy NAME [--version N] [--scan SCAN_ID --policy NAME ...]",
		Short: "Build, sign and store the compliance report of completed scans, each against its policy",
		Long: `Create judges a completed scan's results against a policy and signs the
report. Given several --scan flags it signs one combined report (format
firewalliq.report.combined/v1) of those scans, typically from several vantage
points: the n-th --policy (and --version, when given) is the n-th scan's, or one
--policy for every scan. Each part names its scan's vantage (the appliance or
a sensor) and the policy's vantage point.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(scans) == 0 || len(policies) == 0 {
				return usagef("report create: --scan and --policy are required")
			}
			if len(policies) != 1 && len(policies) != len(scans) {
				return usagef("report create: give one --policy, or one per --scan (%d scans, %d policies)", len(scans), len(policies))
			}
			if len(versions) > 1 && len(versions) != len(policies) {
				return usagef("report create: give one --version, or one per --policy")
			}
			pick := func(i int) (string, int) {
				name, v := policies[0], 0
				if len(policies) > 1 {
					name = policies[i]
				}
				switch {
				case len(versions) == 1:
					v = versions[0]
				case len(versions) > 1:
					v = versions[i]
				}
				return name, v
			}
			var body map[string]any
			if len(scans) == 1 {
				name, v := pick(0)
				body = map[string]any{"scan_id": scans[0], "policy": name, "policy_version": v}
			} else {
				var parts []map[string]any
				for i, id := range scans {
					name, v := pick(i)
					parts = append(parts, map[string]any{"scan_id": id, "policy": name, "policy_version": v})
				}
				body = map[string]any{"parts": parts}
			}
			return send(r, cmd, "report create", http.MethodPost, "/reports", tenantQuery(tenant), body, func(out map[string]any) error {
				if asJSON {
					return writeJSONLine(r.env.Stdout, out)
				}
				fmt.Fprintf(r.env.Stdout, "report %s signed (key %s, SHA-256 %s), stored as evidence %s\n",
					cell(out["id"]), cell(out["key_id"]), cell(out["sha256"]), cell(out["key"]))
				return nil
			})
		},
	}
	tenantFlag(cmd, &tenant)
	cmd.Flags().StringArrayVar(&scans, "scan", nil, "completed scan id (required; repeat to combine scans in one report)")
	cmd.Flags().StringArrayVar(&policies, "policy", nil, "policy name (required; one for every scan, or one per --scan in order)")
	cmd.Flags().IntSliceVar(&versions, "version", nil, "policy version (default the newest; one, or one per --policy)")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newReviewCmd(r *remote) *cobra.Command {
	return newGroup("review", "Access reviews: who can do what, signed off (through the API)",
		r.command(apiCmd{
			use:   "start [--tenant T]",
			short: "Start an access review (appliance admins without --tenant: the appliance-admin review)",
			args:  cobra.NoArgs, what: "review start", method: http.MethodPost, path: fixedPath("/reviews"),
			body:  func([]string) (any, error) { return struct{}{}, nil },
			print: r.printReview, tenant: true, json: true,
		}),
		listCmd(r, "list", "List access reviews", "/reviews", true, reviewCols, nil),
		r.command(apiCmd{
			use: "show ID", short: "Show an access review's lines and decisions",
			what: "review show", method: http.MethodGet, path: idPath("/reviews/%s"),
			print: r.printReview, tenant: true, json: true,
		}),
		newReviewDecideCmd(r),
		r.command(apiCmd{
			use: "sign ID", short: "Sign an access review: its revocations take effect, the signed document is stored (step-up)",
			what: "review sign", method: http.MethodPost, path: idPath("/reviews/%s/sign"),
			body:  func([]string) (any, error) { return struct{}{}, nil },
			print: r.printSigned, tenant: true, json: true,
		}),
		downloadCmd(r, "review", "/reviews/%s/download"),
	)
}

// reviewView is what the review commands read of a review.
type reviewView struct {
	ID        string   `json:"id"`
	Tenant    string   `json:"tenant"`
	Status    string   `json:"status"`
	Undecided []string `json:"undecided"`
	Document  struct {
		Lines []struct {
			Item     string `json:"item"`
			Subject  string `json:"subject"`
			Effect   string `json:"effect"`
			Decision string `json:"decision"`
		} `json:"lines"`
	} `json:"document"`
}

// printReview prints a review answer: JSON, or its lines and decisions.
func (r *remote) printReview(_ []string, raw json.RawMessage, asJSON bool) error {
	if asJSON {
		return printJSON(r.env, raw)
	}
	var v reviewView
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	fmt.Fprintf(r.env.Stdout, "review %s (tenant %s): %s, %d undecided\n", termSafe(v.ID), cell(v.Tenant), termSafe(v.Status), len(v.Undecided))
	for _, l := range v.Document.Lines {
		d := l.Decision
		if d == "" {
			d = "-"
		}
		fmt.Fprintf(r.env.Stdout, "  %-8s %s  %s %s\n", termSafe(d), termSafe(l.Item), termSafe(l.Subject), termSafe(l.Effect))
	}
	return nil
}

// printSigned prints the answer of 'review sign': one JSON line, or what
// was signed and what took effect.
func (r *remote) printSigned(_ []string, raw json.RawMessage, asJSON bool) error {
	var out map[string]any
	if len(raw) > 0 {
		// An answer without a body prints as the nil map.
		if err := json.Unmarshal(raw, &out); err != nil {
			return err
		}
	}
	if asJSON {
		return writeJSONLine(r.env.Stdout, out)
	}
	fmt.Fprintf(r.env.Stdout, "review %s signed (key %s, SHA-256 %s): %s revoked, %s flags closed\n",
		cell(out["id"]), cell(out["key_id"]), cell(out["sha256"]), cell(out["revoked"]), cell(out["flags_closed"]))
	return nil
}

func newReviewDecideCmd(r *remote) *cobra.Command {
	var (
		tenant, rest, note string
	)
	cmd := &cobra.Command{
		Use:   "decide ID [ITEM=keep|revoke ...] [--rest keep|revoke] [--note TEXT]",
		Short: "Mark lines of an open review keep or revoke (revocations take effect when it is signed)",
		Long: `Each ITEM=DECISION argument decides one line (items as 'review show' lists
them: user:ID, token:ID, ticket:ID, flag:ID). --rest decides every line still
undecided after those. A later decision on a line replaces an earlier one.`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if rest != "" && rest != "keep" && rest != "revoke" {
				return usagef("review decide: --rest must be keep or revoke")
			}
			type decision struct {
				Item     string `json:"item"`
				Decision string `json:"decision"`
				Note     string `json:"note"`
			}
			var ds []decision
			named := map[string]bool{}
			for _, a := range args[1:] {
				item, d, ok := strings.Cut(a, "=")
				if !ok || item == "" || (d != "keep" && d != "revoke") {
					return usagef("review decide: %q is not ITEM=keep or ITEM=revoke", a)
				}
				ds = append(ds, decision{item, d, note})
				named[item] = true
			}
			if len(ds) == 0 && rest == "" {
				return usagef("review decide: give ITEM=DECISION arguments or --rest")
			}
			return r.call("review decide", func(c *apiclient.Client) error {
				path := "/reviews/" + pathEscape(args[0])
				if rest != "" {
					var v reviewView
					if err := c.Get(cmd.Context(), path, tenantQuery(tenant), &v); err != nil {
						return err
					}
					for _, item := range v.Undecided {
						if !named[item] {
							ds = append(ds, decision{item, rest, note})
						}
					}
				}
				var v reviewView
				if err := c.Do(cmd.Context(), http.MethodPost, path+"/decide", tenantQuery(tenant), map[string]any{"decisions": ds}, &v); err != nil {
					return err
				}
				fmt.Fprintf(r.env.Stdout, "%d decisions recorded; %d lines undecided\n", len(ds), len(v.Undecided))
				return nil
			})
		},
	}
	tenantFlag(cmd, &tenant)
	cmd.Flags().StringVar(&rest, "rest", "", "decide every remaining undecided line: keep or revoke")
	cmd.Flags().StringVar(&note, "note", "", "note recorded with these decisions")
	return cmd
}

// newScanExportCmd builds 'scan export': a completed scan's results as
// Nmap XML (which Debian's ndiff reads) or JSON Lines, through the API.
func newScanExportCmd(r *remote) *cobra.Command {
	var tenant, format, output string
	cmd := &cobra.Command{
		Use:   "export SCAN_ID [--format nmap-xml|jsonl] [-o FILE]",
		Short: "Export a completed scan's results as Nmap XML (ndiff reads it) or JSON Lines",
		Long: `Export writes a completed scan's stored results for other tools: Nmap XML
(--format nmap-xml, the default; 'ndiff a.xml b.xml' compares two scans) or
JSON Lines (--format jsonl). REJECT and DROP stay distinct in the XML: rejected
ports are "filtered" with the ICMP reason Nmap uses, or "closed" for a reset.
The export is a copy, not evidence: the signed results file in the evidence
vault is what a report proves.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ext := map[string]string{"nmap-xml": "xml", "jsonl": "jsonl"}[format]
			if ext == "" {
				return usagef("%s: --format must be nmap-xml or jsonl", cmd.CommandPath())
			}
			if output == "" {
				output = "scan-" + args[0] + "." + ext
			}
			return r.fetchTo(cmd, fmt.Sprintf("/scans/%s/export", pathEscape(args[0])), format, tenant, output)
		},
	}
	tenantFlag(cmd, &tenant)
	cmd.Flags().StringVar(&format, "format", "nmap-xml", "nmap-xml or jsonl")
	cmd.Flags().StringVarP(&output, "output", "o", "", `file to write (never overwritten; "-" for standard output); default scan-ID.xml or .jsonl`)
	return cmd
}
