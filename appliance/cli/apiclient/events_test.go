package apiclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// TestEvents reads event streams from a real TLS server: events with
// types, multi-line data and comments; an error answer; an answer that is
// not a stream; an event over the limit.
func TestEvents(t *testing.T) {
	tests := []struct {
		name   string
		status int
		ctype  string
		body   string
		want   []string // "type=data"
		err    string
	}{
		{name: "stream", status: 200, ctype: "text/event-stream",
			body: ": hello\n\nid: 1\nevent: progress\ndata: {\"a\":1}\n\ndata: one\ndata: two\n\n: keep-alive\n\nevent: progress\r\ndata: {\"b\":2}\r\n\r\n",
			want: []string{`progress={"a":1}`, "message=one\ntwo", `progress={"b":2}`}},
		{name: "unfinished last event is dropped", status: 200, ctype: "text/event-stream", body: "data: x\n\ndata: y\n", want: []string{"message=x"}},
		{name: "error answer", status: 404, ctype: "application/json", body: `{"error":{"code":"not_found","message":"no such scan","request_id":"r1"}}`, err: "not_found: no such scan"},
		{name: "not a stream", status: 200, ctype: "application/json", body: `{}`, err: "not an event stream"},
		{name: "event too large", status: 200, ctype: "text/event-stream", body: "data: " + strings.Repeat("x", MaxEventBytes+1) + "\n\n", err: "larger than"},
		{name: "data lines too large together", status: 200, ctype: "text/event-stream", body: strings.Repeat("data: "+strings.Repeat("x", 1000)+"\n", 70) + "\n", err: "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/api/v1/scans/s1/events" || r.Header.Get("Accept") != "text/event-stream" {
					http.Error(w, "wrong request", http.StatusBadRequest)
					return
				}
				if c, err := r.Cookie(SessionCookieName); err != nil || c.Value != "sess" {
					http.Error(w, "no session", http.StatusUnauthorized)
					return
				}
				w.Header().Set("Content-Type", tt.ctype)
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			defer srv.Close()
			c := newClient(t, srv, nil)
			var got []string
			err := c.Events(context.Background(), "/scans/s1/events", nil, func(ev Event) error {
				got = append(got, ev.Type+"="+string(ev.Data))
				return nil
			})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("events %q, want %q", got, tt.want)
			}
		})
	}
}

// TestEventsStopsOnCallbackError: fn's error ends the stream and is
// returned as is.
func TestEventsStopsOnCallbackError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := readEvents(strings.NewReader("data: 1\n\ndata: 2\n\n"), func(Event) error { n++; return stop }, func() {})
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("err %v after %d events", err, n)
	}
}

// FuzzReadEvents: any body parses without panicking, and no event's data
// exceeds MaxEventBytes. Seed corpus: a progress stream, comments only,
// CRLF line ends, an unterminated event, a field without a colon.
func FuzzReadEvents(f *testing.F) {
	for _, s := range []string{
		"id: 1\nevent: progress\ndata: {\"state\":\"running\"}\n\n",
		": keep-alive\n\n: again\n\n",
		"event: progress\r\ndata: x\r\n\r\n",
		"data: unterminated",
		"retry\ndata\n\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		_ = readEvents(strings.NewReader(body), func(ev Event) error {
			if len(ev.Data) > MaxEventBytes {
				t.Fatalf("event of %d bytes", len(ev.Data))
			}
			return nil
		}, func() {})
	})
}
