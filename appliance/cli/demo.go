package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"firewalliq/appliance"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/keyring"
	"firewalliq/appliance/scan"
	"firewalliq/audit"
	"firewalliq/probe"
	"firewalliq/probe/keys"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

func newDemoCmd(env *Env) *cobra.Command {
	var keep string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the product's story end to end on embedded defaults, in a throw-away data directory",
		Long: `demo initialises an appliance in a temporary directory, signs a scope for
services it starts on 127.0.0.1, shows what the scope and the compiled-in
safety profile refuse, probes the services at a paced rate, stores the
results and the packet capture as evidence, and verifies the audit log that
recorded every step. It sends traffic to 127.0.0.1 only.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir := keep
			if dir == "" {
				tmp, err := os.MkdirTemp("", "firewalliq-demo-")
				if err != nil {
					return fmt.Errorf("demo: %w", err)
				}
				defer os.RemoveAll(tmp)
				dir = tmp
			}
			return runDemo(cmd.Context(), env, dir)
		},
	}
	cmd.Flags().StringVar(&keep, "keep", "", "work in this directory and keep everything (data dir, keys, scope, results)")
	return cmd
}

// demoActor is the security lead the demo acts as.
const demoActor = "demo-lead"

func runDemo(ctx context.Context, env *Env, work string) error {
	out := env.Stdout
	step := func(n int, format string, a ...any) { fmt.Fprintf(out, "\n== %d. %s\n", n, fmt.Sprintf(format, a...)) }
	say := func(format string, a ...any) { fmt.Fprintf(out, "   "+format+"\n", a...) }
	if err := os.MkdirAll(work, 0o700); err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	// 1. The appliance. Its clock is the real one, moved on by a TOTP step
	// (30 s) each time the demo needs a fresh code, so nothing waits.
	clk := &demoClock{base: env.Now(), start: time.Now()}
	cfg := appliance.DefaultConfig()
	cfg.DataDir = filepath.Join(work, "data")
	cfg.Production = false // the demo keeps evidence in a local directory, which is not WORM
	cfg.Vault.Backend = "local"
	cfg.Vault.LocalDir = filepath.Join(work, "evidence")
	step(1, "initialise an appliance in %s", cfg.DataDir)
	res, err := appliance.Init(ctx, cfg, appliance.InitOptions{Admin: "demo-admin", Tenant: "demo", Now: clk.Now})
	if err != nil {
		return err
	}
	say("tenant %q, first admin %q (one-time password and TOTP secret printed once by 'init')", res.Tenant, res.Admin)
	say("console certificate SHA-256 %s", res.CertFingerprint)
	app, err := appliance.OpenWith(ctx, cfg, clk.Now, appliance.Options{LogOutput: io.Discard})
	if err != nil {
		return err
	}
	defer app.Close()
	lead, leadSecret, err := demoSignIn(ctx, app, res, clk)
	if err != nil {
		return err
	}
	say("the admin signed in (TOTP enrolled, password changed) and created security lead %q, who signed in", lead.Name)

	// 2. The compiled-in safety profile.
	prof, err := safety.Load()
	if err != nil {
		return err
	}
	step(2, "the compiled-in safety profile (signed; no flag, env or config raises it)")
	say("%s v%d sha256 %s", prof.ID, prof.Version, prof.SHA256()[:16])
	say("caps: %d pps global, %d pps per host, %d targets per scan; kinds: %v", prof.GlobalPPS, prof.PerHostPPS, prof.MaxTargets, prof.ProbeKinds)

	// 3. The services to probe, and a scope a security lead signs for them.
	targets, err := startDemoTargets(env.Now())
	if err != nil {
		return err
	}
	defer targets.Close()
	step(3, "a security lead registers a signing key and signs a scope for services on 127.0.0.1")
	say("open tcp/%d, banner tcp/%d, TLS tcp/%d, closed tcp/%d, UDP responder udp/%d", targets.Open, targets.Banner, targets.TLS, targets.Closed, targets.UDP)
	if !probe.RawAvailable() {
		say("(no CAP_NET_RAW: the UDP probe, which needs a raw socket, is left out; run as root for it)")
	}
	pub, priv, err := keys.Generate(nil)
	if err != nil {
		return err
	}
	leadKey := filepath.Join(work, "lead")
	if err := keys.WritePair(leadKey, pub, priv); err != nil {
		return err
	}
	pubText, err := keys.MarshalPublic(pub)
	if err != nil {
		return err
	}
	// The lead registers the public key (with a step-up); the private key
	// stays in the lead's hands.
	if _, err := app.ScopeKeys.Add(ctx, lead, "", "demo lead key", pubText, clk.code(leadSecret)); err != nil {
		return err
	}
	now := clk.Now().UTC()
	doc := scope.Document{
		ID: "demo-loopback", Tenant: res.Tenant, Name: "demo loopback services", Environment: scope.EnvNonProduction,
		CIDRs: []string{"127.0.0.1/32"}, Exclude: []string{},
		Ports:     fmt.Sprintf("tcp:%d,%d,%d,%d udp:%d", targets.Open, targets.Banner, targets.TLS, targets.Closed, targets.UDP),
		Probes:    demoKinds(),
		NotBefore: now.Add(-time.Hour).Truncate(time.Second), NotAfter: now.Add(24 * time.Hour).Truncate(time.Second),
		MaxPPS: 50, SignerKeyID: keys.ID(pub),
	}
	signed, err := scope.Sign(doc, priv)
	if err != nil {
		return err
	}
	scopePath := filepath.Join(work, "scope.signed.json")
	if err := os.WriteFile(scopePath, signed, 0o644); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	sc, err := scope.Verify(signed, pub, clk.Now(), prof)
	if err != nil {
		return err
	}
	if _, err := app.Scopes.Register(ctx, lead, "", signed); err != nil {
		return err
	}
	say("signed by key %s, registered for tenant %q: %s, ports %q, max %d pps", doc.SignerKeyID, res.Tenant, strings.Join(doc.CIDRs, ","), doc.Ports, doc.MaxPPS)

	// 4. What the scope and the profile refuse, before any packet.
	step(4, "what is refused before a single packet leaves")
	for _, t := range []string{"127.0.0.2", "10.0.0.1"} {
		say("target %-10s -> in scope: %v (never probed)", t, sc.Contains(netip.MustParseAddr(t)))
	}
	_, err = app.Scans.Request(ctx, lead, "", scan.ScanRequest{ScopeID: doc.ID, Rate: prof.GlobalPPS * 10}, "")
	say("a scan at %d pps -> %v", prof.GlobalPPS*10, oneLine(fmt.Sprint(err)))

	// 5. The scan, through the scan service: a non-production scope runs on
	// the requester's step-up; the service issues a signed job that the
	// local runner verifies before its first packet.
	step(5, "probe the scope at the scope's %d pps (a signed job; paced, every packet checked against the scope)", doc.MaxPPS)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	go func() { defer close(done); _ = app.Scans.Run(runCtx) }()
	defer func() { stop(); <-done }()
	req, err := app.Scans.Request(ctx, lead, "", scan.ScanRequest{ScopeID: doc.ID}, clk.code(leadSecret))
	if err != nil {
		return err
	}
	final, err := demoWait(ctx, app, lead, req.ID)
	if err != nil {
		return err
	}
	if final.State != scan.StateCompleted {
		return fmt.Errorf("demo scan %s: %s (%s)", req.ID, final.State, final.Reason)
	}
	say("scan %s: job %s, %d results", final.ID, final.Job.ID, final.Job.Results)
	page, err := app.Scans.Results(ctx, lead, "", req.ID, scan.ResultFilter{Limit: scan.MaxPageSize})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(work, "scan"), 0o700); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	var lines bytes.Buffer
	say("%-10s %-5s %-6s %-12s %-8s %-14s %s", "target", "proto", "port", "probe", "state", "reason", "read")
	for _, r := range page.Items {
		say("%-10s %-5s %-6d %-12s %-8s %-14s %s", termSafe(r.Target), r.Proto, r.Port, r.Probe, r.State, termSafe(r.Reason), termSafe(demoDetail(r.Detail)))
		b, _ := json.Marshal(r)
		lines.Write(append(b, '\n'))
	}
	if err := os.WriteFile(filepath.Join(work, "scan", "results.jsonl"), lines.Bytes(), 0o644); err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	// 6. Evidence.
	step(6, "the scan service kept the results, the packet capture (with raw sockets) and the manifest as evidence")
	if err := app.Evidence.Vault().Flush(ctx); err != nil {
		return err
	}
	objs, err := app.Evidence.List(ctx, lead, "", "")
	if err != nil {
		return err
	}
	for _, o := range objs {
		say("%s sha256 %s", o.Key, o.SHA256[:16])
	}
	say("backend: local directory, NOT WORM (production mode refuses it; use MinIO with object lock)")

	// 7. The audit log.
	step(7, "the tamper-evident audit log recorded every step")
	cp, _, err := app.Checkpoint(ctx)
	if err != nil {
		return err
	}
	auditPub, err := app.Keys.Public(keyring.Audit)
	if err != nil {
		return err
	}
	// Verify as an auditor would: the database file alone, read-only.
	db, err := appliance.OpenReadOnly(ctx, filepath.Join(cfg.DataDir, appliance.DatabaseFile))
	if err != nil {
		return err
	}
	defer db.Close()
	rep, err := audit.Verify(ctx, db, audit.VerifyOptions{Public: auditPub})
	if err != nil {
		return err
	}
	entries, err := audit.ReadEntries(ctx, db, 1, rep.Size)
	if err != nil {
		return err
	}
	for _, e := range entries {
		say("%3d %-18s %-14s %s", e.Seq, termSafe(string(e.Action)), termSafe(e.ActorName), termSafe(e.Object))
	}
	say("verify: intact=%v, %d entries, %d signed checkpoints; latest checkpoint:", rep.Intact, rep.Entries, rep.Checkpoints)
	for _, l := range strings.Split(strings.TrimSpace(cp.Note), "\n") {
		say("  | %s", l)
	}
	fmt.Fprintf(out, "\n== done. Everything is in %s (data/, scope.signed.json, scan/, evidence/)\n", work)
	return nil
}

// demoKinds are the probe kinds the demo runs: UDP needs a raw socket
// (CAP_NET_RAW), so without one the demo leaves it out rather than fail.
func demoKinds() []safety.Kind {
	kinds := []safety.Kind{safety.KindTCPConnect, safety.KindTLSHello, safety.KindBanner}
	if probe.RawAvailable() {
		kinds = append(kinds, safety.KindUDP)
	}
	return kinds
}

// demoClock runs at real speed from the environment's time (the engine's
// pacing and reply timeouts need time to pass), moved on by whole TOTP
// steps: each fresh code the demo needs (one per step, as for a person)
// advances it 30 s instead of waiting.
type demoClock struct {
	mu    sync.Mutex
	base  time.Time
	start time.Time // real time at base
	off   time.Duration
}

// Now returns the demo's time.
func (c *demoClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base.Add(time.Since(c.start) + c.off)
}

// code moves the clock to the next TOTP step and returns secret's code there.
func (c *demoClock) code(secret string) string {
	c.mu.Lock()
	c.off += 30 * time.Second
	c.mu.Unlock()
	s, _ := auth.TOTPCode(secret, c.Now())
	return s
}

// demoSignIn finishes the first admin's first login (TOTP enrolment,
// password change), has the admin create the security lead the demo acts
// as (with a step-up code), and finishes the lead's first login: the same
// doors a person uses. It returns the lead and the lead's TOTP secret.
func demoSignIn(ctx context.Context, app *appliance.Appliance, res appliance.InitResult, clk *demoClock) (auth.Principal, string, error) {
	c := auth.Client{IP: "127.0.0.1", UserAgent: "firewalliq-demo"}
	first := func(name, oneTime string) (auth.Principal, string, error) {
		l, err := app.Auth.Login(ctx, name, oneTime, c, "")
		if err != nil {
			return auth.Principal{}, "", fmt.Errorf("demo login %s: %w", name, err)
		}
		en, err := app.Auth.BeginEnrolment(ctx, l.Token, c)
		if err != nil {
			return auth.Principal{}, "", fmt.Errorf("demo enrol %s: %w", name, err)
		}
		full, _, err := app.Auth.ConfirmEnrolment(ctx, l.Token, clk.code(en.Secret), c)
		if err != nil {
			return auth.Principal{}, "", fmt.Errorf("demo enrol %s: %w", name, err)
		}
		p, err := app.Auth.Authenticate(ctx, auth.Request{SessionToken: full.Token, Method: "GET", Client: c})
		if err != nil {
			return auth.Principal{}, "", err
		}
		pw, err := auth.RandomPassword()
		if err != nil {
			return auth.Principal{}, "", err
		}
		if full, err = app.Auth.ChangePassword(ctx, p, oneTime, pw); err != nil {
			return auth.Principal{}, "", fmt.Errorf("demo password %s: %w", name, err)
		}
		p, err = app.Auth.Authenticate(ctx, auth.Request{SessionToken: full.Token, Method: "GET", Client: c})
		return p, en.Secret, err
	}
	admin, secret, err := first(res.Admin, res.OneTimePassword)
	if err != nil {
		return auth.Principal{}, "", err
	}
	_, oneTime, err := app.Auth.CreateUser(ctx, admin, res.TenantID, auth.NewUser{Name: demoActor, Role: "security_lead"}, clk.code(secret))
	if err != nil {
		return auth.Principal{}, "", fmt.Errorf("demo create %s: %w", demoActor, err)
	}
	return first(demoActor, oneTime)
}

// demoWait follows scan id's progress feed until the run ends (2 minutes
// at most) and returns the scan.
func demoWait(ctx context.Context, app *appliance.Appliance, p auth.Principal, id string) (scan.Scan, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		sc, err := app.Scans.Get(ctx, p, "", id)
		if err != nil {
			return scan.Scan{}, err
		}
		switch sc.State {
		case scan.StateCompleted, scan.StateFailed, scan.StateCancelled:
			return sc, nil
		}
		ch, err := app.Scans.Watch(ctx, p, "", id)
		if err != nil {
			return scan.Scan{}, err
		}
		for range ch {
		}
		time.Sleep(50 * time.Millisecond)
	}
	return scan.Scan{}, fmt.Errorf("demo scan %s: %w", id, ctx.Err())
}

// demoDetail summarises what a probe read: the banner a server
// volunteered, or the TLS version and certificate subject of its handshake.
func demoDetail(detail json.RawMessage) string {
	var d struct {
		TLS *struct {
			Version string
			Chain   []struct{ Subject string }
		}
		Banner *struct{ Text string }
	}
	if len(detail) == 0 || json.Unmarshal(detail, &d) != nil {
		return ""
	}
	switch {
	case d.Banner != nil && d.Banner.Text != "":
		// The engine stores banners escaped (untrusted input), so print as is.
		return "banner: " + d.Banner.Text
	case d.TLS != nil && len(d.TLS.Chain) > 0:
		return fmt.Sprintf("%s, certificate %q", d.TLS.Version, d.TLS.Chain[0].Subject)
	}
	return ""
}
