// Package appliance is the composition root: it turns a Config into a running
// appliance by opening the store and key material and wiring the services
// below it. Only main and appliance/cli import it.
package appliance

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pquerna/otp/totp"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/evidence"
	"firewalliq/appliance/keyring"
	"firewalliq/appliance/siem"
	"firewalliq/appliance/store"
	"firewalliq/audit"
	"firewalliq/vault"
)

// DatabaseFile is the SQLite file's name inside the data directory.
const DatabaseFile = "firewalliq.db"

// Errors returned by Init and Open.
var (
	// ErrAlreadyInitialized means the data directory already holds an appliance.
	ErrAlreadyInitialized = errors.New("data directory is already initialised")
	// ErrNotInitialized means the data directory holds no appliance yet.
	ErrNotInitialized = errors.New("data directory is not initialised; run 'firewalliq init'")
)

// Appliance is an opened data directory with its services.
type Appliance struct {
	Config Config
	Store  *store.Store
	Keys   *keyring.Keyring
	Now    func() time.Time
	// Audit appends to the tamper-evident audit log (see package audit).
	Audit *audit.Log
	// AuditStartup is what Open's incremental audit verification found.
	// While AuditStartup.Alarm is set (audit.CheckNoAlarm fails), scans and
	// evidence exports must refuse to run.
	AuditStartup audit.StartupResult
	// Auth is the identity and access service (users, TOTP, sessions,
	// step-up, dual approval).
	Auth *auth.Service
	// SIEM is the durable outbox that forwards audit events to the
	// customer's SIEM destinations; serve runs its worker.
	SIEM *siem.Outbox
	// Evidence is the evidence vault; nil when no vault backend is
	// configured (vault.backend empty), in which case nothing that needs
	// evidence may run.
	Evidence *evidence.Service
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
	if now == nil {
		now = time.Now
	}
	dbPath := filepath.Join(cfg.DataDir, DatabaseFile)
	if _, err := os.Stat(dbPath); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open %s: %w", cfg.DataDir, ErrNotInitialized)
	}
	kr, err := keyring.Load(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", cfg.DataDir, err)
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
	a := &Appliance{Config: cfg, Store: st, Keys: kr, Now: now, Audit: lg, AuditStartup: res}
	if err := a.wireServices(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("open %s: %w", cfg.DataDir, err)
	}
	return a, nil
}

// wireServices builds the services above the store and the audit log.
func (a *Appliance) wireServices(ctx context.Context) error {
	svc, err := auth.NewService(auth.Deps{Store: a.Store, Log: a.Audit, Keys: a.Keys, Now: a.Now})
	if err != nil {
		return err
	}
	a.Auth = svc
	auditPub, err := a.Keys.Public(keyring.Audit)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	a.SIEM = siem.New(a.Store.DB(), siem.Options{ApplianceID: siem.ApplianceID(auditPub), Hostname: host, Now: a.Now, Sealer: a.Keys})
	if a.Config.Vault.Backend == "" {
		return nil
	}
	ev, err := evidence.Open(ctx, evidence.Options{
		DB:         a.Store.DB(),
		Audit:      a.Audit,
		Config:     a.Config.Vault,
		DataDir:    a.Config.DataDir,
		Production: a.Config.Production,
		Gate:       a.Auth,
		Ledger:     evidence.AuditLedger{DB: a.Store.DB(), Log: a.Audit},
		Append: func(ctx context.Context, tx *sql.Tx, e audit.Entry) (audit.Entry, error) {
			return a.SIEM.Append(ctx, tx, a.Audit, e)
		},
		OnAlert: a.spoolAlert,
		OnError: func(err error) { fmt.Fprintf(os.Stderr, "firewalliq: evidence: %v\n", err) },
		Now:     a.Now,
	})
	if err != nil {
		return err
	}
	a.Evidence = ev
	return nil
}

// spoolAlert records that the evidence spool neared or hit its bound as an
// audit entry, which the SIEM outbox forwards: an operator must hear of it
// before evidence is turned away. The spool calls it outside any
// transaction.
func (a *Appliance) spoolAlert(st vault.SpoolStatus) {
	det, _ := json.Marshal(map[string]any{"pending": st.Pending, "bytes": st.Bytes, "max_bytes": st.MaxBytes, "full": st.Full, "oldest_age": st.Age.String()})
	err := a.Store.InTx(context.Background(), func(tx *sql.Tx) error {
		_, err := a.SIEM.Append(context.Background(), tx, a.Audit, audit.Entry{ActorName: "vault", Action: audit.ActEvidenceSpool, Object: "spool", Details: det})
		return err
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "firewalliq: evidence spool alert not recorded: %v\n", err)
	}
}

// Run runs the appliance's background loops until ctx ends: audit
// checkpoints, the identity service's timed work (support-session expiry,
// anomaly windows), SIEM delivery and evidence uploads. Errors go to onErr;
// each loop retries on its own schedule.
func (a *Appliance) Run(ctx context.Context, onErr func(error)) {
	var wg sync.WaitGroup
	run := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	run(func() { a.RunAuditCheckpoints(ctx, onErr) })
	run(func() { a.RunAuditGuards(ctx, onErr) })
	run(func() { a.Auth.Run(ctx, 30*time.Second, onErr) })
	run(func() {
		w := a.SIEM.NewWorker(siem.WorkerOptions{Record: a.SIEM.Recorder(a.Audit), Logf: func(f string, args ...any) { onErr(fmt.Errorf("siem: "+f, args...)) }})
		if err := w.Run(ctx); err != nil && ctx.Err() == nil {
			onErr(fmt.Errorf("siem worker: %w", err))
		}
	})
	if a.Evidence != nil {
		run(func() {
			if err := a.Evidence.Run(ctx); err != nil && ctx.Err() == nil {
				onErr(fmt.Errorf("evidence: %w", err))
			}
		})
	}
	wg.Wait()
}

// RunAuditCheckpoints signs an audit checkpoint every
// audit.checkpoint_interval while entries were added, until ctx ends; serve
// runs it in a goroutine. Failures go to onErr and are retried next tick.
func (a *Appliance) RunAuditCheckpoints(ctx context.Context, onErr func(error)) {
	a.Audit.RunCheckpoints(ctx, a.Store.DB(), a.Config.Audit.CheckpointInterval, onErr)
}

// Close releases the appliance's resources.
func (a *Appliance) Close() error { return a.Store.Close() }

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
	if err := os.Rename(tmp, dir); err != nil {
		return InitResult{}, fmt.Errorf("init %s: %w (%v)", dir, ErrAlreadyInitialized, err)
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
	// The audit entries go in the same transaction as what they record:
	// if an append fails, init fails (fail-closed).
	sys := audit.Entry{ActorID: "system", ActorName: "init"}
	err = st.InTx(ctx, func(tx *sql.Tx) error {
		e := sys
		e.Action, e.Object = audit.ActApplianceInit, "appliance"
		if _, err := lg.Append(ctx, tx, e); err != nil {
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
		if _, err := lg.Append(ctx, tx, e); err != nil {
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
		if _, err = lg.Append(ctx, tx, e); err != nil {
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
