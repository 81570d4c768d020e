package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"firewalliq/probe/safety"
)

// ExitProfile is the exit code when the compiled-in safety profile fails
// verification: the binary refuses to run anything (docs/cli.md).
const ExitProfile = 3

// checkProfile verifies the compiled-in safety profile before any command
// runs. It returns ExitOK, or prints one line and returns ExitProfile. The
// loader is a parameter only so tests can prove the failure path; Run always
// passes safety.Load, which has no inputs.
func checkProfile(stderr io.Writer, load func() (safety.Profile, error)) int {
	if _, err := load(); err != nil {
		fmt.Fprintf(stderr, "firewalliq: refusing to run: the compiled-in safety profile failed verification (%s); this binary may have been tampered with, reinstall it from a signed release\n", oneLine(err.Error()))
		return ExitProfile
	}
	return ExitOK
}

// ExitProduction is the exit code when production mode is on and this build
// may not run in it: its safety profile is signed by the development key
// rather than a release key, or it is a lab build (docs/cli.md). Offline
// commands (scope, audit verify, profile show, version, init) still run.
const ExitProduction = 4

// productionRefusal carries ExitProduction through cobra to Run.
type productionRefusal struct{ err error }

func (e *productionRefusal) Error() string { return e.err.Error() }
func (e *productionRefusal) Unwrap() error { return e.err }
func (e *productionRefusal) ExitCode() int { return ExitProduction }

// refuseUnfitBuild refuses, in production mode, a build whose safety
// profile is not signed by a release key or that carries the lab profile.
// serve and every scan call it before they touch anything; load is
// safety.Load except in tests.
func refuseUnfitBuild(what string, production bool, load func() (safety.Profile, error)) error {
	if !production {
		return nil
	}
	p, err := load()
	if err == nil {
		err = safety.CheckProduction(p)
	}
	if err != nil {
		return &productionRefusal{fmt.Errorf("%s: %w; install a vendor release build, or set production: false (FIQ_PRODUCTION=false) on a lab or demo appliance", what, err)}
	}
	return nil
}

// profileReport is what 'profile show --json' prints and what 'version
// --json' embeds.
type profileReport struct {
	ID             string `json:"id"`
	Version        int    `json:"version"`
	SHA256         string `json:"sha256"`
	Verified       bool   `json:"verified"`
	Error          string `json:"error,omitempty"`
	ReleaseKeyID   string `json:"release_key_id,omitempty"`
	DevelopmentKey bool   `json:"development_key"`
	// Signer is "development" or "release" (safety.SignerDevelopment,
	// safety.SignerRelease): which kind of key ReleaseKeyID is.
	Signer   string `json:"signer,omitempty"`
	Embedded string `json:"embedded"`
	// LabBuild is true for a binary built with the lab tag.
	LabBuild bool `json:"lab_build"`
	// Production says whether production mode accepts this build
	// (a release-signed profile, not a lab build).
	Production         bool          `json:"production_ready"`
	ProductionError    string        `json:"production_error,omitempty"`
	GlobalPPS          int           `json:"global_pps"`
	PerHostPPS         int           `json:"per_host_pps"`
	MaxConcurrentScans int           `json:"max_concurrent_scans"`
	MaxTargets         int           `json:"max_targets"`
	ProbeKinds         []safety.Kind `json:"probe_kinds"`
	UDPPayloads        []string      `json:"udp_payloads"`
}

func loadProfileReport() profileReport {
	p, err := safety.Load()
	r := profileReport{Embedded: safety.EmbeddedName(), LabBuild: safety.LabBuild()}
	if err != nil {
		r.Error = oneLine(err.Error())
		return r
	}
	r = profileReport{
		ID: p.ID, Version: p.Version, SHA256: p.SHA256(), Verified: true, ReleaseKeyID: p.KeyID(),
		DevelopmentKey: p.IsDevelopmentKey(), Signer: p.Signer(), Embedded: safety.EmbeddedName(), LabBuild: safety.LabBuild(),
		GlobalPPS: p.GlobalPPS, PerHostPPS: p.PerHostPPS, MaxConcurrentScans: p.MaxConcurrentScans,
		MaxTargets: p.MaxTargets, ProbeKinds: p.ProbeKinds, UDPPayloads: p.UDPPayloads,
	}
	if err := safety.CheckProduction(p); err != nil {
		r.ProductionError = oneLine(err.Error())
	} else {
		r.Production = true
	}
	return r
}

// signerLine says which key signed the profile and whether production mode
// accepts the build, for 'profile show' and 'version'.
func signerLine(r profileReport) string {
	if !r.Verified {
		return "NOT VERIFIED"
	}
	s := r.Signer + " key " + r.ReleaseKeyID
	if r.DevelopmentKey {
		s += " (not a vendor release)"
	}
	if r.LabBuild {
		s += ", lab build"
	}
	if r.Production {
		return s + "; production mode: allowed"
	}
	return s + "; production mode: refused (serve and scans exit 4)"
}

// newProfileCmd builds the 'profile' command group.
func newProfileCmd(env *Env) *cobra.Command {
	return newGroup("profile", "Show the compiled-in safety profile", newProfileShowCmd(env))
}

func newProfileShowCmd(env *Env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show [--json]",
		Short: "Print the compiled-in safety profile, its SHA-256 and verification status",
		Long: "The safety profile is compiled into the binary and signed by the release key; nothing\n" +
			"at run time (flag, environment, configuration, API) can change it. See docs/safety-profile.md.",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := loadProfileReport()
			if asJSON {
				if err := scopeJSON(env, r); err != nil {
					return err
				}
			} else {
				writeProfileText(env.Stdout, r)
			}
			if !r.Verified {
				return fmt.Errorf("safety profile: %s", r.Error)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func writeProfileText(w io.Writer, r profileReport) {
	if !r.Verified {
		fmt.Fprintf(w, "profile:  %s (embedded)\nverified: NO: %s\n", r.Embedded, r.Error)
		return
	}
	key := r.ReleaseKeyID
	if r.DevelopmentKey {
		key += " (DEVELOPMENT key: not a vendor release)"
	}
	kinds := make([]string, len(r.ProbeKinds))
	for i, k := range r.ProbeKinds {
		kinds[i] = string(k)
	}
	fmt.Fprintf(w, "profile:              %s version %d\nsha256:               %s\nverified:             yes, Ed25519 signature by release key %s\nsigned by:            %s\nglobal pps:           %d\nper-host pps:         %d\nmax concurrent scans: %d\nmax targets per scan: %d\nprobe kinds:          %s\nudp payloads:         %s\n",
		r.ID, r.Version, r.SHA256, key, signerLine(r), r.GlobalPPS, r.PerHostPPS, r.MaxConcurrentScans, r.MaxTargets, strings.Join(kinds, ", "), strings.Join(r.UDPPayloads, ", "))
}
