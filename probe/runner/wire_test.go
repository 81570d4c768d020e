package runner

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// TestWirePipe runs a job through Local, encodes the stream into a pipe as
// a remote runner would, and decodes it on the other side: the consumer
// sees a stream that keeps the whole contract (collect checks it).
func TestWirePipe(t *testing.T) {
	ln := listen(t)
	signed := makeJob(t, time.Now(), []string{"127.0.0.1"}, []uint16{ln.port}, 100, nil)
	s, err := newLocal(t).Run(context.Background(), Request{Job: signed})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pr, pw := io.Pipe()
	encErr := make(chan error, 1)
	go func() {
		err := Encode(context.Background(), pw, s)
		pw.CloseWithError(err)
		encErr <- err
	}()
	remote := Decode(pr)
	defer remote.Close()
	evs := collect(t, remote)
	if err := <-encErr; err != nil {
		t.Fatal(err)
	}
	if evs[0].Type != TypeAccepted || evs[len(evs)-1].Type != TypeDone || evs[len(evs)-1].Done.Error != "" {
		t.Fatalf("events %v ... %v", evs[0].Type, evs[len(evs)-1].Type)
	}
}

const (
	lineAccepted = `{"seq":1,"type":"accepted","time":"2026-11-27T12:00:00Z","accepted":{"runner":"local","job_sha256":"a","request_sha256":"b","targets":1,"rate_pps":10,"transport":"connect","batch_targets":16}}`
	lineCheck2   = `{"seq":2,"type":"checkpoint","time":"2026-11-27T12:00:01Z","checkpoint":{"next_batch":1}}`
	lineDone3    = `{"seq":3,"type":"done","time":"2026-11-27T12:00:02Z","done":{"summary":{"scan_id":"s","started":"2026-11-27T12:00:00Z","finished":"2026-11-27T12:00:02Z","wall_seconds":2,"transport":"connect","rate_pps":10,"cap_pps":10,"per_host_pps":10,"window_limit":2,"packets_sent":1,"measured_pps":0,"wall_pps":0.5,"worst_100ms_window":1,"retries":0,"loss_seen":false,"timeout_ms":0,"srtt_ms":0,"refused_packets":0,"refused_targets":0,"unmatched_replies":0,"duplicate_replies":0,"malformed_replies":0,"probes":1,"states":{"open":1},"evidence_packets":0,"kinds":["tcp-connect"]}}}`
	lineRefused1 = `{"seq":1,"type":"refused","time":"2026-11-27T12:00:00Z","refused":{"code":"signature","reason":"x"}}`
)

// TestDecodeRefuses: a stream that breaks the contract is an error, not a
// silently shorter scan.
func TestDecodeRefuses(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  error // after the good events
	}{
		{"complete", []string{lineAccepted, lineCheck2, lineDone3}, io.EOF},
		{"refused", []string{lineRefused1}, io.EOF},
		{"truncated", []string{lineAccepted, lineCheck2}, ErrTruncated},
		{"gap", []string{lineAccepted, lineDone3}, ErrSequence},
		{"duplicate", []string{lineAccepted, lineAccepted}, ErrSequence},
		{"after final", []string{lineRefused1, lineCheck2}, ErrSequence},
		{"type without member", []string{`{"seq":1,"type":"done","time":"2026-11-27T12:00:00Z"}`}, ErrMalformed},
		{"two members", []string{strings.Replace(lineRefused1, `"refused":`, `"checkpoint":{"next_batch":1},"refused":`, 1)}, ErrMalformed},
		{"unknown type", []string{`{"seq":1,"type":"shell","time":"2026-11-27T12:00:00Z"}`}, ErrMalformed},
		{"unknown field", []string{strings.Replace(lineRefused1, `"seq":1`, `"seq":1,"x":1`, 1)}, ErrMalformed},
		{"seq zero", []string{strings.Replace(lineRefused1, `"seq":1`, `"seq":0`, 1)}, ErrMalformed},
		{"not json", []string{"hello"}, ErrMalformed},
		{"two values", []string{lineRefused1 + " {}"}, ErrMalformed},
		{"too long", []string{strings.Repeat("x", MaxEventSize+1)}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Decode(strings.NewReader(strings.Join(tt.lines, "\n") + "\n"))
			var err error
			for range len(tt.lines) + 2 {
				if _, err = s.Recv(context.Background()); err != nil {
					break
				}
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Recv = %v, want %v", err, tt.want)
			}
		})
	}
}

// FuzzDecode: the decoder never panics, every event it returns is valid
// and numbered 1, 2, 3 ..., and nothing follows a final event.
func FuzzDecode(f *testing.F) {
	// Seeds: a complete stream, a refusal, a truncated one, garbage.
	f.Add(strings.Join([]string{lineAccepted, lineCheck2, lineDone3}, "\n"))
	f.Add(lineRefused1 + "\n")
	f.Add(lineAccepted + "\n" + lineCheck2)
	f.Add("{}\n{\"seq\":1}")
	f.Fuzz(func(t *testing.T, data string) {
		s := Decode(strings.NewReader(data))
		var seq uint64
		ended := false
		for range 10_000 {
			ev, err := s.Recv(context.Background())
			if err != nil {
				if err == io.EOF && !ended {
					t.Fatal("EOF before a final event")
				}
				return
			}
			if ended || ev.Seq != seq+1 || ev.Validate() != nil {
				t.Fatalf("event %+v after seq %d (ended %v)", ev, seq, ended)
			}
			seq, ended = ev.Seq, ev.final()
		}
	})
}
