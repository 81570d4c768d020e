package cli

import "github.com/spf13/cobra"

// newScopeCmd builds the 'scope' command group.
func newScopeCmd(env *Env) *cobra.Command {
	_ = env
	return newGroup("scope", "Create, sign, verify and check scope documents")
}
