package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// ErrTreeCorrupt means the stored Merkle hashes a proof or an append needs
// are missing or malformed.
var ErrTreeCorrupt = errors.New("stored Merkle hashes are missing or malformed")

// errNotCached means a frontier was asked for a hash off the tree's right
// edge; callers fall back to the database.
var errNotCached = errors.New("hash not on the cached right edge")

// Queryer is what both *sql.DB and *sql.Tx offer, so read-only checks run
// inside a caller's transaction or on their own.
type Queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// frontier is the right edge of a tree of size entries: for each level L the
// hash of the rightmost complete subtree, which has index (size>>L)-1. That
// is all tlog needs to append a record or to hash the whole tree, so appends
// and verification never read older hashes.
type frontier struct {
	size  int64
	head  []byte // hash of entry seq == size; 32 zero bytes for an empty log
	right [64]tlog.Hash
}

func newFrontier() frontier { return frontier{head: make([]byte, HashSize)} }

func (f frontier) clone() frontier {
	c := f // copies the array
	c.head = append([]byte(nil), f.head...)
	return c
}

// ReadHashes implements tlog.HashReader from the right edge only.
func (f *frontier) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		level, n := tlog.SplitStoredHashIndex(idx)
		if level >= len(f.right) || f.size>>level < 1 || n != f.size>>level-1 {
			return nil, errNotCached
		}
		out[i] = f.right[level]
	}
	return out, nil
}

// add appends the entry with hash entryHash as record f.size and returns the
// stored hashes it completes, concatenated (the tree column).
func (f *frontier) add(entryHash []byte) ([]byte, error) {
	return f.appendAdd(nil, entryHash), nil
}

// appendAdd is add appending to buf, without other allocations: the
// verifier calls it for every entry. It computes exactly what
// tlog.StoredHashesForRecordHash(f.size, leaf, f) returns (the leaf, then
// one node per trailing 1 bit of the record index, each merging the
// rightmost complete subtree of that level), which TestFrontierMatchesTlog
// checks.
func (f *frontier) appendAdd(buf []byte, entryHash []byte) []byte {
	cur := leafHash(entryHash)
	for level := 0; ; level++ {
		buf = append(buf, cur[:]...)
		old := f.right[level]
		f.right[level] = cur
		if (f.size>>level)&1 == 0 {
			break
		}
		cur = tlog.NodeHash(old, cur)
	}
	f.size++
	f.head = append(f.head[:0], entryHash...)
	return buf
}

// root returns the tree hash of the frontier's tree.
func (f *frontier) root() tlog.Hash {
	h, err := tlog.TreeHash(f.size, f)
	if err != nil {
		// TreeHash asks exactly for the right edge's subtrees, which a
		// frontier always holds.
		panic("audit: frontier root: " + err.Error())
	}
	return h
}

// storedLocation says where tlog's stored hash index lives in our layout: the
// hash at (level, n) is completed by record ((n+1)<<level)-1, that is the
// entry with seq (n+1)<<level, at offset level in its tree column.
func storedLocation(index int64) (seq int64, level int) {
	level, n := tlog.SplitStoredHashIndex(index)
	return (n + 1) << level, level
}

// dbHashes is a tlog.HashReader over the tree column.
type dbHashes struct {
	ctx context.Context
	q   Queryer
}

// ReadHashes reads each wanted hash from its entry row, with one query.
func (r dbHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	seqs := make([]int64, len(indexes))
	levels := make([]int, len(indexes))
	args := make([]any, len(indexes))
	for i, idx := range indexes {
		seqs[i], levels[i] = storedLocation(idx)
		args[i] = seqs[i]
	}
	q := `SELECT seq, tree FROM audit_entries WHERE seq IN (?` + strings.Repeat(",?", len(args)-1) + `)`
	rows, err := r.q.QueryContext(r.ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read merkle hashes: %w", err)
	}
	defer rows.Close()
	trees := make(map[int64][]byte, len(indexes))
	for rows.Next() {
		var seq int64
		var tree []byte
		if err := rows.Scan(&seq, &tree); err != nil {
			return nil, fmt.Errorf("read merkle hashes: %w", err)
		}
		trees[seq] = tree
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read merkle hashes: %w", err)
	}
	out := make([]tlog.Hash, len(indexes))
	for i := range indexes {
		tree, ok := trees[seqs[i]]
		if !ok || len(tree) < (levels[i]+1)*HashSize || len(tree)%HashSize != 0 {
			return nil, fmt.Errorf("%w: entry %d level %d", ErrTreeCorrupt, seqs[i], levels[i])
		}
		copy(out[i][:], tree[levels[i]*HashSize:])
	}
	return out, nil
}

// loadFrontier reads the right edge of the stored tree of size entries.
func loadFrontier(ctx context.Context, q Queryer, size int64, head []byte) (frontier, error) {
	f := newFrontier()
	f.size = size
	f.head = append(f.head[:0], head...)
	var indexes []int64
	var levels []int
	for level := 0; level < len(f.right) && size>>level >= 1; level++ {
		indexes = append(indexes, tlog.StoredHashIndex(level, size>>level-1))
		levels = append(levels, level)
	}
	hs, err := dbHashes{ctx, q}.ReadHashes(indexes)
	if err != nil {
		return f, err
	}
	for i, level := range levels {
		f.right[level] = hs[i]
	}
	return f, nil
}

// readHead returns the last entry's seq and hash (0 and zero hash when empty).
func readHead(ctx context.Context, q Queryer) (int64, []byte, error) {
	var seq int64
	var h []byte
	err := q.QueryRowContext(ctx, `SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1`).Scan(&seq, &h)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, make([]byte, HashSize), nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("read audit head: %w", err)
	}
	return seq, h, nil
}
