package siem

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"
)

// readFrames reads RFC 6587 octet-counted frames from r until EOF.
func readFrames(r io.Reader) ([]string, error) {
	br := bufio.NewReader(r)
	var out []string
	for {
		n, err := br.ReadString(' ')
		if err == io.EOF && n == "" {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		size, err := strconv.Atoi(n[:len(n)-1])
		if err != nil {
			return out, fmt.Errorf("frame length %q: %w", n, err)
		}
		buf := make([]byte, size)
		if _, err := io.ReadFull(br, buf); err != nil {
			return out, err
		}
		out = append(out, string(buf))
	}
}

func batch(from, to int) []Outgoing {
	var out []Outgoing
	for i := from; i <= to; i++ {
		out = append(out, Outgoing{Seq: int64(i), Payload: []byte(fmt.Sprint("event ", i))})
	}
	return out
}

// TestStreamReplaysTailOnReconnect: the receiver closes the first
// connection after reading it (as a stopping rsyslog would, possibly with
// bytes unread); the next connection starts with what the first carried.
func TestStreamReplaysTailOnReconnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conns := make(chan net.Conn, 2)
	go func() {
		for i := 0; i < 2; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	s := &streamSender{dial: func(ctx context.Context) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", ln.Addr().String())
	}}
	defer s.Close()
	ctx := context.Background()
	if n, err := s.Send(ctx, batch(1, 3)); err != nil || n != 3 {
		t.Fatalf("first send: %d, %v", n, err)
	}
	first := <-conns
	_ = first.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	got, _ := readFrames(first)
	if len(got) != 3 {
		t.Fatalf("first connection carried %q", got)
	}
	first.Close() // the receiver goes away

	// The sender notices the closed connection before writing, dials
	// again and replays the tail before the new batch.
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := s.Send(ctx, batch(4, 5))
		if err == nil && n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("second send: %d, %v", n, err)
		}
	}
	second := <-conns
	s.Close()
	got, err = readFrames(second)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"event 1", "event 2", "event 3", "event 4", "event 5"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("second connection carried %q, want %q", got, want)
	}
}

func TestStreamTailBounds(t *testing.T) {
	tests := []struct {
		name      string
		batches   [][]Outgoing
		wantFirst int64
		wantLen   int
	}{
		{"under the bounds", [][]Outgoing{batch(1, 10)}, 1, 10},
		{"count bound", [][]Outgoing{batch(1, 1000), batch(1001, 1500)}, 1500 - replayMessages + 1, replayMessages},
		{"byte bound", [][]Outgoing{{{Seq: 1, Payload: make([]byte, replayBytes)}}, {{Seq: 2, Payload: []byte("x")}}}, 2, 1},
		{"one huge event is kept", [][]Outgoing{{{Seq: 1, Payload: make([]byte, 2*replayBytes)}}}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &streamSender{}
			for _, b := range tt.batches {
				s.remember(b)
			}
			if len(s.tail) != tt.wantLen || s.tail[0].Seq != tt.wantFirst {
				t.Fatalf("tail has %d events from seq %d, want %d from %d", len(s.tail), s.tail[0].Seq, tt.wantLen, tt.wantFirst)
			}
			sum := 0
			for _, m := range s.tail {
				sum += len(m.Payload)
			}
			if sum != s.tailBytes {
				t.Fatalf("tailBytes %d, payloads sum to %d", s.tailBytes, sum)
			}
		})
	}
}
