package cli

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"firewalliq/appliance/cli/apiclient"
	"firewalliq/appliance/fault"
)

// Environment variables of the management commands (docs/cli.md).
const (
	EnvAddr       = "FIQ_ADDR"        // appliance URL, overrides the credentials file
	EnvToken      = "FIQ_TOKEN"       // bearer API token, used instead of the session
	EnvCACert     = "FIQ_CACERT"      // PEM CA file to trust for the console certificate
	EnvCertSHA256 = "FIQ_CERT_SHA256" // certificate pin when no credentials file holds one
)

// apiExitCode maps an API error code to the command's exit code through
// the appliance's one error table (appliance/fault): the CLI and the server
// classify a refusal the same way. A code the table does not know (a newer
// server) is a plain failure.
func apiExitCode(code string) int {
	if c, ok := fault.ByCode(code); ok {
		return c.Exit
	}
	return ExitFailure
}

// remoteError wraps an API failure with the command's context and carries
// the exit code of its error code.
type remoteError struct {
	what string
	err  error
}

// Error is made safe for a terminal: an appliance's message may quote
// stored data (a name) back.
func (e *remoteError) Error() string { return e.what + ": " + termSafe(e.err.Error()) }
func (e *remoteError) Unwrap() error { return e.err }

// ExitCode implements exitCoder: an answer of the appliance by its error
// code, an error made on this side (no credentials, a pin mismatch) by its
// sentinel, both through the one error table.
func (e *remoteError) ExitCode() int {
	var ae *apiclient.Error
	if errors.As(e.err, &ae) {
		return apiExitCode(ae.Code)
	}
	return fault.Classify(e.err).Exit
}

// remoteErr returns nil for nil, else a *remoteError. A console
// certificate the system does not know gets a hint: it is self-signed, and
// the way to trust it is its pin.
func remoteErr(what string, err error) error {
	if err == nil {
		return nil
	}
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	if errors.As(err, &unknown) || errors.As(err, &host) {
		err = fmt.Errorf("%w (the console certificate is self-signed: pass --cert-sha256 to login with the SHA-256 that init and serve print, or set %s)", err, EnvCACert)
	}
	return &remoteError{what: what, err: err}
}

// errNoInput means standard input ended before a line the command needed.
var errNoInput = errors.New("standard input ended")

// prompter reads answers from the terminal (secrets without echo) or, when
// standard input is not a terminal, one line each from it. One prompter
// serves a whole command, so lines are never lost to a second buffer.
type prompter struct {
	env *Env
	r   *bufio.Reader
	fd  int // terminal file descriptor, or -1
}

func newPrompter(env *Env) *prompter {
	p := &prompter{env: env, fd: -1}
	if f, ok := env.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.fd = int(f.Fd())
	}
	return p
}

// Terminal reports whether answers come from a terminal.
func (p *prompter) Terminal() bool { return p.fd >= 0 }

// Line asks for a visible answer (a name), without surrounding spaces.
func (p *prompter) Line(what string) (string, error) { return p.ask(what, false) }

// Secret asks for an answer without echo on a terminal. Only the line end
// is removed: spaces may be part of a password.
func (p *prompter) Secret(what string) (string, error) { return p.ask(what, true) }

// Code asks for a one-time code without echo. Authenticator apps show a
// TOTP code as "123 456", so spaces are dropped.
func (p *prompter) Code(what string) (string, error) {
	c, err := p.Secret(what)
	return strings.Join(strings.Fields(c), ""), err
}

func (p *prompter) ask(what string, secret bool) (string, error) {
	if p.Terminal() {
		fmt.Fprintf(p.env.Stderr, "%s: ", what)
		if secret {
			b, err := term.ReadPassword(p.fd)
			fmt.Fprintln(p.env.Stderr)
			if err != nil {
				return "", fmt.Errorf("%s: %w", what, err)
			}
			return string(b), nil
		}
	}
	if p.r == nil {
		// Answers are short: a bounded reader keeps a runaway pipe from
		// filling memory.
		p.r = bufio.NewReaderSize(io.LimitReader(p.env.Stdin, 1<<20), 4096)
	}
	line, err := p.r.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("%s: %w", what, errNoInput)
		}
		return "", fmt.Errorf("%s: %w", what, err)
	}
	if len(line) > 4096 {
		return "", fmt.Errorf("%s: line too long", what)
	}
	if secret {
		return strings.TrimRight(line, "\r\n"), nil
	}
	return strings.TrimSpace(line), nil
}

// remote is what management commands share: the environment and the
// prompter for step-up codes.
type remote struct {
	env *Env
	in  *prompter
}

// session is the client configuration from the credentials file and the
// environment: FIQ_ADDR, FIQ_TOKEN and FIQ_CACERT override the file, and a
// FIQ_TOKEN needs no file at all.
func (r *remote) session() (apiclient.Config, string, error) {
	getenv := r.env.Getenv
	var cfg apiclient.Config
	path, perr := apiclient.CredentialsPath(getenv)
	token := getenv(EnvToken)
	if perr == nil {
		c, err := apiclient.LoadCredentials(path)
		switch {
		case err == nil:
			cfg = apiclient.Config{Addr: c.Addr, CertSHA256: c.CertSHA256, CACertFile: c.CACertFile, Session: c.Token, CSRF: c.CSRF}
		case errors.Is(err, apiclient.ErrNoCredentials) && token != "":
		default:
			return cfg, path, err
		}
	} else if token == "" {
		return cfg, "", perr
	}
	if v := strings.TrimRight(getenv(EnvAddr), "/"); v != "" && v != cfg.Addr {
		if cfg.Session != "" && token == "" {
			// The session belongs to the appliance it was made on; sending
			// it to another address would hand it to whoever answers there.
			return cfg, path, fmt.Errorf("%s=%s is not the appliance of the saved session (%s): log in to it, or set %s", EnvAddr, v, cfg.Addr, EnvToken)
		}
		// Nor do the saved pin and CA belong to that appliance.
		cfg = apiclient.Config{Addr: v}
	}
	if v := getenv(EnvCACert); v != "" {
		cfg.CACertFile = v
	}
	if v := getenv(EnvCertSHA256); v != "" && cfg.CertSHA256 == "" {
		cfg.CertSHA256 = v
	}
	if token != "" {
		cfg.Token, cfg.Session, cfg.CSRF = token, "", ""
	}
	if cfg.Addr == "" {
		return cfg, path, fmt.Errorf("no appliance address: log in, or set %s", EnvAddr)
	}
	return cfg, path, nil
}

// client builds an API client for a management command, with step-up
// answered from the prompter.
func (r *remote) client() (*apiclient.Client, error) {
	cfg, _, err := r.session()
	if err != nil {
		return nil, err
	}
	cfg.StepUp = r.stepUp
	return apiclient.New(cfg)
}

// stepUp asks for a fresh TOTP code for a challenge.
func (r *remote) stepUp(_ context.Context, c apiclient.Challenge) (string, error) {
	if !r.in.Terminal() {
		fmt.Fprintf(r.env.Stderr, "step-up required for %s: reading a fresh TOTP code from standard input\n", termSafe(c.Operation))
	}
	code, err := r.in.Code(fmt.Sprintf("step-up for %s: fresh TOTP code", termSafe(c.Operation)))
	if err != nil {
		return "", err
	}
	if code == "" {
		return "", fmt.Errorf("step-up for %s: empty code", termSafe(c.Operation))
	}
	return code, nil
}

// call runs fn with a client and wraps its error with what.
func (r *remote) call(what string, fn func(c *apiclient.Client) error) error {
	c, err := r.client()
	if err != nil {
		return remoteErr(what, err)
	}
	err = fn(c)
	if session, _ := c.Session(); session != "" && errors.Is(err, &apiclient.Error{Code: apiclient.CodeUnauthenticated}) {
		err = fmt.Errorf("%w (the session has ended or expired: run 'firewalliq login')", err)
	}
	return remoteErr(what, err)
}

// tenantQuery is ?tenant=T when t is set.
func tenantQuery(t string) url.Values {
	if t == "" {
		return nil
	}
	return url.Values{"tenant": {t}}
}

// pathEscape escapes one path segment (an id or a name from the command line).
func pathEscape(s string) string { return url.PathEscape(s) }

// column is one column of a list: its heading and the JSON field it shows.
type column struct{ head, key string }

// printList prints items as JSON (an array, indented) or as a table of
// columns, every cell made safe.
func printList(env *Env, items []json.RawMessage, asJSON bool, cols []column) error {
	if asJSON {
		if items == nil {
			items = []json.RawMessage{}
		}
		return printJSON(env, items)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	heads := make([]string, len(cols))
	for i, c := range cols {
		heads[i] = c.head
	}
	fmt.Fprintln(tw, strings.Join(heads, "\t"))
	for _, raw := range items {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return fmt.Errorf("decode item: %w", err)
		}
		cells := make([]string, len(cols))
		for i, c := range cols {
			cells[i] = cell(m[c.key])
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// printObject prints one object's fields, sorted by name, one per line.
func printObject(env *Env, raw json.RawMessage) error {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\n", termSafe(k), cell(m[k]))
	}
	return tw.Flush()
}

// cell renders one JSON value for a table.
func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		if x == "" || x == "0001-01-01T00:00:00Z" {
			return "-"
		}
		return termSafe(x)
	case bool:
		if x {
			return "yes"
		}
		return "no"
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		b, _ := json.Marshal(x)
		return termSafe(string(b))
	}
}

// printJSON writes v as indented JSON.
func printJSON(env *Env, v any) error {
	enc := json.NewEncoder(env.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// jsonFlag adds --json to cmd.
func jsonFlag(cmd *cobra.Command, p *bool) {
	cmd.Flags().BoolVar(p, "json", false, "print JSON")
}
