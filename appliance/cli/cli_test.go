package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runCLI runs the command tree in-process with a private environment.
func runCLI(t *testing.T, envVars map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{
		Stdin:  strings.NewReader(""),
		Stdout: &out,
		Stderr: &errb,
		Getenv: func(k string) string { return envVars[k] },
		Environ: func() []string {
			var kv []string
			for k, v := range envVars {
				kv = append(kv, k+"="+v)
			}
			return kv
		},
		Now: func() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) },
	}
	code = Run(context.Background(), env, args)
	return code, out.String(), errb.String()
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"help", []string{"--help"}, 0},
		{"bare root", nil, 0},
		{"unknown command", []string{"bogus"}, 2},
		{"unknown flag", []string{"version", "--bogus"}, 2},
		{"extra argument", []string{"version", "extra"}, 2},
		{"unknown group subcommand", []string{"audit", "bogus"}, 2},
		{"init without admin", []string{"init", "--data", "/nonexistent/x"}, 2},
		{"serve on missing data dir", []string{"serve", "--data", "/nonexistent/firewalliq-test"}, 1},
		{"completion", []string{"completion", "bash"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Production mode off: serve would otherwise refuse this
			// development-signed build with exit 4 before looking at --data.
			code, _, stderr := runCLI(t, map[string]string{"FIQ_PRODUCTION": "false"}, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tt.code, stderr)
			}
			if code != 0 && strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Fatalf("error is not one line: %q", stderr)
			}
		})
	}
}

func TestVersionJSON(t *testing.T) {
	code, out, _ := runCLI(t, nil, "version", "--json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("version --json is not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"version", "commit", "go_version"} {
		if _, ok := v[k]; !ok {
			t.Errorf("version --json lacks %q", k)
		}
	}
}

// snapshot returns every file under dir with its content and mode.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		data := ""
		if !fi.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			data = string(b)
		}
		m[p] = fi.Mode().String() + fi.ModTime().String() + data
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestInitTwiceRefuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	code, out, stderr := runCLI(t, nil, "init", "--data", dir, "--admin", "root-admin", "--json")
	if code != 0 {
		t.Fatalf("init: exit %d: %s", code, stderr)
	}
	var res map[string]string
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("init --json: %v\n%s", err, out)
	}
	for _, k := range []string{"one_time_password", "totp_secret", "console_cert_sha256", "admin"} {
		if res[k] == "" {
			t.Errorf("init --json lacks %q", k)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir mode: %v %v", fi.Mode(), err)
	}
	before := snapshot(t, dir)
	code, _, stderr = runCLI(t, nil, "init", "--data", dir, "--admin", "other")
	if code != 1 || !strings.Contains(stderr, "already initialised") {
		t.Fatalf("second init: exit %d, %q", code, stderr)
	}
	after := snapshot(t, dir)
	if len(before) != len(after) {
		t.Fatalf("second init changed the file set: %d -> %d", len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Fatalf("second init changed %s", k)
		}
	}
	// No temporary directories are left beside it.
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Fatalf("leftovers beside the data dir: %v", entries)
	}
}

func TestConfigPrecedence(t *testing.T) {
	tmp := t.TempDir()
	cfgFile := filepath.Join(tmp, "config.yaml")
	if err := os.WriteFile(cfgFile, []byte("data_dir: "+filepath.Join(tmp, "from-file")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile2 := filepath.Join(tmp, "config2.yaml")
	if err := os.WriteFile(cfgFile2, []byte("# comment\ndata_dir: "+filepath.Join(tmp, "from-file2")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"config path from env", map[string]string{"FIQ_CONFIG": cfgFile2}, nil, "from-file2"},
		{"file over default", nil, []string{"--config", cfgFile}, "from-file"},
		{"env over file", map[string]string{"FIQ_DATA": filepath.Join(tmp, "from-env")}, []string{"--config", cfgFile}, "from-env"},
		{"flag over env", map[string]string{"FIQ_DATA": filepath.Join(tmp, "from-env2")}, []string{"--config", cfgFile, "--data", filepath.Join(tmp, "from-flag")}, "from-flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"init", "--admin", "a", "--json"}, tt.args...)
			code, out, stderr := runCLI(t, tt.env, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var res map[string]string
			_ = json.Unmarshal([]byte(out), &res)
			if filepath.Base(res["data_dir"]) != tt.want {
				t.Fatalf("data_dir = %q, want .../%s", res["data_dir"], tt.want)
			}
		})
	}
}

func TestSafetyCapsNotConfigurable(t *testing.T) {
	tmp := t.TempDir()
	cfgFile := filepath.Join(tmp, "caps.yaml")
	if err := os.WriteFile(cfgFile, []byte("probe:\n  max_pps: 100000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"config file", nil, []string{"--config", cfgFile}},
		{"environment", map[string]string{"FIQ_GLOBAL_PPS": "100000"}, nil},
		{"flag", nil, []string{"--max-pps", "100000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"init", "--admin", "a", "--data", filepath.Join(tmp, tt.name)}, tt.args...)
			code, _, stderr := runCLI(t, tt.env, args...)
			if code == 0 {
				t.Fatal("a safety cap was accepted")
			}
			if _, err := os.Stat(filepath.Join(tmp, tt.name)); err == nil {
				t.Fatal("init ran despite the refused cap")
			}
			_ = stderr
		})
	}
}
