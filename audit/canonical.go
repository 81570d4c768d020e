package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// canonicalMagic starts every canonical entry encoding. It separates entry
// hashes from every other SHA-256 the appliance computes (Merkle nodes, scope
// documents, reports), and names the version so a future encoding cannot be
// confused with this one.
const canonicalMagic = "fiq.audit.entry.v1\n"

// HashSize is the size of an entry hash (SHA-256).
const HashSize = sha256.Size

// maxField bounds one text field of the canonical encoding. It keeps a
// corrupted length prefix from making the decoder allocate gigabytes.
const maxField = 1 << 20

// ErrBadEncoding means bytes are not a canonical entry encoding.
var ErrBadEncoding = errors.New("not a canonical audit entry encoding")

// timeFormat is how entry times are written, in UTC. RFC 3339 with
// nanoseconds and trailing zeros removed is what time.RFC3339Nano gives; the
// decoder insists that parsing and re-formatting reproduces the text, so each
// instant has exactly one encoding.
const timeFormat = time.RFC3339Nano

// Canonical returns the canonical encoding of e that its hash covers:
//
//	"fiq.audit.entry.v1\n"
//	seq        8 bytes, big-endian
//	time       u32 big-endian length, then the RFC 3339 (nano) UTC text
//	tenant, actor_id, actor_name, actor_ip, user_agent, action, object,
//	details    each as u32 big-endian length, then the UTF-8 bytes
//	prev_hash  32 bytes
//
// Every field has a length, so no two different entries share an encoding
// (no "ab"+"c" = "a"+"bc" ambiguity), and prev_hash links the chain.
func Canonical(e Entry) []byte {
	return appendCanonical(make([]byte, 0, canonicalSize(e)), e)
}

func canonicalSize(e Entry) int {
	n := len(canonicalMagic) + 8 + HashSize + 9*4
	n += len(timeFormat) + 4 + len(e.Tenant) + len(e.ActorID) + len(e.ActorName) + len(e.ActorIP) +
		len(e.UserAgent) + len(e.Action) + len(e.Object) + len(e.Details)
	return n
}

func appendCanonical(b []byte, e Entry) []byte {
	return appendCanonicalText(b, e.Seq, e.Time.UTC().Format(timeFormat), e)
}

// appendCanonicalText is appendCanonical with the time already formatted,
// which the verifier has as stored text and need not parse.
func appendCanonicalText(b []byte, seq int64, tm string, e Entry) []byte {
	b = append(b, canonicalMagic...)
	b = binary.BigEndian.AppendUint64(b, uint64(seq))
	for _, s := range [...]string{tm, e.Tenant, e.ActorID, e.ActorName, e.ActorIP, e.UserAgent, string(e.Action), e.Object} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Details)))
	b = append(b, e.Details...)
	// prev_hash is fixed-size. A stored entry always has 32 bytes; a
	// malformed one is zero-padded here and caught by the verifier's own
	// length check, so the encoding stays well-formed either way.
	var prev [HashSize]byte
	copy(prev[:], e.PrevHash)
	return append(b, prev[:]...)
}

// EntryHash returns SHA-256 of the canonical encoding of e: the value stored
// as e.Hash and chained into the next entry's PrevHash.
func EntryHash(e Entry) []byte {
	sum := sha256.Sum256(Canonical(e))
	return sum[:]
}

// ParseCanonical decodes a canonical encoding. It accepts exactly the
// encodings Canonical produces: the bytes must re-encode to themselves, text
// fields must be valid UTF-8, the time must be UTC in its one canonical form,
// details must be a JSON object, and nothing may trail. The returned entry
// has Hash set to the hash of b.
func ParseCanonical(b []byte) (Entry, error) {
	var e Entry
	orig := b
	if len(b) < len(canonicalMagic) || string(b[:len(canonicalMagic)]) != canonicalMagic {
		return e, fmt.Errorf("%w: missing header", ErrBadEncoding)
	}
	b = b[len(canonicalMagic):]
	if len(b) < 8 {
		return e, fmt.Errorf("%w: short seq", ErrBadEncoding)
	}
	e.Seq = int64(binary.BigEndian.Uint64(b))
	if e.Seq < 1 {
		return e, fmt.Errorf("%w: seq %d is not positive", ErrBadEncoding, e.Seq)
	}
	b = b[8:]
	var fields [9]string
	for i := range fields {
		if len(b) < 4 {
			return e, fmt.Errorf("%w: short length of field %d", ErrBadEncoding, i)
		}
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		if n > maxField || int(n) > len(b) {
			return e, fmt.Errorf("%w: field %d length %d exceeds input", ErrBadEncoding, i, n)
		}
		if !utf8.Valid(b[:n]) {
			return e, fmt.Errorf("%w: field %d is not UTF-8", ErrBadEncoding, i)
		}
		fields[i] = string(b[:n])
		b = b[n:]
	}
	if len(b) != HashSize {
		return e, fmt.Errorf("%w: prev_hash is %d bytes, want %d", ErrBadEncoding, len(b), HashSize)
	}
	t, err := time.Parse(timeFormat, fields[0])
	if err != nil || t.Location() != time.UTC || t.Format(timeFormat) != fields[0] {
		return e, fmt.Errorf("%w: time %q is not canonical RFC 3339 UTC", ErrBadEncoding, fields[0])
	}
	e.Time = t
	e.Tenant, e.ActorID, e.ActorName, e.ActorIP, e.UserAgent = fields[1], fields[2], fields[3], fields[4], fields[5]
	e.Action, e.Object = Action(fields[6]), fields[7]
	if !isJSONObject([]byte(fields[8])) {
		return e, fmt.Errorf("%w: details are not a JSON object", ErrBadEncoding)
	}
	e.Details = json.RawMessage(fields[8])
	e.PrevHash = append([]byte(nil), b...)
	sum := sha256.Sum256(orig)
	e.Hash = sum[:]
	return e, nil
}

// isJSONObject reports whether b is one JSON object.
func isJSONObject(b []byte) bool {
	if !json.Valid(b) {
		return false
	}
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return true
		default:
			return false
		}
	}
	return false
}
