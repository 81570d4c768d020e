// Package verify is the compliance report's document format and its
// offline verifier. It is a leaf on purpose: it imports only the standard
// library, firewalliq/audit (checkpoints and proofs) and
// firewalliq/probe/keys (key ids), so an auditor can read all of the code
// that decides whether a report is genuine (a test enforces the imports).
//
// A report file is one JSON object in canonical form (see Canonical):
//
//	{"report":{...},"signature":{"alg":"ed25519","key_id":"...","sig":"base64"}}
//
// The signature is Ed25519 by the appliance's report key over the
// canonical bytes of the "report" value. The format is documented in
// docs/report.md.
package verify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"unicode/utf8"
)

// ErrFormat means a report file is not a well-formed report in canonical
// form.
var ErrFormat = errors.New("report is not in canonical form")

// maxDepth bounds nesting, so a hostile file cannot exhaust the stack.
const maxDepth = 64

// integer is the only number syntax the canonical form allows.
var integer = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

// Canonical returns the canonical form of the JSON value in data: object
// keys sorted by their UTF-8 bytes, no insignificant whitespace, strings
// escaped as encoding/json does with HTML escaping off (", \ and control
// characters; U+2028 and U+2029 as \u2028, \u2029), numbers only as
// integers written without sign '+', leading zeros, fraction or exponent.
// Duplicate keys, invalid UTF-8, other number forms and trailing data are
// errors (wrapping ErrFormat).
func Canonical(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var buf bytes.Buffer
	if err := canon(&buf, dec, 0); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON value", ErrFormat)
	}
	return buf.Bytes(), nil
}

// canon reads one value from dec and writes its canonical form.
func canon(w *bytes.Buffer, dec *json.Decoder, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("nested deeper than %d", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			type kv struct {
				k string
				v []byte
			}
			var kvs []kv
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				k, ok := kt.(string)
				if !ok {
					return fmt.Errorf("object key is not a string")
				}
				if !utf8.ValidString(k) {
					return fmt.Errorf("key is not UTF-8")
				}
				if seen[k] {
					return fmt.Errorf("duplicate key %q", k)
				}
				seen[k] = true
				var vb bytes.Buffer
				if err := canon(&vb, dec, depth+1); err != nil {
					return err
				}
				kvs = append(kvs, kv{k, vb.Bytes()})
			}
			if _, err := dec.Token(); err != nil { // '}'
				return err
			}
			sort.Slice(kvs, func(i, j int) bool { return kvs[i].k < kvs[j].k })
			w.WriteByte('{')
			for i, e := range kvs {
				if i > 0 {
					w.WriteByte(',')
				}
				writeString(w, e.k)
				w.WriteByte(':')
				w.Write(e.v)
			}
			w.WriteByte('}')
		case '[':
			w.WriteByte('[')
			for i := 0; dec.More(); i++ {
				if i > 0 {
					w.WriteByte(',')
				}
				if err := canon(w, dec, depth+1); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil { // ']'
				return err
			}
			w.WriteByte(']')
		default:
			return fmt.Errorf("unexpected %v", t)
		}
	case string:
		if !utf8.ValidString(t) {
			return fmt.Errorf("string is not UTF-8")
		}
		writeString(w, t)
	case json.Number:
		if !integer.MatchString(string(t)) {
			return fmt.Errorf("number %s is not a canonical integer", t)
		}
		if _, err := strconv.ParseInt(string(t), 10, 64); err != nil {
			return fmt.Errorf("number %s out of range", t)
		}
		w.WriteString(string(t))
	case bool:
		w.WriteString(strconv.FormatBool(t))
	case nil:
		w.WriteString("null")
	default:
		return fmt.Errorf("unexpected token %T", tok)
	}
	return nil
}

// writeString writes s as encoding/json does without HTML escaping.
func writeString(w *bytes.Buffer, s string) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a valid UTF-8 string always encodes
	w.Write(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
}

// Marshal encodes v (a struct of this package's format, or any value) in
// canonical form.
func Marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("marshal report: %w", err)
	}
	return Canonical(b.Bytes())
}
