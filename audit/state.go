package audit

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// StateFileName is the state file's name; the appliance keeps it next to
// the audit key, as keys/audit.state.
const StateFileName = "audit.state"

// maxStateSize bounds the state file: a checkpoint note is about 200 bytes.
const maxStateSize = 16 << 10

// ErrBadState means the state file is not a regular file, too large, or not
// a checkpoint note signed by the audit key for this log.
var ErrBadState = errors.New("invalid audit state file")

// Why a state file: every row of the database can be deleted by someone who
// can write the file, including all checkpoints and verified points; the
// log would then look like a fresh, unsigned one, and the appliance would
// re-verify it from zero and sign whatever it holds. The state file holds
// the last signed checkpoint note outside the database. It is signed, so it
// cannot be forged or advanced without the key; deleting it while the log
// has entries raises the alarm; replacing it by an older genuine note (a
// rollback of both files) is what the external witnesses (SIEM, daily
// anchors in the WORM bucket, kept notes) catch.

// ReadState reads the state file at path and verifies the note in it with
// pub for origin. ok is false (and err nil) when the file does not exist.
func ReadState(path string, pub ed25519.PublicKey, origin string) (cp Checkpoint, ok bool, err error) {
	note, ok, err := ReadStateNote(path)
	if err != nil || !ok {
		return Checkpoint{}, ok, err
	}
	cp, err = openOrigin(note, pub, origin)
	if err != nil {
		return Checkpoint{}, true, fmt.Errorf("%w %s: %v", ErrBadState, path, err)
	}
	return cp, true, nil
}

// ReadStateNote reads the state file's bytes without verifying them (the
// verifier does). It refuses anything but a regular file of at most 16 KiB.
func ReadStateNote(path string) (note []byte, ok bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	} else if err != nil {
		return nil, false, fmt.Errorf("read audit state: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, false, fmt.Errorf("read audit state: %w", err)
	}
	if !st.Mode().IsRegular() || st.Size() > maxStateSize {
		return nil, true, fmt.Errorf("%w %s: not a regular file of at most %d bytes", ErrBadState, path, maxStateSize)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxStateSize+1))
	if err != nil {
		return nil, false, fmt.Errorf("read audit state: %w", err)
	}
	if len(b) > maxStateSize {
		return nil, true, fmt.Errorf("%w %s: larger than %d bytes", ErrBadState, path, maxStateSize)
	}
	return b, true, nil
}

// openOrigin opens a checkpoint note and requires this log's origin.
func openOrigin(note []byte, pub ed25519.PublicKey, origin string) (Checkpoint, error) {
	if origin == "" {
		origin = DefaultOrigin
	}
	cp, err := OpenCheckpoint(note, pub)
	if err == nil && cp.Origin != origin {
		err = fmt.Errorf("%w: origin %q, this log is %q", ErrBadCheckpoint, cp.Origin, origin)
	}
	return cp, err
}

// writeState replaces the state file atomically and durably: a temporary
// file in the same directory, fsync, rename over the old one, fsync of the
// directory. A crash leaves the old note or the new one, never a torn file.
func writeState(path, note string) error {
	if old, ok, err := ReadStateNote(path); err == nil && ok && bytes.Equal(old, []byte(note)) {
		return nil
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write audit state: %w", err)
	}
	tmp := f.Name()
	_, err = f.WriteString(note)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write audit state: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write audit state: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write audit state: sync dir: %w", err)
	}
	return nil
}
