// Package keyring owns the appliance's own key material in the data
// directory: separate Ed25519 keys for audit checkpoints, jobs and reports, the
// master key that seals secrets at rest, and the console's TLS certificate.
//
// Keys are separate so that a leak of one (say the report key, used often)
// cannot forge another's signatures (the audit checkpoints). Layout under the
// data directory:
//
//	keys/audit.key, keys/audit.pub     checkpoint signing (Ed25519, PEM)
//	keys/job.key,   keys/job.pub       job signing
//	keys/report.key, keys/report.pub   compliance report signing
//	keys/master.key                    32 random bytes, seals secrets (AES-256-GCM)
//	tls/console.crt, tls/console.key   self-signed console certificate (ECDSA P-256)
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"firewalliq/probe/bounded"
	"firewalliq/probe/keys"
)

// Purposes of the appliance's signing keys; each has its own key pair.
const (
	Audit  = "audit"
	Job    = "job"
	Report = "report"
)

// ErrSealed means sealed data could not be opened: wrong master key, or the
// ciphertext or its associated data was changed.
var ErrSealed = errors.New("sealed data cannot be opened")

// masterKeyLen is the size of the master key: AES-256.
const masterKeyLen = 32

// Keyring holds the loaded key material.
type Keyring struct {
	signers map[string]ed25519.PrivateKey
	master  []byte
	// CertFile and KeyFile are the console TLS certificate and key paths.
	CertFile, KeyFile string
}

// Create generates all key material under dir, which must exist. now is the
// certificate's validity start; hosts become its subject alternative names.
// It returns the SHA-256 fingerprint of the console certificate in hex.
func Create(dir string, now time.Time, hosts []string) (fingerprint string, err error) {
	kdir := filepath.Join(dir, "keys")
	if err := os.Mkdir(kdir, 0o700); err != nil {
		return "", fmt.Errorf("create keys dir: %w", err)
	}
	for _, purpose := range []string{Audit, Job, Report} {
		pub, priv, err := keys.Generate(nil)
		if err != nil {
			return "", err
		}
		if err := keys.WritePair(filepath.Join(kdir, purpose), pub, priv); err != nil {
			return "", err
		}
	}
	master := make([]byte, masterKeyLen)
	if _, err := io.ReadFull(rand.Reader, master); err != nil {
		return "", fmt.Errorf("master key: %w", err)
	}
	if err := writeExclusive(filepath.Join(kdir, "master.key"), master, 0o600); err != nil {
		return "", err
	}
	tdir := filepath.Join(dir, "tls")
	if err := os.Mkdir(tdir, 0o700); err != nil {
		return "", fmt.Errorf("create tls dir: %w", err)
	}
	return createCert(tdir, now, hosts)
}

// Load reads the key material created by Create.
func Load(dir string) (*Keyring, error) {
	kr := &Keyring{signers: map[string]ed25519.PrivateKey{}}
	for _, purpose := range []string{Audit, Job, Report} {
		priv, err := keys.ReadPrivate(filepath.Join(dir, "keys", purpose+".key"))
		if err != nil {
			return nil, fmt.Errorf("load %s key: %w", purpose, err)
		}
		kr.signers[purpose] = priv
	}
	masterPath := filepath.Join(dir, "keys", "master.key")
	fi, err := os.Stat(masterPath)
	if err != nil {
		return nil, fmt.Errorf("load master key: %w", err)
	}
	if fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("load master key: mode %04o is readable by others; chmod 600 %s", fi.Mode().Perm(), masterPath)
	}
	master, err := bounded.ReadFile(masterPath, bounded.MaxKeyFile)
	if err != nil {
		return nil, fmt.Errorf("load master key: %w", err)
	}
	if len(master) != masterKeyLen {
		return nil, fmt.Errorf("load master key: %d bytes, want %d", len(master), masterKeyLen)
	}
	kr.master = master
	kr.CertFile = filepath.Join(dir, "tls", "console.crt")
	kr.KeyFile = filepath.Join(dir, "tls", "console.key")
	return kr, nil
}

// Signer returns the private key for purpose (Audit, Job or Report).
func (k *Keyring) Signer(purpose string) (ed25519.PrivateKey, error) {
	priv, ok := k.signers[purpose]
	if !ok {
		return nil, fmt.Errorf("no %q key in keyring", purpose)
	}
	return priv, nil
}

// Public returns the public key for purpose.
func (k *Keyring) Public(purpose string) (ed25519.PublicKey, error) {
	priv, err := k.Signer(purpose)
	if err != nil {
		return nil, err
	}
	return priv.Public().(ed25519.PublicKey), nil
}

// Seal encrypts plaintext with the master key. ad binds the ciphertext to its
// context (for example "totp:" + user id), so a sealed value copied to another
// row does not open there.
func (k *Keyring) Seal(plaintext, ad []byte) ([]byte, error) {
	aead, err := k.aead()
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return aead.Seal(nonce, nonce, plaintext, ad), nil
}

// Open decrypts what Seal produced with the same ad.
func (k *Keyring) Open(sealed, ad []byte) ([]byte, error) {
	aead, err := k.aead()
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize() {
		return nil, ErrSealed
	}
	pt, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], ad)
	if err != nil {
		return nil, ErrSealed
	}
	return pt, nil
}

func (k *Keyring) aead() (cipher.AEAD, error) {
	block, err := aes.NewCipher(k.master)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	return cipher.NewGCM(block)
}

// TLSCertificate loads the console certificate and key, each a regular file
// of at most bounded.MaxCertFile bytes (tls.LoadX509KeyPair would read any
// file whole).
func (k *Keyring) TLSCertificate() (tls.Certificate, error) {
	certPEM, err := bounded.ReadFile(k.CertFile, bounded.MaxCertFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("console certificate: %w", err)
	}
	keyPEM, err := bounded.ReadFile(k.KeyFile, bounded.MaxCertFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("console key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("console certificate %s: %w", k.CertFile, err)
	}
	return cert, nil
}

// CertFingerprint returns the SHA-256 of the console certificate's DER, hex.
func CertFingerprint(certFile string) (string, error) {
	data, err := bounded.ReadFile(certFile, bounded.MaxCertFile)
	if err != nil {
		return "", fmt.Errorf("read certificate: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return "", fmt.Errorf("read certificate %s: no PEM certificate", certFile)
	}
	sum := sha256.Sum256(block.Bytes)
	return hex.EncodeToString(sum[:]), nil
}

func createCert(dir string, now time.Time, hosts []string) (string, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", fmt.Errorf("console key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return "", fmt.Errorf("console cert serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "FirewallIQ Secure console", Organization: []string{"FirewallIQ Secure appliance"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(2, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		tmpl.DNSNames = append(tmpl.DNSNames, h)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return "", fmt.Errorf("console cert: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", fmt.Errorf("console key: %w", err)
	}
	if err := writeExclusive(filepath.Join(dir, "console.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", err
	}
	if err := writeExclusive(filepath.Join(dir, "console.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

func writeExclusive(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}
