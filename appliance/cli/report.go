package cli

import "github.com/spf13/cobra"

// newReportCmd builds the 'report' command group.
func newReportCmd(env *Env) *cobra.Command {
	_ = env
	return newGroup("report", "Render and verify signed compliance reports")
}
