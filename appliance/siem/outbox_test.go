package siem

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu   sync.Mutex
	t    time.Time
	real bool // follow the wall clock (network tests)
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.real {
		return time.Now()
	}
	return c.t
}
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeSender records what it delivered and fails while down.
type fakeSender struct {
	mu   sync.Mutex
	down bool
	got  []Outgoing
}

func (s *fakeSender) Send(_ context.Context, msgs []Outgoing) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return 0, errors.New("connect: connection refused")
	}
	s.got = append(s.got, msgs...)
	return len(msgs), nil
}
func (s *fakeSender) Close() error { return nil }

type fixture struct {
	st    *store.Store
	ob    *Outbox
	log   *audit.Log
	clock *fakeClock
	path  string
	tA    string // tenant ids
	tB    string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{clock: &fakeClock{t: t0}, path: filepath.Join(t.TempDir(), "siem.db")}
	f.open(t)
	ctx := context.Background()
	err := f.st.InTx(ctx, func(tx *sql.Tx) error {
		a, err := f.st.CreateTenant(ctx, tx, "acme")
		if err != nil {
			return err
		}
		b, err := f.st.CreateTenant(ctx, tx, "globex")
		f.tA, f.tB = a.ID, b.ID
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// open (re)opens the database, as a restarted appliance would.
func (f *fixture) open(t testing.TB) {
	t.Helper()
	st, err := store.Open(context.Background(), f.path, store.Options{Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.st = st
	f.log = audit.New(audit.Options{Now: f.clock.Now})
	f.ob = New(st.DB(), Options{ApplianceID: "fiq-test", Hostname: "fiq1", Now: f.clock.Now, Sealer: testSealer{}})
}

func (f *fixture) create(t testing.TB, d Destination) Destination {
	t.Helper()
	var out Destination
	err := f.st.InTx(context.Background(), func(tx *sql.Tx) error {
		var err error
		out, err = f.ob.CreateDestination(context.Background(), tx, d)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// act performs an audited action: audit append and enqueue in one tx.
func (f *fixture) act(tenant string, action audit.Action, object string) error {
	return f.st.InTx(context.Background(), func(tx *sql.Tx) error {
		_, err := f.ob.Append(context.Background(), tx, f.log, audit.Entry{Tenant: tenant, ActorName: "alice", Action: action, Object: object})
		return err
	})
}

// testSealer "seals" by prefixing the associated data, enough to check that
// secrets are bound to their row and come back.
type testSealer struct{}

func (testSealer) Seal(p, ad []byte) ([]byte, error) {
	return append(append([]byte{}, ad...), p...), nil
}
func (testSealer) Open(s, ad []byte) ([]byte, error) {
	if len(s) < len(ad) || string(s[:len(ad)]) != string(ad) {
		return nil, errors.New("sealed for another row")
	}
	return s[len(ad):], nil
}

func seqs(msgs []Outgoing) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

func TestEnqueueRouting(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	wide := f.create(t, Destination{Name: "wide", Kind: KindTCP, Address: "127.0.0.1:1"})
	onlyA := f.create(t, Destination{Name: "acme", Tenant: f.tA, Kind: KindUDP, Address: "127.0.0.1:1", Format: FormatCEF})
	for _, tc := range []struct {
		tenant string
		action audit.Action
	}{
		{f.tA, audit.ActAuthLogin}, {f.tB, audit.ActAuthLogin}, {"", audit.ActAuditCheckpoint}, {f.tA, audit.ActScanStart},
	} {
		if err := f.act(tc.tenant, tc.action, "x"); err != nil {
			t.Fatal(err)
		}
	}
	// A failed action enqueues nothing and uses no sequence number.
	boom := errors.New("boom")
	err := f.st.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := f.ob.Append(ctx, tx, f.log, audit.Entry{Tenant: f.tA, Action: audit.ActAuthLogout}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	sender := map[string]*fakeSender{wide.ID: {}, onlyA.ID: {}}
	w := f.ob.NewWorker(WorkerOptions{Now: f.clock.Now, Dial: func(d Destination, _ Meta) (Sender, error) { return sender[d.ID], nil }})
	for id := range sender {
		if _, err := w.DeliverOnce(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name      string
		id        string
		wantSeq   []int64
		wantAudit []int64
	}{
		{"appliance-wide gets every tenant", wide.ID, []int64{1, 2, 3, 4}, []int64{1, 2, 3, 4}},
		{"tenant destination gets its own", onlyA.ID, []int64{1, 2}, []int64{1, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := sender[tc.id].got
			if fmt.Sprint(seqs(got)) != fmt.Sprint(tc.wantSeq) {
				t.Fatalf("seqs %v, want %v", seqs(got), tc.wantSeq)
			}
			for i, m := range got {
				d, _ := f.ob.Destination(ctx, tc.id)
				if want := fmt.Sprintf(`auditSeq="%d"`, tc.wantAudit[i]); !bytes.Contains(m.Payload, []byte(want)) {
					t.Errorf("%s message %d lacks %s: %s", d.Name, i, want, m.Payload)
				}
			}
		})
	}
	st, err := f.ob.Statuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Pending != 0 || s.PendingBytes != 0 || s.DeliveredSeq != s.LastSeq {
			t.Errorf("%s: status after delivery %+v", s.Name, s)
		}
	}
}

// TestOutageHours simulates a SIEM that is down for four hours with an
// injected clock, one audited action every 30 s: retries back off
// exponentially up to MaxBackoff, one failure alert and one budget alert are
// recorded, the outbox never grows past its budget while no action is ever
// refused (the overflow waits in the audit log), the outbox survives a
// restart, and after recovery every event arrives in order with no gap.
func TestOutageHours(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const budget = 40_000
	dest := f.create(t, Destination{Name: "soc", Kind: KindTLS, Address: "127.0.0.1:6514", CAPEM: testCAPEM(t), BudgetBytes: budget})
	s := &fakeSender{down: true}
	opts := WorkerOptions{Now: f.clock.Now, MinBackoff: time.Second, MaxBackoff: time.Minute, Record: f.ob.Recorder(f.log),
		Dial: func(Destination, Meta) (Sender, error) { return s, nil }}
	w := f.ob.NewWorker(opts)

	var attempts []time.Time
	start := f.clock.Now()
	end := start.Add(4 * time.Hour)
	nextAct := start
	for i := 0; f.clock.Now().Before(end); {
		if !f.clock.Now().Before(nextAct) {
			if err := f.act(f.tA, audit.ActAuthLogin, fmt.Sprint("u", i)); err != nil {
				t.Fatalf("action refused during the outage: %v", err)
			}
			i++
			nextAct = nextAct.Add(30 * time.Second)
		}
		res, err := w.DeliverOnce(ctx, dest.ID)
		if err != nil {
			t.Fatal(err)
		}
		if res.Err != nil {
			attempts = append(attempts, f.clock.Now())
		}
		var pending int64
		if err := f.st.DB().QueryRow(`SELECT pending_bytes FROM siem_destinations WHERE id = ?`, dest.ID).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		if pending > budget {
			t.Fatalf("outbox holds %d bytes, budget %d", pending, budget)
		}
		// Advance to whatever comes first: the next action or the retry.
		next := nextAct
		if !res.NextAttempt.IsZero() && res.NextAttempt.Before(next) {
			next = res.NextAttempt
		}
		f.clock.Set(next)
	}
	// Backoff: 1s, 2s, 4s, ... capped at 1m.
	for i := 1; i < len(attempts); i++ {
		gap := attempts[i].Sub(attempts[i-1])
		want := time.Minute
		if i < 8 {
			want = min(time.Second<<(i-1), time.Minute)
		}
		if gap != want {
			t.Fatalf("attempt %d after %v, want %v", i, gap, want)
		}
	}
	if len(attempts) < 200 {
		t.Fatalf("only %d attempts in 4 hours", len(attempts))
	}
	// Exactly one failure alert and one budget alert, in the audit log.
	entries, err := audit.ReadEntries(ctx, f.st.DB(), 1, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	alerts := map[string]int{}
	for _, e := range entries {
		if e.Action == audit.ActSIEMDeliveryFailed {
			var d struct{ Reason string }
			_ = json.Unmarshal(e.Details, &d)
			alerts[d.Reason]++
		}
	}
	if alerts["unreachable"] != 1 || alerts["budget"] != 1 || len(alerts) != 2 {
		t.Errorf("alerts %v, want one unreachable and one budget", alerts)
	}
	status, err := f.ob.Statuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s := status[0]; s.Attempts < 100 || s.LastError == "" || s.Lag < 3*time.Hour || s.BudgetUsed < 0.8 || s.Backlog < 100 {
		t.Errorf("status during outage: %+v", s)
	}

	// Restart: reopen the database; the outbox is still there.
	f.st.Close()
	f.open(t)
	s.mu.Lock()
	s.down = false
	s.mu.Unlock()
	w = f.ob.NewWorker(opts)
	f.clock.Add(time.Minute)
	for {
		res, err := w.DeliverOnce(ctx, dest.ID)
		if err != nil || res.Err != nil {
			t.Fatal(err, res.Err)
		}
		if res.Sent == 0 {
			break
		}
	}
	var head int64
	if err := f.st.DB().QueryRow(`SELECT MAX(seq) FROM audit_entries`).Scan(&head); err != nil {
		t.Fatal(err)
	}
	// Every audit entry, in audit order, under gap-free sequence numbers.
	if int64(len(s.got)) != head {
		t.Fatalf("delivered %d events, the audit log has %d", len(s.got), head)
	}
	for i, m := range s.got {
		if m.Seq != int64(i+1) || !bytes.Contains(m.Payload, []byte(fmt.Sprintf(`auditSeq="%d"`, i+1))) {
			t.Fatalf("position %d: seq %d, %s", i, m.Seq, m.Payload[:120])
		}
	}
	status, _ = f.ob.Statuses(ctx)
	if s := status[0]; s.Pending != 0 || s.Backlog != 0 || s.PendingBytes != 0 {
		t.Errorf("status after recovery: %+v", s)
	}
}

// TestEnqueueTakesEverything checks that entries the audit package appends
// on its own and checkpoints it signs inside Append reach the outbox in
// audit order, that a second Enqueue of an entry adds nothing, and that a
// tenant's destination gets neither other tenants' entries nor checkpoints.
func TestEnqueueTakesEverything(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	f.log = audit.New(audit.Options{Now: f.clock.Now, Signer: priv, CheckpointEvery: 2})
	wide := f.create(t, Destination{Name: "wide", Kind: KindTCP, Address: "127.0.0.1:1"})
	acme := f.create(t, Destination{Name: "acme", Tenant: f.tA, Kind: KindTCP, Address: "127.0.0.1:1"})
	if err := f.act(f.tA, audit.ActAuthLogin, "1"); err != nil { // seq 1
		t.Fatal(err)
	}
	if err := f.act(f.tB, audit.ActAuthLogin, "2"); err != nil { // seq 2, checkpoint of size 2
		t.Fatal(err)
	}
	err = f.st.InTx(ctx, func(tx *sql.Tx) error { // seq 3, written without Enqueue
		_, err := f.log.Append(ctx, tx, audit.Entry{Tenant: f.tA, Action: audit.ActAnomalyAlert, Object: "3"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var last audit.Entry
	err = f.st.InTx(ctx, func(tx *sql.Tx) error { // seq 4 (checkpoint of size 4), enqueued twice
		var err error
		if last, err = f.ob.Append(ctx, tx, f.log, audit.Entry{Tenant: f.tA, Action: audit.ActScanStart, Object: "4"}); err != nil {
			return err
		}
		return f.ob.Enqueue(ctx, tx, last)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dest Destination
		want []string
	}{
		{wide, []string{"auth.login 1", "auth.login 2", "audit.checkpoint 2", "anomaly.alert 3", "scan.start 4", "audit.checkpoint 4"}},
		{acme, []string{"auth.login 1", "anomaly.alert 3", "scan.start 4"}},
	} {
		t.Run(tc.dest.Name, func(t *testing.T) {
			rows, err := f.st.DB().Query(`SELECT seq, event FROM siem_outbox WHERE dest_id = ? ORDER BY seq`, tc.dest.ID)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var got []string
			for rows.Next() {
				var seq int64
				var raw []byte
				var ev Event
				if err := rows.Scan(&seq, &raw); err != nil || json.Unmarshal(raw, &ev) != nil {
					t.Fatal(err)
				}
				if seq != int64(len(got)+1) {
					t.Fatalf("seq %d at position %d", seq, len(got))
				}
				got = append(got, fmt.Sprint(ev.Action, " ", ev.AuditSeq))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("outbox %v\nwant   %v", got, tc.want)
			}
		})
	}
}

func TestDestinationValidation(t *testing.T) {
	f := newFixture(t)
	ca := testCAPEM(t)
	for _, tc := range []struct {
		name string
		d    Destination
		ok   bool
	}{
		{"udp", Destination{Name: "a", Kind: KindUDP, Address: "192.0.2.1:514"}, true},
		{"tls without CA", Destination{Name: "b", Kind: KindTLS, Address: "siem:6514"}, false},
		{"tls pinned", Destination{Name: "c", Kind: KindTLS, Address: "siem:6514", CAPEM: ca}, true},
		{"bad address", Destination{Name: "d", Kind: KindTCP, Address: "siem"}, false},
		{"webhook over http", Destination{Name: "e", Kind: KindWebhook, Address: "http://x/", HMACKey: make([]byte, 32)}, false},
		{"webhook short key", Destination{Name: "f", Kind: KindWebhook, Address: "https://x/", HMACKey: make([]byte, 8)}, false},
		{"webhook cef", Destination{Name: "g", Kind: KindWebhook, Address: "https://x/", HMACKey: make([]byte, 32), Format: FormatCEF}, false},
		{"webhook", Destination{Name: "h", Kind: KindWebhook, Address: "https://x/hook", HMACKey: make([]byte, 32)}, true},
		{"unknown kind", Destination{Name: "i", Kind: "smtp", Address: "x:1"}, false},
		{"tiny max", Destination{Name: "j", Kind: KindUDP, Address: "x:1", MaxMessage: 100}, false},
		{"cert without key", Destination{Name: "k", Kind: KindTLS, Address: "x:1", CAPEM: ca, ClientCertPEM: ca}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := f.st.InTx(context.Background(), func(tx *sql.Tx) error {
				_, err := f.ob.CreateDestination(context.Background(), tx, tc.d)
				return err
			})
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidDestination)) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	// The webhook key is sealed, bound to its row, and opens again.
	d, err := f.ob.Destination(context.Background(), "h")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.HMACKey) != 0 {
		t.Fatal("listing returned a secret")
	}
	if err := f.ob.secrets(context.Background(), &d); err != nil || len(d.HMACKey) != 32 {
		t.Fatalf("secrets: %v, %d bytes", err, len(d.HMACKey))
	}
}

// TestWorkerRun checks the supervisor: a destination added while the worker
// runs is served within Poll, and a removed one is let go of (its sender
// closed) without disturbing the others.
func TestWorkerRun(t *testing.T) {
	f := newFixture(t)
	f.clock.mu.Lock()
	f.clock.real = true
	f.clock.mu.Unlock()
	var mu sync.Mutex
	senders := map[string]*fakeSender{}
	closed := map[string]bool{}
	w := f.ob.NewWorker(WorkerOptions{Poll: 10 * time.Millisecond, Dial: func(d Destination, _ Meta) (Sender, error) {
		mu.Lock()
		defer mu.Unlock()
		s := &fakeSender{}
		senders[d.Name] = s
		return closeNotifier{s, func() { mu.Lock(); closed[d.Name] = true; mu.Unlock() }}, nil
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	a := f.create(t, Destination{Name: "a", Kind: KindUDP, Address: "127.0.0.1:9"})
	f.create(t, Destination{Name: "b", Kind: KindUDP, Address: "127.0.0.1:9"})
	if err := f.act("", audit.ActAuditCheckpoint, "x"); err != nil {
		t.Fatal(err)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			ok := cond()
			mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	delivered := func(name string, n int) func() bool {
		return func() bool {
			s := senders[name]
			if s == nil {
				return false
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			return len(s.got) >= n
		}
	}
	waitFor("a and b served", func() bool { return delivered("a", 1)() && delivered("b", 1)() })
	err := f.st.InTx(ctx, func(tx *sql.Tx) error {
		_, err := f.ob.DeleteDestination(ctx, tx, a.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.act("", audit.ActAuditCheckpoint, "y"); err != nil {
		t.Fatal(err)
	}
	waitFor("a let go of", func() bool { return closed["a"] })
	waitFor("b still served", delivered("b", 2))
}

// closeNotifier calls onClose when the sender is closed.
type closeNotifier struct {
	Sender
	onClose func()
}

func (c closeNotifier) Close() error { c.onClose(); return c.Sender.Close() }

// TestCorruptEntryDoesNotStopTheFeed: an audit row that no longer decodes
// (an attacker with the file, or disk corruption) is forwarded as an
// audit.tamper event naming its seq, and the entries after it still flow.
func TestCorruptEntryDoesNotStopTheFeed(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	wide := f.create(t, Destination{Name: "wide", Kind: KindTCP, Address: "127.0.0.1:1"})
	for i := 1; i <= 3; i++ { // seqs 1..3, not yet enqueued
		err := f.st.InTx(ctx, func(tx *sql.Tx) error {
			_, err := f.log.Append(ctx, tx, audit.Entry{Tenant: f.tA, Action: audit.ActAuthLogin, Object: fmt.Sprint(i)})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{`DROP TRIGGER audit_entries_no_update`, `UPDATE audit_entries SET entry = x'00' WHERE seq = 2`} {
		if _, err := f.st.DB().Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.act(f.tA, audit.ActScanStart, "4"); err != nil {
		t.Fatalf("a corrupt row stopped the outbox: %v", err)
	}
	rows, err := f.st.DB().Query(`SELECT event FROM siem_outbox WHERE dest_id = ? ORDER BY seq`, wide.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var raw []byte
		var ev Event
		if err := rows.Scan(&raw); err != nil || json.Unmarshal(raw, &ev) != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprint(ev.Action, " ", ev.AuditSeq))
	}
	if want := "[auth.login 1 audit.tamper 2 auth.login 3 scan.start 4]"; fmt.Sprint(got) != want {
		t.Fatalf("outbox %v, want %s", got, want)
	}
}
