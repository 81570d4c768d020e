package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"

	"firewalliq/probe/bounded"
)

// runInputs runs the command tree in-process with stdin and an offline
// resolver (no query leaves the machine) and returns exit code and output.
func runInputs(t testing.TB, stdin io.Reader, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{
		Stdin: stdin, Stdout: &out, Stderr: &errb,
		// A repository build carries the development-signed profile, which
		// production mode refuses before reading any file; these cases are
		// about the files.
		Getenv:  func(k string) string { return map[string]string{"FIQ_PRODUCTION": "false"}[k] },
		Environ: func() []string { return []string{"FIQ_PRODUCTION=false"} },
		Now:     func() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) },
		Resolve: func(context.Context, string) ([]netip.Addr, error) { return nil, errors.New("no such host") },
	}
	code = Run(context.Background(), env, args)
	return code, out.String(), errb.String()
}

// inputsScope is a valid scope document for the fixtures below.
const inputsScope = `{"id": "inputs", "tenant": "acme", "name": "inputs test", "environment": "non-production",
 "cidrs": ["10.20.0.0/28"], "exclude": [], "ports": "tcp:22", "probes": ["tcp-connect"],
 "not_before": "2026-11-01T00:00:00Z", "not_after": "2026-12-31T23:59:59Z", "max_pps": 100}`

// inputsFixture writes a key pair, the scope and its signed envelope to dir.
func inputsFixture(t testing.TB, dir string) (key, pub, doc, signed string) {
	t.Helper()
	base := filepath.Join(dir, "lead")
	if code, _, stderr := runInputs(t, nil, "scope", "keygen", "--out", base); code != 0 {
		t.Fatalf("keygen: %s", stderr)
	}
	doc = filepath.Join(dir, "scope.json")
	if err := os.WriteFile(doc, []byte(inputsScope), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runInputs(t, nil, "scope", "sign", "--key", base+".key", doc)
	if code != 0 {
		t.Fatalf("sign: %s", stderr)
	}
	signed = filepath.Join(dir, "signed.json")
	if err := os.WriteFile(signed, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	return base + ".key", base + ".pub", doc, signed
}

// endless is standard input that never ends, of one byte repeated (like
// 'firewalliq scope sign - < /dev/zero').
type endless struct{ b byte }

func (e endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = e.b
	}
	return len(p), nil
}

// TestUnboundedReadsCLI is the regression test of the finding "Unbounded
// reads and unchecked names" (issue 13) at the command line: /dev/zero, a
// FIFO, a directory or an oversized regular file given as --trust, --pub, a
// scope file, the config file, a checkpoint note, a proof or a SIEM key file
// fails at once with one line naming the file (exit 1, or 2 where the flag
// is a usage error), never a stack trace, and without reading it whole.
func TestUnboundedReadsCLI(t *testing.T) {
	dir := t.TempDir()
	key, pub, _, signed := inputsFixture(t, dir)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := func(name string, n int64) string {
		p := filepath.Join(dir, name)
		// Sparse: the size check must refuse it without reading it.
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, n); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bigScope := big("big-scope.json", bounded.MaxScopeFile+1)
	bigKey := big("big.pub", bounded.MaxKeyFile+1)
	bigConfig := big("big.yaml", bounded.MaxConfigFile+1)
	bigProof := big("big-proof.json", bounded.MaxProofInput+1)
	notRegular := "not a regular file"
	tests := []struct {
		name  string
		stdin io.Reader
		args  []string
		code  int
		msg   string // in the one-line error
	}{
		{name: "scope verify --pub /dev/zero", args: []string{"scope", "verify", "--pub", "/dev/zero", signed}, code: 1, msg: "/dev/zero: " + notRegular},
		{name: "scope verify --pub FIFO", args: []string{"scope", "verify", "--pub", fifo, signed}, code: 1, msg: "(a FIFO)"},
		{name: "scope verify --pub directory", args: []string{"scope", "verify", "--pub", dir, signed}, code: 1, msg: "(a directory)"},
		{name: "scope verify --pub oversized", args: []string{"scope", "verify", "--pub", bigKey, signed}, code: 1, msg: "file too large (limit 64 KiB)"},
		{name: "scope verify /dev/zero", args: []string{"scope", "verify", "--pub", pub, "/dev/zero"}, code: 1, msg: notRegular},
		{name: "scope verify FIFO", args: []string{"scope", "verify", "--pub", pub, fifo}, code: 1, msg: notRegular},
		{name: "scope verify oversized", args: []string{"scope", "verify", "--pub", pub, bigScope}, code: 1, msg: "file too large (limit 4 MiB)"},
		{name: "scope sign /dev/zero", args: []string{"scope", "sign", "--key", key, "/dev/zero"}, code: 1, msg: notRegular},
		{name: "scope sign --key /dev/zero", args: []string{"scope", "sign", "--key", "/dev/zero", signed}, code: 1, msg: notRegular},
		{name: "scope sign endless stdin", stdin: endless{}, args: []string{"scope", "sign", "--key", key, "-"}, code: 1, msg: "standard input: file too large (limit 4 MiB)"},
		{name: "scope check --scope FIFO", args: []string{"scope", "check", "--scope", fifo, "--pub", pub, "10.20.0.1"}, code: 1, msg: notRegular},
		{name: "scope check --pub /dev/zero", args: []string{"scope", "check", "--scope", signed, "--pub", "/dev/zero", "10.20.0.1"}, code: 1, msg: notRegular},
		{name: "scope expand --scope directory", args: []string{"scope", "expand", "--scope", dir, "--pub", pub}, code: 1, msg: notRegular},
		{name: "--config /dev/zero", args: []string{"audit", "verify", "--config", "/dev/zero"}, code: 2, msg: notRegular},
		{name: "--config FIFO", args: []string{"audit", "verify", "--config", fifo}, code: 2, msg: notRegular},
		{name: "--config oversized", args: []string{"audit", "verify", "--config", bigConfig}, code: 2, msg: "file too large (limit 1 MiB)"},
		{name: "audit verify --from-checkpoint /dev/zero", args: []string{"audit", "verify", "--from-checkpoint", "/dev/zero"}, code: 2, msg: notRegular},
		{name: "audit verify-proof /dev/zero", args: []string{"audit", "verify-proof", "--pub", pub, "/dev/zero"}, code: 1, msg: notRegular},
		{name: "audit verify-proof --pub /dev/zero", args: []string{"audit", "verify-proof", "--pub", "/dev/zero", signed}, code: 1, msg: notRegular},
		{name: "audit verify-proof oversized", args: []string{"audit", "verify-proof", "--pub", pub, bigProof}, code: 1, msg: "file too large (limit 4 GiB)"},
		{name: "audit verify-proof endless proof", stdin: io.MultiReader(strings.NewReader(`{"type":"`), endless{'a'}), args: []string{"audit", "verify-proof", "--pub", pub}, code: 1, msg: "one proof is larger than 1 MiB"},
		{name: "siem add --hmac-key-file /dev/zero", args: []string{"siem", "add", "--name", "h", "--kind", "webhook", "--address", "https://127.0.0.1:9/x", "--hmac-key-file", "/dev/zero", "--data", filepath.Join(dir, "no-data")}, code: 1, msg: notRegular},
		{name: "siem add --ca FIFO", args: []string{"siem", "add", "--name", "t", "--kind", "tls", "--address", "127.0.0.1:6514", "--ca", fifo, "--data", filepath.Join(dir, "no-data")}, code: 1, msg: notRegular},
		// The API clients that send a file (gosec review, issue 17): they
		// blocked on a FIFO before they were bounded.
		{name: "key add FIFO", args: []string{"key", "add", fifo}, code: 1, msg: "key add: read " + fifo + ": " + notRegular + " (a FIFO)"},
		{name: "key add /dev/zero", args: []string{"key", "add", "/dev/zero"}, code: 1, msg: notRegular},
		{name: "key add oversized", args: []string{"key", "add", bigKey}, code: 1, msg: "file too large"},
		{name: "key sign FIFO", args: []string{"key", "sign", "k1", fifo}, code: 1, msg: notRegular},
		{name: "scope register FIFO", args: []string{"scope", "register", fifo}, code: 1, msg: notRegular},
		{name: "scope register oversized", args: []string{"scope", "register", bigScope}, code: 1, msg: "file too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdin := tt.stdin
			if stdin == nil {
				stdin = strings.NewReader("")
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			code, _, stderr := runInputs(t, stdin, tt.args...)
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.code, stderr)
			}
			checkOneLine(t, stderr)
			if !strings.Contains(stderr, tt.msg) {
				t.Errorf("stderr %q does not say %q", stderr, tt.msg)
			}
			if strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "fatal error") {
				t.Errorf("stack trace on stderr: %q", stderr)
			}
			if took > 10*time.Second {
				t.Errorf("took %v; must fail fast", took)
			}
			// Bounded memory: the whole run allocates far less than what
			// the unbounded read did (gigabytes), whatever the input.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
				t.Errorf("allocated %d MiB", alloc>>20)
			}
		})
	}
}

// checkOneLine fails unless s is empty or one line (ending in a newline)
// free of control characters.
func checkOneLine(t testing.TB, s string) {
	t.Helper()
	body := strings.TrimSuffix(s, "\n")
	for _, r := range body {
		if unicode.IsControl(r) || unsafeRune(r) {
			t.Fatalf("stderr holds control character %U: %q", r, s)
		}
	}
}

// TestErrorsEscaped: a file name chosen to attack the terminal (an ANSI
// sequence, a newline that would forge a second line) reaches stderr
// escaped, on one line.
func TestErrorsEscaped(t *testing.T) {
	dir := t.TempDir()
	evil := filepath.Join(dir, "k\x1b[2J\x1b]0;pwned\a\nfirewalliq: all good\u202e.pub")
	code, _, stderr := runInputs(t, strings.NewReader(""), "scope", "verify", "--pub", evil, "x.json")
	if code != 1 {
		t.Fatalf("exit %d: %q", code, stderr)
	}
	checkOneLine(t, stderr)
	for _, want := range []string{`\x1b[2J`, `\x1b]0;pwned\x07`, `\u202e`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q lacks the visible escape %q", stderr, want)
		}
	}
}

func TestTermSafe(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "plain", in: "soc-udp", want: "soc-udp"},
		{name: "non-ASCII letters pass", in: "Zürich-Ω 東京", want: "Zürich-Ω 東京"},
		{name: "empty", in: "", want: ""},
		{name: "ANSI colour", in: "\x1b[31mred\x1b[0m", want: `\x1b[31mred\x1b[0m`},
		{name: "window title (OSC) with BEL", in: "\x1b]0;title\a", want: `\x1b]0;title\x07`},
		{name: "newline and CR", in: "a\nb\rc", want: `a\nb\rc`},
		{name: "tab", in: "a\tb", want: `a\tb`},
		{name: "NUL and DEL", in: "a\x00b\x7f", want: `a\x00b\x7f`},
		{name: "C1 CSI", in: "a\u009b2Jb", want: `a\u009b2Jb`},
		{name: "bidi override", in: "abc\u202edcba", want: `abc\u202edcba`},
		{name: "line separator", in: "a\u2028b", want: `a\u2028b`},
		{name: "isolate", in: "\u2066x\u2069", want: `\u2066x\u2069`},
		{name: "invalid UTF-8", in: "a\xffb\xc3", want: `a\xffb\xc3`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := termSafe(tt.in); got != tt.want {
				t.Errorf("termSafe(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzTermSafe: whatever the input, the output is valid UTF-8 without a
// control, C1, separator or bidi rune; safe input comes back unchanged.
func FuzzTermSafe(f *testing.F) {
	f.Add("soc-udp")            // plain
	f.Add("\x1b[31mred\x1b[0m") // ANSI colour
	f.Add("a\u009b2J")          // C1 CSI
	f.Add("x\u202ey")           // bidi override
	f.Add("\xff\xfe")           // invalid UTF-8
	f.Fuzz(func(t *testing.T, s string) {
		got := termSafe(s)
		for i, r := range got {
			if r == '\uFFFD' && !strings.Contains(s, "\uFFFD") {
				t.Fatalf("termSafe(%q) = %q: invalid UTF-8 at %d", s, got, i)
			}
			if unicode.IsControl(r) || unsafeRune(r) {
				t.Fatalf("termSafe(%q) = %q keeps %U", s, got, r)
			}
		}
		if !needsEscape(s) && got != s {
			t.Fatalf("safe %q changed to %q", s, got)
		}
		if needsEscape(got) {
			t.Fatalf("termSafe(%q) = %q still needs escaping", s, got)
		}
	})
}

// fuzzCommands are the offline commands FuzzCLIArgs drives: none of them
// writes outside its arguments' files or opens a network connection (scope
// check uses the offline resolver of runInputs). 'scope keygen' is left out
// because it creates files wherever --out says.
var fuzzCommands = [][]string{
	{"scope", "sign"},
	{"scope", "verify"},
	{"scope", "check"},
	{"scope", "expand", "--limit", "64"},
	{"profile", "show"},
	{"version"},
	{"audit", "verify-proof"},
}

// FuzzCLIArgs drives the CLI's argument and file parsing in-process: one of
// the offline commands, fuzzed arguments (one per line; @file, @pub, @key,
// @scope, @signed and @dir name fixtures in a temporary directory, where
// @file holds fuzzed bytes, also given on standard input). Whatever the
// input: no panic, an exit code in {0,1,2,3}, and stderr one line without
// control characters. The seed corpus is in testdata/fuzz/FuzzCLIArgs.
func FuzzCLIArgs(f *testing.F) {
	// Seeds: valid uses of each command, then each class of bad input.
	f.Add(uint8(1), "--pub\n@pub\n@signed", []byte(""))                                              // verify ok
	f.Add(uint8(0), "--key\n@key\n@scope", []byte(""))                                               // sign ok
	f.Add(uint8(0), "--key\n@key\n-", []byte(inputsScope))                                           // sign from stdin
	f.Add(uint8(0), "--key\n@key\n@file", []byte(`{"id":"x","id":"y"}`))                             // duplicate key
	f.Add(uint8(2), "--scope\n@signed\n--pub\n@pub\n10.20.0.1\nweb.lab\n::1", []byte(""))            // check mixed targets
	f.Add(uint8(3), "--scope\n@signed\n--pub\n@pub\n--seed\n7", []byte(""))                          // expand
	f.Add(uint8(6), "--pub\n@pub\n@file", []byte(`{"type":"inclusion"}`))                            // bad proof
	f.Add(uint8(6), "--pub\n@pub", []byte("{\"type\":\"consistency\",\"old_size\":-1}\n"))           // proof on stdin
	f.Add(uint8(1), "--pub\n/dev/zero\n@signed", []byte(""))                                         // device as key
	f.Add(uint8(1), "--pub\n@pub\n@dir", []byte(""))                                                 // directory as scope
	f.Add(uint8(1), "--pub\n\x1b[2J\n\u202e", []byte(""))                                            // terminal attack in names
	f.Add(uint8(4), "--json", []byte(""))                                                            // profile show
	f.Add(uint8(6), "--config\n@file", []byte("data_dir: /nonexistent\nvault:\n  backend: local\n")) // config file parsing
	f.Add(uint8(6), "--config\n@file", []byte("max_pps: 1000000\n"))                                 // a safety key, refused
	f.Add(uint8(5), "--bogus", []byte(""))                                                           // unknown flag
	dir := f.TempDir()
	key, pub, doc, signed := inputsFixture(f, dir)
	file := filepath.Join(dir, "file")
	f.Fuzz(func(t *testing.T, cmd uint8, args string, content []byte) {
		if len(content) > 1<<16 || len(args) > 4096 {
			t.Skip()
		}
		if err := os.WriteFile(file, content, 0o600); err != nil {
			t.Fatal(err)
		}
		argv := append([]string(nil), fuzzCommands[int(cmd)%len(fuzzCommands)]...)
		if args != "" {
			for _, a := range strings.Split(args, "\n") {
				switch a {
				case "@file":
					a = file
				case "@pub":
					a = pub
				case "@key":
					a = key
				case "@scope":
					a = doc
				case "@signed":
					a = signed
				case "@dir":
					a = dir
				}
				argv = append(argv, a)
			}
		}
		code, _, stderr := runInputs(t, bytes.NewReader(content), argv...)
		switch code {
		case ExitOK, ExitFailure, ExitUsage, ExitProfile:
		default:
			t.Fatalf("%q: exit %d", argv, code)
		}
		if strings.Count(stderr, "\n") > 1 {
			t.Fatalf("%q: stderr is more than one line: %q", argv, stderr)
		}
		checkOneLine(t, stderr)
	})
}
