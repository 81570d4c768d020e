// Package cli builds the firewalliq command tree. Every command is made by a
// constructor that receives its dependencies (an *Env); there is no global
// root command and no init() registration.
//
// Exit codes: 0 success, 1 runtime failure, 2 bad flags or arguments,
// 3 (ExitProfile) the compiled-in safety profile failed verification,
// 4 (ExitProduction) production mode refuses this (development-signed or
// lab) build for serve and scans.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"firewalliq/appliance"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// Env is what commands may touch of the outside world. Tests build their own.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	Environ        func() []string
	Now            func() time.Time
	// Resolve resolves hostnames for 'scope check'; nil means the system
	// resolver. Tests inject a fake so no query leaves the machine.
	Resolve scope.Resolver
}

// OSEnv returns the process's real environment.
func OSEnv() *Env {
	return &Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Environ: os.Environ, Now: time.Now}
}

// UsageError marks bad flags or arguments (exit 2).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// usagef returns a UsageError with a formatted message.
func usagef(format string, a ...any) error {
	return &UsageError{Err: fmt.Errorf(format, a...)}
}

// Run builds the command tree, runs it with args and returns the exit code.
// Errors are printed as one line on Stderr.
func Run(ctx context.Context, env *Env, args []string) int {
	// The safety profile is verified before anything else runs (ExitProfile).
	if code := checkProfile(env.Stderr, safety.Load); code != ExitOK {
		return code
	}
	root := New(env)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(env.Stderr, "firewalliq: %s\n", oneLine(err.Error()))
	if isUsage(err) {
		return ExitUsage
	}
	var ec exitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return ExitFailure
}

// exitCoder lets a command choose a specific non-zero exit code.
type exitCoder interface{ ExitCode() int }

func isUsage(err error) bool {
	var ue *UsageError
	if errors.As(err, &ue) {
		return true
	}
	// Errors cobra makes itself without going through our hooks.
	msg := err.Error()
	for _, p := range []string{"required flag(s)", "unknown command", "unknown flag", "unknown shorthand flag", "invalid argument", "flag needs an argument", "accepts ", "requires at least", "if any flags in the group"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// oneLine folds an error message onto one line and escapes any control
// character left in it (termSafe): messages quote paths and names that
// users and remote systems chose.
func oneLine(s string) string {
	return termSafe(strings.Join(strings.Fields(s), " "))
}

// New builds the root command.
func New(env *Env) *cobra.Command {
	root := &cobra.Command{
		Use:           "firewalliq",
		Short:         "FirewallIQ Secure: prove that a perimeter works",
		Long:          "FirewallIQ Secure probes only what a signed scope allows, never faster than the compiled-in safety profile, and compares what it sees with the policy you intend.",
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          noArgs,
		RunE:          groupRun,
	}
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &UsageError{Err: err} })
	root.PersistentFlags().String("data", "", "data directory (env FIQ_DATA, default "+appliance.DefaultDataDir+")")
	root.PersistentFlags().String("config", "", "YAML config file (env FIQ_CONFIG)")
	// One prompter for the whole command: login and step-up read their
	// answers from it, line after line.
	r := &remote{env: env, in: newPrompter(env)}
	root.AddGroup(
		&cobra.Group{ID: groupLocal, Title: "On this machine (offline, or on a data directory):"},
		&cobra.Group{ID: groupAPI, Title: "Management, through the appliance's API (log in first):"},
	)
	root.SetHelpCommandGroupID(groupLocal)
	root.SetCompletionCommandGroupID(groupLocal)
	add := func(group string, cmds ...*cobra.Command) {
		for _, c := range cmds {
			c.GroupID = group
			root.AddCommand(c)
		}
	}
	add(groupLocal,
		newVersionCmd(env),
		newInitCmd(env),
		newServeCmd(env),
		newAuditCmd(env, r),
		newScopeCmd(env, r),
		newProfileCmd(env),
		newVaultCmd(env),
		newReportCmd(env, r),
		newDemoCmd(env),
		newSensorCmd(env, r),
	)
	add(groupLocal, labCommands(env)...)
	add(groupAPI,
		newLoginCmd(r),
		newLogoutCmd(r),
		newWhoamiCmd(r),
		newUserCmd(r),
		newTenantCmd(r),
		newTokenCmd(r),
		newSupportCmd(r),
		newApprovalCmd(r),
		newAlertCmd(r),
		newSiemCmd(r),
		newEvidenceCmd(r),
		newPolicyCmd(r),
		newReviewCmd(r),
		newKeyCmd(r),
		newScanCmd(r),
	)
	return root
}

// Help groups of the root command.
const (
	groupLocal = "local"
	groupAPI   = "api"
)

// newGroup returns a command that only holds subcommands.
func newGroup(use, short string, children ...*cobra.Command) *cobra.Command {
	g := &cobra.Command{Use: use, Short: short, Args: noArgs, RunE: groupRun}
	g.AddCommand(children...)
	return g
}

// groupRun prints help for a bare group and refuses unknown subcommands with
// exit 2 (cobra would otherwise print help and exit 0).
func groupRun(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return cmd.Help()
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 && !cmd.HasSubCommands() {
		return usagef("%s takes no arguments, got %q", cmd.CommandPath(), args[0])
	}
	return nil
}

// usageArgs wraps a cobra argument validator so its errors exit 2.
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return &UsageError{Err: fmt.Errorf("%s: %w", cmd.CommandPath(), err)}
		}
		return nil
	}
}

// loadConfig resolves the configuration: flags > env > file > defaults.
func loadConfig(cmd *cobra.Command, env *Env) (appliance.Config, error) {
	cfg := appliance.DefaultConfig()
	path, _ := cmd.Flags().GetString("config")
	if path == "" {
		path = env.Getenv("FIQ_CONFIG")
	}
	if path != "" {
		if err := cfg.LoadFile(path); err != nil {
			return cfg, &UsageError{Err: err}
		}
	}
	var environ []string
	if env.Environ != nil {
		environ = env.Environ()
	}
	if err := cfg.LoadEnv(env.Getenv, environ); err != nil {
		return cfg, &UsageError{Err: err}
	}
	if f := cmd.Flags().Lookup("data"); f != nil && f.Changed {
		cfg.DataDir = f.Value.String()
	}
	if f := cmd.Flags().Lookup("listen"); f != nil && f.Changed {
		cfg.Listen = f.Value.String()
	}
	if err := cfg.Validate(); err != nil {
		return cfg, &UsageError{Err: err}
	}
	return cfg, nil
}
