package scope

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"firewalliq/probe/safety"

	"firewalliq/probe/internal/canon"
	"firewalliq/probe/internal/strictjson"
)

// Canonical returns the canonical encoding of the document: the bytes that
// are signed (after the signing context, see Sign). It is JSON with
//
//   - every one of the twelve members present, keys in byte order: cidrs,
//     environment, exclude, id, max_pps, name, not_after, not_before, ports,
//     probes, signer_key_id, tenant;
//   - no whitespace outside strings;
//   - strings with only '"', '\\' and U+0000-U+001F escaped: \b \t \n \f \r
//     in their short form, the rest as \u00xx in lower-case hex; everything
//     else, including non-ASCII, '<', '>' and '&', written as literal UTF-8;
//   - integers in plain decimal without sign, leading zeros, fraction or
//     exponent;
//   - times as RFC 3339 in UTC with whole seconds and "Z"
//     ("2026-12-01T00:00:00Z");
//   - arrays in document order (the order is part of what is signed);
//     exclude is [] when empty.
//
// For these types this is exactly RFC 8785 (JSON Canonicalization Scheme);
// the writer is shared with the job document (probe/internal/canon). It
// fails only on a string that is not valid UTF-8 or a max_pps beyond 2^53.
func (d Document) Canonical() ([]byte, error) {
	probes := make([]string, len(d.Probes))
	for i, k := range d.Probes {
		probes[i] = string(k)
	}
	exclude := d.Exclude
	if exclude == nil {
		exclude = []string{}
	}
	cidrs := d.CIDRs
	if cidrs == nil {
		cidrs = []string{}
	}
	b, err := canon.Marshal(canon.Object{
		"cidrs": cidrs, "environment": d.Environment, "exclude": exclude, "id": d.ID,
		"max_pps": d.MaxPPS, "name": d.Name, "not_after": formatTime(d.NotAfter),
		"not_before": formatTime(d.NotBefore), "ports": d.Ports, "probes": probes,
		"signer_key_id": d.SignerKeyID, "tenant": d.Tenant,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return b, nil
}

// quote writes s as a canonical JSON string (RFC 8785 section 3.2.2.2).
func quote(s string) string { return canon.Quote(s) }

// docFields are the document's JSON members; all are required except
// exclude (default []) and signer_key_id (filled in by Sign).
var docFields = []string{"cidrs", "environment", "exclude", "id", "max_pps", "name", "not_after", "not_before", "ports", "probes", "signer_key_id", "tenant"}

// DecodeDocument decodes a scope document from JSON strictly: exact key
// names (encoding/json alone would match keys case-insensitively), no
// duplicate or unknown keys, valid UTF-8, integers without fraction or
// exponent, times in RFC 3339 with whole seconds. It does not validate the
// content; see Document.Validate.
func DecodeDocument(data []byte) (Document, error) {
	var d Document
	if !utf8.Valid(data) {
		return d, fmt.Errorf("%w: not UTF-8", ErrInvalid)
	}
	fields, err := strictjson.Object(data)
	if err != nil {
		return d, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	for k := range fields {
		if !slices.Contains(docFields, k) {
			return d, fmt.Errorf("%w: unknown field %q", ErrInvalid, k)
		}
	}
	for _, k := range docFields {
		if _, ok := fields[k]; !ok && k != "exclude" && k != "signer_key_id" {
			return d, fmt.Errorf("%w: missing field %q", ErrInvalid, k)
		}
	}
	var probes []string
	var notBefore, notAfter string
	for _, t := range []struct {
		key string
		v   any
	}{
		{"cidrs", &d.CIDRs}, {"environment", &d.Environment}, {"exclude", &d.Exclude}, {"id", &d.ID},
		{"max_pps", &d.MaxPPS}, {"name", &d.Name}, {"not_after", &notAfter}, {"not_before", &notBefore},
		{"ports", &d.Ports}, {"probes", &probes}, {"signer_key_id", &d.SignerKeyID}, {"tenant", &d.Tenant},
	} {
		raw, ok := fields[t.key]
		if !ok {
			continue
		}
		if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			return d, fmt.Errorf("%w: field %q is null", ErrInvalid, t.key)
		}
		if err := json.Unmarshal(raw, t.v); err != nil {
			return d, fmt.Errorf("%w: field %q: %v", ErrInvalid, t.key, err)
		}
	}
	if d.Exclude == nil {
		d.Exclude = []string{}
	}
	for _, p := range probes {
		d.Probes = append(d.Probes, safety.Kind(p))
	}
	if d.NotBefore, err = parseTime(notBefore); err != nil {
		return d, fmt.Errorf("%w: not_before: %v", ErrInvalid, err)
	}
	if d.NotAfter, err = parseTime(notAfter); err != nil {
		return d, fmt.Errorf("%w: not_after: %v", ErrInvalid, err)
	}
	return d, nil
}

// parseTime accepts RFC 3339 with whole seconds and any offset, and returns
// the time in UTC.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time: %v", s, err)
	}
	if t.Nanosecond() != 0 {
		return time.Time{}, fmt.Errorf("%q has fractional seconds; use whole seconds", s)
	}
	return t.UTC(), nil
}
