package cli

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// termSafe makes a string from stored or scanned data safe to print on a
// terminal: every C0 control (tab and newline included), DEL, every C1
// control, the Unicode line and paragraph separators, the bidirectional
// overrides and isolates, and every byte that is not valid UTF-8 is replaced
// by a visible Go-style escape (\n, \t, \x1b, \u009b, \u202e).
//
// Why: names, banners, certificate subjects, SIEM destinations and audit
// fields come from other people. Printed raw, an ESC starts an ANSI sequence
// that can rewrite the screen, set the window title or hide text; a newline
// or tab forges extra lines or table columns; a bidi override reorders what
// the reader sees. Escaped, the same bytes are shown for what they are, and
// one value stays one field on one line. Ordinary text, including non-ASCII
// letters, passes through unchanged.
func termSafe(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// needsEscape reports whether termSafe would change s; the common case (a
// plain name) then costs no allocation.
func needsEscape(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || unsafeRune(r) {
			return true
		}
		i += size
	}
	return false
}

// unsafeRune reports the non-ASCII runes a terminal treats as control: C1
// controls (U+0080-U+009F; U+009B is a one-byte CSI on some terminals), the
// line and paragraph separators, and the bidirectional marks, embeddings,
// overrides and isolates.
func unsafeRune(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f:
		return true
	case r == 0x200e || r == 0x200f: // LRM, RLM
		return true
	case r >= 0x2028 && r <= 0x202e: // LS, PS, LRE, RLE, PDF, LRO, RLO
		return true
	case r >= 0x2066 && r <= 0x2069: // LRI, RLI, FSI, PDI
		return true
	case r == 0x061c: // Arabic letter mark
		return true
	}
	return false
}
