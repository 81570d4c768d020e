package cli

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"firewalliq/appliance/report/verify"
	"firewalliq/probe/keys"
)

// newReportCmd builds 'report': offline work on signed compliance reports.
// Creating, listing and downloading reports go through the appliance's
// API; verifying needs only the report, public keys and the evidence.
func newReportCmd(env *Env, r *remote) *cobra.Command {
	return newGroup("report", "Compliance reports: create, list, show, download (through the API); verify (offline)",
		append([]*cobra.Command{newReportVerifyCmd(env)}, reportRemoteCmds(r)...)...)
}

// newReportVerifyCmd builds 'report verify'.
func newReportVerifyCmd(env *Env) *cobra.Command {
	var pub, auditPub, evidence string
	cmd := &cobra.Command{
		Use:   "verify REPORT.json --pub report.pub [--audit-pub audit.pub] [--evidence DIR]",
		Short: "Verify a signed compliance report or access review offline, with public keys only",
		Long: `Verify checks, without contacting the appliance: that the report file is in
canonical form and signed by the report key; that the audit checkpoint in it is
signed by the audit key; that each evidence object's inclusion proof leads to
that checkpoint and proves an audit entry recording the object's SHA-256; that
the daily anchor, when present, is consistent with the checkpoint; and, with
--evidence, that every evidence file has the SHA-256 and size the report names.
Any changed byte fails it, with the reason. Exit 0 when it verifies, 1 when not.

A signed access review (review.json, format firewalliq.access-review/v1) is
verified the same way with --pub alone: canonical form, the report key's
signature, and that every line carries a keep or revoke decision and the
summary counts what the review lists.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if pub == "" {
				return usagef("report verify: --pub and --audit-pub are required (an access review needs only --pub)")
			}
			rk, err := keys.ReadPublic(pub)
			if err != nil {
				return fmt.Errorf("report key: %w", err)
			}
			fi, err := os.Stat(args[0])
			if err != nil {
				return err
			}
			if fi.Size() > verify.MaxReport {
				return fmt.Errorf("%s: %w: %d bytes, at most %d", args[0], verify.ErrFormat, fi.Size(), verify.MaxReport)
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var ak ed25519.PublicKey
			if auditPub != "" {
				if ak, err = keys.ReadPublic(auditPub); err != nil {
					return fmt.Errorf("audit key: %w", err)
				}
			} else if verify.KindOf(data) != verify.KindAccessReview {
				return usagef("report verify: --pub and --audit-pub are required for a compliance report")
			}
			res, err := verify.Verify(data, verify.Options{ReportKey: rk, AuditKey: ak, EvidenceDir: evidence})
			if err != nil {
				return fmt.Errorf("%s does not verify: %w", args[0], err)
			}
			w := env.Stdout
			if rv := res.Review; rv != nil {
				who := "tenant " + rv.TenantName + " (" + rv.Tenant + ")"
				if rv.Tenant == "" {
					who = "the appliance admins"
				}
				fmt.Fprintf(w, "access review %s verified: signed by report key %s\n", rv.ID, res.KeyID)
				fmt.Fprintf(w, "%s; signed %s by %s (%s)\n", who, rv.SignedAt, rv.Reviewer.Name, rv.Reviewer.Role)
				s := rv.Summary
				fmt.Fprintf(w, "users %d, tokens %d, open support tickets %d, review flags %d; lines %d: keep %d, revoke %d\n",
					s.Users, s.Tokens, s.OpenTickets, s.Flags, s.Lines, s.Keep, s.Revoke)
				fmt.Fprintf(w, "changes: new users %d, role changes %d, new tokens %d, unused accounts %d\n", s.NewUsers, s.RoleChanges, s.NewTokens, s.Unused)
				return nil
			}
			if c := res.Combined; c != nil {
				fmt.Fprintf(w, "combined report %s verified: signed by report key %s; %d scans\n", c.ID, res.KeyID, len(c.Parts))
				fmt.Fprintf(w, "audit checkpoints: signed by audit key %s; evidence: %d inclusion proofs verified", keys.ID(ak), res.Proofs)
				if evidence != "" {
					fmt.Fprintf(w, ", %d files hashed and matched", res.EvidenceFiles)
				} else {
					fmt.Fprint(w, " (files not checked: give --evidence DIR)")
				}
				fmt.Fprintln(w)
				for i, r := range c.Parts {
					imported := ""
					if r.Imported {
						imported = " (IMPORTED results: unsigned evidence)"
					}
					fmt.Fprintf(w, "part %d: scan %s from %s; policy %s v%d, vantage point %s, window %s to %s%s\n", i+1, r.Scan.ID, scanFrom(r.Scan),
						r.Policy.Name, r.Policy.Version, r.VantagePoint, r.Window.Start, r.Window.End, imported)
					fmt.Fprintf(w, "  rules: %s; findings: %s\n", counts(r.Summary.Rules), counts(r.Summary.Findings))
				}
				fmt.Fprintf(w, "tenant %s; all scans: rules %s; findings %s\n", c.Tenant, counts(c.Summary.Rules), counts(c.Summary.Findings))
				return nil
			}
			r := res.Report
			fmt.Fprintf(w, "report %s verified: signed by report key %s\n", r.ID, res.KeyID)
			fmt.Fprintf(w, "audit checkpoint: %s, tree size %d, signed by audit key %s\n", res.Checkpoint.Origin, res.Checkpoint.Size, keys.ID(ak))
			fmt.Fprintf(w, "evidence: %d inclusion proofs verified", res.Proofs)
			if evidence != "" {
				fmt.Fprintf(w, ", %d files hashed and matched", res.EvidenceFiles)
			} else {
				fmt.Fprint(w, " (files not checked: give --evidence DIR)")
			}
			fmt.Fprintln(w)
			if r.Anchor != nil {
				fmt.Fprintf(w, "daily anchor %s: consistent\n", r.Anchor.Day)
			} else {
				fmt.Fprintln(w, "daily anchor: none in the report")
			}
			if r.Imported {
				fmt.Fprintln(w, "results: IMPORTED from another scanner (unsigned evidence)")
			}
			if r.Scan.ID != "" {
				fmt.Fprintf(w, "scan %s from %s\n", r.Scan.ID, scanFrom(r.Scan))
			}
			fmt.Fprintf(w, "tenant %s, policy %s v%d, vantage point %s, window %s to %s\n", r.Tenant, r.Policy.Name, r.Policy.Version, r.VantagePoint, r.Window.Start, r.Window.End)
			fmt.Fprintf(w, "rules: %s; findings: %s\n", counts(r.Summary.Rules), counts(r.Summary.Findings))
			return nil
		},
	}
	cmd.Flags().StringVar(&pub, "pub", "", "the appliance's report public key (keys/report.pub)")
	cmd.Flags().StringVar(&auditPub, "audit-pub", "", "the appliance's audit public key (keys/audit.pub; compliance reports only)")
	cmd.Flags().StringVar(&evidence, "evidence", "", "directory holding the evidence files under their report names")
	return cmd
}

// scanFrom names a scan's runner: the appliance itself or a sensor and
// its vantage label.
func scanFrom(s verify.Scan) string {
	switch {
	case s.Vantage == "" || s.Vantage == "local":
		return "the appliance itself (local)"
	case s.VantageLabel != "" && s.VantageLabel != s.Vantage:
		return "sensor " + s.Vantage + " (" + s.VantageLabel + ")"
	}
	return "sensor " + s.Vantage
}

// counts formats a count map as "a 1, b 2" in key order ("none" if empty).
func counts(m map[string]int) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
