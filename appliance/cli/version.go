package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"firewalliq/appliance/buildinfo"
)

func newVersionCmd(env *Env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print version, commit, Go version and safety profile",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := versionReport{Info: buildinfo.Get(), Profile: loadProfileReport()}
			if asJSON {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			fmt.Fprintf(env.Stdout, "firewalliq %s\ncommit:     %s%s\n", v.Version, v.Commit, dirty(v.Modified))
			if v.BuildTime != "" {
				fmt.Fprintf(env.Stdout, "built:      %s\n", v.BuildTime)
			}
			fmt.Fprintf(env.Stdout, "go:         %s (%s)\n", v.GoVersion, v.Platform)
			fmt.Fprintf(env.Stdout, "profile:    %s version %d sha256:%s\n", v.Profile.ID, v.Profile.Version, v.Profile.SHA256)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

// versionReport is what 'version' prints.
type versionReport struct {
	buildinfo.Info
	Profile profileReport `json:"profile"` // the compiled-in safety profile
}

func dirty(m bool) string {
	if m {
		return " (modified)"
	}
	return ""
}
