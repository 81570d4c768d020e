package sensor

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"firewalliq/probe"
	"firewalliq/probe/job"
	"firewalliq/probe/runner"
	"firewalliq/probe/safety"
)

// Agent is the sensor host's side (firewalliq sensor run): it connects out
// to the console, runs the jobs published for it with a runner.Local (the
// same verification as the console's own engine, with the pinned job key
// and this binary's compiled-in safety profile), and sends the events back
// from its durable spool.
type Agent struct {
	// Dir is the state directory (credentials, spool).
	Dir     string
	Version string
	// NoRaw runs without raw sockets (tcp-syn as tcp-connect).
	NoRaw  bool
	Now    func() time.Time
	Logger *slog.Logger
	// Heartbeat is the heartbeat interval (HeartbeatInterval when 0).
	Heartbeat time.Duration
	// Window is how many events are in flight before the agent waits for
	// JetStream's acknowledgements (256 when 0).
	Window int

	creds   Credentials
	spool   *spool
	shared  *probe.SharedPacer
	profile safety.Profile
	mu      sync.Mutex
	cancels map[string]agentRun // running runs
	// dropped remembers the runs the console cancelled, for CancelMemory
	// (see Cancel).
	dropped map[string]time.Time
	// reconnected is signalled when the connection comes back: the
	// acknowledgements of what was in flight may never come, so the
	// sender sends its window again at once instead of waiting them out.
	reconnected chan struct{}
}

// agentRun is a running run: its job and how to stop it.
type agentRun struct {
	job    string
	cancel context.CancelFunc
}

// errCancelled refuses a dispatch the console cancelled before it started.
var errCancelled = errors.New("cancelled by the console before it started")

// maxCancelMemory bounds the remembered cancellations.
const maxCancelMemory = 4096

// Run serves jobs until ctx ends (it returns nil) or the console refuses
// the credentials (ErrRefused: the sensor was revoked).
func (a *Agent) Run(ctx context.Context) error {
	if a.Now == nil {
		a.Now = time.Now
	}
	if a.Logger == nil {
		a.Logger = slog.New(slog.DiscardHandler)
	}
	if a.Heartbeat <= 0 {
		a.Heartbeat = HeartbeatInterval
	}
	if a.Window <= 0 {
		a.Window = 256
	}
	a.cancels = map[string]agentRun{}
	a.dropped = map[string]time.Time{}
	var err error
	if a.creds, err = LoadCredentials(a.Dir); err != nil {
		return err
	}
	if a.profile, err = safety.Load(); err != nil {
		return err
	}
	if a.shared, err = probe.NewSharedPacer(a.Now); err != nil {
		return err
	}
	sp, err := openSpool(filepath.Join(a.Dir, "spool"), a.Now)
	if err != nil {
		return err
	}
	defer sp.close()
	a.mu.Lock()
	a.spool = sp
	a.mu.Unlock()

	kp, err := nkeys.FromSeed([]byte(a.creds.Seed))
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	pub, _ := kp.PublicKey()
	closed := make(chan error, 1)
	var authErr error
	var authMu sync.Mutex
	nc, err := a.connect(ctx, pub, kp, closed, &authMu, &authErr)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if _, err := nc.Subscribe(cancelSubject(a.creds.SensorID), func(m *nats.Msg) { a.cancel(m.Data) }); err != nil {
		return fmt.Errorf("cancel subscription: %w", err)
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); a.heartbeats(ctx, nc) }()
	go func() { defer wg.Done(); a.send(ctx, js) }()
	go func() { defer wg.Done(); a.jobs(ctx, js) }()
	var result error
	select {
	case <-ctx.Done():
	case <-closed:
		authMu.Lock()
		if authErr != nil {
			result = fmt.Errorf("%w: %v", ErrRefused, authErr)
		} else {
			result = errors.New("connection to the console closed")
		}
		authMu.Unlock()
	}
	stop()
	wg.Wait()
	return result
}

// connect dials the console (retrying while it is unreachable, refusing
// at once when it rejects the credentials) over TLS pinned to the
// enrolment fingerprint, authenticating with the sensor's NKey.
func (a *Agent) connect(ctx context.Context, pub string, kp nkeys.KeyPair, closed chan error, authMu *sync.Mutex, authErr *error) (*nats.Conn, error) {
	reconnected := make(chan struct{}, 1)
	a.reconnected = reconnected
	opts := []nats.Option{
		nats.ReconnectHandler(func(*nats.Conn) {
			select {
			case reconnected <- struct{}{}:
			default:
			}
		}),
		nats.Name("sensor:" + a.creds.SensorID), nats.Secure(PinnedTLS(a.creds.CertSHA256)),
		nats.Nkey(pub, kp.Sign), nats.CustomInboxPrefix(inboxPrefix(a.creds.SensorID)),
		nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond), nats.ReconnectJitter(100*time.Millisecond, 100*time.Millisecond),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if isAuthErr(err) {
				authMu.Lock()
				*authErr = err
				authMu.Unlock()
			}
			a.Logger.Warn("sensor connection", "err", err)
		}),
		nats.ClosedHandler(func(*nats.Conn) {
			select {
			case closed <- nil:
			default:
			}
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				a.Logger.Warn("sensor disconnected", "err", err)
			}
		}),
	}
	backoff := 250 * time.Millisecond
	for {
		nc, err := nats.Connect(a.creds.NATSURL, opts...)
		if err == nil {
			return nc, nil
		}
		if isAuthErr(err) {
			return nil, fmt.Errorf("%w: %v", ErrRefused, err)
		}
		if errors.Is(err, ErrPin) || strings.Contains(err.Error(), ErrPin.Error()) {
			return nil, err
		}
		a.Logger.Warn("console unreachable; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func isAuthErr(err error) bool {
	return err != nil && (errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked) ||
		strings.Contains(strings.ToLower(err.Error()), "authorization violation"))
}

// heartbeats publishes the sensor's state every Heartbeat.
func (a *Agent) heartbeats(ctx context.Context, nc *nats.Conn) {
	b, _ := json.Marshal(Heartbeat{Version: a.Version, ProfileSHA256: a.profile.SHA256()})
	t := time.NewTicker(a.Heartbeat)
	defer t.Stop()
	for {
		_ = nc.Publish(heartbeatSubject(a.creds.SensorID), b)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// send delivers the spool's events in order, a window at a time, each with
// its message id (run-seq) so JetStream stores it once however often it is
// sent. A failed window is sent again from its first unacknowledged event.
func (a *Agent) send(ctx context.Context, js jetstream.JetStream) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		run, evs, base := a.spool.unsent(a.Window)
		if len(evs) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-a.spool.wake:
			case <-time.After(time.Second):
			}
			continue
		}
		n, err := a.publish(ctx, js, run, evs)
		if n > 0 {
			if err := a.spool.acked(run, base+n); err != nil {
				a.Logger.Error("spool", "err", err)
			}
			backoff = 100 * time.Millisecond
		}
		if err != nil {
			a.Logger.Warn("sending results; will retry", "run", run, "err", err, "pending", a.spool.pending())
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
		}
	}
}

// publish sends evs asynchronously and returns how many of them, from the
// first, JetStream acknowledged.
func (a *Agent) publish(ctx context.Context, js jetstream.JetStream, run string, evs []runner.Event) (int, error) {
	select {
	case <-a.reconnected: // before this window: nothing of it is lost
	default:
	}
	futs := make([]jetstream.PubAckFuture, 0, len(evs))
	var sendErr error
	for _, ev := range evs {
		b, err := json.Marshal(ev)
		if err != nil {
			return 0, err
		}
		m := nats.NewMsg(resultSubject(a.creds.SensorID))
		m.Data = b
		m.Header.Set(headerRun, run)
		f, err := js.PublishMsgAsync(m, jetstream.WithMsgID(resultMsgID(run, ev.Seq)), jetstream.WithExpectStream(ResultsStream))
		if err != nil {
			sendErr = err
			break
		}
		futs = append(futs, f)
	}
	ok := 0
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for _, f := range futs {
		select {
		case <-f.Ok():
			ok++
		case err := <-f.Err():
			return ok, err
		case <-timeout.C:
			return ok, errors.New("no acknowledgement within 10s")
		case <-a.reconnected:
			// Sent (or buffered) on the connection before it dropped:
			// the acknowledgements may be lost. JetStream drops what
			// arrives twice (message ids), so send the rest again.
			return ok, errors.New("reconnected to the console; sending the unacknowledged events again")
		case <-ctx.Done():
			return ok, ctx.Err()
		}
	}
	return ok, sendErr
}

// jobs fetches dispatches from the sensor's consumer, one at a time.
func (a *Agent) jobs(ctx context.Context, js jetstream.JetStream) {
	var cons jetstream.Consumer
	for ctx.Err() == nil {
		if cons == nil {
			c, err := js.Consumer(ctx, JobsStream, a.creds.SensorID)
			if err != nil {
				a.Logger.Warn("job consumer not reachable; retrying", "err", err)
				sleep(ctx, time.Second)
				continue
			}
			cons = c
		}
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			sleep(ctx, 500*time.Millisecond)
			continue
		}
		for m := range batch.Messages() {
			a.handle(ctx, m)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && ctx.Err() == nil {
			sleep(ctx, 500*time.Millisecond)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// handle runs one dispatch: spooled durably before it is acknowledged, so
// a crash after the acknowledgement still reports the run (as
// interrupted), and a redelivery of an acknowledged dispatch runs nothing
// twice.
func (a *Agent) handle(ctx context.Context, m jetstream.Msg) {
	d, err := decodeDispatch(m.Data())
	if err != nil {
		a.Logger.Warn("dispatch refused: malformed", "err", err)
		_ = m.Term()
		return
	}
	if a.spool.has(d.Run) {
		_ = m.Ack()
		return
	}
	if err := a.spool.create(d.Run, a.Now()); err != nil {
		a.Logger.Error("spool", "err", err)
		_ = m.NakWithDelay(time.Second)
		return
	}
	_ = m.Ack()
	s, err := a.start(ctx, d)
	if err != nil {
		code := runner.Code(err)
		if errors.Is(err, errCancelled) {
			code = "cancelled"
		}
		a.record(d.Run, []runner.Event{{Seq: 1, Type: runner.TypeRefused, Time: a.Now().UTC(),
			Refused: &runner.Refusal{Code: code, Reason: err.Error()}}})
		return
	}
	a.pump(d.Run, s)
}

// start verifies the trust bundle and starts the local runner.
func (a *Agent) start(ctx context.Context, d Dispatch) (runner.Stream, error) {
	t, err := openTrust(d.Trust, a.creds.JobKey, a.creds.Tenant)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", job.ErrScopeUntrusted, err)
	}
	keys := make([]ed25519.PublicKey, len(t.ScopeKeys))
	for i, k := range t.ScopeKeys {
		keys[i] = k
	}
	l, err := runner.NewLocal(runner.Local{
		ID: a.creds.SensorID, JobKey: a.creds.JobKey, Shared: a.shared, Now: a.Now, NoRaw: a.NoRaw,
		ScopeKeys: func(_ context.Context, tenant string) ([]ed25519.PublicKey, error) {
			if tenant != a.creds.Tenant && tenant != a.creds.TenantName {
				return nil, fmt.Errorf("this sensor serves tenant %q", a.creds.TenantName)
			}
			return keys, nil
		},
	})
	if err != nil {
		return nil, err
	}
	// The job's id, for cancellations by job; a job that does not even
	// parse is refused by l.Run below.
	var jobID string
	if j, _, err := job.Open(d.Request.Job); err == nil {
		jobID = j.ID
	}
	rctx, cancel := context.WithCancel(ctx)
	a.mu.Lock()
	if a.cancelledLocked(d.Run) {
		a.mu.Unlock()
		cancel()
		return nil, errCancelled
	}
	a.cancels[d.Run] = agentRun{job: jobID, cancel: cancel}
	a.mu.Unlock()
	s, err := l.Run(rctx, d.Request)
	if err != nil {
		cancel()
		return nil, err
	}
	return &cancelStream{Stream: s, done: func() {
		cancel()
		a.mu.Lock()
		delete(a.cancels, d.Run)
		a.mu.Unlock()
	}}, nil
}

type cancelStream struct {
	runner.Stream
	done func()
}

func (c *cancelStream) Close() error { err := c.Stream.Close(); c.done(); return err }

// cancel handles a cancel message (Cancel): it stops the runs it names,
// and remembers a cancelled run, so that its dispatch, if fetched later,
// runs nothing. A superseded job's older dispatch still waiting is the
// console's to delete (RemoteRunner.dispatch); were it fetched all the
// same, the console cancels it by run at its first event.
func (a *Agent) cancel(b []byte) {
	c, err := decodeCancel(b)
	if err != nil {
		a.Logger.Warn("cancel message refused", "err", err)
		return
	}
	now := a.Now()
	var stop []string
	a.mu.Lock()
	if c.Run != "" {
		a.dropped[c.Run] = now
	}
	for run, r := range a.cancels {
		if run == c.Run || (c.Job != "" && r.job == c.Job && run != c.Keep) {
			r.cancel()
			stop = append(stop, run)
		}
	}
	a.pruneLocked(now)
	a.mu.Unlock()
	for _, run := range stop {
		a.Logger.Info("run cancelled by the console", "run", run, "superseded_by", c.Keep)
	}
}

// cancelledLocked reports whether the console cancelled run. Callers
// hold a.mu.
func (a *Agent) cancelledLocked(run string) bool {
	_, ok := a.dropped[run]
	return ok
}

// pruneLocked forgets cancellations older than CancelMemory, and the
// oldest beyond maxCancelMemory. Callers hold a.mu.
func (a *Agent) pruneLocked(now time.Time) {
	for run, at := range a.dropped {
		if now.Sub(at) > CancelMemory {
			delete(a.dropped, run)
		}
	}
	for len(a.dropped) > maxCancelMemory {
		oldest, first := "", time.Time{}
		for run, at := range a.dropped {
			if oldest == "" || at.Before(first) {
				oldest, first = run, at
			}
		}
		delete(a.dropped, oldest)
	}
}

// pump moves a run's events into the spool, batching what is ready into
// one fsync. The run continues while the console is unreachable; its
// events wait in the spool.
func (a *Agent) pump(run string, s runner.Stream) {
	defer s.Close()
	ch := make(chan runner.Event, 1024)
	go func() {
		defer close(ch)
		for {
			ev, err := s.Recv(context.Background())
			if err != nil {
				return
			}
			ch <- ev
		}
	}()
	for ev := range ch {
		batch := []runner.Event{ev}
	drain:
		for len(batch) < 512 {
			select {
			case e, ok := <-ch:
				if !ok {
					break drain
				}
				batch = append(batch, e)
			default:
				break drain
			}
		}
		a.record(run, batch)
	}
}

func (a *Agent) record(run string, evs []runner.Event) {
	if err := a.spool.append(run, evs); err != nil {
		// The spool is the sensor's only memory of results; without it
		// the run's results would be lost, so say so loudly.
		a.Logger.Error("spool append failed; results lost", "run", run, "err", err)
	}
}
