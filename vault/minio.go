package vault

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/encrypt"
)

// MinIOConfig configures the MinIO/S3 backend.
type MinIOConfig struct {
	// Endpoint is host:port of the S3 API. TLS is always used: minio-go
	// refuses server-side encryption over plain HTTP, and credentials must
	// not cross the network in clear.
	Endpoint string
	// Bucket must exist with object lock in COMPLIANCE mode.
	Bucket string
	// Region, if the server needs one.
	Region string
	// CAFile is a PEM bundle of CAs trusted for the endpoint, for private
	// PKI; the system roots are used when empty.
	CAFile string
	// RootCAs overrides CAFile (tests, callers that already hold a pool).
	RootCAs *x509.CertPool
	// AccessKey and SecretKey authenticate to the server.
	AccessKey, SecretKey string
	// KMSKeyID selects SSE-KMS with this key; empty means SSE-S3. SSE-C is
	// deliberately not offered: a customer key would have to travel with
	// every GET, which breaks pre-signed export.
	KMSKeyID string
	// Retention is how long each object is locked from upload, and the
	// minimum default retention the bucket must have. Default 365 days.
	Retention time.Duration
	// Now is the clock for retain-until dates; time.Now when nil.
	Now func() time.Time
	// MaxRetries per request inside minio-go. The vault retries with its own
	// backoff, so the default is 1 (no inner retries).
	MaxRetries int
}

// MinIO is the WORM backend.
type MinIO struct {
	c   *minio.Client
	cfg MinIOConfig
	sse encrypt.ServerSide
}

// NewMinIO builds the backend. It does not contact the server; call Check.
func NewMinIO(cfg MinIOConfig) (*MinIO, error) {
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, fmt.Errorf("%w: minio endpoint and bucket are required", ErrBadConfig)
	}
	if strings.Contains(cfg.Endpoint, "://") {
		return nil, fmt.Errorf("%w: minio endpoint is host:port, not a URL", ErrBadConfig)
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return nil, fmt.Errorf("%w: minio credentials are required", ErrBadConfig)
	}
	if cfg.Retention == 0 {
		cfg.Retention = 365 * 24 * time.Hour
	}
	if cfg.Retention < time.Second {
		return nil, fmt.Errorf("%w: retention must be positive", ErrBadConfig)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = 1
	}
	roots := cfg.RootCAs
	if roots == nil && cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: ca file: %w", ErrBadConfig, err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: ca file %s holds no PEM certificate", ErrBadConfig, cfg.CAFile)
		}
	}
	tr, err := minio.DefaultTransport(true)
	if err != nil {
		return nil, fmt.Errorf("minio transport: %w", err)
	}
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:      credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:     true,
		Transport:  tr,
		Region:     cfg.Region,
		MaxRetries: cfg.MaxRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("minio client: %w", err)
	}
	sse := encrypt.NewSSE()
	if cfg.KMSKeyID != "" {
		sse, err = encrypt.NewSSEKMS(cfg.KMSKeyID, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: kms key: %w", ErrBadConfig, err)
		}
	}
	return &MinIO{c: c, cfg: cfg, sse: sse}, nil
}

// Client exposes the minio-go client (tests, benchmarks).
func (m *MinIO) Client() *minio.Client { return m.c }

// Backend implements Store.
func (m *MinIO) Backend() string { return "minio https://" + m.cfg.Endpoint + "/" + m.cfg.Bucket }

// WORM implements Store. The answer is about the backend kind; Check
// verifies the bucket really is locked before any upload.
func (m *MinIO) WORM() bool { return true }

// Check implements Store: the bucket must exist, have object lock enabled
// with a COMPLIANCE default retention at least cfg.Retention long.
func (m *MinIO) Check(ctx context.Context) error {
	ok, err := m.c.BucketExists(ctx, m.cfg.Bucket)
	if err != nil {
		return fmt.Errorf("check bucket %s: %w", m.cfg.Bucket, err)
	}
	if !ok {
		return fmt.Errorf("check bucket %s: %w", m.cfg.Bucket, ErrBucketNotFound)
	}
	enabled, mode, validity, unit, err := m.c.GetObjectLockConfig(ctx, m.cfg.Bucket)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "ObjectLockConfigurationNotFoundError" {
			return fmt.Errorf("check bucket %s: %w (create it with object lock enabled)", m.cfg.Bucket, ErrBucketNotLocked)
		}
		return fmt.Errorf("check bucket %s: %w", m.cfg.Bucket, err)
	}
	if enabled != "Enabled" {
		return fmt.Errorf("check bucket %s: %w", m.cfg.Bucket, ErrBucketNotLocked)
	}
	if mode == nil || validity == nil || unit == nil {
		return fmt.Errorf("check bucket %s: %w (set a COMPLIANCE default retention)", m.cfg.Bucket, ErrNoDefaultRetention)
	}
	if *mode != minio.Compliance {
		return fmt.Errorf("check bucket %s: %w", m.cfg.Bucket, ErrGovernanceMode)
	}
	day := 24 * time.Hour
	have := time.Duration(*validity) * day
	if *unit == minio.Years {
		have = time.Duration(*validity) * 365 * day
	}
	if have < m.cfg.Retention {
		return fmt.Errorf("check bucket %s: %w (bucket %d %s, configured %s)", m.cfg.Bucket, ErrRetentionTooShort, *validity, *unit, m.cfg.Retention)
	}
	return nil
}

// Put implements Store. Each upload carries COMPLIANCE retention until
// now+Retention, Content-MD5 (so the server rejects a body damaged in
// transit) and SSE. Verification then reads back, by version id:
//   - the retention (GetObjectRetention): mode COMPLIANCE, date as set;
//   - the whole object (GetObject): the encryption header of the response,
//     and the body hashed with SHA-256 and compared with the spool's hash
//     (the encryption header comes with the GET, saving a HEAD round trip).
//     We re-download rather than trust an ETag or a
//     server checksum because with SSE the ETag is not the MD5 of the body,
//     and reading the plaintext back is the only check that covers the
//     encrypt/decrypt path end to end.
func (m *MinIO) Put(ctx context.Context, obj Object, r io.ReadSeeker) (Receipt, error) {
	until := m.cfg.Now().Add(m.cfg.Retention).UTC().Truncate(time.Second)
	info, err := m.c.PutObject(ctx, m.cfg.Bucket, obj.Key, r, obj.Size, minio.PutObjectOptions{
		ContentType:          "application/octet-stream",
		Mode:                 minio.Compliance,
		RetainUntilDate:      until,
		SendContentMd5:       true,
		ServerSideEncryption: m.sse,
		UserMetadata:         map[string]string{"Fiq-Sha256": hex.EncodeToString(obj.SHA256[:])},
	})
	if err != nil {
		return Receipt{}, fmt.Errorf("upload %s: %w", obj.Key, err)
	}
	if info.VersionID == "" {
		return Receipt{}, fmt.Errorf("upload %s: %w: no version id (bucket not versioned)", obj.Key, ErrVerify)
	}
	// The two read-backs are independent; run them side by side to save a
	// round trip of latency per object.
	var (
		mode   *minio.RetentionMode
		got    *time.Time
		retErr error
		done   = make(chan struct{})
	)
	go func() {
		defer close(done)
		mode, got, retErr = m.c.GetObjectRetention(ctx, m.cfg.Bucket, obj.Key, info.VersionID)
	}()
	sse, sum, n, err := m.readBack(ctx, obj.Key, info.VersionID)
	<-done
	if retErr != nil {
		return Receipt{}, fmt.Errorf("verify %s: retention: %w", obj.Key, retErr)
	}
	if err != nil {
		return Receipt{}, fmt.Errorf("verify %s: %w", obj.Key, err)
	}
	if mode == nil || *mode != minio.Compliance || got == nil || got.Before(until) {
		return Receipt{}, fmt.Errorf("verify %s: %w: retention %v until %v, want COMPLIANCE until %s", obj.Key, ErrVerify, deref(mode), deref(got), until)
	}
	want := "AES256"
	if m.cfg.KMSKeyID != "" {
		want = "aws:kms"
	}
	if sse != want {
		return Receipt{}, fmt.Errorf("verify %s: %w: server-side encryption %q, want %q", obj.Key, ErrVerify, sse, want)
	}
	if n != obj.Size || sum != obj.SHA256 {
		return Receipt{}, fmt.Errorf("verify %s: %w: read back %d bytes sha256 %x, wrote %d bytes sha256 %x", obj.Key, ErrVerify, n, sum, obj.Size, obj.SHA256)
	}
	return Receipt{
		Key: obj.Key, Tenant: obj.Tenant, VersionID: info.VersionID,
		SHA256: hex.EncodeToString(sum[:]), Size: n,
		Mode: string(*mode), Until: got.UTC(), SSE: sse,
		Backend: m.Backend(), WORM: true, Verified: m.cfg.Now().UTC(),
	}, nil
}

// readBack downloads one version and returns the encryption the GET
// response reports (x-amz-server-side-encryption) with the SHA-256 and
// length of the plaintext body.
func (m *MinIO) readBack(ctx context.Context, key, version string) (sse string, sum [32]byte, n int64, err error) {
	o, err := m.c.GetObject(ctx, m.cfg.Bucket, key, minio.GetObjectOptions{VersionID: version})
	if err != nil {
		return "", sum, 0, fmt.Errorf("read back: %w", err)
	}
	defer o.Close()
	st, err := o.Stat()
	if err != nil {
		return "", sum, 0, fmt.Errorf("read back: %w", err)
	}
	h := sha256.New()
	if n, err = io.Copy(h, o); err != nil {
		return "", sum, 0, fmt.Errorf("read back: %w", err)
	}
	copy(sum[:], h.Sum(nil))
	return st.Metadata.Get("X-Amz-Server-Side-Encryption"), sum, n, nil
}

// Presign implements Store. The URL is signed with the backend's
// credentials for GET of one version; the server enforces the expiry.
func (m *MinIO) Presign(ctx context.Context, key, versionID string, expiry time.Duration) (*url.URL, error) {
	if expiry <= 0 || expiry > 7*24*time.Hour {
		return nil, fmt.Errorf("presign %s: %w: expiry %s", key, ErrBadConfig, expiry)
	}
	params := url.Values{}
	if versionID != "" {
		params.Set("versionId", versionID)
	}
	u, err := m.c.PresignedGetObject(ctx, m.cfg.Bucket, key, expiry, params)
	if err != nil {
		return nil, fmt.Errorf("presign %s: %w", key, err)
	}
	return u, nil
}

// IsRefusal reports whether err is a definitive refusal of the bucket's
// configuration (missing, unlocked, GOVERNANCE, retention too short), as
// opposed to a transient failure such as the server being unreachable. The
// appliance refuses to start on a refusal but starts and spools on a
// transient failure.
func IsRefusal(err error) bool {
	for _, e := range []error{ErrBucketNotFound, ErrBucketNotLocked, ErrGovernanceMode, ErrNoDefaultRetention, ErrRetentionTooShort, ErrNotWORM, ErrBadConfig} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func deref[T any](p *T) any {
	if p == nil {
		return "none"
	}
	return *p
}
