package cli

import "github.com/spf13/cobra"

// newSiemCmd builds the 'siem' command group.
func newSiemCmd(env *Env) *cobra.Command {
	_ = env
	return newGroup("siem", "SIEM destinations and delivery status")
}
