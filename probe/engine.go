package probe

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"math"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"firewalliq/probe/safety"
)

// Engine errors.
var (
	// ErrRateAboveCap is returned when the requested rate exceeds the
	// smaller of the profile cap and the scope's max_pps. The engine
	// refuses; it never clamps silently.
	ErrRateAboveCap = errors.New("requested rate above cap")
	// ErrConfig is an invalid engine configuration.
	ErrConfig = errors.New("invalid probe configuration")
	// ErrOutOfScope is returned by the send path for a destination outside
	// the scope. The packet is not sent.
	ErrOutOfScope = errors.New("destination outside scope")
	// ErrTooManyTargets means a scan names more targets than the
	// compiled-in profile's max_targets. It is refused before the first
	// packet when Config.TargetCount says so, and the planner stops the
	// scan if the targets run past the cap anyway.
	ErrTooManyTargets = errors.New("more targets than the safety profile allows per scan")
)

// Containment is the scope's containment set, checked for every packet on
// the send path. *scope.Scope satisfies it.
type Containment interface {
	Contains(netip.Addr) bool
}

// Limits are the rate numbers the pacer is built from. New checks them
// against the compiled-in safety profile, which it loads and verifies
// itself: a caller may ask for less than the profile, never more.
type Limits struct {
	Profile   int // the global cap, pps (0: the profile's; above the profile's is refused)
	Scope     int // the scope's max_pps (0: no scope limit)
	Requested int // the operator's rate (0: the cap)
	PerHost   int // the per-host cap, pps (0: the profile's; above the profile's is refused)
}

// Cap is min(Profile, Scope), the most a scan may ask for.
func (l Limits) Cap() int {
	c := l.Profile
	if l.Scope > 0 && l.Scope < c {
		c = l.Scope
	}
	return c
}

// Effective returns the rate the pacer enforces: the requested rate, or the
// cap when none was requested. A request above the cap is refused.
func (l Limits) Effective() (int, error) {
	c := l.Cap()
	if c <= 0 {
		return 0, fmt.Errorf("%w: profile cap %d pps", ErrConfig, l.Profile)
	}
	switch {
	case l.Requested < 0:
		return 0, fmt.Errorf("%w: rate %d", ErrConfig, l.Requested)
	case l.Requested == 0:
		return c, nil
	case l.Requested > c:
		return 0, fmt.Errorf("%w: %d pps requested, cap is %d pps (profile %d, scope %d)", ErrRateAboveCap, l.Requested, c, l.Profile, l.Scope)
	}
	return l.Requested, nil
}

// Config configures one scan. Zero values get the documented defaults.
type Config struct {
	// ScanID names the scan in evidence and summaries.
	ScanID string
	// Targets yields each target once. Targets outside Scope are refused
	// by the planner and counted.
	Targets iter.Seq[netip.Addr]
	// TargetCount is the number of targets, for progress (0: unknown).
	TargetCount uint64
	// Ports are the TCP and UDP ports to probe.
	Ports []Port
	// Kinds are the probe kinds to run.
	Kinds []Kind
	// Scope is checked by the planner and again for every packet on the
	// send path. Required.
	Scope Containment
	// Limits are the rate caps.
	Limits Limits
	// Retries is how many times an unanswered probe is sent again
	// (default 2; -1 for none). Retries spend the same pacer budget.
	Retries int
	// Timeout is the longest wait for an answer to each attempt
	// (default 1 s). Raw probes adapt it to the measured round-trip time
	// (see rttEstimator), never below MinTimeout nor above Timeout.
	Timeout time.Duration
	// MinTimeout is the floor of the adaptive timeout (default 100 ms,
	// at most Timeout).
	MinTimeout time.Duration
	// ReadTimeout bounds a banner read or TLS handshake (default 3 s).
	ReadTimeout time.Duration
	// UDPPayloads are the allowed UDP payload names (default all:
	// empty, dns-query, ntp-client).
	UDPPayloads []string
	// BatchTargets is the number of targets per batch, the unit of
	// checkpoints and resume (default: about one second of sending at the
	// rate, 16 to 4096 targets).
	BatchTargets int
	// Concurrency bounds connect-based probes in flight (default 128).
	Concurrency int
	// NoRaw makes the engine behave as without CAP_NET_RAW: tcp-syn runs
	// as tcp-connect (recorded in each result's fallback_from).
	NoRaw bool
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Results receives every result, batch by batch in plan order.
	Results func(Result) error
	// Evidence, if not nil, receives every probe packet sent and every
	// reply.
	Evidence *Evidence
	// Checkpoint, if not nil, is called after the results of batch
	// next-1 were delivered: batches before next are complete.
	Checkpoint func(next int) error
	// ResumeBatch skips batches before it (they were completed by an
	// earlier run, see Checkpoint).
	ResumeBatch int
	// Progress, if not nil, is called about four times a second.
	Progress func(Progress)
	// Shared, if not nil, is the appliance-wide pacer: every packet also
	// needs a slot from it, so all engines sharing it stay together under
	// the profile's global and per-host caps. Its clock must be Now.
	Shared *SharedPacer
}

// applyProfile fills cfg's unset caps and payloads from prof and refuses
// anything prof does not allow. Nothing is clamped.
func applyProfile(cfg *Config, prof safety.Profile) error {
	l := &cfg.Limits
	switch {
	case l.Profile == 0:
		l.Profile = prof.GlobalPPS
	case l.Profile > prof.GlobalPPS:
		return fmt.Errorf("%w: global cap %d pps, the compiled-in profile %s allows %d", ErrRateAboveCap, l.Profile, prof.ID, prof.GlobalPPS)
	}
	switch {
	case l.PerHost == 0:
		l.PerHost = prof.PerHostPPS
	case l.PerHost > prof.PerHostPPS:
		return fmt.Errorf("%w: per-host cap %d pps, the compiled-in profile %s allows %d", ErrRateAboveCap, l.PerHost, prof.ID, prof.PerHostPPS)
	}
	for _, k := range cfg.Kinds {
		if !prof.Allows(safety.Kind(k)) {
			return fmt.Errorf("%w: probe kind %q is not allowed by the compiled-in profile %s", ErrConfig, k, prof.ID)
		}
	}
	if cfg.UDPPayloads == nil {
		cfg.UDPPayloads = append([]string(nil), prof.UDPPayloads...)
	}
	for _, p := range cfg.UDPPayloads {
		if !prof.AllowsPayload(p) {
			return fmt.Errorf("%w: UDP payload %q is not allowed by the compiled-in profile %s", ErrConfig, p, prof.ID)
		}
	}
	return nil
}

// Progress is a snapshot of a running scan.
type Progress struct {
	Sent     uint64  // packets sent
	Done     uint64  // probes finished
	Total    uint64  // probes planned (estimate; 0: unknown)
	Rate     float64 // packets per second over the last interval
	Cap      int     // the enforced rate
	Elapsed  time.Duration
	Refused  uint64
	Retries  uint64
	InFlight int
}

// Engine runs one scan. Build it with New, run it once with Run.
type Engine struct {
	cfg     Config
	rate    int
	pacer   gate
	raw     bool
	kinds   []Kind
	payload []string

	// key is the secret behind SYN sequence numbers and echo sequence
	// numbers: a reply must echo it to be believed.
	key    [2]uint64
	echoID uint16

	// plannerContains is the planner's scope check. It is the scope; tests
	// replace it to push a destination past the planner and prove the send
	// path still refuses it.
	plannerContains func(netip.Addr) bool
	// maxTargets is the profile's per-scan target cap, enforced by the
	// planner whatever TargetCount said.
	maxTargets uint64

	mu      sync.Mutex
	pending map[probeKey]*entry
	watch   map[probeKey]*watchInfo
	router  *router

	conn packetConn
	tap  *tap
	// tcpPorts are the reserved source ports of SYN probes, one per
	// attempt in turn (see synPorts).
	tcpPorts []uint16
	udpPort  uint16

	sendMu  sync.Mutex
	meter   WindowMeter
	sent    atomic.Uint64
	retries atomic.Uint64
	refused atomic.Uint64
	// refusedTargets counts targets the planner refused.
	refusedTargets atomic.Uint64
	unmatched      atomic.Uint64
	duplicates     atomic.Uint64
	// drained is when the tap last found its socket empty (unix ns).
	drained atomic.Int64
	// tapLagged counts verdicts given without the tap having caught up.
	tapLagged atomic.Uint64
	// resent counts SYNs the kernel retransmitted for connect-based
	// probes (see synAgainLocked).
	resent atomic.Uint64
	ran    atomic.Bool
	// lossSeen is set once a probe was answered only on a retry (see
	// retryBudget).
	lossSeen    atomic.Bool
	malformed   atomic.Uint64
	done        atomic.Uint64
	refusedList []string // first few refused destinations (sendMu)
	// inflight is how many batches may be planned ahead of the oldest
	// unfinished one.
	inflight int
	// rtt estimates the round-trip time of kernel-answered raw probes
	// (tcp-syn, icmp-echo) and rttUDP that of UDP services' answers,
	// which include the application's own latency (under mu).
	rtt, rttUDP rttEstimator
	// states counts the results delivered by this run (finaliser only).
	states map[State]int
}

// probeKey identifies a probe on the wire: target, protocol, port.
type probeKey struct {
	addr  netip.Addr
	proto uint8
	port  uint16
}

// watchInfo is what the tap learned about a connect-based probe's
// connection: the TTL of the target's answer and any ICMP error.
type watchInfo struct {
	ttl  uint8
	icmp *ICMP
	st   State
	why  string
	refs int // connect probes using this watch
	// syns holds the SYNs of this watch's connections seen on the tap,
	// by source port and sequence number, to tell the kernel's
	// retransmission of a SYN from a new connection's SYN.
	syns map[synID]struct{}
}

// synID names one SYN of a connect-based probe: the kernel retransmits a
// SYN with the same source port and sequence number.
type synID struct {
	sport uint16
	seq   uint32
}

// entry is one planned probe.
type entry struct {
	kind     Kind
	fallback Kind
	key      probeKey
	src      netip.Addr
	b        *batch
	attempts int
	last     time.Time
	fin      bool
	res      Result
}

// batch is a group of targets' probes, the unit of checkpoints.
type batch struct {
	index     int
	entries   []*entry
	remaining atomic.Int64
	done      chan struct{}
}

// New checks cfg against the compiled-in safety profile (loaded and
// verified here, so no caller can raise a cap) and returns an engine. It
// refuses a rate or per-host cap above the profile's or the scope's, kinds
// or UDP payloads the profile does not allow or that are off the closed
// list, and udp or icmp-echo without raw sockets.
func New(cfg Config) (*Engine, error) {
	prof, err := safety.Load()
	if err != nil {
		return nil, err
	}
	return newEngine(cfg, prof)
}

// newEngine is New with the profile given: New passes the verified,
// compiled-in one; only this package's tests pass another.
func newEngine(cfg Config, prof safety.Profile) (*Engine, error) {
	if err := applyProfile(&cfg, prof); err != nil {
		return nil, err
	}
	if cfg.Scope == nil {
		return nil, fmt.Errorf("%w: no scope", ErrConfig)
	}
	if cfg.Targets == nil {
		return nil, fmt.Errorf("%w: no targets", ErrConfig)
	}
	if len(cfg.Kinds) == 0 {
		return nil, fmt.Errorf("%w: no probe kinds", ErrConfig)
	}
	if prof.MaxTargets < 1 || cfg.TargetCount > uint64(prof.MaxTargets) {
		n := fmt.Sprint(cfg.TargetCount)
		if cfg.TargetCount == math.MaxUint64 {
			n = "2^64 or more" // a saturated count (scope.Scope.Size)
		}
		return nil, fmt.Errorf("%w: %s targets, the compiled-in profile %s allows %d", ErrTooManyTargets, n, prof.ID, prof.MaxTargets)
	}
	rate, err := cfg.Limits.Effective()
	if err != nil {
		return nil, err
	}
	if cfg.Limits.PerHost < 0 {
		return nil, fmt.Errorf("%w: per-host cap %d", ErrConfig, cfg.Limits.PerHost)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case cfg.Retries == 0:
		cfg.Retries = 2
	case cfg.Retries < 0:
		cfg.Retries = 0
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.MinTimeout <= 0 {
		cfg.MinTimeout = 100 * time.Millisecond
	}
	cfg.MinTimeout = min(cfg.MinTimeout, cfg.Timeout)
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 3 * time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 128
	}
	if cfg.Results == nil {
		cfg.Results = func(Result) error { return nil }
	}
	e := &Engine{cfg: cfg, rate: rate, maxTargets: uint64(prof.MaxTargets), pending: map[probeKey]*entry{}, watch: map[probeKey]*watchInfo{}, router: newRouter(), states: map[State]int{}}
	e.plannerContains = e.sendable
	own, err := NewPacer(rate, cfg.Limits.PerHost, cfg.Now)
	if err != nil {
		return nil, err
	}
	e.pacer = gate{own: own, shared: cfg.Shared}
	e.raw = !cfg.NoRaw && canRaw()
	seen := map[Kind]bool{}
	for _, k := range cfg.Kinds {
		if !k.valid() {
			return nil, fmt.Errorf("%w: unknown probe kind %q", ErrConfig, k)
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		if !e.raw && (k == KindUDP || k == KindICMPEcho) {
			return nil, fmt.Errorf("%w: %s needs raw sockets: %w", ErrConfig, k, ErrNoRaw)
		}
		e.kinds = append(e.kinds, k)
	}
	for _, p := range cfg.Ports {
		if p.Proto != "tcp" && p.Proto != "udp" {
			return nil, fmt.Errorf("%w: port protocol %q", ErrConfig, p.Proto)
		}
	}
	// Batches: about a second of sending each, and enough of them in
	// flight that the sender never waits for the oldest one's replies and
	// retries (every attempt's timeout plus a margin).
	tokens := e.tokensPerTarget()
	if e.cfg.BatchTargets <= 0 {
		e.cfg.BatchTargets = min(max(rate/max(tokens, 1), 16), 4096)
	}
	batchSecs := float64(e.cfg.BatchTargets*max(tokens, 1)) / float64(rate)
	wait := float64(e.cfg.Retries+1)*e.cfg.Timeout.Seconds() + 2
	e.inflight = min(max(int(wait/batchSecs)+2, 2), 64)
	var kb [18]byte
	if _, err := rand.Read(kb[:]); err != nil {
		return nil, fmt.Errorf("probe key: %w", err)
	}
	e.key = [2]uint64{binary.LittleEndian.Uint64(kb[:8]), binary.LittleEndian.Uint64(kb[8:16])}
	e.echoID = binary.LittleEndian.Uint16(kb[16:])
	return e, nil
}

// Rate is the rate the engine enforces, packets per second.
func (e *Engine) Rate() int { return e.rate }

// BatchTargets is the number of targets per batch, the unit of
// checkpoints: Config.BatchTargets, or the default chosen by New. A
// resumed scan must run with the same (see Checkpoint.BatchTargets).
func (e *Engine) BatchTargets() int { return e.cfg.BatchTargets }

// Raw reports whether the engine uses raw sockets (CAP_NET_RAW).
func (e *Engine) Raw() bool { return e.raw }

// cookie is the value a reply must echo (SYN sequence number, echo
// sequence number): a keyed mix of destination, protocol and port, so a
// forged or stray reply is recognised without storing per-packet state.
func (e *Engine) cookie(k probeKey) uint32 {
	a := k.addr.As16()
	h := e.key[0] ^ binary.LittleEndian.Uint64(a[:8])
	h = mix(h) ^ binary.LittleEndian.Uint64(a[8:]) ^ e.key[1]
	h = mix(h ^ uint64(k.proto)<<16 ^ uint64(k.port))
	return uint32(h ^ h>>32)
}

// mix is the splitmix64 finaliser.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// isRawKind reports whether a kind goes through the raw sender.
func (e *Engine) isRawKind(k Kind) bool {
	return e.raw && (k == KindTCPSyn || k == KindUDP || k == KindICMPEcho)
}

// kindsToRun returns the kinds after the no-raw fallback: tcp-syn becomes
// tcp-connect (unless tcp-connect runs anyway).
func (e *Engine) kindsToRun() []struct{ k, from Kind } {
	var out []struct{ k, from Kind }
	for _, k := range e.kinds {
		if k == KindTCPSyn && !e.raw {
			if slices.Contains(e.kinds, KindTCPConnect) {
				continue
			}
			out = append(out, struct{ k, from Kind }{KindTCPConnect, KindTCPSyn})
			continue
		}
		out = append(out, struct{ k, from Kind }{k, ""})
	}
	return out
}

// tokensPerTarget is how many pacer slots each target's probes take.
func (e *Engine) tokensPerTarget() int {
	n := 0
	for _, kk := range e.kindsToRun() {
		cost := 1
		if !e.isRawKind(kk.k) {
			cost = connectCost(kk.k)
		}
		if kk.k == KindICMPEcho {
			n += cost
			continue
		}
		for _, p := range e.cfg.Ports {
			if p.Proto == kk.k.proto() {
				n += cost
			}
		}
	}
	return n
}

// probesPerTarget is how many probes each target gets.
func (e *Engine) probesPerTarget() int {
	n := 0
	for _, kk := range e.kindsToRun() {
		if kk.k == KindICMPEcho {
			n++
			continue
		}
		for _, p := range e.cfg.Ports {
			if p.Proto == kk.k.proto() {
				n++
			}
		}
	}
	return n
}

// Run runs the scan until every probe is finished or ctx ends. It returns
// the summary in both cases; on cancellation the error is ctx's, and the
// batches completed so far are checkpointed, so a later run with
// ResumeBatch can continue. Sending stops within 100 ms of cancellation.
func (e *Engine) Run(ctx context.Context) (Summary, error) {
	start := e.cfg.Now()
	if !e.ran.CompareAndSwap(false, true) {
		return Summary{}, fmt.Errorf("%w: an engine runs once; build another with New", ErrConfig)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The planner looks up sources until it stops: close the router only
	// after every goroutine is done (defers run last-in, first-out).
	defer e.router.close()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	// stopTap ends the capture goroutine (a no-op until one runs).
	stopTap := func() {}
	needRaw := false
	needConnect := false
	for _, kk := range e.kindsToRun() {
		if e.isRawKind(kk.k) {
			needRaw = true
		} else {
			needConnect = true
		}
	}
	if e.raw {
		if needRaw && e.conn == nil {
			c, err := openRaw()
			if err != nil {
				return e.summary(start), err
			}
			e.conn = c
		}
		if e.conn != nil {
			defer e.conn.close()
		}
		tp, up, closer, err := reservePorts()
		if err != nil {
			return e.summary(start), err
		}
		defer closer()
		e.tcpPorts, e.udpPort = tp, up
		t, err := openTap(e.tcpPorts, e.udpPort, needConnect, needConnect && e.cfg.Evidence != nil)
		if err != nil {
			return e.summary(start), err
		}
		e.tap = t
		tapDone := make(chan struct{})
		var once sync.Once
		stopTap = func() { once.Do(func() { close(tapDone) }) }
		wg.Add(1)
		go func() { defer wg.Done(); e.readTap(ctx, tapDone) }()
		defer stopTap()
	}

	rawIn := make(chan *entry, 4096)
	connIn := make(chan *entry, 1024)
	batches := make(chan *batch, e.inflight)
	planErr := make(chan error, 1)

	// Planner.
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(rawIn)
		defer close(connIn)
		defer close(batches)
		planErr <- e.plan(ctx, batches, rawIn, connIn)
	}()
	// Raw sender.
	senderDone := make(chan struct{})
	wg.Add(1)
	go func() { defer wg.Done(); defer close(senderDone); e.sendLoop(ctx, rawIn) }()
	// Connect workers.
	for range e.cfg.Concurrency {
		wg.Add(1)
		go func() { defer wg.Done(); e.connectWorker(ctx, connIn) }()
	}
	// Progress.
	if e.cfg.Progress != nil {
		wg.Add(1)
		go func() { defer wg.Done(); e.progressLoop(ctx, start) }()
	}

	// Finaliser: deliver batches in order.
	var runErr error
	for b := range batches {
		select {
		case <-b.done:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			runErr = ctx.Err()
			break
		}
		now := e.cfg.Now()
		for _, en := range b.entries {
			if en.res.Time.IsZero() {
				en.res.Time = now
			}
			if err := e.cfg.Results(en.res); err != nil {
				runErr = err
				break
			}
			e.states[en.res.State]++
		}
		if runErr != nil {
			break
		}
		if e.cfg.Checkpoint != nil {
			if err := e.cfg.Checkpoint(b.index + 1); err != nil {
				runErr = fmt.Errorf("checkpoint: %w", err)
				break
			}
		}
	}
	if runErr == nil {
		if err := <-planErr; err != nil {
			runErr = err
		}
	}
	if runErr == nil && ctx.Err() != nil {
		runErr = ctx.Err()
	}
	cancel()
	<-senderDone
	// Every goroutine ends before the summary is taken: a reply the tap
	// reads late must not reach the evidence after the summary counted it,
	// or the manifest's packet count and the pcapng would disagree.
	if e.tap != nil {
		// The tap reads what reached its socket before it closes (for at
		// most 250 ms): the last packets of the run belong in the
		// evidence and, for a SYN the kernel sent again, in the count.
		mark, until := e.cfg.Now(), time.Now().Add(250*time.Millisecond)
		for !e.tapReached(mark) && time.Now().Before(until) {
			time.Sleep(time.Millisecond)
		}
	}
	stopTap()
	wg.Wait()
	s := e.summary(start)
	if e.cfg.Progress != nil {
		e.cfg.Progress(e.progress(start, 0))
	}
	return s, runErr
}

// plan walks the targets in batches, refuses out-of-scope ones, and
// dispatches each batch's probes port-major (consecutive probes go to
// different hosts, which keeps per-host caps from stalling the stream).
func (e *Engine) plan(ctx context.Context, batches chan<- *batch, rawIn, connIn chan<- *entry) error {
	idx := 0
	var cur []netip.Addr
	var accepted uint64
	emit := func() error {
		defer func() { cur = cur[:0]; idx++ }()
		if idx < e.cfg.ResumeBatch {
			return nil
		}
		b := e.buildBatch(idx, cur)
		select {
		case batches <- b:
		case <-ctx.Done():
			return ctx.Err()
		}
		for _, en := range b.entries {
			ch := connIn
			if e.isRawKind(en.kind) {
				ch = rawIn
			}
			select {
			case ch <- en:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	for a := range e.cfg.Targets {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a = a.Unmap()
		if !e.plannerContains(a) {
			e.refusedTargets.Add(1)
			continue
		}
		if accepted++; accepted > e.maxTargets {
			return fmt.Errorf("%w: the targets run past %d", ErrTooManyTargets, e.maxTargets)
		}
		cur = append(cur, a)
		if len(cur) == e.cfg.BatchTargets {
			if err := emit(); err != nil {
				return err
			}
		}
	}
	if len(cur) > 0 {
		return emit()
	}
	return nil
}

func (e *Engine) buildBatch(idx int, targets []netip.Addr) *batch {
	b := &batch{index: idx, done: make(chan struct{})}
	add := func(k, from Kind, a netip.Addr, proto uint8, port uint16) {
		en := &entry{kind: k, fallback: from, key: probeKey{a, proto, port}, b: b}
		en.res = Result{Target: a.String(), Proto: k.proto(), Port: port, Probe: k, Fallback: from}
		if e.isRawKind(k) {
			src, err := e.source(a)
			if err != nil {
				en.fin = true
				en.res.State, en.res.Reason, en.res.Error = StateError, ReasonLocalError, err.Error()
			}
			en.src = src
		}
		b.entries = append(b.entries, en)
	}
	for _, kk := range e.kindsToRun() {
		if kk.k == KindICMPEcho {
			for _, a := range targets {
				proto := uint8(protoICMP)
				if a.Is6() {
					proto = protoICMPv6
				}
				add(kk.k, kk.from, a, proto, 0)
			}
			continue
		}
		for _, p := range e.cfg.Ports {
			if p.Proto != kk.k.proto() {
				continue
			}
			proto := uint8(protoTCP)
			if p.Proto == "udp" {
				proto = protoUDP
			}
			for _, a := range targets {
				add(kk.k, kk.from, a, proto, p.Number)
			}
		}
	}
	n := 0
	for _, en := range b.entries {
		if !en.fin {
			n++
		}
	}
	b.remaining.Store(int64(n))
	if n == 0 {
		close(b.done)
	}
	return b
}

// source returns the local address for dst (see router). It is looked up
// per target, not per prefix: policy routing may send neighbours out of
// different interfaces.
func (e *Engine) source(dst netip.Addr) (netip.Addr, error) {
	return e.router.source(dst)
}

// finish records the outcome of a probe once; later answers are ignored.
// It reports whether this call finished the probe. Callers hold e.mu.
func (e *Engine) finishLocked(en *entry, st State, reason string, at time.Time, ttl uint8, ic *ICMP) bool {
	if en.fin {
		return false
	}
	en.fin = true
	en.res.State, en.res.Reason = st, reason
	en.res.Retries = max(en.attempts-1, 0)
	if en.attempts > 1 && st != StateFiltered && st != StateOpenFiltered && st != StateError {
		// Answered, but not on the first attempt: packets get lost here.
		e.lossSeen.Store(true)
	}
	if st != StateFiltered && st != StateOpenFiltered && !en.last.IsZero() {
		rtt := at.Sub(en.last)
		en.res.RTTms = float64(rtt.Microseconds()) / 1000
		// Karn: only unambiguous samples (an answer to the only attempt),
		// and only kernel-answered kinds (see sendLoop's queues).
		if en.attempts == 1 && e.raw {
			switch {
			case en.kind == KindTCPSyn || en.kind == KindICMPEcho:
				e.rtt.add(rtt)
			case en.kind == KindUDP && reason == ReasonUDPResponse:
				e.rttUDP.add(rtt)
			}
		}
	}
	en.res.TTL = int(ttl)
	en.res.ICMP = ic
	en.res.Time = at
	// Only the raw kind's own entry: a connect-based probe of the same
	// target and port must not unhook a SYN probe still in flight.
	if e.pending[en.key] == en {
		delete(e.pending, en.key)
	}
	e.done.Add(1)
	if en.b.remaining.Add(-1) == 0 {
		close(en.b.done)
	}
	return true
}

func (e *Engine) progressLoop(ctx context.Context, start time.Time) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	var last uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s := e.sent.Load()
			e.cfg.Progress(e.progress(start, float64(s-last)*4))
			last = s
		}
	}
}

func (e *Engine) progress(start time.Time, rate float64) Progress {
	var total uint64
	if e.cfg.TargetCount > 0 {
		total = e.cfg.TargetCount * uint64(e.probesPerTarget())
	}
	e.mu.Lock()
	inflight := len(e.pending)
	e.mu.Unlock()
	return Progress{
		Sent: e.sent.Load(), Done: e.done.Load(), Total: total, Rate: rate, Cap: e.rate,
		Elapsed: e.cfg.Now().Sub(start), Refused: e.refused.Load(), Retries: e.retries.Load(), InFlight: inflight,
	}
}
