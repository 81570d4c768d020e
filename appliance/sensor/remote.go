package sensor

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"firewalliq/appliance/store"
	"firewalliq/probe/job"
	"firewalliq/probe/runner"
)

// ErrSensorLost means a remote run heard nothing from its sensor for the
// runner's IdleTimeout after the job's validity ended: the scan fails with
// this reason (the sensor may still deliver its buffered results later;
// they then reach the Sink).
var ErrSensorLost = errors.New("sensor stayed away past the job's validity")

// Delivery is one event of a remote run, as the console received it.
type Delivery struct {
	Tenant   string
	Sensor   string
	Run      string
	Event    runner.Event
	Received time.Time
}

// Sink stores the events of runs that no RemoteRunner stream of this
// process is reading (runs dispatched before a console restart, or by
// another component), a batch per call so that it can store a batch in
// one transaction. Events of one run come in the order they arrived,
// which after a partition may differ from seq order, and an event may
// come twice after a crash between storing and acknowledging: the Sink
// must be idempotent by (Run, Event.Seq). Sensor is the sensor that sent
// the event (its subject), not necessarily the one Run was dispatched to,
// and the events have not been checked against the run's job: a Sink that
// stores them must check both. An error makes JetStream deliver the whole
// batch again a second later.
type Sink interface {
	Deliver(ctx context.Context, batch []Delivery) error
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, batch []Delivery) error

// Deliver calls f.
func (f SinkFunc) Deliver(ctx context.Context, batch []Delivery) error { return f(ctx, batch) }

// maxPending and maxPendingBytes bound the out-of-order events held per
// run (a sensor sends at most its publish window, 256 events of a few
// hundred bytes each, ahead of the oldest unacknowledged event); beyond
// them an event waits in JetStream and comes again. The event a run waits
// for is always taken, so a run full of later events still moves.
const (
	maxPending      = 4096
	maxPendingBytes = 16 << 20
)

// runTable holds the runs dispatched by this process's RemoteRunner.
type runTable struct {
	mu   sync.Mutex
	runs map[string]*remoteStream
}

func newRunTable() *runTable { return &runTable{runs: map[string]*remoteStream{}} }

func (t *runTable) get(run string) *remoteStream {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.runs[run]
}

func (t *runTable) put(r *remoteStream) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.runs[r.run] = r
}

func (t *runTable) drop(run string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.runs, run)
}

// intakeBatch is the most result messages handled (and, for the Sink,
// stored in one call) at once.
const intakeBatch = 512

// intakeLoop handles tenant's result messages: those of a live run go to
// its stream, the others to the Sink in batches (one call, so one
// transaction, per batch of whatever has arrived).
func (s *Service) intakeLoop(tenant string, ch <-chan jetstream.Msg, stop <-chan struct{}) {
	for {
		var batch []jetstream.Msg
		select {
		case m := <-ch:
			batch = append(batch, m)
		case <-stop:
			return
		}
	more:
		for len(batch) < intakeBatch {
			select {
			case m := <-ch:
				batch = append(batch, m)
			default:
				break more
			}
		}
		s.intake(tenant, batch)
	}
}

// intake handles a batch of result messages of tenant's results stream.
func (s *Service) intake(tenant string, batch []jetstream.Msg) {
	var ds []Delivery
	var ms []jetstream.Msg
	for _, m := range batch {
		subj := m.Subject()
		if len(subj) <= len("fiq.res.") {
			_ = m.Term()
			continue
		}
		sensorID := subj[len("fiq.res."):]
		run := m.Headers().Get(headerRun)
		if !runIDPattern.MatchString(run) {
			s.d.Logger.Warn("sensor result without a valid run id; dropped", "sensor", sensorID, "run_bytes", len(run), "bytes", len(m.Data()))
			_ = m.Term()
			continue
		}
		var ev runner.Event
		if err := strictDecode(m.Data(), &ev); err != nil || ev.Validate() != nil {
			s.d.Logger.Warn("sensor result malformed; dropped", "sensor", sensorID, "run", run, "bytes", len(m.Data()))
			_ = m.Term()
			continue
		}
		if r := s.runs.get(run); r != nil {
			if r.sensor == sensorID && r.tenant == tenant {
				r.offer(ev, m)
				continue
			}
			// A live run of another sensor (or tenant): run ids are
			// random and only the console and that sensor know them,
			// so this sensor is forging. The event goes nowhere, not
			// even to the Sink.
			s.d.Logger.Warn("sensor result for a run dispatched to another sensor; refused", "sensor", sensorID, "tenant", tenant, "run", run)
			_ = m.Term()
			continue
		}
		if ev.Type != runner.TypeDone && ev.Type != runner.TypeRefused {
			s.cancelStale(tenant, sensorID, run)
		}
		ds = append(ds, Delivery{Tenant: tenant, Sensor: sensorID, Run: run, Event: ev, Received: s.now()})
		ms = append(ms, m)
	}
	if len(ds) == 0 {
		return
	}
	s.mu.Lock()
	sink := s.sink
	s.mu.Unlock()
	if sink == nil {
		s.d.Logger.Warn("sensor results for no live run and no sink; kept for redelivery", "events", len(ds))
		for _, m := range ms {
			_ = m.NakWithDelay(5 * time.Second)
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sink.Deliver(ctx, ds); err != nil {
		s.d.Logger.Error("sensor result sink", "events", len(ds), "err", err)
		for _, m := range ms {
			_ = m.NakWithDelay(time.Second)
		}
		return
	}
	for _, m := range ms {
		_ = m.Ack()
	}
}

// staleMemory is how long the intake remembers a run it cancelled as
// stale (then it starts over, as for a run it never saw).
const staleMemory = 10 * time.Minute

// staleResend is how soon the intake asks again while a run it asked to
// stop still sends. The request is a plain NATS message, lost when the
// sensor is not connected at that moment: after a console restart the
// intake reads the events JetStream stored before it, usually before the
// sensor has reconnected. (Seen in TestConsoleRestartMidRemoteScan under
// load: the one request went out 0.3 s before the sensor was back, and
// the stale run probed on to its end.) A run that still sends is
// connected, so a later request reaches it.
const staleResend = time.Second

// staleAsk is what the intake remembers of a stale run, on the real
// clock (s.mono): a resend interval is about the network, not the
// appliance's time.
type staleAsk struct {
	first, last time.Time // the first and the latest request
}

// cancelStale asks a sensor to stop a run that no RemoteRunner stream of
// this process reads: one dispatched before a console restart (recovery
// failed it, or dispatched its job again as a new run), or one whose
// stream was closed while the sensor was away. Its events still go to the
// Sink; this stops the sensor probing for a run nobody waits for. Again
// every staleResend while the run still sends.
func (s *Service) cancelStale(tenant, sensorID, run string) {
	now := s.mono()
	s.staleMu.Lock()
	ask, seen := s.stale[run]
	if seen && now.Sub(ask.first) >= staleMemory {
		seen = false
	}
	if seen && now.Sub(ask.last) < staleResend {
		s.staleMu.Unlock()
		return
	}
	for r, a := range s.stale {
		if now.Sub(a.first) >= staleMemory {
			delete(s.stale, r)
		}
	}
	if !seen && len(s.stale) >= maxCancelMemory {
		s.staleMu.Unlock()
		return
	}
	if !seen {
		ask.first = now
	}
	ask.last = now
	s.stale[run] = ask
	s.staleMu.Unlock()
	h := s.currentHub()
	if h == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tc, err := h.conn(ctx, tenant)
	if err != nil {
		return
	}
	if seen {
		s.d.Logger.Debug("sensor run not read by this console still sends; asking the sensor again to cancel it", "sensor", sensorID, "run", run)
	} else {
		s.d.Logger.Info("sensor run not read by this console; asking the sensor to cancel it", "sensor", sensorID, "run", run)
	}
	publishCancel(tc.nc, sensorID, Cancel{Run: run})
}

// RemoteRunner runs jobs on sensors: a probe/runner.Runner whose vantage
// is the sensor named in each job's request.vantage.
type RemoteRunner struct {
	s *Service
	// IdleTimeout: after the job's not_after, a run that heard nothing
	// from its sensor for this long fails with ErrSensorLost. Default 5
	// minutes.
	IdleTimeout time.Duration
	// Buffer is the number of events held for a slow reader (default
	// 1024); beyond it the sensor's results wait in JetStream.
	Buffer int
}

// Runner returns the remote runner of this service.
func (s *Service) Runner() *RemoteRunner {
	return &RemoteRunner{s: s, IdleTimeout: 5 * time.Minute, Buffer: 1024}
}

// Run publishes the signed job to its sensor's job subject and returns
// the run's event stream. The error is for failing to dispatch: an
// unknown, revoked or other tenant's sensor, or the fleet not running.
// The sensor verifies the job itself and answers a refusal as a "refused"
// event.
func (rr *RemoteRunner) Run(ctx context.Context, req runner.Request) (runner.Stream, error) {
	unverified, _, err := job.Open(req.Job)
	if err != nil {
		return nil, fmt.Errorf("remote run: %w", err)
	}
	x, err := rr.s.sensorByID(ctx, unverified.Request.Vantage)
	if err != nil {
		return nil, fmt.Errorf("remote run: %w", err)
	}
	tname, err := rr.s.tenantName(ctx, x.Tenant)
	if err != nil {
		return nil, fmt.Errorf("remote run: %w", err)
	}
	if unverified.Request.Tenant != x.Tenant && unverified.Request.Tenant != tname {
		return nil, fmt.Errorf("remote run: %w: sensor %s is not tenant %q's", ErrNotFound, x.ID, unverified.Request.Tenant)
	}
	keys, err := rr.s.d.ScopeKeys(ctx, x.Tenant)
	if err != nil {
		return nil, fmt.Errorf("remote run: %w", err)
	}
	g := rr.s.newGuard(req, x.ID, keys)
	t := Trust{Tenant: x.Tenant, TenantName: tname, IssuedAt: rr.s.now()}
	for _, k := range keys {
		t.ScopeKeys = append(t.ScopeKeys, []byte(k))
	}
	trust, err := signTrust(t, rr.s.d.JobKey)
	if err != nil {
		return nil, fmt.Errorf("remote run: %w", err)
	}
	run := store.NewID("run")
	body, err := json.Marshal(Dispatch{Run: run, Request: req, Trust: trust})
	if err != nil {
		return nil, fmt.Errorf("remote run: %w", err)
	}
	return rr.dispatch(ctx, x, run, unverified.ID, body, unverified.NotAfter, g)
}

// newGuard is the guard of a run of req dispatched to sensorID now, with
// the tenant's trusted scope keys (the ones its trust bundle carries).
func (s *Service) newGuard(req runner.Request, sensorID string, scopeKeys []ed25519.PublicKey) *guard {
	return newGuard(req.Job, req.ResumeBatch, sensorID, s.d.JobKey.Public().(ed25519.PublicKey), scopeKeys, s.profile, s.mono)
}

// dispatch publishes body (a Dispatch of job jobID) for sensor x and
// registers run. A job has one live run: dispatches of jobID still
// waiting in the stream are deleted first, and the sensor is told to stop
// any other run of it (a run dispatched before a console restart, which
// recovery dispatches again).
func (rr *RemoteRunner) dispatch(ctx context.Context, x Sensor, run, jobID string, body []byte, notAfter time.Time, g *guard) (runner.Stream, error) {
	h := rr.s.currentHub()
	if h == nil {
		return nil, fmt.Errorf("remote run: %w", ErrFleetOff)
	}
	if err := rr.s.startTenant(ctx, x.Tenant); err != nil {
		return nil, fmt.Errorf("remote run: %w", err)
	}
	if err := h.ensureConsumer(ctx, x.Tenant, x.ID); err != nil {
		return nil, fmt.Errorf("remote run: %w", err)
	}
	tc, err := h.conn(ctx, x.Tenant)
	if err != nil {
		return nil, fmt.Errorf("remote run: %w", err)
	}
	buf := rr.Buffer
	if buf <= 0 {
		buf = 1024
	}
	idle := rr.IdleTimeout
	if idle <= 0 {
		idle = 5 * time.Minute
	}
	r := &remoteStream{
		table: rr.s.runs, nc: tc.nc, run: run, sensor: x.ID, tenant: x.Tenant, now: rr.s.now, guard: g, log: rr.s.d.Logger,
		notAfter: notAfter, idle: idle, last: rr.s.now(),
		ch: make(chan runner.Event, buf), closed: make(chan struct{}), next: 1, pending: map[uint64]pendingEvent{},
	}
	if n, err := purgeJob(ctx, tc.js, x.ID, jobID); err != nil {
		rr.s.d.Logger.Warn("stale dispatches of the job not removed; if one runs, the intake cancels it at its first event", "sensor", x.ID, "job", jobID, "err", err)
	} else if n > 0 {
		rr.s.d.Logger.Info("stale dispatches of the job removed", "sensor", x.ID, "job", jobID, "removed", n)
	}
	rr.s.runs.put(r)
	msg := nats.NewMsg(jobSubject(x.ID))
	msg.Data = body
	msg.Header.Set(headerJob, jobID)
	if _, err := tc.js.PublishMsg(ctx, msg, jetstream.WithMsgID(run), jetstream.WithExpectStream(JobsStream)); err != nil {
		rr.s.runs.drop(run)
		return nil, fmt.Errorf("remote run: publish job to sensor %s: %w", x.ID, err)
	}
	if jobID != "" {
		publishCancel(tc.nc, x.ID, Cancel{Job: jobID, Keep: run})
	}
	return r, nil
}

// maxPurgeScan bounds the dispatches purgeJob looks at.
const maxPurgeScan = 1000

// purgeJob deletes the dispatches of jobID waiting in sensorID's job
// subject (not yet acknowledged by the sensor) and returns how many.
func purgeJob(ctx context.Context, js jetstream.JetStream, sensorID, jobID string) (int, error) {
	if jobID == "" {
		return 0, nil
	}
	st, err := js.Stream(ctx, JobsStream)
	if err != nil {
		return 0, err
	}
	n := 0
	seq := uint64(1)
	for range maxPurgeScan {
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(jobSubject(sensorID)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if m.Header.Get(headerJob) == jobID {
			if err := st.DeleteMsg(ctx, m.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				return n, err
			}
			n++
		}
		seq = m.Sequence + 1
	}
	return n, nil
}

// publishCancel asks sensorID to cancel (core NATS: a sensor that is not
// connected misses it; then the intake cancels the run when its events
// arrive, see Service.cancelStale).
func publishCancel(nc *nats.Conn, sensorID string, c Cancel) {
	b, err := json.Marshal(c)
	if err == nil {
		_ = nc.Publish(cancelSubject(sensorID), b)
	}
}

func (s *Service) tenantName(ctx context.Context, tenant string) (string, error) {
	var name string
	if err := s.d.Store.DB().QueryRowContext(ctx, `SELECT name FROM tenants WHERE id = ?`, tenant).Scan(&name); err != nil {
		return "", fmt.Errorf("tenant %s: %w", tenant, err)
	}
	return name, nil
}

type pendingEvent struct {
	ev   runner.Event
	msg  jetstream.Msg
	size int // bytes of the message
}

// remoteStream is a remote run's Stream. Events arrive from the results
// consumer possibly out of order (a re-send after a partition) or twice
// (a redelivery); offer puts them back in seq order, drops duplicates,
// and acknowledges each message only once its event is handed to the
// reader's buffer.
type remoteStream struct {
	table    *runTable
	nc       *nats.Conn
	run      string
	sensor   string
	tenant   string
	now      func() time.Time
	notAfter time.Time
	idle     time.Duration

	guard *guard // checks each event, in seq order, before the reader sees it
	log   *slog.Logger

	mu           sync.Mutex // held by offer, also while it waits for the reader
	next         uint64     // next seq to hand over
	pending      map[uint64]pendingEvent
	pendingBytes int
	ended        bool // the final event was handed over

	lastMu sync.Mutex // separate, so Recv never waits for offer
	last   time.Time  // when an event last arrived

	ch        chan runner.Event
	closed    chan struct{}
	closeOnce sync.Once
}

// offer takes one event from the intake.
func (r *remoteStream) offer(ev runner.Event, m jetstream.Msg) {
	r.lastMu.Lock()
	r.last = r.now()
	r.lastMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if ev.Seq < r.next || r.ended {
		_ = m.Ack() // a duplicate: already handed over
		return
	}
	if _, dup := r.pending[ev.Seq]; dup {
		// The same seq again (a redelivery, a re-send, or a sensor's
		// second version of it): the first one stays.
		_ = m.Ack()
		return
	}
	size := len(m.Data())
	if ev.Seq != r.next && (len(r.pending) >= maxPending || r.pendingBytes+size > maxPendingBytes) {
		_ = m.NakWithDelay(time.Second)
		return
	}
	r.pending[ev.Seq] = pendingEvent{ev: ev, msg: m, size: size}
	r.pendingBytes += size
	for {
		p, ok := r.pending[r.next]
		if !ok {
			return
		}
		out := p.ev
		var refused error
		if r.guard != nil {
			if refused = r.guard.check(out); refused != nil {
				out = runner.Event{Seq: p.ev.Seq, Type: runner.TypeDone, JobID: r.guard.j.ID, ScanID: r.guard.j.ScanID, Time: r.now(),
					Done: &runner.Done{Code: RefusedCode, Error: refused.Error()}}
			}
		}
		select {
		case r.ch <- out:
		case <-r.closed:
			// The reader left: the events stay in JetStream for the Sink.
			return
		}
		delete(r.pending, r.next)
		r.pendingBytes -= p.size
		r.next++
		if refused != nil {
			r.refuse(p, refused)
			return
		}
		_ = p.msg.Ack()
		if p.ev.Type == runner.TypeRefused || p.ev.Type == runner.TypeDone {
			r.end()
			return
		}
	}
}

// end closes the stream after its final event.
func (r *remoteStream) end() {
	r.ended = true
	close(r.ch)
	r.table.drop(r.run)
}

// refuse ends the run after the guard refused p's event (the reader got
// a final event with RefusedCode instead): the event and every later one
// held are removed from JetStream, and the sensor is told to cancel the
// run. Whatever it sends later goes to the Sink.
func (r *remoteStream) refuse(p pendingEvent, err error) {
	r.log.Warn("sensor event refused; the run ends", "sensor", r.sensor, "run", r.run, "err", err)
	_ = p.msg.Term()
	for seq, q := range r.pending {
		_ = q.msg.Term()
		delete(r.pending, seq)
	}
	r.pendingBytes = 0
	r.end()
	publishCancel(r.nc, r.sensor, Cancel{Run: r.run})
}

// Recv returns the next event in order, io.EOF after the final one, or
// ErrSensorLost when the sensor stayed away past the job's validity.
func (r *remoteStream) Recv(ctx context.Context) (runner.Event, error) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case ev, ok := <-r.ch:
			if !ok {
				return runner.Event{}, io.EOF
			}
			return ev, nil
		case <-ctx.Done():
			return runner.Event{}, ctx.Err()
		case <-r.closed:
			return runner.Event{}, io.EOF
		case <-tick.C:
			r.lastMu.Lock()
			now, last := r.now(), r.last
			r.lastMu.Unlock()
			if now.After(r.notAfter) && now.Sub(last) > r.idle {
				return runner.Event{}, fmt.Errorf("sensor %s, run %s: %w (nothing for %s)", r.sensor, r.run, ErrSensorLost, now.Sub(last).Round(time.Second))
			}
		}
	}
}

// Close stops reading the run and asks the sensor to cancel it. Events
// the sensor still sends go to the Sink.
func (r *remoteStream) Close() error {
	r.closeOnce.Do(func() {
		close(r.closed)
		r.table.drop(r.run)
		// offer may hold mu while waiting for the reader; closed has
		// released it, so this lock is short.
		r.mu.Lock()
		ended := r.ended
		r.mu.Unlock()
		if !ended {
			publishCancel(r.nc, r.sensor, Cancel{Run: r.run})
		}
	})
	return nil
}

func cancelSubject(sensorID string) string { return "fiq.cancel." + sensorID }

// Vantage returns the vantage label of tenant's (an id) sensor id and
// whether it is active; ErrNotFound when id is no sensor of tenant. It is
// the scan service's question (scan.Fleet) before it accepts a request
// naming a sensor, and how it labels the sensor's results.
func (rr *RemoteRunner) Vantage(ctx context.Context, tenant, id string) (string, bool, error) {
	var label, state string
	err := rr.s.d.Store.DB().QueryRowContext(ctx, `SELECT vantage, state FROM sensors WHERE id = ? AND tenant_id = ?`, id, tenant).Scan(&label, &state)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, fmt.Errorf("sensor %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return "", false, fmt.Errorf("sensor %q: %w", id, err)
	}
	return label, state == "active", nil
}
