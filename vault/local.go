package vault

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// Local stores evidence in a directory, for the demo and tests. It is not
// WORM: anyone with access to the directory can change or delete objects,
// so it is reported as "not WORM" everywhere and production mode refuses it.
// Each Put writes a new version file <key>.v/<version>, so re-uploads do
// not overwrite, mirroring a versioned bucket.
type Local struct {
	dir string
	now func() time.Time
}

// NewLocal returns a local backend rooted at dir (created 0700).
func NewLocal(dir string, now func() time.Time) (*Local, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: local vault dir is empty", ErrBadConfig)
	}
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("local vault: %w", err)
	}
	return &Local{dir: dir, now: now}, nil
}

// Backend implements Store.
func (l *Local) Backend() string { return "local " + l.dir + " (not WORM)" }

// WORM implements Store: never.
func (l *Local) WORM() bool { return false }

// Check implements Store: the directory must be writable.
func (l *Local) Check(ctx context.Context) error {
	f, err := os.CreateTemp(l.dir, ".check-*")
	if err != nil {
		return fmt.Errorf("check local vault: %w", err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// Put implements Store. It writes, fsyncs, then re-reads and hashes the file.
func (l *Local) Put(ctx context.Context, obj Object, r io.ReadSeeker) (Receipt, error) {
	if _, err := ParseKey(obj.Key); err != nil {
		return Receipt{}, err
	}
	dir := filepath.Join(l.dir, filepath.FromSlash(obj.Key)+".v")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Receipt{}, fmt.Errorf("local put %s: %w", obj.Key, err)
	}
	version := fmt.Sprintf("%020d-%s", l.now().UnixNano(), randHex(4))
	path := filepath.Join(dir, version)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o400)
	if err != nil {
		return Receipt{}, fmt.Errorf("local put %s: %w", obj.Key, err)
	}
	_, err = io.Copy(f, io.LimitReader(r, obj.Size))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Receipt{}, fmt.Errorf("local put %s: %w", obj.Key, err)
	}
	_ = syncDir(dir)
	rf, err := os.Open(path)
	if err != nil {
		return Receipt{}, fmt.Errorf("local verify %s: %w", obj.Key, err)
	}
	defer rf.Close()
	h := sha256.New()
	n, err := io.Copy(h, rf)
	if err != nil {
		return Receipt{}, fmt.Errorf("local verify %s: %w", obj.Key, err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	if n != obj.Size || sum != obj.SHA256 {
		return Receipt{}, fmt.Errorf("local verify %s: %w", obj.Key, ErrVerify)
	}
	return Receipt{
		Key: obj.Key, Tenant: obj.Tenant, VersionID: version, SHA256: hex.EncodeToString(sum[:]), Size: n,
		Backend: l.Backend(), WORM: false, Verified: l.now().UTC(),
	}, nil
}

// Presign implements Store: a directory cannot sign URLs.
func (l *Local) Presign(ctx context.Context, key, versionID string, expiry time.Duration) (*url.URL, error) {
	return nil, fmt.Errorf("presign %s: %w (local backend)", key, ErrNoPresign)
}
