package runner

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"time"

	"firewalliq/probe"
	"firewalliq/probe/job"
	"firewalliq/probe/safety"
)

// Local runs jobs with the probe engine in this process.
type Local struct {
	// ID is this runner's vantage id; a job must name it (job.VantageLocal
	// when empty).
	ID string
	// JobKey is the appliance's job public key.
	JobKey ed25519.PublicKey
	// ScopeKeys returns the scope-signing keys trusted for tenant (the
	// active keys of the tenant's security leads). It is asked with the
	// tenant the job claims; Verify then checks the scope is that tenant's.
	ScopeKeys func(ctx context.Context, tenant string) ([]ed25519.PublicKey, error)
	// Shared is the appliance-wide pacer every local run draws from.
	Shared *probe.SharedPacer
	// Now is the clock (default time.Now); the engine and the shared
	// pacer use the same. It sets socket deadlines, so it must be the
	// real time.
	Now func() time.Time
	// ValidityNow is the clock the job's and the scope's validity windows
	// are checked against (default Now): the orchestrator's clock, which
	// issued the job.
	ValidityNow func() time.Time
	// NoRaw runs without raw sockets (tcp-syn as tcp-connect).
	NoRaw bool
	// Capture, if not nil, opens the stream that a verified run's probe
	// packets and replies are written to as pcapng (probe.Evidence; the
	// engine captures with raw sockets only). A resumed run writes another
	// section to the stream it gets. The stream is flushed before the
	// final event and closed when the run ends; a write error fails the
	// run (evidence loss must not pass silently).
	Capture func(j job.Job) (io.WriteCloser, error)
	// Buffer is the number of events held for a slow reader before the
	// engine waits (default 1024).
	Buffer int
	// profile is the compiled-in safety profile (NewLocal loads it), the
	// one probe.New enforces.
	profile safety.Profile
}

// NewLocal returns a local runner that verifies jobs against the
// compiled-in safety profile, the one the engine enforces.
func NewLocal(l Local) (*Local, error) {
	p, err := safety.Load()
	if err != nil {
		return nil, err
	}
	if len(l.JobKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("local runner: job key has %d bytes", len(l.JobKey))
	}
	if l.ScopeKeys == nil {
		return nil, errors.New("local runner: no scope keys")
	}
	if l.ID == "" {
		l.ID = job.VantageLocal
	}
	if l.Now == nil {
		l.Now = time.Now
	}
	if l.ValidityNow == nil {
		l.ValidityNow = l.Now
	}
	if l.Buffer <= 0 {
		l.Buffer = 1024
	}
	l.profile = p
	return &l, nil
}

// Run verifies the job and, if it passes, runs it. See Runner.
func (l *Local) Run(ctx context.Context, req Request) (Stream, error) {
	ctx, cancel := context.WithCancel(ctx)
	s := &localStream{ch: make(chan Event, l.Buffer), cancel: cancel, now: l.Now, done: make(chan struct{}), closed: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer close(s.ch)
		defer cancel()
		l.run(ctx, req, s)
	}()
	return s, nil
}

// both is the containment the engine checks for every packet: the scope
// and the job's target set (a subset of it), so a packet can go only to an
// address the job names.
type both struct{ a, b probe.Containment }

func (c both) Contains(a netip.Addr) bool { return c.a.Contains(a) && c.b.Contains(a) }

func (l *Local) run(ctx context.Context, req Request, s *localStream) {
	refuse := func(err error) {
		s.emit(ctx, Event{Type: TypeRefused, Refused: &Refusal{Code: Code(err), Reason: err.Error()}}, true)
	}
	unverified, _, err := job.Open(req.Job)
	if err != nil {
		refuse(err)
		return
	}
	s.jobID, s.scanID = unverified.ID, unverified.ScanID
	keys, err := l.ScopeKeys(ctx, unverified.Request.Tenant)
	if err != nil {
		refuse(fmt.Errorf("%w: scope keys of tenant %q: %v", job.ErrScopeUntrusted, unverified.Request.Tenant, err))
		return
	}
	v, err := job.Verify(req.Job, l.JobKey, keys, l.profile, l.ValidityNow())
	if err != nil {
		refuse(err)
		return
	}
	j := v.Job
	if j.Request.Vantage != l.ID {
		refuse(fmt.Errorf("%w: job names %q, this runner is %q", ErrVantage, j.Request.Vantage, l.ID))
		return
	}
	if req.ResumeBatch < 0 {
		refuse(fmt.Errorf("%w: resume batch %d", job.ErrInvalid, req.ResumeBatch))
		return
	}
	ports := make([]probe.Port, len(v.Ports))
	for i, p := range v.Ports {
		ports[i] = probe.Port{Proto: p.Proto, Number: p.Number}
	}
	kinds := make([]probe.Kind, len(j.Request.Probes))
	for i, k := range j.Request.Probes {
		kinds[i] = probe.Kind(k)
	}
	cfg := probe.Config{
		ScanID: j.ScanID, Targets: v.Targets.Targets(j.Seed), TargetCount: v.Targets.Size(),
		Ports: ports, Kinds: kinds, Scope: both{v.Scope, v.Targets},
		Limits:       probe.Limits{Scope: v.Scope.Doc.MaxPPS, Requested: j.Request.Rate},
		BatchTargets: j.BatchTargets, ResumeBatch: req.ResumeBatch, NoRaw: l.NoRaw, Now: l.Now, Shared: l.Shared,
		Results: func(r probe.Result) error {
			return s.emit(ctx, Event{Type: TypeResult, Result: &r}, true)
		},
		Checkpoint: func(next int) error {
			return s.emit(ctx, Event{Type: TypeCheckpoint, Checkpoint: &Checkpoint{NextBatch: next}}, true)
		},
		Progress: func(p probe.Progress) {
			s.emit(ctx, Event{Type: TypeProgress, Progress: &Progress{
				Sent: p.Sent, Done: p.Done, Total: p.Total, RatePPS: p.Rate, CapPPS: p.Cap,
				ElapsedSeconds: p.Elapsed.Seconds(), Retries: p.Retries, Refused: p.Refused,
			}}, false)
		},
	}
	if l.Capture != nil {
		w, err := l.Capture(j)
		if err != nil {
			refuse(fmt.Errorf("capture: %w", err))
			return
		}
		ev, err := probe.NewEvidence(w, j.ScanID)
		if err != nil {
			w.Close()
			refuse(fmt.Errorf("capture: %w", err))
			return
		}
		cfg.Evidence = ev
		defer w.Close()
	}
	e, err := probe.New(cfg)
	if err != nil {
		// The job verified but this engine cannot run it (for example
		// udp without raw sockets): refused before any packet.
		refuse(err)
		return
	}
	transport := "connect"
	if e.Raw() {
		transport = "raw"
	}
	if err := s.emit(ctx, Event{Type: TypeAccepted, Accepted: &Accepted{
		Runner: l.ID, JobSHA256: v.SHA256, RequestSHA256: v.RequestSHA256, Targets: v.Targets.Size(),
		RatePPS: e.Rate(), Transport: transport, BatchTargets: e.BatchTargets(), ResumeBatch: req.ResumeBatch,
	}}, true); err != nil {
		return
	}
	sum, err := e.Run(ctx)
	if cfg.Evidence != nil {
		if ferr := cfg.Evidence.Flush(); ferr != nil && err == nil {
			err = ferr
		}
	}
	d := &Done{Summary: sum}
	if err != nil {
		d.Error, d.Code = err.Error(), Code(err)
	}
	// The final event is delivered even after a cancellation, unless the
	// reader closed the stream.
	s.emit(context.Background(), Event{Type: TypeDone, Done: d}, true)
}

// localStream is the in-process Stream: a buffered channel of events.
type localStream struct {
	mu        sync.Mutex // numbers and orders events
	seq       uint64
	ch        chan Event
	cancel    context.CancelFunc
	now       func() time.Time
	done      chan struct{} // closed when the run's goroutine ends
	closed    chan struct{} // closed by Close
	closeOnce sync.Once
	jobID     string
	scanID    string
}

// errClosed is returned to the engine when the reader closed the stream.
var errClosed = errors.New("event stream closed by the reader")

// emit numbers and queues an event. must events wait for room (the engine
// is held back by a slow reader) until ctx ends or the stream is closed;
// others (progress) are dropped when there is no room, without taking a
// sequence number.
func (s *localStream) emit(ctx context.Context, ev Event, must bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev.Seq = s.seq + 1
	ev.JobID, ev.ScanID = s.jobID, s.scanID
	ev.Time = s.now().UTC()
	if !must {
		select {
		case s.ch <- ev:
			s.seq++
		default:
		}
		return nil
	}
	select {
	case s.ch <- ev:
		s.seq++
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closed:
		return errClosed
	}
}

// Recv returns the next event, io.EOF after the last.
func (s *localStream) Recv(ctx context.Context) (Event, error) {
	select {
	case ev, ok := <-s.ch:
		if !ok {
			return Event{}, io.EOF
		}
		return ev, nil
	case <-ctx.Done():
		return Event{}, ctx.Err()
	}
}

// Close cancels the run, discards pending events and waits for the run to
// stop (the engine stops sending within 100 ms of cancellation).
func (s *localStream) Close() error {
	s.cancel()
	s.closeOnce.Do(func() { close(s.closed) })
	for range s.ch {
	}
	<-s.done
	return nil
}
