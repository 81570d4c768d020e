// Package auth owns identity and access: users, roles and the permission
// matrix, passwords with rate limits and lockout, TOTP with replay
// protection and recovery codes, sessions with CSRF tokens, API tokens,
// step-up MFA, dual approval, pinned support sessions and anomaly alerts.
//
// Everything goes through Service, whose every state change writes its audit
// entry in the same transaction (fail-closed) and whose every refusal is
// audited too. The console and the other services (scans, evidence export)
// call it; it never imports them.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters, following RFC 9106's second recommended option for
// memory-constrained systems (t=3, m=64 MiB, p=4): a login costs about 100 ms
// on the appliance's 2 cores, which throttles offline guessing while keeping
// logins quick. They are stored in each hash, so they can be raised later
// without breaking existing passwords.
const (
	argonTime    = 3
	argonMemory  = 64 * 1024 // KiB
	argonThreads = 4
	argonKeyLen  = 32
	argonSaltLen = 16
)

// MinPasswordLength is the shortest password accepted (NIST SP 800-63B).
const MinPasswordLength = 12

// Errors from password handling.
var (
	// ErrPasswordTooShort means the password has fewer than MinPasswordLength characters.
	ErrPasswordTooShort = fmt.Errorf("password shorter than %d characters", MinPasswordLength)
	// ErrBadHash means a stored hash is not one this package wrote.
	ErrBadHash = errors.New("unrecognised password hash")
	// ErrWrongPassword means the password does not match.
	ErrWrongPassword = errors.New("wrong password")
)

// ArgonParams are argon2id cost parameters. DefaultArgonParams are the
// production ones; tests that do not measure password strength inject
// cheaper ones through Params.Argon to stay fast.
type ArgonParams struct {
	Time      uint32 // passes
	MemoryKiB uint32
	Threads   uint8
}

// DefaultArgonParams returns the documented production parameters
// (t=3, m=64 MiB, p=4).
func DefaultArgonParams() ArgonParams {
	return ArgonParams{Time: argonTime, MemoryKiB: argonMemory, Threads: argonThreads}
}

// HashPassword returns an encoded argon2id hash in the PHC string format:
// $argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>.
func HashPassword(password string) (string, error) {
	return HashPasswordWith(DefaultArgonParams(), password)
}

// HashPasswordWith is HashPassword with explicit cost parameters.
func HashPasswordWith(ap ArgonParams, password string) (string, error) {
	if ap.Time == 0 || ap.MemoryKiB == 0 || ap.Threads == 0 {
		ap = DefaultArgonParams()
	}
	if len([]rune(password)) < MinPasswordLength {
		return "", ErrPasswordTooShort
	}
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, ap.Time, ap.MemoryKiB, ap.Threads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, ap.MemoryKiB, ap.Time, ap.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// VerifyPassword checks password against an encoded hash in constant time.
func VerifyPassword(encoded, password string) error {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return ErrBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return ErrBadHash
	}
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || t == 0 || p == 0 || m > 1<<22 || t > 100 {
		return ErrBadHash
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return ErrBadHash
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return ErrBadHash
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrWrongPassword
	}
	return nil
}

// hashParams returns the cost parameters recorded in an encoded hash.
func hashParams(encoded string) (ArgonParams, bool) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return ArgonParams{}, false
	}
	var ap ArgonParams
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &ap.MemoryKiB, &ap.Time, &ap.Threads); err != nil {
		return ArgonParams{}, false
	}
	return ap, true
}

// RandomPassword returns a one-time password of 20 characters from an
// unambiguous alphabet (no 0/O, 1/l/I), about 110 bits of entropy.
func RandomPassword() (string, error) {
	const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random password: %w", err)
	}
	for i := range b {
		// 256 is not a multiple of 56; the bias (at most 1/256) is harmless
		// for a one-time password that must be changed at first login.
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b), nil
}
