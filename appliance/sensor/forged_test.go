package sensor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"firewalliq/appliance/scan"
	"firewalliq/appliance/sensor"
	"firewalliq/audit"
	"firewalliq/probe"
	"firewalliq/probe/job"
	"firewalliq/probe/runner"
)

// The tests in this file play a compromised sensor: an enrolled sensor's
// own credentials (its NKey, over the pinned TLS connection the agent
// uses) in the hands of an attacker who publishes whatever it likes with
// the real nats.go client, against the real embedded server and the real
// scan service. Each asserts what the console stored (nothing it should
// not), the state of the scan and its job, and the audit trail.

// forger is a compromised sensor's raw connection.
type forger struct {
	t     *testing.T
	creds sensor.Credentials
	nc    *nats.Conn
	js    jetstream.JetStream

	mu      sync.Mutex
	errs    []string // asynchronous errors (permission violations)
	cancels []sensor.Cancel
}

// newForger enrols a sensor as admin and connects as it, with no agent.
func (fl *fleet) newForger(t *testing.T, admin, name string) *forger {
	t.Helper()
	creds, _ := fl.enrol(t, admin, name)
	kp, err := nkeys.FromSeed([]byte(creds.Seed))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	f := &forger{t: t, creds: creds}
	f.nc, err = nats.Connect(creds.NATSURL, nats.Secure(sensor.PinnedTLS(creds.CertSHA256)), nats.Nkey(pub, kp.Sign),
		nats.CustomInboxPrefix(sensor.InboxPrefix(creds.SensorID)), nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			f.mu.Lock()
			f.errs = append(f.errs, err.Error())
			f.mu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.nc.Close)
	if f.js, err = jetstream.New(f.nc); err != nil {
		t.Fatal(err)
	}
	if _, err := f.nc.Subscribe("fiq.cancel."+creds.SensorID, func(m *nats.Msg) {
		var c sensor.Cancel
		if json.Unmarshal(m.Data, &c) == nil {
			f.mu.Lock()
			f.cancels = append(f.cancels, c)
			f.mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := f.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return f
}

// dispatch takes the next dispatch from the sensor's job consumer, as the
// agent does (30 s at most).
func (f *forger) dispatch(ctx context.Context) sensor.Dispatch {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		cons, err := f.js.Consumer(ctx, sensor.JobsStream, f.creds.SensorID)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			continue
		}
		for m := range batch.Messages() {
			var d sensor.Dispatch
			if err := json.Unmarshal(m.Data(), &d); err != nil {
				f.t.Fatal(err)
			}
			_ = m.Ack()
			return d
		}
	}
	f.t.Fatal("no dispatch within 30s")
	return sensor.Dispatch{}
}

// publish sends body on the sensor's own results subject with run in the
// run header ("" for none) and message id msgID ("" for none) and returns
// the server's acknowledgement.
func (f *forger) publish(run string, body []byte, msgID string) (*jetstream.PubAck, error) {
	m := nats.NewMsg(sensor.ResultSubject(f.creds.SensorID))
	m.Data = body
	if run != "" {
		m.Header.Set("Fiq-Run", run)
	}
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return f.js.PublishMsg(ctx, m, opts...)
}

// send publishes events of run, each with the message id the agent would
// give it (run-seq), and fails the test if the server does not store one.
func (f *forger) send(run string, evs ...runner.Event) {
	f.t.Helper()
	for _, ev := range evs {
		b, err := json.Marshal(ev)
		if err != nil {
			f.t.Fatal(err)
		}
		if _, err := f.publish(run, b, run+"-"+strconv.FormatUint(ev.Seq, 10)); err != nil {
			f.t.Fatalf("publish seq %d: %v", ev.Seq, err)
		}
	}
}

// cancelled reports whether the console asked the sensor to cancel run.
func (f *forger) cancelled(run string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.cancels {
		if c.Run == run {
			return true
		}
	}
	return false
}

// script builds the events of one run as an honest agent would (seq from
// 1, the job's ids and hashes), for the forger to send or bend.
type script struct {
	t      *testing.T
	run    string
	sensor string
	j      job.Job
	seq    uint64
}

func newScript(t *testing.T, sensorID string, d sensor.Dispatch) *script {
	t.Helper()
	j, _, err := job.Open(d.Request.Job)
	if err != nil {
		t.Fatal(err)
	}
	return &script{t: t, run: d.Run, sensor: sensorID, j: j}
}

func (s *script) ev(typ string, set func(*runner.Event)) runner.Event {
	s.seq++
	ev := runner.Event{Seq: s.seq, Type: typ, JobID: s.j.ID, ScanID: s.j.ScanID, Time: time.Now().UTC()}
	set(&ev)
	return ev
}

func (s *script) accepted() runner.Event {
	jsha, err := s.j.SHA256()
	if err != nil {
		s.t.Fatal(err)
	}
	rsha, err := s.j.Request.SHA256()
	if err != nil {
		s.t.Fatal(err)
	}
	bt := s.j.BatchTargets
	if bt == 0 {
		bt = 16
	}
	return s.ev(runner.TypeAccepted, func(ev *runner.Event) {
		ev.Accepted = &runner.Accepted{Runner: s.sensor, JobSHA256: jsha, RequestSHA256: rsha, Targets: 1, RatePPS: s.j.Request.Rate,
			Transport: "connect", BatchTargets: bt}
	})
}

func (s *script) result(target string, port uint16, state probe.State) runner.Event {
	return s.ev(runner.TypeResult, func(ev *runner.Event) {
		ev.Result = &probe.Result{Target: target, Proto: "tcp", Port: port, Probe: probe.KindTCPConnect, State: state,
			Reason: probe.ReasonConnRefused, Time: time.Now().UTC()}
	})
}

func (s *script) checkpoint(n int) runner.Event {
	return s.ev(runner.TypeCheckpoint, func(ev *runner.Event) { ev.Checkpoint = &runner.Checkpoint{NextBatch: n} })
}

// honest is a plausible summary of a one-probe run at the job's rate.
func (s *script) honest() probe.Summary {
	now := time.Now().UTC()
	return probe.Summary{ScanID: s.j.ScanID, Started: now.Add(-500 * time.Millisecond), Finished: now, WallSeconds: 0.5, Transport: "connect",
		RatePPS: s.j.Request.Rate, CapPPS: s.j.Request.Rate, WindowLimit: probe.WindowLimit(s.j.Request.Rate),
		PacketsSent: 1, Worst100ms: 1, Probes: 1}
}

func (s *script) done(sum probe.Summary) runner.Event {
	return s.ev(runner.TypeDone, func(ev *runner.Event) { ev.Done = &runner.Done{Summary: sum} })
}

// forgeScope registers a scope of 127.0.0.0/30 with ports p1 and p2
// (tcp-connect, 50 pps) and starts the scan service.
func (fl *fleet) forgeScope(t *testing.T) (p1, p2 uint16) {
	t.Helper()
	p1, p2 = 20111, 20112
	fl.registerScopeOf(t, "forge", "127.0.0.0/30", p1, p2)
	fl.runScans(t)
	return p1, p2
}

// forgeScan requests a scan of 127.0.0.1, tcp port p1, at 10 pps from the
// forger's vantage point and takes its dispatch as the forger.
func (fl *fleet) forgeScan(t *testing.T, f *forger, p1 uint16) (scan.Scan, sensor.Dispatch) {
	t.Helper()
	op := fl.Users["operator"]
	sc, err := fl.App.Scans.Request(fl.Ctx, op.P, "", scan.ScanRequest{ScopeID: "forge", Targets: []string{"127.0.0.1"},
		Ports: fmt.Sprintf("tcp:%d", p1), Rate: 10, Vantage: f.creds.SensorID}, fl.Code(op))
	if err != nil {
		t.Fatal(err)
	}
	return sc, f.dispatch(fl.Ctx)
}

// stored is what the console holds of scan id: its result rows
// (target:port state) and the state of its job.
func (fl *fleet) stored(t *testing.T, id string) (rows []string, jobState string) {
	t.Helper()
	r, err := fl.DB.QueryContext(fl.Ctx, `SELECT r.target, r.port, r.state FROM scan_results r JOIN scan_jobs j ON r.job_no = j.no
		WHERE j.scan_id = ? ORDER BY r.seq`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for r.Next() {
		var target, state string
		var port int
		if err := r.Scan(&target, &port, &state); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, fmt.Sprintf("%s:%d %s", target, port, state))
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if err := fl.DB.QueryRowContext(fl.Ctx, `SELECT state FROM scan_jobs WHERE scan_id = ?`, id).Scan(&jobState); err != nil {
		t.Fatal(err)
	}
	return rows, jobState
}

// scanEntries returns the audit actions about scan id after seq mark, and
// the details of each.
func (fl *fleet) scanEntries(mark int64, id string) ([]string, []map[string]any) {
	var acts []string
	var details []map[string]any
	for _, en := range fl.Entries(mark, "") {
		if en.Object != "scan:"+id {
			continue
		}
		var d map[string]any
		_ = json.Unmarshal(en.Details, &d)
		acts = append(acts, string(en.Action))
		details = append(details, d)
	}
	return acts, details
}

// recordSink replaces the appliance's Sink (which logs and drops) with
// one that records and drops, so a test can wait for events it expects
// the intake to turn away from every live run.
func (fl *fleet) recordSink() func() []sensor.Delivery {
	var mu sync.Mutex
	var got []sensor.Delivery
	fl.Svc.SetSink(sensor.SinkFunc(func(_ context.Context, batch []sensor.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, batch...)
		return nil
	}))
	return func() []sensor.Delivery {
		mu.Lock()
		defer mu.Unlock()
		return append([]sensor.Delivery(nil), got...)
	}
}

// TestForgedResultsOutsideTheJob: a compromised sensor running a scan it
// was given claims results, checkpoints or an acceptance the job did not
// ask for. The console refuses the event: the run ends there with code
// result-refused, the sensor is told to cancel it, the scan and its job
// are failed (scan.fail with the code and the reason), and nothing of the
// run after its last stored checkpoint is stored.
func TestForgedResultsOutsideTheJob(t *testing.T) {
	fl := newFleet(t)
	f := fl.newForger(t, "admin", "rogue")
	p1, p2 := fl.forgeScope(t)
	tests := []struct {
		name string
		// events after the acceptance (nil: before it)
		events func(s *script) []runner.Event
		// stored rows that must remain (a batch checkpointed first)
		keep   []string
		reason string
		noAcc  bool
	}{
		{name: "target in scope, not requested", events: func(s *script) []runner.Event {
			return []runner.Event{s.result("127.0.0.2", p1, probe.StateOpen)}
		}, reason: "outside the job's targets"},
		{name: "target outside the scope", events: func(s *script) []runner.Event {
			return []runner.Event{s.result("198.51.100.7", p1, probe.StateOpen)}
		}, reason: "outside the job's targets"},
		{name: "IPv4-mapped target outside the scope", events: func(s *script) []runner.Event {
			return []runner.Event{s.result("::ffff:10.0.0.1", p1, probe.StateOpen)}
		}, reason: "outside the job's targets"},
		{name: "target no address", events: func(s *script) []runner.Event {
			return []runner.Event{s.result("console.example", p1, probe.StateOpen)}
		}, reason: "is no address"},
		{name: "port in scope, not requested", events: func(s *script) []runner.Event {
			return []runner.Event{s.result("127.0.0.1", p2, probe.StateOpen)}
		}, reason: "is not one of the job's"},
		{name: "port outside the scope", events: func(s *script) []runner.Event {
			return []runner.Event{s.result("127.0.0.1", 22, probe.StateOpen)}
		}, reason: "is not one of the job's"},
		{name: "probe kind not requested", events: func(s *script) []runner.Event {
			ev := s.result("127.0.0.1", p1, probe.StateOpen)
			ev.Result.Probe, ev.Result.Proto = probe.KindUDP, "udp"
			return []runner.Event{ev}
		}, reason: "probe \"udp\""},
		{name: "unknown state", events: func(s *script) []runner.Event {
			return []runner.Event{s.result("127.0.0.1", p1, probe.State("owned"))}
		}, reason: "state \"owned\""},
		{name: "more results than the job has", events: func(s *script) []runner.Event {
			return []runner.Event{s.result("127.0.0.1", p1, probe.StateOpen), s.result("127.0.0.1", p1, probe.StateClosed)}
		}, reason: "at most 1"},
		{name: "after a stored batch", events: func(s *script) []runner.Event {
			return []runner.Event{s.result("127.0.0.1", p1, probe.StateOpen), s.checkpoint(1), s.result("127.0.0.3", p1, probe.StateOpen)}
		}, keep: []string{fmt.Sprintf("127.0.0.1:%d open", p1)}, reason: "outside the job's targets"},
		{name: "checkpoint past the job", events: func(s *script) []runner.Event {
			return []runner.Event{s.result("127.0.0.1", p1, probe.StateOpen), s.checkpoint(7)}
		}, reason: "the job has 1 batches"},
		{name: "checkpoint going back", events: func(s *script) []runner.Event {
			return []runner.Event{s.checkpoint(0)}
		}, reason: "checkpoint at batch 0"},
		{name: "events of another job", events: func(s *script) []runner.Event {
			ev := s.result("127.0.0.1", p1, probe.StateOpen)
			ev.JobID = "job_other"
			return []runner.Event{ev}
		}, reason: "the run is of job"},
		{name: "result before the acceptance", noAcc: true, events: func(s *script) []runner.Event {
			return []runner.Event{s.result("127.0.0.1", p1, probe.StateOpen)}
		}, reason: "before the run's acceptance"},
		{name: "acceptance of another job", noAcc: true, events: func(s *script) []runner.Event {
			ev := s.accepted()
			ev.Accepted.JobSHA256 = strings.Repeat("0", 64)
			return []runner.Event{ev, s.result("127.0.0.1", p1, probe.StateOpen)}
		}, reason: "accepted job 000000000000"},
		{name: "acceptance above the job's rate", noAcc: true, events: func(s *script) []runner.Event {
			ev := s.accepted()
			ev.Accepted.RatePPS = 1000
			return []runner.Event{ev}
		}, reason: "accepted at 1000 pps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mark := fl.Head()
			sc, d := fl.forgeScan(t, f, p1)
			s := newScript(t, f.creds.SensorID, d)
			var evs []runner.Event
			if !tt.noAcc {
				evs = append(evs, s.accepted())
			}
			evs = append(evs, tt.events(s)...)
			// What an honest run would go on with: never reached.
			evs = append(evs, s.done(s.honest()))
			f.send(d.Run, evs...)
			got := fl.waitScan(t, sc.ID, scan.StateCompleted, scan.StateFailed)
			if got.State != scan.StateFailed || !strings.Contains(got.Reason, sensor.RefusedCode) {
				t.Fatalf("scan %s (%s), want failed with %s", got.State, got.Reason, sensor.RefusedCode)
			}
			rows, js := fl.stored(t, sc.ID)
			if strings.Join(rows, ",") != strings.Join(tt.keep, ",") || js != scan.JobFailed {
				t.Fatalf("stored %v, job %s; want %v, job failed", rows, js, tt.keep)
			}
			acts, details := fl.scanEntries(mark, sc.ID)
			if want := []string{"scan.request", "scan.start", "scan.start", "scan.fail"}; strings.Join(acts, ",") != strings.Join(want, ",") {
				t.Fatalf("audit %v, want %v", acts, want)
			}
			fail := details[len(details)-1]
			reason, _ := fail["reason"].(string)
			if fail["code"] != sensor.RefusedCode || !strings.Contains(reason, f.creds.SensorID) || !strings.Contains(reason, tt.reason) {
				t.Fatalf("scan.fail details %v, want code %s and a reason naming the sensor and %q", fail, sensor.RefusedCode, tt.reason)
			}
			waitFor(t, "the console's cancel of the run", 5*time.Second, func() bool { return f.cancelled(d.Run) })
		})
	}
}

// TestForgedSummary: a compromised sensor ends its run with a summary
// that its job's rate cannot produce (more packets than rate/10 + 1 per
// 100 ms window over the run, a worst window above that limit, a measured
// rate the windows cannot give, a run longer than the time since its
// dispatch, a rate above the job's). The console refuses the summary: no
// scan.complete and no evidence, the scan fails with code result-refused;
// the batch stored before stays as it was. An honest summary completes.
func TestForgedSummary(t *testing.T) {
	fl := newFleet(t)
	f := fl.newForger(t, "admin", "rogue")
	p1, _ := fl.forgeScope(t)
	tests := []struct {
		name   string
		bend   func(*probe.Summary)
		reason string // "" for the honest row
	}{
		{name: "honest", bend: func(*probe.Summary) {}},
		{name: "packets above the cap for the duration", bend: func(s *probe.Summary) {
			s.PacketsSent, s.WallSeconds, s.Worst100ms = 1_000_000, 1, 2
		}, reason: "1000000 packets in 1.0 s"},
		{name: "worst window above the limit", bend: func(s *probe.Summary) { s.Worst100ms = 50 }, reason: "worst 100 ms window of 50"},
		{name: "measured rate above what the windows give", bend: func(s *probe.Summary) {
			s.PacketsSent, s.WallSeconds, s.Worst100ms, s.MeasuredPPS = 20, 1, 2, 500
		}, reason: "measured rate of 500.0"},
		{name: "longer than since the dispatch", bend: func(s *probe.Summary) {
			s.WallSeconds, s.PacketsSent, s.Worst100ms = 86400, 1_000_000, 2
			s.Started = s.Finished.Add(-24 * time.Hour)
		}, reason: "a run of 86400.0 s"},
		{name: "rate above the job's", bend: func(s *probe.Summary) { s.RatePPS = 1000 }, reason: "a rate of 1000 pps"},
		{name: "negative duration", bend: func(s *probe.Summary) { s.WallSeconds = -1 }, reason: "a run of -1 s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mark := fl.Head()
			sc, d := fl.forgeScan(t, f, p1)
			s := newScript(t, f.creds.SensorID, d)
			sum := s.honest()
			tt.bend(&sum)
			f.send(d.Run, s.accepted(), s.result("127.0.0.1", p1, probe.StateOpen), s.checkpoint(1), s.done(sum))
			got := fl.waitScan(t, sc.ID, scan.StateCompleted, scan.StateFailed)
			rows, js := fl.stored(t, sc.ID)
			acts, details := fl.scanEntries(mark, sc.ID)
			if want := []string{fmt.Sprintf("127.0.0.1:%d open", p1)}; strings.Join(rows, ",") != strings.Join(want, ",") {
				t.Fatalf("stored %v, want %v", rows, want)
			}
			if tt.reason == "" {
				if got.State != scan.StateCompleted || js != scan.JobCompleted || acts[len(acts)-1] != string(audit.ActScanComplete) {
					t.Fatalf("honest run: scan %s (%s), job %s, audit %v", got.State, got.Reason, js, acts)
				}
				return
			}
			if got.State != scan.StateFailed || js != scan.JobFailed {
				t.Fatalf("scan %s (%s), job %s; want failed", got.State, got.Reason, js)
			}
			if want := []string{"scan.request", "scan.start", "scan.start", "scan.fail"}; strings.Join(acts, ",") != strings.Join(want, ",") {
				t.Fatalf("audit %v, want %v", acts, want)
			}
			fail := details[len(details)-1]
			reason, _ := fail["reason"].(string)
			if fail["code"] != sensor.RefusedCode || !strings.Contains(reason, tt.reason) {
				t.Fatalf("scan.fail details %v, want code %s, reason with %q", fail, sensor.RefusedCode, tt.reason)
			}
		})
	}
}

// TestForgedResultsForeignRun: sensors that learned the id of another
// sensor's live run (a run dispatched to an honest sensor, running a real
// agent) send results for it: one of the same tenant on its own subject,
// one of another tenant on its own subject and on the honest sensor's
// subject. The server refuses the publish to a subject the sensor does
// not own (permissions violation); the intake refuses the rest (no
// RemoteRunner stream, no Sink). The honest scan completes with the
// honest results only, each target once, and its audit trail has nothing
// of the forgers.
func TestForgedResultsForeignRun(t *testing.T) {
	fl := newFleet(t)
	fl.Clock.Flow() // the honest agent checks the job on the console's clock
	honestCreds, dir := fl.enrol(t, "admin", "honest")
	sameTenant := fl.newForger(t, "admin", "rogue")
	otherTenant := fl.newForger(t, "other_admin", "rogue-b")
	sunk := fl.recordSink()
	startAgentAt(t, dir, fl.Clock.Now)
	open, _ := listen(t)
	// 32 targets of one port at 10 packets/s (a connect costs three): a
	// run of about 10 s.
	fl.registerScopeOf(t, "slow", "127.0.0.0/27", open)
	fl.runScans(t)
	op := fl.Users["operator"]
	mark := fl.Head()
	sc, err := fl.App.Scans.Request(fl.Ctx, op.P, "", scan.ScanRequest{ScopeID: "slow", Targets: []string{"127.0.0.0/27"}, Rate: 10,
		Vantage: honestCreds.SensorID}, fl.Code(op))
	if err != nil {
		t.Fatal(err)
	}
	var run string
	waitFor(t, "the honest sensor's live run", 30*time.Second, func() bool {
		for r, s := range fl.Svc.LiveRuns() {
			if s == honestCreds.SensorID {
				run = r
			}
		}
		return run != ""
	})
	j, _, err := job.Open(fl.jobOf(t, sc.ID))
	if err != nil {
		t.Fatal(err)
	}
	forge := func(f *forger) []runner.Event {
		s := &script{t: t, run: run, sensor: f.creds.SensorID, j: j}
		// Seqs far past the honest run's, so none is a duplicate.
		s.seq = 1000
		evs := []runner.Event{s.accepted()}
		for i := 0; i < 4; i++ {
			evs = append(evs, s.result("127.0.0.1", open, probe.StateFiltered))
		}
		return append(evs, s.checkpoint(1), s.done(s.honest()))
	}
	// Forged events carry their own message ids: a sender that used the
	// honest run's ids (run-seq) would make JetStream drop the honest
	// events as duplicates (see docs/fleet.md).
	for _, f := range []*forger{sameTenant, otherTenant} {
		for i, ev := range forge(f) {
			b, _ := json.Marshal(ev)
			if _, err := f.publish(run, b, fmt.Sprintf("forged-%s-%d", f.creds.SensorID, i)); err != nil {
				t.Fatalf("%s: publish on its own subject: %v", f.creds.SensorID, err)
			}
		}
	}
	// The other tenant's sensor on the honest sensor's subject: another
	// account, and not its subject anyway.
	body, _ := json.Marshal(forge(otherTenant)[1])
	m := nats.NewMsg(sensor.ResultSubject(honestCreds.SensorID))
	m.Data = body
	m.Header.Set("Fiq-Run", run)
	if err := otherTenant.nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	_ = otherTenant.nc.Flush()
	waitFor(t, "the permissions violation", 5*time.Second, func() bool {
		otherTenant.mu.Lock()
		defer otherTenant.mu.Unlock()
		return strings.Contains(strings.ToLower(strings.Join(otherTenant.errs, "\n")), "permissions violation for publish to \"fiq.res."+honestCreds.SensorID)
	})
	got := fl.waitScan(t, sc.ID, scan.StateCompleted, scan.StateFailed)
	if got.State != scan.StateCompleted || got.Job.Results != 32 {
		t.Fatalf("honest scan %s (%s), %d results; want completed with 32", got.State, got.Reason, got.Job.Results)
	}
	rows, js := fl.stored(t, sc.ID)
	seen := map[string]bool{}
	for _, r := range rows {
		target, state, _ := strings.Cut(r, " ")
		if seen[target] || state == string(probe.StateFiltered) {
			t.Fatalf("stored %v: a forged or duplicate row", rows)
		}
		seen[target] = true
	}
	if len(rows) != 32 || js != scan.JobCompleted {
		t.Fatalf("%d rows, job %s", len(rows), js)
	}
	acts, _ := fl.scanEntries(mark, sc.ID)
	if want := "scan.request,scan.start,scan.start,scan.complete"; strings.Join(acts, ",") != want {
		t.Fatalf("audit %v, want %s", acts, want)
	}
	for _, d := range sunk() {
		if d.Sensor != honestCreds.SensorID {
			t.Fatalf("a forged event reached the Sink: %+v", d)
		}
	}
}

// jobOf is the signed job of scan id.
func (fl *fleet) jobOf(t *testing.T, id string) []byte {
	t.Helper()
	var signed []byte
	if err := fl.DB.QueryRowContext(fl.Ctx, `SELECT signed FROM scan_jobs WHERE scan_id = ?`, id).Scan(&signed); err != nil {
		t.Fatal(err)
	}
	return signed
}

// TestForgedReplays: a compromised sensor replays its own run's events:
// during the run (the same seq again with other content and a new
// message id, an older seq), after the run completed (the same message
// ids; the same seqs with new content; new seqs), and after a user
// cancelled the scan. Nothing is stored twice or overwritten, nothing is
// stored after the end, the scan's state and audit trail stay as they
// were; late events reach only the Sink (which the appliance drops).
func TestForgedReplays(t *testing.T) {
	fl := newFleet(t)
	f := fl.newForger(t, "admin", "rogue")
	p1, _ := fl.forgeScope(t)
	sunk := fl.recordSink()
	open := fmt.Sprintf("127.0.0.1:%d open", p1)

	t.Run("during and after a completed run", func(t *testing.T) {
		sc, d := fl.forgeScan(t, f, p1)
		s := newScript(t, f.creds.SensorID, d)
		acc, res := s.accepted(), s.result("127.0.0.1", p1, probe.StateOpen)
		f.send(d.Run, acc, res)
		// Seq 2 again with other content and a new message id, seq 1 again.
		flip := res
		flip.Result = &probe.Result{Target: "127.0.0.1", Proto: "tcp", Port: p1, Probe: probe.KindTCPConnect, State: probe.StateClosed,
			Reason: probe.ReasonRST, Time: time.Now().UTC()}
		for i, ev := range []runner.Event{flip, acc} {
			b, _ := json.Marshal(ev)
			if _, err := f.publish(d.Run, b, fmt.Sprintf("%s-again-%d", d.Run, i)); err != nil {
				t.Fatal(err)
			}
		}
		cp, done := s.checkpoint(1), s.done(s.honest())
		f.send(d.Run, cp, done)
		got := fl.waitScan(t, sc.ID, scan.StateCompleted, scan.StateFailed)
		rows, js := fl.stored(t, sc.ID)
		if got.State != scan.StateCompleted || js != scan.JobCompleted || strings.Join(rows, ",") != open {
			t.Fatalf("scan %s (%s), job %s, rows %v; want completed with %s", got.State, got.Reason, js, rows, open)
		}
		mark := fl.Head()
		before := len(sunk())
		// The same message ids: JetStream drops them.
		for _, ev := range []runner.Event{acc, res, cp, done} {
			b, _ := json.Marshal(ev)
			ack, err := f.publish(d.Run, b, d.Run+"-"+strconv.FormatUint(ev.Seq, 10))
			if err != nil || !ack.Duplicate {
				t.Fatalf("replay of seq %d with its message id: ack %+v, %v; want a duplicate", ev.Seq, ack, err)
			}
		}
		// The same seqs with new content, and new seqs, under new ids.
		late := []runner.Event{flip, s.result("127.0.0.1", p1, probe.StateClosed), s.checkpoint(1), s.done(s.honest())}
		for i, ev := range late {
			b, _ := json.Marshal(ev)
			if _, err := f.publish(d.Run, b, fmt.Sprintf("%s-late-%d", d.Run, i)); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "the late events at the Sink", 10*time.Second, func() bool { return len(sunk()) >= before+len(late) })
		rows, js = fl.stored(t, sc.ID)
		if strings.Join(rows, ",") != open || js != scan.JobCompleted {
			t.Fatalf("after the replays: rows %v, job %s", rows, js)
		}
		if sc, err := fl.App.Scans.Get(fl.Ctx, fl.Users["operator"].P, "", sc.ID); err != nil || sc.State != scan.StateCompleted || sc.Job.Results != 1 {
			t.Fatalf("after the replays: %+v, %v", sc, err)
		}
		if acts, _ := fl.scanEntries(mark, sc.ID); len(acts) != 0 {
			t.Fatalf("audit entries after the replays: %v", acts)
		}
	})

	t.Run("after a cancelled scan", func(t *testing.T) {
		sc, d := fl.forgeScan(t, f, p1)
		s := newScript(t, f.creds.SensorID, d)
		f.send(d.Run, s.accepted())
		fl.waitScan(t, sc.ID, scan.StateRunning)
		op := fl.Users["operator"]
		if _, err := fl.App.Scans.Cancel(fl.Ctx, op.P, "", sc.ID, "test"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the console's cancel of the run", 10*time.Second, func() bool { return f.cancelled(d.Run) })
		fl.waitScan(t, sc.ID, scan.StateCancelled)
		waitFor(t, "the job cancelled", 10*time.Second, func() bool { _, js := fl.stored(t, sc.ID); return js == scan.JobCancelled })
		mark := fl.Head()
		before := len(sunk())
		late := []runner.Event{s.result("127.0.0.1", p1, probe.StateOpen), s.checkpoint(1), s.done(s.honest())}
		f.send(d.Run, late...)
		waitFor(t, "the late events at the Sink", 10*time.Second, func() bool { return len(sunk()) >= before+len(late) })
		rows, js := fl.stored(t, sc.ID)
		if len(rows) != 0 || js != scan.JobCancelled {
			t.Fatalf("after the cancel: rows %v, job %s", rows, js)
		}
		if got, err := fl.App.Scans.Get(fl.Ctx, op.P, "", sc.ID); err != nil || got.State != scan.StateCancelled {
			t.Fatalf("after the late events: %+v, %v", got, err)
		}
		if acts, _ := fl.scanEntries(mark, sc.ID); len(acts) != 0 {
			t.Fatalf("audit entries after the late events: %v", acts)
		}
	})
}

// TestForgedMalformedEvents: a compromised sensor sends, for its own live
// run, messages that are no events (garbage, unknown fields, a type
// without its member, seq 0, no or a bad run header, a message above the
// server's 1 MiB limit), then a gap followed by many large events. The
// malformed ones are dropped without a crash, an audit entry or a change
// to the run; the server refuses the oversized one; the console holds at
// most MaxPendingBytes of the run's out-of-order events (the rest wait in
// JetStream); when the gap closes, the first large event (a result whose
// reason is far above what the engine writes) is refused and the run
// ends, nothing stored.
func TestForgedMalformedEvents(t *testing.T) {
	fl := newFleet(t)
	f := fl.newForger(t, "admin", "rogue")
	p1, _ := fl.forgeScope(t)
	sc, d := fl.forgeScan(t, f, p1)
	s := newScript(t, f.creds.SensorID, d)
	f.send(d.Run, s.accepted())
	fl.waitScan(t, sc.ID, scan.StateRunning)
	mark := fl.Head()
	good, _ := json.Marshal(runner.Event{Seq: 2, Type: runner.TypeProgress, Progress: &runner.Progress{}})
	malformed := []struct {
		name string
		run  string
		body []byte
	}{
		{"garbage", d.Run, []byte("\x00\xffnot json")},
		{"unknown field", d.Run, []byte(`{"seq":2,"type":"progress","progress":{},"admin":true}`)},
		{"type without its member", d.Run, []byte(`{"seq":2,"type":"result"}`)},
		{"two members", d.Run, []byte(`{"seq":2,"type":"progress","progress":{},"checkpoint":{"next_batch":1}}`)},
		{"seq 0", d.Run, []byte(`{"seq":0,"type":"progress","progress":{}}`)},
		{"trailing data", d.Run, append(append([]byte{}, good...), good...)},
		{"no run header", "", good},
		{"run header with a dot", d.Run + ".x", good},
		{"run header of 4 KiB", strings.Repeat("r", 4096), good},
	}
	for i, tt := range malformed {
		if _, err := f.publish(tt.run, tt.body, fmt.Sprintf("bad-%d", i)); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
	}
	if _, err := f.publish(d.Run, make([]byte, 2<<20), "too-big"); !errors.Is(err, nats.ErrMaxPayload) {
		t.Fatalf("a 2 MiB message: %v, want %v", err, nats.ErrMaxPayload)
	}
	// The run is untouched: a well-formed event after the malformed ones
	// still counts (seq 2, handed on, so the intake got past them).
	s.seq = 1
	f.send(d.Run, s.ev(runner.TypeProgress, func(ev *runner.Event) { ev.Progress = &runner.Progress{Total: 1} }))
	waitFor(t, "seq 2 taken", 10*time.Second, func() bool { return fl.Svc.NextSeq(d.Run) == 3 })
	if got, _ := fl.App.Scans.Get(fl.Ctx, fl.Users["operator"].P, "", sc.ID); got.State != scan.StateRunning {
		t.Fatalf("after malformed events the scan is %s (%s)", got.State, got.Reason)
	}
	if acts, _ := fl.scanEntries(mark, sc.ID); len(acts) != 0 {
		t.Fatalf("audit entries for malformed events: %v", acts)
	}
	if es := fl.Entries(mark, ""); len(es) != 0 {
		t.Fatalf("malformed events wrote %d audit entries (%s ...)", len(es), es[0].Action)
	}

	// A gap (seq 3 withheld), then 40 events of about 900 KB.
	s.seq = 3
	const big = 40
	for range big {
		ev := s.result("127.0.0.1", p1, probe.StateOpen)
		ev.Result.Reason = strings.Repeat("x", 900<<10)
		f.send(d.Run, ev)
	}
	// The intake takes the events as JetStream hands them over, later on
	// a loaded machine: wait (30 s at most) until the run holds half the
	// bound, then watch it for a second more.
	most := 0
	for deadline := time.Now().Add(30 * time.Second); most < sensor.MaxPendingBytes/2 && time.Now().Before(deadline); {
		most = max(most, fl.Svc.PendingBytes(d.Run))
		time.Sleep(50 * time.Millisecond)
	}
	for range 20 {
		most = max(most, fl.Svc.PendingBytes(d.Run))
		time.Sleep(50 * time.Millisecond)
	}
	if most > sensor.MaxPendingBytes || most < sensor.MaxPendingBytes/2 {
		t.Fatalf("the run held %d bytes out of order, want about the bound %d", most, sensor.MaxPendingBytes)
	}
	t.Logf("out-of-order events held: %d bytes (bound %d) of %d sent", most, sensor.MaxPendingBytes, big*(900<<10))
	s.seq = 2
	f.send(d.Run, s.result("127.0.0.1", p1, probe.StateOpen))
	got := fl.waitScan(t, sc.ID, scan.StateFailed, scan.StateCompleted)
	rows, js := fl.stored(t, sc.ID)
	if got.State != scan.StateFailed || !strings.Contains(got.Reason, "a reason of 921600 bytes") || len(rows) != 0 || js != scan.JobFailed {
		t.Fatalf("scan %s (%s), rows %v, job %s", got.State, got.Reason, rows, js)
	}
}

// TestStaleRunAskedAgain: a run no stream of the console reads (here: the
// console forgot it, as in a restart) is asked to cancel at its first
// event, and again at a later event while it still sends. The request is
// a plain NATS message that a sensor reconnecting after the restart
// misses; asked once only, such a run probed on to its end
// (TestConsoleRestartMidRemoteScan under load).
func TestStaleRunAskedAgain(t *testing.T) {
	fl := newFleet(t)
	f := fl.newForger(t, "admin", "stale")
	fl.recordSink()
	s, err := fl.Svc.Runner().Run(fl.Ctx, runner.Request{Job: fl.signJob(t, fl.Tenant, f.creds.SensorID, []uint16{20001}, 10)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(fl.Ctx, 30*time.Second)
	defer cancel()
	d := f.dispatch(ctx)
	fl.Svc.ForgetRuns()
	asked := func() int {
		f.mu.Lock()
		defer f.mu.Unlock()
		n := 0
		for _, c := range f.cancels {
			if c.Run == d.Run {
				n++
			}
		}
		return n
	}
	sc := newScript(t, f.creds.SensorID, d)
	f.send(d.Run, sc.accepted())
	waitFor(t, "the first request to cancel the stale run", 10*time.Second, func() bool { return asked() >= 1 })
	// A second later (on the real clock, which paces the requests) the
	// run still sends: it is asked again.
	time.Sleep(1100 * time.Millisecond)
	f.send(d.Run, sc.ev(runner.TypeProgress, func(ev *runner.Event) { ev.Progress = &runner.Progress{Total: 1} }))
	waitFor(t, "a second request to cancel the stale run", 10*time.Second, func() bool { return asked() >= 2 })
}
