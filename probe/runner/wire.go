package runner

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// The wire form of a stream is JSON Lines: one Event per line, in order.
// Encode writes it (the runner's side of a remote exchange), Decode reads
// it back as a Stream and checks the contract as it goes, so a consumer on
// the far side of a pipe or a message bus sees exactly what a local one
// does, or an error.

// Errors of the wire form.
var (
	// ErrMalformed means a line is not one valid event.
	ErrMalformed = errors.New("malformed runner event")
	// ErrSequence means an event's seq is not the previous one's plus one,
	// or an event follows the final one: events were lost, duplicated or
	// reordered.
	ErrSequence = errors.New("runner event out of sequence")
	// ErrTruncated means the stream ended before its final event.
	ErrTruncated = errors.New("runner stream ended before its final event")
)

// MaxEventSize bounds one encoded event (a result with a TLS chain is a
// few kilobytes).
const MaxEventSize = 1 << 20

// Validate checks that the event's Type is known and that exactly the
// member of that type is set.
func (e Event) Validate() error {
	set := map[string]bool{
		TypeAccepted: e.Accepted != nil, TypeRefused: e.Refused != nil, TypeProgress: e.Progress != nil,
		TypeResult: e.Result != nil, TypeCheckpoint: e.Checkpoint != nil, TypeDone: e.Done != nil,
	}
	if _, ok := set[e.Type]; !ok {
		return fmt.Errorf("%w: unknown type %q", ErrMalformed, e.Type)
	}
	for t, on := range set {
		if on != (t == e.Type) {
			return fmt.Errorf("%w: a %q event must carry exactly its %q member", ErrMalformed, e.Type, e.Type)
		}
	}
	if e.Seq == 0 {
		return fmt.Errorf("%w: seq 0", ErrMalformed)
	}
	return nil
}

func (e Event) final() bool { return e.Type == TypeRefused || e.Type == TypeDone }

// Encode writes every event of s to w, one JSON line each, until the
// final event has been written (it returns nil), s fails, w fails or ctx
// ends.
func Encode(ctx context.Context, w io.Writer, s Stream) error {
	for {
		ev, err := s.Recv(ctx)
		if err == io.EOF {
			return fmt.Errorf("encode: %w", ErrTruncated)
		}
		if err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		b, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		if _, err := w.Write(append(b, '\n')); err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		if ev.final() {
			return nil
		}
	}
}

// Decode returns the Stream of the JSON Lines in r. Recv fails with
// ErrMalformed, ErrSequence or ErrTruncated when r breaks the contract; it
// returns io.EOF once the final event was received. Close closes r if it is
// an io.Closer.
func Decode(r io.Reader) Stream {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxEventSize)
	return &wireStream{sc: sc, r: r}
}

type wireStream struct {
	sc    *bufio.Scanner
	r     io.Reader
	seq   uint64
	ended bool
	err   error
}

// Recv reads the next event. A read blocks in the reader: ctx is checked
// between events only (close the reader to interrupt).
func (s *wireStream) Recv(ctx context.Context) (Event, error) {
	if s.err != nil {
		return Event{}, s.err
	}
	if err := ctx.Err(); err != nil {
		return Event{}, err
	}
	if s.ended {
		// Nothing may follow the final event.
		if s.sc.Scan() && len(bytes.TrimSpace(s.sc.Bytes())) > 0 {
			s.err = fmt.Errorf("%w: data after the final event", ErrSequence)
			return Event{}, s.err
		}
		return Event{}, io.EOF
	}
	if !s.sc.Scan() {
		if err := s.sc.Err(); err != nil {
			s.err = fmt.Errorf("%w: %v", ErrMalformed, err)
		} else {
			s.err = ErrTruncated
		}
		return Event{}, s.err
	}
	var ev Event
	dec := json.NewDecoder(bytes.NewReader(s.sc.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		s.err = fmt.Errorf("%w: %v", ErrMalformed, err)
		return Event{}, s.err
	}
	if dec.More() {
		s.err = fmt.Errorf("%w: more than one value on a line", ErrMalformed)
		return Event{}, s.err
	}
	if err := ev.Validate(); err != nil {
		s.err = err
		return Event{}, err
	}
	if ev.Seq != s.seq+1 {
		s.err = fmt.Errorf("%w: seq %d after %d", ErrSequence, ev.Seq, s.seq)
		return Event{}, s.err
	}
	s.seq = ev.Seq
	s.ended = ev.final()
	return ev, nil
}

// Close closes the underlying reader if it can be closed.
func (s *wireStream) Close() error {
	if c, ok := s.r.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
