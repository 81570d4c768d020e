package evidence

import (
	"bytes"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// TestConfigYAML decodes a `vault` section the way the appliance's config
// loader does (unknown keys are errors), so the documented keys are the
// struct's keys.
func TestConfigYAML(t *testing.T) {
	doc := []byte(`
backend: minio
endpoint: minio.example:9000
bucket: evidence
region: us-east-1
ca_file: /etc/firewalliq/minio-ca.pem
access_key: fiq
secret_key_file: /etc/firewalliq/minio.secret
kms_key_id: fiq-key
retention_days: 400
local_dir: /tmp/x
spool_max_bytes: 2147483648
spool_alert_at: 0.9
check_interval: 5m
`)
	c := DefaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	want := Config{Backend: "minio", Endpoint: "minio.example:9000", Bucket: "evidence", Region: "us-east-1",
		CAFile: "/etc/firewalliq/minio-ca.pem", AccessKey: "fiq", SecretKeyFile: "/etc/firewalliq/minio.secret",
		KMSKeyID: "fiq-key", RetentionDays: 400, LocalDir: "/tmp/x", SpoolMaxBytes: 2 << 30, SpoolAlertAt: 0.9, CheckInterval: 5 * time.Minute}
	if c != want {
		t.Fatalf("decoded %+v\nwant    %+v", c, want)
	}
	if err := c.Validate(true); err != nil {
		t.Fatal(err)
	}
	bad := yaml.NewDecoder(bytes.NewReader([]byte("bukket: x\n")))
	bad.KnownFields(true)
	if err := bad.Decode(&c); err == nil {
		t.Fatal("misspelt key accepted")
	}
}
