package appliance

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestLogLevel: the appliance's Logger honours log_level.
func TestLogLevel(t *testing.T) {
	ctx := context.Background()
	cfg := DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	if _, err := Init(ctx, cfg, InitOptions{Admin: "alice"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		level            string
		debug, info, err bool
	}{
		{level: "debug", debug: true, info: true, err: true},
		{level: "info", info: true, err: true},
		{level: "warn", err: true},
		{level: "error", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.level, func(t *testing.T) {
			var buf bytes.Buffer
			c := cfg
			c.LogLevel = tt.level
			a, err := OpenWith(ctx, c, nil, Options{LogOutput: &buf})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			a.Logger.Debug("d-msg")
			a.Logger.Info("i-msg")
			a.Logger.Error("e-msg", "err", "boom")
			out := buf.String()
			for _, c := range []struct {
				msg  string
				want bool
			}{{"d-msg", tt.debug}, {"i-msg", tt.info}, {"e-msg", tt.err}} {
				if strings.Contains(out, c.msg) != c.want {
					t.Errorf("level %s: %q logged = %v, want %v\n%s", tt.level, c.msg, !c.want, c.want, out)
				}
			}
		})
	}
}
