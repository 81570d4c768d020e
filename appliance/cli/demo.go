package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"firewalliq/appliance"
)

func newDemoCmd(env *Env) *cobra.Command {
	var keep string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the product's story end to end on embedded defaults, in a throw-away data directory",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir := keep
			if dir == "" {
				tmp, err := os.MkdirTemp("", "firewalliq-demo-")
				if err != nil {
					return fmt.Errorf("demo: %w", err)
				}
				defer os.RemoveAll(tmp)
				dir = filepath.Join(tmp, "data")
			}
			out := env.Stdout
			fmt.Fprintf(out, "== 1. initialise an appliance in %s\n", dir)
			cfg := appliance.DefaultConfig()
			cfg.DataDir = dir
			res, err := appliance.Init(cmd.Context(), cfg, appliance.InitOptions{Admin: "demo-admin", Tenant: "demo", Now: env.Now})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "   tenant %s, admin %s, console certificate SHA-256 %s\n", res.Tenant, res.Admin, res.CertFingerprint)
			fmt.Fprintln(out, "== done")
			return nil
		},
	}
	cmd.Flags().StringVar(&keep, "keep", "", "use and keep this (new) data directory instead of a temporary one")
	return cmd
}
