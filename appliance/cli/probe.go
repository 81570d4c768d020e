package cli

import "github.com/spf13/cobra"

// newProbeCmd builds the 'probe' command group.
func newProbeCmd(env *Env) *cobra.Command {
	_ = env
	return newGroup("probe", "Run the probe engine against a signed scope")
}
