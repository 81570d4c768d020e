package vault

import "time"

// Settings is a backend's configuration as the console's settings page
// shows it: where evidence goes and how it is locked. It holds no secret
// (no access or secret key, no CA material).
type Settings struct {
	// Kind is "minio" or "local".
	Kind string `json:"kind"`
	// Endpoint and Bucket name the MinIO/S3 bucket; Dir the local
	// backend's directory.
	Endpoint string `json:"endpoint,omitempty"`
	Bucket   string `json:"bucket,omitempty"`
	Region   string `json:"region,omitempty"`
	Dir      string `json:"dir,omitempty"`
	// LockMode is the object-lock mode every object is written with and
	// the bucket's default retention must have ("COMPLIANCE"); "" for the
	// local backend, which has no lock.
	LockMode string `json:"lock_mode,omitempty"`
	// Retention is how long each object is locked from its upload.
	Retention time.Duration `json:"retention_ns,omitempty"`
	// Encryption is "SSE-S3" or "SSE-KMS"; KMSKeyID names the KMS key.
	Encryption string `json:"encryption,omitempty"`
	KMSKeyID   string `json:"kms_key_id,omitempty"`
}

// Configured is implemented by the backends that can describe their
// configuration (MinIO and Local).
type Configured interface {
	Settings() Settings
}

// Settings describes the bucket, its lock mode and retention, and the
// encryption in use (Check verifies the bucket matches).
func (m *MinIO) Settings() Settings {
	s := Settings{Kind: "minio", Endpoint: m.cfg.Endpoint, Bucket: m.cfg.Bucket, Region: m.cfg.Region,
		LockMode: "COMPLIANCE", Retention: m.cfg.Retention, Encryption: "SSE-S3"}
	if m.cfg.KMSKeyID != "" {
		s.Encryption, s.KMSKeyID = "SSE-KMS", m.cfg.KMSKeyID
	}
	return s
}

// Settings describes the local directory (no lock, no encryption).
func (l *Local) Settings() Settings { return Settings{Kind: "local", Dir: l.dir} }
