package siem

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Outgoing is one rendered event on its way to a destination.
type Outgoing struct {
	Seq int64
	// Payload is the RFC 5424 message for syslog kinds (unframed) and the
	// JSON body for webhooks.
	Payload []byte
}

// Sender delivers rendered events to one destination, in order.
type Sender interface {
	// Send delivers msgs in order and returns how many leading messages
	// are known delivered. Stream senders deliver all or none.
	Send(ctx context.Context, msgs []Outgoing) (int, error)
	// Close releases the connection.
	Close() error
}

// ErrUnconfirmed means the connection broke right after a write, so the
// receiver may or may not have the batch; the worker sends it again.
var ErrUnconfirmed = errors.New("siem: connection closed after write; delivery unconfirmed")

// NetTimeout bounds one dial, write or HTTP exchange. Network deadlines are
// wall-clock by nature, so they use the real clock, not the injected one.
const NetTimeout = 10 * time.Second

// dialSender builds the sender for d (whose secrets are loaded).
func dialSender(d Destination, m Meta, now func() time.Time, settle time.Duration) (Sender, error) {
	switch d.Kind {
	case KindUDP:
		return &udpSender{addr: d.Address}, nil
	case KindTCP:
		dialer := &net.Dialer{Timeout: NetTimeout}
		return &streamSender{settle: settle, dial: func(ctx context.Context) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", d.Address)
		}}, nil
	case KindTLS:
		cfg, err := tlsConfig(d)
		if err != nil {
			return nil, err
		}
		dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: NetTimeout}, Config: cfg}
		return &streamSender{settle: settle, dial: func(ctx context.Context) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", d.Address)
		}}, nil
	case KindWebhook:
		cfg, err := tlsConfig(d)
		if err != nil {
			return nil, err
		}
		tr := &http.Transport{TLSClientConfig: cfg, TLSHandshakeTimeout: NetTimeout, ResponseHeaderTimeout: NetTimeout, Proxy: nil}
		return &webhookSender{url: d.Address, key: d.HMACKey, appliance: m.ApplianceID, now: now,
			client: &http.Client{Transport: tr, Timeout: NetTimeout,
				// A redirect would send the signed event somewhere the
				// operator did not configure.
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
	}
	return nil, fmt.Errorf("%w: kind %q", ErrInvalidDestination, d.Kind)
}

// tlsConfig pins d's CA (when given) and adds its client certificate.
func tlsConfig(d Destination) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: d.ServerName}
	if len(d.CAPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(d.CAPEM) {
			return nil, fmt.Errorf("%w: CA holds no certificate", ErrInvalidDestination)
		}
		// Only this pool: the system roots are not trusted for a pinned
		// destination, so a public CA cannot vouch for an impostor.
		cfg.RootCAs = pool
	}
	if len(d.ClientCertPEM) > 0 {
		cert, err := tls.X509KeyPair(d.ClientCertPEM, d.ClientKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("%w: client certificate: %w", ErrInvalidDestination, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// udpSender sends one message per datagram (RFC 5426). UDP gives no
// delivery guarantee; it is offered because many SIEMs listen only there.
type udpSender struct {
	addr string
	conn net.Conn
}

func (s *udpSender) Send(ctx context.Context, msgs []Outgoing) (int, error) {
	if s.conn == nil {
		c, err := (&net.Dialer{Timeout: NetTimeout}).DialContext(ctx, "udp", s.addr)
		if err != nil {
			return 0, fmt.Errorf("udp dial: %w", err)
		}
		s.conn = c
	}
	for i, m := range msgs {
		_ = s.conn.SetWriteDeadline(time.Now().Add(NetTimeout))
		// A connected UDP socket reports an earlier ICMP port unreachable
		// as ECONNREFUSED here, which at least catches a stopped receiver.
		if _, err := s.conn.Write(m.Payload); err != nil {
			s.Close()
			return i, fmt.Errorf("udp send: %w", err)
		}
	}
	return len(msgs), nil
}

func (s *udpSender) Close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

// streamSender sends octet-counted frames over TCP or TLS.
//
// A successful write only means the kernel took the bytes. A receiver that
// closed its end (rsyslog stopping) makes the next write vanish into a reset,
// so the sender checks the connection before writing and again, after a
// short settle time, after writing; if it broke, the batch is reported
// unconfirmed and sent again on a new connection.
//
// That check cannot see bytes the receiver accepted into its socket buffer
// but never read before it stopped: rsyslog on SIGTERM closes its listener
// with them unread, and the kernel discards them. So the sender keeps the
// tail of what it wrote (at most replayMessages events, replayBytes bytes)
// and writes it again first on every new connection after the first. The
// receiver sees those events twice; each carries its sequence number, on
// which SIEMs deduplicate (docs/siem.md).
type streamSender struct {
	dial   func(context.Context) (net.Conn, error)
	settle time.Duration
	conn   net.Conn
	// tail is what was last written, replayed on reconnect.
	tail      []Outgoing
	tailBytes int
}

// The replayed tail's bounds: far more than a receiver's socket buffer
// holds of our messages (a few hundred bytes each), small enough that a
// reconnect costs little.
const (
	replayMessages = 1024
	replayBytes    = 1 << 20
)

func (s *streamSender) Send(ctx context.Context, msgs []Outgoing) (int, error) {
	if s.conn != nil && !alive(s.conn) {
		s.Close()
	}
	var buf bytes.Buffer
	if s.conn == nil {
		c, err := s.dial(ctx)
		if err != nil {
			return 0, fmt.Errorf("connect: %w", err)
		}
		s.conn = c
		for _, m := range s.tail {
			buf.Write(OctetFrame(m.Payload))
		}
	}
	for _, m := range msgs {
		buf.Write(OctetFrame(m.Payload))
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(NetTimeout))
	if _, err := s.conn.Write(buf.Bytes()); err != nil {
		s.Close()
		return 0, fmt.Errorf("write: %w", err)
	}
	if s.settle > 0 {
		t := time.NewTimer(s.settle)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		case <-t.C:
		}
	}
	if !alive(s.conn) {
		s.Close()
		return 0, ErrUnconfirmed
	}
	s.remember(msgs)
	return len(msgs), nil
}

// remember appends msgs to the replay tail and trims it to its bounds.
func (s *streamSender) remember(msgs []Outgoing) {
	for _, m := range msgs {
		s.tail = append(s.tail, m)
		s.tailBytes += len(m.Payload)
	}
	drop := 0
	for len(s.tail)-drop > replayMessages || (s.tailBytes > replayBytes && len(s.tail)-drop > 1) {
		s.tailBytes -= len(s.tail[drop].Payload)
		drop++
	}
	if drop > 0 {
		s.tail = append([]Outgoing(nil), s.tail[drop:]...)
	}
}

func (s *streamSender) Close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

// alive reports whether the receiver still holds the connection open. A
// syslog receiver never sends, so a read that times out means "open", and
// EOF or a reset means it closed its end.
func alive(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
	defer c.SetReadDeadline(time.Time{})
	var b [1]byte
	_, err := c.Read(b[:])
	if err == nil {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// webhookSender POSTs one signed JSON event per request.
type webhookSender struct {
	url       string
	key       []byte
	appliance string
	now       func() time.Time
	client    *http.Client
}

func (s *webhookSender) Send(ctx context.Context, msgs []Outgoing) (int, error) {
	for i, m := range msgs {
		if err := s.post(ctx, m); err != nil {
			return i, err
		}
	}
	return len(msgs), nil
}

func (s *webhookSender) post(ctx context.Context, m Outgoing) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(m.Payload))
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	ts := s.now().Unix()
	nonce, err := newNonce()
	if err != nil {
		return fmt.Errorf("webhook nonce: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "FirewallIQ-SIEM/1")
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderNonce, nonce)
	req.Header.Set(HeaderSignature, Sign(s.key, ts, nonce, m.Payload))
	req.Header.Set(HeaderSeq, strconv.FormatInt(m.Seq, 10))
	req.Header.Set(HeaderAppliance, s.appliance)
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook: HTTP %d", resp.StatusCode)
	}
	return nil
}

func (s *webhookSender) Close() error {
	s.client.CloseIdleConnections()
	return nil
}
