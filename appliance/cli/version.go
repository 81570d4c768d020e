package cli

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// BuildInfo describes this binary.
type BuildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Modified  bool   `json:"modified"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// ReadBuildInfo reads the version stamped by the Go toolchain: the module
// version ("(devel)" for a plain build) and the VCS revision.
func ReadBuildInfo() BuildInfo {
	bi := BuildInfo{Version: "(devel)", Commit: "unknown", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return bi
	}
	if info.Main.Version != "" {
		bi.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			bi.Commit = s.Value
		case "vcs.modified":
			bi.Modified = s.Value == "true"
		}
	}
	return bi
}

func newVersionCmd(env *Env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print version, commit, Go version and safety profile",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := versionReport{BuildInfo: ReadBuildInfo(), Profile: loadProfileReport()}
			if asJSON {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			fmt.Fprintf(env.Stdout, "firewalliq %s\ncommit:     %s%s\ngo:         %s (%s)\n", v.Version, v.Commit, dirty(v.Modified), v.GoVersion, v.Platform)
			fmt.Fprintf(env.Stdout, "profile:    %s version %d sha256:%s\n", v.Profile.ID, v.Profile.Version, v.Profile.SHA256)
			fmt.Fprintf(env.Stdout, "signed by:  %s\n", signerLine(v.Profile))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

// versionReport is what 'version' prints.
type versionReport struct {
	BuildInfo
	Profile profileReport `json:"profile"` // the compiled-in safety profile
}

func dirty(m bool) string {
	if m {
		return " (modified)"
	}
	return ""
}
