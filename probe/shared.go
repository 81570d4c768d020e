package probe

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"firewalliq/probe/safety"
)

// SharedPacer is the appliance-wide pacer: every engine built with it (see
// Config.Shared) draws each packet from the same global schedule and window
// ring and the same per-host budgets, so scans running at once in one
// process together stay under the profile's global_pps and per_host_pps,
// as one scan does alone. An engine still keeps its own pacer for its own
// rate (the job's); a slot is granted only when both have one, atomically.
//
// NewSharedPacer takes its caps from the compiled-in safety profile (no
// caller can raise them). It is safe for concurrent use.
type SharedPacer struct {
	p *Pacer
}

// NewSharedPacer returns the shared pacer at the compiled-in profile's
// global_pps and per_host_pps. now is the clock every engine sharing it
// must also use (nil: time.Now).
func NewSharedPacer(now func() time.Time) (*SharedPacer, error) {
	prof, err := safety.Load()
	if err != nil {
		return nil, err
	}
	return newSharedPacer(prof, now)
}

// newSharedPacer is NewSharedPacer with the profile given (tests).
func newSharedPacer(prof safety.Profile, now func() time.Time) (*SharedPacer, error) {
	p, err := NewPacer(prof.GlobalPPS, prof.PerHostPPS, now)
	if err != nil {
		return nil, fmt.Errorf("shared pacer: %w", err)
	}
	return &SharedPacer{p: p}, nil
}

// Rate returns the shared global rate, packets per second.
func (s *SharedPacer) Rate() int { return s.p.rate }

// Ticket identifies a granted slot in the engine's pacer and, when
// shared, in the shared one (see Pacer.Stamp).
type Ticket struct {
	own, shared int64
}

// gate is what the engine's senders ask for slots: its own pacer, and the
// shared one when there is one.
type gate struct {
	own    *Pacer
	shared *SharedPacer
}

// ReserveTicket asks for one slot to host in both pacers. It returns the
// ticket and 0 when both grant, or how long to wait before asking again
// (neither pacer is charged then). The shared pacer's lock is always taken
// before the engine's, so engines sharing one cannot deadlock.
func (g gate) ReserveTicket(host netip.Addr) (Ticket, time.Duration) {
	if g.shared == nil {
		t, d := g.own.ReserveTicket(host)
		return Ticket{own: t, shared: -1}, d
	}
	sp := g.shared.p
	sp.mu.Lock()
	defer sp.mu.Unlock()
	g.own.mu.Lock()
	defer g.own.mu.Unlock()
	now := sp.now()
	if d := max(g.own.check(now, host), sp.check(now, host)); d > 0 {
		return Ticket{}, d
	}
	t := Ticket{own: g.own.k, shared: sp.k}
	g.own.commit(now, host)
	sp.commit(now, host)
	return t, 0
}

// WaitTicket blocks until a slot to host is granted or ctx ends, sleeping
// in steps of at most 10 ms so a cancelled scan stops promptly.
func (g gate) WaitTicket(ctx context.Context, host netip.Addr) (Ticket, error) {
	for {
		if err := ctx.Err(); err != nil {
			return Ticket{}, err
		}
		tk, d := g.ReserveTicket(host)
		if d == 0 {
			return tk, nil
		}
		if err := sleepCtx(ctx, min(d, 10*time.Millisecond)); err != nil {
			return Ticket{}, err
		}
	}
}

// Stamp records the send time of a granted slot in both pacers.
func (g gate) Stamp(t Ticket, at time.Time) {
	g.own.Stamp(t.own, at)
	if g.shared != nil {
		g.shared.p.Stamp(t.shared, at)
	}
}
