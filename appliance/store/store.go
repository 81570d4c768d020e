// Package store is the appliance's SQLite database (modernc.org/sqlite, pure
// Go): connection settings, embedded forward-only migrations, and queries.
//
// Every query on tenant-owned rows goes through a Tenant handle (see
// Store.Tenant), which cannot be made without a tenant id and adds it to every
// statement. That is our stand-in for row-level security: no method of Tenant
// can name another tenant's rows.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"firewalliq/audit"
)

// Sentinel errors. Callers map them to exit codes or HTTP statuses.
var (
	// ErrNotFound means no row matched (within the caller's tenant).
	ErrNotFound = errors.New("not found")
	// ErrNoTenant means a tenant-owned query was attempted without a tenant.
	ErrNoTenant = errors.New("tenant required")
	// ErrConflict means a row with the same key already exists.
	ErrConflict = errors.New("already exists")
	// ErrSchemaTooNew means the database was migrated by a newer binary.
	ErrSchemaTooNew = errors.New("database schema is newer than this binary")
)

// Store is an open database.
type Store struct {
	db *sql.DB
	// reads runs the store's reads outside transactions through prepared
	// statements (see StmtCache).
	reads *StmtCache
	now   func() time.Time
}

// Options configure Open. The zero value is valid.
type Options struct {
	// Now is the clock for created_at columns; time.Now when nil.
	Now func() time.Time
	// ReadOnly opens the file without writing (no migrations), as
	// verification tools must.
	ReadOnly bool
}

// DSN builds the connection string for path. The pragmas are applied to every
// new connection, in this order:
//   - busy_timeout first, so that even the following pragmas wait for a lock
//     instead of failing with SQLITE_BUSY;
//   - journal_mode WAL: readers never block the writer;
//   - foreign_keys on: SQLite leaves them off by default;
//   - synchronous FULL: every commit is fsync'd, including the WAL, so an
//     audit entry that was reported written survives a power cut. NORMAL
//     would be faster in WAL mode but may lose the last commits.
//
// _txlock=immediate makes BEGIN take the write lock at once, so two writers
// queue on busy_timeout instead of deadlocking on a lock upgrade.
func DSN(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	if !readOnly {
		q.Add("_pragma", "journal_mode(WAL)")
	}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_txlock", "immediate")
	if readOnly {
		q.Set("mode", "ro")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// Open opens (creating if needed) the database at path and applies pending
// migrations.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	db, err := sql.Open("sqlite", DSN(path, opts.ReadOnly))
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	configurePool(db)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &Store{db: db, reads: NewStmtCache(db), now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	if opts.ReadOnly {
		v, err := s.SchemaVersion(ctx)
		if err == nil && v > LatestVersion() {
			err = fmt.Errorf("%w: version %d, this binary knows %d", ErrSchemaTooNew, v, LatestVersion())
		}
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("open store: %w", err)
		}
		return s, nil
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	return s, nil
}

// Connection pool sizes; see configurePool.
const (
	// maxIdleConns is how many SQLite connections stay open between
	// queries: about the concurrency the console and API reach under load
	// (wrk with 50 connections kept more than 32 in flight: a CPU profile
	// of the dashboard still showed new connections parsing the schema with
	// 32).
	maxIdleConns = 64
	// connMaxIdleTime closes connections a burst opened once they have
	// been unused this long, so an idle appliance does not keep 64 page
	// caches.
	connMaxIdleTime = 5 * time.Minute
)

// configurePool sizes db's connection pool on purpose.
//
// database/sql keeps only 2 idle connections by default. With more requests
// in flight than that, every query beyond the second opened a new SQLite
// connection (running the DSN pragmas) and then closed it, and the first
// statement on a new connection parses the whole schema: under 50
// concurrent requests that dominated the profile and the p99 latency.
// Keeping maxIdleConns warm removes it (the pool stays at the concurrency
// the load reaches) at the cost of one page cache per idle connection,
// bounded by SQLite's default cache_size of about 2 MB and usually far
// less, since reads touch few pages.
//
// The number of open connections is deliberately not capped
// (SetMaxOpenConns(0)): writers wait for the write lock inside BEGIN
// IMMEDIATE (busy_timeout) while holding a pool connection, and a
// transaction may read through the pool while holding its own. With a cap,
// a burst of waiting writers could take every connection and leave the
// lock holder waiting for one until busy_timeout fails them all. SQLite in
// WAL mode serves any number of concurrent readers, and Go schedules the
// pure-Go driver's work on GOMAXPROCS threads anyway, so more connections
// cost memory, not CPU.
//
// There is no separate reader pool: WAL readers never block the writer,
// and the writer is already serialised by SQLite's lock (_txlock=immediate),
// so a second *sql.DB would only split the warm connections in two.
func configurePool(db *sql.DB) {
	db.SetMaxOpenConns(0)
	db.SetMaxIdleConns(maxIdleConns)
	db.SetConnMaxIdleTime(connMaxIdleTime)
	db.SetConnMaxLifetime(0)
}

// DB exposes the handle for packages that own their own tables (audit).
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the cached statements and the database.
func (s *Store) Close() error { return errors.Join(s.reads.Close(), s.db.Close()) }

// Now returns the store's clock reading in UTC, formatted for a TEXT column.
func (s *Store) stamp() string { return s.now().UTC().Format(time.RFC3339Nano) }

// InTx runs fn in a write transaction on the store's database and commits
// if fn returns nil. Callers put the state change and its audit entry in
// the same fn, so both commit or neither does.
func (s *Store) InTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return InTx(ctx, s.db, fn)
}

// InTx runs fn in a write transaction on db and commits if fn returns nil;
// if fn fails (or panics), the transaction is rolled back. It is the
// appliance's one begin/commit helper: packages that hold only the
// *sql.DB (the SIEM outbox, the evidence service) use it too.
func InTx(ctx context.Context, db *sql.DB, fn func(tx *sql.Tx) error) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one forward-only schema step.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations lists every schema step in order: one per embedded file
// migrations/NNNN_name.sql, whose number is its version (PRAGMA
// user_version). Step 1 also creates the audit tables (audit.Schema), which
// the audit package owns because offline verification reads them from the
// file alone. Versions strictly increase; a step's SQL never changes once
// shipped.
func Migrations() []Migration {
	ents, err := migrationFiles.ReadDir("migrations")
	if err != nil {
		panic("store: embedded migrations missing: " + err.Error())
	}
	var ms []Migration
	for _, e := range ents { // ReadDir sorts by name, so by number
		v, name, ok := parseMigrationName(e.Name())
		if !ok {
			// The files are compiled in, so a misnamed one is a build
			// defect caught by every test that opens a store.
			panic("store: misnamed migration " + e.Name())
		}
		sql := mustRead("migrations/" + e.Name())
		if v == 1 {
			sql += "\n" + audit.Schema
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: sql})
	}
	return ms
}

// parseMigrationName splits "0002_auth.sql" into 2 and "auth".
func parseMigrationName(file string) (int, string, bool) {
	base, ok := strings.CutSuffix(file, ".sql")
	num, name, ok2 := strings.Cut(base, "_")
	if !ok || !ok2 || len(num) != 4 || name == "" {
		return 0, "", false
	}
	v, err := strconv.Atoi(num)
	if err != nil || v < 1 {
		return 0, "", false
	}
	return v, name, true
}

// LatestVersion is the schema version this binary migrates to.
func LatestVersion() int { m := Migrations(); return m[len(m)-1].Version }

// mustRead reads an embedded migration. The files are compiled in, so a
// missing one is a build defect caught by every test that opens a store.
func mustRead(name string) string {
	b, err := migrationFiles.ReadFile(name)
	if err != nil {
		panic("store: embedded migration missing: " + name)
	}
	return string(b)
}

// SchemaVersion returns the applied schema version (0 for a new file).
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return v, nil
}

func (s *Store) migrate(ctx context.Context) error {
	cur, err := s.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if cur > LatestVersion() {
		return fmt.Errorf("%w: version %d, this binary knows %d", ErrSchemaTooNew, cur, LatestVersion())
	}
	for _, m := range Migrations() {
		if m.Version <= cur {
			continue
		}
		err := s.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %d %s: %w", m.Version, m.Name, err)
			}
			// PRAGMA takes no parameters; Version is an int we own.
			if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", m.Version)); err != nil {
				return fmt.Errorf("migration %d: set version: %w", m.Version, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
