package siem

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// WorkerOptions configure a Worker. Zero values take the documented
// defaults.
type WorkerOptions struct {
	// Now is the scheduling clock (backoff, lag); the Outbox's when nil.
	Now func() time.Time
	// After waits; time.After when nil. Tests inject both to run hours of
	// outage in microseconds.
	After func(time.Duration) <-chan time.Time
	// Batch is the most events sent per attempt; 100.
	Batch int
	// Poll is how often an idle destination looks for new events, and how
	// often the worker looks for new destinations; 500ms.
	Poll time.Duration
	// MinBackoff and MaxBackoff bound the exponential retry delay: the
	// n-th consecutive failure waits MinBackoff * 2^(n-1), at most
	// MaxBackoff. 1s and 1m: a recovered SIEM is caught up within a minute.
	MinBackoff, MaxBackoff time.Duration
	// FailAlertAfter consecutive failures record audit.ActSIEMDeliveryFailed
	// once (until a delivery succeeds again); 3.
	FailAlertAfter int
	// WarnAt is the fraction of a destination's budget at which an alert is
	// recorded, long before Enqueue starts refusing; 0.8.
	WarnAt float64
	// Settle is how long a stream sender waits after a write before
	// checking that the receiver still holds the connection; 20ms.
	Settle time.Duration
	// Record writes an alert as an audit entry (and enqueues it), inside the
	// worker's transaction (the appliance passes its journal). Alerts are only
	// visible in Statuses when nil.
	Record func(ctx context.Context, tx *sql.Tx, e audit.Entry) error
	// Dial builds a destination's sender; the real transports when nil.
	Dial func(d Destination, m Meta) (Sender, error)
	// Logf reports delivery errors; discarded when nil.
	Logf func(format string, args ...any)
}

// Worker delivers the outbox: one goroutine per destination, each sending
// its destination's events in sequence order.
type Worker struct {
	o    *Outbox
	opts WorkerOptions

	mu      sync.Mutex
	senders map[string]Sender
}

// NewWorker returns a worker for o.
func (o *Outbox) NewWorker(opts WorkerOptions) *Worker {
	if opts.Now == nil {
		opts.Now = o.opts.Now
	}
	if opts.After == nil {
		opts.After = time.After
	}
	if opts.Batch <= 0 {
		opts.Batch = 100
	}
	if opts.Poll <= 0 {
		opts.Poll = 500 * time.Millisecond
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = time.Minute
	}
	if opts.FailAlertAfter <= 0 {
		opts.FailAlertAfter = 3
	}
	if opts.WarnAt <= 0 || opts.WarnAt >= 1 {
		opts.WarnAt = 0.8
	}
	if opts.Settle <= 0 {
		opts.Settle = 20 * time.Millisecond
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	return &Worker{o: o, opts: opts, senders: map[string]Sender{}}
}

// Run delivers until ctx is done, then closes every connection. It picks up
// new destinations within Poll and lets go of deleted ones.
func (w *Worker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	running := map[string]bool{}
	var mu sync.Mutex
	defer func() {
		wg.Wait()
		w.closeAll()
	}()
	for {
		dests, err := w.o.Destinations(ctx)
		if err != nil && ctx.Err() == nil {
			w.opts.Logf("siem: %v", err)
		}
		for _, d := range dests {
			mu.Lock()
			if running[d.ID] {
				mu.Unlock()
				continue
			}
			running[d.ID] = true
			mu.Unlock()
			wg.Add(1)
			go func(id string) {
				defer wg.Done()
				w.runDest(ctx, id)
				mu.Lock()
				delete(running, id)
				mu.Unlock()
			}(d.ID)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.opts.After(w.opts.Poll):
		}
	}
}

func (w *Worker) runDest(ctx context.Context, id string) {
	defer w.dropSender(id)
	for ctx.Err() == nil {
		res, err := w.DeliverOnce(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return
		}
		var wait time.Duration
		switch {
		case err != nil && ctx.Err() == nil:
			w.opts.Logf("siem: deliver to %s: %v", id, err)
			wait = w.opts.MinBackoff
		case !res.NextAttempt.IsZero():
			wait = res.NextAttempt.Sub(w.opts.Now())
		case res.Sent == 0:
			wait = w.opts.Poll
		}
		if wait <= 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-w.opts.After(wait):
		}
	}
}

// Result is what one DeliverOnce did.
type Result struct {
	// Sent is how many events were delivered (and removed).
	Sent int
	// NextAttempt is set when the destination is backing off: nothing is
	// tried before then.
	NextAttempt time.Time
	// Err is the delivery error of this attempt, if it failed.
	Err error
}

// DeliverOnce makes one delivery attempt for destination id: up to Batch of
// its oldest pending events, unless it is backing off. A failed delivery is
// not an error of DeliverOnce (it is in Result.Err and the status); errors
// are database failures and ErrNotFound.
func (w *Worker) DeliverOnce(ctx context.Context, id string) (Result, error) {
	now := w.opts.Now()
	st, err := w.state(ctx, id)
	if err != nil {
		return Result{}, err
	}
	if err := w.budgetAlert(ctx, st); err != nil {
		return Result{}, err
	}
	if st.nextAttempt.After(now) {
		return Result{NextAttempt: st.nextAttempt}, nil
	}
	// Move what waits in the audit log (a backlog, or entries whose writer
	// never called Enqueue) into the outbox first.
	if err := w.o.SyncDest(ctx, id); err != nil {
		return Result{}, err
	}
	msgs, size, err := w.pending(ctx, st.d)
	if err != nil || len(msgs) == 0 {
		return Result{}, err
	}
	sender, err := w.sender(ctx, st.d)
	if err != nil {
		return w.failed(ctx, st, err)
	}
	n, sendErr := sender.Send(ctx, msgs)
	if n > 0 {
		var bytes int64
		for _, s := range size[:n] {
			bytes += s
		}
		if err := w.ack(ctx, id, msgs[n-1].Seq, bytes); err != nil {
			return Result{}, err
		}
	}
	if sendErr != nil {
		if ctx.Err() != nil {
			return Result{Sent: n}, nil
		}
		res, err := w.failed(ctx, st, sendErr)
		res.Sent = n
		return res, err
	}
	return Result{Sent: n}, nil
}

// destState is the delivery bookkeeping of one destination.
type destState struct {
	d             Destination
	attempts      int64
	pendingBytes  int64
	nextAttempt   time.Time
	failAlerted   bool
	budgetAlerted bool
}

func (w *Worker) state(ctx context.Context, id string) (destState, error) {
	var st destState
	var next string
	var fa, ba int
	d, err := scanDestWith(w.o.db.QueryRowContext(ctx, `SELECT `+destColumns+`, attempts, pending_bytes, next_attempt_at, fail_alerted, budget_alerted
		FROM siem_destinations WHERE id = ?`, id), &st.attempts, &st.pendingBytes, &next, &fa, &ba)
	if errors.Is(err, sql.ErrNoRows) {
		return st, fmt.Errorf("siem destination %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return st, fmt.Errorf("siem destination %s: %w", id, err)
	}
	st.d = d
	st.failAlerted, st.budgetAlerted = fa != 0, ba != 0
	if next != "" {
		st.nextAttempt, _ = time.Parse(time.RFC3339Nano, next)
	}
	return st, nil
}

func scanDestWith(r scanner, extra ...any) (Destination, error) {
	var d Destination
	dst := []any{&d.ID, &d.Tenant, &d.Name, &d.Kind, &d.Address, &d.Format, &d.ServerName, &d.CAPEM, &d.ClientCertPEM, &d.MaxMessage, &d.BudgetBytes, &d.CreatedAt}
	err := r.Scan(append(dst, extra...)...)
	return d, err
}

// pending loads and renders the oldest Batch events of d.
func (w *Worker) pending(ctx context.Context, d Destination) ([]Outgoing, []int64, error) {
	rows, err := w.o.db.QueryContext(ctx, `SELECT seq, event FROM siem_outbox WHERE dest_id = ? ORDER BY seq LIMIT ?`, d.ID, w.opts.Batch)
	if err != nil {
		return nil, nil, fmt.Errorf("siem outbox: %w", err)
	}
	defer rows.Close()
	var msgs []Outgoing
	var sizes []int64
	for rows.Next() {
		var seq int64
		var raw []byte
		if err := rows.Scan(&seq, &raw); err != nil {
			return nil, nil, fmt.Errorf("siem outbox: %w", err)
		}
		var ev Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			// Our own encoding; if it ever fails to decode, still send
			// something in its place so the sequence has no gap.
			ev = Event{Action: "siem.undecodable", Details: nil}
		}
		msgs = append(msgs, Outgoing{Seq: seq, Payload: Render(d, ev, w.o.meta(seq))})
		sizes = append(sizes, int64(len(raw)))
	}
	return msgs, sizes, rows.Err()
}

// Render is what destination d is sent for ev: an RFC 5424 message (for the
// syslog kinds, unframed) or a JSON body (webhooks), shrunk to fit
// d.MaxMessage if needed.
func Render(d Destination, ev Event, m Meta) []byte {
	render := func(ev Event) []byte {
		if d.Kind == KindWebhook {
			return Body(d.Format, ev, m)
		}
		return Syslog(d.Format, ev, m)
	}
	out := render(ev)
	if d.Kind == KindWebhook || d.MaxMessage <= 0 || len(out) <= d.MaxMessage {
		return out
	}
	out = render(shrink(ev, 256))
	if len(out) <= d.MaxMessage {
		return out
	}
	return render(shrink(ev, 32))
}

// shrink drops an event's details and cuts its strings to max bytes, so a
// message over the receiver's limit arrives shortened rather than being cut
// by the receiver mid-JSON (or, over UDP, dropped).
func shrink(ev Event, max int) Event {
	cut := func(s string) string {
		if len(s) <= max {
			return s
		}
		s = s[:max]
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		return s + "…"
	}
	ev.Details = json.RawMessage(`{"truncated":true}`)
	ev.ActorID, ev.ActorName, ev.ActorIP = cut(ev.ActorID), cut(ev.ActorName), cut(ev.ActorIP)
	ev.UserAgent, ev.Object, ev.Tenant = cut(ev.UserAgent), cut(ev.Object), cut(ev.Tenant)
	if ev.Finding != nil {
		f := *ev.Finding
		f.ID, f.ScanID, f.Kind, f.Severity = cut(f.ID), cut(f.ScanID), cut(f.Kind), cut(f.Severity)
		f.Title, f.Rule, f.Target = cut(f.Title), cut(f.Rule), cut(f.Target)
		f.Protocol, f.Observed, f.Expected = cut(f.Protocol), cut(f.Observed), cut(f.Expected)
		ev.Finding = &f
	}
	return ev
}

func (w *Worker) sender(ctx context.Context, d Destination) (Sender, error) {
	w.mu.Lock()
	s := w.senders[d.ID]
	w.mu.Unlock()
	if s != nil {
		return s, nil
	}
	if err := w.o.secrets(ctx, &d); err != nil {
		return nil, err
	}
	var err error
	if w.opts.Dial != nil {
		s, err = w.opts.Dial(d, w.o.meta(0))
	} else {
		s, err = dialSender(d, w.o.meta(0), w.opts.Now, w.opts.Settle)
	}
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.senders[d.ID] = s
	w.mu.Unlock()
	return s, nil
}

func (w *Worker) dropSender(id string) {
	w.mu.Lock()
	s := w.senders[id]
	delete(w.senders, id)
	w.mu.Unlock()
	if s != nil {
		s.Close()
	}
}

func (w *Worker) closeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, s := range w.senders {
		s.Close()
		delete(w.senders, id)
	}
}

// ack removes delivered events up to seq and resets the failure state.
func (w *Worker) ack(ctx context.Context, id string, seq, bytes int64) error {
	now := w.opts.Now().UTC().Format(time.RFC3339Nano)
	return w.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM siem_outbox WHERE dest_id = ? AND seq <= ?`, id, seq); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE siem_destinations SET delivered_seq = ?, delivered_at = ?, pending_bytes = MAX(0, pending_bytes - ?),
			attempts = 0, next_attempt_at = '', fail_alerted = 0 WHERE id = ?`, seq, now, bytes, id)
		return err
	})
}

// backoff is the wait after the n-th consecutive failure.
func (w *Worker) backoff(n int64) time.Duration {
	d := w.opts.MinBackoff
	for i := int64(1); i < n && d < w.opts.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, w.opts.MaxBackoff)
}

// failed records a failed attempt, schedules the retry and, on the
// FailAlertAfter-th consecutive failure, records an alert.
func (w *Worker) failed(ctx context.Context, st destState, cause error) (Result, error) {
	now := w.opts.Now()
	attempts := st.attempts + 1
	next := now.Add(w.backoff(attempts))
	msg := oneLine(cause.Error(), 300)
	w.opts.Logf("siem: %s: attempt %d failed: %s; retry at %s", st.d.Name, attempts, msg, next.UTC().Format(time.RFC3339))
	alert := !st.failAlerted && attempts >= int64(w.opts.FailAlertAfter) && w.opts.Record != nil
	err := w.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE siem_destinations SET attempts = ?, failures = failures + 1, last_error = ?, last_error_at = ?,
			next_attempt_at = ?, fail_alerted = fail_alerted OR ? WHERE id = ?`,
			attempts, msg, now.UTC().Format(time.RFC3339Nano), next.UTC().Format(time.RFC3339Nano), alert, st.d.ID)
		if err != nil || !alert {
			return err
		}
		return w.opts.Record(ctx, tx, alertEntry(st.d, map[string]any{
			"reason": "unreachable", "destination": st.d.ID, "name": st.d.Name,
			"error": msg, "consecutive_failures": attempts, "pending_bytes": st.pendingBytes,
		}))
	})
	if err != nil {
		return Result{}, fmt.Errorf("siem record failure: %w", err)
	}
	return Result{NextAttempt: next, Err: cause}, nil
}

// budgetAlert records an alert once when a destination's outbox passes
// WarnAt of its budget, and re-arms when it drains below half of that.
func (w *Worker) budgetAlert(ctx context.Context, st destState) error {
	used := float64(st.pendingBytes) / float64(st.d.BudgetBytes)
	switch {
	case !st.budgetAlerted && used >= w.opts.WarnAt:
		w.opts.Logf("siem: %s: outbox at %.0f%% of its budget", st.d.Name, used*100)
		return w.inTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `UPDATE siem_destinations SET budget_alerted = 1 WHERE id = ?`, st.d.ID); err != nil {
				return err
			}
			if w.opts.Record == nil {
				return nil
			}
			return w.opts.Record(ctx, tx, alertEntry(st.d, map[string]any{
				"reason": "budget", "destination": st.d.ID, "name": st.d.Name,
				"pending_bytes": st.pendingBytes, "budget_bytes": st.d.BudgetBytes,
			}))
		})
	case st.budgetAlerted && used < w.opts.WarnAt/2:
		return w.inTx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE siem_destinations SET budget_alerted = 0 WHERE id = ?`, st.d.ID)
			return err
		})
	}
	return nil
}

func alertEntry(d Destination, details map[string]any) audit.Entry {
	b, _ := json.Marshal(details)
	return audit.Entry{Tenant: d.Tenant, ActorName: "siem-worker", Action: audit.ActSIEMDeliveryFailed, Object: d.ID, Details: b}
}

func (w *Worker) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	return store.InTx(ctx, w.o.db, fn)
}

// oneLine flattens s and cuts it to max bytes, for status columns.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max]
	}
	return strings.ToValidUTF8(s, "")
}

// SendTest sends one test message to d outside the outbox, with sequence
// number 0 so it cannot be mistaken for (or fill) a gap. It is what
// 'siem test' uses to check a destination's settings.
func (w *Worker) SendTest(ctx context.Context, idOrName string) error {
	d, err := w.o.Destination(ctx, idOrName)
	if err != nil {
		return err
	}
	if err := w.o.secrets(ctx, &d); err != nil {
		return err
	}
	var s Sender
	if w.opts.Dial != nil {
		s, err = w.opts.Dial(d, w.o.meta(0))
	} else {
		s, err = dialSender(d, w.o.meta(0), w.opts.Now, w.opts.Settle)
	}
	if err != nil {
		return err
	}
	defer s.Close()
	details, _ := json.Marshal(map[string]any{"test": true, "destination": d.Name})
	ev := Event{Time: w.opts.Now().UTC(), Tenant: d.Tenant, ActorName: "siem-test", Action: "siem.test", Object: d.ID, Details: details}
	_, err = s.Send(ctx, []Outgoing{{Seq: 0, Payload: Render(d, ev, w.o.meta(0))}})
	return err
}
