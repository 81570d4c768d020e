//go:build lab

package cli

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"firewalliq/appliance"
	"firewalliq/audit"
	"firewalliq/probe"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// probeFlags are the 'probe' command's flags.
type probeFlags struct {
	scope, trust, ports, probes, out string
	rate, retries                    int
	timeout                          time.Duration
	resume, noProgress               bool
}

// labCommands are the commands only a lab build has: the stand-alone probe
// engine, for the network lab and the benchmarks. A lab build carries the
// lab safety profile and refuses production mode (safety.CheckProduction);
// the shipped binary scans only through the scan service (docs/scans.md).
func labCommands(env *Env) []*cobra.Command { return []*cobra.Command{newProbeCmd(env)} }

// newProbeCmd builds the 'probe' command: run the engine alone against a
// signed non-production scope.
func newProbeCmd(env *Env) *cobra.Command {
	var f probeFlags
	cmd := &cobra.Command{
		Use:   "probe --scope S --trust P.pub --out DIR [--ports SPEC] [--probes KINDS] [--rate N]",
		Short: "Run the probe engine against a signed non-production scope",
		Long: "probe verifies the signed scope with the trusted key and the compiled-in safety profile,\n" +
			"then probes every address of the scope at min(profile cap, scope max_pps, --rate) and writes\n" +
			"results.jsonl, probes.pcapng, summary.json and checkpoint.json to DIR (docs/probe.md).\n\n" +
			"--ports and --probes must be subsets of the scope; a --rate above the cap is refused, not\n" +
			"clamped. Production scopes are refused here: they run only as jobs signed by the appliance\n" +
			"with their approvals. An interrupted scan continues with --resume.",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			// A scan in production mode needs a release build (exit 4).
			cfg, err := loadConfig(cmd, env)
			if err != nil {
				return err
			}
			if err := refuseUnfitBuild("probe", cfg.Production, safety.Load); err != nil {
				return err
			}
			if err := refuseDuringTamperAlarm(cmd, env); err != nil {
				return err
			}
			return runProbe(cmd.Context(), env, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.scope, "scope", "", "signed scope document (required)")
	fl.StringVar(&f.trust, "trust", "", "public key trusted to sign scopes (required)")
	fl.StringVar(&f.out, "out", "", "output directory (required)")
	fl.StringVar(&f.ports, "ports", "", `ports to probe, a subset of the scope's (e.g. "tcp:22,443 udp:53"; default: all)`)
	fl.StringVar(&f.probes, "probes", "", "probe kinds, comma-separated, a subset of the scope's (default: all)")
	fl.IntVar(&f.rate, "rate", 0, "packets per second (default: the cap, min(profile, scope max_pps))")
	fl.IntVar(&f.retries, "retries", 2, "retries of an unanswered probe (they count against the rate)")
	fl.DurationVar(&f.timeout, "timeout", time.Second, "wait for an answer to each attempt")
	fl.BoolVar(&f.resume, "resume", false, "continue the interrupted scan in --out from its last completed batch")
	fl.BoolVar(&f.noProgress, "no-progress", false, "no progress bar even on a terminal")
	return cmd
}

// errProduction refuses production scopes in the stand-alone command.
var errProduction = errors.New("production scope refused")

// errScopeExpired ends a scan whose scope expired while it ran.
var errScopeExpired = errors.New("scope expired")

// validScope is the scope's containment set restricted to its validity
// window: outside [not_before, not_after) no address is in scope.
type validScope struct {
	sc                  *scope.Scope
	notBefore, notAfter time.Time
	now                 func() time.Time
}

func (v validScope) Contains(a netip.Addr) bool {
	t := v.now()
	return !t.Before(v.notBefore) && t.Before(v.notAfter) && v.sc.Contains(a)
}

// refuseDuringTamperAlarm refuses a scan on an appliance whose audit log
// has an unacknowledged tamper alarm. The engine itself stands alone; this
// check applies where the command runs on an initialised data directory
// (--data, FIQ_DATA or the default), which it opens read-only.
func refuseDuringTamperAlarm(cmd *cobra.Command, env *Env) error {
	cfg, err := loadConfig(cmd, env)
	if err != nil {
		return err
	}
	dbPath := filepath.Join(cfg.DataDir, appliance.DatabaseFile)
	if _, err := os.Stat(dbPath); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	db, err := appliance.OpenReadOnly(cmd.Context(), dbPath)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer db.Close()
	if err := audit.CheckNoAlarm(cmd.Context(), db); err != nil {
		return fmt.Errorf("probe: refused: %w", err)
	}
	return nil
}

func runProbe(ctx context.Context, env *Env, f probeFlags) error {
	switch {
	case f.scope == "":
		return usagef("probe: --scope is required")
	case f.trust == "":
		return usagef("probe: --trust is required")
	case f.out == "":
		return usagef("probe: --out is required")
	case f.rate < 0:
		return usagef("probe: --rate must be positive")
	case f.retries < 0 || f.retries > 10:
		return usagef("probe: --retries must be 0..10")
	case f.timeout <= 0 || f.timeout > time.Minute:
		return usagef("probe: --timeout must be in (0, 1m]")
	}
	prof, err := safety.Load()
	if err != nil {
		return err
	}
	sc, err := loadScope(env, f.scope, f.trust)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	doc := sc.Doc
	if doc.Environment != scope.EnvNonProduction {
		return fmt.Errorf("probe: %w: scope %q is %q; 'firewalliq probe' runs non-production scopes only, a production scan runs as a job signed by the appliance carrying its two approvals", errProduction, doc.ID, doc.Environment)
	}
	ports, err := pickPorts(sc, f.ports)
	if err != nil {
		return err
	}
	kinds, err := pickKinds(sc, prof, f.probes)
	if err != nil {
		return err
	}
	limits := probe.Limits{Profile: prof.GlobalPPS, Scope: doc.MaxPPS, Requested: f.rate, PerHost: prof.PerHostPPS}
	rate, err := limits.Effective()
	if err != nil {
		// Refused, not clamped: the operator must ask for what is allowed.
		return usagef("probe: %w", err)
	}
	var payloads []string
	for _, p := range prof.UDPPayloads {
		payloads = append(payloads, p)
	}
	fp := probeFingerprint(sc, prof, ports, kinds, rate, f)
	seed, err := randomSeed()
	if err != nil {
		return err
	}
	scanID := fmt.Sprintf("%s-%s", doc.ID, env.Now().UTC().Format("20060102T150405Z"))
	dir, err := probe.OpenDir(f.out, probe.Checkpoint{ScanID: scanID, Fingerprint: fp, Seed: seed}, f.resume)
	if err != nil {
		if errors.Is(err, probe.ErrExists) {
			return usagef("probe: %v (use another --out, or --resume to continue it)", err)
		}
		return fmt.Errorf("probe: %w", err)
	}
	defer dir.Close()
	cp := dir.Resume()

	// The signed scope authorises sending until not_after, not for as long
	// as a scan started before then happens to run: the scan stops at
	// not_after, and the send path's per-packet check includes the
	// validity window, so nothing leaves after it even in the last
	// moments before the engine stops.
	ctx, stop := context.WithTimeout(ctx, doc.NotAfter.Sub(env.Now()))
	defer stop()
	valid := validScope{sc: sc, notBefore: doc.NotBefore, notAfter: doc.NotAfter, now: env.Now}
	cfg := probe.Config{
		ScanID: cp.ScanID, Targets: sc.Targets(cp.Seed), TargetCount: sc.Size(),
		Ports: ports, Kinds: kinds, Scope: valid, Limits: limits,
		Retries: f.retries, Timeout: f.timeout, UDPPayloads: payloads,
		Now: time.Now, Results: dir.Result, Evidence: dir.Evidence(),
		Checkpoint: dir.Checkpoint, ResumeBatch: cp.NextBatch,
		// The batches of a resumed scan must be the ones the checkpoint
		// counted: the default size depends on the transport (raw or
		// connect), which may differ from the interrupted run's.
		BatchTargets: cp.BatchTargets,
	}
	if f.retries == 0 {
		cfg.Retries = -1
	}
	var bar *progressBar
	if !f.noProgress && isTerminal(env.Stderr) {
		bar = newProgressBar(env.Stderr)
		cfg.Progress = bar.update
	}
	eng, err := probe.New(cfg)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	dir.SetBatchTargets(eng.BatchTargets())
	if !eng.Raw() && slices.Contains(kinds, probe.KindTCPSyn) {
		fmt.Fprintln(env.Stderr, "firewalliq: no CAP_NET_RAW: tcp-syn runs as tcp-connect (recorded in each result as fallback_from)")
	}
	sum, runErr := eng.Run(ctx)
	if bar != nil {
		bar.finish()
	}
	sum.Extra = map[string]any{"scope_id": doc.ID, "scope_sha256": sc.SHA256(), "profile_id": prof.ID, "profile_sha256": prof.SHA256(), "runs": cp.Runs}
	if err := dir.Finish(sum, runErr == nil); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	if runErr != nil {
		if errors.Is(runErr, context.DeadlineExceeded) && !env.Now().Before(doc.NotAfter) {
			return fmt.Errorf("probe: %w: scope %q expired at %s during the scan, after %d probes; results so far are in %s", errScopeExpired, doc.ID, doc.NotAfter.UTC().Format(time.RFC3339), sum.Probes, f.out)
		}
		if errors.Is(runErr, context.Canceled) {
			return fmt.Errorf("probe: interrupted after %d probes; continue with --resume --out %s", sum.Probes, f.out)
		}
		return fmt.Errorf("probe: %w", runErr)
	}
	fmt.Fprintf(env.Stdout, "scan %s: %d probes, %d packets at %.0f pps (cap %d, worst 100 ms window %d/%d), %d retries, %d refused; results in %s\n",
		sum.ScanID, sum.Probes, sum.PacketsSent, sum.MeasuredPPS, sum.RatePPS, sum.Worst100ms, sum.WindowLimit, sum.Retries, sum.RefusedPackets, f.out)
	return nil
}

// pickPorts returns the scope's ports, or the subset named by spec; a port
// outside the scope is refused.
func pickPorts(sc *scope.Scope, spec string) ([]probe.Port, error) {
	all := sc.Ports()
	sel := all
	if spec != "" {
		var err error
		if sel, err = scope.ParsePorts(spec); err != nil {
			return nil, usagef("probe: --ports: %w", err)
		}
		for _, p := range sel {
			if !slices.Contains(all, p) {
				return nil, usagef("probe: --ports: %s is not in scope %q (%s)", p, sc.Doc.ID, sc.Doc.Ports)
			}
		}
	}
	out := make([]probe.Port, 0, len(sel))
	for _, p := range sel {
		out = append(out, probe.Port{Proto: p.Proto, Number: p.Number})
	}
	return out, nil
}

// pickKinds returns the scope's probe kinds, or the subset named by list; a
// kind the scope or the profile does not allow is refused.
func pickKinds(sc *scope.Scope, prof safety.Profile, list string) ([]probe.Kind, error) {
	sel := sc.Doc.Probes
	if list != "" {
		sel = nil
		for _, s := range strings.Split(list, ",") {
			k, err := safety.ParseKind(strings.TrimSpace(s))
			if err != nil {
				return nil, usagef("probe: --probes: %w", err)
			}
			if !sc.Allows(k) {
				return nil, usagef("probe: --probes: %s is not allowed by scope %q", k, sc.Doc.ID)
			}
			sel = append(sel, k)
		}
	}
	var out []probe.Kind
	for _, k := range sel {
		if !prof.Allows(k) {
			return nil, usagef("probe: --probes: %s is not allowed by the safety profile", k)
		}
		out = append(out, probe.Kind(k))
	}
	return out, nil
}

// probeFingerprint identifies what a scan plans, so --resume refuses to
// continue a different one.
func probeFingerprint(sc *scope.Scope, prof safety.Profile, ports []probe.Port, kinds []probe.Kind, rate int, f probeFlags) string {
	h := sha256.New()
	fmt.Fprintf(h, "scope %s\nprofile %s\nrate %d\nretries %d\ntimeout %s\n", sc.SHA256(), prof.SHA256(), rate, f.retries, f.timeout)
	for _, p := range ports {
		fmt.Fprintf(h, "port %s/%d\n", p.Proto, p.Number)
	}
	for _, k := range kinds {
		fmt.Fprintf(h, "kind %s\n", k)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func randomSeed() (uint64, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("seed: %w", err)
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// isTerminal reports whether w is a terminal (the progress bar is drawn
// only there, never into a log or a pipe).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressBar draws done/total, the measured rate against the cap, and ETA.
type progressBar struct {
	mu  sync.Mutex
	bar *progressbar.ProgressBar
}

func newProgressBar(w io.Writer) *progressBar {
	return &progressBar{bar: progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("probing"),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)}
}

func (p *progressBar) update(pr probe.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pr.Total > 0 && p.bar.GetMax64() != int64(pr.Total) {
		p.bar.ChangeMax64(int64(pr.Total))
	}
	p.bar.Describe(fmt.Sprintf("%6.0f/%d pps", pr.Rate, pr.Cap))
	_ = p.bar.Set64(int64(pr.Done))
}

func (p *progressBar) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.bar.Finish()
}
