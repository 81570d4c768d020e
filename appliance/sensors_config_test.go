package appliance

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSensorsConfig: the fleet is off by default; sensors.* keys come from
// the file and FIQ_SENSORS_* variables, and bad values are refused.
func TestSensorsConfig(t *testing.T) {
	if c := DefaultConfig(); c.Sensors.Listen != "" || c.Validate() != nil {
		t.Fatalf("default fleet: %+v", c.Sensors)
	}
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("sensors:\n  listen: 127.0.0.1:4222\n  silent_after: 2m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		want string
		err  error
	}{
		{"file", nil, "127.0.0.1:4222", nil},
		{"env over file", map[string]string{"FIQ_SENSORS_LISTEN": "127.0.0.2:4222"}, "127.0.0.2:4222", nil},
		{"bad duration", map[string]string{"FIQ_SENSORS_SILENT_AFTER": "soon"}, "", ErrInvalidConfig},
		{"silence too short", map[string]string{"FIQ_SENSORS_SILENT_AFTER": "5s"}, "", ErrInvalidConfig},
		{"listen without port", map[string]string{"FIQ_SENSORS_LISTEN": "127.0.0.1"}, "", ErrInvalidConfig},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.DataDir = t.TempDir()
			if err := c.LoadFile(file); err != nil {
				t.Fatal(err)
			}
			var environ []string
			for k, v := range tc.env {
				environ = append(environ, k+"="+v)
			}
			err := c.LoadEnv(func(k string) string { return tc.env[k] }, environ)
			if err == nil {
				err = c.Validate()
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if tc.err == nil && (c.Sensors.Listen != tc.want || c.Sensors.SilentAfter != 2*time.Minute) {
				t.Fatalf("sensors %+v", c.Sensors)
			}
		})
	}
}
