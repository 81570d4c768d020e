package store

import (
	"context"
	"database/sql"
	"sync"
)

// maxCachedStmts bounds the statement cache. The store's queries are
// constant strings, a few dozen in all; a caller that built query text
// from data would otherwise grow the cache without end, so past the bound
// queries simply run unprepared.
const maxCachedStmts = 256

// StmtCache runs reads through statements prepared once per query text.
//
// Without it every query is prepared, run and finalised again; with
// modernc.org/sqlite (SQLite translated to Go) preparing even a one-row
// lookup costs tens of microseconds, which the dashboard's profile showed
// as its largest item. A *sql.Stmt is prepared lazily on each pooled
// connection it runs on and kept there, so with the warm pool (see
// configurePool) a hot query is parsed once per connection, not once per
// request. SQLite re-prepares a cached statement by itself after a schema
// change.
//
// It implements Querier, so it can stand wherever a *sql.DB reads.
type StmtCache struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// NewStmtCache returns an empty cache over db.
func NewStmtCache(db *sql.DB) *StmtCache {
	return &StmtCache{db: db, m: make(map[string]*sql.Stmt)}
}

// stmt returns the prepared statement for query, preparing it on first use;
// nil when it cannot be prepared or the cache is full (the caller then
// runs the query unprepared, which reports any error itself).
func (c *StmtCache) stmt(ctx context.Context, query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return st
	}
	if len(c.m) >= maxCachedStmts {
		return nil
	}
	// Preparing on the DB checks the text once on some connection; the
	// statement is then prepared again on each other connection as used.
	// The request's cancellation must not leave a failed entry behind, so
	// it is not passed down.
	st, err := c.db.PrepareContext(context.WithoutCancel(ctx), query)
	if err != nil {
		return nil
	}
	c.m[query] = st
	return st
}

// QueryRowContext runs a one-row read through its prepared statement.
func (c *StmtCache) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := c.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return c.db.QueryRowContext(ctx, query, args...)
}

// QueryContext runs a read through its prepared statement.
func (c *StmtCache) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := c.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return c.db.QueryContext(ctx, query, args...)
}

// Close closes every cached statement.
func (c *StmtCache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first error
	for q, st := range c.m {
		if err := st.Close(); err != nil && first == nil {
			first = err
		}
		delete(c.m, q)
	}
	return first
}
