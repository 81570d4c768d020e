package cli

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"firewalliq/appliance"
	"firewalliq/appliance/evidence"
	"firewalliq/audit"
	"firewalliq/probe/bounded"
	"firewalliq/probe/keys"
)

// newAuditCmd builds the 'audit' command group.
func newAuditCmd(env *Env, r *remote) *cobra.Command {
	return newGroup("audit", "Verify and prove the tamper-evident audit log",
		newAuditVerifyCmd(env),
		newAuditCheckpointCmd(env),
		newAuditProveCmd(env),
		newAuditVerifyProofCmd(env),
		newAuditExportCmd(env),
		newAuditAckCmd(r),
		newAuditEntriesCmd(r),
	)
}

// auditFailure is a verification that ran and found the log or a proof
// broken: exit 1, with the reason as the one-line error.
type auditFailure struct{ msg string }

func (e *auditFailure) Error() string { return e.msg }
func (e *auditFailure) ExitCode() int { return ExitFailure }

// openAuditDB opens the data directory's database read-only: verification
// must work on a copy of the file alone and must not change it.
func openAuditDB(cmd *cobra.Command, env *Env) (*sql.DB, appliance.Config, error) {
	cfg, err := loadConfig(cmd, env)
	if err != nil {
		return nil, cfg, err
	}
	path := filepath.Join(cfg.DataDir, appliance.DatabaseFile)
	if _, err := os.Stat(path); err != nil {
		return nil, cfg, fmt.Errorf("audit: %s: %w", cfg.DataDir, appliance.ErrNotInitialized)
	}
	db, err := appliance.OpenReadOnly(cmd.Context(), path)
	if err != nil {
		return nil, cfg, fmt.Errorf("audit: %w", err)
	}
	return db, cfg, nil
}

// auditPub reads the audit public key: --pub, else DIR/keys/audit.pub.
func auditPub(path string, cfg appliance.Config) (ed25519.PublicKey, error) {
	if path == "" {
		path = filepath.Join(cfg.DataDir, "keys", "audit.pub")
	}
	pub, err := keys.ReadPublic(path)
	if err != nil {
		return nil, fmt.Errorf("audit public key: %w", err)
	}
	return pub, nil
}

func newAuditVerifyCmd(env *Env) *cobra.Command {
	var (
		asJSON    bool
		pubPath   string
		statePath string
		kept      []string
		anchors   bool
	)
	cmd := &cobra.Command{
		Use:   "verify --data DIR [--json] [--from-checkpoint FILE] [--pub FILE] [--state FILE] [--anchors]",
		Short: "Recompute the audit chain and Merkle tree and check every signed checkpoint",
		Long: `verify reads the database file read-only and recomputes every entry's hash,
the hash chain and the Merkle tree, checks every stored checkpoint's signature
with the audit public key, and that each checkpoint's root is the recomputed
root at its size. It also checks that no signed checkpoint or verified point
vanished: none at all while entries exist, a gap in their ids, a size below an
earlier one, or a newest checkpoint below the one in the state file
(DIR/keys/audit.state, the last checkpoint the appliance signed; its absence
is a failure too, and the log must extend it). With --from-checkpoint
(repeatable) it also proves that the log extends a checkpoint kept elsewhere,
which catches a database replaced by an older copy. With --anchors it reads
every checkpoint anchored in the configured evidence bucket (vault.*) and
checks a consistency proof from each to the current head. Exit 0 when
intact, 1 naming the first bad seq and the reason.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var notes [][]byte
			for _, f := range kept {
				b, err := bounded.ReadFile(f, bounded.MaxCheckpointNote)
				if err != nil {
					return usagef("audit verify: --from-checkpoint: %w", err)
				}
				notes = append(notes, b)
			}
			db, cfg, err := openAuditDB(cmd, env)
			if err != nil {
				return err
			}
			defer db.Close()
			if anchors && cfg.Vault.Backend == "" {
				return usagef("audit verify: --anchors needs an evidence vault (vault.backend) in the configuration")
			}
			pub, err := auditPub(pubPath, cfg)
			if err != nil {
				return err
			}
			if statePath == "" {
				statePath = appliance.AuditStatePath(cfg.DataDir)
			}
			state, _, err := audit.ReadStateNote(statePath)
			if err != nil {
				return &auditFailure{msg: fmt.Sprintf("audit verify: %v", err)}
			}
			rep, err := audit.Verify(cmd.Context(), db, audit.VerifyOptions{Public: pub, Kept: notes, State: state, RequireState: true})
			if err != nil {
				return fmt.Errorf("audit verify: %w", err)
			}
			if asJSON {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else if rep.Intact {
				fmt.Fprintf(env.Stdout, "audit log intact: %d entries, %d signed checkpoints (latest size %d), root %s", rep.Size, rep.Checkpoints, rep.Latest, rep.Root)
				if rep.Kept > 0 {
					fmt.Fprintf(env.Stdout, "; extends %d kept checkpoint(s)", rep.Kept)
				}
				if rep.Size > rep.Latest {
					fmt.Fprintf(env.Stdout, "; entries %d..%d are not yet covered by a checkpoint", rep.Latest+1, rep.Size)
				}
				fmt.Fprintln(env.Stdout)
			}
			if !rep.Intact {
				return &auditFailure{msg: rep.Problem.Error()}
			}
			if anchors {
				return verifyAnchors(cmd.Context(), env, db, cfg, pub, asJSON)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().StringVar(&pubPath, "pub", "", "audit public key (PEM); default DIR/keys/audit.pub")
	cmd.Flags().StringVar(&statePath, "state", "", "audit state file (the last signed checkpoint); default DIR/keys/audit.state")
	cmd.Flags().StringSliceVar(&kept, "from-checkpoint", nil, "signed checkpoint note kept elsewhere that the log must extend (repeatable)")
	cmd.Flags().BoolVar(&anchors, "anchors", false, "also prove the log extends every checkpoint anchored in the evidence bucket")
	return cmd
}

// verifyAnchors reads the anchored checkpoints from the configured vault
// and checks a consistency proof from each to the head.
func verifyAnchors(ctx context.Context, env *Env, db *sql.DB, cfg appliance.Config, pub ed25519.PublicKey, quiet bool) error {
	now := env.Now
	if now == nil {
		now = time.Now
	}
	an, err := evidence.ReadAnchors(ctx, cfg.Vault, cfg.DataDir, now)
	if err != nil {
		return fmt.Errorf("audit verify --anchors: %w", err)
	}
	notes := make([][]byte, len(an))
	for i, a := range an {
		notes[i] = a.Note
	}
	n, p, err := audit.CheckWitnesses(ctx, db, pub, "", notes)
	if err != nil {
		return fmt.Errorf("audit verify --anchors: %w", err)
	}
	if p != nil {
		return &auditFailure{msg: fmt.Sprintf("anchor %s (version %s): %v", an[n].Key, an[n].VersionID, p)}
	}
	if !quiet {
		fmt.Fprintf(env.Stdout, "anchors: the log extends all %d anchored checkpoint(s) in %s\n", n, cfg.Vault.Backend)
	}
	return nil
}

func newAuditCheckpointCmd(env *Env) *cobra.Command {
	var (
		asJSON  bool
		pubPath string
	)
	cmd := &cobra.Command{
		Use:   "checkpoint --data DIR [--json]",
		Short: "Print the latest signed checkpoint",
		Long: `checkpoint prints the latest signed checkpoint note (verified with the audit
public key), reading the database file read-only. Keep a copy outside the
appliance: 'audit verify --from-checkpoint' proves the log still extends it.
The running appliance signs a checkpoint every audit.checkpoint_every entries
and at least every audit.checkpoint_interval while entries arrive.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, cfg, err := openAuditDB(cmd, env)
			if err != nil {
				return err
			}
			defer db.Close()
			pub, err := auditPub(pubPath, cfg)
			if err != nil {
				return err
			}
			cp, err := audit.LatestCheckpoint(cmd.Context(), db, pub)
			if err != nil {
				return fmt.Errorf("audit checkpoint: %w", err)
			}
			if asJSON {
				return json.NewEncoder(env.Stdout).Encode(cp)
			}
			_, err = io.WriteString(env.Stdout, cp.Note)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print origin, size, root and note as JSON")
	cmd.Flags().StringVar(&pubPath, "pub", "", "audit public key (PEM); default DIR/keys/audit.pub")
	return cmd
}

func newAuditProveCmd(env *Env) *cobra.Command {
	var seq, from int64
	cmd := &cobra.Command{
		Use:   "prove --data DIR (--seq N | --from SIZE)",
		Short: "Print an inclusion proof for entry N, or a consistency proof from tree size SIZE",
		Long: `prove prints, as JSON, an inclusion proof that entry N is in the tree of the
latest signed checkpoint (--seq), or a consistency proof that the tree of SIZE
entries is a prefix of it (--from). 'audit verify-proof' checks either offline
with only the audit public key.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (seq > 0) == (from > 0) {
				return usagef("audit prove: give exactly one of --seq N or --from SIZE (both positive)")
			}
			db, _, err := openAuditDB(cmd, env)
			if err != nil {
				return err
			}
			defer db.Close()
			var p any
			if seq > 0 {
				p, err = audit.ProveInclusion(cmd.Context(), db, seq)
			} else {
				p, err = audit.ProveConsistency(cmd.Context(), db, from)
			}
			if err != nil {
				return fmt.Errorf("audit prove: %w", err)
			}
			enc := json.NewEncoder(env.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(p)
		},
	}
	cmd.Flags().Int64Var(&seq, "seq", 0, "entry to prove included")
	cmd.Flags().Int64Var(&from, "from", 0, "older tree size to prove consistent")
	return cmd
}

func newAuditVerifyProofCmd(env *Env) *cobra.Command {
	var pubPath string
	cmd := &cobra.Command{
		Use:   "verify-proof --pub FILE [PROOF_FILE|-]",
		Short: "Check an inclusion or consistency proof (or an export) offline with the audit public key",
		Long: `verify-proof needs no database: it checks a proof printed by 'audit prove',
or every line of an 'audit export' file, with only the appliance's audit public
key (--pub; default DIR/keys/audit.pub). Reads standard input when the file is
"-" or missing. Exit 0 when every proof verifies, 1 otherwise.`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var pub ed25519.PublicKey
			var err error
			if pubPath != "" {
				pub, err = keys.ReadPublic(pubPath)
			} else {
				var cfg appliance.Config
				if cfg, err = loadConfig(cmd, env); err == nil {
					pub, err = auditPub("", cfg)
				}
			}
			if err != nil {
				return err
			}
			in, name := env.Stdin, "standard input"
			if len(args) == 1 && args[0] != "-" {
				f, err := bounded.Open(args[0], bounded.MaxProofInput)
				if err != nil {
					return fmt.Errorf("audit verify-proof: %w", err)
				}
				defer f.Close()
				in, name = f, args[0]
			}
			return verifyProofs(env, &proofReader{r: in, name: name}, pub)
		},
	}
	cmd.Flags().StringVar(&pubPath, "pub", "", "audit public key (PEM); default DIR/keys/audit.pub")
	return cmd
}

// proofReader streams the input of 'audit verify-proof' with two bounds:
// bounded.MaxProofInput in all, and bounded.MaxProof read past the end of
// the last complete proof, so one endless or huge proof cannot exhaust
// memory, while an export of any number of proofs needs only one in memory.
type proofReader struct {
	r           io.Reader
	name        string
	total, mark int64 // bytes read; offset where the last proof ended
}

func (p *proofReader) Read(b []byte) (int, error) {
	if p.total > bounded.MaxProofInput {
		return 0, fmt.Errorf("%s: %w (limit %s)", p.name, bounded.ErrTooLarge, bounded.FormatSize(bounded.MaxProofInput))
	}
	if p.total-p.mark > bounded.MaxProof {
		return 0, fmt.Errorf("%s: one proof is larger than %s: %w", p.name, bounded.FormatSize(bounded.MaxProof), bounded.ErrTooLarge)
	}
	n, err := p.r.Read(b)
	p.total += int64(n)
	return n, err
}

// verifyProofs checks one indented proof or JSON lines of proofs.
func verifyProofs(env *Env, in *proofReader, pub ed25519.PublicKey) error {
	dec := json.NewDecoder(in)
	n := 0
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
			break
		} else if errors.Is(err, bounded.ErrTooLarge) {
			return fmt.Errorf("audit verify-proof: proof %d: %w", n+1, err)
		} else if err != nil {
			return &auditFailure{msg: fmt.Sprintf("audit verify-proof: proof %d: not JSON: %v", n+1, err)}
		}
		in.mark = dec.InputOffset()
		n++
		var head struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(raw, &head)
		switch head.Type {
		case audit.ProofInclusion:
			var p audit.InclusionProof
			if err := json.Unmarshal(raw, &p); err != nil {
				return &auditFailure{msg: fmt.Sprintf("audit verify-proof: proof %d: %v", n, err)}
			}
			cp, err := audit.VerifyInclusion(p, pub)
			if err != nil {
				return &auditFailure{msg: fmt.Sprintf("audit verify-proof: proof %d (entry %d): %v", n, p.Entry.Seq, err)}
			}
			fmt.Fprintf(env.Stdout, "ok: entry %d (%s %s) is in %s at size %d, root %s\n", p.Entry.Seq, termSafe(string(p.Entry.Action)), p.Entry.Time.Format(time.RFC3339), termSafe(cp.Origin), cp.Size, cp.Root)
		case audit.ProofConsistency:
			var p audit.ConsistencyProof
			if err := json.Unmarshal(raw, &p); err != nil {
				return &auditFailure{msg: fmt.Sprintf("audit verify-proof: proof %d: %v", n, err)}
			}
			cp, err := audit.VerifyConsistency(p, pub)
			if err != nil {
				return &auditFailure{msg: fmt.Sprintf("audit verify-proof: proof %d (from %d): %v", n, p.OldSize, err)}
			}
			signed := "unsigned old root"
			if p.OldCheckpoint != "" {
				signed = "signed old checkpoint"
			}
			fmt.Fprintf(env.Stdout, "ok: tree %d (%s, root %s) is a prefix of %s at size %d, root %s\n", p.OldSize, signed, p.OldRoot, termSafe(cp.Origin), cp.Size, cp.Root)
		default:
			return &auditFailure{msg: fmt.Sprintf("audit verify-proof: proof %d: unknown type %q", n, head.Type)}
		}
	}
	if n == 0 {
		return &auditFailure{msg: "audit verify-proof: no proof in input"}
	}
	return nil
}

func newAuditExportCmd(env *Env) *cobra.Command {
	var since, format, out string
	cmd := &cobra.Command{
		Use:   "export --data DIR --since RFC3339 [--format jsonl] [--out FILE]",
		Short: "Export entries with inclusion proofs against the latest signed checkpoint",
		Long: `export writes one JSON inclusion proof per line (entry, proof, signed
checkpoint) for every entry at or after --since that the latest signed
checkpoint covers; 'audit verify-proof' checks the file offline. Newer entries
are left out with a warning: the running appliance signs the next checkpoint
within audit.checkpoint_interval.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "jsonl" {
				return usagef("audit export: --format %q: only jsonl is supported", format)
			}
			t, err := time.Parse(time.RFC3339Nano, since)
			if since == "" || err != nil {
				return usagef("audit export: --since must be an RFC 3339 time, got %q", since)
			}
			db, _, err := openAuditDB(cmd, env)
			if err != nil {
				return err
			}
			defer db.Close()
			w := env.Stdout
			if out != "" {
				f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if err != nil {
					return fmt.Errorf("audit export: %w", err)
				}
				defer f.Close()
				w = f
			}
			n, left, err := exportJSONL(cmd.Context(), db, t, w)
			if err != nil {
				return fmt.Errorf("audit export: %w", err)
			}
			if out != "" {
				if err := w.(*os.File).Close(); err != nil {
					return fmt.Errorf("audit export: %w", err)
				}
			}
			fmt.Fprintf(env.Stderr, "exported %d entries with proofs", n)
			if left > 0 {
				fmt.Fprintf(env.Stderr, "; %d newer entries are not covered by a signed checkpoint yet (the appliance signs one within audit.checkpoint_interval)", left)
			}
			fmt.Fprintln(env.Stderr)
			return nil
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "export entries at or after this RFC 3339 time (required)")
	cmd.Flags().StringVar(&format, "format", "jsonl", "output format: jsonl")
	cmd.Flags().StringVar(&out, "out", "", "write to this new file instead of standard output")
	return cmd
}

// exportJSONL writes proofs for entries at or after since, in pages, so a
// large log is not loaded at once. It returns how many were written and how
// many newer entries no checkpoint covers.
func exportJSONL(ctx context.Context, db *sql.DB, since time.Time, w io.Writer) (n, left int64, err error) {
	cp, err := audit.LatestStoredCheckpoint(ctx, db)
	if err != nil {
		return 0, 0, err
	}
	var head int64
	if err := db.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM audit_entries`).Scan(&head); err != nil {
		return 0, 0, err
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	const page = 1000
	for from := int64(1); from <= cp.Size; from += page {
		es, err := audit.ReadEntries(ctx, db, from, min(from+page-1, cp.Size))
		if err != nil {
			return n, 0, err
		}
		for _, e := range es {
			if e.Time.Before(since) {
				continue
			}
			p, err := audit.ProveInclusionAt(ctx, db, e.Seq, cp)
			if err != nil {
				return n, 0, err
			}
			if err := enc.Encode(p); err != nil {
				return n, 0, err
			}
			n++
		}
	}
	if err := bw.Flush(); err != nil {
		return n, 0, err
	}
	return n, max(0, head-cp.Size), nil
}
