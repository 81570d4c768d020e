package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// release sets up a signed release in a temporary directory: two artefacts,
// SHA256SUMS, SHA256SUMS.sig and a development key pair generated now (no
// key is ever committed).
func release(t *testing.T) (dir, pub string) {
	t.Helper()
	dir = t.TempDir()
	keyDir := t.TempDir()
	for name, body := range map[string]string{
		"firewalliq_1.0.0_amd64.deb":    "deb body",
		"firewalliq-1.0.0.x86_64.rpm":   "rpm body",
		"firewalliq.cdx.json":           `{"bomFormat":"CycloneDX"}`,
		"firewalliq-1.0.0-linux-amd64":  "binary",
		"firewalliq-1.0.0-with space.x": "odd but legal name",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	base := filepath.Join(keyDir, "dev-release")
	mustRun(t, "keygen", "--out", base)
	files, _ := filepath.Glob(filepath.Join(dir, "firewalliq*"))
	mustRun(t, append([]string{"sums", "--out", filepath.Join(dir, "SHA256SUMS")}, files...)...)
	mustRun(t, "sign", "--key", base+".key", filepath.Join(dir, "SHA256SUMS"))
	return dir, base + ".pub"
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(args, &out); err != nil {
		t.Fatalf("release %s: %v", strings.Join(args, " "), err)
	}
	return out.String()
}

func flipByte(t *testing.T, path string, at int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[at%len(data)] ^= 0x01
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, dir, pub string) // nil: untouched release
		only   []string
		want   error
	}{
		{name: "intact release", want: nil},
		{name: "intact, one file asked for", only: []string{"firewalliq_1.0.0_amd64.deb"}, want: nil},
		{
			name:   "changed byte in an artefact",
			tamper: func(t *testing.T, dir, _ string) { flipByte(t, filepath.Join(dir, "firewalliq_1.0.0_amd64.deb"), 3) },
			want:   ErrChecksum,
		},
		{
			name:   "changed byte in SHA256SUMS",
			tamper: func(t *testing.T, dir, _ string) { flipByte(t, filepath.Join(dir, "SHA256SUMS"), 10) },
			want:   ErrBadSignature,
		},
		{
			name:   "changed byte in the signature",
			tamper: func(t *testing.T, dir, _ string) { flipByte(t, filepath.Join(dir, "SHA256SUMS.sig"), 0) },
			want:   ErrBadSignature,
		},
		{
			name: "truncated signature",
			tamper: func(t *testing.T, dir, _ string) {
				os.WriteFile(filepath.Join(dir, "SHA256SUMS.sig"), []byte("x"), 0o644)
			},
			want: ErrBadSignature,
		},
		{
			name: "another key's public key",
			tamper: func(t *testing.T, _, pub string) {
				other := filepath.Join(t.TempDir(), "other")
				mustRun(t, "keygen", "--out", other)
				data, _ := os.ReadFile(other + ".pub")
				os.WriteFile(pub, data, 0o644)
			},
			want: ErrBadSignature,
		},
		{
			name: "list re-made after swapping an artefact, old signature kept",
			tamper: func(t *testing.T, dir, _ string) {
				p := filepath.Join(dir, "firewalliq-1.0.0.x86_64.rpm")
				os.WriteFile(p, []byte("evil rpm"), 0o644)
				files, _ := filepath.Glob(filepath.Join(dir, "firewalliq*"))
				mustRun(t, append([]string{"sums", "--out", filepath.Join(dir, "SHA256SUMS")}, files...)...)
			},
			want: ErrBadSignature,
		},
		{name: "file not in the list", only: []string{"firewalliq_9.9.9_amd64.deb"}, want: ErrNotListed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, pub := release(t)
			if tt.tamper != nil {
				tt.tamper(t, dir, pub)
			}
			var only []string
			for _, o := range tt.only {
				only = append(only, filepath.Join(dir, o))
			}
			var out bytes.Buffer
			err := run(append([]string{"verify", "--pub", pub, filepath.Join(dir, "SHA256SUMS")}, only...), &out)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("verify: %v", err)
				}
				if !strings.Contains(out.String(), "verified") {
					t.Fatalf("verify printed %q", out.String())
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("verify = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestSumsFormat: the list is what coreutils writes, so `sha256sum -c`
// accepts it and names the same files.
func TestSumsFormat(t *testing.T) {
	dir, _ := release(t)
	data, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("want 5 lines, got %q", data)
	}
	for i := 1; i < len(lines); i++ {
		if lines[i-1][66:] >= lines[i][66:] {
			t.Errorf("not sorted by name: %q before %q", lines[i-1], lines[i])
		}
	}
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Skip("sha256sum not installed")
	}
	cmd := exec.Command("sha256sum", "-c", "SHA256SUMS")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	if _, err := Sums([]string{filepath.Join(dir, "SHA256SUMS"), filepath.Join(t.TempDir(), "SHA256SUMS")}); err == nil {
		t.Fatal("Sums accepted two files with one name")
	}
}

// TestOpenSSLVerify checks the documented customer flow without this tool:
// openssl verifies our signature over the release key's PEM public key, and
// rejects a changed byte; and a signature openssl makes verifies here, so the
// two agree on the format (raw 64-byte Ed25519 over the file's bytes).
func TestOpenSSLVerify(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	dir, pub := release(t)
	sums := filepath.Join(dir, "SHA256SUMS")
	verify := func() error {
		cmd := exec.Command("openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin", "-in", sums, "-sigfile", sums+".sig")
		out, err := cmd.CombinedOutput()
		if err == nil && !strings.Contains(string(out), "Signature Verified Successfully") {
			t.Fatalf("openssl said %q", out)
		}
		return err
	}
	if err := verify(); err != nil {
		t.Fatalf("openssl rejected our signature: %v", err)
	}
	// openssl signs with the private key; our verifier accepts it.
	key := strings.TrimSuffix(pub, ".pub") + ".key"
	sign := exec.Command("openssl", "pkeyutl", "-sign", "-inkey", key, "-rawin", "-in", sums, "-out", sums+".sig")
	if out, err := sign.CombinedOutput(); err != nil {
		t.Fatalf("openssl sign: %v\n%s", err, out)
	}
	mustRun(t, "verify", "--pub", pub, sums)
	flipByte(t, sums, 5)
	if err := verify(); err == nil {
		t.Fatal("openssl verified a changed SHA256SUMS")
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{name: "no command", args: nil},
		{name: "unknown command", args: []string{"publish"}},
		{name: "keygen without out", args: []string{"keygen"}},
		{name: "sums without files", args: []string{"sums", "--out", "x"}},
		{name: "sign without key", args: []string{"sign", "SHA256SUMS"}},
		{name: "verify without pub", args: []string{"verify", "SHA256SUMS"}},
		{name: "bad flag", args: []string{"verify", "--nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := run(tt.args, &bytes.Buffer{}); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestSignRefusesMalformedList(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "k")
	mustRun(t, "keygen", "--out", base)
	bad := filepath.Join(dir, "SHA256SUMS")
	os.WriteFile(bad, []byte("not a checksum\n"), 0o644)
	if err := run([]string{"sign", "--key", base + ".key", bad}, &bytes.Buffer{}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("sign = %v, want ErrMalformed", err)
	}
	if _, err := os.Stat(bad + ".sig"); !os.IsNotExist(err) {
		t.Fatal("a signature was written for a malformed list")
	}
}

// FuzzParseSums: the parser never panics, and whatever it accepts names only
// plain base names with 64 lower-case hex digits, and survives a re-encode.
func FuzzParseSums(f *testing.F) {
	h := strings.Repeat("ab", 32)
	f.Add([]byte(h + "  firewalliq_1.0.0_amd64.deb\n")) // one valid line
	f.Add([]byte(h + "  a\n" + h + "  b\n"))            // two entries
	f.Add([]byte(h + "  a\n" + h + "  a\n"))            // duplicate name
	f.Add([]byte(h + "  ../etc/passwd\n"))              // path escape
	f.Add([]byte(strings.ToUpper(h) + "  a\n"))         // upper-case hex
	f.Add([]byte(h + " *a\n"))                          // binary-mode marker
	f.Add([]byte(""))                                   // empty
	f.Add([]byte(h[:63] + "g  a\n"))                    // non-hex digit
	f.Fuzz(func(t *testing.T, data []byte) {
		list, err := ParseSums(data)
		if err != nil {
			return
		}
		var b bytes.Buffer
		for name, sum := range list {
			if len(sum) != 64 || strings.ContainsAny(name, "/\\\x00") || name == ".." {
				t.Fatalf("accepted %q -> %q", name, sum)
			}
			b.WriteString(sum + "  " + name + "\n")
		}
		again, err := ParseSums(b.Bytes())
		if err != nil || len(again) != len(list) {
			t.Fatalf("re-encoded list: %v (%d vs %d)", err, len(again), len(list))
		}
	})
}
