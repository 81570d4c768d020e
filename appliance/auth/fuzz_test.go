package auth

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// FuzzParseSecret: whatever a client sends as a cookie or bearer value,
// parsing never panics, and what it accepts is exactly the canonical
// encoding of 32 bytes with the right prefix (round trip).
func FuzzParseSecret(f *testing.F) {
	good, _, _ := newSecret(sessionPrefix)
	tok, _, _ := newSecret(tokenPrefix)
	for _, seed := range []string{
		good, tok, // valid session id and API token
		"", sessionPrefix, // empty, prefix only
		good + "=",                 // padding
		good[:len(good)-1],         // one character short
		good + "A",                 // one character long
		strings.ToUpper(good),      // wrong prefix case
		" " + good,                 // whitespace
		sessionPrefix + "+/+/+/+/", // standard, not URL, alphabet
		good[:len(good)-1] + "B",   // non-canonical last character (stray bits)
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, prefix := range []string{sessionPrefix, tokenPrefix} {
			raw, err := parseSecret(prefix, s)
			if err != nil {
				continue
			}
			if len(raw) != secretBytes {
				t.Fatalf("accepted %d bytes", len(raw))
			}
			if back := prefix + base64.RawURLEncoding.EncodeToString(raw); back != s {
				t.Fatalf("accepted non-canonical %q (canonical %q)", s, back)
			}
		}
	})
}

// FuzzCheckCSRF: the CSRF check never panics and accepts only the session's
// own token.
func FuzzCheckCSRF(f *testing.F) {
	sess, _, _ := newSecret(sessionPrefix)
	other, _, _ := newSecret(sessionPrefix)
	good, _ := CSRFToken(sess)
	bad, _ := CSRFToken(other)
	f.Add(sess, good)
	f.Add(sess, bad)
	f.Add(sess, "")
	f.Add("", "")
	f.Add(sess, good+"x")
	f.Fuzz(func(t *testing.T, session, token string) {
		err := CheckCSRF(session, token)
		want, werr := CSRFToken(session)
		if err == nil && (werr != nil || want != token) {
			t.Fatalf("accepted %q for %q", token, session)
		}
	})
}

// FuzzMatchStep: any string as a TOTP code; never panics, accepts only six
// digits that are the code of a step within the skew.
func FuzzMatchStep(f *testing.F) {
	const secret = "JBSWY3DPEHPK3PXP"
	now := time.Date(2026, 11, 27, 14, 0, 5, 0, time.UTC)
	c, _ := TOTPCode(secret, now)
	for _, seed := range []string{c, "", "000000", "12345", "1234567", "12 456", "-12345", "１２３４５６"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, code string) {
		step, err := matchStep(secret, code, now)
		if err != nil {
			return
		}
		if !wellFormedCode(code) || step < TOTPStep(now)-totpSkew || step > TOTPStep(now)+totpSkew {
			t.Fatalf("accepted %q at step %d", code, step)
		}
		if want, _ := TOTPCode(secret, time.Unix(step*totpPeriod, 0)); want != code {
			t.Fatalf("accepted %q for step %d whose code is %s", code, step, want)
		}
	})
}

// FuzzVerifyPassword: the PHC parser never panics on stored text, and a
// hash it made verifies only its own password.
func FuzzVerifyPassword(f *testing.F) {
	h, _ := HashPasswordWith(ArgonParams{Time: 1, MemoryKiB: 8, Threads: 1}, "correct horse battery")
	for _, seed := range []string{h, "", "$argon2id$", "$argon2id$v=19$m=8,t=1,p=1$AAAA$AAAA", "$argon2i$v=19$m=8,t=1,p=1$AAAA$AAAA", "$argon2id$v=19$m=8,t=1,p=1$!!$AAAA", h + "$"} {
		f.Add(seed, "correct horse battery")
	}
	f.Fuzz(func(t *testing.T, encoded, password string) {
		// Keep each run cheap: the parser's own bounds allow up to 4 GiB,
		// which is for stored hashes we wrote, not for a fuzzer.
		if ap, ok := hashParams(encoded); ok && (ap.MemoryKiB > 64 || ap.Time > 2) {
			return
		}
		err := VerifyPassword(encoded, password)
		if err == nil && encoded == h && password != "correct horse battery" {
			t.Fatalf("accepted %q", password)
		}
	})
}

// FuzzValidName: the name check never panics; what it accepts is valid
// UTF-8 of 1 to MaxNameLength printable characters without a space at
// either end; its error never carries a raw control character (names are
// echoed in errors, and errors reach terminals).
func FuzzValidName(f *testing.F) {
	for _, seed := range []string{
		"alice", "Zoë Ølsen", "ops-team_2", // ordinary names
		"", " ", " bob", "bob ", // empty, spaces at the ends
		"a\nb", "\x1b[31mred\x1b[0m", "tab\there", // newline, ANSI escape, tab
		"bidi\u202Eevil", "zero\u200Bwidth", "nbsp\u00A0", // format and invisible characters
		strings.Repeat("x", MaxNameLength), strings.Repeat("x", MaxNameLength+1), // the length limit
		strings.Repeat("é", MaxNameLength), // 64 characters, 128 bytes
		"\xff\xfe",                         // not UTF-8
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidName("user", name)
		if err != nil {
			for _, r := range err.Error() {
				if r < 0x20 || r == 0x7f {
					t.Fatalf("error carries control character %U: %q", r, err.Error())
				}
			}
			return
		}
		if !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxNameLength || name == "" || name[0] == ' ' || name[len(name)-1] == ' ' {
			t.Fatalf("accepted %q", name)
		}
		for _, r := range name {
			if !unicode.IsPrint(r) {
				t.Fatalf("accepted %q with %U", name, r)
			}
		}
	})
}
