package audit

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// ErrBadProof means a proof does not verify.
var ErrBadProof = errors.New("audit proof does not verify")

// InclusionProof proves that Entry is leaf Seq-1 of the tree a signed
// checkpoint describes. Its JSON form is what 'audit prove --seq' prints and
// 'audit export' writes one per line:
//
//	{"type":"inclusion","entry":{...},"tree_size":8,"proof":["base64",...],"checkpoint":"firewalliq.audit\n8\n...\n\n— ..."}
type InclusionProof struct {
	Type       string      `json:"type"` // "inclusion"
	Entry      Entry       `json:"entry"`
	TreeSize   int64       `json:"tree_size"`
	Proof      []tlog.Hash `json:"proof"`
	Checkpoint string      `json:"checkpoint"`
}

// ConsistencyProof proves that the tree of OldSize entries with OldRoot is a
// prefix of the tree a signed checkpoint describes: nothing before OldSize
// was changed or removed. OldCheckpoint is the stored signed checkpoint of
// OldSize when there is one.
type ConsistencyProof struct {
	Type          string      `json:"type"` // "consistency"
	OldSize       int64       `json:"old_size"`
	OldRoot       tlog.Hash   `json:"old_root"`
	OldCheckpoint string      `json:"old_checkpoint,omitempty"`
	Proof         []tlog.Hash `json:"proof"`
	Checkpoint    string      `json:"checkpoint"`
}

// Proof types.
const (
	ProofInclusion   = "inclusion"
	ProofConsistency = "consistency"
)

// latestCovering returns the latest stored checkpoint (by id), which must
// have at least size entries. It is taken as stored; the proof's verifier
// checks its signature.
func latestCovering(ctx context.Context, q Queryer, size int64) (Checkpoint, error) {
	s, err := latestStored(ctx, q)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && s.size < size) {
		return Checkpoint{}, fmt.Errorf("%w: sign one with 'audit checkpoint --new'", ErrNoCheckpoint)
	} else if err != nil {
		return Checkpoint{}, err
	}
	origin, n, root, err := parseCheckpointBody(noteBody(s.note))
	if err != nil {
		return Checkpoint{}, err
	}
	return Checkpoint{Origin: origin, Size: n, Root: root, Note: s.note}, nil
}

// ReadEntry reads the stored entry seq.
func ReadEntry(ctx context.Context, q Queryer, seq int64) (Entry, error) {
	es, err := ReadEntries(ctx, q, seq, seq)
	if err != nil {
		return Entry{}, err
	}
	if len(es) == 0 {
		return Entry{}, fmt.Errorf("audit entry %d: %w", seq, sql.ErrNoRows)
	}
	return es[0], nil
}

// ReadEntries reads the stored entries with from <= seq <= to, in order.
func ReadEntries(ctx context.Context, q Queryer, from, to int64) ([]Entry, error) {
	rows, err := q.QueryContext(ctx, `SELECT seq, entry FROM audit_entries WHERE seq BETWEEN ? AND ? ORDER BY seq`, from, to)
	if err != nil {
		return nil, fmt.Errorf("read audit entries: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var seq int64
		var enc []byte
		if err := rows.Scan(&seq, &enc); err != nil {
			return nil, fmt.Errorf("read audit entries: %w", err)
		}
		e, err := ParseCanonical(enc)
		if err != nil {
			return nil, fmt.Errorf("audit entry %d: %w", seq, err)
		}
		if e.Seq != seq {
			return nil, fmt.Errorf("audit entry %d: %w: row holds entry %d", seq, ErrBadEncoding, e.Seq)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit entries: %w", err)
	}
	return out, nil
}

// ProveInclusion proves entry seq against the latest stored checkpoint.
func ProveInclusion(ctx context.Context, q Queryer, seq int64) (InclusionProof, error) {
	cp, err := latestCovering(ctx, q, seq)
	if err != nil {
		return InclusionProof{}, err
	}
	return ProveInclusionAt(ctx, q, seq, cp)
}

// LatestStoredCheckpoint returns the latest stored checkpoint as stored,
// without checking its signature (the proofs made from it carry the note,
// and their verifier checks it).
func LatestStoredCheckpoint(ctx context.Context, q Queryer) (Checkpoint, error) {
	return latestCovering(ctx, q, 0)
}

// ProveInclusionAt proves entry seq against checkpoint cp, so an export of
// many entries shares one checkpoint.
func ProveInclusionAt(ctx context.Context, q Queryer, seq int64, cp Checkpoint) (InclusionProof, error) {
	if seq < 1 || seq > cp.Size {
		return InclusionProof{}, fmt.Errorf("prove entry %d: %w (checkpoint size %d)", seq, ErrNoCheckpoint, cp.Size)
	}
	e, err := ReadEntry(ctx, q, seq)
	if err != nil {
		return InclusionProof{}, err
	}
	p, err := tlog.ProveRecord(cp.Size, seq-1, dbHashes{ctx, q})
	if err != nil {
		return InclusionProof{}, fmt.Errorf("prove entry %d: %w", seq, err)
	}
	return InclusionProof{Type: ProofInclusion, Entry: e, TreeSize: cp.Size, Proof: p, Checkpoint: cp.Note}, nil
}

// ProveConsistency proves that the tree of oldSize entries is a prefix of the
// latest stored checkpoint's tree.
func ProveConsistency(ctx context.Context, q Queryer, oldSize int64) (ConsistencyProof, error) {
	cp, err := latestCovering(ctx, q, oldSize)
	if err != nil {
		return ConsistencyProof{}, err
	}
	if oldSize < 1 {
		return ConsistencyProof{}, fmt.Errorf("prove consistency from %d: size must be at least 1", oldSize)
	}
	r := dbHashes{ctx, q}
	oldRoot, err := tlog.TreeHash(oldSize, r)
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("prove consistency from %d: %w", oldSize, err)
	}
	p, err := tlog.ProveTree(cp.Size, oldSize, r)
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("prove consistency from %d: %w", oldSize, err)
	}
	out := ConsistencyProof{Type: ProofConsistency, OldSize: oldSize, OldRoot: oldRoot, Proof: p, Checkpoint: cp.Note}
	var note string
	err = q.QueryRowContext(ctx, `SELECT note FROM audit_checkpoints WHERE size = ? ORDER BY id DESC LIMIT 1`, oldSize).Scan(&note)
	if err == nil {
		out.OldCheckpoint = note
	} else if !errors.Is(err, sql.ErrNoRows) {
		return ConsistencyProof{}, fmt.Errorf("prove consistency: %w", err)
	}
	return out, nil
}

// VerifyInclusion checks p offline with only the audit public key: the
// checkpoint's signature, that the entry's contents hash to its hash, and
// that its leaf is in the signed tree. It returns the verified checkpoint.
func VerifyInclusion(p InclusionProof, pub ed25519.PublicKey) (Checkpoint, error) {
	cp, err := OpenCheckpoint([]byte(p.Checkpoint), pub)
	if err != nil {
		return cp, err
	}
	if p.Type != ProofInclusion {
		return cp, fmt.Errorf("%w: type %q, want %q", ErrBadProof, p.Type, ProofInclusion)
	}
	if p.TreeSize != cp.Size {
		return cp, fmt.Errorf("%w: proof is for size %d, checkpoint signs %d", ErrBadProof, p.TreeSize, cp.Size)
	}
	if p.Entry.Seq < 1 || p.Entry.Seq > cp.Size {
		return cp, fmt.Errorf("%w: entry %d is outside the signed tree of %d", ErrBadProof, p.Entry.Seq, cp.Size)
	}
	if len(p.Entry.PrevHash) != HashSize {
		return cp, fmt.Errorf("%w: prev_hash is %d bytes", ErrBadProof, len(p.Entry.PrevHash))
	}
	// Details were stored normalized; a proof file may have been
	// re-indented since, which changes no evidence.
	e := p.Entry
	d, err := normalizeDetails(e.Details)
	if err != nil || !isJSONObject(d) {
		return cp, fmt.Errorf("%w: entry %d: details are not a JSON object", ErrBadProof, e.Seq)
	}
	e.Details = d
	h := EntryHash(e)
	if string(h) != string(p.Entry.Hash) {
		return cp, fmt.Errorf("%w: entry %d's contents do not hash to its hash", ErrBadProof, p.Entry.Seq)
	}
	if err := tlog.CheckRecord(p.Proof, cp.Size, cp.Root, p.Entry.Seq-1, leafHash(h)); err != nil {
		return cp, fmt.Errorf("%w: entry %d: %v", ErrBadProof, p.Entry.Seq, err)
	}
	return cp, nil
}

// VerifyConsistency checks p offline with only the audit public key: the new
// checkpoint's signature, the old one's when present, and that the old tree
// is a prefix of the new. It returns the verified new checkpoint.
func VerifyConsistency(p ConsistencyProof, pub ed25519.PublicKey) (Checkpoint, error) {
	cp, err := OpenCheckpoint([]byte(p.Checkpoint), pub)
	if err != nil {
		return cp, err
	}
	if p.Type != ProofConsistency {
		return cp, fmt.Errorf("%w: type %q, want %q", ErrBadProof, p.Type, ProofConsistency)
	}
	if p.OldCheckpoint != "" {
		old, err := OpenCheckpoint([]byte(p.OldCheckpoint), pub)
		if err != nil {
			return cp, fmt.Errorf("old checkpoint: %w", err)
		}
		if old.Size != p.OldSize || old.Root != p.OldRoot || old.Origin != cp.Origin {
			return cp, fmt.Errorf("%w: old checkpoint does not match old_size/old_root", ErrBadProof)
		}
	}
	if p.OldSize < 1 || p.OldSize > cp.Size {
		return cp, fmt.Errorf("%w: old size %d outside 1..%d", ErrBadProof, p.OldSize, cp.Size)
	}
	if err := tlog.CheckTree(p.Proof, cp.Size, cp.Root, p.OldSize, p.OldRoot); err != nil {
		return cp, fmt.Errorf("%w: %v", ErrBadProof, err)
	}
	return cp, nil
}
