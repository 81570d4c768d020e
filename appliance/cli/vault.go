package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"firewalliq/appliance"
	"firewalliq/appliance/evidence"
	"firewalliq/vault"
)

// newVaultCmd builds the 'vault' command group.
func newVaultCmd(env *Env) *cobra.Command {
	return newGroup("vault", "Evidence vault status", newVaultStatusCmd(env))
}

// vaultConfig is the vault section of the resolved configuration (file,
// FIQ_VAULT_* environment, defaults).
func vaultConfig(cfg appliance.Config, _ *Env) (evidence.Config, error) {
	return cfg.Vault, nil
}

// vaultReport is what `vault status` prints.
type vaultReport struct {
	Backend  string            `json:"backend"`
	WORM     bool              `json:"worm"`
	Checked  bool              `json:"checked"`
	CheckErr string            `json:"check_error,omitempty"`
	Spool    vault.SpoolStatus `json:"spool"`
}

func newVaultStatusCmd(env *Env) *cobra.Command {
	var asJSON, noCheck bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the evidence spool (pending, oldest, size vs bound) and the backend's WORM state",
		Long: `Show the evidence spool and the evidence backend.

The spool is read from <data>/spool without disturbing a running server.
Unless --no-check is given, the backend is contacted and its WORM
configuration verified (bucket exists, object lock in COMPLIANCE mode,
default retention at least vault.retention_days). Exit status 1 when that
check fails or the spool is full, so monitoring can use it.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd, env)
			if err != nil {
				return err
			}
			vc, err := vaultConfig(cfg, env)
			if err != nil {
				return err
			}
			// A mistyped --data must not look like a healthy, empty spool.
			if _, err := os.Stat(cfg.DataDir); err != nil {
				return fmt.Errorf("vault status: data directory %s: %w", cfg.DataDir, err)
			}
			now := env.Now()
			var rep vaultReport
			rep.Spool, err = vault.ReadSpoolStatus(filepath.Join(cfg.DataDir, evidence.SpoolDirName), vc.SpoolMaxBytes, vc.SpoolAlertAt, now)
			if err != nil {
				return err
			}
			var checkErr error
			if vc.Backend == "" {
				rep.Backend = "not configured (set vault.backend)"
			} else {
				store, err := vc.NewStore(cfg.DataDir, env.Now)
				if err != nil {
					return err
				}
				rep.Backend = store.Backend()
				if !noCheck {
					ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
					checkErr = store.Check(ctx)
					cancel()
					rep.Checked = true
					if checkErr != nil {
						rep.CheckErr = checkErr.Error()
					}
					rep.WORM = store.WORM() && checkErr == nil
				}
			}
			if asJSON {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				printVaultReport(env.Stdout, rep)
			}
			switch {
			case checkErr != nil:
				return fmt.Errorf("vault check failed: %w", checkErr)
			case rep.Spool.Full:
				return fmt.Errorf("evidence spool is full: new evidence is refused until uploads drain it")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&noCheck, "no-check", false, "do not contact the backend")
	return cmd
}

func printVaultReport(w io.Writer, r vaultReport) {
	worm := "NO"
	switch {
	case r.WORM:
		worm = "yes (object lock COMPLIANCE, default retention verified)"
	case r.CheckErr != "":
		worm = "NO: " + r.CheckErr
	case !r.Checked:
		worm = "not checked"
	default:
		worm = "NO: this backend is not WORM (demo only; production refuses it)"
	}
	fmt.Fprintf(w, "backend   %s\n", r.Backend)
	fmt.Fprintf(w, "worm      %s\n", termSafe(worm))
	s := r.Spool
	oldest := "-"
	if s.Pending > 0 {
		oldest = s.Age.Round(time.Second).String() + " (since " + s.Oldest.UTC().Format(time.RFC3339) + ")"
	}
	fmt.Fprintf(w, "pending   %d\n", s.Pending)
	fmt.Fprintf(w, "oldest    %s\n", oldest)
	fmt.Fprintf(w, "spool     %s of %s (%.1f%%) in %s\n", vaultBytes(s.Bytes), vaultBytes(s.MaxBytes), 100*float64(s.Bytes)/float64(max(s.MaxBytes, 1)), s.Dir)
	alert := "none"
	switch {
	case s.Full:
		alert = "FULL: new evidence is refused"
	case s.Alert:
		alert = "near the size bound"
	}
	fmt.Fprintf(w, "alert     %s\n", alert)
	if s.Corrupt > 0 {
		fmt.Fprintf(w, "corrupt   %d record(s) quarantined in %s\n", s.Corrupt, filepath.Join(s.Dir, "corrupt"))
	}
}

func vaultBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
