package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"firewalliq/appliance/cli/apiclient"
)

// The management commands below are clients of /api/v1: they hold no
// business logic, open no database and write no audit entry. The appliance
// authorises each request, asks for step-up where the permission matrix
// says so (answered from the prompter), and audits it (docs/cli.md).

// listCmd builds a list command: GET path (every page) printed as a table
// of cols, or as a JSON array with --json. withTenant adds --tenant.
func listCmd(r *remote, use, short, path string, withTenant bool, cols []column, extra func(*cobra.Command, url.Values)) *cobra.Command {
	var (
		asJSON bool
		tenant string
	)
	q := url.Values{}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if tenant != "" {
				q.Set("tenant", tenant)
			}
			return r.call(cmd.CommandPath(), func(c *apiclient.Client) error {
				items, err := c.List(cmd.Context(), path, q)
				if err != nil {
					return err
				}
				return printList(r.env, items, asJSON, cols)
			})
		},
	}
	jsonFlag(cmd, &asJSON)
	if withTenant {
		tenantFlag(cmd, &tenant)
	}
	if extra != nil {
		extra(cmd, q)
	}
	return cmd
}

// queryFlag is a listCmd extra: --name (with help usage), sent as
// ?name= when set.
func queryFlag(name, usage string) func(*cobra.Command, url.Values) {
	return func(cmd *cobra.Command, q url.Values) {
		var v string
		cmd.Flags().StringVar(&v, name, "", usage)
		prev := cmd.RunE
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			if v != "" {
				q.Set(name, v)
			}
			return prev(cmd, args)
		}
	}
}

// actionCmd builds a command that sends one request with an id argument
// and prints done (with %s for the id) on success.
func actionCmd(r *remote, use, short, method, pathFmt string, body func() (any, error), done string, withTenant bool) *cobra.Command {
	a := apiCmd{use: use, short: short, method: method, path: idPath(pathFmt), done: done, tenant: withTenant}
	if body != nil {
		a.body = func([]string) (any, error) { return body() }
	}
	return r.command(a)
}

var (
	userCols   = []column{{"ID", "id"}, {"NAME", "name"}, {"ROLE", "role"}, {"TENANT", "tenant_id"}, {"TOTP", "totp_confirmed"}, {"DISABLED", "disabled"}, {"CREATED", "created_at"}}
	tenantCols = []column{{"ID", "id"}, {"NAME", "name"}, {"CREATED", "created_at"}}
	tokenCols  = []column{{"ID", "id"}, {"NAME", "name"}, {"ROLE", "role"}, {"USER", "user_id"}, {"TENANT", "tenant_id"}, {"EXPIRES", "expires_at"}, {"REVOKED", "revoked_at"}}
	ticketCols = []column{{"ID", "id"}, {"SUPPORT USER", "support_user_id"}, {"OPENED BY", "opened_by"}, {"OPENED", "opened_at"}, {"EXPIRES", "expires_at"}, {"CLOSED", "closed_at"}, {"REASON", "reason"}}
	approvCols = []column{{"ID", "id"}, {"KIND", "kind"}, {"STATUS", "status"}, {"REQUESTER", "requester_id"}, {"TENANT", "tenant_id"}, {"CREATED", "created_at"}, {"EXPIRES", "expires_at"}}
	alertCols  = []column{{"ID", "seq"}, {"TIME", "time"}, {"ACTIVITY", "activity"}, {"USER", "user_name"}, {"TENANT", "tenant"}, {"THRESHOLD", "threshold"}, {"ACKED BY", "acked_by"}, {"ACKED", "acked_at"}}
	objectCols = []column{{"KEY", "key"}, {"VERSION", "version_id"}, {"TENANT", "tenant"}, {"SHA-256", "sha256"}, {"SIZE", "size"}, {"WORM", "worm"}, {"RETAIN UNTIL", "retain_until"}, {"AUDIT SEQ", "audit_seq"}}
)

func newUserCmd(r *remote) *cobra.Command {
	return newGroup("user", "Users and roles (through the API)",
		newUserAddCmd(r),
		listCmd(r, "list", "List users", "/users", true, userCols, nil),
		newUserSetRoleCmd(r),
		actionCmd(r, "disable USER_ID", "Disable a user and end their sessions (step-up)", http.MethodPost, "/users/%s/disable", nil, "disabled %s", true),
		actionCmd(r, "reset-totp USER_ID", "Reset a user's TOTP after a lost device (step-up)", http.MethodPost, "/users/%s/reset-totp", nil, "TOTP of %s reset; the user enrols again at the next login", true),
		// Registering and using a key needs a browser (navigator.credentials):
		// the console does it; the CLI lists and removes.
		newGroup("key", "Your own security keys: list and remove (register and use them in the console; the CLI cannot talk to a key)",
			listCmd(r, "list", "List your security keys (last use, clone warning)", "/auth/keys", false, securityKeyCols, nil),
			actionCmd(r, "remove KEY_ID", "Remove one of your security keys (step-up)", http.MethodDelete, "/auth/keys/%s", nil, "removed security key %s", false),
		),
	)
}

// securityKeyCols are the columns of "user key list".
var securityKeyCols = []column{{"ID", "id"}, {"NAME", "name"}, {"CREATED", "created_at"}, {"LAST USED", "last_used_at"}, {"FROM", "last_used_ip"}, {"COUNTER", "sign_count"}, {"CLONE WARNING", "clone_warning"}}

// createdUser is the answer to 'user add' (and what --json prints).
type createdUser struct {
	ID              string `json:"id"`
	Name            string `json:"name"`
	Role            string `json:"role"`
	OneTimePassword string `json:"one_time_password"`
}

func newUserAddCmd(r *remote) *cobra.Command {
	var (
		name, role, tenant string
		asJSON             bool
	)
	cmd := &cobra.Command{
		Use:   "add --name NAME --role ROLE [--tenant T] [--json]",
		Short: "Create a user; prints the one-time password once (step-up)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(name) == "" || role == "" {
				return usagef("user add: --name and --role are required")
			}
			return send(r, cmd, "user add", http.MethodPost, "/users", nil, map[string]string{"name": name, "role": role, "tenant": tenant}, func(out createdUser) error {
				if asJSON {
					return writeJSONLine(r.env.Stdout, out)
				}
				fmt.Fprintf(r.env.Stdout, "created %s (%s) id %s\none-time password (shown once; the user changes it at first login): %s\n",
					termSafe(out.Name), termSafe(out.Role), termSafe(out.ID), termSafe(out.OneTimePassword))
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "user name (required)")
	f.StringVar(&role, "role", "", "admin, security_lead, approver, operator, auditor or support (required)")
	tenantFlag(cmd, &tenant)
	f.BoolVar(&asJSON, "json", false, `print {"id","name","role","one_time_password"}`)
	return cmd
}

func newUserSetRoleCmd(r *remote) *cobra.Command {
	var tenant string
	cmd := &cobra.Command{
		Use:   "set-role USER_ID ROLE",
		Short: "Change a user's role; ends their sessions (step-up)",
		Args:  usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return r.call("user set-role", func(c *apiclient.Client) error {
				if err := c.Do(cmd.Context(), http.MethodPost, "/users/"+pathEscape(args[0])+"/role", tenantQuery(tenant), map[string]string{"role": args[1]}, nil); err != nil {
					return err
				}
				fmt.Fprintf(r.env.Stdout, "role of %s is now %s\n", termSafe(args[0]), termSafe(args[1]))
				return nil
			})
		},
	}
	tenantFlag(cmd, &tenant)
	return cmd
}

func newTenantCmd(r *remote) *cobra.Command {
	add := r.command(apiCmd{
		use: "add NAME", short: "Create a tenant (appliance admins, step-up)",
		what: "tenant add", method: http.MethodPost, path: fixedPath("/tenants"),
		body:  func(args []string) (any, error) { return map[string]string{"name": args[0]}, nil },
		print: r.objectPrinter, json: true,
	})
	return newGroup("tenant", "Tenants (through the API)", add,
		listCmd(r, "list", "List tenants (appliance admins)", "/tenants", false, tenantCols, nil))
}

func newTokenCmd(r *remote) *cobra.Command {
	var (
		name, role, tenant string
		ttl                time.Duration
		asJSON             bool
	)
	create := &cobra.Command{
		Use:   "create --name NAME --role ROLE [--ttl D] [--json]",
		Short: "Create an API token; prints it once (step-up)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(name) == "" || role == "" {
				return usagef("token create: --name and --role are required")
			}
			if ttl < 0 {
				return usagef("token create: --ttl must not be negative")
			}
			body := map[string]any{"name": name, "role": role}
			if ttl > 0 {
				body["ttl"] = ttl.String()
			}
			if tenant != "" {
				body["tenant"] = tenant
			}
			return send(r, cmd, "token create", http.MethodPost, "/tokens", nil, body, func(out map[string]any) error {
				if asJSON {
					return writeJSONLine(r.env.Stdout, out)
				}
				fmt.Fprintf(r.env.Stdout, "token %s (%s, role %s, expires %s)\nsecret (shown once; use it as FIQ_TOKEN): %s\n",
					cell(out["id"]), cell(out["name"]), cell(out["role"]), cell(out["expires_at"]), cell(out["token"]))
				return nil
			})
		},
	}
	f := create.Flags()
	f.StringVar(&name, "name", "", "what the token is for (required)")
	f.StringVar(&role, "role", "", "role the token acts with, no stronger than yours (required)")
	f.DurationVar(&ttl, "ttl", 0, "lifetime (default the appliance's, e.g. 720h)")
	tenantFlag(create, &tenant)
	jsonFlag(create, &asJSON)
	return newGroup("token", "API tokens (through the API)", create,
		listCmd(r, "list", "List API tokens", "/tokens", false, tokenCols, nil),
		actionCmd(r, "revoke TOKEN_ID", "Revoke an API token", http.MethodDelete, "/tokens/%s", nil, "revoked %s", false),
	)
}

func newSupportCmd(r *remote) *cobra.Command {
	var (
		user, reason string
		ttl          time.Duration
	)
	open := r.command(apiCmd{
		use:   "open --support-user USER_ID --ttl D --reason TEXT",
		short: "Open a time-limited support ticket for one support user (step-up)",
		args:  cobra.NoArgs, what: "support open", method: http.MethodPost, path: fixedPath("/support"),
		body: func([]string) (any, error) {
			if user == "" || ttl <= 0 || strings.TrimSpace(reason) == "" {
				return nil, usagef("support open: --support-user, a positive --ttl and --reason are required")
			}
			return map[string]string{"support_user": user, "ttl": ttl.String(), "reason": reason}, nil
		},
		print: r.objectPrinter, json: true,
	})
	f := open.Flags()
	f.StringVar(&user, "support-user", "", "id of the support user (required)")
	f.DurationVar(&ttl, "ttl", 0, "how long the ticket lasts, e.g. 4h (required)")
	f.StringVar(&reason, "reason", "", "why (required; kept in the audit entry)")
	return newGroup("support", "Support tickets (through the API)", open,
		actionCmd(r, "close TICKET_ID", "Close a support ticket early", http.MethodPost, "/support/%s/close", nil, "closed %s", false),
		listCmd(r, "list", "List support tickets", "/support", false, ticketCols, nil),
	)
}

func newApprovalCmd(r *remote) *cobra.Command {
	var reason string
	deny := actionCmd(r, "deny REQUEST_ID --reason TEXT", "Deny a pending request", http.MethodPost, "/approvals/%s/deny",
		func() (any, error) {
			if strings.TrimSpace(reason) == "" {
				return nil, usagef("approval deny: --reason is required")
			}
			return map[string]string{"reason": reason}, nil
		}, "denied %s", false)
	deny.Flags().StringVar(&reason, "reason", "", "why (required; kept in the audit entry)")
	var voidReason string
	void := actionCmd(r, "void REQUEST_ID --reason TEXT", "Withdraw a request (requesters may void their own)", http.MethodPost, "/approvals/%s/void",
		func() (any, error) {
			if strings.TrimSpace(voidReason) == "" {
				return nil, usagef("approval void: --reason is required")
			}
			return map[string]string{"reason": voidReason}, nil
		}, "voided %s", false)
	void.Flags().StringVar(&voidReason, "reason", "", "why (required; kept in the audit entry)")
	show := r.command(apiCmd{
		use: "show REQUEST_ID", short: "Show a request: the canonical request the approvers review, and its grants",
		what: "approval show", method: http.MethodGet, path: idPath("/approvals/%s"),
		print: r.objectPrinter, json: true,
	})
	return newGroup("approval", "Dual-approval requests (through the API)",
		listCmd(r, "list [--status pending|approved|denied|void]", "List approval requests", "/approvals", false, approvCols, queryFlag("status", "only requests in this status")),
		show,
		actionCmd(r, "approve REQUEST_ID", "Approve another person's request (step-up)", http.MethodPost, "/approvals/%s/approve", nil, "approved %s", false),
		deny,
		void,
	)
}

func newAlertCmd(r *remote) *cobra.Command {
	var comment string
	ack := actionCmd(r, "ack ALERT_ID [--comment TEXT]", "Acknowledge an anomaly alert (its id is its audit sequence number)", http.MethodPost, "/alerts/%s/ack",
		func() (any, error) { return map[string]string{"comment": comment}, nil }, "acknowledged alert %s", true)
	ack.Flags().StringVar(&comment, "comment", "", "what was found (kept in the audit entry)")
	return newGroup("alert", "Anomaly alerts (through the API)",
		listCmd(r, "list", "List anomaly alerts", "/alerts", true, alertCols, nil),
		ack,
	)
}

func newEvidenceCmd(r *remote) *cobra.Command {
	var (
		key, version, request string
		asJSON                bool
	)
	export := &cobra.Command{
		Use:   "export --key KEY --version VERSION_ID [--request REQUEST_ID]",
		Short: "Ask to export an evidence object (dual approval), then get its pre-signed URL (step-up)",
		Long: `An export needs two approvers other than the requester. Without --request,
export opens the approval request and prints it (its id is the request id).
Once two others have approved it ('approval approve ID'), the same command with
--request ID asks for a step-up code and prints the 5-minute pre-signed URL;
the approval is then spent.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if key == "" || version == "" {
				return usagef("evidence export: --key and --version are required")
			}
			body := map[string]string{"key": key, "version_id": version}
			path := "/evidence/exports"
			if request != "" {
				path += "/" + pathEscape(request) + "/url"
			}
			return send(r, cmd, "evidence export", http.MethodPost, path, nil, body, func(out json.RawMessage) error {
				if asJSON {
					return printJSON(r.env, out)
				}
				if request == "" {
					fmt.Fprintln(r.env.Stdout, "export requested; two approvers other than you must approve it, then run this again with --request ID")
				}
				return printObject(r.env, out)
			})
		},
	}
	f := export.Flags()
	f.StringVar(&key, "key", "", "object key (required)")
	f.StringVar(&version, "version", "", "object version id (required)")
	f.StringVar(&request, "request", "", "the approved export request's id: get the URL")
	jsonFlag(export, &asJSON)
	return newGroup("evidence", "Evidence objects and exports (through the API)",
		listCmd(r, "list [--prefix P]", "List recorded evidence objects", "/evidence", true, objectCols, queryFlag("prefix", "only keys with this prefix")),
		export,
	)
}

// alarmAck is the answer to 'audit acknowledge'.
type alarmAck struct {
	Entry struct {
		Seq int64 `json:"seq"`
	} `json:"entry"`
	Checkpoint struct {
		Size int64 `json:"size"`
	} `json:"checkpoint"`
}

// newAuditAckCmd builds 'audit acknowledge': an appliance admin's
// acknowledgement of the tamper alarm, through the API (step-up).
func newAuditAckCmd(r *remote) *cobra.Command {
	var comment string
	cmd := &cobra.Command{
		Use:   "acknowledge --comment TEXT",
		Short: "Acknowledge an audit tamper alarm (appliance admin, step-up)",
		Long: `Acknowledge the raised audit tamper alarm so that scans and evidence
exports may run again. Nothing in the broken history is repaired: the
acknowledgement is a new audit entry, followed by a signed checkpoint, that
references the break. Log in first ('firewalliq login'); the step-up code is
asked for like every other step-up.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(comment) == "" {
				return usagef("audit acknowledge: --comment is required")
			}
			return send(r, cmd, "audit acknowledge", http.MethodPost, "/audit/alarm/ack", nil, map[string]string{"comment": comment}, func(out alarmAck) error {
				fmt.Fprintf(r.env.Stdout, "alarm acknowledged: entry %d; the new segment starts at signed checkpoint size %d\n", out.Entry.Seq, out.Checkpoint.Size)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&comment, "comment", "", "what was found and done (required; kept in the audit entry)")
	return cmd
}

// maxScopeFile bounds a signed scope document 'scope register' reads.
const maxScopeFile = 1 << 20

func newScopeRegisterCmd(r *remote) *cobra.Command {
	return r.command(apiCmd{
		use:   "register SIGNED_SCOPE_FILE [--tenant ID]",
		short: "Register a signed scope with the appliance (security lead; through the API)",
		long: `register sends a signed scope document ('scope sign') to the appliance,
which verifies the signature against its trusted scope signers, the safety
profile and the validity window before it stores and audits it.`,
		what: "scope register", method: http.MethodPost, path: fixedPath("/scopes"),
		body: func(args []string) (any, error) {
			doc, err := readUserFile("scope register", args[0], maxScopeFile)
			if err != nil {
				return nil, err
			}
			if len(doc) > maxScopeFile || !json.Valid(doc) {
				return nil, usagef("scope register: %s is not a signed scope document (JSON of at most %d bytes)", args[0], maxScopeFile)
			}
			return json.RawMessage(doc), nil
		},
		print: func(_ []string, out json.RawMessage, asJSON bool) error {
			if asJSON {
				return printJSON(r.env, out)
			}
			return printObject(r.env, withoutKey(out, "document"))
		},
		tenant: true, json: true,
	})
}

func newScopeShowCmd(r *remote) *cobra.Command {
	return r.command(apiCmd{
		use: "show SCOPE_ID [--tenant ID]", short: "Print a registered scope's signed document (through the API)",
		what: "scope show", method: http.MethodGet, path: idPath("/scopes/%s"),
		print:  func(_ []string, out json.RawMessage, _ bool) error { return printJSON(r.env, out) },
		tenant: true,
	})
}

// withoutKey drops one field of a JSON object (a long one a table would
// not show).
func withoutKey(raw json.RawMessage, key string) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return raw
	}
	delete(m, key)
	b, _ := json.Marshal(m)
	return b
}

func newWhoamiCmd(r *remote) *cobra.Command {
	return r.command(apiCmd{
		use: "whoami", short: "Show who the session or token acts as",
		args: cobra.NoArgs, what: "whoami", method: http.MethodGet, path: fixedPath("/auth/whoami"),
		print: r.objectPrinter, json: true,
	})
}

// newAuditEntriesCmd lists audit entries through the API (auditors without
// access to the data directory).
func newAuditEntriesCmd(r *remote) *cobra.Command {
	return listCmd(r, "entries [--tenant ID] [--json]", "List audit entries through the API (admins, security leads, auditors)", "/audit/entries", true,
		[]column{{"SEQ", "seq"}, {"TIME", "time"}, {"TENANT", "tenant"}, {"ACTOR", "actor_name"}, {"IP", "actor_ip"}, {"ACTION", "action"}, {"OBJECT", "object"}}, nil)
}
