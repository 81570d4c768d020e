// Package keys reads and writes the Ed25519 key files used everywhere a
// signature matters: scope signing keys, the appliance's job, report and audit
// checkpoint keys, and the safety profile release key.
//
// Keys are stored as PEM: private keys as PKCS #8 ("PRIVATE KEY"), public keys
// as PKIX ("PUBLIC KEY"), so that openssl and other tools can read them. A key
// id is derived from the public key alone (see ID), so a signature can name
// its key without trusting anything the signer says about itself.
package keys

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"

	"firewalliq/probe/bounded"
)

// Errors returned when a key file cannot be used.
var (
	// ErrNotEd25519 means the PEM block holds a key of another algorithm.
	ErrNotEd25519 = errors.New("not an Ed25519 key")
	// ErrNoPEM means the input holds no PEM block of the expected type.
	ErrNoPEM = errors.New("no PEM block of the expected type")
)

// ID returns the key id of pub: the first 8 bytes of SHA-256 over the raw
// 32-byte public key, in lower-case hex (16 characters).
func ID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Generate creates a new key pair from rand (crypto/rand when nil).
func Generate(r io.Reader) (ed25519.PublicKey, ed25519.PrivateKey, error) {
	if r == nil {
		r = rand.Reader
	}
	pub, priv, err := ed25519.GenerateKey(r)
	if err != nil {
		return nil, nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return pub, priv, nil
}

// MarshalPrivate encodes priv as a PKCS #8 PEM block.
func MarshalPrivate(priv ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// MarshalPublic encodes pub as a PKIX PEM block.
func MarshalPublic(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePrivate decodes a PKCS #8 PEM private key.
func ParsePrivate(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("parse private key: %w", ErrNoPEM)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("parse private key: %w", ErrNotEd25519)
	}
	return priv, nil
}

// ParsePublic decodes a PKIX PEM public key.
func ParsePublic(data []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("parse public key: %w", ErrNoPEM)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("parse public key: %w", ErrNotEd25519)
	}
	return pub, nil
}

// ReadPrivate reads a private key file. It refuses a file that group or
// others can read, as ssh does, because such a key may already be copied,
// and anything but a regular file of at most bounded.MaxKeyFile bytes.
func ReadPrivate(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	if fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("read private key %s: mode %04o is readable by others; chmod 600 it", path, fi.Mode().Perm())
	}
	data, err := bounded.ReadFile(path, bounded.MaxKeyFile)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	priv, err := ParsePrivate(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return priv, nil
}

// ReadPublic reads a public key file: a regular file of at most
// bounded.MaxKeyFile bytes.
func ReadPublic(path string) (ed25519.PublicKey, error) {
	data, err := bounded.ReadFile(path, bounded.MaxKeyFile)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	pub, err := ParsePublic(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pub, nil
}

// WritePair writes base.key (mode 0600) and base.pub (mode 0644). It refuses
// to overwrite either file, so an existing key is never lost.
func WritePair(base string, pub ed25519.PublicKey, priv ed25519.PrivateKey) error {
	privPEM, err := MarshalPrivate(priv)
	if err != nil {
		return err
	}
	pubPEM, err := MarshalPublic(pub)
	if err != nil {
		return err
	}
	if err := writeNew(base+".key", privPEM, 0o600); err != nil {
		return err
	}
	if err := writeNew(base+".pub", pubPEM, 0o644); err != nil {
		_ = os.Remove(base + ".key")
		return err
	}
	return nil
}

// writeNew creates path exclusively, writes data, and syncs it.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write key %s: %w", path, err)
	}
	return nil
}
