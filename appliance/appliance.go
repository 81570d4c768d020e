// Package appliance is the composition root: it turns a Config into a running
// appliance by opening the store and key material and wiring the services
// below it. Only main and appliance/cli import it.
package appliance

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/pquerna/otp/totp"

	"firewalliq/appliance/auditlog"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/buildinfo"
	"firewalliq/appliance/evidence"
	"firewalliq/appliance/journal"
	"firewalliq/appliance/keyring"
	"firewalliq/appliance/policy"
	"firewalliq/appliance/report"
	"firewalliq/appliance/report/review"
	"firewalliq/appliance/report/verify"
	"firewalliq/appliance/scan"
	"firewalliq/appliance/sensor"
	"firewalliq/appliance/siem"
	"firewalliq/appliance/siem/destinations"
	"firewalliq/appliance/store"
	"firewalliq/audit"
	"firewalliq/probe"
	"firewalliq/probe/job"
	"firewalliq/probe/keys"
	"firewalliq/probe/runner"
	"firewalliq/probe/safety"
	"firewalliq/vault"
)

// DatabaseFile is the SQLite file's name inside the data directory.
const DatabaseFile = "firewalliq.db"

// CapturesDir is the directory, inside the data directory, where a running
// scan's packet capture waits until the scan completes and goes to the
// evidence vault.
const CapturesDir = "captures"

// Errors returned by Init and Open.
var (
	// ErrAlreadyInitialized means the data directory already holds an appliance.
	ErrAlreadyInitialized = errors.New("data directory is already initialised")
	// ErrNotInitialized means the data directory holds no appliance yet.
	ErrNotInitialized = errors.New("data directory is not initialised; run 'firewalliq init'")
)

// Appliance is an opened data directory with its services. Callers (the
// CLI, the HTTP API) reach the appliance's state only through the typed
// services below, each of which authorises a principal and audits its
// changes; the store, the audit log and transactions stay inside.
type Appliance struct {
	Config Config
	// Keys is the appliance's key material (the console certificate files
	// for serve; public keys for offline verification).
	Keys *keyring.Keyring
	Now  func() time.Time
	// Logger is the structured log, at Config.LogLevel, on standard error
	// unless Options.LogOutput says otherwise.
	Logger *slog.Logger
	// AuditStartup is what Open's incremental audit verification found.
	// While AuditStartup.Alarm is set (audit.CheckNoAlarm fails), scans and
	// evidence exports must refuse to run.
	AuditStartup audit.StartupResult
	// Auth is the identity and access service (users, TOTP, sessions,
	// step-up, dual approval, tenants, tokens, support tickets).
	Auth *auth.Service
	// SIEM manages the SIEM destinations (add, remove, list, test,
	// status); serve runs the outbox's delivery worker.
	SIEM *destinations.Service
	// Audit reads the audit log (entries, checkpoint, tamper alarm),
	// acknowledges the tamper alarm, and lists and acknowledges anomaly
	// alerts.
	Audit *auditlog.Service
	// ScopeKeys is the registry of the security leads' scope-signing
	// keys; Scopes the scope registry (a scope is trusted only through an
	// active key of a security lead of its tenant); Scans the scan
	// service (requests, approvals, signed jobs, dispatch, results,
	// progress, recovery; appliance.Run runs its dispatcher).
	ScopeKeys *scan.Keys
	Scopes    *scan.Scopes
	Scans     *scan.Scans
	// Evidence is the evidence vault; nil when no vault backend is
	// configured (vault.backend empty), in which case nothing that needs
	// evidence may run.
	Evidence *evidence.Service
	// Reviews runs access reviews (start, decide, sign with step-up,
	// download) and their cadence (Due, Schedule for /readyz, overdue
	// alerts from Run).
	Reviews *review.Service
	// Sensors is the fleet: enrolment tokens, enrolment, listing and
	// revocation of remote sensors, and the remote runner; Run serves
	// the embedded NATS server when sensors.listen is set.
	Sensors *sensor.Service
	// Policies stores versioned expected policies and baselines and
	// evaluates scans against them (findings go to the SIEM outbox).
	Policies *policy.Service
	// Reports creates signed compliance reports from completed scans and
	// lists, shows and downloads them; nil without an evidence vault (a
	// report is evidence).
	Reports *report.Reports

	st      *store.Store
	log     *audit.Log
	journal *journal.Journal
	outbox  *siem.Outbox
}

// Options are Open's optional settings.
type Options struct {
	// LogOutput receives the structured log; os.Stderr when nil.
	LogOutput io.Writer
}

// NewLogger returns a text slog.Logger at level (debug, info, warn, error;
// info when empty or unknown: Config.Validate refuses unknown levels).
func NewLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	switch level {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// newAuditLog builds the audit log with the appliance's audit key.
func newAuditLog(kr *keyring.Keyring, dataDir string, every int64, now func() time.Time) (*audit.Log, error) {
	key, err := kr.Signer(keyring.Audit)
	if err != nil {
		return nil, err
	}
	return audit.New(audit.Options{Now: now, Signer: key, CheckpointEvery: every, StatePath: AuditStatePath(dataDir)}), nil
}

// Open opens an initialised data directory.
func Open(ctx context.Context, cfg Config, now func() time.Time) (*Appliance, error) {
	return OpenWith(ctx, cfg, now, Options{})
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, cfg Config, now func() time.Time, opts Options) (*Appliance, error) {
	if now == nil {
		now = time.Now
	}
	if opts.LogOutput == nil {
		opts.LogOutput = os.Stderr
	}
	dbPath := filepath.Join(cfg.DataDir, DatabaseFile)
	if _, err := os.Stat(dbPath); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open %s: %w", cfg.DataDir, ErrNotInitialized)
	}
	kr, err := keyring.Load(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", cfg.DataDir, err)
	}
	// A configured certificate (tls.cert_file, tls.key_file) replaces
	// init's everywhere the console certificate is used: the HTTPS
	// listener, the fleet's TLS and its pinned fingerprint, the WebAuthn
	// defaults. A bad one stops the appliance here, naming the key.
	if cfg.TLS.CertFile != "" {
		if _, err := cfg.TLS.Load(now()); err != nil {
			return nil, err
		}
		kr.CertFile, kr.KeyFile = cfg.TLS.CertFile, cfg.TLS.KeyFile
	}
	st, err := store.Open(ctx, dbPath, store.Options{Now: now})
	if err != nil {
		return nil, err
	}
	lg, err := newAuditLog(kr, cfg.DataDir, int64(cfg.Audit.CheckpointEvery), now)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("open %s: %w", cfg.DataDir, err)
	}
	// Verify the audit log from the last verified checkpoint to the head.
	// A broken log does not stop the appliance (the console must show the
	// alarm); Startup raises the alarm, and CheckNoAlarm refuses scans and
	// exports until an admin acknowledges it.
	res, err := lg.Startup(ctx, st.DB())
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("open %s: %w", cfg.DataDir, err)
	}
	a := &Appliance{Config: cfg, st: st, Keys: kr, Now: now, log: lg, AuditStartup: res, Logger: NewLogger(opts.LogOutput, cfg.LogLevel)}
	if err := a.wireServices(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("open %s: %w", cfg.DataDir, err)
	}
	return a, nil
}

// wireServices builds the services above the store and the audit log.
func (a *Appliance) wireServices(ctx context.Context) error {
	auditPub, err := a.Keys.Public(keyring.Audit)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	a.outbox = siem.New(a.st.DB(), siem.Options{ApplianceID: siem.ApplianceID(auditPub), Hostname: host, Now: a.Now, Sealer: a.Keys})
	if a.journal, err = journal.New(a.st.DB(), a.log, a.outbox); err != nil {
		return err
	}
	if a.Auth, err = auth.NewService(auth.Deps{Store: a.st, Journal: a.journal, Keys: a.Keys, Now: a.Now, WebAuthn: keyConfig(a.Config, a.consoleCert)}); err != nil {
		return err
	}
	if a.SIEM, err = destinations.NewService(destinations.ServiceDeps{Outbox: a.outbox, DB: a.st.DB(), Gate: a.Auth, Journal: a.journal}); err != nil {
		return err
	}
	if a.Audit, err = auditlog.New(auditlog.Deps{DB: a.st.DB(), Gate: a.Auth, Journal: a.journal, Now: a.Now,
		Public: auditPub, StatePath: AuditStatePath(a.Config.DataDir)}); err != nil {
		return err
	}
	prof, err := safety.Load()
	if err != nil {
		return err
	}
	sd := scan.Deps{Store: a.st, Auth: a.Auth, Journal: a.journal, Now: a.Now, Profile: prof, Seal: a.Keys}
	if a.ScopeKeys, err = scan.NewKeys(sd); err != nil {
		return err
	}
	if a.Scopes, err = scan.NewScopes(sd); err != nil {
		return err
	}
	if a.Config.Vault.Backend != "" {
		ev, err := evidence.Open(ctx, evidence.Options{
			DB:         a.st.DB(),
			Audit:      a.log,
			Config:     a.Config.Vault,
			DataDir:    a.Config.DataDir,
			Production: a.Config.Production,
			Gate:       a.Auth,
			Ledger:     evidence.AuditLedger{DB: a.st.DB(), Log: a.log},
			Append:     a.journal.Record,
			OnAlert:    a.spoolAlert,
			OnError:    func(err error) { a.Logger.Error("evidence", "err", err) },
			Now:        a.Now,
		})
		if err != nil {
			return err
		}
		a.Evidence = ev
	}
	if err := a.wireReviews(auditPub); err != nil {
		return err
	}
	jobKey, err := a.Keys.Signer(keyring.Job)
	if err != nil {
		return err
	}
	fp, err := keyring.CertFingerprint(a.Keys.CertFile)
	if err != nil {
		return err
	}
	if a.Sensors, err = sensor.New(sensor.Deps{Store: a.st, Gate: a.Auth, Journal: a.journal, JobKey: jobKey,
		Certificate: a.Keys.TLSCertificate, CertSHA256: fp, ScopeKeys: a.ScopeKeys.Trusted, DataDir: a.Config.DataDir,
		Config: a.Config.Sensors, Now: a.Now, Logger: a.Logger}); err != nil {
		return err
	}
	if err := a.wireScans(sd); err != nil {
		return err
	}
	if a.Policies, err = policy.NewService(policy.Deps{Store: a.st, Gate: a.Auth, Journal: a.journal, Findings: a.outbox}); err != nil {
		return err
	}
	return a.wireReports(prof, auditPub)
}

// ReportsDir is the directory, inside the data directory, that holds the
// working copies of signed reports (the copies of record are evidence).
const ReportsDir = "reports"

// wireReports builds the compliance report service: signed with the
// report key, spooled as evidence; without a vault there is none.
func (a *Appliance) wireReports(prof safety.Profile, auditPub ed25519.PublicKey) error {
	if a.Evidence == nil {
		return nil
	}
	key, err := a.Keys.Signer(keyring.Report)
	if err != nil {
		return err
	}
	svc, err := report.NewService(report.ServiceDeps{Gate: a.Auth, Journal: a.journal, Spool: a.Evidence, Key: key})
	if err != nil {
		return err
	}
	a.Reports, err = report.NewReports(report.ScanDeps{Service: svc, Scans: a.Scans, Scopes: a.Scopes, Policies: a.Policies, DB: a.st.DB(),
		Checkpoint: a.Checkpoint, Profile: prof, Appliance: verify.Appliance{ID: siem.ApplianceID(auditPub), Version: buildinfo.Get().Version},
		AuditKeyID: keys.ID(auditPub), Dir: filepath.Join(a.Config.DataDir, ReportsDir), Now: a.Now})
	return err
}

// wireReviews builds the access-review service: signed with the report
// key, stored as evidence when a vault is configured.
func (a *Appliance) wireReviews(auditPub ed25519.PublicKey) error {
	key, err := a.Keys.Signer(keyring.Report)
	if err != nil {
		return err
	}
	d := review.Deps{Store: a.st, Gate: a.Auth, Journal: a.journal, Key: key, Now: a.Now, Interval: a.Config.Review.Interval,
		Signers:       a.ScopeKeys.Trusted,
		SignersSource: "active scope-signing keys of the tenant's security leads",
		Appliance:     verify.Appliance{ID: siem.ApplianceID(auditPub), Version: buildinfo.Get().Version}}
	if a.Evidence != nil {
		// Only a real vault: a nil *evidence.Service in the interface
		// would not compare equal to nil.
		d.Spool = a.Evidence
	}
	a.Reviews, err = review.New(d)
	return err
}

// wireScans builds the scan service: the one appliance-wide pacer every
// local run draws from, the local runner (verifying jobs against the job
// key and the tenant's trusted scope keys), and the evidence vault when
// one is configured.
func (a *Appliance) wireScans(sd scan.Deps) error {
	jobKey, err := a.Keys.Signer(keyring.Job)
	if err != nil {
		return err
	}
	// The engine and the pacer run on real time (they set socket
	// deadlines); validity windows are checked on the appliance's clock.
	shared, err := probe.NewSharedPacer(time.Now)
	if err != nil {
		return err
	}
	// Packet captures wait in <data_dir>/captures until the scan completes
	// and the scan service hands them to the vault (probes.pcapng).
	captures := filepath.Join(a.Config.DataDir, CapturesDir)
	captureFile := func(scanID string) string { return filepath.Join(captures, filepath.Base(scanID)+".pcapng") }
	capture := func(j job.Job) (io.WriteCloser, error) {
		if err := os.MkdirAll(captures, 0o700); err != nil {
			return nil, err
		}
		return os.OpenFile(captureFile(j.ScanID), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	}
	lr := runner.Local{JobKey: jobKey.Public().(ed25519.PublicKey), ScopeKeys: a.ScopeKeys.Trusted, Shared: shared, Now: time.Now, ValidityNow: a.Now}
	if a.Evidence != nil {
		lr.Capture = capture
	}
	local, err := runner.NewLocal(lr)
	if err != nil {
		return err
	}
	d := scan.ScansDeps{Deps: sd, Keys: a.ScopeKeys, Scopes: a.Scopes, JobKey: jobKey, Runner: local,
		OnError: func(err error) { a.Logger.Error("scan", "err", err) }}
	if a.Evidence != nil {
		d.CaptureFile = captureFile
	}
	if a.Evidence != nil {
		d.Evidence = a.Evidence
	}
	if a.Config.Sensors.Listen != "" {
		// A request naming a sensor runs there (docs/fleet.md). Events of
		// runs no stream of this process reads (dispatched before a
		// restart) are dropped: recovery dispatches the job again from its
		// last stored checkpoint, so they are probed again.
		d.Fleet = a.Sensors.Runner()
		a.Sensors.SetSink(sensor.SinkFunc(func(_ context.Context, batch []sensor.Delivery) error {
			a.Logger.Warn("sensor events of a run this console no longer reads; dropped (a scan still running resumes from its checkpoint; a cancelled one has ended)",
				"events", len(batch), "run", batch[0].Run, "sensor", batch[0].Sensor)
			return nil
		}))
	}
	a.Scans, err = scan.NewScans(d)
	return err
}

// spoolAlert records that the evidence spool neared or hit its bound as an
// audit entry, which the SIEM outbox forwards: an operator must hear of it
// before evidence is turned away. The spool calls it outside any
// transaction.
func (a *Appliance) spoolAlert(st vault.SpoolStatus) {
	det, _ := json.Marshal(map[string]any{"pending": st.Pending, "bytes": st.Bytes, "max_bytes": st.MaxBytes, "full": st.Full, "oldest_age": st.Age.String()})
	a.Logger.Warn("evidence spool near its bound", "pending", st.Pending, "bytes", st.Bytes, "max_bytes", st.MaxBytes, "full", st.Full)
	err := a.journal.RecordAlone(context.Background(), audit.Entry{ActorName: "vault", Action: audit.ActEvidenceSpool, Object: "spool", Details: det})
	if err != nil {
		a.Logger.Error("evidence spool alert not recorded", "err", err)
	}
}

// Ping checks that the store answers (for readiness probes).
func (a *Appliance) Ping(ctx context.Context) error { return a.st.DB().PingContext(ctx) }

// Checkpoint signs an audit checkpoint of the log's head now, unless the
// latest one already covers it (then it returns that one and false). It is
// the appliance's own housekeeping (serve does it every
// audit.checkpoint_interval), not a principal's action: it adds no entry.
func (a *Appliance) Checkpoint(ctx context.Context) (audit.Checkpoint, bool, error) {
	return a.journal.Checkpoint(ctx)
}

// Run runs the appliance's background loops until ctx ends: audit
// checkpoints, the identity service's timed work (support-session expiry,
// anomaly windows), SIEM delivery, evidence uploads, and the scan
// service (recovery, then the dispatcher). Errors go to onErr
// (the Logger when nil); each loop retries on its own schedule.
func (a *Appliance) Run(ctx context.Context, onErr func(error)) {
	if onErr == nil {
		onErr = func(err error) { a.Logger.Error("background", "err", err) }
	}
	var wg sync.WaitGroup
	run := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	run(func() { a.RunAuditCheckpoints(ctx, onErr) })
	run(func() { a.RunAuditGuards(ctx, onErr) })
	run(func() { a.Auth.Run(ctx, 30*time.Second, onErr) })
	run(func() { a.Reviews.Run(ctx, time.Hour, onErr) })
	run(func() {
		record := func(ctx context.Context, tx *sql.Tx, e audit.Entry) error {
			_, err := a.journal.Record(ctx, tx, e)
			return err
		}
		w := a.outbox.NewWorker(siem.WorkerOptions{Record: record, Logf: func(f string, args ...any) { onErr(fmt.Errorf("siem: "+f, args...)) }})
		if err := w.Run(ctx); err != nil && ctx.Err() == nil {
			onErr(fmt.Errorf("siem worker: %w", err))
		}
	})
	if a.Config.Sensors.Listen != "" {
		run(func() {
			if err := a.Sensors.Serve(ctx); err != nil && ctx.Err() == nil {
				onErr(fmt.Errorf("sensors: %w", err))
			}
		})
	}
	if a.Evidence != nil {
		run(func() {
			if err := a.Evidence.Run(ctx); err != nil && ctx.Err() == nil {
				onErr(fmt.Errorf("evidence: %w", err))
			}
		})
	}
	// The scan service first recovers what a stopped appliance left
	// (resume or fail each unfinished job, audited), then dispatches.
	run(func() {
		if err := a.Scans.Run(ctx); err != nil && ctx.Err() == nil {
			onErr(fmt.Errorf("scans: %w", err))
		}
	})
	wg.Wait()
}

// RunAuditCheckpoints signs an audit checkpoint every
// audit.checkpoint_interval while entries were added, until ctx ends; serve
// runs it in a goroutine. Failures go to onErr and are retried next tick.
func (a *Appliance) RunAuditCheckpoints(ctx context.Context, onErr func(error)) {
	a.log.RunCheckpoints(ctx, a.st.DB(), a.Config.Audit.CheckpointInterval, onErr)
}

// Close releases the appliance's resources.
func (a *Appliance) Close() error { return a.st.Close() }

// InitOptions say who the first admin is.
type InitOptions struct {
	// Admin is the first appliance admin's user name.
	Admin string
	// Tenant is the first tenant's name; "default" when empty.
	Tenant string
	// Hosts are extra DNS names for the console certificate.
	Hosts []string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// InitResult is what init prints once and never again.
type InitResult struct {
	DataDir         string `json:"data_dir"`
	Tenant          string `json:"tenant"`
	TenantID        string `json:"tenant_id"`
	Admin           string `json:"admin"`
	AdminID         string `json:"admin_id"`
	OneTimePassword string `json:"one_time_password"`
	TOTPSecret      string `json:"totp_secret"`
	TOTPURL         string `json:"totp_url"`
	CertFingerprint string `json:"console_cert_sha256"`
}

// Init creates a new data directory: database, key material, console
// certificate, the first tenant and the first admin. It builds everything in
// a temporary sibling directory and renames it into place, so a failure
// leaves nothing half-made, and it refuses a directory that already holds
// anything, so existing data is never touched.
func Init(ctx context.Context, cfg Config, opts InitOptions) (InitResult, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Tenant == "" {
		opts.Tenant = "default"
	}
	if opts.Admin == "" {
		return InitResult{}, fmt.Errorf("init: admin name is required")
	}
	if err := auth.ValidUserName(opts.Admin); err != nil {
		return InitResult{}, fmt.Errorf("init: %w", err)
	}
	if err := auth.ValidName("tenant", opts.Tenant); err != nil {
		return InitResult{}, fmt.Errorf("init: %w", err)
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return InitResult{}, fmt.Errorf("init: %w", err)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return InitResult{}, fmt.Errorf("init %s: %w", dir, ErrAlreadyInitialized)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return InitResult{}, fmt.Errorf("init %s: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return InitResult{}, fmt.Errorf("init: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".init-")
	if err != nil {
		return InitResult{}, fmt.Errorf("init: %w", err)
	}
	done := false
	defer func() {
		if !done {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o700); err != nil {
		return InitResult{}, fmt.Errorf("init: %w", err)
	}
	res, err := populate(ctx, tmp, opts)
	if err != nil {
		return InitResult{}, err
	}
	// rename(2) replaces an empty directory atomically and fails on a
	// non-empty one, so a directory filled meanwhile is still not touched.
	// syscall.Rename, because os.Rename refuses any existing directory, and
	// the packages create an empty one (docs/packaging.md).
	if err := syscall.Rename(tmp, dir); err != nil {
		return InitResult{}, fmt.Errorf("init %s: %w (%w)", dir, ErrAlreadyInitialized, err)
	}
	done = true
	res.DataDir = dir
	return res, nil
}

func populate(ctx context.Context, dir string, opts InitOptions) (InitResult, error) {
	now := opts.Now
	fp, err := keyring.Create(dir, now(), append([]string{"localhost"}, opts.Hosts...))
	if err != nil {
		return InitResult{}, fmt.Errorf("init keys: %w", err)
	}
	kr, err := keyring.Load(dir)
	if err != nil {
		return InitResult{}, err
	}
	st, err := store.Open(ctx, filepath.Join(dir, DatabaseFile), store.Options{Now: now})
	if err != nil {
		return InitResult{}, err
	}
	defer st.Close()

	password, err := auth.RandomPassword()
	if err != nil {
		return InitResult{}, err
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		return InitResult{}, err
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "FirewallIQ Secure", AccountName: opts.Admin})
	if err != nil {
		return InitResult{}, fmt.Errorf("init totp: %w", err)
	}
	res := InitResult{Tenant: opts.Tenant, Admin: opts.Admin, OneTimePassword: password, TOTPSecret: key.Secret(), TOTPURL: key.URL(), CertFingerprint: fp}
	lg, err := newAuditLog(kr, dir, 0, now)
	if err != nil {
		return InitResult{}, err
	}
	// No SIEM destination exists yet, so the journal needs no outbox.
	jr, err := journal.New(st.DB(), lg, nil)
	if err != nil {
		return InitResult{}, err
	}
	// The audit entries go in the same transaction as what they record:
	// if an append fails, init fails (fail-closed).
	sys := audit.Entry{ActorID: "system", ActorName: "init"}
	err = st.InTx(ctx, func(tx *sql.Tx) error {
		e := sys
		e.Action, e.Object = audit.ActApplianceInit, "appliance"
		if _, err := jr.Record(ctx, tx, e); err != nil {
			return err
		}
		tn, err := st.CreateTenant(ctx, tx, opts.Tenant)
		if err != nil {
			return err
		}
		res.TenantID = tn.ID
		e = sys
		e.Tenant, e.Action, e.Object = tn.ID, audit.ActTenantCreate, "tenant:"+tn.ID
		e.Details, _ = json.Marshal(map[string]string{"name": opts.Tenant})
		if _, err := jr.Record(ctx, tx, e); err != nil {
			return err
		}
		id := store.NewID("u")
		sealed, err := kr.Seal([]byte(key.Secret()), []byte("totp:"+id))
		if err != nil {
			return err
		}
		u, err := st.CreateAdmin(ctx, tx, store.User{ID: id, Name: opts.Admin, PasswordHash: hash, MustChangePassword: true, TOTPSealed: sealed})
		if err != nil {
			return err
		}
		res.AdminID = u.ID
		e = sys
		e.Action, e.Object = audit.ActUserCreate, "user:"+u.ID
		e.Details, _ = json.Marshal(map[string]string{"name": opts.Admin, "role": "admin"})
		if _, err = jr.Record(ctx, tx, e); err != nil {
			return err
		}
		// The first checkpoint commits with the first entries: a log with
		// entries and no checkpoint is one whose checkpoints were deleted.
		_, _, err = lg.Checkpoint(ctx, tx)
		return err
	})
	if err != nil {
		return InitResult{}, fmt.Errorf("init database: %w", err)
	}
	// Verify the new log and sign its first checkpoint, so even a fresh
	// appliance has a signed root that 'audit verify' can check.
	if _, err := lg.Startup(ctx, st.DB()); err != nil {
		return InitResult{}, fmt.Errorf("init audit: %w", err)
	}
	return res, nil
}

// OpenReadOnly opens the database file at path read-only, for the offline
// tools (audit verify, prove, checkpoint; the probe's alarm check) that
// must work on a copy of the file alone and must not change it.
func OpenReadOnly(ctx context.Context, path string) (*sql.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", store.DSN(path, true))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}
