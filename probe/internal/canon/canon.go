// Package canon writes the canonical JSON encoding that every signed
// document of the probe (scope documents, jobs) is signed over: RFC 8785
// (JSON Canonicalization Scheme) for the value types those documents use.
//
//   - object members in byte order of their keys, each key once;
//   - no whitespace outside strings;
//   - strings with only '"', '\\' and U+0000-U+001F escaped: \b \t \n \f \r
//     in their short form, the rest as \u00xx in lower-case hex; everything
//     else, including non-ASCII, '<', '>' and '&', as literal UTF-8;
//   - integers in plain decimal (no fraction or exponent; within ±2^53 so
//     every JSON reader reads them exactly);
//   - arrays in the order given.
//
// One writer for every document keeps a signer and a verifier from
// disagreeing about bytes, and keeps the rule written down once.
package canon

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Object is a JSON object. Values are string, int, int64, bool, Object,
// []string, []Object, []any or Raw.
type Object map[string]any

// Raw is a value that is already canonical JSON (for example a signed
// envelope re-encoded by its own package). It is written as is.
type Raw []byte

// ErrValue means a value cannot be encoded canonically.
var ErrValue = errors.New("not canonically encodable")

// maxSafeInt is 2^53: larger integers are not read exactly by every JSON
// implementation (RFC 8785 section 3.2.2.3 defers to IEEE 754 doubles).
const maxSafeInt = 1 << 53

// Marshal returns the canonical encoding of v.
func Marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := write(&b, v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func write(b *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case string:
		if !utf8.ValidString(x) {
			return fmt.Errorf("%w: string %q is not valid UTF-8", ErrValue, x)
		}
		b.WriteString(Quote(x))
	case int:
		return writeInt(b, int64(x))
	case int64:
		return writeInt(b, x)
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case Raw:
		if len(x) == 0 {
			return fmt.Errorf("%w: empty raw value", ErrValue)
		}
		b.Write(x)
	case Object:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys) // byte order of UTF-8 equals code point order; all our keys are ASCII
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := write(b, k); err != nil {
				return err
			}
			b.WriteByte(':')
			if err := write(b, x[k]); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
		b.WriteByte('}')
	case []string:
		return writeArray(b, len(x), func(i int) any { return x[i] })
	case []Object:
		return writeArray(b, len(x), func(i int) any { return x[i] })
	case []any:
		return writeArray(b, len(x), func(i int) any { return x[i] })
	default:
		return fmt.Errorf("%w: type %T", ErrValue, v)
	}
	return nil
}

func writeInt(b *bytes.Buffer, n int64) error {
	if n > maxSafeInt || n < -maxSafeInt {
		return fmt.Errorf("%w: integer %d beyond 2^53", ErrValue, n)
	}
	b.WriteString(strconv.FormatInt(n, 10))
	return nil
}

func writeArray(b *bytes.Buffer, n int, at func(int) any) error {
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := write(b, at(i)); err != nil {
			return err
		}
	}
	b.WriteByte(']')
	return nil
}

// Quote writes s as a canonical JSON string (RFC 8785 section 3.2.2.2). s
// must be valid UTF-8 (Marshal checks; callers of Quote check themselves).
func Quote(s string) string {
	const hex = "0123456789abcdef"
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case '\f':
			b = append(b, '\\', 'f')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			if c < 0x20 {
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			} else {
				b = append(b, c)
			}
		}
	}
	return string(append(b, '"'))
}
