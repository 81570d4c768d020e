package probe

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Window is the length of the window the rate invariant is stated over: no
// Window may carry more than Rate/10 + 1 packets.
const Window = 100 * time.Millisecond

// Pacer tuning. The values are chosen so the window invariant holds on the
// wire, not just at the moment a slot is granted.
const (
	// guardSingle and guardBatch are added to Window when checking the
	// sliding window. The ring holds send-completion times (Stamp), which
	// already bound every packet's wire time from above, so the guard is
	// only a margin for packets not yet stamped when compared (never, as
	// long as a batch is shorter than the ring) and for clock reads. It
	// costs rate only when the ring binds, as it does at high rates, where
	// every microsecond from grant to the end of the send call also counts
	// (measured: 147-148k of a requested 150k pps with a 100 us guard,
	// 146-147k with 1 ms). Below 1/guardSingle pps it costs nothing.
	guardSingle = 200 * time.Microsecond
	guardBatch  = 100 * time.Microsecond
	batchRate   = 4000
	// maxDebt is how far behind its schedule the pacer may fall and still
	// catch up, so a sender preempted for a moment (GC, a busy host) still
	// reaches its rate over a run. A sender idle for longer (nothing to
	// send, waiting for replies) does not earn a bigger burst; the window
	// ring caps every burst at the window limit anyway.
	maxDebt = Window
	// hostIdle is how long per-host state is kept after a host's last
	// packet; after that the host has no pending constraint anyway.
	hostIdle = 2 * time.Second
)

// ErrRate is returned for an invalid rate.
var ErrRate = errors.New("invalid rate")

// Pacer hands out send slots on a precise schedule: slot k of a run is due
// at start + k/Rate, never earlier. On top of the schedule a ring of the
// last Rate/10+1 grant times refuses any grant that would put more than
// Rate/10+1 packets into Window (plus a small guard), so even catching up
// after a stall cannot exceed the cap. A per-host interval of 1/PerHost
// keeps each host under its own cap.
//
// One Pacer serves the whole engine (raw sender and connect workers alike):
// every packet, first try or retry, spends from the same budget. It is safe
// for concurrent use.
type Pacer struct {
	mu       sync.Mutex
	now      func() time.Time
	rate     int
	perHost  int
	interval float64 // ns per packet, global
	hostGap  time.Duration
	guard    time.Duration
	start    time.Time
	k        int64 // slots granted since start (schedule index)
	started  bool
	ring     []time.Time // last limit grant times, ring buffer
	ringPos  int
	ringFull bool
	hosts    map[netip.Addr]time.Time // next allowed time per host
	lastGC   time.Time
}

// NewPacer returns a pacer for rate packets per second globally and
// perHost packets per second to any single host (0: no per-host cap beyond
// rate). now is the clock; tests inject a simulated one.
func NewPacer(rate, perHost int, now func() time.Time) (*Pacer, error) {
	if rate <= 0 {
		return nil, fmt.Errorf("%w: %d pps", ErrRate, rate)
	}
	if perHost < 0 {
		return nil, fmt.Errorf("%w: per-host %d pps", ErrRate, perHost)
	}
	if now == nil {
		now = time.Now
	}
	p := &Pacer{
		now:      now,
		rate:     rate,
		perHost:  perHost,
		interval: 1e9 / float64(rate),
		ring:     make([]time.Time, WindowLimit(rate)),
		hosts:    make(map[netip.Addr]time.Time),
	}
	p.guard = guardSingle
	if rate >= batchRate {
		p.guard = guardBatch
	}
	if perHost > 0 {
		p.hostGap = time.Duration(1e9 / float64(perHost))
	}
	return p, nil
}

// WindowLimit is the most packets any Window may carry at rate pps.
func WindowLimit(rate int) int { return rate/10 + 1 }

// Rate returns the global rate in packets per second.
func (p *Pacer) Rate() int { return p.rate }

// Reserve asks for one slot to send a packet to host. It returns 0 when
// the slot is granted (the caller must send now), or how long to wait
// before asking again. An invalid (zero) host skips the per-host cap.
func (p *Pacer) Reserve(host netip.Addr) time.Duration {
	_, d := p.ReserveTicket(host)
	return d
}

// ReserveTicket is Reserve that also returns a ticket for the granted
// slot, to be passed to Stamp once the packet has been sent.
func (p *Pacer) ReserveTicket(host netip.Addr) (ticket int64, wait time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.k
	d := p.reserve(p.now(), host)
	return t, d
}

// Stamp records that the packet of ticket left at t (when the send call
// returned). The window ring then holds send times instead of grant
// times: a later grant is checked against when packets really went out,
// so scheduling delays between grant and send cannot squeeze an extra
// packet into a window. It is a no-op once the ticket's ring slot has been
// reused.
func (p *Pacer) Stamp(ticket int64, t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ticket < 0 || ticket >= p.k || p.k-ticket > int64(len(p.ring)) {
		return
	}
	slot := int(ticket % int64(len(p.ring)))
	if t.After(p.ring[slot]) {
		p.ring[slot] = t
	}
}

func (p *Pacer) reserve(now time.Time, host netip.Addr) time.Duration {
	if d := p.check(now, host); d > 0 {
		return d
	}
	p.commit(now, host)
	return 0
}

// check returns how long until a slot to host is due at now (0: now). It
// changes nothing a caller could observe: it may anchor the schedule at the
// first call and forgive debt beyond maxDebt, both of which only describe
// the same schedule. Callers hold p.mu.
func (p *Pacer) check(now time.Time, host netip.Addr) time.Duration {
	if !p.started {
		p.start, p.started = now, true
	}
	due := p.start.Add(time.Duration(float64(p.k) * p.interval))
	if d := due.Sub(now); d > 0 {
		return d
	}
	if now.Sub(due) > maxDebt {
		// Forgive debt beyond maxDebt: re-anchor the schedule so that the
		// current slot is maxDebt late.
		p.start = now.Add(-maxDebt).Add(-time.Duration(float64(p.k) * p.interval))
	}
	if p.ringFull {
		oldest := p.ring[p.ringPos]
		if d := oldest.Add(Window + p.guard).Sub(now); d > 0 {
			return d
		}
	}
	if p.hostGap > 0 && host.IsValid() {
		if next, ok := p.hosts[host]; ok && now.Before(next) {
			return next.Sub(now)
		}
	}
	return 0
}

// commit grants the slot check found due. Callers hold p.mu.
func (p *Pacer) commit(now time.Time, host netip.Addr) {
	if p.hostGap > 0 && host.IsValid() {
		p.hosts[host] = now.Add(p.hostGap)
		if now.Sub(p.lastGC) > hostIdle {
			for h, t := range p.hosts {
				if now.Sub(t) > hostIdle {
					delete(p.hosts, h)
				}
			}
			p.lastGC = now
		}
	}
	p.k++
	p.ring[p.ringPos] = now
	p.ringPos++
	if p.ringPos == len(p.ring) {
		p.ringPos, p.ringFull = 0, true
	}
}

// Wait blocks until a slot to host is granted or ctx ends. It sleeps in
// steps of at most 10 ms so a cancelled scan stops promptly.
func (p *Pacer) Wait(ctx context.Context, host netip.Addr) error {
	_, err := p.WaitTicket(ctx, host)
	return err
}

// WaitTicket is Wait that also returns the slot's ticket (see Stamp).
func (p *Pacer) WaitTicket(ctx context.Context, host netip.Addr) (int64, error) {
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		tk, d := p.ReserveTicket(host)
		if d == 0 {
			return tk, nil
		}
		if err := sleepCtx(ctx, min(d, 10*time.Millisecond)); err != nil {
			return 0, err
		}
	}
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// WindowMeter measures the worst Window of a stream of send timestamps,
// which arrive in non-decreasing order. It keeps only the timestamps of the
// current window.
type WindowMeter struct {
	times []time.Time // queue; head at times[head]
	head  int
	worst int
	count uint64
	first time.Time
	last  time.Time
	// series counts packets per bucket of width since first (SendSeries).
	series []uint64
	width  time.Duration
}

// SeriesBuckets bounds a SendSeries: a longer run doubles the bucket
// width, so a summary stays small (it travels in every run's final event
// and in the scan's audited completion) whatever the scan's length.
const SeriesBuckets = 120

// SendSeries is how many packets a run sent in each bucket of
// BucketSeconds seconds from its first send: the scan timeline's
// "packets per second against the cap" (Packets[i] / BucketSeconds).
type SendSeries struct {
	BucketSeconds int      `json:"bucket_seconds"`
	Packets       []uint64 `json:"packets"`
}

// Add records n packets sent at t.
func (m *WindowMeter) Add(t time.Time, n int) {
	if m.count == 0 {
		m.first = t
	}
	for range n {
		m.times = append(m.times, t)
	}
	m.count += uint64(n)
	m.last = t
	m.addSeries(t, n)
	for m.head < len(m.times) && t.Sub(m.times[m.head]) >= Window {
		m.head++
	}
	if c := len(m.times) - m.head; c > m.worst {
		m.worst = c
	}
	if m.head > 4096 && m.head > len(m.times)/2 {
		m.times = append(m.times[:0], m.times[m.head:]...)
		m.head = 0
	}
}

// addSeries counts n packets at t into the bucketed series, doubling the
// bucket width (merging neighbours) while t falls beyond the last bucket.
func (m *WindowMeter) addSeries(t time.Time, n int) {
	if m.width == 0 {
		m.width = time.Second
	}
	i := int(max(t.Sub(m.first), 0) / m.width)
	for i >= SeriesBuckets {
		merged := m.series[:0]
		for j := 0; j < len(m.series); j += 2 {
			v := m.series[j]
			if j+1 < len(m.series) {
				v += m.series[j+1]
			}
			merged = append(merged, v)
		}
		m.series, m.width = merged, m.width*2
		i = int(max(t.Sub(m.first), 0) / m.width)
	}
	for len(m.series) <= i {
		m.series = append(m.series, 0)
	}
	m.series[i] += uint64(n)
}

// Series returns the packets per bucket so far (nil before the first).
func (m *WindowMeter) Series() *SendSeries {
	if m.count == 0 {
		return nil
	}
	return &SendSeries{BucketSeconds: int(m.width / time.Second), Packets: append([]uint64(nil), m.series...)}
}

// Worst returns the most packets seen in any Window.
func (m *WindowMeter) Worst() int { return m.worst }

// Count returns the packets recorded.
func (m *WindowMeter) Count() uint64 { return m.count }
