package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// Problem kinds reported by verification.
const (
	KindMissing    = "missing"    // a seq is absent: a row was deleted
	KindChain      = "chain"      // prev_hash is not the previous entry's hash
	KindHash       = "hash"       // the stored hash does not match the contents
	KindEntry      = "entry"      // the contents break a rule Append enforces
	KindTree       = "tree"       // stored Merkle hashes differ from recomputed
	KindCheckpoint = "checkpoint" // a stored checkpoint's signature or format is bad
	KindRoot       = "root"       // the recomputed root differs from a signed one
	KindTruncated  = "truncated"  // a signed checkpoint covers entries that are gone
	KindRollback   = "rollback"   // a checkpoint kept elsewhere is not extended
	KindVanished   = "vanished"   // signed checkpoints or verified points were removed
)

// Problem is the first thing verification found wrong. Seq is the first bad
// entry. When the evidence can only bound it (history rewritten and every
// hash recomputed, caught by a signed root), Seq..SeqEnd is the range of
// entries between the last matching and the first mismatching checkpoint.
type Problem struct {
	Seq    int64  `json:"seq"`
	SeqEnd int64  `json:"seq_end,omitempty"`
	Kind   string `json:"kind"`
	Reason string `json:"reason"`
}

func (p *Problem) Error() string {
	if p.SeqEnd > p.Seq {
		return fmt.Sprintf("audit log broken at seq %d..%d (%s): %s", p.Seq, p.SeqEnd, p.Kind, p.Reason)
	}
	return fmt.Sprintf("audit log broken at seq %d (%s): %s", p.Seq, p.Kind, p.Reason)
}

// Report is the outcome of a verification.
type Report struct {
	Intact bool `json:"intact"`
	// From is the checkpoint size an incremental verification started at.
	From int64 `json:"from,omitempty"`
	// Entries is the number of entries read and recomputed.
	Entries int64 `json:"entries"`
	// Size and Root describe the tree recomputed up to the first problem.
	Size int64     `json:"size"`
	Root tlog.Hash `json:"root"`
	// Checkpoints is the number of stored checkpoints whose signature
	// verified; Latest is the largest size among them.
	Checkpoints int   `json:"checkpoints"`
	Latest      int64 `json:"latest_checkpoint"`
	// Kept is the number of checkpoints from outside the database that
	// the log was proven to extend.
	Kept    int      `json:"kept_checkpoints"`
	Problem *Problem `json:"problem,omitempty"`
}

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// Public is the appliance audit public key; checkpoints are checked
	// with it. Required.
	Public ed25519.PublicKey
	// Kept are signed checkpoint notes kept outside the database (an
	// auditor's copy, the SIEM's). The log must extend each of them.
	Kept [][]byte
	// Origin is the log's name that every checkpoint must carry;
	// DefaultOrigin when empty. A checkpoint signed by the right key for
	// another log is not a checkpoint of this one.
	Origin string
	// State is the note of the appliance's state file (keys/audit.state):
	// the last checkpoint it signed, kept outside the database. The log
	// must extend it, and the stored checkpoints must reach its size;
	// otherwise checkpoints were deleted (KindVanished) or history was
	// rewritten (KindRoot).
	State []byte
	// RequireState makes a missing State a problem when the log has
	// entries: the appliance writes the state file at init, so only its
	// deletion (or a file from before state files existed) lacks it.
	RequireState bool
}

// Verify recomputes the whole chain and tree from the database and checks
// every stored checkpoint (signature, and that its root is the recomputed
// root at its size; all roots of one recomputed tree are thereby mutually
// consistent) and every kept checkpoint. An I/O failure is an error; a broken
// log is a Report with Intact false and a Problem.
func Verify(ctx context.Context, db Queryer, opts VerifyOptions) (Report, error) {
	return verifyFrom(ctx, db, opts, 0)
}

// check is a signed root the recomputed tree must reproduce at Size.
type check struct {
	size     int64
	root     tlog.Hash
	external bool
	state    bool // the state file's checkpoint
	id       int64
}

type verifier struct {
	rep     Report
	checks  map[int64][]check
	problem *Problem
	actions map[Action]bool
	buf     []byte // reused for each entry's recomputed tree hashes
}

func (v *verifier) report(p Problem) {
	if v.problem == nil || p.Seq < v.problem.Seq {
		v.problem = &p
	}
}

func verifyFrom(ctx context.Context, db Queryer, opts VerifyOptions, start int64) (Report, error) {
	rep, _, err := verifyFromFrontier(ctx, db, opts, start)
	return rep, err
}

// verifyFromFrontier is verifyFrom that also returns the recomputed right
// edge of the tree, which is the head's when the report is intact: the
// only frontier the Log signs after a reload.
func verifyFromFrontier(ctx context.Context, db Queryer, opts VerifyOptions, start int64) (Report, frontier, error) {
	v := &verifier{checks: map[int64][]check{}, actions: map[Action]bool{}}
	for _, a := range Actions() {
		v.actions[a] = true
	}
	v.rep.From = start
	if err := v.loadCheckpoints(ctx, db, opts, start); err != nil {
		return v.rep, frontier{}, err
	}
	if err := v.checkTables(ctx, db, opts, start); err != nil {
		return v.rep, frontier{}, err
	}
	fr := newFrontier()
	lastGood := int64(0)
	if start > 0 {
		var err error
		fr, err = v.startAt(ctx, db, start)
		if err != nil {
			return v.rep, frontier{}, err
		}
		lastGood = start
	}
	if v.problem == nil || v.problem.Seq > start {
		if err := v.scan(ctx, db, &fr, lastGood); err != nil {
			return v.rep, frontier{}, err
		}
	}
	if v.problem == nil && fr.size > 0 {
		// Appends chain to the head's hash column; it must be the real
		// hash, or the next entry would chain to a forgery.
		var h []byte
		if err := db.QueryRowContext(ctx, `SELECT hash FROM audit_entries WHERE seq = ?`, fr.size).Scan(&h); err != nil {
			return v.rep, frontier{}, fmt.Errorf("read head hash: %w", err)
		}
		if !bytes.Equal(h, fr.head) {
			v.report(Problem{Seq: fr.size, Kind: KindHash, Reason: "the head entry's hash column is not the hash of its contents"})
		}
	}
	v.rep.Size = fr.size
	v.rep.Root = fr.root()
	// Signed sizes beyond what is left: rows at the tail are gone.
	for size, cs := range v.checks {
		if size <= fr.size {
			continue
		}
		for _, c := range cs {
			if c.state {
				v.report(Problem{Seq: fr.size + 1, SeqEnd: size, Kind: KindVanished,
					Reason: fmt.Sprintf("the log has %d entries but the state file's checkpoint signed %d: entries were deleted or the database rolled back", fr.size, size)})
			} else if c.external {
				v.report(Problem{Seq: fr.size + 1, SeqEnd: size, Kind: KindRollback,
					Reason: fmt.Sprintf("the log has %d entries but a kept checkpoint signed %d: the database was rolled back or truncated", fr.size, size)})
			} else {
				v.report(Problem{Seq: fr.size + 1, SeqEnd: size, Kind: KindTruncated,
					Reason: fmt.Sprintf("the log has %d entries but stored checkpoint %d signed %d: entries were deleted", fr.size, c.id, size)})
			}
		}
	}
	v.rep.Problem = v.problem
	v.rep.Intact = v.problem == nil
	return v.rep, fr, nil
}

// loadCheckpoints verifies stored checkpoints of size >= start and the kept
// ones, and records their roots as checks.
func (v *verifier) loadCheckpoints(ctx context.Context, db Queryer, opts VerifyOptions, start int64) error {
	origin := opts.Origin
	if origin == "" {
		origin = DefaultOrigin
	}
	// From a verified point, only checkpoints signed since it count: an
	// acknowledged break may have left older checkpoints that the current
	// tree can never match again, and the full verification reports those.
	rows, err := db.QueryContext(ctx, `SELECT id, size, note FROM audit_checkpoints
		WHERE ? = 0 OR id >= (SELECT max(id) FROM audit_checkpoints WHERE size = ?) ORDER BY id`, start, start)
	if err != nil {
		return fmt.Errorf("read checkpoints: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c check
		var text string
		if err := rows.Scan(&c.id, &c.size, &text); err != nil {
			return fmt.Errorf("read checkpoints: %w", err)
		}
		cp, err := OpenCheckpoint([]byte(text), opts.Public)
		if err == nil && cp.Origin != origin {
			err = fmt.Errorf("%w: origin %q, this log is %q", ErrBadCheckpoint, cp.Origin, origin)
		}
		if err != nil {
			v.report(Problem{Seq: max(c.size, 1), Kind: KindCheckpoint, Reason: fmt.Sprintf("stored checkpoint %d (size %d): %v", c.id, c.size, err)})
			continue
		}
		if cp.Size != c.size {
			v.report(Problem{Seq: max(min(c.size, cp.Size), 1), Kind: KindCheckpoint, Reason: fmt.Sprintf("stored checkpoint %d: size column %d, signed size %d", c.id, c.size, cp.Size)})
			continue
		}
		c.root = cp.Root
		v.checks[c.size] = append(v.checks[c.size], c)
		v.rep.Checkpoints++
		v.rep.Latest = max(v.rep.Latest, c.size)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read checkpoints: %w", err)
	}
	for i, text := range opts.Kept {
		cp, err := OpenCheckpoint(text, opts.Public)
		if err == nil && cp.Origin != origin {
			err = fmt.Errorf("%w: origin %q, this log is %q", ErrBadCheckpoint, cp.Origin, origin)
		}
		if err != nil {
			return fmt.Errorf("kept checkpoint %d: %w", i+1, err)
		}
		if cp.Size < start {
			continue
		}
		v.checks[cp.Size] = append(v.checks[cp.Size], check{size: cp.Size, root: cp.Root, external: true})
	}
	if opts.State != nil {
		cp, err := openOrigin(opts.State, opts.Public, origin)
		if err != nil {
			// A state file that does not verify was replaced by someone
			// without the key: as good as deleted.
			v.report(Problem{Seq: 1, Kind: KindVanished, Reason: fmt.Sprintf("the state file's checkpoint does not verify: %v", err)})
			return nil
		}
		if cp.Size >= start {
			v.checks[cp.Size] = append(v.checks[cp.Size], check{size: cp.Size, root: cp.Root, external: true, state: true})
		}
	}
	return nil
}

// startAt loads the stored right edge at a verified checkpoint size and
// authenticates it: its root must be the signed root at that size, and the
// head entry's leaf must be included in it.
func (v *verifier) startAt(ctx context.Context, db Queryer, start int64) (frontier, error) {
	var head, enc []byte
	err := db.QueryRowContext(ctx, `SELECT hash, entry FROM audit_entries WHERE seq = ?`, start).Scan(&head, &enc)
	if errors.Is(err, sql.ErrNoRows) {
		v.report(Problem{Seq: start, Kind: KindMissing, Reason: fmt.Sprintf("entry %d, where the last verification ended, is missing", start)})
		return newFrontier(), nil
	} else if err != nil {
		return frontier{}, fmt.Errorf("read entry %d: %w", start, err)
	}
	if sum := sha256.Sum256(enc); !bytes.Equal(sum[:], head) {
		v.report(Problem{Seq: start, Kind: KindHash, Reason: fmt.Sprintf("entry %d, where the last verification ended, does not match its hash", start)})
		return newFrontier(), nil
	}
	fr, err := loadFrontier(ctx, db, start, head)
	if err != nil {
		if errors.Is(err, ErrTreeCorrupt) {
			v.report(Problem{Seq: start, Kind: KindTree, Reason: err.Error()})
			return newFrontier(), nil
		}
		return frontier{}, err
	}
	root := fr.root()
	var signed *check
	for _, c := range v.checks[start] {
		if c.root != root {
			v.report(Problem{Seq: 1, SeqEnd: start, Kind: KindRoot, Reason: fmt.Sprintf("stored tree at size %d does not hash to its signed root", start)})
			return fr, nil
		}
		signed = &c
	}
	if signed == nil {
		return frontier{}, fmt.Errorf("verify from %d: %w", start, ErrNoCheckpoint)
	}
	proof, err := tlog.ProveRecord(start, start-1, dbHashes{ctx, db})
	if err == nil {
		err = tlog.CheckRecord(proof, start, root, start-1, leafHash(head))
	}
	if err != nil {
		v.report(Problem{Seq: start, Kind: KindTree, Reason: fmt.Sprintf("entry %d is not the last leaf of the signed tree: %v", start, err)})
	}
	return fr, nil
}

// rowBatch is one chunk of consecutive seqs, read and hashed by a reader
// goroutine: the rows' columns copied into an arena and each entry's
// SHA-256, so the in-order consumer only chains and builds the tree.
type rowBatch struct {
	seq       []int64
	enc, tree [][]byte
	sum       [][HashSize]byte
	arena     []byte
	err       error
	free      chan *rowBatch // where the consumer returns it
}

// chunkSeqs is how many seqs one reader query covers.
const chunkSeqs = 4096

// readChunks runs in its own goroutine and reads chunks k = first,
// first+stride, ... (seqs after+k*chunkSeqs+1 .. after+(k+1)*chunkSeqs) up
// to last, sending each to out in order. With a *sql.DB each reader has its
// own connection, so on two cores reading and hashing of two chunks overlap:
// SQLite's column reads cost more than the hashing. It stops when done
// closes.
func readChunks(ctx context.Context, db Queryer, after, last int64, first, stride int, out chan<- *rowBatch, done <-chan struct{}) {
	defer close(out)
	free := make(chan *rowBatch, 3)
	for range cap(free) {
		free <- &rowBatch{}
	}
	for k := first; after+int64(k)*chunkSeqs < last; k += stride {
		var b *rowBatch
		select {
		case b = <-free:
		case <-done:
			return
		}
		b.reset()
		lo := after + int64(k)*chunkSeqs
		b.err = b.read(ctx, db, lo, min(lo+chunkSeqs, last))
		b.free = free
		select {
		case out <- b:
		case <-done:
			return
		}
		if b.err != nil {
			return
		}
	}
}

// read fills b with the rows lo < seq <= hi.
func (b *rowBatch) read(ctx context.Context, db Queryer, lo, hi int64) error {
	rows, err := db.QueryContext(ctx, `SELECT seq, entry, tree FROM audit_entries WHERE seq > ? AND seq <= ? ORDER BY seq`, lo, hi)
	if err != nil {
		return fmt.Errorf("read entries: %w", err)
	}
	defer rows.Close()
	var seq int64
	var enc, tree sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&seq, &enc, &tree); err != nil {
			return fmt.Errorf("read entry after %d: %w", lo, err)
		}
		b.seq = append(b.seq, seq)
		b.sum = append(b.sum, sha256.Sum256(enc))
		// Offsets first: the arena may move while it grows.
		b.arena = append(b.arena, enc...)
		b.arena = append(b.arena, tree...)
		b.enc = append(b.enc, enc[:0:len(enc)]) // capacity = length; sliced below
		b.tree = append(b.tree, tree[:0:len(tree)])
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read entries: %w", err)
	}
	off := 0
	for i := range b.seq {
		n := cap(b.enc[i])
		b.enc[i] = b.arena[off : off+n : off+n]
		off += n
		n = cap(b.tree[i])
		b.tree[i] = b.arena[off : off+n : off+n]
		off += n
	}
	return nil
}

func (b *rowBatch) reset() {
	b.seq, b.enc, b.tree, b.sum, b.arena, b.err = b.seq[:0], b.enc[:0], b.tree[:0], b.sum[:0], b.arena[:0], nil
}

// scan reads entries after fr.size in order and recomputes everything. It
// stops at the first problem. It reads three columns per row (column reads
// dominate its cost): the hash column is only a cache of SHA-256(entry) for
// appends, so it is checked at the head only, and an edited entry is caught
// at its own seq by the leaf hash in its tree column. It never decodes an
// entry fully: it walks the length prefixes to find seq, action and
// prev_hash without allocating.
func (v *verifier) scan(ctx context.Context, db Queryer, fr *frontier, lastGood int64) error {
	var last int64
	if err := db.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM audit_entries`).Scan(&last); err != nil {
		return fmt.Errorf("read entries: %w", err)
	}
	readers := 1
	if _, ok := db.(*sql.DB); ok {
		readers = 2 // one connection each; a *sql.Tx has only one
	}
	outs := make([]chan *rowBatch, readers)
	done := make(chan struct{})
	var wg sync.WaitGroup
	after := fr.size // fr changes below; the readers get a copy
	for r := range outs {
		outs[r] = make(chan *rowBatch, 1)
		wg.Add(1)
		go func() { defer wg.Done(); readChunks(ctx, db, after, last, r, readers, outs[r], done) }()
	}
	defer func() {
		close(done)
		wg.Wait() // the readers close their rows before we return
	}()
	for k := 0; ; k++ {
		b, ok := <-outs[k%readers]
		if !ok {
			return nil
		}
		if b.err != nil {
			return b.err
		}
		for i, seq := range b.seq {
			if !v.check(seq, b.enc[i], b.tree[i], &b.sum[i], fr, &lastGood) {
				return nil
			}
		}
		b.free <- b
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// check verifies one row; false means a problem was reported.
func (v *verifier) check(seq int64, enc, treeCol []byte, sum *[HashSize]byte, fr *frontier, lastGood *int64) bool {
	v.rep.Entries++
	want := fr.size + 1
	if seq != want {
		v.report(Problem{Seq: want, Kind: KindMissing, Reason: fmt.Sprintf("entry %d is missing; the next stored entry is %d", want, seq)})
		return false
	}
	eseq, action, prev, ok := walkCanonical(enc)
	switch {
	case !ok:
		v.report(Problem{Seq: seq, Kind: KindEntry, Reason: "the stored entry is not a canonical encoding"})
		return false
	case eseq != seq:
		v.report(Problem{Seq: seq, Kind: KindChain, Reason: fmt.Sprintf("row %d holds entry %d: rows were moved", seq, eseq)})
		return false
	case !bytes.Equal(prev, fr.head):
		v.report(Problem{Seq: seq, Kind: KindChain, Reason: fmt.Sprintf("prev_hash is not the hash of entry %d", seq-1)})
		return false
	}
	leaf := leafHash(sum[:])
	switch {
	case len(treeCol) < HashSize || !bytes.Equal(treeCol[:HashSize], leaf[:]):
		v.report(Problem{Seq: seq, Kind: KindHash, Reason: "the entry's contents do not match its stored (leaf) hash"})
		return false
	case !v.actions[Action(action)]:
		v.report(Problem{Seq: seq, Kind: KindEntry, Reason: fmt.Sprintf("action %q is not in the vocabulary", action)})
		return false
	}
	v.buf = fr.appendAdd(v.buf[:0], sum[:])
	if !bytes.Equal(v.buf, treeCol) {
		v.report(Problem{Seq: seq, Kind: KindTree, Reason: "stored Merkle hashes differ from the recomputed ones"})
		return false
	}
	cs, ok := v.checks[fr.size]
	if !ok {
		return true
	}
	root := fr.root()
	for _, c := range cs {
		if c.root == root {
			continue
		}
		what := fmt.Sprintf("stored checkpoint %d", c.id)
		kind := KindRoot
		if c.state {
			what = "the state file's checkpoint"
		} else if c.external {
			what, kind = "a kept checkpoint", KindRollback
		}
		v.report(Problem{Seq: *lastGood + 1, SeqEnd: fr.size, Kind: kind,
			Reason: fmt.Sprintf("the recomputed root at size %d differs from the one %s signed: entries %d..%d were rewritten", fr.size, what, *lastGood+1, fr.size)})
		return false
	}
	*lastGood = fr.size
	for _, c := range cs {
		if c.external && !c.state {
			v.rep.Kept++
		}
	}
	return true
}

// walkCanonical checks the framing of a canonical encoding (header, nine
// length-prefixed fields that fit, 32 trailing bytes) and returns its seq,
// action and prev_hash, without allocating. ParseCanonical is the full,
// strict decoder that readers use.
func walkCanonical(b []byte) (seq int64, action, prev []byte, ok bool) {
	if len(b) < len(canonicalMagic)+8+9*4+HashSize || string(b[:len(canonicalMagic)]) != canonicalMagic {
		return 0, nil, nil, false
	}
	seq = int64(binary.BigEndian.Uint64(b[len(canonicalMagic):]))
	rest := b[len(canonicalMagic)+8 : len(b)-HashSize]
	for i := range 9 {
		if len(rest) < 4 {
			return 0, nil, nil, false
		}
		n := binary.BigEndian.Uint32(rest)
		if uint64(n) > uint64(len(rest)-4) {
			return 0, nil, nil, false
		}
		if i == 6 {
			action = rest[4 : 4+n]
		}
		rest = rest[4+n:]
	}
	if len(rest) != 0 {
		return 0, nil, nil, false
	}
	return seq, action, b[len(b)-HashSize:], true
}
