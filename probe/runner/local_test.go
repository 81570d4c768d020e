package runner

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"firewalliq/probe"
	"firewalliq/probe/job"
	"firewalliq/probe/safety"
	"firewalliq/probe/scope"
)

var (
	scopeKey = ed25519.NewKeyFromSeed(slices.Repeat([]byte{1}, 32))
	jobKey   = ed25519.NewKeyFromSeed(slices.Repeat([]byte{2}, 32))
	otherKey = ed25519.NewKeyFromSeed(slices.Repeat([]byte{3}, 32))
)

// listener accepts and closes connections on 127.0.0.1 and counts them.
type listener struct {
	port     uint16
	accepted atomic.Int64
}

func listen(t *testing.T) *listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("listen: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	ln := &listener{port: uint16(l.Addr().(*net.TCPAddr).Port)}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			ln.accepted.Add(1)
			c.Close()
		}
	}()
	return ln
}

func closedPort(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("listen: %v", err)
	}
	p := uint16(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	return p
}

// makeJob signs a non-production loopback job under the compiled-in
// profile; mut changes it before signing.
func makeJob(t *testing.T, now time.Time, targets []string, ports []uint16, rate int, mut func(*job.Job)) []byte {
	t.Helper()
	prof, err := safety.Load()
	if err != nil {
		t.Fatal(err)
	}
	signedScope, err := scope.Sign(scope.Document{
		ID: "sc-lo", Tenant: "acme", Name: "loopback", Environment: scope.EnvNonProduction,
		CIDRs: []string{"127.0.0.0/24"}, Ports: "tcp:1-65535", Probes: []safety.Kind{safety.KindTCPConnect},
		NotBefore: now.Add(-time.Hour).Truncate(time.Second), NotAfter: now.Add(time.Hour).Truncate(time.Second), MaxPPS: 500,
	}, scopeKey)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := scope.Verify(signedScope, scopeKey.Public().(ed25519.PublicKey), now, prof)
	if err != nil {
		t.Fatal(err)
	}
	var ps []scope.Port
	for _, p := range ports {
		ps = append(ps, scope.Port{Proto: "tcp", Number: p})
	}
	slices.SortFunc(ps, func(a, b scope.Port) int { return int(a.Number) - int(b.Number) })
	j := job.Job{
		ID: "job-1", ScanID: "scan-1",
		Request: job.Request{
			ID: "req-1", Tenant: "acme", Requester: "u-1", ScopeSHA256: sc.SHA256(), Targets: targets,
			Ports: scope.FormatPorts(ps), Probes: []safety.Kind{safety.KindTCPConnect}, Rate: rate, Vantage: job.VantageLocal,
		},
		Scope: signedScope, Profile: job.ProfileRef{ID: prof.ID, SHA256: prof.SHA256()},
		IssuedAt: now.Add(-time.Minute).Truncate(time.Second), NotBefore: now.Add(-time.Minute).Truncate(time.Second),
		NotAfter: now.Add(time.Hour).Truncate(time.Second), Seed: 7,
	}
	if mut != nil {
		mut(&j)
	}
	b, err := job.Sign(j, jobKey)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newLocal(t *testing.T, scopeKeys ...ed25519.PublicKey) *Local {
	t.Helper()
	if scopeKeys == nil {
		scopeKeys = []ed25519.PublicKey{scopeKey.Public().(ed25519.PublicKey)}
	}
	sp, err := probe.NewSharedPacer(nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLocal(Local{
		JobKey: jobKey.Public().(ed25519.PublicKey), Shared: sp, NoRaw: true,
		ScopeKeys: func(_ context.Context, tenant string) ([]ed25519.PublicKey, error) {
			if tenant != "acme" {
				return nil, errors.New("no such tenant")
			}
			return scopeKeys, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// collect reads a stream to its end (bounded in time) and checks the
// contract every stream keeps: sequence numbers 1, 2, 3 ... without gaps,
// one final event (refused or done) and then io.EOF, and every event
// survives a JSON round trip unchanged (the contract crosses a network).
func collect(t *testing.T, s Stream) []Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var evs []Event
	for {
		ev, err := s.Recv(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		if ev.Seq != uint64(len(evs)+1) {
			t.Fatalf("event %d has seq %d", len(evs)+1, ev.Seq)
		}
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		var back Event
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		b2, _ := json.Marshal(back)
		if !bytes.Equal(b, b2) {
			t.Fatalf("event does not round-trip through JSON:\n%s\n%s", b, b2)
		}
		evs = append(evs, ev)
	}
	if len(evs) == 0 {
		t.Fatal("no events")
	}
	last := evs[len(evs)-1].Type
	if last != TypeDone && last != TypeRefused {
		t.Fatalf("last event %q", last)
	}
	for _, ev := range evs[:len(evs)-1] {
		if ev.Type == TypeDone || ev.Type == TypeRefused {
			t.Fatalf("final event %q before the end", ev.Type)
		}
	}
	return evs
}

// TestLocalRun: a verified job runs on the engine; results, checkpoints and
// the summary come back as events.
func TestLocalRun(t *testing.T) {
	ln := listen(t)
	closed := closedPort(t)
	now := time.Now()
	signed := makeJob(t, now, []string{"127.0.0.1"}, []uint16{ln.port, closed}, 200, nil)
	s, err := newLocal(t).Run(context.Background(), Request{Job: signed})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs := collect(t, s)
	if evs[0].Type != TypeAccepted || evs[0].Accepted.Targets != 1 || evs[0].Accepted.RatePPS != 200 || evs[0].JobID != "job-1" || evs[0].ScanID != "scan-1" {
		t.Fatalf("first event %+v %+v", evs[0], evs[0].Accepted)
	}
	states := map[uint16]probe.State{}
	checkpoints := 0
	for _, ev := range evs {
		switch ev.Type {
		case TypeResult:
			states[ev.Result.Port] = ev.Result.State
		case TypeCheckpoint:
			checkpoints++
		}
	}
	if states[ln.port] != probe.StateOpen || states[closed] != probe.StateClosed || len(states) != 2 {
		t.Fatalf("states %v", states)
	}
	done := evs[len(evs)-1].Done
	if checkpoints == 0 || done.Error != "" || done.Summary.Probes != 2 || done.Summary.ScanID != "scan-1" {
		t.Fatalf("checkpoints %d, done %+v", checkpoints, done)
	}
}

// TestLocalRefuses: a job that fails verification, or is for another
// vantage point, is refused with its code before the first packet: the
// listener sees no connection.
func TestLocalRefuses(t *testing.T) {
	ln := listen(t)
	now := time.Now()
	good := makeJob(t, now, []string{"127.0.0.1"}, []uint16{ln.port}, 100, nil)
	// One character of the job's own signature (the last "sig"; the first
	// is the embedded scope's) replaced by another base64 character.
	flipped := bytes.Clone(good)
	pos := bytes.LastIndex(flipped, []byte(`"sig":"`)) + 10
	if flipped[pos] == 'A' {
		flipped[pos] = 'B'
	} else {
		flipped[pos] = 'A'
	}
	tests := []struct {
		name   string
		job    []byte
		local  *Local
		resume int
		code   string
	}{
		{"signature", bytes.Replace(good, []byte(`"rate":100`), []byte(`"rate":101`), 1), newLocal(t), 0, "signature"},
		{"flipped signature byte", flipped, newLocal(t), 0, "signature"},
		{"not a job", []byte("{}"), newLocal(t), 0, "invalid"},
		{"other vantage", makeJob(t, now, []string{"127.0.0.1"}, []uint16{ln.port}, 100, func(j *job.Job) { j.Request.Vantage = "sensor-1" }), newLocal(t), 0, "vantage-mismatch"},
		{"expired", makeJob(t, now, []string{"127.0.0.1"}, []uint16{ln.port}, 100, func(j *job.Job) {
			j.NotAfter = j.NotBefore.Add(time.Second)
		}), newLocal(t), 0, "expired"},
		{"untrusted scope key", good, newLocal(t, otherKey.Public().(ed25519.PublicKey)), 0, "scope-untrusted"},
		{"unknown tenant", makeJob(t, now, []string{"127.0.0.1"}, []uint16{ln.port}, 100, func(j *job.Job) { j.Request.Tenant = "globex" }), newLocal(t), 0, "scope-untrusted"},
		{"target outside", makeJob(t, now, []string{"127.0.0.1"}, []uint16{ln.port}, 100, func(j *job.Job) { j.Request.Targets = []string{"127.0.1.1"} }), newLocal(t), 0, "target-out-of-scope"},
		{"rate above scope", makeJob(t, now, []string{"127.0.0.1"}, []uint16{ln.port}, 100, func(j *job.Job) { j.Request.Rate = 501 }), newLocal(t), 0, "rate-above-cap"},
		{"negative resume", good, newLocal(t), -1, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := tt.local.Run(context.Background(), Request{Job: tt.job, ResumeBatch: tt.resume})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			evs := collect(t, s)
			if len(evs) != 1 || evs[0].Type != TypeRefused || evs[0].Refused.Code != tt.code || evs[0].Refused.Reason == "" {
				t.Fatalf("events %+v (refusal %+v), want one refusal %q", evs, evs[0].Refused, tt.code)
			}
		})
	}
	if n := ln.accepted.Load(); n != 0 {
		t.Fatalf("%d connections reached the listener from refused jobs", n)
	}
}

// TestLocalClose: closing the stream mid-run stops the scan promptly.
func TestLocalClose(t *testing.T) {
	closed := closedPort(t)
	now := time.Now()
	// 16 targets at 4 pps: about 4 s if it were not stopped.
	signed := makeJob(t, now, []string{"127.0.0.16/28"}, []uint16{closed}, 4, func(j *job.Job) { j.BatchTargets = 1 })
	s, err := newLocal(t).Run(context.Background(), Request{Job: signed})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := s.Recv(context.Background())
	if err != nil || ev.Type != TypeAccepted {
		t.Fatalf("first event %+v, %v", ev, err)
	}
	start := time.Now()
	s.Close()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %s", d)
	}
}

func TestCode(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{job.ErrSignature, "signature"},
		{errors.Join(errors.New("x"), job.ErrApprovals), "approvals"},
		{ErrVantage, "vantage-mismatch"},
		{context.Canceled, "cancelled"},
		{errors.New("socket"), "engine"},
	}
	for _, tt := range tests {
		if got := Code(tt.err); got != tt.want {
			t.Errorf("Code(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// TestLocalResume: a run stopped after a checkpoint and run again under the
// same job with ResumeBatch covers exactly the remaining targets: together
// every target once (the job fixes the order and the batch size).
func TestLocalResume(t *testing.T) {
	closed := closedPort(t)
	signed := makeJob(t, time.Now(), []string{"127.0.0.8/29"}, []uint16{closed}, 200, func(j *job.Job) { j.BatchTargets = 2 })
	l := newLocal(t)
	first := map[string]int{}
	s, err := l.Run(context.Background(), Request{Job: signed})
	if err != nil {
		t.Fatal(err)
	}
	for {
		ev, err := s.Recv(context.Background())
		if err != nil {
			t.Fatalf("first run ended before checkpoint 2: %v", err)
		}
		if ev.Type == TypeResult {
			first[ev.Result.Target]++
		}
		if ev.Type == TypeCheckpoint && ev.Checkpoint.NextBatch == 2 {
			break
		}
	}
	s.Close()
	s, err = l.Run(context.Background(), Request{Job: signed, ResumeBatch: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs := collect(t, s)
	if evs[0].Accepted.ResumeBatch != 2 || evs[len(evs)-1].Done.Summary.ResumedAtBatch != 2 {
		t.Fatalf("resume not reported: %+v %+v", evs[0].Accepted, evs[len(evs)-1].Done)
	}
	second := map[string]int{}
	for _, ev := range evs {
		if ev.Type == TypeResult {
			second[ev.Result.Target]++
		}
	}
	if len(first) != 4 || len(second) != 4 {
		t.Fatalf("first run %v, resumed run %v; want 4 targets each", first, second)
	}
	for a := range first {
		if second[a] != 0 {
			t.Fatalf("%s probed by both runs", a)
		}
	}
}
