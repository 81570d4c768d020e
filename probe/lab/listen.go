package lab

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"sync"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// connTimeout bounds how long a lab listener keeps one TCP connection, so a
// scanner that never closes cannot pin goroutines.
const connTimeout = 3 * time.Second

// maxConns bounds concurrent TCP connections per listener; beyond it new
// connections are closed at once (the port still answered the SYN).
const maxConns = 512

// services is the set of running listeners of one namespace.
type services struct {
	closers []io.Closer
	wg      sync.WaitGroup
}

// Close stops every listener and waits for their goroutines.
func (s *services) Close() error {
	var errs []error
	for _, c := range s.closers {
		if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

// startServices opens every listener inside namespace ns, for IPv4 and
// IPv6, and serves them from ordinary goroutines (the sockets stay in ns).
func startServices(ns string, list []Service) (io.Closer, error) {
	s := &services{}
	// One certificate for every TLS port, made before any listener runs:
	// the serving goroutines only read it.
	var tlsConf *tls.Config
	for _, svc := range list {
		if svc.Kind == TLS {
			c, err := selfSigned()
			if err != nil {
				return nil, err
			}
			tlsConf = c
			break
		}
	}
	err := Do(ns, func() error {
		for _, svc := range list {
			for _, fam := range []string{"4", "6"} {
				switch svc.Proto {
				case TCP:
					ln, err := net.Listen("tcp"+fam, fmt.Sprintf(":%d", svc.Port))
					if err != nil {
						return fmt.Errorf("listen tcp%s/%d: %w", fam, svc.Port, err)
					}
					s.closers = append(s.closers, ln)
					s.wg.Add(1)
					go func() { defer s.wg.Done(); serveTCP(ln, svc, tlsConf) }()
				case UDP:
					pc, err := net.ListenPacket("udp"+fam, fmt.Sprintf(":%d", svc.Port))
					if err != nil {
						return fmt.Errorf("listen udp%s/%d: %w", fam, svc.Port, err)
					}
					s.closers = append(s.closers, pc)
					rw, err := newDstConn(pc, fam == "4")
					if err != nil {
						return err
					}
					s.wg.Add(1)
					go func() { defer s.wg.Done(); serveUDP(rw, svc) }()
				default:
					return fmt.Errorf("service proto %q", svc.Proto)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return s, nil
}

// serveTCP accepts until the listener is closed.
func serveTCP(ln net.Listener, svc Service, tlsConf *tls.Config) {
	sem := make(chan struct{}, maxConns)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			c.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			handleTCP(c, svc, tlsConf)
		}()
	}
}

// handleTCP plays one connection: banner, silence or a TLS handshake, then
// drains what the peer sends until it closes or the deadline passes.
func handleTCP(c net.Conn, svc Service, tlsConf *tls.Config) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(connTimeout))
	switch svc.Kind {
	case Banner:
		if _, err := io.WriteString(c, svc.Banner); err != nil {
			return
		}
	case TLS:
		tc := tls.Server(c, tlsConf)
		if err := tc.Handshake(); err != nil {
			return
		}
		c = tc
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 1<<16))
}

// dstConn reads datagrams with the destination address they were sent to
// and answers from that address. With AnyIP a wildcard socket would
// otherwise answer from the link address and the scanner would see a reply
// from the wrong host.
type dstConn struct {
	read  func(b []byte) (n int, dst net.IP, src net.Addr, err error)
	write func(b []byte, from net.IP, to net.Addr) error
}

func newDstConn(pc net.PacketConn, v4 bool) (dstConn, error) {
	if v4 {
		p := ipv4.NewPacketConn(pc)
		if err := p.SetControlMessage(ipv4.FlagDst, true); err != nil {
			return dstConn{}, fmt.Errorf("IP_PKTINFO: %w", err)
		}
		return dstConn{
			read: func(b []byte) (int, net.IP, net.Addr, error) {
				n, cm, src, err := p.ReadFrom(b)
				if cm == nil {
					return n, nil, src, err
				}
				return n, cm.Dst, src, err
			},
			write: func(b []byte, from net.IP, to net.Addr) error {
				_, err := p.WriteTo(b, &ipv4.ControlMessage{Src: from}, to)
				return err
			},
		}, nil
	}
	p := ipv6.NewPacketConn(pc)
	if err := p.SetControlMessage(ipv6.FlagDst, true); err != nil {
		return dstConn{}, fmt.Errorf("IPV6_RECVPKTINFO: %w", err)
	}
	return dstConn{
		read: func(b []byte) (int, net.IP, net.Addr, error) {
			n, cm, src, err := p.ReadFrom(b)
			if cm == nil {
				return n, nil, src, err
			}
			return n, cm.Dst, src, err
		},
		write: func(b []byte, from net.IP, to net.Addr) error {
			_, err := p.WriteTo(b, &ipv6.ControlMessage{Src: from}, to)
			return err
		},
	}, nil
}

// serveUDP answers datagrams until the socket is closed.
func serveUDP(c dstConn, svc Service) {
	buf := make([]byte, 2048)
	for {
		n, dst, src, err := c.read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		var reply []byte
		switch svc.Kind {
		case DNS:
			reply = dnsReply(buf[:n])
		case NTP:
			reply = ntpReply(buf[:n], time.Now())
		default:
			continue // silent
		}
		_ = c.write(reply, dst, src)
	}
}

// dnsReply answers any datagram: a query it can parse gets NXDOMAIN with
// the question echoed, anything else FORMERR. Scanners choose different
// payloads (empty, a version.bind query...), and the lab's port 53 must be
// "open" to all of them.
func dnsReply(q []byte) []byte {
	const (
		flagQR     = 0x8000
		rcodeNX    = 3
		rcodeForm  = 1
		headerSize = 12
	)
	r := make([]byte, headerSize)
	if len(q) < headerSize {
		binary.BigEndian.PutUint16(r[2:], flagQR|rcodeForm)
		return r
	}
	copy(r[0:2], q[0:2]) // ID
	opcode := binary.BigEndian.Uint16(q[2:]) & 0x7800
	rd := binary.BigEndian.Uint16(q[2:]) & 0x0100
	qd := binary.BigEndian.Uint16(q[4:])
	end, ok := questionEnd(q)
	if qd != 1 || !ok {
		binary.BigEndian.PutUint16(r[2:], flagQR|opcode|rd|rcodeForm)
		return r
	}
	binary.BigEndian.PutUint16(r[2:], flagQR|opcode|rd|rcodeNX)
	binary.BigEndian.PutUint16(r[4:], 1)
	return append(r, q[headerSize:end]...)
}

// questionEnd returns the end offset of the single question of q.
func questionEnd(q []byte) (int, bool) {
	i := 12
	for range 128 { // at most 127 labels fit a name
		if i >= len(q) {
			return 0, false
		}
		l := int(q[i])
		if l == 0 {
			i++
			if i+4 > len(q) {
				return 0, false
			}
			return i + 4, true
		}
		if l&0xc0 != 0 {
			return 0, false // no compression in a question we accept
		}
		i += 1 + l
	}
	return 0, false
}

// ntpReply builds a 48-byte NTPv4 server packet (mode 4, stratum 2) whose
// origin timestamp echoes the request's transmit timestamp.
func ntpReply(q []byte, now time.Time) []byte {
	const ntpEpochOffset = 2208988800 // seconds from 1900 to 1970
	r := make([]byte, 48)
	r[0] = 0<<6 | 4<<3 | 4 // LI 0, VN 4, mode 4 (server)
	r[1] = 2               // stratum
	r[2] = 6               // poll
	r[3] = 0xec            // precision 2^-20
	copy(r[12:16], "LAB\x00")
	ts := func(t time.Time) uint64 {
		sec := uint64(t.Unix() + ntpEpochOffset)
		frac := uint64(t.Nanosecond()) << 32 / 1e9
		return sec<<32 | frac
	}
	binary.BigEndian.PutUint64(r[16:], ts(now)) // reference
	if len(q) >= 48 {
		copy(r[24:32], q[40:48]) // origin = client's transmit
	}
	binary.BigEndian.PutUint64(r[32:], ts(now)) // receive
	binary.BigEndian.PutUint64(r[40:], ts(now)) // transmit
	return r
}

// selfSigned makes a throwaway ECDSA certificate for the lab's TLS ports.
func selfSigned() (*tls.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tls key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "lab.fiq.test", Organization: []string{"FirewallIQ lab"}},
		DNSNames:     []string{"lab.fiq.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("tls cert: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS12,
	}, nil
}
