package cli

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"firewalliq/appliance/cli/apiclient"
)

func TestRenderQR(t *testing.T) {
	q, err := renderQR("otpauth://totp/FirewallIQ%20Secure:alice?secret=JBSWY3DPEHPK3PXP&issuer=FirewallIQ%20Secure")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(q, "\n"), "\n")
	width := utf8.RuneCountInString(lines[0])
	// A QR code is square with an odd side of 21+4k modules; with the quiet
	// zone of 4 on each side it is side+8 wide and (side+8)/2 rows high.
	if (width-8-21)%4 != 0 || len(lines) != (width+1)/2 {
		t.Fatalf("QR %d wide, %d rows", width, len(lines))
	}
	for i, l := range lines {
		if utf8.RuneCountInString(l) != width || strings.Trim(l, "█▀▄ ") != "" {
			t.Fatalf("row %d: %q", i, l)
		}
	}
	// The quiet zone is light: the first row is all blocks.
	if strings.Trim(lines[0], "█") != "" {
		t.Fatalf("first row not quiet: %q", lines[0])
	}
}

func TestPrompterLines(t *testing.T) {
	env := testEnv(strings.NewReader(" alice\r\n s3cret \r\n 123 456 \nlast-without-newline"), nil)
	p := newPrompter(env)
	if got, err := p.Line("user"); err != nil || got != "alice" {
		t.Fatalf("line: %q, %v", got, err)
	}
	// A secret keeps its spaces: they may be part of a password.
	if got, err := p.Secret("password"); err != nil || got != " s3cret " {
		t.Fatalf("secret: %q, %v", got, err)
	}
	// A code as an authenticator shows it.
	if got, err := p.Code("code"); err != nil || got != "123456" {
		t.Fatalf("code: %q, %v", got, err)
	}
	if got, err := p.Secret("x"); err != nil || got != "last-without-newline" {
		t.Fatalf("last line: %q, %v", got, err)
	}
	if _, err := p.Line("code"); !errors.Is(err, errNoInput) {
		t.Fatalf("after the end: %v", err)
	}
}

func TestSessionResolution(t *testing.T) {
	dir := t.TempDir()
	path, _ := apiclient.CredentialsPath(func(k string) string { return map[string]string{"XDG_CONFIG_HOME": dir}[k] })
	saved := apiclient.Credentials{Addr: "https://appliance:8443", CertSHA256: strings.Repeat("ab", 32), Token: "sess", CSRF: "csrf"}
	tests := []struct {
		name    string
		save    bool
		env     map[string]string
		want    apiclient.Config
		wantErr error
	}{
		{name: "not logged in", wantErr: apiclient.ErrNoCredentials},
		{name: "credentials file", save: true, want: apiclient.Config{Addr: saved.Addr, CertSHA256: saved.CertSHA256, Session: "sess", CSRF: "csrf"}},
		{name: "FIQ_CACERT overrides", save: true, env: map[string]string{EnvAddr: saved.Addr + "/", EnvCACert: "/ca.pem"},
			want: apiclient.Config{Addr: saved.Addr, CertSHA256: saved.CertSHA256, CACertFile: "/ca.pem", Session: "sess", CSRF: "csrf"}},
		{name: "the session is not sent to another FIQ_ADDR", save: true, env: map[string]string{EnvAddr: "https://other:1"},
			wantErr: errors.New("not the appliance of the saved session")},
		{name: "a token may go to another FIQ_ADDR, without the saved pin", save: true, env: map[string]string{EnvAddr: "https://other:1", EnvToken: "tok", EnvCertSHA256: "cd"},
			want: apiclient.Config{Addr: "https://other:1", CertSHA256: "cd", Token: "tok"}},
		{name: "FIQ_TOKEN replaces the session", save: true, env: map[string]string{EnvToken: "tok"},
			want: apiclient.Config{Addr: saved.Addr, CertSHA256: saved.CertSHA256, Token: "tok"}},
		{name: "FIQ_TOKEN without a file", env: map[string]string{EnvToken: "tok", EnvAddr: "https://a:1", EnvCertSHA256: "cd"},
			want: apiclient.Config{Addr: "https://a:1", CertSHA256: "cd", Token: "tok"}},
		{name: "FIQ_TOKEN without any address", env: map[string]string{EnvToken: "tok"}, wantErr: errors.New("no appliance address")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			apiclient.RemoveCredentials(path)
			if tt.save {
				if err := apiclient.SaveCredentials(path, saved); err != nil {
					t.Fatal(err)
				}
			}
			vars := map[string]string{"XDG_CONFIG_HOME": dir}
			for k, v := range tt.env {
				vars[k] = v
			}
			env := testEnv(strings.NewReader(""), vars)
			got, _, err := (&remote{env: env, in: newPrompter(env)}).session()
			if tt.wantErr != nil {
				if err == nil || !(errors.Is(err, tt.wantErr) || strings.Contains(err.Error(), tt.wantErr.Error())) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || got.Addr != tt.want.Addr || got.CertSHA256 != tt.want.CertSHA256 || got.CACertFile != tt.want.CACertFile ||
				got.Token != tt.want.Token || got.Session != tt.want.Session || got.CSRF != tt.want.CSRF {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestAPIExitCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{name: "bad argument", err: &apiclient.Error{Code: "invalid_argument"}, want: ExitUsage},
		{name: "too large", err: &apiclient.Error{Code: "too_large"}, want: ExitUsage},
		{name: "unknown code from a newer server", err: &apiclient.Error{Code: "brand_new"}, want: ExitFailure},
		{name: "forbidden", err: &apiclient.Error{Code: "forbidden"}, want: ExitFailure},
		{name: "step-up not answered", err: apiclient.ErrNoStepUp, want: ExitFailure},
		{name: "bad pin", err: apiclient.ErrBadPin, want: ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := remoteErr("x", tt.err).(*remoteError).ExitCode(); got != tt.want {
				t.Fatalf("exit %d, want %d", got, tt.want)
			}
		})
	}
}

// testEnv is an environment with the given standard input and variables,
// its output thrown away.
func testEnv(stdin *strings.Reader, vars map[string]string) *Env {
	return &Env{Stdin: stdin, Stdout: io.Discard, Stderr: io.Discard, Getenv: func(k string) string { return vars[k] }, Now: time.Now}
}

// TestRemoteWithoutLogin: a management command with no session refuses
// with one clear line and contacts nothing.
func TestRemoteWithoutLogin(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{name: "user list", args: []string{"user", "list"}, code: 1, msg: "not logged in"},
		{name: "siem rm", args: []string{"siem", "rm", "x"}, code: 1, msg: "not logged in"},
		{name: "logout", args: []string{"logout"}, code: 0},
		{name: "user add without flags", args: []string{"user", "add"}, code: 2, msg: "--name and --role"},
		{name: "login with a bad pin", args: []string{"login", "--cert-sha256", "abc"}, code: 2, msg: "64 hex"},
		{name: "login over http", args: []string{"login", "--addr", "http://127.0.0.1:1"}, code: 2, msg: "https://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, map[string]string{"XDG_CONFIG_HOME": dir}, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.msg) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, tt.code, stderr, tt.msg)
			}
		})
	}
}

func TestRemoteErrorIsSafe(t *testing.T) {
	err := remoteErr("user add", &apiclient.Error{Status: 400, Code: "invalid_argument", Message: "new user \"\x1b[2Jx\": invalid argument"})
	if got := err.Error(); strings.ContainsRune(got, 0x1b) || !strings.Contains(got, "invalid_argument") {
		t.Fatalf("error text %q", got)
	}
}
