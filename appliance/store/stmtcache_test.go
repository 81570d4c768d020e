package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// TestStmtCache: reads through the cache return what the plain pool
// returns, a bad query still reports its error, writes are seen by cached
// statements, and the cache stops growing at maxCachedStmts.
func TestStmtCache(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	if _, err := s.DB().ExecContext(ctx, `CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	c := NewStmtCache(s.DB())
	t.Cleanup(func() { c.Close() })
	for _, tc := range []struct {
		name  string
		query string
		arg   any
		want  string
		fails bool
	}{
		{name: "missing row", query: `SELECT v FROM kv WHERE k = ?`, arg: 1, fails: true},
		{name: "row after insert", query: `SELECT v FROM kv WHERE k = ?`, arg: 2, want: "two"},
		{name: "bad table", query: `SELECT v FROM nope WHERE k = ?`, arg: 1, fails: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.DB().ExecContext(ctx, `INSERT OR IGNORE INTO kv VALUES (2, 'two')`); err != nil {
				t.Fatal(err)
			}
			var got string
			err := c.QueryRowContext(ctx, tc.query, tc.arg).Scan(&got)
			if (err != nil) != tc.fails || got != tc.want {
				t.Fatalf("got %q, %v; want %q, fails %v", got, err, tc.want, tc.fails)
			}
		})
	}
	// Concurrent readers share the statements (run with -race).
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				rows, err := c.QueryContext(ctx, `SELECT k, v FROM kv ORDER BY k`)
				if err != nil {
					errs <- err
					return
				}
				n := 0
				for rows.Next() {
					n++
				}
				rows.Close()
				if n != 1 {
					errs <- fmt.Errorf("%d rows", n)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Past the bound, queries still run, unprepared.
	for i := range maxCachedStmts + 10 {
		var n int
		if err := c.QueryRowContext(ctx, fmt.Sprintf(`SELECT %d`, i)).Scan(&n); err != nil || n != i {
			t.Fatalf("query %d: %d, %v", i, n, err)
		}
	}
	c.mu.Lock()
	size := len(c.m)
	c.mu.Unlock()
	if size != maxCachedStmts {
		t.Fatalf("cache holds %d statements, want %d", size, maxCachedStmts)
	}
}
