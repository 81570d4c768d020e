package auth

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxNameLength is the longest user or tenant name accepted, in characters.
const MaxNameLength = 64

// ValidName checks a user or tenant name: valid UTF-8, 1 to MaxNameLength
// characters, each one printable (letters, marks, numbers, punctuation,
// symbols and the ASCII space), and no space at either end. Names reach
// terminals, logs and HTML through listings; control characters (newlines,
// ANSI escapes) and invisible formatting characters could forge lines or
// rewrite the screen there. Errors wrap ErrInvalid and quote the name, so
// echoing them is safe.
func ValidName(what, name string) error {
	bad := func(why string) error {
		if len(name) > 4*MaxNameLength {
			return fmt.Errorf("%s name (%d bytes): %s: %w", what, len(name), why, ErrInvalid)
		}
		return fmt.Errorf("%s name %q: %s: %w", what, name, why, ErrInvalid)
	}
	switch {
	case name == "":
		return bad("empty")
	case !utf8.ValidString(name):
		return bad("not valid UTF-8")
	case utf8.RuneCountInString(name) > MaxNameLength:
		return bad(fmt.Sprintf("longer than %d characters", MaxNameLength))
	}
	for i, r := range name {
		if !unicode.IsPrint(r) {
			return bad(fmt.Sprintf("%U at byte %d is not printable", r, i))
		}
	}
	first, _ := utf8.DecodeRuneInString(name)
	last, _ := utf8.DecodeLastRuneInString(name)
	if first == ' ' || last == ' ' {
		return bad("leading or trailing space")
	}
	return nil
}

// ValidUserName is ValidName for a user name; init checks the first admin's
// name with it, CreateUser every other.
func ValidUserName(name string) error { return ValidName("user", name) }
