package vault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Sentinel errors. Callers map them to exit codes and HTTP statuses; the
// bucket errors are what a refused start-up reports.
var (
	// ErrNotWORM means the store cannot make objects immutable (the local
	// backend), so production mode refuses it.
	ErrNotWORM = errors.New("evidence store is not WORM")
	// ErrBucketNotFound means the configured bucket does not exist.
	ErrBucketNotFound = errors.New("evidence bucket does not exist")
	// ErrBucketNotLocked means the bucket was created without object lock.
	ErrBucketNotLocked = errors.New("evidence bucket has no object lock")
	// ErrNoDefaultRetention means object lock is enabled but the bucket has
	// no default retention rule.
	ErrNoDefaultRetention = errors.New("evidence bucket has no default retention")
	// ErrGovernanceMode means the bucket's default retention is GOVERNANCE,
	// which a privileged user can bypass; evidence needs COMPLIANCE.
	ErrGovernanceMode = errors.New("evidence bucket retention is GOVERNANCE, not COMPLIANCE")
	// ErrRetentionTooShort means the bucket's default retention is shorter
	// than the configured one.
	ErrRetentionTooShort = errors.New("evidence bucket default retention is shorter than configured")
	// ErrVerify means an uploaded object did not read back as written: wrong
	// hash, size, retention or encryption. The spool keeps the object.
	ErrVerify = errors.New("uploaded evidence failed verification")
	// ErrSpoolFull means the spool is at its size bound; new evidence is
	// refused rather than anything already spooled being dropped.
	ErrSpoolFull = errors.New("evidence spool is full")
	// ErrBadKey means an object key is not one of the documented layouts.
	ErrBadKey = errors.New("invalid evidence key")
	// ErrBadRecord means a spool file is not a well-formed record.
	ErrBadRecord = errors.New("invalid spool record")
	// ErrNoPresign means the backend cannot issue pre-signed URLs.
	ErrNoPresign = errors.New("backend cannot issue pre-signed URLs")
	// ErrBadConfig means a vault configuration value is missing or invalid.
	ErrBadConfig = errors.New("invalid vault configuration")
	// ErrNotChecked means uploads are held because the bucket's WORM
	// configuration has not (yet) been verified.
	ErrNotChecked = errors.New("evidence bucket not verified yet")
)

// Store is where evidence ends up. Put must not return until the object has
// been read back and verified; a nil error is a promise that the object is
// stored as described by the Receipt.
type Store interface {
	// Backend describes the backend for status output, e.g.
	// "minio https://10.0.0.5:9000/evidence" or "local /var/lib/x".
	Backend() string
	// WORM reports whether stored objects are immutable. Only the MinIO/S3
	// backend with a verified compliance-mode bucket is.
	WORM() bool
	// Check verifies the backend's configuration (for MinIO: the bucket
	// exists, has object lock in COMPLIANCE mode and a long enough default
	// retention). A nil error means uploads may proceed.
	Check(ctx context.Context) error
	// Put stores the object read from r (size bytes whose SHA-256 is sum),
	// then reads it back and verifies it.
	Put(ctx context.Context, obj Object, r io.ReadSeeker) (Receipt, error)
	// Presign returns a GET URL for one object version, valid for expiry.
	Presign(ctx context.Context, key, versionID string, expiry time.Duration) (*url.URL, error)
}

// Object describes one piece of evidence to store.
type Object struct {
	Key    string // see ScanKey and AnchorKey
	Tenant string // "" for appliance-wide objects (anchors)
	Size   int64
	SHA256 [32]byte
}

// Receipt is what a verified upload proves, as recorded in the audit log.
type Receipt struct {
	Key       string    `json:"key"`
	Tenant    string    `json:"tenant"`
	VersionID string    `json:"version_id"`
	SHA256    string    `json:"sha256"` // hex, computed from the object read back
	Size      int64     `json:"size"`
	Mode      string    `json:"mode"`         // "COMPLIANCE", or "" when not WORM
	Until     time.Time `json:"retain_until"` // zero when not WORM
	SSE       string    `json:"sse"`          // "AES256", "aws:kms", or ""
	Backend   string    `json:"backend"`
	WORM      bool      `json:"worm"`
	Spooled   time.Time `json:"spooled"`
	Verified  time.Time `json:"verified"`
	// SpoolID and SpoolSeq name the spool record and its evidence.spool
	// audit entry (SpoolSeq is 0 without a SpoolLedger), so the upload's
	// entry refers to the one that fixed the hash.
	SpoolID  string `json:"spool_id"`
	SpoolSeq int64  `json:"spool_seq"`
}

// Recorder is told about every verified upload before the object leaves the
// spool. The appliance implements it by appending an evidence.upload audit
// entry; if it fails, the object stays spooled and is uploaded again later
// (a new version: WORM buckets cannot overwrite).
type Recorder interface {
	Record(ctx context.Context, r Receipt) error
}

// RecorderFunc adapts a function to Recorder.
type RecorderFunc func(ctx context.Context, r Receipt) error

// Record calls f.
func (f RecorderFunc) Record(ctx context.Context, r Receipt) error { return f(ctx, r) }

// Key layouts. Tenants and scans are ids: they never contain "/".
var (
	idRE      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	segmentRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	dayRE     = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)
)

// ScanKey returns the key of a scan's evidence object:
// tenants/<tenant>/scans/<scan>/<name>. name may hold "/"-separated
// segments of letters, digits, ".", "_" and "-", none starting with ".".
func ScanKey(tenant, scan, name string) (string, error) {
	k := "tenants/" + tenant + "/scans/" + scan + "/" + name
	if _, err := ParseKey(k); err != nil {
		return "", err
	}
	return k, nil
}

// AnchorKey returns the key of a daily audit anchor object:
// appliance/anchors/<YYYY-MM-DD>/<name>.
func AnchorKey(day time.Time, name string) (string, error) {
	k := "appliance/anchors/" + day.UTC().Format(time.DateOnly) + "/" + name
	if _, err := ParseKey(k); err != nil {
		return "", err
	}
	return k, nil
}

// ReviewKey returns the key of a signed appliance-admin access review,
// which belongs to no tenant: appliance/reviews/<name>.
func ReviewKey(name string) (string, error) {
	k := "appliance/reviews/" + name
	if _, err := ParseKey(k); err != nil {
		return "", err
	}
	return k, nil
}

// Key is a parsed object key.
type Key struct {
	Tenant string // set for scan evidence
	Scan   string // set for scan evidence
	Day    string // set for anchors, YYYY-MM-DD
	// Review is set for appliance-admin access reviews.
	Review bool
	Name   string
}

// ParseKey checks that k is a scan evidence key or an anchor key and
// returns its parts. Keys are checked on the way into the spool and again
// when a spool record is read back, so a tampered spool file cannot write
// outside its tenant's prefix.
func ParseKey(k string) (Key, error) {
	bad := func(why string) (Key, error) { return Key{}, fmt.Errorf("%w %q: %s", ErrBadKey, k, why) }
	if len(k) > 1024 {
		return bad("too long")
	}
	parts := strings.Split(k, "/")
	var key Key
	var rest []string
	switch {
	case len(parts) >= 5 && parts[0] == "tenants" && parts[2] == "scans":
		if !idRE.MatchString(parts[1]) || !idRE.MatchString(parts[3]) {
			return bad("tenant and scan must be ids")
		}
		key.Tenant, key.Scan, rest = parts[1], parts[3], parts[4:]
	case len(parts) >= 4 && parts[0] == "appliance" && parts[1] == "anchors":
		if !dayRE.MatchString(parts[2]) {
			return bad("anchor day must be YYYY-MM-DD")
		}
		if _, err := time.Parse(time.DateOnly, parts[2]); err != nil {
			return bad("anchor day must be a date")
		}
		key.Day, rest = parts[2], parts[3:]
	case len(parts) >= 3 && parts[0] == "appliance" && parts[1] == "reviews":
		key.Review, rest = true, parts[2:]
	default:
		return bad("want tenants/<tenant>/scans/<scan>/<name>, appliance/anchors/<day>/<name> or appliance/reviews/<name>")
	}
	for _, s := range rest {
		if !segmentRE.MatchString(s) {
			return bad("name segments are letters, digits, '.', '_' and '-', not starting with '.'")
		}
	}
	key.Name = strings.Join(rest, "/")
	return key, nil
}
