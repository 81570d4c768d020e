package audit

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ErrBadCheckpoint means a checkpoint note is malformed or its signature
// does not verify with the audit public key.
var ErrBadCheckpoint = errors.New("invalid audit checkpoint")

// ErrNoCheckpoint means no signed checkpoint covers what was asked for.
var ErrNoCheckpoint = errors.New("no signed checkpoint covers this yet")

// Checkpoint is a signed statement "the log named Origin had Size entries
// and Merkle root Root". Note is the signed note, exactly as stored:
//
//	firewalliq.audit
//	1000
//	q3Xy...base64 root...=
//
//	— firewalliq.audit AbCd...base64(key hash || Ed25519 signature)...
//
// The body is the transparency-dev checkpoint format: origin, decimal tree
// size and standard base64 root hash, each on its own line.
type Checkpoint struct {
	Origin string    `json:"origin"`
	Size   int64     `json:"size"`
	Root   tlog.Hash `json:"root"`
	Note   string    `json:"note"`
}

// CheckpointBody formats the signed part of a checkpoint.
func CheckpointBody(origin string, size int64, root tlog.Hash) string {
	return fmt.Sprintf("%s\n%d\n%s\n", origin, size, base64.StdEncoding.EncodeToString(root[:]))
}

// parseCheckpointBody is the strict inverse of CheckpointBody.
func parseCheckpointBody(text string) (origin string, size int64, root tlog.Hash, err error) {
	lines := strings.Split(text, "\n")
	if len(lines) != 4 || lines[3] != "" {
		return "", 0, root, fmt.Errorf("%w: body must be exactly origin, size and root lines", ErrBadCheckpoint)
	}
	origin = lines[0]
	if origin == "" {
		return "", 0, root, fmt.Errorf("%w: empty origin", ErrBadCheckpoint)
	}
	size, err = strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return "", 0, root, fmt.Errorf("%w: size %q", ErrBadCheckpoint, lines[1])
	}
	b, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(b) != HashSize || base64.StdEncoding.EncodeToString(b) != lines[2] {
		return "", 0, root, fmt.Errorf("%w: root %q", ErrBadCheckpoint, lines[2])
	}
	copy(root[:], b)
	return origin, size, root, nil
}

// noteSigner signs notes with an Ed25519 key under a name. It implements
// note.Signer directly, so the private key never has to be spelled as a
// "PRIVATE+KEY+..." string.
type noteSigner struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
}

func newNoteSigner(name string, key ed25519.PrivateKey) (*noteSigner, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("audit signer: key is %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	v, err := verifierFor(name, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	return &noteSigner{name: name, hash: v.KeyHash(), key: key}, nil
}

func (s *noteSigner) Name() string                    { return s.name }
func (s *noteSigner) KeyHash() uint32                 { return s.hash }
func (s *noteSigner) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.key, msg), nil }

// verifierFor returns the note verifier for pub under name; the key hash is
// note's: the first 4 bytes of SHA-256(name || "\n" || 0x01 || pub).
func verifierFor(name string, pub ed25519.PublicKey) (note.Verifier, error) {
	vkey, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		return nil, fmt.Errorf("audit verifier key: %w", err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("audit verifier key %q: %w", name, err)
	}
	return v, nil
}

// pubKeyVerifiers knows one public key under whatever name a note's
// signature line gives; OpenCheckpoint then requires that name to be the
// body's origin. An auditor thus needs only the public key, not a config.
type pubKeyVerifiers struct{ pub ed25519.PublicKey }

func (p pubKeyVerifiers) Verifier(name string, hash uint32) (note.Verifier, error) {
	v, err := verifierFor(name, p.pub)
	if err != nil || v.KeyHash() != hash {
		return nil, &note.UnknownVerifierError{Name: name, KeyHash: hash}
	}
	return v, nil
}

// OpenCheckpoint verifies a signed checkpoint note with the audit public key
// and parses it. The signature must be by pub under the name the body gives
// as its origin.
func OpenCheckpoint(text []byte, pub ed25519.PublicKey) (Checkpoint, error) {
	if len(pub) != ed25519.PublicKeySize {
		return Checkpoint{}, fmt.Errorf("%w: public key is %d bytes", ErrBadCheckpoint, len(pub))
	}
	n, err := note.Open(text, pubKeyVerifiers{pub})
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrBadCheckpoint, err)
	}
	origin, size, root, err := parseCheckpointBody(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	signed := false
	for _, s := range n.Sigs {
		signed = signed || s.Name == origin
	}
	if !signed {
		return Checkpoint{}, fmt.Errorf("%w: not signed under the origin name %q", ErrBadCheckpoint, origin)
	}
	return Checkpoint{Origin: origin, Size: size, Root: root, Note: string(text)}, nil
}

// sign makes a checkpoint of the frontier's tree.
func (l *Log) sign(fr *frontier) (Checkpoint, error) {
	if l.signer == nil {
		return Checkpoint{}, ErrNoSigner
	}
	root := fr.root()
	msg, err := l.signBody(CheckpointBody(l.origin, fr.size, root))
	if err != nil {
		return Checkpoint{}, err
	}
	return Checkpoint{Origin: l.origin, Size: fr.size, Root: root, Note: msg}, nil
}

// signBody signs a checkpoint body as a note.
func (l *Log) signBody(body string) (string, error) {
	if l.signer == nil {
		return "", ErrNoSigner
	}
	msg, err := note.Sign(&note.Note{Text: body}, l.signer)
	if err != nil {
		return "", fmt.Errorf("sign checkpoint: %w", err)
	}
	return string(msg), nil
}

func (l *Log) storeCheckpoint(ctx context.Context, tx *sql.Tx, fr frontier) (Checkpoint, error) {
	cp, err := l.sign(&fr)
	if err != nil {
		return cp, err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO audit_checkpoints (size, time, note) VALUES (?, ?, ?)`,
		cp.Size, l.now().UTC().Format(timeFormat), cp.Note)
	if err != nil {
		return cp, fmt.Errorf("store checkpoint: %w", err)
	}
	l.lastSigned = cp.Note
	return cp, nil
}

// Checkpoint signs and stores a checkpoint of the current head inside tx,
// unless the latest stored checkpoint already has the head's size; then it
// returns that one and false.
//
// It signs only what it has verified: the frontier this Log built itself
// from a verified one, or else the result of verifying the entries from
// the trusted checkpoint (the state file's) to the head inside tx. When
// that verification finds a problem it signs nothing and returns an
// *UnverifiedError (errors.Is ErrUnverified) carrying the problem; the
// caller raises the alarm (RaiseAlarm). While the alarm is raised it
// returns an error wrapping ErrTamperAlarm and signs nothing.
func (l *Log) Checkpoint(ctx context.Context, tx *sql.Tx) (Checkpoint, bool, error) {
	if l.signer == nil {
		return Checkpoint{}, false, ErrNoSigner
	}
	if err := CheckNoAlarm(ctx, tx); err != nil {
		return Checkpoint{}, false, fmt.Errorf("checkpoint: %w", err)
	}
	return l.checkpoint(ctx, tx)
}

// checkpoint is Checkpoint without the alarm check: the acknowledgement
// signs its new segment's first checkpoint while its own 'ack' row does
// not count yet (CurrentAlarm wants a checkpoint covering it).
func (l *Log) checkpoint(ctx context.Context, tx *sql.Tx) (Checkpoint, bool, error) {
	if l.signer == nil {
		return Checkpoint{}, false, ErrNoSigner
	}
	size, head, err := readHead(ctx, tx)
	if err != nil {
		return Checkpoint{}, false, err
	}
	latest, err := latestStored(ctx, tx)
	if err == nil && latest.size == size {
		cp := Checkpoint{Note: latest.note, Size: latest.size}
		if o, _, root, perr := parseCheckpointBody(noteBody(latest.note)); perr == nil {
			cp.Origin, cp.Root = o, root
		}
		return cp, false, nil
	} else if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Checkpoint{}, false, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fr.size != size || string(l.fr.head) != string(head) || !l.frVerified {
		if err := l.verifyHeadLocked(ctx, tx); err != nil {
			return Checkpoint{}, false, err
		}
	}
	cp, err := l.storeCheckpoint(ctx, tx, l.fr.clone())
	if err != nil {
		return Checkpoint{}, false, err
	}
	return cp, true, nil
}

// ErrUnverified means a checkpoint was not signed because verifying the
// entries since the trusted checkpoint found a problem.
var ErrUnverified = errors.New("audit log does not verify against the last signed checkpoint; nothing signed")

// UnverifiedError carries the problem that stopped a signature.
type UnverifiedError struct {
	Problem Problem
	From    int64 // the trusted size verification started at
}

func (e *UnverifiedError) Error() string { return ErrUnverified.Error() + ": " + e.Problem.Error() }

// Unwrap makes errors.Is(err, ErrUnverified) true.
func (e *UnverifiedError) Unwrap() error { return ErrUnverified }

// verifyHeadLocked verifies the entries from the trusted checkpoint (all of
// them when there is none) to the head inside q and, when they are intact,
// makes the recomputed frontier the Log's verified one. l.mu is held.
func (l *Log) verifyHeadLocked(ctx context.Context, q Queryer) error {
	opts := VerifyOptions{Public: l.signer.key.Public().(ed25519.PublicKey), Origin: l.origin, RequireState: l.state != ""}
	var from int64
	if l.trusted != nil {
		opts.State, from = []byte(l.trusted.Note), l.trusted.Size
	}
	rep, fr, err := verifyFromFrontier(ctx, q, opts, from)
	if err != nil {
		return fmt.Errorf("checkpoint: verify from %d: %w", from, err)
	}
	if !rep.Intact {
		return &UnverifiedError{Problem: *rep.Problem, From: from}
	}
	l.fr, l.frVerified = fr, true
	// The cached transaction state may point elsewhere now.
	l.cur.tx, l.cur.ins = nil, nil
	return nil
}

// SyncState writes the newest committed checkpoint to the state file
// (when the Log has one) and makes it the trusted checkpoint. Call it after
// every commit that may have stored a checkpoint; the checkpoint loop and
// Startup do. The newest stored checkpoint is accepted when this Log signed
// it, or when a consistency proof from the trusted checkpoint to it
// verifies. A newest checkpoint smaller than the trusted one, or not
// consistent with it, is a *UnverifiedError: checkpoints vanished or
// history forked.
func (l *Log) SyncState(ctx context.Context, db Queryer) error {
	if l.signer == nil {
		return nil
	}
	s, err := latestStored(ctx, db)
	if errors.Is(err, sql.ErrNoRows) {
		l.mu.Lock()
		t := l.trusted
		l.mu.Unlock()
		if t != nil && t.Size > 0 {
			return &UnverifiedError{From: t.Size, Problem: Problem{Seq: 1, SeqEnd: t.Size, Kind: KindVanished,
				Reason: fmt.Sprintf("no stored checkpoint, but checkpoint %d was signed", t.Size)}}
		}
		return nil
	} else if err != nil {
		return err
	}
	pub := l.signer.key.Public().(ed25519.PublicKey)
	cp, err := openOrigin([]byte(s.note), pub, l.origin)
	if err != nil {
		return &UnverifiedError{Problem: Problem{Seq: max(s.size, 1), Kind: KindCheckpoint, Reason: fmt.Sprintf("newest stored checkpoint %d: %v", s.id, err)}}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.trusted
	switch {
	case t != nil && t.Note == cp.Note:
		// Nothing new; make sure the file says so too (a crash may have
		// come between commit and write).
	case cp.Note == l.lastSigned:
		// Ours, signed over a verified frontier (or an acknowledgement's
		// new segment), and now committed.
	case t == nil:
		// Nothing to prove it against: leave the trust where it is.
		return nil
	case cp.Size < t.Size:
		return &UnverifiedError{From: t.Size, Problem: Problem{Seq: cp.Size + 1, SeqEnd: t.Size, Kind: KindVanished,
			Reason: fmt.Sprintf("the newest stored checkpoint signs %d entries, but %d were signed before: checkpoints were deleted", cp.Size, t.Size)}}
	default:
		if err := checkConsistent(ctx, db, *t, cp); err != nil && !l.ackSegmentLocked(ctx, db, cp) {
			return &UnverifiedError{From: t.Size, Problem: Problem{Seq: 1, SeqEnd: cp.Size, Kind: KindRoot,
				Reason: fmt.Sprintf("stored checkpoint %d (size %d) is not consistent with the trusted checkpoint of size %d: %v", s.id, cp.Size, t.Size, err)}}
		}
	}
	if l.state != "" {
		if err := writeState(l.state, cp.Note); err != nil {
			return err
		}
	}
	l.trusted = &cp
	return nil
}

// ackSegmentLocked reports whether cp starts a new segment that another
// process of this appliance signed when an admin acknowledged the alarm:
// its size is an acknowledgement's seq and the state file (which only a
// holder of the key can move forward) already holds it. Such a checkpoint
// is deliberately not consistent with the broken history before it.
func (l *Log) ackSegmentLocked(ctx context.Context, db Queryer, cp Checkpoint) bool {
	if l.state == "" {
		return false
	}
	note, ok, err := ReadStateNote(l.state)
	if err != nil || !ok || string(note) != cp.Note {
		return false
	}
	var n int
	err = db.QueryRowContext(ctx, `SELECT count(*) FROM audit_alarms WHERE kind = 'ack' AND seq = ?`, cp.Size).Scan(&n)
	return err == nil && n > 0
}

// checkConsistent proves from the stored tree that old is a prefix of cp.
// Both are signed, so a proof that verifies shows the two signed trees are
// consistent whatever the stored hashes are.
func checkConsistent(ctx context.Context, q Queryer, old, cp Checkpoint) error {
	if old.Size > cp.Size {
		return fmt.Errorf("size %d is below %d", cp.Size, old.Size)
	}
	if old.Size == 0 {
		return nil
	}
	p, err := tlog.ProveTree(cp.Size, old.Size, dbHashes{ctx, q})
	if err != nil {
		return err
	}
	return tlog.CheckTree(p, cp.Size, cp.Root, old.Size, old.Root)
}

// RunCheckpoints signs a checkpoint every interval while entries were added
// since the last one (config audit.checkpoint_interval), until ctx ends,
// and writes each committed checkpoint to the state file. Errors go to
// onErr (may be nil) and do not stop the loop: a failed checkpoint is
// retried at the next tick. A verification problem raises the tamper alarm
// instead of signing (then nothing is signed until it is acknowledged).
func (l *Log) RunCheckpoints(ctx context.Context, db *sql.DB, interval time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			err := l.CheckpointNow(ctx, db)
			if ctx.Err() != nil {
				return // shutting down: not a checkpoint failure
			}
			if err != nil && onErr != nil && !errors.Is(err, ErrTamperAlarm) {
				onErr(err)
			}
		}
	}
}

// CheckpointNow is one turn of RunCheckpoints: sign a checkpoint of the
// head if it moved (in its own transaction), write the state file, and
// raise the tamper alarm when verification or the state sync finds a
// problem.
func (l *Log) CheckpointNow(ctx context.Context, db *sql.DB) error {
	if err := CheckNoAlarm(ctx, db); err != nil {
		return fmt.Errorf("checkpoint: %w", err) // nothing is signed or moved under the alarm
	}
	// Sync first: another process (an acknowledgement from the shell)
	// may have started a new segment that verification must start from.
	err := l.SyncState(ctx, db)
	if err == nil {
		err = inTx(ctx, db, func(tx *sql.Tx) error { _, _, err := l.Checkpoint(ctx, tx); return err })
	}
	if err == nil {
		err = l.SyncState(ctx, db)
	}
	var ue *UnverifiedError
	if errors.As(err, &ue) {
		if _, _, rerr := l.RaiseAlarm(ctx, db, ue.Problem, ue.From); rerr != nil {
			return errors.Join(err, rerr)
		}
	}
	return err
}

// LatestCheckpoint returns the latest stored checkpoint, verified with pub.
func LatestCheckpoint(ctx context.Context, db *sql.DB, pub ed25519.PublicKey) (Checkpoint, error) {
	s, err := latestStored(ctx, db)
	if errors.Is(err, sql.ErrNoRows) {
		return Checkpoint{}, ErrNoCheckpoint
	} else if err != nil {
		return Checkpoint{}, err
	}
	return OpenCheckpoint([]byte(s.note), pub)
}

type storedCheckpoint struct {
	id, size int64
	note     string
}

func latestStored(ctx context.Context, q Queryer) (storedCheckpoint, error) {
	var s storedCheckpoint
	err := q.QueryRowContext(ctx, `SELECT id, size, note FROM audit_checkpoints ORDER BY id DESC LIMIT 1`).Scan(&s.id, &s.size, &s.note)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		err = fmt.Errorf("read checkpoint: %w", err)
	}
	return s, err
}

// noteBody returns the text of a note before its signature block.
func noteBody(msg string) string {
	if i := strings.LastIndex(msg, "\n\n"); i >= 0 {
		return msg[:i+1]
	}
	return msg
}

// inTx runs fn in a transaction on db.
func inTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
