package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"

	"firewalliq/appliance/cli/apiclient"
)

// apiCmd describes a management command that sends one request to the API
// and prints the answer. Most management commands differ only in these
// fields; command builds the rest (argument checks that exit 2, --tenant,
// --json, the client with step-up from the prompter, error wrapping).
type apiCmd struct {
	use, short, long string
	// what prefixes the command's errors ("scan approve: ..."); empty means
	// the command path ("firewalliq report show: ...").
	what string
	// args checks the arguments; nil means exactly one (an id).
	args   cobra.PositionalArgs
	method string
	// path is the API path for the arguments.
	path func(args []string) string
	// body checks the flags and returns the request body, before anything
	// is sent; nil sends no body.
	body func(args []string) (any, error)
	// print prints the answer; asJSON is --json. Nil reads no answer and
	// prints done instead, the id (made safe) in its %s.
	print func(args []string, out json.RawMessage, asJSON bool) error
	done  string
	// tenant adds --tenant (sent as ?tenant=), json adds --json.
	tenant, json bool
}

// command builds the cobra command a describes.
func (r *remote) command(a apiCmd) *cobra.Command {
	var (
		tenant string
		asJSON bool
	)
	args := a.args
	if args == nil {
		args = cobra.ExactArgs(1)
	}
	cmd := &cobra.Command{
		Use:   a.use,
		Short: a.short,
		Long:  a.long,
		Args:  usageArgs(args),
		RunE: func(cmd *cobra.Command, args []string) error {
			var in any
			if a.body != nil {
				var err error
				if in, err = a.body(args); err != nil {
					return err
				}
			}
			what := a.what
			if what == "" {
				what = cmd.CommandPath()
			}
			return r.call(what, func(c *apiclient.Client) error {
				if a.print == nil {
					if err := c.Do(cmd.Context(), a.method, a.path(args), tenantQuery(tenant), in, nil); err != nil {
						return err
					}
					fmt.Fprintf(r.env.Stdout, a.done+"\n", termSafe(args[0]))
					return nil
				}
				var out json.RawMessage
				if err := c.Do(cmd.Context(), a.method, a.path(args), tenantQuery(tenant), in, &out); err != nil {
					return err
				}
				return a.print(args, out, asJSON)
			})
		},
	}
	if a.tenant {
		tenantFlag(cmd, &tenant)
	}
	if a.json {
		jsonFlag(cmd, &asJSON)
	}
	return cmd
}

// send makes one request through the API as what and hands the answer,
// decoded as T, to show: the body of the commands whose output needs
// more than command gives.
func send[T any](r *remote, cmd *cobra.Command, what, method, path string, q url.Values, body any, show func(T) error) error {
	return r.call(what, func(c *apiclient.Client) error {
		var out T
		if err := c.Do(cmd.Context(), method, path, q, body, &out); err != nil {
			return err
		}
		return show(out)
	})
}

// idPath is a path function for a pattern with one %s: the escaped first
// argument.
func idPath(pattern string) func([]string) string {
	return func(args []string) string { return fmt.Sprintf(pattern, pathEscape(args[0])) }
}

// fixedPath is a path function for a path without arguments.
func fixedPath(path string) func([]string) string {
	return func([]string) string { return path }
}

// objectPrinter prints an answer as JSON with --json, else as a table of
// its fields.
func (r *remote) objectPrinter(_ []string, out json.RawMessage, asJSON bool) error {
	if asJSON {
		return printJSON(r.env, out)
	}
	return printObject(r.env, out)
}

// showCmd builds 'show ID': GET pathPattern (the id escaped into its %s),
// printed as a table of fields, or as JSON with --json; --tenant chooses
// the tenant. what prefixes errors ("" is the command path).
func showCmd(r *remote, what, use, short, pathPattern string) *cobra.Command {
	return r.command(apiCmd{use: use, short: short, what: what, method: http.MethodGet, path: idPath(pathPattern),
		print: r.objectPrinter, tenant: true, json: true})
}
