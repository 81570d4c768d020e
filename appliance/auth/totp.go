package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"image/png"
	"net/url"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// TOTP parameters: RFC 6238 defaults (30 s steps, 6 digits, HMAC-SHA1),
// because they are what every authenticator app implements.
const (
	totpPeriod = 30
	totpSkew   = 1 // steps accepted either side of the current one
	totpIssuer = "FirewallIQ Secure"
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// totpAD is the associated data a TOTP secret is sealed under, so a sealed
// secret copied to another user's row does not open.
func totpAD(userID string) []byte { return []byte("totp:" + userID) }

// TOTPStep returns the RFC 6238 time step of t.
func TOTPStep(t time.Time) int64 { return t.Unix() / totpPeriod }

// TOTPCode returns the code for secret at time t. Tests and the enrolment
// page's self-check use it; it is the same computation an authenticator does.
func TOTPCode(secret string, t time.Time) (string, error) {
	return totp.GenerateCodeCustom(secret, t, totpOpts)
}

// wellFormedCode reports whether code is exactly six ASCII digits.
func wellFormedCode(code string) bool {
	if len(code) != 6 {
		return false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return false
		}
	}
	return true
}

// matchStep returns the step within ±totpSkew of now whose code equals
// code, comparing in constant time, or ErrInvalidCode.
func matchStep(secret, code string, now time.Time) (int64, error) {
	if !wellFormedCode(code) {
		return 0, ErrInvalidCode
	}
	cur := TOTPStep(now)
	found := int64(-1)
	for step := cur - totpSkew; step <= cur+totpSkew; step++ {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*totpPeriod, 0), totpOpts)
		if err != nil {
			return 0, fmt.Errorf("totp: %w", err)
		}
		// Check every step, not stopping early, so timing does not say
		// which step matched.
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && found < 0 {
			found = step
		}
	}
	if found < 0 {
		return 0, ErrInvalidCode
	}
	return found, nil
}

// openSecret unseals u's TOTP secret.
func (s *Service) openSecret(u store.User) (string, error) {
	if len(u.TOTPSealed) == 0 {
		return "", ErrEnrolmentRequired
	}
	b, err := s.keys.Open(u.TOTPSealed, totpAD(u.ID))
	if err != nil {
		return "", fmt.Errorf("open totp secret: %w", err)
	}
	return string(b), nil
}

// verifyTOTP checks code for u and, in tx, records its step as the last
// accepted one. A valid code whose step is not later than the last accepted
// step is ErrReplay: each code works once, and an older code cannot be used
// after a newer one.
func (s *Service) verifyTOTP(ctx context.Context, tx *sql.Tx, u store.User, code string) error {
	secret, err := s.openSecret(u)
	if err != nil {
		return err
	}
	step, err := matchStep(secret, code, s.now())
	if err != nil {
		return err
	}
	if err := s.st.AdvanceTOTPStep(ctx, tx, u.ID, step); err != nil {
		if errors.Is(err, store.ErrStale) {
			return ErrReplay
		}
		return err
	}
	return nil
}

// Enrolment is what the enrolment page shows once: the secret as text and as
// a QR code rendered on the server (no third-party QR service sees it).
type Enrolment struct {
	Secret string
	// URL is the otpauth:// URI the QR code encodes.
	URL string
	// QRPNG is a 256x256 PNG of URL; QRDataURI the same as a data: URI for
	// an <img src> (allowed by the console's CSP as img-src data:).
	QRPNG     []byte
	QRDataURI string
}

// BeginEnrolment starts (or resumes) TOTP enrolment for the session at stage
// enrol. A secret already sealed but unconfirmed (such as the one `init`
// printed for the first admin) is shown again instead of replaced, so that a
// secret the user has already scanned keeps working.
func (s *Service) BeginEnrolment(ctx context.Context, token string, c Client) (Enrolment, error) {
	se, u, err := s.pending(ctx, token, "enrol", c)
	if err != nil {
		return Enrolment{}, err
	}
	var key *otp.Key
	if len(u.TOTPSealed) > 0 && !u.TOTPConfirmed {
		secret, err := s.openSecret(u)
		if err != nil {
			return Enrolment{}, err
		}
		key, err = otp.NewKeyFromURL(totpURL(u.Name, secret))
		if err != nil {
			return Enrolment{}, fmt.Errorf("totp key: %w", err)
		}
	} else {
		key, err = totp.Generate(totp.GenerateOpts{Issuer: totpIssuer, AccountName: u.Name, Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return Enrolment{}, fmt.Errorf("totp generate: %w", err)
		}
		sealed, err := s.keys.Seal([]byte(key.Secret()), totpAD(u.ID))
		if err != nil {
			return Enrolment{}, fmt.Errorf("seal totp secret: %w", err)
		}
		p := principalOf(u, se.ID, c)
		err = s.st.InTx(ctx, func(tx *sql.Tx) error {
			if err := s.st.SetUserTOTP(ctx, tx, u.ID, sealed, false); err != nil {
				return err
			}
			return s.append(ctx, tx, p.entry(u.TenantID, audit.ActAuthTOTPEnrol, u.ID, fields{"stage": "secret issued"}))
		})
		if err != nil {
			return Enrolment{}, err
		}
	}
	img, err := key.Image(256, 256)
	if err != nil {
		return Enrolment{}, fmt.Errorf("totp qr: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return Enrolment{}, fmt.Errorf("totp qr: %w", err)
	}
	return Enrolment{Secret: key.Secret(), URL: key.URL(), QRPNG: buf.Bytes(),
		QRDataURI: "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())}, nil
}

// totpURL builds the otpauth URI for an existing secret.
func totpURL(account, secret string) string {
	v := url.Values{}
	v.Set("secret", secret)
	v.Set("issuer", totpIssuer)
	v.Set("algorithm", "SHA1")
	v.Set("digits", "6")
	v.Set("period", "30")
	u := url.URL{Scheme: "otpauth", Host: "totp", Path: "/" + totpIssuer + ":" + account, RawQuery: v.Encode()}
	return u.String()
}

// ConfirmEnrolment checks the first code from the user's authenticator,
// marks TOTP confirmed, issues recovery codes (returned once, stored
// hashed) and completes the login with a new session id.
func (s *Service) ConfirmEnrolment(ctx context.Context, token, code string, c Client) (Login, []string, error) {
	se, u, err := s.pending(ctx, token, "enrol", c)
	if err != nil {
		return Login{}, nil, err
	}
	if len(u.TOTPSealed) == 0 {
		return Login{}, nil, ErrEnrolmentRequired
	}
	if err := s.totpAllowed(ctx, s.st.Reader(), u); err != nil {
		return Login{}, nil, err
	}
	codes, hashes, err := newRecoveryCodes(s.p.RecoveryCodes)
	if err != nil {
		return Login{}, nil, err
	}
	p := principalOf(u, se.ID, c)
	var l Login
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.verifyTOTP(ctx, tx, u, code); err != nil {
			return err
		}
		if err := s.st.SetUserTOTP(ctx, tx, u.ID, u.TOTPSealed, true); err != nil {
			return err
		}
		if err := s.st.ReplaceRecoveryCodes(ctx, tx, u.ID, hashes); err != nil {
			return err
		}
		if err := s.append(ctx, tx, p.entry(u.TenantID, audit.ActAuthTOTPConfirm, u.ID, fields{"recovery_codes": len(codes)})); err != nil {
			return err
		}
		l, err = s.promote(ctx, tx, se, u, c, "totp enrolment")
		return err
	})
	if err != nil {
		return Login{}, nil, s.secondFactorFailed(ctx, u, c, "enrolment", err)
	}
	return l, codes, nil
}

// secondFactorFailed audits a failed TOTP or recovery code (or passes other
// errors through) and counts it like a wrong password: towards the
// lockout, the per-address limit and anomaly detection. Six digits are
// guessable without that limit.
func (s *Service) secondFactorFailed(ctx context.Context, u store.User, c Client, what string, err error) error {
	return s.secondFactorFailedAs(ctx, u, c, what, audit.ActAuthTOTPFailed, err)
}

// secondFactorFailedAs is secondFactorFailed audited as action (a refused
// security key answer is auth.key.failed).
func (s *Service) secondFactorFailedAs(ctx context.Context, u store.User, c Client, what string, action audit.Action, err error) error {
	if !errors.Is(err, ErrInvalidCode) && !errors.Is(err, ErrReplay) {
		return err
	}
	p := principalOf(u, "", c)
	var locked error
	aerr := s.st.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.append(ctx, tx, p.entry(u.TenantID, action, u.ID, fields{"step": what, "reason": err.Error()})); err != nil {
			return err
		}
		if err := s.st.AddEvent(ctx, tx, store.EventLoginFailed, u.ID, c.IP, s.now()); err != nil {
			return err
		}
		var cerr error
		if locked, cerr = s.countFailure(ctx, tx, p, u); cerr != nil {
			return cerr
		}
		if err := s.activity(ctx, tx, p, ActivityLoginFailed); err != nil {
			return err
		}
		return s.activity(ctx, tx, p, ActivityLoginSources)
	})
	if aerr != nil {
		return errors.Join(err, aerr)
	}
	if locked != nil {
		return errors.Join(err, locked)
	}
	return err
}

// recoveryAlphabet avoids look-alike characters; codes are typed by hand.
const recoveryAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

// newRecoveryCodes returns n codes of 10 characters (about 49 bits each, as
// xxxxx-xxxxx) and their hashes. A fast hash is enough: the codes are
// random, single-use and only usable after the password.
func newRecoveryCodes(n int) ([]string, [][]byte, error) {
	codes := make([]string, n)
	hashes := make([][]byte, n)
	for i := range codes {
		b := make([]byte, 10)
		if _, err := rand.Read(b); err != nil {
			return nil, nil, fmt.Errorf("recovery codes: %w", err)
		}
		for j := range b {
			// 256 % 31 != 0; the bias is below 1/256 per character.
			b[j] = recoveryAlphabet[int(b[j])%len(recoveryAlphabet)]
		}
		codes[i] = string(b[:5]) + "-" + string(b[5:])
		hashes[i] = hashRecoveryCode(codes[i])
	}
	return codes, hashes, nil
}

// hashRecoveryCode hashes the code normalised: lower case, no dashes or
// spaces, so "ABCDE-FGHJK" and "abcdefghjk" are the same code.
func hashRecoveryCode(code string) []byte {
	norm := strings.Map(func(r rune) rune {
		switch r {
		case '-', ' ':
			return -1
		}
		if r >= 'A' && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}, code)
	h := sha256.Sum256([]byte("firewalliq recovery v1\x00" + norm))
	return h[:]
}

// UseRecoveryCode completes a login at stage password with a recovery code
// instead of a TOTP. Each code works once.
func (s *Service) UseRecoveryCode(ctx context.Context, token, code string, c Client) (Login, error) {
	se, u, err := s.pending(ctx, token, "password", c)
	if err != nil {
		return Login{}, err
	}
	p := principalOf(u, se.ID, c)
	var l Login
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		// Recovery codes stand in for TOTP: refused like it for a role
		// that must use a security key.
		if err := s.totpAllowed(ctx, tx, u); err != nil {
			return err
		}
		if err := s.st.UseRecoveryCode(ctx, tx, u.ID, hashRecoveryCode(code), s.now()); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return ErrInvalidCode
			}
			return err
		}
		if err := s.append(ctx, tx, p.entry(u.TenantID, audit.ActAuthRecoveryUse, u.ID, nil)); err != nil {
			return err
		}
		l, err = s.promote(ctx, tx, se, u, c, "recovery code")
		return err
	})
	if err != nil {
		return Login{}, s.secondFactorFailed(ctx, u, c, "recovery code", err)
	}
	return l, nil
}
