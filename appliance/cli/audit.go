package cli

import "github.com/spf13/cobra"

// newAuditCmd builds the 'audit' command group.
func newAuditCmd(env *Env) *cobra.Command {
	_ = env
	return newGroup("audit", "Verify and prove the tamper-evident audit log")
}
