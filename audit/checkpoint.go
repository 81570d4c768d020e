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
	return cp, nil
}

// Checkpoint signs and stores a checkpoint of the current head inside tx,
// unless the latest stored checkpoint already has the head's size; then it
// returns that one and false.
func (l *Log) Checkpoint(ctx context.Context, tx *sql.Tx) (Checkpoint, bool, error) {
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
	fr := l.fr
	if fr.size != size || string(fr.head) != string(head) {
		if fr, err = loadFrontier(ctx, tx, size, head); err != nil {
			return Checkpoint{}, false, fmt.Errorf("checkpoint: %w", err)
		}
	}
	cp, err := l.storeCheckpoint(ctx, tx, fr.clone())
	if err != nil {
		return Checkpoint{}, false, err
	}
	return cp, true, nil
}

// RunCheckpoints signs a checkpoint every interval while entries were added
// since the last one (config audit.checkpoint_interval), until ctx ends.
// Errors go to onErr (may be nil) and do not stop the loop: a failed
// checkpoint is retried at the next tick.
func (l *Log) RunCheckpoints(ctx context.Context, db *sql.DB, interval time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			err := inTx(ctx, db, func(tx *sql.Tx) error { _, _, err := l.Checkpoint(ctx, tx); return err })
			if ctx.Err() != nil {
				return // shutting down: not a checkpoint failure
			}
			if err != nil && onErr != nil {
				onErr(err)
			}
		}
	}
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
