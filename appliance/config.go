package appliance

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"firewalliq/appliance/evidence"
	"firewalliq/appliance/sensor"
	"firewalliq/probe/bounded"
)

// DefaultDataDir is where the appliance keeps its state unless told otherwise.
const DefaultDataDir = "/var/lib/firewalliq"

// Config is the appliance configuration. Every key, its environment variable
// and its default are documented in docs/configuration.md; keep them in step.
//
// Safety caps (packet rates, concurrency, probe kinds) are deliberately not
// here: they are compiled into the binary in probe/safety, and a config file
// that names one is refused (see ErrSafetyKey).
type Config struct {
	// DataDir holds the database, keys and spool. Env FIQ_DATA, flag --data.
	DataDir string `yaml:"data_dir"`
	// Listen is the console's HTTPS address. Env FIQ_LISTEN, flag --listen.
	Listen string `yaml:"listen"`
	// LogLevel is debug, info, warn or error. Env FIQ_LOG_LEVEL.
	LogLevel string `yaml:"log_level"`
	// Audit configures checkpointing of the audit log.
	Audit AuditConfig `yaml:"audit"`
	// Production refuses anything that is not fit for audit evidence, such
	// as the local (not WORM) vault backend. Env FIQ_PRODUCTION.
	Production bool `yaml:"production"`
	// Vault configures the evidence vault (docs/vault.md).
	Vault evidence.Config `yaml:"vault"`
	// Review configures the access-review cadence (docs/access-review.md).
	Review ReviewConfig `yaml:"review"`
	// Sensors configures the fleet's embedded NATS server (docs/fleet.md);
	// off unless sensors.listen is set.
	Sensors sensor.Config `yaml:"sensors"`
	// WebAuthn configures security keys: the relying party id and origins.
	WebAuthn WebAuthnConfig `yaml:"webauthn"`
	// TLS names a certificate of the customer's for the console (and the
	// sensor fleet); unset, the one init made.
	TLS TLSConfig `yaml:"tls"`
}

// TLSConfig names the console's certificate and key: both or neither.
// Neither (the default) serves the self-signed certificate made by init,
// DATA/tls/console.crt and console.key. They are read when the appliance
// opens (serve start); a changed file takes effect at the next start (no
// reload on SIGHUP).
type TLSConfig struct {
	// CertFile is a PEM file: the certificate, then any intermediates.
	// Env FIQ_TLS_CERT_FILE.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of CertFile's certificate; group and
	// others may not read it. Env FIQ_TLS_KEY_FILE.
	KeyFile string `yaml:"key_file"`
}

// Load reads and checks the configured certificate and key at now: both
// regular files within bounded.MaxCertFile, the key not readable by group
// or others, the key the certificate's, the certificate valid at now. Its
// errors name the config key and wrap ErrInvalidConfig.
func (t TLSConfig) Load(now time.Time) (tls.Certificate, error) {
	certPEM, err := bounded.ReadFile(t.CertFile, bounded.MaxCertFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: tls.cert_file: %w", ErrInvalidConfig, err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return tls.Certificate{}, fmt.Errorf("%w: tls.cert_file %s: no PEM certificate first in the file", ErrInvalidConfig, t.CertFile)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: tls.cert_file %s: %w", ErrInvalidConfig, t.CertFile, err)
	}
	if fi, err := os.Stat(t.KeyFile); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 != 0 {
		return tls.Certificate{}, fmt.Errorf("%w: tls.key_file %s: mode %04o is readable by others; chmod 600 it", ErrInvalidConfig, t.KeyFile, fi.Mode().Perm())
	}
	keyPEM, err := bounded.ReadFile(t.KeyFile, bounded.MaxCertFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: tls.key_file: %w", ErrInvalidConfig, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: tls.key_file %s is not the private key of tls.cert_file %s: %w", ErrInvalidConfig, t.KeyFile, t.CertFile, err)
	}
	switch {
	case now.Before(leaf.NotBefore):
		return tls.Certificate{}, fmt.Errorf("%w: tls.cert_file %s: not valid before %s", ErrInvalidConfig, t.CertFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	case now.After(leaf.NotAfter):
		return tls.Certificate{}, fmt.Errorf("%w: tls.cert_file %s: expired at %s", ErrInvalidConfig, t.CertFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	cert.Leaf = leaf
	return cert, nil
}

// WebAuthnConfig configures security keys (docs/security.md).
type WebAuthnConfig struct {
	// RPID is the WebAuthn relying party id: the host name users type to
	// reach the console (no scheme or port). Env FIQ_WEBAUTHN_RP_ID.
	// Default: the console certificate's first DNS name other than
	// "localhost", else "localhost".
	RPID string `yaml:"rp_id"`
	// Origins are the exact origins allowed to use security keys
	// ("https://host:port"). Env FIQ_WEBAUTHN_ORIGINS (comma-separated).
	// Default: https://<rp_id> with the port of listen (none for 443).
	Origins []string `yaml:"origins"`
}

// ReviewConfig configures access reviews.
type ReviewConfig struct {
	// Interval is how often each tenant's (and the appliance admins')
	// access review is due: a review is overdue Interval after the last
	// one was signed. Env FIQ_REVIEW_INTERVAL (a Go duration); default
	// 2184h (91 days, quarterly); at least 1h.
	Interval time.Duration `yaml:"interval"`
}

// AuditConfig configures the audit log's signed checkpoints.
type AuditConfig struct {
	// CheckpointEvery signs a checkpoint after this many new entries.
	// Env FIQ_AUDIT_CHECKPOINT_EVERY.
	CheckpointEvery int `yaml:"checkpoint_every"`
	// CheckpointInterval signs a checkpoint at least this often while entries
	// are added. Env FIQ_AUDIT_CHECKPOINT_INTERVAL (a Go duration, "10m").
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		DataDir:  DefaultDataDir,
		Listen:   ":8443",
		LogLevel: "info",
		Audit: AuditConfig{
			CheckpointEvery:    1000,
			CheckpointInterval: 10 * time.Minute,
		},
		Production: true,
		Vault:      evidence.DefaultConfig(),
		Review:     ReviewConfig{Interval: 91 * 24 * time.Hour},
		Sensors:    sensor.DefaultConfig(),
	}
}

// Errors from loading configuration.
var (
	// ErrSafetyKey means a configuration source tried to set a safety cap.
	ErrSafetyKey = errors.New("safety caps are compiled into the binary and cannot be configured")
	// ErrInvalidConfig means a value is malformed or out of range.
	ErrInvalidConfig = errors.New("invalid configuration")
)

// safetyWords mark keys that would set a safety cap. They are refused by name,
// with a reason, rather than reported as merely unknown.
var safetyWords = []string{"pps", "rate", "cap", "concurren", "profile", "probe_kinds", "max_targets"}

// LoadFile applies a YAML config file over c. Unknown keys are errors, so a
// misspelt key is never silently ignored. The file must be a regular file of
// at most bounded.MaxConfigFile bytes.
func (c *Config) LoadFile(path string) error {
	data, err := bounded.ReadFile(path, bounded.MaxConfigFile)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("config file %s: %w: %w", path, ErrInvalidConfig, err)
	}
	if err := refuseSafetyKeys("", raw); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	// A file of only comments decodes to io.EOF: no changes.
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: %w: %w", path, ErrInvalidConfig, err)
	}
	return nil
}

func refuseSafetyKeys(prefix string, m map[string]any) error {
	for k, v := range m {
		full := prefix + k
		lk := strings.ToLower(k)
		for _, w := range safetyWords {
			if strings.Contains(lk, w) {
				return fmt.Errorf("key %q: %w", full, ErrSafetyKey)
			}
		}
		if sub, ok := v.(map[string]any); ok {
			if err := refuseSafetyKeys(full+".", sub); err != nil {
				return err
			}
		}
	}
	return nil
}

// LoadEnv applies FIQ_* variables over c using getenv. Any FIQ_ variable in
// environ that would set a safety cap is refused.
func (c *Config) LoadEnv(getenv func(string) string, environ []string) error {
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "FIQ_") {
			continue
		}
		ln := strings.ToLower(name)
		for _, w := range safetyWords {
			if strings.Contains(ln, w) {
				return fmt.Errorf("environment %s: %w", name, ErrSafetyKey)
			}
		}
	}
	if v := getenv("FIQ_DATA"); v != "" {
		c.DataDir = v
	}
	if v := getenv("FIQ_LISTEN"); v != "" {
		c.Listen = v
	}
	if v := getenv("FIQ_LOG_LEVEL"); v != "" {
		c.LogLevel = v
	}
	if v := getenv("FIQ_PRODUCTION"); v != "" {
		switch v {
		case "true", "1", "yes":
			c.Production = true
		case "false", "0", "no":
			c.Production = false
		default:
			return fmt.Errorf("FIQ_PRODUCTION=%q: %w: want true or false", v, ErrInvalidConfig)
		}
	}
	if err := c.Vault.LoadEnv(getenv); err != nil {
		return err
	}
	if err := c.Sensors.LoadEnv(getenv); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if v := getenv("FIQ_AUDIT_CHECKPOINT_EVERY"); v != "" {
		var n int
		if _, err := fmt.Sscanf(v, "%d", &n); err != nil {
			return fmt.Errorf("FIQ_AUDIT_CHECKPOINT_EVERY=%q: %w: not a number", v, ErrInvalidConfig)
		}
		c.Audit.CheckpointEvery = n
	}
	if v := getenv("FIQ_TLS_CERT_FILE"); v != "" {
		c.TLS.CertFile = v
	}
	if v := getenv("FIQ_TLS_KEY_FILE"); v != "" {
		c.TLS.KeyFile = v
	}
	if v := getenv("FIQ_WEBAUTHN_RP_ID"); v != "" {
		c.WebAuthn.RPID = v
	}
	if v := getenv("FIQ_WEBAUTHN_ORIGINS"); v != "" {
		c.WebAuthn.Origins = nil
		for _, o := range strings.Split(v, ",") {
			if o = strings.TrimSpace(o); o != "" {
				c.WebAuthn.Origins = append(c.WebAuthn.Origins, o)
			}
		}
	}
	if v := getenv("FIQ_REVIEW_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("FIQ_REVIEW_INTERVAL=%q: %w: %w", v, ErrInvalidConfig, err)
		}
		c.Review.Interval = d
	}
	if v := getenv("FIQ_AUDIT_CHECKPOINT_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("FIQ_AUDIT_CHECKPOINT_INTERVAL=%q: %w: %w", v, ErrInvalidConfig, err)
		}
		c.Audit.CheckpointInterval = d
	}
	return nil
}

// Validate checks ranges after all sources were applied.
func (c *Config) Validate() error {
	if strings.TrimSpace(c.DataDir) == "" {
		return fmt.Errorf("%w: data_dir is empty", ErrInvalidConfig)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("%w: log_level %q (want debug, info, warn or error)", ErrInvalidConfig, c.LogLevel)
	}
	if c.Audit.CheckpointEvery < 1 {
		return fmt.Errorf("%w: audit.checkpoint_every must be at least 1", ErrInvalidConfig)
	}
	if c.Audit.CheckpointInterval < time.Second {
		return fmt.Errorf("%w: audit.checkpoint_interval must be at least 1s", ErrInvalidConfig)
	}
	if c.Review.Interval < time.Hour {
		return fmt.Errorf("%w: review.interval must be at least 1h", ErrInvalidConfig)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return fmt.Errorf("%w: tls.cert_file and tls.key_file must be set together (neither: the certificate made by init)", ErrInvalidConfig)
	}
	if err := c.Sensors.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	// An unset vault is allowed (nothing that needs evidence runs); a set
	// one must be complete and, in production, WORM.
	if c.Vault.Backend != "" {
		if err := c.Vault.Validate(c.Production); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	return nil
}
