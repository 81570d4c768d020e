package cli

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"firewalliq/appliance"
	"firewalliq/appliance/auth"
)

// newAuditAckCmd builds 'audit acknowledge': an appliance admin signs in
// (password, then TOTP) and acknowledges the tamper alarm with a second,
// fresh TOTP code (step-up). The three secrets are read from standard input,
// one per line, so they never appear in the process list or shell history.
func newAuditAckCmd(env *Env) *cobra.Command {
	var user, comment string
	cmd := &cobra.Command{
		Use:   "acknowledge --user NAME --comment TEXT",
		Short: "Acknowledge an audit tamper alarm (appliance admin, step-up MFA)",
		Long: `Acknowledge the raised audit tamper alarm so that scans and evidence
exports may run again. Nothing in the broken history is repaired: the
acknowledgement is a new audit entry, followed by a signed checkpoint, that
references the break.

Standard input gives three lines: the admin's password, a TOTP code to sign
in, and a second, later TOTP code for the step-up (a code is accepted once).`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if user == "" || strings.TrimSpace(comment) == "" {
				return usagef("audit acknowledge: --user and --comment are required")
			}
			cfg, err := loadConfig(cmd, env)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			app, err := appliance.Open(ctx, cfg, env.Now)
			if err != nil {
				return err
			}
			defer app.Close()
			in := bufio.NewScanner(env.Stdin)
			line := func(prompt string) (string, error) {
				fmt.Fprint(env.Stderr, prompt)
				if !in.Scan() {
					return "", usagef("audit acknowledge: standard input ended before the %s", strings.TrimSuffix(prompt, ": "))
				}
				return strings.TrimSpace(in.Text()), nil
			}
			c := auth.Client{IP: "local", UserAgent: "firewalliq-cli"}
			password, err := line("password: ")
			if err != nil {
				return err
			}
			l, err := app.Auth.Login(ctx, user, password, c, "")
			if err != nil {
				return fmt.Errorf("sign in: %w", err)
			}
			if l.Stage != "password" || l.MustChangePassword {
				return fmt.Errorf("sign in: %s has not finished the first login (TOTP enrolment and password change); do that in the console first", user)
			}
			code, err := line("TOTP code: ")
			if err != nil {
				return err
			}
			full, err := app.Auth.VerifyTOTP(ctx, l.Token, code, c)
			if err != nil {
				return fmt.Errorf("sign in: %w", err)
			}
			p, err := app.Auth.Authenticate(ctx, auth.Request{SessionToken: full.Token, Method: "GET", Client: c})
			if err != nil {
				return fmt.Errorf("sign in: %w", err)
			}
			defer app.Auth.Logout(ctx, p)
			stepUp, err := line("step-up TOTP code (the next one): ")
			if err != nil {
				return err
			}
			ack, cp, err := app.Audit.AcknowledgeAlarm(ctx, p, comment, stepUp)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "alarm acknowledged by %s: entry %d; new segment starts at signed checkpoint size %d\n", p.Name, ack.Seq, cp.Size)
			return nil
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "appliance admin's user name (required)")
	cmd.Flags().StringVar(&comment, "comment", "", "what was found and done (required; kept in the audit entry)")
	return cmd
}
