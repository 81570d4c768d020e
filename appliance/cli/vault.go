package cli

import "github.com/spf13/cobra"

// newVaultCmd builds the 'vault' command group.
func newVaultCmd(env *Env) *cobra.Command {
	_ = env
	return newGroup("vault", "Evidence vault status and export")
}
