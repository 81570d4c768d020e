package probe

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// Pacer cost of the connect-based kinds: the packets we send per attempt
// (SYN, ACK, the client's share of the handshake, FIN and the ACKs of the
// server's data). The kernel builds these packets, so the engine reserves
// their slots up front; the estimate is on the high side so the cap holds.
const (
	costConnect = 3 // SYN, ACK, FIN
	costBanner  = 5 // SYN, ACK, ACKs of the banner, FIN
	costTLS     = 7 // SYN, ACK, ClientHello, ACKs, Finished, FIN
	// maxDialTimeout keeps a connect attempt below the kernel's first SYN
	// retransmission (1 s), so every SYN on the wire was paced by us. The
	// 150 ms margin covers scheduling delay on a loaded machine between the
	// deadline and the close (TCP_USER_TIMEOUT does not stop that
	// retransmission on Linux 6.18, checked).
	maxDialTimeout = 850 * time.Millisecond
)

func connectCost(k Kind) int {
	switch k {
	case KindBanner:
		return costBanner
	case KindTLSHello:
		return costTLS
	}
	return costConnect
}

// connectWorker runs connect-based probes (tcp-connect, banner,
// tls-hello) from in.
func (e *Engine) connectWorker(ctx context.Context, in <-chan *entry) {
	for en := range in {
		if ctx.Err() != nil {
			continue // drain so the planner can finish
		}
		e.runConnect(ctx, en)
	}
}

func (e *Engine) runConnect(ctx context.Context, en *entry) {
	k := en.key
	dst := netip.AddrPortFrom(k.addr, k.port)
	var w *watchInfo
	if e.tap != nil {
		// Probes of other connect kinds to the same address and port share
		// the watch (what the tap learns about the port holds for all).
		e.mu.Lock()
		w = e.watch[k]
		if w == nil {
			w = &watchInfo{}
			e.watch[k] = w
		}
		w.refs++
		e.mu.Unlock()
		defer func() {
			// Late packets of the closing handshake still get recorded
			// for a moment; then forget the connection.
			time.AfterFunc(500*time.Millisecond, func() {
				e.mu.Lock()
				w.refs--
				if w.refs == 0 && e.watch[k] == w {
					delete(e.watch, k)
				}
				e.mu.Unlock()
			})
		}()
	}
	for attempt := 0; attempt <= e.cfg.Retries; attempt++ {
		// The ticket of the SYN, stamped when connect starts: the last one
		// granted. The SYN leaves only after all of them, and the most
		// recent ticket is the one whose ring slot is still live when it is
		// stamped (with a small ring, the first ticket's slot has usually
		// been reused by other workers' grants, and the stamp is lost).
		var syn Ticket
		for range connectCost(en.kind) {
			tk, err := e.pacer.WaitTicket(ctx, k.addr)
			if err != nil {
				return
			}
			syn = tk
		}
		now := e.cfg.Now()
		e.mu.Lock()
		if attempt > 0 {
			e.retries.Add(1)
		}
		en.attempts++
		en.last = now
		e.mu.Unlock()
		st, why, err := e.connectOnce(ctx, en, dst, syn)
		if ctx.Err() != nil {
			return
		}
		if st == StateFiltered && attempt < e.cfg.Retries {
			continue
		}
		var ttl uint8
		var ic *ICMP
		if w != nil {
			if st == StateRejected || st == StateFiltered {
				// The kernel may report the ICMP error before the tap has
				// read it: give the tap a moment.
				e.waitICMP(ctx, w, 50*time.Millisecond)
			} else if st == StateClosed {
				// ECONNREFUSED is a RST or an ICMP port unreachable; the
				// tap saw the packet before the kernel failed the connect,
				// so once it has caught up it knows which.
				e.waitTap(ctx, e.cfg.Now(), 50*time.Millisecond)
			}
			e.mu.Lock()
			ttl, ic = w.ttl, w.icmp
			if ic != nil && (st == StateRejected || st == StateFiltered || st == StateClosed && w.why == ReasonICMPPortUnr) {
				// The tap saw an ICMP error quoting our SYN: keep its
				// exact type and code. This also catches errors the
				// kernel did not turn into a connect failure, and tells
				// an ICMP port unreachable (which the kernel reports as
				// ECONNREFUSED, like a RST) from a RST: it is a
				// firewall's REJECT, rejected as tcp-syn reports it.
				st, why = w.st, w.why
			}
			e.mu.Unlock()
		}
		at := e.cfg.Now()
		if ic == nil && w == nil {
			ic = en.res.ICMP // from the socket's error queue (no tap)
		}
		e.mu.Lock()
		if err != nil && st == StateError {
			en.res.Error = err.Error()
		}
		if st == StateFiltered || st == StateError {
			ttl = 0
		}
		e.finishLocked(en, st, why, at, ttl, ic)
		e.mu.Unlock()
		return
	}
}

// waitICMP waits up to d for the tap to record an ICMP error in w.
func (e *Engine) waitICMP(ctx context.Context, w *watchInfo, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		e.mu.Lock()
		got := w.icmp != nil
		e.mu.Unlock()
		if got || sleepCtx(ctx, time.Millisecond) != nil {
			return
		}
	}
}

// waitTap waits up to d for the tap to handle every packet that arrived
// before mark.
func (e *Engine) waitTap(ctx context.Context, mark time.Time, d time.Duration) {
	deadline := time.Now().Add(d)
	for !e.tapCaughtUp(mark, e.cfg.Now()) && time.Now().Before(deadline) {
		if sleepCtx(ctx, 200*time.Microsecond) != nil {
			return
		}
	}
}

// connectOnce makes one connection attempt and, for banner and tls-hello,
// reads what the server volunteers. It fills en.res.Banner / en.res.TLS.
func (e *Engine) connectOnce(ctx context.Context, en *entry, dst netip.AddrPort, syn Ticket) (State, string, error) {
	// The dial timeout adapts like the raw probes' (the kernel answers a
	// SYN either way), below the kernel's first SYN retransmission.
	e.mu.Lock()
	timeout := e.rtt.timeout(e.cfg.MinTimeout, min(e.cfg.Timeout, maxDialTimeout))
	e.mu.Unlock()
	var synAt time.Time
	// control runs after the socket exists and right before connect: the
	// last point before a SYN can leave. The send path's scope check for
	// connect-based probes lives here.
	control := func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !e.sendable(ap.Addr().Unmap()) {
			return fmt.Errorf("%w: %s", ErrOutOfScope, address)
		}
		e.sent.Add(1)
		now := e.cfg.Now()
		synAt = now
		e.pacer.Stamp(syn, now)
		e.sendMu.Lock()
		e.meter.Add(now, 1)
		e.sendMu.Unlock()
		return nil
	}
	var c net.Conn
	var err error
	if e.tap == nil {
		// No tap to see ICMP errors: have the kernel queue them on the
		// socket instead.
		var q *queuedICMP
		c, q, err = dialRecvErr(ctx, dst, timeout, control)
		// A RST queues nothing; an ICMP error (port unreachable included,
		// which the kernel also reports as ECONNREFUSED) is queued with
		// its type and code.
		if err != nil && q != nil {
			proto := uint8(protoICMP)
			if q.v6 {
				proto = protoICMPv6
			}
			st, why := classifyICMP(proto, protoTCP, q.typ, q.code)
			from := ""
			if q.from.IsValid() {
				from = q.from.Unmap().String()
			}
			en.res.ICMP = &ICMP{Type: int(q.typ), Code: int(q.code), From: from}
			return st, why, err
		}
	} else {
		d := net.Dialer{Timeout: timeout, Control: control}
		c, err = d.DialContext(ctx, "tcp", dst.String())
	}
	if (err == nil || errors.Is(err, syscall.ECONNREFUSED)) && !synAt.IsZero() {
		// A SYN-ACK or RST came back: an RTT sample (Karn: first attempt
		// only).
		e.mu.Lock()
		if en.attempts == 1 {
			e.rtt.add(e.cfg.Now().Sub(synAt))
		}
		e.mu.Unlock()
	}
	if err != nil {
		if errors.Is(err, ErrOutOfScope) {
			e.refuse(dst.Addr(), nil)
			return StateError, "out-of-scope-refused", err
		}
		st, why := dialState(err)
		return st, why, err
	}
	defer c.Close()
	// A cancelled scan must not wait out a banner read or a TLS handshake
	// (up to ReadTimeout), nor let the handshake send its next flight after
	// the cancellation: closing the connection ends both at once.
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	switch en.kind {
	case KindBanner:
		en.res.Banner = readBanner(c, e.cfg.ReadTimeout, e.cfg.Now)
	case KindTLSHello:
		info, err := tlsHello(c, e.cfg.ReadTimeout, e.cfg.Now)
		if err != nil {
			en.res.Error = cleanString(err.Error(), MaxField)
			return StateOpen, ReasonTLSFailed, nil
		}
		en.res.TLS = info
		return StateOpen, ReasonHandshake, nil
	}
	return StateOpen, ReasonConnected, nil
}

// dialState maps a failed connect to a state. ECONNREFUSED is the target's
// RST (closed); host/net unreachable come from ICMP errors (rejected; the
// tap, when present, supplies the exact type and code); a timeout is
// silence (filtered).
func dialState(err error) (State, string) {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return StateClosed, ReasonConnRefused
	case errors.Is(err, syscall.EHOSTUNREACH):
		return StateRejected, ReasonHostUnreach
	case errors.Is(err, syscall.ENETUNREACH):
		return StateRejected, ReasonNetUnreach
	case errors.Is(err, syscall.EACCES):
		// Linux's mapping of ICMPv6 administratively prohibited.
		return StateRejected, ReasonICMPProhib
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return StateFiltered, ReasonNoResponse
	}
	return StateError, ReasonLocalError
}

// readBanner reads what the server sends of its own accord within timeout.
// It sends nothing.
func readBanner(c net.Conn, timeout time.Duration, now func() time.Time) *Banner {
	_ = c.SetReadDeadline(now().Add(timeout))
	buf := make([]byte, MaxBannerRead+1)
	n := 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		n += m
		if err != nil || n > 0 && m == 0 {
			break
		}
		if n > 0 && n < len(buf) {
			// Give the server a short moment to finish a multi-packet
			// banner, then stop.
			_ = c.SetReadDeadline(now().Add(min(timeout, 200*time.Millisecond)))
		}
	}
	if n == 0 {
		return nil
	}
	trunc := n > MaxBannerRead
	n = min(n, MaxBannerRead)
	text, cut := Clean(buf[:n], MaxBannerText)
	return &Banner{Text: text, Bytes: n, Truncated: trunc || cut}
}

// tlsHello runs a TLS handshake over c to read the server's metadata and
// returns it. Certificates are not verified (we read, we do not trust);
// no application data is sent, and the caller closes the connection right
// after.
func tlsHello(c net.Conn, timeout time.Duration, now func() time.Time) (*TLS, error) {
	_ = c.SetDeadline(now().Add(timeout))
	tc := tls.Client(c, &tls.Config{
		InsecureSkipVerify: true, //nolint:gosec // metadata only; nothing is trusted or sent
		MinVersion:         tls.VersionTLS10,
	})
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	cs := tc.ConnectionState()
	info := &TLS{
		Version:     tls.VersionName(cs.Version),
		CipherSuite: tls.CipherSuiteName(cs.CipherSuite),
		ALPN:        cleanString(cs.NegotiatedProtocol, MaxField),
	}
	for i, cert := range cs.PeerCertificates {
		if i == maxChain {
			break
		}
		fp := sha256.Sum256(cert.Raw)
		ci := Cert{
			Subject:   cleanString(cert.Subject.String(), MaxField),
			Issuer:    cleanString(cert.Issuer.String(), MaxField),
			NotBefore: cert.NotBefore.UTC(),
			NotAfter:  cert.NotAfter.UTC(),
			SHA256:    hex.EncodeToString(fp[:]),
		}
		for j, n := range cert.DNSNames {
			if j == maxNames {
				break
			}
			ci.DNSNames = append(ci.DNSNames, cleanString(n, MaxField))
		}
		for j, ip := range cert.IPAddresses {
			if j == maxNames {
				break
			}
			ci.IPs = append(ci.IPs, ip.String())
		}
		info.Chain = append(info.Chain, ci)
	}
	return info, nil
}
