package sensor

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"firewalliq/appliance/store"
	"firewalliq/probe/job"
	"firewalliq/probe/runner"
)

// Test hooks for the external tests (package sensor_test cannot be an
// internal test: apptest imports appliance, which imports this package).

// BuildDispatch returns a dispatch of req for its sensor, as Run would
// publish it, without publishing it.
func (rr *RemoteRunner) BuildDispatch(ctx context.Context, req runner.Request) (Dispatch, error) {
	unverified, _, err := job.Open(req.Job)
	if err != nil {
		return Dispatch{}, err
	}
	x, err := rr.s.sensorByID(ctx, unverified.Request.Vantage)
	if err != nil {
		return Dispatch{}, err
	}
	keys, err := rr.s.d.ScopeKeys(ctx, x.Tenant)
	if err != nil {
		return Dispatch{}, err
	}
	t := Trust{Tenant: x.Tenant, IssuedAt: rr.s.now()}
	t.TenantName, _ = rr.s.tenantName(ctx, x.Tenant)
	for _, k := range keys {
		t.ScopeKeys = append(t.ScopeKeys, []byte(k))
	}
	trust, err := signTrust(t, rr.s.d.JobKey)
	if err != nil {
		return Dispatch{}, err
	}
	return Dispatch{Run: store.NewID("run"), Request: req, Trust: trust}, nil
}

// Publish publishes d (possibly altered) to sensorID as the console
// would, and returns the run's stream.
func (rr *RemoteRunner) Publish(ctx context.Context, sensorID string, d Dispatch, body []byte) (runner.Stream, error) {
	x, err := rr.s.sensorByID(ctx, sensorID)
	if err != nil {
		return nil, err
	}
	if body == nil {
		if body, err = json.Marshal(d); err != nil {
			return nil, err
		}
	}
	unverified, _, err := job.Open(d.Request.Job)
	if err != nil {
		return nil, fmt.Errorf("test dispatch: %w", err)
	}
	keys, err := rr.s.d.ScopeKeys(ctx, x.Tenant)
	if err != nil {
		return nil, err
	}
	return rr.dispatch(ctx, x, d.Run, unverified.ID, body, unverified.NotAfter, rr.s.newGuard(d.Request, x.ID, keys))
}

// Kick closes the sensor's connections without revoking it (a partition).
func (s *Service) Kick(sensorID string) int {
	x, err := s.sensorByID(context.Background(), sensorID)
	if h := s.currentHub(); h != nil && err == nil {
		return h.kick(x.NKey)
	}
	return 0
}

// Pending is the agent spool's unacknowledged event count.
func (a *Agent) Pending() int {
	a.mu.Lock()
	sp := a.spool
	a.mu.Unlock()
	if sp == nil {
		return -1
	}
	return sp.pending()
}

// Inbox and subjects, for the isolation and silence tests.
var (
	JobSubject       = jobSubject
	ResultSubject    = resultSubject
	InboxPrefix      = inboxPrefix
	HeartbeatSubject = heartbeatSubject
)

// SimSensor is a simulated sensor for the throughput benchmark: the
// agent's real connection, spool and sender, with events put straight
// into the spool instead of coming from a scan.
type SimSensor struct {
	a    *Agent
	stop context.CancelFunc
	done chan struct{}
}

// StartSim connects the sensor enrolled in dir and starts its sender.
func StartSim(dir string, window int) (*SimSensor, error) {
	a := &Agent{Dir: dir, Window: window, Now: time.Now, Logger: slog.New(slog.DiscardHandler)}
	var err error
	if a.creds, err = LoadCredentials(dir); err != nil {
		return nil, err
	}
	if a.spool, err = openSpool(filepath.Join(dir, "spool"), a.Now); err != nil {
		return nil, err
	}
	kp, err := nkeys.FromSeed([]byte(a.creds.Seed))
	if err != nil {
		return nil, err
	}
	pub, _ := kp.PublicKey()
	var mu sync.Mutex
	var authErr error
	ctx, cancel := context.WithCancel(context.Background())
	nc, err := a.connect(ctx, pub, kp, make(chan error, 1), &mu, &authErr)
	if err != nil {
		cancel()
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		cancel()
		nc.Close()
		return nil, err
	}
	s := &SimSensor{a: a, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer nc.Close()
		a.send(ctx, js)
	}()
	return s, nil
}

// Emit spools events of run (durably) for sending.
func (s *SimSensor) Emit(run string, evs []runner.Event) error {
	if err := s.a.spool.create(run, time.Now()); err != nil {
		return err
	}
	return s.a.spool.append(run, evs)
}

// Close stops the sender.
func (s *SimSensor) Close() {
	s.stop()
	<-s.done
	s.a.spool.close()
}

// ForgetRuns drops the table of live runs, as a console restart does: the
// events still to come go to the Sink.
func (s *Service) ForgetRuns() {
	s.runs.mu.Lock()
	s.runs.runs = map[string]*remoteStream{}
	s.runs.mu.Unlock()
}

// LiveRuns returns the runs a RemoteRunner stream of this process reads,
// with their sensors (the forged-results tests play a sensor that learned
// another's run id).
func (s *Service) LiveRuns() map[string]string {
	s.runs.mu.Lock()
	defer s.runs.mu.Unlock()
	out := map[string]string{}
	for run, r := range s.runs.runs {
		out[run] = r.sensor
	}
	return out
}

// PendingBytes is the size of the out-of-order events a live run holds
// (-1 when the run is not live).
func (s *Service) PendingBytes(run string) int {
	r := s.runs.get(run)
	if r == nil {
		return -1
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pendingBytes
}

// MaxPendingBytes is the bound on PendingBytes.
const MaxPendingBytes = maxPendingBytes

// NextSeq is the seq a live run waits for (0 when the run is not live).
func (s *Service) NextSeq(run string) uint64 {
	r := s.runs.get(run)
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next
}
