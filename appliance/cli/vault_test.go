package cli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"firewalliq/appliance/evidence"
	"firewalliq/vault"
	"firewalliq/vault/vaulttest"
)

func TestVaultStatus(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	sp, err := vault.OpenSpool(vault.SpoolOptions{Dir: filepath.Join(data, evidence.SpoolDirName),
		Now: func() time.Time { return time.Date(2026, 11, 27, 11, 58, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a.json", "b.json"} {
		if _, err := sp.Add(ctx, "tenants/t1/scans/s1/"+name, "t1", strings.NewReader("{}")); err != nil {
			t.Fatal(err)
		}
	}
	srv := vaulttest.StartFor(t)
	locked, err := srv.MakeBucket(ctx, vaulttest.Compliance)
	if err != nil {
		t.Fatal(err)
	}
	gov, err := srv.MakeBucket(ctx, vaulttest.Governance)
	if err != nil {
		t.Fatal(err)
	}
	secret := vaulttest.SecretKeyFile(t)
	minioEnv := func(bucket string) map[string]string {
		return map[string]string{"FIQ_VAULT_BACKEND": "minio", "FIQ_VAULT_ENDPOINT": srv.Addr, "FIQ_VAULT_BUCKET": bucket,
			"FIQ_VAULT_CA_FILE": srv.CAFile(), "FIQ_VAULT_ACCESS_KEY": vaulttest.User, "FIQ_VAULT_SECRET_KEY_FILE": secret, "FIQ_VAULT_RETENTION_DAYS": "1"}
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		want []string
	}{
		{"unconfigured", nil, nil, 0, []string{"not configured", "pending   2", "oldest    2m0s"}},
		{"local", map[string]string{"FIQ_VAULT_BACKEND": "local", "FIQ_PRODUCTION": "false", "FIQ_VAULT_LOCAL_DIR": t.TempDir()}, nil, 0, []string{"not WORM", "worm      NO", "alert     none"}},
		{"minio locked", minioEnv(locked), nil, 0, []string{"minio https://" + srv.Addr + "/" + locked, "worm      yes"}},
		{"minio governance", minioEnv(gov), nil, 1, []string{"worm      NO: ", "GOVERNANCE"}},
		{"minio no check", minioEnv(gov), []string{"--no-check"}, 0, []string{"worm      not checked"}},
		{"bad env", map[string]string{"FIQ_VAULT_RETENTION_DAYS": "soon"}, nil, 2, nil},
		{"mistyped data dir", map[string]string{"FIQ_DATA": data + "-typo"}, nil, 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"FIQ_DATA": data}
			for k, v := range tc.env {
				env[k] = v
			}
			code, out, errs := runCLI(t, env, append([]string{"vault", "status"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout %s\nstderr %s", code, tc.code, out, errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	code, out, _ := runCLI(t, map[string]string{"FIQ_DATA": data}, "vault", "status", "--json")
	var rep struct {
		Spool struct {
			Pending int   `json:"pending"`
			Bytes   int64 `json:"bytes"`
		} `json:"spool"`
		WORM bool `json:"worm"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Spool.Pending != 2 || rep.Spool.Bytes == 0 || rep.WORM {
		t.Fatalf("--json: exit %d, %s", code, out)
	}
}
