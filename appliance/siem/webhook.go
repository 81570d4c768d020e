package siem

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Webhook request headers. docs/siem.md shows a receiver's check.
const (
	// HeaderTimestamp is the sending time, Unix seconds.
	HeaderTimestamp = "X-FIQ-Timestamp"
	// HeaderNonce is 32 random hex digits, new for every request (a retry
	// too), so a receiver can tell a replay from a retry sent in the same
	// second.
	HeaderNonce = "X-FIQ-Nonce"
	// HeaderSignature is
	// "v1=" + hex(HMAC-SHA256(key, timestamp + "." + nonce + "." + body)).
	HeaderSignature = "X-FIQ-Signature"
	// HeaderSeq is the destination sequence number (also in the body, at
	// metadata.sequence); informational, not signed separately.
	HeaderSeq = "X-FIQ-Seq"
	// HeaderAppliance is the sending appliance's id.
	HeaderAppliance = "X-FIQ-Appliance"
)

// ReplayWindow is how far a webhook's timestamp may be from the receiver's
// clock, either way. Five minutes absorbs clock skew and a slow proxy; a
// captured request replayed later than that is refused as stale, and one
// replayed sooner is refused by the Verifier's memory of signatures.
const ReplayWindow = 5 * time.Minute

// Webhook verification errors.
var (
	// ErrSignature means the signature header is missing or wrong.
	ErrSignature = errors.New("webhook signature invalid")
	// ErrStale means the timestamp is outside the replay window.
	ErrStale = errors.New("webhook timestamp outside the replay window")
	// ErrReplay means this exact request was already accepted.
	ErrReplay = errors.New("webhook request replayed")
)

// Sign returns the signature header value for body sent at ts (Unix seconds)
// with nonce. The timestamp and nonce are signed with the body so neither can
// be changed to bring an old request back into the window or past the
// receiver's replay memory.
func Sign(key []byte, ts int64, nonce string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(strconv.FormatInt(ts, 10)))
	mac.Write([]byte{'.'})
	mac.Write([]byte(nonce))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Verifier checks webhook requests on the receiving side: signature,
// timestamp within the window, and no replay. It is safe for concurrent use.
// Receivers in other languages follow the same steps (docs/siem.md).
type Verifier struct {
	key    []byte
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	seen map[string]time.Time // nonce -> timestamp, pruned past window
}

// NewVerifier returns a Verifier for key. window is ReplayWindow when zero;
// now is time.Now when nil.
func NewVerifier(key []byte, window time.Duration, now func() time.Time) *Verifier {
	if window <= 0 {
		window = ReplayWindow
	}
	if now == nil {
		now = time.Now
	}
	return &Verifier{key: append([]byte(nil), key...), window: window, now: now, seen: map[string]time.Time{}}
}

// Verify checks one request's headers and body. Signature first, so an
// unauthenticated sender learns nothing about timing or replay state.
func (v *Verifier) Verify(h http.Header, body []byte) error {
	tsText := h.Get(HeaderTimestamp)
	sig := h.Get(HeaderSignature)
	nonce := h.Get(HeaderNonce)
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil || !strings.HasPrefix(sig, "v1=") || strconv.FormatInt(ts, 10) != tsText || !validNonce(nonce) {
		return ErrSignature
	}
	if !hmac.Equal([]byte(sig), []byte(Sign(v.key, ts, nonce, body))) {
		return ErrSignature
	}
	now := v.now()
	at := time.Unix(ts, 0)
	if at.Before(now.Add(-v.window)) || at.After(now.Add(v.window)) {
		return fmt.Errorf("%w: sent %s, now %s", ErrStale, at.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for s, t := range v.seen {
		if t.Before(now.Add(-v.window)) {
			delete(v.seen, s)
		}
	}
	if _, dup := v.seen[nonce]; dup {
		return ErrReplay
	}
	v.seen[nonce] = at
	return nil
}

// validNonce accepts 16 to 64 hex digits.
func validNonce(s string) bool {
	if len(s) < 16 || len(s) > 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// newNonce returns 32 random hex digits.
func newNonce() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}
