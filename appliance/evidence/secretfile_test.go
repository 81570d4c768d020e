package evidence

import (
	"errors"
	"strings"
	"testing"
	"time"

	"firewalliq/probe/bounded"
	"firewalliq/vault"
)

// TestUnboundedReadsSecretFile is the evidence part of the finding
// "Unbounded reads and unchecked names" (issue 13): vault.secret_key_file
// naming a device or a directory is refused at once as a bad configuration.
func TestUnboundedReadsSecretFile(t *testing.T) {
	for _, path := range []string{"/dev/zero", t.TempDir()} {
		t.Run(path, func(t *testing.T) {
			c := DefaultConfig()
			c.Backend, c.Endpoint, c.Bucket, c.AccessKey, c.SecretKeyFile = "minio", "127.0.0.1:9", "b", "a", path
			_, err := c.NewStore(t.TempDir(), time.Now)
			if !errors.Is(err, vault.ErrBadConfig) || !strings.Contains(err.Error(), bounded.ErrNotRegular.Error()) {
				t.Fatalf("NewStore = %v, want ErrBadConfig saying %q", err, bounded.ErrNotRegular)
			}
		})
	}
}
