package evidence

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"firewalliq/vault"
)

// Config is the `vault` section of the appliance configuration. Every key,
// its environment variable and default are listed in docs/vault.md.
type Config struct {
	// Backend is "minio" (WORM, production) or "local" (demo, not WORM).
	// Empty means no vault is configured. Env FIQ_VAULT_BACKEND.
	Backend string `yaml:"backend"`
	// Endpoint is the MinIO/S3 API's host:port; TLS is always used.
	// Env FIQ_VAULT_ENDPOINT.
	Endpoint string `yaml:"endpoint"`
	// Bucket must have object lock with a COMPLIANCE default retention.
	// Env FIQ_VAULT_BUCKET.
	Bucket string `yaml:"bucket"`
	// Region, if the server needs one. Env FIQ_VAULT_REGION.
	Region string `yaml:"region"`
	// CAFile is a PEM bundle trusted for the endpoint (private PKI); system
	// roots when empty. Env FIQ_VAULT_CA_FILE.
	CAFile string `yaml:"ca_file"`
	// AccessKey is the S3 access key id. Env FIQ_VAULT_ACCESS_KEY.
	AccessKey string `yaml:"access_key"`
	// SecretKeyFile holds the S3 secret key (one line), so the secret is
	// not in the config file. Env FIQ_VAULT_SECRET_KEY_FILE.
	SecretKeyFile string `yaml:"secret_key_file"`
	// KMSKeyID selects SSE-KMS with this key; empty means SSE-S3. SSE-C is
	// not offered (it breaks pre-signed export). Env FIQ_VAULT_KMS_KEY_ID.
	KMSKeyID string `yaml:"kms_key_id"`
	// RetentionDays locks each object for this long, and is the minimum
	// default retention the bucket must have. Default 365.
	// Env FIQ_VAULT_RETENTION_DAYS.
	RetentionDays int `yaml:"retention_days"`
	// LocalDir is the local backend's directory; <data_dir>/vault-local
	// when empty. Env FIQ_VAULT_LOCAL_DIR.
	LocalDir string `yaml:"local_dir"`
	// SpoolMaxBytes bounds the local spool; new evidence is refused when
	// full. Default 1 GiB. Env FIQ_VAULT_SPOOL_MAX_BYTES.
	SpoolMaxBytes int64 `yaml:"spool_max_bytes"`
	// SpoolAlertAt is the fraction of SpoolMaxBytes that raises an alert.
	// Default 0.8. Env FIQ_VAULT_SPOOL_ALERT_AT.
	SpoolAlertAt float64 `yaml:"spool_alert_at"`
	// CheckInterval re-verifies the bucket's object lock this often.
	// Default 10m. Env FIQ_VAULT_CHECK_INTERVAL.
	CheckInterval time.Duration `yaml:"check_interval"`
}

// SpoolDirName is the spool's directory inside the data directory.
const SpoolDirName = "spool"

// DefaultConfig returns the documented defaults (no backend configured).
func DefaultConfig() Config {
	return Config{RetentionDays: 365, SpoolMaxBytes: 1 << 30, SpoolAlertAt: 0.8, CheckInterval: 10 * time.Minute}
}

// Validate checks the section. production refuses the local backend.
func (c Config) Validate(production bool) error {
	switch c.Backend {
	case "":
		return fmt.Errorf("%w: vault.backend is not set (minio or local)", vault.ErrBadConfig)
	case "local":
		if production {
			return fmt.Errorf("vault.backend local: %w: production mode needs minio", vault.ErrNotWORM)
		}
	case "minio":
		var missing []string
		for k, v := range map[string]string{"endpoint": c.Endpoint, "bucket": c.Bucket, "access_key": c.AccessKey, "secret_key_file": c.SecretKeyFile} {
			if v == "" {
				missing = append(missing, "vault."+k)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%w: %s required for the minio backend", vault.ErrBadConfig, strings.Join(missing, ", "))
		}
	default:
		return fmt.Errorf("%w: vault.backend %q (want minio or local)", vault.ErrBadConfig, c.Backend)
	}
	if c.RetentionDays < 1 {
		return fmt.Errorf("%w: vault.retention_days must be at least 1", vault.ErrBadConfig)
	}
	if c.SpoolMaxBytes < 1<<20 {
		return fmt.Errorf("%w: vault.spool_max_bytes must be at least 1 MiB", vault.ErrBadConfig)
	}
	if c.SpoolAlertAt <= 0 || c.SpoolAlertAt > 1 {
		return fmt.Errorf("%w: vault.spool_alert_at must be in (0, 1]", vault.ErrBadConfig)
	}
	if c.CheckInterval < time.Second {
		return fmt.Errorf("%w: vault.check_interval must be at least 1s", vault.ErrBadConfig)
	}
	return nil
}

// NewStore builds the configured backend. dataDir places the local
// backend's default directory.
func (c Config) NewStore(dataDir string, now func() time.Time) (vault.Store, error) {
	switch c.Backend {
	case "local":
		dir := c.LocalDir
		if dir == "" {
			dir = filepath.Join(dataDir, "vault-local")
		}
		return vault.NewLocal(dir, now)
	case "minio":
		secret, err := os.ReadFile(c.SecretKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: vault.secret_key_file: %w", vault.ErrBadConfig, err)
		}
		return vault.NewMinIO(vault.MinIOConfig{
			Endpoint: c.Endpoint, Bucket: c.Bucket, Region: c.Region, CAFile: c.CAFile,
			AccessKey: c.AccessKey, SecretKey: strings.TrimSpace(string(secret)),
			KMSKeyID: c.KMSKeyID, Retention: time.Duration(c.RetentionDays) * 24 * time.Hour, Now: now,
		})
	default:
		return nil, fmt.Errorf("%w: vault.backend %q", vault.ErrBadConfig, c.Backend)
	}
}

// SpoolOptions returns the spool settings for dataDir.
func (c Config) SpoolOptions(dataDir string, now func() time.Time) vault.SpoolOptions {
	return vault.SpoolOptions{Dir: filepath.Join(dataDir, SpoolDirName), MaxBytes: c.SpoolMaxBytes, AlertAt: c.SpoolAlertAt, Now: now}
}

// LoadEnv applies FIQ_VAULT_* variables over c.
func (c *Config) LoadEnv(getenv func(string) string) error {
	str := map[string]*string{
		"FIQ_VAULT_BACKEND": &c.Backend, "FIQ_VAULT_ENDPOINT": &c.Endpoint, "FIQ_VAULT_BUCKET": &c.Bucket,
		"FIQ_VAULT_REGION": &c.Region, "FIQ_VAULT_CA_FILE": &c.CAFile, "FIQ_VAULT_ACCESS_KEY": &c.AccessKey,
		"FIQ_VAULT_SECRET_KEY_FILE": &c.SecretKeyFile, "FIQ_VAULT_KMS_KEY_ID": &c.KMSKeyID, "FIQ_VAULT_LOCAL_DIR": &c.LocalDir,
	}
	for name, p := range str {
		if v := getenv(name); v != "" {
			*p = v
		}
	}
	if v := getenv("FIQ_VAULT_RETENTION_DAYS"); v != "" {
		if _, err := fmt.Sscanf(v, "%d", &c.RetentionDays); err != nil {
			return fmt.Errorf("FIQ_VAULT_RETENTION_DAYS=%q: %w", v, vault.ErrBadConfig)
		}
	}
	if v := getenv("FIQ_VAULT_SPOOL_MAX_BYTES"); v != "" {
		if _, err := fmt.Sscanf(v, "%d", &c.SpoolMaxBytes); err != nil {
			return fmt.Errorf("FIQ_VAULT_SPOOL_MAX_BYTES=%q: %w", v, vault.ErrBadConfig)
		}
	}
	if v := getenv("FIQ_VAULT_SPOOL_ALERT_AT"); v != "" {
		if _, err := fmt.Sscanf(v, "%g", &c.SpoolAlertAt); err != nil {
			return fmt.Errorf("FIQ_VAULT_SPOOL_ALERT_AT=%q: %w", v, vault.ErrBadConfig)
		}
	}
	if v := getenv("FIQ_VAULT_CHECK_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("FIQ_VAULT_CHECK_INTERVAL=%q: %w", v, vault.ErrBadConfig)
		}
		c.CheckInterval = d
	}
	return nil
}
