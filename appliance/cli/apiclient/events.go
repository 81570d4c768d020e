package apiclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Limits of an event stream (Events).
const (
	// MaxEventBytes bounds one event's data.
	MaxEventBytes = 64 << 10
	// MaxEvents bounds how many events one stream delivers.
	MaxEvents = 1 << 20
	// EventIdle is how long a stream may stay silent (the server sends a
	// comment line every 15 s) before the client gives up.
	EventIdle = time.Minute
)

// ErrStreamIdle means an event stream sent nothing for EventIdle.
var ErrStreamIdle = errors.New("the event stream went silent")

// Event is one Server-Sent Event: its type ("message" when the server
// named none) and its data lines joined by "\n".
type Event struct {
	Type string
	Data []byte
}

// Events opens the Server-Sent Events stream GET APIPrefix+path and calls
// fn with each event until the server ends the stream (nil), ctx ends, fn
// returns an error, or the stream is silent for EventIdle. No overall
// timeout applies: a stream lasts as long as what it follows. An error
// answer before the stream starts is an *Error, as with Do; streams
// never ask for step-up.
func (c *Client) Events(ctx context.Context, path string, q url.Values, fn func(Event) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	u := *c.base
	u.Path = strings.TrimRight(c.base.Path, "/") + APIPrefix + path
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	rid := newRequestID()
	req.Header.Set(RequestIDHeader, rid)
	switch {
	case c.cfg.Token != "":
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	case c.session != "":
		req.AddCookie(&http.Cookie{Name: SessionCookieName, Value: c.session})
	}
	// The same transport and redirect rule, without the per-exchange
	// timeout; the idle timer below bounds a silent stream instead.
	hc := &http.Client{Transport: c.hc.Transport, CheckRedirect: c.hc.CheckRedirect}
	idle := time.AfterFunc(EventIdle, func() { cancel(ErrStreamIdle) })
	defer idle.Stop()
	resp, err := hc.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, ErrStreamIdle) {
			err = cause
		}
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes))
		return decodeError(resp, data, rid)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return fmt.Errorf("GET %s: answered %q, not an event stream", path, ct)
	}
	err = readEvents(resp.Body, func(ev Event) error {
		idle.Reset(EventIdle)
		return fn(ev)
	}, func() { idle.Reset(EventIdle) })
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, ErrStreamIdle) {
			err = cause
		}
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// errEventTooLarge and errTooManyEvents end a stream that breaks the
// limits.
var (
	errEventTooLarge = fmt.Errorf("an event larger than %d bytes", MaxEventBytes)
	errTooManyEvents = fmt.Errorf("more than %d events", MaxEvents)
)

// readEvents parses a text/event-stream body (the WHATWG HTML "server-sent
// events" format: "field: value" lines, a blank line ends an event, lines
// starting with ":" are comments) and calls fn per event that has data.
// line is called for every line read (the idle timer). Fields other than
// event and data (id, retry) are ignored: the client never reconnects.
func readEvents(r io.Reader, fn func(Event) error, line func()) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), MaxEventBytes+64)
	var (
		ev    Event
		lines []string
		size  int
		n     int
	)
	for sc.Scan() {
		line()
		l := strings.TrimSuffix(sc.Text(), "\r")
		switch {
		case l == "":
			if lines == nil {
				ev = Event{}
				continue // a comment-only block
			}
			if ev.Type == "" {
				ev.Type = "message"
			}
			ev.Data = []byte(strings.Join(lines, "\n"))
			if err := fn(ev); err != nil {
				return err
			}
			if n++; n >= MaxEvents {
				return errTooManyEvents
			}
			ev, lines, size = Event{}, nil, 0
		case strings.HasPrefix(l, ":"):
			// A comment (keep-alive).
		case strings.HasPrefix(l, "event:"):
			ev.Type = strings.TrimPrefix(strings.TrimPrefix(l, "event:"), " ")
		case strings.HasPrefix(l, "data:"):
			d := strings.TrimPrefix(strings.TrimPrefix(l, "data:"), " ")
			if size += len(d) + 1; size > MaxEventBytes {
				return errEventTooLarge
			}
			lines = append(lines, d)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return errEventTooLarge
		}
		return err
	}
	return nil
}
