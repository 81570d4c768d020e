package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"firewalliq/appliance"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/buildinfo"
	"firewalliq/appliance/evidence"
	"firewalliq/appliance/interop"
	"firewalliq/appliance/keyring"
	"firewalliq/appliance/report"
	"firewalliq/appliance/report/verify"
	"firewalliq/appliance/sandbox"
	"firewalliq/appliance/scan"
	"firewalliq/audit"
	"firewalliq/probe"
	"firewalliq/probe/keys"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

// The demo's people. The admin creates them all, so the approvers are
// independent of the security lead who requests the scan.
const (
	demoActor     = "demo-lead"
	demoApprover1 = "demo-approver-1"
	demoApprover2 = "demo-approver-2"
)

// demoUser is a signed-in demo account and what a person needs to log in
// as it on the console.
type demoUser struct {
	P        auth.Principal
	Password string
	Secret   string
}

// runDemoStory is the story both demos tell, on the plan's targets: the
// appliance, its users, a signed production scope, what is refused, the
// scan through the scan service with dual approval, evidence, the policy
// evaluation and the signed report verified offline, the audit log, and
// (with ln) the console until ctx ends. kept says whether work outlives the
// demo (--keep).
func runDemoStory(ctx context.Context, env *Env, work string, kept bool, plan sandbox.Plan, ln net.Listener) error {
	if ln != nil {
		defer ln.Close()
	}
	out := env.Stdout
	step := func(n int, format string, a ...any) { fmt.Fprintf(out, "\n== %d. %s\n", n, fmt.Sprintf(format, a...)) }
	say := func(format string, a ...any) { fmt.Fprintf(out, "   "+format+"\n", a...) }

	// 1. The appliance. Its clock is the real one, moved on by a TOTP step
	// (30 s) each time the demo needs a fresh code, so nothing waits.
	clk := &demoClock{base: env.Now(), start: time.Now()}
	cfg := appliance.DefaultConfig()
	cfg.DataDir = filepath.Join(work, "data")
	cfg.Production = false // the demo keeps evidence in a local directory, which is not WORM
	cfg.Vault.Backend = "local"
	cfg.Vault.LocalDir = filepath.Join(work, "evidence")
	step(1, "initialise a throw-away appliance in %s, with demo users", cfg.DataDir)
	res, err := appliance.Init(ctx, cfg, appliance.InitOptions{Admin: "demo-admin", Tenant: "demo", Now: clk.Now})
	if err != nil {
		return err
	}
	say("tenant %q; console certificate SHA-256 %s", res.Tenant, res.CertFingerprint)
	app, err := appliance.OpenWith(ctx, cfg, clk.Now, appliance.Options{LogOutput: io.Discard})
	if err != nil {
		return err
	}
	defer app.Close()
	users, err := demoUsers(ctx, app, res, clk)
	if err != nil {
		return err
	}
	say("demo accounts (throw-away; log in to the console with a password and a TOTP code from the secret):")
	for _, name := range []string{res.Admin, demoActor, demoApprover1, demoApprover2} {
		u := users[name]
		say("  %-16s %-15s password %s  TOTP secret %s", name, u.P.Role, u.Password, u.Secret)
	}
	lead := users[demoActor]

	// 2. The compiled-in safety profile.
	prof, err := safety.Load()
	if err != nil {
		return err
	}
	step(2, "the compiled-in safety profile (signed; no flag, env or config raises it)")
	say("%s v%d sha256 %s", prof.ID, prof.Version, prof.SHA256()[:16])
	say("caps: %d pps global, %d pps per host, %d targets per scan; kinds: %v", prof.GlobalPPS, prof.PerHostPPS, prof.MaxTargets, prof.ProbeKinds)

	// 3. The scope a security lead signs for the targets.
	step(3, "the security lead registers a signing key and signs a production scope")
	for _, h := range plan.Hosts {
		say("target %-9s %-13s %s", h.Zone, h.Addr, strings.Join(h.Services, ", "))
	}
	pub, priv, err := keys.Generate(nil)
	if err != nil {
		return err
	}
	if err := keys.WritePair(filepath.Join(work, "lead"), pub, priv); err != nil {
		return err
	}
	pubText, err := keys.MarshalPublic(pub)
	if err != nil {
		return err
	}
	// The lead registers the public key (with a step-up); the private key
	// stays in the lead's hands.
	if _, err := app.ScopeKeys.Add(ctx, lead.P, "", "demo lead key", pubText, clk.code(lead.Secret)); err != nil {
		return err
	}
	now := clk.Now().UTC()
	doc := scope.Document{
		ID: "demo-" + plan.Mode, Tenant: res.Tenant, Name: "demo " + plan.Mode + " services", Environment: scope.EnvProduction,
		CIDRs: plan.CIDRs, Exclude: []string{}, Ports: plan.Ports, Probes: plan.Probes,
		NotBefore: now.Add(-time.Hour).Truncate(time.Second), NotAfter: now.Add(24 * time.Hour).Truncate(time.Second),
		MaxPPS: plan.MaxPPS, SignerKeyID: keys.ID(pub),
	}
	signed, err := scope.Sign(doc, priv)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(work, "scope.signed.json"), signed, 0o644); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	sc, err := scope.Verify(signed, pub, clk.Now(), prof)
	if err != nil {
		return err
	}
	if _, err := app.Scopes.Register(ctx, lead.P, "", signed); err != nil {
		return err
	}
	say("signed by key %s, registered for tenant %q: %s, ports %q, probes %v, max %d pps, %s",
		doc.SignerKeyID, res.Tenant, strings.Join(doc.CIDRs, ","), doc.Ports, doc.Probes, doc.MaxPPS, doc.Environment)

	// 4. What the scope and the profile refuse, before any packet.
	step(4, "what is refused before a single packet leaves")
	for _, t := range plan.NotInScope {
		say("target %-12s -> in scope: %v (never probed)", t, sc.Contains(netip.MustParseAddr(t)))
	}
	_, err = app.Scans.Request(ctx, lead.P, "", scan.ScanRequest{ScopeID: doc.ID, Rate: prof.GlobalPPS * 10}, "")
	say("a scan at %d pps -> %v", prof.GlobalPPS*10, oneLine(fmt.Sprint(err)))

	// 5. The scan, through the scan service: a production scope needs two
	// approvers (each with a fresh TOTP code) and the requester's step-up
	// to start; the service issues a signed job that the local runner
	// verifies before its first packet.
	step(5, "a production scan through the scan service: requested, dual-approved, started")
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = app.Scans.Run(runCtx) }()
	stopRunner := func() { stop(); <-done }
	defer stopRunner()
	req, err := app.Scans.Request(ctx, lead.P, "", scan.ScanRequest{ScopeID: doc.ID}, "")
	if err != nil {
		return err
	}
	say("%s requests scan %s: %s (approval %s)", demoActor, req.ID, req.State, req.ApprovalID)
	for _, name := range []string{demoApprover1, demoApprover2} {
		u := users[name]
		if req, err = app.Scans.Approve(ctx, u.P, "", req.ID, clk.code(u.Secret)); err != nil {
			return fmt.Errorf("demo: %s approves: %w", name, err)
		}
		say("%s approves with a fresh TOTP code -> %s", name, req.State)
	}
	if req, err = app.Scans.Start(ctx, lead.P, "", req.ID, clk.code(lead.Secret)); err != nil {
		return err
	}
	say("%s starts it with a step-up code -> %s; probing at the scope's %d pps (every packet checked against the scope)", demoActor, req.State, doc.MaxPPS)
	final, err := demoWait(ctx, app, lead.P, req.ID)
	if err != nil {
		return err
	}
	if final.State != scan.StateCompleted {
		return fmt.Errorf("demo scan %s: %s (%s)", req.ID, final.State, final.Reason)
	}
	say("scan %s: job %s, %d results", final.ID, final.Job.ID, final.Job.Results)
	page, err := app.Scans.Results(ctx, lead.P, "", req.ID, scan.ResultFilter{Limit: scan.MaxPageSize})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(work, "scan"), 0o700); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	var lines bytes.Buffer
	var results []probe.Result
	say("%-13s %-5s %-6s %-12s %-13s %-17s %s", "target", "proto", "port", "probe", "state", "reason", "read")
	for _, r := range page.Items {
		say("%-13s %-5s %-6d %-12s %-13s %-17s %s", termSafe(r.Target), r.Proto, r.Port, r.Probe, r.State, termSafe(demoReason(r)), termSafe(demoDetail(r.Detail)))
		b, _ := json.Marshal(r)
		lines.Write(append(b, '\n'))
		pr, err := report.ProbeResult(r)
		if err != nil {
			return err
		}
		results = append(results, pr)
	}
	if err := os.WriteFile(filepath.Join(work, "scan", "results.jsonl"), lines.Bytes(), 0o644); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	stopRunner()

	// 6. Evidence.
	step(6, "the scan service kept the results, the packet capture (with raw sockets) and the manifest as evidence")
	if err := app.Evidence.Vault().Flush(ctx); err != nil {
		return err
	}
	objs, err := app.Evidence.List(ctx, lead.P, "", "")
	if err != nil {
		return err
	}
	for _, o := range objs {
		say("%s sha256 %s", o.Key, o.SHA256[:16])
	}
	say("backend: local directory, NOT WORM (production mode refuses it; use MinIO with object lock)")

	// 7. The policy and the signed report.
	step(7, "evaluate the expected policy %q and sign the compliance report", plan.PolicyName)
	pol, err := app.Policies.Create(ctx, lead.P, "", []byte(plan.Policy))
	if err != nil {
		return err
	}
	say("policy %s v%d (sha256 %s), vantage point %s", pol.Name, pol.Version, pol.SHA256[:16], pol.VantagePoint)
	created, err := app.Reports.Create(ctx, lead.P, "", report.CreateRequest{ScanID: req.ID, Policy: pol.Name})
	if err != nil {
		return err
	}
	rdir := filepath.Join(work, "report")
	files, err := demoReportFiles(ctx, app, lead.P, created, rdir, objs, cfg.Vault.LocalDir)
	if err != nil {
		return err
	}
	var xmlBuf bytes.Buffer
	start, _ := time.Parse(time.RFC3339Nano, final.Job.StartedAt)
	end, _ := time.Parse(time.RFC3339Nano, final.Job.FinishedAt)
	if err := interop.WriteNmapXML(&xmlBuf, interop.ScanInfo{ScanID: req.ID, Args: "firewalliq demo: scope " + doc.ID + ", ports " + doc.Ports,
		Version: buildinfo.Get().Version, Start: start, End: end}, results); err != nil {
		return err
	}
	if err := os.WriteFile(files.nmap, xmlBuf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	// Verify as an auditor would: the files and the public keys only.
	rk, err := keys.ReadPublic(files.reportPub)
	if err != nil {
		return err
	}
	ak, err := keys.ReadPublic(files.auditPub)
	if err != nil {
		return err
	}
	vr, err := verify.Verify(created.Signed, verify.Options{ReportKey: rk, AuditKey: ak, EvidenceDir: files.evidence})
	if err != nil {
		return fmt.Errorf("demo: the report does not verify: %w", err)
	}
	rep := vr.Report
	say("report %s signed by report key %s; verified offline: signature, audit checkpoint (tree size %d), %d inclusion proofs, %d evidence files",
		rep.ID, vr.KeyID, vr.Checkpoint.Size, vr.Proofs, vr.EvidenceFiles)
	say("rules: %s; findings: %s", counts(rep.Summary.Rules), counts(rep.Summary.Findings))
	for _, fd := range rep.Findings {
		say("  %-12s %-8s %s", fd.Kind, fd.Severity, termSafe(fd.Title))
	}
	say("the deliberate mistakes:")
	for _, m := range plan.Mistakes {
		found := false
		for _, fd := range rep.Findings {
			if fd.Kind == m.Kind && fd.Target == m.Target && fd.Proto == m.Proto && fd.Port == int(m.Port) {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("demo: the report lacks the %s finding for %s/%d on %s (%s)", m.Kind, m.Proto, m.Port, m.Target, m.What)
		}
		say("  found: %-12s %s/%d on %s: %s", m.Kind, m.Proto, m.Port, m.Target, m.What)
	}
	say("files: %s, %s, %s; Nmap XML %s", files.json, files.html, files.pdf, files.nmap)

	// 8. The audit log.
	step(8, "the tamper-evident audit log recorded every step")
	cp, _, err := app.Checkpoint(ctx)
	if err != nil {
		return err
	}
	auditPub, err := app.Keys.Public(keyring.Audit)
	if err != nil {
		return err
	}
	db, err := appliance.OpenReadOnly(ctx, filepath.Join(cfg.DataDir, appliance.DatabaseFile))
	if err != nil {
		return err
	}
	defer db.Close()
	arep, err := audit.Verify(ctx, db, audit.VerifyOptions{Public: auditPub})
	if err != nil {
		return err
	}
	entries, err := audit.ReadEntries(ctx, db, 1, arep.Size)
	if err != nil {
		return err
	}
	for _, e := range entries {
		say("%3d %-20s %-16s %s", e.Seq, termSafe(string(e.Action)), termSafe(e.ActorName), termSafe(e.Object))
	}
	say("verify: intact=%v, %d entries, %d signed checkpoints; latest checkpoint:", arep.Intact, arep.Entries, arep.Checkpoints)
	for _, l := range strings.Split(strings.TrimSpace(cp.Note), "\n") {
		say("  | %s", l)
	}
	if kept {
		fmt.Fprintf(out, "\n== report verified. Verify it yourself, offline, with the public keys only:\n")
		fmt.Fprintf(out, "   firewalliq report verify %s --pub %s --audit-pub %s --evidence %s\n", files.json, files.reportPub, files.auditPub, files.evidence)
	} else {
		fmt.Fprintf(out, "\n== report verified. Run with --keep DIR to keep the report, its public keys, the evidence and the Nmap XML, and verify them yourself.\n")
	}

	// 9. The console.
	if ln == nil {
		if kept {
			fmt.Fprintf(out, "== done. Everything is in %s (data/, report/, scan/, evidence/)\n", work)
		} else {
			fmt.Fprintln(out, "== done. The throw-away appliance is removed.")
		}
		return nil
	}
	step(9, "the console, until Ctrl-C (log in as one of the demo accounts above)")
	if err := serveConsole(ctx, env, app, ln); err != nil {
		return err
	}
	fmt.Fprintln(out, "== console stopped")
	return nil
}

// demoUsers finishes the first admin's first login, has the admin create
// the security lead and the two approvers (each with a step-up code), and
// finishes each one's first login (TOTP enrolment, password change): the
// same doors a person uses.
func demoUsers(ctx context.Context, app *appliance.Appliance, res appliance.InitResult, clk *demoClock) (map[string]demoUser, error) {
	c := auth.Client{IP: "127.0.0.1", UserAgent: "firewalliq-demo"}
	first := func(name, oneTime string) (demoUser, error) {
		l, err := app.Auth.Login(ctx, name, oneTime, c, "")
		if err != nil {
			return demoUser{}, fmt.Errorf("demo login %s: %w", name, err)
		}
		en, err := app.Auth.BeginEnrolment(ctx, l.Token, c)
		if err != nil {
			return demoUser{}, fmt.Errorf("demo enrol %s: %w", name, err)
		}
		full, _, err := app.Auth.ConfirmEnrolment(ctx, l.Token, clk.code(en.Secret), c)
		if err != nil {
			return demoUser{}, fmt.Errorf("demo enrol %s: %w", name, err)
		}
		p, err := app.Auth.Authenticate(ctx, auth.Request{SessionToken: full.Token, Method: "GET", Client: c})
		if err != nil {
			return demoUser{}, err
		}
		pw, err := auth.RandomPassword()
		if err != nil {
			return demoUser{}, err
		}
		if full, err = app.Auth.ChangePassword(ctx, p, oneTime, pw); err != nil {
			return demoUser{}, fmt.Errorf("demo password %s: %w", name, err)
		}
		p, err = app.Auth.Authenticate(ctx, auth.Request{SessionToken: full.Token, Method: "GET", Client: c})
		return demoUser{P: p, Password: pw, Secret: en.Secret}, err
	}
	admin, err := first(res.Admin, res.OneTimePassword)
	if err != nil {
		return nil, err
	}
	users := map[string]demoUser{res.Admin: admin}
	for _, nu := range []auth.NewUser{{Name: demoActor, Role: "security_lead"}, {Name: demoApprover1, Role: "approver"}, {Name: demoApprover2, Role: "approver"}} {
		_, oneTime, err := app.Auth.CreateUser(ctx, admin.P, res.TenantID, nu, clk.code(admin.Secret))
		if err != nil {
			return nil, fmt.Errorf("demo create %s: %w", nu.Name, err)
		}
		if users[nu.Name], err = first(nu.Name, oneTime); err != nil {
			return nil, err
		}
	}
	return users, nil
}

// demoFiles are where the demo puts what an auditor needs.
type demoFiles struct {
	json, html, pdf, nmap string
	reportPub, auditPub   string
	evidence              string
}

// demoReportFiles writes the signed report and its renderings, the
// public keys that verify it, and the evidence files it names (under
// their report names) into dir.
func demoReportFiles(ctx context.Context, app *appliance.Appliance, p auth.Principal, c report.Created, dir string, objs []evidence.Object, localDir string) (demoFiles, error) {
	f := demoFiles{
		json: filepath.Join(dir, "report.json"), html: filepath.Join(dir, "report.html"), pdf: filepath.Join(dir, "report.pdf"),
		nmap: filepath.Join(dir, "scan.nmap.xml"), reportPub: filepath.Join(dir, "report.pub"), auditPub: filepath.Join(dir, "audit.pub"),
		evidence: filepath.Join(dir, "evidence"),
	}
	if err := os.MkdirAll(f.evidence, 0o700); err != nil {
		return f, fmt.Errorf("demo: %w", err)
	}
	if err := os.WriteFile(f.json, c.Signed, 0o644); err != nil {
		return f, fmt.Errorf("demo: %w", err)
	}
	for _, r := range []struct{ format, path string }{{"html", f.html}, {"pdf", f.pdf}} {
		b, _, err := app.Reports.Download(ctx, p, "", c.ID, r.format)
		if err != nil {
			return f, err
		}
		if err := os.WriteFile(r.path, b, 0o644); err != nil {
			return f, fmt.Errorf("demo: %w", err)
		}
	}
	pubs := map[string]ed25519.PublicKey{}
	for _, k := range []struct{ purpose, path string }{{keyring.Report, f.reportPub}, {keyring.Audit, f.auditPub}} {
		pub, err := app.Keys.Public(k.purpose)
		if err != nil {
			return f, err
		}
		pubs[k.purpose] = pub
		b, err := keys.MarshalPublic(pub)
		if err != nil {
			return f, err
		}
		if err := os.WriteFile(k.path, b, 0o644); err != nil {
			return f, fmt.Errorf("demo: %w", err)
		}
	}
	// The evidence files, copied out of the demo's local vault (a
	// directory: <key>.v/<version>) under the names the report uses.
	named, err := verify.Verify(c.Signed, verify.Options{ReportKey: pubs[keyring.Report], AuditKey: pubs[keyring.Audit]})
	if err != nil {
		return f, fmt.Errorf("demo: the report does not verify: %w", err)
	}
	version := map[string]string{}
	for _, o := range objs {
		version[o.Key] = o.VersionID
	}
	for _, e := range named.Report.Evidence {
		v, ok := version[e.Name]
		if !ok {
			continue // the verifier names what is missing
		}
		b, err := os.ReadFile(filepath.Join(localDir, filepath.FromSlash(e.Name)+".v", v))
		if err != nil {
			return f, fmt.Errorf("demo: evidence %s: %w", e.Name, err)
		}
		dst := filepath.Join(f.evidence, filepath.FromSlash(e.Name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return f, fmt.Errorf("demo: %w", err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return f, fmt.Errorf("demo: %w", err)
		}
	}
	return f, nil
}

// demoReason is a result's reason, with the ICMP type and code of an
// unreachable (a REJECT says which).
func demoReason(r scan.Result) string {
	if r.ICMPType != nil && r.ICMPCode != nil {
		return fmt.Sprintf("%s %d/%d", r.Reason, *r.ICMPType, *r.ICMPCode)
	}
	return r.Reason
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
