// Command profile is the release tool for the safety profile: it creates a
// release key, signs a profile, verifies one, and writes a `go build
// -overlay` file that compiles an externally supplied profile, signature and
// release public key into the binary in place of the repository's
// development files, so a vendor's release key never enters the repository.
//
//	go run ./packaging/profile keygen  --out release
//	go run ./packaging/profile sign    --key release.key profile.json > profile.json.sig
//	go run ./packaging/profile verify  --pub release.pub --sig profile.json.sig profile.json
//	go run ./packaging/profile overlay --pub release.pub --sig profile.json.sig --profile profile.json --out overlay.json
//	CGO_ENABLED=0 go build -trimpath -overlay overlay.json -o firewalliq .
//
// packaging/profile/build-release.sh runs the last two steps and checks the
// result. See docs/safety-profile.md.
package main

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"firewalliq/probe/bounded"
	"firewalliq/probe/keys"
	"firewalliq/probe/safety"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "profile: %s\n", err)
		os.Exit(1)
	}
}

const usage = "usage: profile keygen|sign|verify|overlay [flags] (see docs/safety-profile.md)"

func run(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	out := fs.String("out", "", "output path")
	keyPath := fs.String("key", "", "release private key (PEM, mode 0600)")
	pubPath := fs.String("pub", "", "release public key (PEM)")
	sigPath := fs.String("sig", "", "profile signature file")
	profilePath := fs.String("profile", "", "profile JSON")
	repo := fs.String("repo", ".", "repository root (overlay)")
	lab := fs.Bool("lab", false, "overlay the lab profile slot (builds with -tags lab)")
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
		fmt.Fprintf(stdout, "release key id %s: %s.key (keep offline), %s.pub\n", keys.ID(pub), *out, *out)
		return nil
	case "sign":
		if *keyPath == "" || fs.NArg() != 1 {
			return errors.New("sign: want --key K.key PROFILE.json")
		}
		priv, err := keys.ReadPrivate(*keyPath)
		if err != nil {
			return err
		}
		data, err := bounded.ReadFile(fs.Arg(0), bounded.MaxProfileFile)
		if err != nil {
			return err
		}
		sig := safety.Sign(data, priv)
		// Refuse to sign a profile that the binary would refuse to load.
		if _, err := safety.Verify(data, sig, priv.Public().(ed25519.PublicKey)); err != nil {
			return fmt.Errorf("sign: %w", err)
		}
		return write(*out, stdout, sig)
	case "verify":
		if *pubPath == "" || *sigPath == "" || fs.NArg() != 1 {
			return errors.New("verify: want --pub K.pub --sig S PROFILE.json")
		}
		p, err := verifyFiles(fs.Arg(0), *sigPath, *pubPath)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "verified: profile %s version %d sha256 %s, release key %s\n", p.ID, p.Version, p.SHA256(), p.KeyID())
		return nil
	case "overlay":
		if *pubPath == "" || *sigPath == "" || *profilePath == "" || *out == "" || fs.NArg() != 0 {
			return errors.New("overlay: want --profile P --sig S --pub K --out overlay.json")
		}
		if _, err := verifyFiles(*profilePath, *sigPath, *pubPath); err != nil {
			return err
		}
		slot := "default"
		if *lab {
			slot = "lab"
		}
		dir, err := filepath.Abs(filepath.Join(*repo, "probe", "safety", "profile"))
		if err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(dir, slot+".json")); err != nil {
			return fmt.Errorf("overlay: --repo %s is not the firewalliq repository: %w", *repo, err)
		}
		replace := map[string]string{}
		for target, src := range map[string]string{slot + ".json": *profilePath, slot + ".json.sig": *sigPath, "release.pub": *pubPath} {
			abs, err := filepath.Abs(src)
			if err != nil {
				return err
			}
			replace[filepath.Join(dir, target)] = abs
		}
		data, err := json.MarshalIndent(map[string]any{"Replace": replace}, "", "  ")
		if err != nil {
			return err
		}
		return write(*out, stdout, append(data, '\n'))
	}
	return fmt.Errorf("unknown command %q; %s", args[0], usage)
}

func verifyFiles(profilePath, sigPath, pubPath string) (safety.Profile, error) {
	data, err := bounded.ReadFile(profilePath, bounded.MaxProfileFile)
	if err != nil {
		return safety.Profile{}, err
	}
	sig, err := bounded.ReadFile(sigPath, bounded.MaxProfileFile)
	if err != nil {
		return safety.Profile{}, err
	}
	pub, err := keys.ReadPublic(pubPath)
	if err != nil {
		return safety.Profile{}, err
	}
	p, err := safety.Verify(data, sig, pub)
	if err != nil {
		return safety.Profile{}, fmt.Errorf("%s: %w", profilePath, err)
	}
	return p, nil
}

func write(path string, stdout io.Writer, data []byte) error {
	if path == "" {
		_, err := stdout.Write(data)
		return err
	}
	if strings.HasSuffix(path, string(os.PathSeparator)) {
		return fmt.Errorf("%s is a directory", path)
	}
	return os.WriteFile(path, data, 0o644)
}
