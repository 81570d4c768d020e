// Package bounded reads files and streams with a size limit, and only from
// regular files, so a path that names /dev/zero, a FIFO, a directory or a
// huge file fails at once with a one-line error instead of exhausting memory
// or blocking forever.
//
// Every file the firewalliq binary reads from a path a user can choose (a
// flag, an argument, the configuration, the data directory) goes through
// this package with one of the Max* limits below; docs/cli.md ("File size
// limits") lists them.
//
// It lives under probe/ because the dependency rules (DESIGN.md) let probe/...
// import only probe/..., while appliance/... and vault may import a
// standard-library-only leaf from there; it imports nothing of ours.
package bounded

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// Errors; the returned errors wrap one of these and name the file.
var (
	// ErrNotRegular means the path names a directory, device, FIFO, socket
	// or anything else that is not a regular file. Reading such a path could
	// block forever (a FIFO) or never end (/dev/zero).
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge means the input holds more bytes than its limit allows.
	ErrTooLarge = errors.New("file too large")
)

// Size limits of the files the binary reads. Each is far above what a valid
// file of its kind holds and far below what could hurt the appliance.
const (
	// MaxKeyFile bounds a PEM Ed25519 key (public or private; about 120
	// bytes) and the 32-byte master key.
	MaxKeyFile = 64 << 10
	// MaxSecretFile bounds a one-line secret: a webhook HMAC key file or the
	// S3 secret key file.
	MaxSecretFile = 64 << 10
	// MaxCertFile bounds a PEM certificate bundle or client key: a CA
	// bundle (the whole Mozilla root store is about 220 KiB), a client
	// certificate or key, the console certificate.
	MaxCertFile = 1 << 20
	// MaxConfigFile bounds the YAML configuration file.
	MaxConfigFile = 1 << 20
	// MaxScopeFile bounds a scope document or signed scope envelope, from a
	// file or standard input.
	MaxScopeFile = 4 << 20
	// MaxCheckpointNote bounds a signed audit checkpoint note kept elsewhere
	// (audit verify --from-checkpoint); a note is a few hundred bytes.
	MaxCheckpointNote = 64 << 10
	// MaxProofInput bounds the whole input of 'audit verify-proof': one
	// proof, or an 'audit export' file of one proof per line. It is read as
	// a stream, one proof at a time, so memory stays bounded by MaxProof.
	MaxProofInput = 4 << 30
	// MaxProof bounds one proof in that input (an inclusion proof over 2^40
	// entries is about 3 KiB).
	MaxProof = 1 << 20
	// MaxScanCheckpoint bounds the checkpoint.json a resumed scan reads from
	// its output directory.
	MaxScanCheckpoint = 1 << 20
	// MaxProfileFile bounds a safety profile or its signature read by the
	// release tooling (packaging/profile).
	MaxProfileFile = 1 << 20
)

// Open opens path for reading if it is a regular file and no larger than
// limit bytes. Reads from the returned file fail with ErrTooLarge once more
// than limit bytes have been read (the file may grow after the check).
//
// A FIFO is refused without blocking: the path is checked before it is
// opened, opened non-blocking, and checked again on the open descriptor, so a
// FIFO swapped in between the two checks is refused too.
func Open(path string, limit int64) (*File, error) {
	if fi, err := os.Stat(path); err != nil {
		return nil, err
	} else if err := regular(path, fi); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := regular(path, fi); err != nil {
		f.Close()
		return nil, err
	}
	if fi.Size() > limit {
		f.Close()
		return nil, tooLarge(path, limit)
	}
	return &File{f: f, name: path, limit: limit}, nil
}

// ReadFile reads the regular file at path, which must hold at most limit
// bytes. It reads at most limit+1 bytes whatever the file claims to hold.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := Open(path, limit)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// ReadAll reads r to its end, failing with ErrTooLarge after limit bytes.
// name says what r is in the error ("standard input"). Use it where the
// input cannot be a checked file, such as a pipe on standard input.
func ReadAll(r io.Reader, limit int64, name string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, tooLarge(name, limit)
	}
	return b, nil
}

// File is a regular file opened by Open whose reads stop at its limit.
type File struct {
	f     *os.File
	name  string
	limit int64
	n     int64 // bytes read so far
}

// Read reads from the file; past the limit it returns an ErrTooLarge error.
func (f *File) Read(p []byte) (int, error) {
	// Allow one byte past the limit, so a file of exactly limit bytes reads
	// to io.EOF and one that grew past it is caught.
	if room := f.limit + 1 - f.n; room >= 0 && int64(len(p)) > room {
		p = p[:room]
	}
	if f.n > f.limit {
		return 0, tooLarge(f.name, f.limit)
	}
	n, err := f.f.Read(p)
	f.n += int64(n)
	if f.n > f.limit {
		// Hand back only the bytes within the limit.
		return n - int(f.n-f.limit), tooLarge(f.name, f.limit)
	}
	return n, err
}

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }

// Name returns the path the file was opened with.
func (f *File) Name() string { return f.name }

// regular refuses everything but a regular file, saying what it is.
func regular(path string, fi fs.FileInfo) error {
	m := fi.Mode()
	if m.IsRegular() {
		return nil
	}
	kind := "special file"
	switch {
	case m.IsDir():
		kind = "directory"
	case m&fs.ModeNamedPipe != 0:
		kind = "FIFO"
	case m&fs.ModeSocket != 0:
		kind = "socket"
	case m&fs.ModeCharDevice != 0:
		kind = "character device"
	case m&fs.ModeDevice != 0:
		kind = "block device"
	}
	return &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w (a %s)", ErrNotRegular, kind)}
}

func tooLarge(name string, limit int64) error {
	return &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("%w (limit %s)", ErrTooLarge, FormatSize(limit))}
}

// FormatSize writes n bytes the way the limits are documented: "64 KiB",
// "4 MiB", or bytes.
func FormatSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
