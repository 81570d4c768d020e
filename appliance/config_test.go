package appliance

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadFile(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       error
	}{
		{"empty", "", nil},
		{"comments only", "# nothing\n", nil},
		{"known keys", "data_dir: /x\nlisten: 127.0.0.1:9443\naudit:\n  checkpoint_every: 10\n  checkpoint_interval: 1m\n", nil},
		{"unknown key", "data_dri: /x\n", ErrInvalidConfig},
		{"malformed", "data_dir: [\n", ErrInvalidConfig},
		{"global pps", "global_pps: 5000\n", ErrSafetyKey},
		{"nested rate", "probe:\n  rate: 5000\n", ErrSafetyKey},
		{"profile", "profile: lab\n", ErrSafetyKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			c := DefaultConfig()
			err := c.LoadFile(path)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("LoadFile = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestLoadEnvAndValidate(t *testing.T) {
	env := map[string]string{"FIQ_DATA": "/d", "FIQ_LISTEN": ":1", "FIQ_AUDIT_CHECKPOINT_EVERY": "5", "FIQ_AUDIT_CHECKPOINT_INTERVAL": "30s"}
	c := DefaultConfig()
	if err := c.LoadEnv(func(k string) string { return env[k] }, []string{"FIQ_DATA=/d"}); err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/d" || c.Listen != ":1" || c.Audit.CheckpointEvery != 5 || c.Audit.CheckpointInterval.String() != "30s" {
		t.Fatalf("env not applied: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := c.LoadEnv(func(string) string { return "" }, []string{"FIQ_MAX_RATE=9"}); !errors.Is(err, ErrSafetyKey) {
		t.Fatalf("FIQ_MAX_RATE: %v", err)
	}
	bad := []func(*Config){
		func(c *Config) { c.DataDir = "" },
		func(c *Config) { c.LogLevel = "loud" },
		func(c *Config) { c.Audit.CheckpointEvery = 0 },
		func(c *Config) { c.Audit.CheckpointInterval = 0 },
	}
	for i, mut := range bad {
		c := DefaultConfig()
		mut(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("case %d: Validate = %v", i, err)
		}
	}
	if d := DefaultConfig(); d.Validate() != nil {
		t.Fatal(d.Validate())
	}
}
