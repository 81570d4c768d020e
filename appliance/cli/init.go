package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"firewalliq/appliance"
)

func newInitCmd(env *Env) *cobra.Command {
	var (
		admin, tenant string
		hosts         []string
		asJSON        bool
	)
	cmd := &cobra.Command{
		Use:   "init --data DIR --admin NAME",
		Short: "Create a new data directory, keys, console certificate and the first admin",
		Long: `init creates the data directory (mode 0700), the SQLite database, the
appliance's key material and a self-signed console certificate, and the first
admin with a one-time password and a TOTP secret. Both are printed once and
never stored in clear. init refuses a directory that already holds anything.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if admin == "" {
				return usagef("init: --admin NAME is required")
			}
			cfg, err := loadConfig(cmd, env)
			if err != nil {
				return err
			}
			res, err := appliance.Init(cmd.Context(), cfg, appliance.InitOptions{Admin: admin, Tenant: tenant, Hosts: hosts, Now: env.Now})
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			fmt.Fprintf(env.Stdout, `Initialised %s
  tenant:               %s (%s)
  admin:                %s
  one-time password:    %s   (change it at first login)
  TOTP secret:          %s
  TOTP URL:             %s
  console certificate:  SHA-256 %s

The password and TOTP secret are shown only now. Store them safely.
`, res.DataDir, res.Tenant, res.TenantID, res.Admin, res.OneTimePassword, res.TOTPSecret, res.TOTPURL, res.CertFingerprint)
			return nil
		},
	}
	cmd.Flags().StringVar(&admin, "admin", "", "first admin's user name (required)")
	cmd.Flags().StringVar(&tenant, "tenant", "default", "first tenant's name")
	cmd.Flags().StringSliceVar(&hosts, "host", nil, "extra DNS names for the console certificate")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as one JSON object")
	return cmd
}
