package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"firewalliq/probe/bounded"
	"firewalliq/probe/keys"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// newScopeCmd builds the 'scope' command group.
func newScopeCmd(env *Env, r *remote) *cobra.Command {
	return newGroup("scope", "Create, sign, verify and check scope documents; register them with the appliance",
		newScopeKeygenCmd(env),
		newScopeSignCmd(env),
		newScopeVerifyCmd(env),
		newScopeCheckCmd(env),
		newScopeExpandCmd(env),
		newScopeRegisterCmd(r),
		listCmd(r, "list", "List the scopes registered with the appliance (through the API)", "/scopes", true,
			[]column{{"ID", "id"}, {"NAME", "name"}, {"ENVIRONMENT", "environment"}, {"TENANT", "tenant"}, {"SIGNER", "signer_key_id"}, {"SHA-256", "sha256"}, {"CREATED", "created_at"}, {"REVOKED", "revoked_at"}}, nil),
		newScopeShowCmd(r),
		newScopeRevokeCmd(r),
	)
}

func newScopeKeygenCmd(env *Env) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out NAME",
		Short: "Create a scope signing key pair: NAME.key (mode 0600) and NAME.pub",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("scope keygen: --out NAME is required")
			}
			pub, priv, err := keys.Generate(nil)
			if err != nil {
				return err
			}
			if err := keys.WritePair(out, pub, priv); err != nil {
				return fmt.Errorf("scope keygen: %w", err)
			}
			fmt.Fprintf(env.Stdout, "wrote %s.key (mode 0600) and %s.pub\nkey id: %s\n", out, out, keys.ID(pub))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "base name of the key files (required)")
	return cmd
}

func newScopeSignCmd(env *Env) *cobra.Command {
	var keyPath string
	cmd := &cobra.Command{
		Use:   "sign --key K.key SCOPE.json|-",
		Short: "Sign a scope document; the signed envelope goes to standard output",
		Long: "Sign checks the document strictly and against the compiled-in safety profile, fills in\n" +
			"signer_key_id from the key, and prints the signed envelope (docs/scope.md).",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyPath == "" {
				return usagef("scope sign: --key K.key is required")
			}
			priv, err := keys.ReadPrivate(keyPath)
			if err != nil {
				return fmt.Errorf("scope sign: %w", err)
			}
			var data []byte
			if args[0] == "-" {
				data, err = bounded.ReadAll(env.Stdin, bounded.MaxScopeFile, "standard input")
			} else {
				data, err = bounded.ReadFile(args[0], bounded.MaxScopeFile)
			}
			if err != nil {
				return fmt.Errorf("scope sign: %w", err)
			}
			doc, err := scope.DecodeDocument(data)
			if err != nil {
				return fmt.Errorf("scope sign %s: %w", args[0], err)
			}
			p, err := safety.Load()
			if err != nil {
				return err
			}
			if err := doc.CheckProfile(p); err != nil {
				return fmt.Errorf("scope sign %s: %w", args[0], err)
			}
			signed, err := scope.Sign(doc, priv)
			if err != nil {
				return fmt.Errorf("scope sign %s: %w", args[0], err)
			}
			_, err = env.Stdout.Write(signed)
			return err
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "private key file (from 'scope keygen')")
	return cmd
}

// loadScope reads and verifies a signed scope with the public key file, the
// environment's clock and the compiled-in profile.
func loadScope(env *Env, scopePath, pubPath string) (*scope.Scope, error) {
	pub, err := keys.ReadPublic(pubPath)
	if err != nil {
		return nil, err
	}
	data, err := bounded.ReadFile(scopePath, bounded.MaxScopeFile)
	if err != nil {
		return nil, fmt.Errorf("scope: %w", err)
	}
	p, err := safety.Load()
	if err != nil {
		return nil, err
	}
	s, err := scope.Verify(data, pub, env.Now(), p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", scopePath, err)
	}
	return s, nil
}

// scopeSummary is what 'scope verify --json' prints.
type scopeSummary struct {
	Valid       bool          `json:"valid"`
	ID          string        `json:"id"`
	Tenant      string        `json:"tenant"`
	Name        string        `json:"name"`
	Environment string        `json:"environment"`
	SignerKeyID string        `json:"signer_key_id"`
	NotBefore   string        `json:"not_before"`
	NotAfter    string        `json:"not_after"`
	Addresses   uint64        `json:"addresses"`
	Ports       string        `json:"ports"`
	Probes      []safety.Kind `json:"probes"`
	MaxPPS      int           `json:"max_pps"`
	SHA256      string        `json:"sha256"`
}

func newScopeVerifyCmd(env *Env) *cobra.Command {
	var pubPath string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify --pub K.pub SIGNED.json",
		Short: "Verify a signed scope: signature, key, validity window and safety profile",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if pubPath == "" {
				return usagef("scope verify: --pub K.pub is required")
			}
			s, err := loadScope(env, args[0], pubPath)
			if err != nil {
				return err
			}
			d := s.Doc
			sum := scopeSummary{
				Valid: true, ID: d.ID, Tenant: d.Tenant, Name: d.Name, Environment: d.Environment,
				SignerKeyID: d.SignerKeyID, NotBefore: d.NotBefore.UTC().Format(scopeTimeLayout), NotAfter: d.NotAfter.UTC().Format(scopeTimeLayout),
				Addresses: s.Size(), Ports: scope.FormatPorts(s.Ports()), Probes: d.Probes, MaxPPS: d.MaxPPS, SHA256: s.SHA256(),
			}
			if asJSON {
				return scopeJSON(env, sum)
			}
			kinds := make([]string, len(d.Probes))
			for i, k := range d.Probes {
				kinds[i] = string(k)
			}
			fmt.Fprintf(env.Stdout, "valid: scope %s %q (tenant %s, %s)\nsigned by:  %s\nvalid from: %s until %s\naddresses:  %d\nports:      %s\nprobes:     %s\nmax pps:    %d\nsha256:     %s\n",
				termSafe(d.ID), d.Name, termSafe(d.Tenant), termSafe(d.Environment), termSafe(d.SignerKeyID), sum.NotBefore, sum.NotAfter, s.Size(), scopeOrNone(sum.Ports), strings.Join(kinds, ", "), d.MaxPPS, sum.SHA256)
			return nil
		},
	}
	cmd.Flags().StringVar(&pubPath, "pub", "", "public key file of the trusted signer")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

const scopeTimeLayout = "2006-01-02T15:04:05Z"

func scopeOrNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// resolveTimeout bounds the one resolution of each hostname target.
const resolveTimeout = 10 * time.Second

// checkResult is one line of 'scope check'.
type checkResult struct {
	Target    string       `json:"target"`
	InScope   bool         `json:"in_scope"`
	Host      string       `json:"host,omitempty"`
	Addresses []netip.Addr `json:"addresses,omitempty"`
	Reason    string       `json:"reason,omitempty"`
}

// outOfScopeError makes 'scope check' exit 1 after printing every line.
type outOfScopeError struct{ n, total int }

func (e *outOfScopeError) Error() string {
	return fmt.Sprintf("scope check: %d of %d targets out of scope or unparsable", e.n, e.total)
}
func (e *outOfScopeError) ExitCode() int { return ExitFailure }

func newScopeCheckCmd(env *Env) *cobra.Command {
	var scopePath, pubPath string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check --scope SIGNED.json --pub K.pub TARGET...",
		Short: "Say for each target (address or hostname) whether it is in scope",
		Long: "Each TARGET is an IPv4 or IPv6 address or a hostname. A hostname is resolved once and\n" +
			"every address it resolves to must be in scope. Prints 'TARGET in-scope' or\n" +
			"'TARGET out-of-scope: REASON' per target and exits 1 if any target is out of scope\n" +
			"or unparsable.",
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if scopePath == "" || pubPath == "" {
				return usagef("scope check: --scope and --pub are required")
			}
			s, err := loadScope(env, scopePath, pubPath)
			if err != nil {
				return err
			}
			results := make([]checkResult, 0, len(args))
			bad := 0
			for _, target := range args {
				ctx, cancel := context.WithTimeout(cmd.Context(), resolveTimeout)
				t, err := s.Resolve(ctx, target, env.Resolve)
				cancel()
				r := checkResult{Target: target, InScope: err == nil, Host: t.Host, Addresses: t.Addrs}
				if err != nil {
					bad++
					r.Addresses = nil
					r.Reason = scopeReason(err)
				}
				results = append(results, r)
			}
			if asJSON {
				if err := scopeJSON(env, results); err != nil {
					return err
				}
			} else {
				for _, r := range results {
					switch {
					case !r.InScope:
						fmt.Fprintf(env.Stdout, "%s out-of-scope: %s\n", scopePrintable(r.Target), r.Reason)
					case r.Host != "":
						fmt.Fprintf(env.Stdout, "%s in-scope (pinned: %s)\n", r.Target, scopeJoinAddrs(r.Addresses))
					default:
						fmt.Fprintf(env.Stdout, "%s in-scope\n", r.Target)
					}
				}
			}
			if bad > 0 {
				return &outOfScopeError{n: bad, total: len(args)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&scopePath, "scope", "", "signed scope file")
	cmd.Flags().StringVar(&pubPath, "pub", "", "public key file of the trusted signer")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

// scopeReason turns a scope error into the REASON of an out-of-scope line,
// dropping the sentinel prefix the line already says.
func scopeReason(err error) string {
	msg := err.Error()
	if errors.Is(err, scope.ErrOutOfScope) {
		msg = strings.Replace(msg, scope.ErrOutOfScope.Error()+": ", "", 1)
	}
	return oneLine(msg)
}

// scopePrintable quotes a target that holds spaces or control characters, so
// one target stays one line.
func scopePrintable(s string) string {
	if s == "" || strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return fmt.Sprintf("%q", s)
	}
	return s
}

func scopeJoinAddrs(as []netip.Addr) string {
	ss := make([]string, len(as))
	for i, a := range as {
		ss[i] = a.String()
	}
	return strings.Join(ss, ", ")
}

func newScopeExpandCmd(env *Env) *cobra.Command {
	var scopePath, pubPath string
	var limit, seed uint64
	cmd := &cobra.Command{
		Use:   "expand --scope SIGNED.json --pub K.pub [--limit N] [--seed N]",
		Short: "Print every in-scope address once, in a randomised order",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if scopePath == "" || pubPath == "" {
				return usagef("scope expand: --scope and --pub are required")
			}
			s, err := loadScope(env, scopePath, pubPath)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("seed") {
				var b [8]byte
				if _, err := rand.Read(b[:]); err != nil {
					return err
				}
				seed = binary.LittleEndian.Uint64(b[:])
			}
			w := bufio.NewWriter(env.Stdout)
			var n uint64
			for a := range s.Targets(seed) {
				if limit > 0 && n == limit {
					break
				}
				n++
				w.WriteString(a.String())
				w.WriteByte('\n')
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&scopePath, "scope", "", "signed scope file")
	cmd.Flags().StringVar(&pubPath, "pub", "", "public key file of the trusted signer")
	cmd.Flags().Uint64Var(&limit, "limit", 0, "print at most N addresses (0: all)")
	cmd.Flags().Uint64Var(&seed, "seed", 0, "order seed, for a reproducible order (default: random)")
	return cmd
}

// scopeJSON prints v as indented JSON.
func scopeJSON(env *Env, v any) error {
	enc := json.NewEncoder(env.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
