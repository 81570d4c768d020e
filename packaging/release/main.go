// Command release writes and checks the signed checksum file that ships with
// every release (docs/packaging.md#verifying-a-release):
//
//	go run ./packaging/release keygen --out dev-release            # a DEVELOPMENT key, for tests
//	go run ./packaging/release sums   --out dist/SHA256SUMS dist/firewalliq_*.deb ...
//	go run ./packaging/release sign   --key release.key dist/SHA256SUMS     # writes SHA256SUMS.sig
//	go run ./packaging/release verify --pub release.pub dist/SHA256SUMS [FILE...]
//
// SHA256SUMS is in the format of coreutils' sha256sum ("<hex>  <name>", one
// line per file, sorted by name), so `sha256sum -c` reads it too.
// SHA256SUMS.sig is the raw 64-byte Ed25519 signature over the file's exact
// bytes, made with the release key (the key that also signs the safety
// profile; PEM files of probe/keys), so a customer without this tool can
// check it with `openssl pkeyutl -verify -rawin`.
package main

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"firewalliq/probe/keys"
)

// Errors a verification reports; each one means "do not install this".
var (
	// ErrBadSignature means SHA256SUMS.sig is not the release key's
	// signature over SHA256SUMS: the file or the signature was changed, or
	// another key signed it.
	ErrBadSignature = errors.New("signature does not verify with the release key")
	// ErrChecksum means a file's SHA-256 differs from the signed list.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrNotListed means a file asked for is not in the signed list.
	ErrNotListed = errors.New("not listed in the signed checksum file")
	// ErrMalformed means the checksum file is not in sha256sum format.
	ErrMalformed = errors.New("malformed checksum file")
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "release: %s\n", err)
		os.Exit(1)
	}
}

const usage = "usage: release keygen|sums|sign|verify [flags] (see docs/packaging.md)"

func run(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	out := fs.String("out", "", "output path")
	keyPath := fs.String("key", "", "release private key (PEM, mode 0600)")
	pubPath := fs.String("pub", "", "release public key (PEM)")
	sigPath := fs.String("sig", "", "signature file (default: the checksum file + .sig)")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	switch args[0] {
	case "keygen":
		if *out == "" {
			return errors.New("keygen: --out NAME is required")
		}
		pub, priv, err := keys.Generate(nil)
		if err != nil {
			return err
		}
		if err := keys.WritePair(*out, pub, priv); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "DEVELOPMENT release key id %s: %s.key, %s.pub (for tests; a customer release is signed with the vendor's offline key)\n", keys.ID(pub), *out, *out)
		return nil
	case "sums":
		if *out == "" || fs.NArg() == 0 {
			return errors.New("sums: want --out SHA256SUMS FILE...")
		}
		data, err := Sums(fs.Args())
		if err != nil {
			return err
		}
		return os.WriteFile(*out, data, 0o644)
	case "sign":
		if *keyPath == "" || fs.NArg() != 1 {
			return errors.New("sign: want --key K.key SHA256SUMS")
		}
		priv, err := keys.ReadPrivate(*keyPath)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(fs.Arg(0))
		if err != nil {
			return err
		}
		// Refuse to sign a file a customer's verify would reject.
		if _, err := ParseSums(data); err != nil {
			return fmt.Errorf("sign %s: %w", fs.Arg(0), err)
		}
		sig := ed25519.Sign(priv, data)
		dst := *sigPath
		if dst == "" {
			dst = fs.Arg(0) + ".sig"
		}
		if err := os.WriteFile(dst, sig, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "signed %s with release key %s: %s\n", fs.Arg(0), keys.ID(priv.Public().(ed25519.PublicKey)), dst)
		return nil
	case "verify":
		if *pubPath == "" || fs.NArg() < 1 {
			return errors.New("verify: want --pub release.pub SHA256SUMS [FILE...]")
		}
		pub, err := keys.ReadPublic(*pubPath)
		if err != nil {
			return err
		}
		sumsPath := fs.Arg(0)
		dst := *sigPath
		if dst == "" {
			dst = sumsPath + ".sig"
		}
		data, err := os.ReadFile(sumsPath)
		if err != nil {
			return err
		}
		sig, err := os.ReadFile(dst)
		if err != nil {
			return err
		}
		checked, err := Verify(data, sig, pub, filepath.Dir(sumsPath), fs.Args()[1:])
		for _, name := range checked {
			fmt.Fprintf(stdout, "%s: OK\n", name)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "verified %d file(s) against %s, signed by release key %s\n", len(checked), sumsPath, keys.ID(pub))
		return nil
	}
	return fmt.Errorf("unknown command %q; %s", args[0], usage)
}

// Sums returns the sha256sum-format list of files, sorted by base name.
// Names must be distinct: the list names files by base name only, as they
// sit side by side on the download page.
func Sums(paths []string) ([]byte, error) {
	type entry struct{ name, sum string }
	var entries []entry
	seen := map[string]bool{}
	for _, p := range paths {
		name := filepath.Base(p)
		if seen[name] {
			return nil, fmt.Errorf("sums: %s: two files with this name", name)
		}
		seen[name] = true
		sum, err := fileSHA256(p)
		if err != nil {
			return nil, fmt.Errorf("sums: %w", err)
		}
		entries = append(entries, entry{name, sum})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var b bytes.Buffer
	for _, e := range entries {
		fmt.Fprintf(&b, "%s  %s\n", e.sum, e.name)
	}
	return b.Bytes(), nil
}

// maxEntries bounds the checksum file a verifier will read; a release has a
// handful of files.
const maxEntries = 10000

// ParseSums reads a sha256sum-format list into name -> lower-case hex.
// It accepts only what Sums writes: "<64 hex>  <base name>" lines, each
// name once, no paths, so a signed list cannot point outside its directory.
func ParseSums(data []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		n++
		if n > maxEntries {
			return nil, fmt.Errorf("%w: more than %d lines", ErrMalformed, maxEntries)
		}
		line := sc.Text()
		sum, name, ok := strings.Cut(line, "  ")
		if !ok || len(sum) != 64 || strings.ToLower(sum) != sum {
			return nil, fmt.Errorf("%w: line %d", ErrMalformed, n)
		}
		if _, err := hex.DecodeString(sum); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrMalformed, n, err)
		}
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") || strings.TrimSpace(name) != name {
			return nil, fmt.Errorf("%w: line %d: bad file name %q", ErrMalformed, n, name)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%w: line %d: %s listed twice", ErrMalformed, n, name)
		}
		out[name] = sum
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no entries", ErrMalformed)
	}
	return out, nil
}

// Verify checks sig over sums with pub, then the files in dir: the ones
// named in only (each must be listed), or every listed file when only is
// empty. It returns the names it checked successfully, in order.
func Verify(sums, sig []byte, pub ed25519.PublicKey, dir string, only []string) ([]string, error) {
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, sums, sig) {
		return nil, ErrBadSignature
	}
	list, err := ParseSums(sums)
	if err != nil {
		return nil, err
	}
	var names []string
	if len(only) == 0 {
		for name := range list {
			names = append(names, name)
		}
		sort.Strings(names)
	} else {
		for _, p := range only {
			name := filepath.Base(p)
			if _, ok := list[name]; !ok {
				return nil, fmt.Errorf("%s: %w", name, ErrNotListed)
			}
			names = append(names, name)
		}
	}
	var checked []string
	for i, name := range names {
		path := filepath.Join(dir, name)
		if len(only) > 0 {
			path = only[i]
		}
		got, err := fileSHA256(path)
		if err != nil {
			return checked, err
		}
		if got != list[name] {
			return checked, fmt.Errorf("%s: %w", name, ErrChecksum)
		}
		checked = append(checked, name)
	}
	return checked, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
