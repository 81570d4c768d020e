package ui

import (
	"encoding/hex"
	"strings"
	"time"

	"firewalliq/appliance/fault"
)

// trimmed is the name as the services store it (they trim spaces), so a
// step-up challenge names the bytes the service will compare.
func trimmed(s string) string { return strings.TrimSpace(s) }

// parseTTL reads a Go duration ("720h", "90m"); "" is zero (the service's
// default).
func parseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, apiError(fault.CodeInvalid, "ttl must be a duration such as 24h or 90m")
	}
	return d, nil
}

// utc is t in UTC, keeping the zero time zero (for omitzero).
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// hexOf is lower-case hex ("" for nil).
func hexOf(b []byte) string { return hex.EncodeToString(b) }

// bytesOrNil turns an optional text field into bytes (nil when empty).
func bytesOrNil(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}
