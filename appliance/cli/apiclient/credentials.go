package apiclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"firewalliq/probe/bounded"
)

// Credentials is what `firewalliq login` keeps between commands: where the
// appliance is, the pin of its certificate, and the session. The file holds
// a live session secret, so it is written 0600 in a 0700 directory and
// refused when others can read it (as ssh refuses a readable key).
type Credentials struct {
	Addr       string    `json:"addr"`
	CertSHA256 string    `json:"cert_sha256,omitempty"`
	CACertFile string    `json:"ca_cert_file,omitempty"`
	User       string    `json:"user,omitempty"`
	Token      string    `json:"token"`
	CSRF       string    `json:"csrf"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
}

// CredentialsFile is the file's name inside DIR/firewalliq.
const CredentialsFile = "credentials"

// maxCredentialsBytes bounds what LoadCredentials reads.
const maxCredentialsBytes = 64 << 10

// Sentinel errors of the credentials file.
var (
	// ErrNoCredentials means there is no credentials file: log in first.
	ErrNoCredentials = errors.New("not logged in (run 'firewalliq login')")
	// ErrCredentialsMode means the credentials file or its directory can be
	// read or written by others.
	ErrCredentialsMode = errors.New("credentials file is accessible by other users")
	// ErrNoConfigDir means neither XDG_CONFIG_HOME nor HOME is set.
	ErrNoConfigDir = errors.New("neither XDG_CONFIG_HOME nor HOME is set")
)

// CredentialsPath returns $XDG_CONFIG_HOME/firewalliq/credentials, or
// $HOME/.config/firewalliq/credentials when XDG_CONFIG_HOME is unset or not
// absolute (the XDG base directory specification says to ignore a relative
// one).
func CredentialsPath(getenv func(string) string) (string, error) {
	dir := getenv("XDG_CONFIG_HOME")
	if !filepath.IsAbs(dir) {
		home := getenv("HOME")
		if !filepath.IsAbs(home) {
			return "", ErrNoConfigDir
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "firewalliq", CredentialsFile), nil
}

// LoadCredentials reads the credentials file at path.
func LoadCredentials(path string) (Credentials, error) {
	var c Credentials
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, ErrNoCredentials
	}
	if err != nil {
		return c, fmt.Errorf("credentials: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return c, fmt.Errorf("%s has mode %04o (chmod 600 it, or log in again): %w", path, st.Mode().Perm(), ErrCredentialsMode)
	}
	// bounded.Open refuses anything but a regular file (a FIFO would block)
	// and stops reading past the limit.
	f, err := bounded.Open(path, maxCredentialsBytes)
	if err != nil {
		return c, fmt.Errorf("credentials: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("credentials %s: %w", path, err)
	}
	if c.Addr == "" || c.Token == "" {
		return c, fmt.Errorf("credentials %s: no address or session in it (log in again)", path)
	}
	return c, nil
}

// SaveCredentials writes c to path atomically: a 0600 temporary file in the
// same 0700 directory, synced, then renamed over the old one, so a crash
// never leaves a half-written or briefly readable file.
func SaveCredentials(path string, c Credentials) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	// The directory is ours (…/firewalliq): tighten it if it was made
	// looser by hand.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".credentials-*")
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("credentials: %w", err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("credentials: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("credentials: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	return nil
}

// RemoveCredentials deletes the credentials file; a missing file is not an
// error.
func RemoveCredentials(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("credentials: %w", err)
	}
	return nil
}
