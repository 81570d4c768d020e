package cli

import "github.com/spf13/cobra"

// newProfileCmd builds the 'profile' command group.
func newProfileCmd(env *Env) *cobra.Command {
	_ = env
	return newGroup("profile", "Show the compiled-in safety profile")
}
