package probe

import (
	"context"
	"io"
	"net/netip"
	"slices"
	"time"

	"firewalliq/probe/scope"
)

// batchHold is the longest a granted packet waits in a batch before the
// batch is sent; with the syscall's own time it must stay below the
// pacer's guardBatch so the window invariant holds on the wire.
const batchHold = 500 * time.Microsecond

// sendLoop is the raw sender: it takes new probes from in, re-sends
// unanswered ones after Timeout (retries), finishes exhausted ones as
// filtered, and sends everything through the one pacer and the scope-checked
// send path.
func (e *Engine) sendLoop(ctx context.Context, in <-chan *entry) {
	// Sent probes wait in two queues, each in order of last attempt and
	// with its own adaptive timeout: one for answers that come from
	// kernels (SYN-ACK, RST, echo reply, ICMP errors), one for UDP, whose
	// answers come from applications (a DNS server), with a higher floor;
	// the kernels' round-trip time says nothing about those.
	var queues [2]retryQueue
	queueOf := func(en *entry) *retryQueue {
		if en.kind == KindUDP {
			return &queues[1]
		}
		return &queues[0]
	}
	var (
		bufs    = make([][]byte, maxBatch)
		pkts    = make([][]byte, 0, maxBatch)
		tickets = make([]Ticket, 0, maxBatch)
		dsts    = make([]netip.Addr, 0, maxBatch)
		ents    = make([]*entry, 0, maxBatch)
		batchAt time.Time
	)
	for i := range bufs {
		bufs[i] = make([]byte, 0, 128)
	}
	templates := map[netip.Addr]*synTemplate{}
	flush := func() {
		if len(pkts) > 0 {
			at := e.sendChecked(pkts, dsts, ents)
			for _, tk := range tickets {
				e.pacer.Stamp(tk, at)
			}
			pkts, dsts, ents, tickets = pkts[:0], dsts[:0], ents[:0], tickets[:0]
		}
	}
	defer flush()
	inOpen := true
	for {
		if ctx.Err() != nil {
			return
		}
		now := e.cfg.Now()
		e.mu.Lock()
		timeouts := [2]time.Duration{
			e.rtt.timeout(e.cfg.MinTimeout, e.cfg.Timeout),
			e.rttUDP.timeout(min(max(e.cfg.MinTimeout, udpMinTimeout), e.cfg.Timeout), e.cfg.Timeout),
		}
		e.mu.Unlock()
		// Due retries and expiries first: they keep the oldest probes
		// moving so batches complete in order.
		var next *entry
		for i := range queues {
			if next = e.dueRetry(&queues[i], timeouts[i], now); next != nil {
				break
			}
		}
		if next == nil && inOpen {
			select {
			case en, ok := <-in:
				if !ok {
					inOpen = false
				} else if !en.fin {
					next = en
				}
			default:
			}
		}
		if next == nil {
			flush()
			if !inOpen && queues[0].empty() && queues[1].empty() {
				return
			}
			// Sleep until the oldest probe is due or new work arrives,
			// at most 10 ms so cancellation is prompt.
			wait := 10 * time.Millisecond
			for i := range queues {
				if h := queues[i].peek(); h != nil {
					e.mu.Lock()
					d := h.last.Add(timeouts[i]).Sub(now)
					e.mu.Unlock()
					if d <= 0 {
						// Due, but its verdict waits for the tap.
						d = time.Millisecond
					}
					wait = min(max(d, 50*time.Microsecond), wait)
				}
			}
			if inOpen {
				t := time.NewTimer(wait)
				select {
				case en, ok := <-in:
					if !ok {
						inOpen = false
					} else if !en.fin {
						next = en
					}
				case <-t.C:
				case <-ctx.Done():
				}
				t.Stop()
			} else if sleepCtx(ctx, wait) != nil {
				return
			}
			if next == nil {
				continue
			}
		}
		// Pace: wait for a slot; flush what we hold before sleeping.
		var ticket Ticket
		for {
			tk, d := e.pacer.ReserveTicket(next.key.addr)
			if d == 0 {
				ticket = tk
				break
			}
			flush()
			if sleepCtx(ctx, min(d, 10*time.Millisecond)) != nil {
				return
			}
		}
		now = e.cfg.Now()
		p, err := e.build(bufs[len(pkts)][:0], next, templates)
		if err != nil {
			e.mu.Lock()
			next.res.Error = err.Error()
			e.finishLocked(next, StateError, ReasonLocalError, now, 0, nil)
			e.mu.Unlock()
			continue
		}
		bufs[len(pkts)] = p[:0]
		e.mu.Lock()
		if next.attempts == 0 {
			e.pending[next.key] = next
		} else {
			e.retries.Add(1)
		}
		next.attempts++
		next.last = now
		e.mu.Unlock()
		queueOf(next).push(next)
		if len(pkts) == 0 {
			batchAt = now
		}
		pkts, dsts, ents = append(pkts, p), append(dsts, next.key.addr), append(ents, next)
		tickets = append(tickets, ticket)
		// Batch only at rates where a batch spans well under a
		// millisecond; at low rates every packet goes out at its slot.
		if len(pkts) >= e.batchSize() || now.Sub(batchAt) >= batchHold {
			flush()
		}
	}
}

// retryQueue holds sent probes in order of their last attempt.
type retryQueue struct {
	items []*entry
	head  int
}

func (q *retryQueue) empty() bool { return q.head >= len(q.items) }

func (q *retryQueue) peek() *entry {
	if q.empty() {
		return nil
	}
	return q.items[q.head]
}

func (q *retryQueue) pop() {
	q.items[q.head] = nil
	q.head++
	if q.head > 1024 && q.head > len(q.items)/2 {
		q.items = append(q.items[:0], q.items[q.head:]...)
		q.head = 0
	}
}

func (q *retryQueue) push(en *entry) { q.items = append(q.items, en) }

// dueRetry pops finished probes off q, declares exhausted ones unanswered
// (filtered, or open|filtered for UDP) once the tap has caught up, and
// returns the first probe due for another attempt, if any.
func (e *Engine) dueRetry(q *retryQueue, timeout time.Duration, now time.Time) *entry {
	for h := q.peek(); h != nil; h = q.peek() {
		e.mu.Lock()
		fin, last := h.fin, h.last
		e.mu.Unlock()
		if fin {
			q.pop()
			continue
		}
		if now.Sub(last) < timeout {
			return nil
		}
		if h.attempts <= e.retryBudget() {
			q.pop()
			return h
		}
		if !e.tapCaughtUp(last.Add(timeout), now) {
			return nil // the verdict waits for the tap (see readTap)
		}
		q.pop()
		st := StateFiltered
		if h.kind == KindUDP {
			st = StateOpenFiltered
		}
		e.mu.Lock()
		e.finishLocked(h, st, ReasonNoResponse, now, 0, nil)
		e.mu.Unlock()
	}
	return nil
}

// udpMinTimeout is the floor of UDP probes' adaptive timeout.
const udpMinTimeout = 250 * time.Millisecond

// retryBudget is how many retries a raw probe gets now: the configured
// number once the scan has seen loss (a probe answered only on a retry),
// one fewer before that. On a clean network a DROP is then confirmed with
// one attempt less, as nmap does; the first sign of loss restores the full
// budget for every probe still in flight.
func (e *Engine) retryBudget() int {
	if e.cfg.Retries <= 1 || e.lossSeen.Load() {
		return e.cfg.Retries
	}
	return e.cfg.Retries - 1
}

// maxTapLag bounds how long a verdict waits for a tap that never drains
// (a reply flood): after that the engine decides anyway.
const maxTapLag = 2 * time.Second

// tapCaughtUp reports whether the tap has handled every packet that
// arrived before deadline (or has lagged for too long to wait on).
func (e *Engine) tapCaughtUp(deadline, now time.Time) bool {
	if e.tapReached(deadline) {
		return true
	}
	if now.Sub(deadline) > maxTapLag {
		e.tapLagged.Add(1)
		return true
	}
	return false
}

// tapReached reports whether the tap has handled every packet that
// arrived before deadline.
func (e *Engine) tapReached(deadline time.Time) bool {
	if e.tap == nil || e.drained.Load() >= deadline.UnixNano() {
		return true
	}
	// A parked reader does not refresh drained: ask the socket.
	if t := e.cfg.Now(); e.tap.f != nil && e.tap.idle() {
		e.drained.Store(t.UnixNano())
		return !t.Before(deadline)
	}
	return false
}

// batchSize is how many packets the sender gathers per sendmmsg: about a
// millisecond's worth at the current rate, between 1 and maxBatch.
func (e *Engine) batchSize() int {
	if e.rate < batchRate {
		return 1 // the pacer's small guard assumes no batching here
	}
	return min(max(e.rate/2000, 1), maxBatch)
}

// build makes the packet for a probe attempt.
func (e *Engine) build(buf []byte, en *entry, templates map[netip.Addr]*synTemplate) ([]byte, error) {
	switch en.kind {
	case KindTCPSyn:
		t := templates[en.src]
		if t == nil {
			var err error
			if t, err = newSYNTemplate(en.src); err != nil {
				return nil, err
			}
			templates[en.src] = t
		}
		if cap(buf) < len(t.b) {
			buf = make([]byte, len(t.b))
		}
		sport := e.tcpPorts[en.attempts%len(e.tcpPorts)] // a fresh port per attempt
		return t.build(buf[:len(t.b)], en.key.addr, sport, en.key.port, e.cookie(en.key), uint16(e.cookie(en.key)>>16)), nil
	case KindUDP:
		payload, _ := udpPayload(en.key.port, e.cfg.UDPPayloads, uint16(e.cookie(en.key)))
		return buildUDP(en.src, en.key.addr, e.udpPort, en.key.port, payload)
	default: // KindICMPEcho
		return buildEcho(en.src, en.key.addr, e.echoID, uint16(e.cookie(en.key)))
	}
}

// sendChecked is the only way a raw packet leaves the engine. It checks
// every destination against the scope once more, right before the
// syscall: a destination outside is refused, counted and reported, never
// sent. Then it records the send time (for the window meter) and the
// packets as evidence, and returns the send time.
func (e *Engine) sendChecked(pkts [][]byte, dsts []netip.Addr, ents []*entry) time.Time {
	ok := 0
	for i := range pkts {
		// The destination written in the packet is what goes on the wire;
		// the address handed to the kernel is where it is routed. Both
		// must be the same in-scope address.
		wire, valid := packetDst(pkts[i])
		if !valid || wire != dsts[i] || !e.sendable(wire) {
			refused := dsts[i]
			if valid && wire != dsts[i] && e.sendable(dsts[i]) {
				refused = wire
			}
			e.refuse(refused, ents[i])
			continue
		}
		pkts[ok], dsts[ok], ents[ok] = pkts[i], dsts[i], ents[i]
		ok++
	}
	pkts, dsts = pkts[:ok], dsts[:ok]
	if ok == 0 {
		return e.cfg.Now()
	}
	// Evidence: the packets are stamped with the time they were handed
	// to the kernel, and written while the evidence lock is held across
	// the syscall, so a reply captured meanwhile (on loopback the answer
	// arrives before sendmmsg even returns) is written after its probe.
	var n int
	var failed []int // packets the kernel refused (indexes into pkts)
	var errs []error
	sendAll := func(record func(p []byte)) {
		// A packet the kernel refuses (EACCES for a broadcast address,
		// EPERM from a local output filter, ...) fails alone: the rest of
		// the batch is still sent.
		for i := 0; i < ok; {
			m, err := e.conn.send(pkts[i:ok], dsts[i:ok])
			m = min(max(m, 0), ok-i)
			if err == nil && m == 0 {
				err = io.ErrShortWrite // no progress: never spin
			}
			for _, p := range pkts[i : i+m] {
				record(p)
			}
			n += m
			i += m
			if err == nil {
				continue
			}
			if i < ok {
				failed, errs = append(failed, i), append(errs, err)
			}
			i++
		}
	}
	if ev := e.cfg.Evidence; ev != nil {
		ev.mu.Lock()
		handed := e.cfg.Now()
		sendAll(func(p []byte) { ev.writeLocked(handed, p) })
		ev.mu.Unlock()
	} else {
		sendAll(func([]byte) {})
	}
	// The meter and the pacer's ring use the time the syscall returned:
	// no packet of the batch left later than that.
	now := e.cfg.Now()
	e.sendMu.Lock()
	e.meter.Add(now, n)
	e.sendMu.Unlock()
	e.sent.Add(uint64(n))
	if len(failed) > 0 {
		e.mu.Lock()
		for j, i := range failed {
			ents[i].res.Error = errs[j].Error()
			e.finishLocked(ents[i], StateError, ReasonLocalError, now, 0, nil)
		}
		e.mu.Unlock()
	}
	return now
}

// sendable is the send path's destination check, run for every packet
// right before it leaves: the address must be in the scope, and it must not
// be a special address (unspecified, limited broadcast, multicast; see
// scope.SpecialPrefixes), whatever the scope says, because a probe to one
// would reach no host or many.
func (e *Engine) sendable(a netip.Addr) bool {
	return !scope.IsSpecial(a) && e.cfg.Scope.Contains(a)
}

// packetDst reads the destination address from an IPv4 or IPv6 header.
func packetDst(b []byte) (netip.Addr, bool) {
	switch {
	case len(b) >= 20 && b[0]>>4 == 4:
		return netip.AddrFrom4([4]byte(b[16:20])), true
	case len(b) >= 40 && b[0]>>4 == 6:
		return netip.AddrFrom16([16]byte(b[24:40])), true
	}
	return netip.Addr{}, false
}

// refuse counts and reports a destination the send path would not send to.
func (e *Engine) refuse(dst netip.Addr, en *entry) {
	e.refused.Add(1)
	e.sendMu.Lock()
	if len(e.refusedList) < 16 {
		e.refusedList = append(e.refusedList, dst.String())
	}
	e.sendMu.Unlock()
	if en != nil {
		e.mu.Lock()
		en.res.Error = ErrOutOfScope.Error()
		e.finishLocked(en, StateError, "out-of-scope-refused", e.cfg.Now(), 0, nil)
		e.mu.Unlock()
	}
}

// readTap reads the tap until stop closes (after the scan) and hands each
// packet to handle.
//
// It also publishes when it last found the socket empty (drained): every
// reply that arrived before that moment has been handled. The sender
// declares a probe unanswered only after the tap drained past the probe's
// deadline, so a reader that fell behind (a starved process, a burst of
// replies) delays the verdict instead of turning an answer into
// "filtered".
func (e *Engine) readTap(ctx context.Context, stop <-chan struct{}) {
	go func() {
		// Closing the socket is what wakes a parked reader.
		<-stop
		e.tap.close()
	}()
	buf := make([]byte, 65536)
	empty := func(before time.Time) { e.drained.Store(before.UnixNano()) }
	for {
		n, out, lo, err := e.tap.next(buf, e.cfg.Now, empty)
		if err != nil {
			return
		}
		if out && lo {
			// On loopback every packet shows up twice, outgoing and
			// incoming: keep the incoming copy only.
			continue
		}
		e.handle(buf[:n], out, e.cfg.Now())
	}
}

// handle matches a captured packet against the probes in flight. A packet
// addressed to our probe ports (or an ICMP message) that matches no probe
// we sent is counted as unmatched and ignored.
func (e *Engine) handle(b []byte, outgoing bool, now time.Time) {
	p, err := decode(b)
	if err != nil {
		if err != ErrUnsupported {
			e.malformed.Add(1)
		}
		return
	}
	if outgoing {
		// Only connect-based probes' own packets (the tap keeps outgoing
		// packets only when those run).
		if p.proto == protoTCP && !e.ourTCPPort(p.sport) {
			e.mu.Lock()
			w, ok := e.watch[probeKey{p.dst, protoTCP, p.dport}]
			again := ok && e.synAgainLocked(w, p)
			e.mu.Unlock()
			if ok {
				e.evidence(now, b)
			}
			if again {
				e.kernelResent(now)
			}
		}
		return
	}
	switch p.proto {
	case protoTCP:
		if e.ourTCPPort(p.dport) {
			e.matchTCP(p, b, now)
			return
		}
		// A connect-based probe's packets: the target's (from the
		// probed port) and, on loopback where only incoming copies are
		// kept, our own (to the probed port).
		e.mu.Lock()
		w, ok := e.watch[probeKey{p.src, protoTCP, p.sport}]
		if ok && w.ttl == 0 {
			w.ttl = p.ttl
		}
		again := false
		if !ok {
			w, ok = e.watch[probeKey{p.dst, protoTCP, p.dport}]
			again = ok && e.synAgainLocked(w, p)
		}
		e.mu.Unlock()
		if ok {
			e.evidence(now, b)
		}
		if again {
			e.kernelResent(now)
		}
	case protoUDP:
		if p.dport == e.udpPort && e.udpPort != 0 {
			e.mu.Lock()
			en, ok := e.pending[probeKey{p.src, protoUDP, p.sport}]
			matched := ok && e.finishLocked(en, StateOpen, ReasonUDPResponse, now, p.ttl, nil)
			e.mu.Unlock()
			// UDP carries no cookie: an answer after its probe was
			// decided cannot be told from a stray one.
			e.count(matched, false, now, b)
		}
	case protoICMP, protoICMPv6:
		e.matchICMP(p, b, now)
	}
}

// synAgainLocked reports whether p, one of our own packets of a
// connect-based probe watched by w, is the kernel's retransmission of a
// SYN already seen (same source port and sequence number). The dial
// timeout stays below the kernel's first retransmission (maxDialTimeout),
// but a starved process can close the socket too late; the packet is
// then on the wire all the same, and is counted. Caller holds e.mu.
func (e *Engine) synAgainLocked(w *watchInfo, p packet) bool {
	if p.flags&(tcpSYN|tcpACK) != tcpSYN {
		return false
	}
	id := synID{p.sport, p.seq}
	if _, seen := w.syns[id]; seen {
		return true
	}
	if w.syns == nil {
		w.syns = map[synID]struct{}{}
	}
	w.syns[id] = struct{}{}
	return false
}

// kernelResent counts a SYN the kernel sent again on a probe's behalf:
// a packet on the wire like any other, in packets_sent and the rate
// meter, and apart in kernel_resent.
func (e *Engine) kernelResent(now time.Time) {
	e.sent.Add(1)
	e.resent.Add(1)
	e.sendMu.Lock()
	// The tap reads late: keep the meter's times in order.
	e.meter.Add(maxTime(now, e.meter.last), 1)
	e.sendMu.Unlock()
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// ourTCPPort reports whether p is one of the SYN probes' source ports.
func (e *Engine) ourTCPPort(p uint16) bool {
	return p != 0 && slices.Contains(e.tcpPorts, p)
}

// count records a reply addressed to our probes: matched (it decided a
// probe), a duplicate (it carries our cookie but its probe was already
// decided: a late answer to a retry, a retransmitted SYN-ACK), or
// unmatched (it answers nothing we sent). All are kept as evidence.
func (e *Engine) count(matched, genuine bool, now time.Time, b []byte) {
	switch {
	case matched:
	case genuine:
		e.duplicates.Add(1)
	default:
		e.unmatched.Add(1)
	}
	e.evidence(now, b)
}

func (e *Engine) evidence(now time.Time, b []byte) {
	if e.cfg.Evidence != nil {
		e.cfg.Evidence.Write(now, b)
	}
}

// matchTCP classifies an answer to a SYN: SYN-ACK is open, RST is closed.
// Either must acknowledge our cookie.
func (e *Engine) matchTCP(p packet, b []byte, now time.Time) {
	k := probeKey{p.src, protoTCP, p.sport}
	e.mu.Lock()
	en, ok := e.pending[k]
	matched := false
	synack, rst := p.flags&(tcpSYN|tcpACK) == tcpSYN|tcpACK, p.flags&tcpRST != 0
	genuine := p.ack == e.cookie(k)+1 && (synack || rst)
	if ok && en.kind == KindTCPSyn && genuine {
		if synack {
			matched = e.finishLocked(en, StateOpen, ReasonSynAck, now, p.ttl, nil)
		} else {
			matched = e.finishLocked(en, StateClosed, ReasonRST, now, p.ttl, nil)
		}
	}
	e.mu.Unlock()
	e.count(matched, genuine, now, b)
}

// matchICMP handles echo replies and ICMP errors quoting our probes.
func (e *Engine) matchICMP(p packet, b []byte, now time.Time) {
	echoReply := (p.proto == protoICMP && p.icmpType == 0) || (p.proto == protoICMPv6 && p.icmpType == 129)
	if echoReply {
		if p.echoID != e.echoID {
			return // someone else's ping
		}
		k := probeKey{p.src, p.proto, 0}
		e.mu.Lock()
		en, ok := e.pending[k]
		genuine := p.echoSeq == uint16(e.cookie(k))
		matched := ok && genuine && e.finishLocked(en, StateOpen, ReasonEchoReply, now, p.ttl, nil)
		e.mu.Unlock()
		e.count(matched, genuine, now, b)
		return
	}
	if !p.hasInner {
		return // other ICMP (including our own echo requests on loopback)
	}
	q := p.inner
	st, why := classifyICMP(p.proto, q.proto, p.icmpType, p.icmpCode)
	ic := &ICMP{Type: int(p.icmpType), Code: int(p.icmpCode), From: p.src.String()}
	var k probeKey
	var check func(*entry) bool
	genuine := false // carries our cookie
	switch {
	case q.proto == protoTCP && e.ourTCPPort(q.sport):
		k = probeKey{q.dst, protoTCP, q.dport}
		genuine = q.seq == e.cookie(k)
		check = func(en *entry) bool { return en.kind == KindTCPSyn && genuine }
	case q.proto == protoUDP && q.sport == e.udpPort && e.udpPort != 0:
		k = probeKey{q.dst, protoUDP, q.dport}
		check = func(en *entry) bool { return en.kind == KindUDP }
	case (q.proto == protoICMP || q.proto == protoICMPv6) && q.echoID == e.echoID:
		k = probeKey{q.dst, q.proto, 0}
		genuine = q.echoSeq == uint16(e.cookie(k))
		check = func(en *entry) bool { return genuine }
	case q.proto == protoTCP:
		// A connect-based probe's SYN: remember the ICMP error so the
		// dial error can be refined with the exact type and code.
		e.mu.Lock()
		w, ok := e.watch[probeKey{q.dst, protoTCP, q.dport}]
		if ok && w.icmp == nil {
			w.icmp, w.st, w.why = ic, st, why
		}
		e.mu.Unlock()
		if ok {
			e.evidence(now, b)
		}
		return
	default:
		e.unmatched.Add(1)
		return
	}
	e.mu.Lock()
	en, ok := e.pending[k]
	matched := ok && check(en) && e.finishLocked(en, st, why, now, p.ttl, ic)
	e.mu.Unlock()
	e.count(matched, genuine, now, b)
}
