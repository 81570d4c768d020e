//go:build soak && linux

package soak

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"firewalliq/probe/lab"
)

// Hostile TCP services in the lab's target zone, on ports no default lab
// rule or service uses. Each answers on every address of the zone (the
// zone's AnyIP routes), so every scan target has them.
const (
	portHugeBanner   = 7001 // 4 MiB of banner, then close
	portBinaryBanner = 7002 // NUL, ANSI escapes, bidi overrides, invalid UTF-8
	portHugeCert     = 7003 // TLS: an expired, wrong-name certificate with ~2,000 SANs (~60 KB)
	portBadTLS       = 7004 // answers the ClientHello with a malformed TLS record
	portOddOptions   = 7005 // SYN-ACK with MSS 88 and a 1-byte receive window clamp
)

// hostilePorts is the scan's port list part for the hostile services.
const hostilePorts = "7001-7005"

// hostile is the set of hostile services and the injector of unsolicited
// packets (ICMP errors quoting foreign packets, replies from an
// out-of-scope source) towards the scanner.
type hostile struct {
	// Outside is the out-of-scope source of the injected replies.
	Outside netip.Addr
	closers []func()
	wg      sync.WaitGroup
	stop    chan struct{}
	sent    atomic.Int64
	conns   atomic.Int64
}

// Describe says what the hostile services did, for the report.
func (h *hostile) Describe() string {
	return fmt.Sprintf(`On every address of the target zone (TCP):

| port | behaviour |
|---|---|
| %d | a 4 MiB banner, then close |
| %d | a binary banner: NUL, ANSI escapes, bidi overrides, invalid UTF-8 |
| %d | TLS with an expired certificate for another name carrying 2,000 SANs (about 60 KB) |
| %d | a malformed TLS record instead of a ServerHello |
| %d | SYN-ACK with MSS 88 (TCP_MAXSEG) and a tiny window clamp |

Connections served: %d. Unsolicited packets injected from the target
namespace towards the scanner: %d (every 250 ms: ICMP port-unreachable
errors quoting a packet the scanner never sent, to an out-of-scope address
and from a foreign source; TCP RST+ACK and ICMP echo replies from the
out-of-scope address %s).`, portHugeBanner, portBinaryBanner, portHugeCert, portBadTLS, portOddOptions,
		h.conns.Load(), h.sent.Load(), h.Outside)
}

// Close stops everything.
func (h *hostile) Close() {
	close(h.stop)
	for _, c := range h.closers {
		c()
	}
	h.wg.Wait()
}

// startHostile opens the hostile listeners and starts the injector inside
// the lab's target namespace.
func startHostile(l *lab.Lab) (*hostile, error) {
	h := &hostile{Outside: netip.MustParseAddr("198.18.2.9"), stop: make(chan struct{})}
	hugeCert, err := hugeCertConfig()
	if err != nil {
		return nil, err
	}
	banner := make([]byte, 4<<20)
	for i := range banner {
		banner[i] = 'A' + byte(i%26)
	}
	binary := []byte("SSH-2.0-\x00\x1b[2J\x1b]0;pwned\x07\u202eevil\xff\xfe\xc0\x80\r\n")
	handlers := map[int]func(net.Conn){
		portHugeBanner:   func(c net.Conn) { _, _ = c.Write(banner) },
		portBinaryBanner: func(c net.Conn) { _, _ = c.Write(binary) },
		portHugeCert: func(c net.Conn) {
			tc := tls.Server(c, hugeCert)
			_ = tc.Handshake()
		},
		portBadTLS: func(c net.Conn) {
			buf := make([]byte, 512)
			_, _ = c.Read(buf)
			// A handshake record claiming 16 MiB, then garbage.
			_, _ = c.Write([]byte{0x16, 0x03, 0x03, 0xff, 0xff, 0x02, 0xff, 0xff, 0xff, 0x03, 0x03, 0xde, 0xad})
		},
		portOddOptions: func(c net.Conn) { _, _ = c.Write([]byte("odd\r\n")) },
	}
	err = lab.Do(l.Target.Namespace, func() error {
		for port, handle := range handlers {
			lc := net.ListenConfig{}
			if port == portOddOptions {
				lc.Control = func(_, _ string, rc syscall.RawConn) error {
					var serr error
					err := rc.Control(func(fd uintptr) {
						serr = errors.Join(unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG, 88),
							unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_WINDOW_CLAMP, 1))
					})
					return errors.Join(err, serr)
				}
			}
			ln, err := lc.Listen(context.Background(), "tcp4", fmt.Sprintf("0.0.0.0:%d", port))
			if err != nil {
				return fmt.Errorf("listen %d: %w", port, err)
			}
			h.closers = append(h.closers, func() { ln.Close() })
			h.wg.Add(1)
			go h.serve(ln, handle)
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return fmt.Errorf("raw socket: %w", err)
		}
		h.closers = append(h.closers, func() { unix.Close(fd) })
		h.wg.Add(1)
		go h.inject(fd, l.ScannerV4)
		return nil
	})
	if err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

func (h *hostile) serve(ln net.Listener, handle func(net.Conn)) {
	defer h.wg.Done()
	var active atomic.Int64
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if active.Load() >= 256 {
			c.Close()
			continue
		}
		active.Add(1)
		h.conns.Add(1)
		go func() {
			defer active.Add(-1)
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			handle(c)
		}()
	}
}

// inject sends, every 250 ms until Close, unsolicited packets to the
// scanner: ICMP errors quoting packets it never sent and replies from an
// address outside the scope. Each is a kind of reply a scanner must not
// take as a result for an in-scope target, nor answer.
func (h *hostile) inject(fd int, scanner netip.Addr) {
	defer h.wg.Done()
	target := netip.MustParseAddr("198.18.1.9")
	foreign := netip.MustParseAddr("10.66.0.1")
	pkts := [][]byte{
		icmpQuoting(target, scanner, scanner, h.Outside, 443),        // quotes a probe to an out-of-scope address
		icmpQuoting(target, scanner, foreign, target, 22),            // quotes a packet from a foreign source
		tcpPacket(h.Outside, scanner, 22, 40000, true),               // RST+ACK from out of scope
		icmpEchoReply(h.Outside, scanner),                            // echo reply nobody asked for
		icmpQuoting(h.Outside, scanner, scanner, target, portBadTLS), // error about an in-scope probe, from out of scope
	}
	sa := &unix.SockaddrInet4{Addr: scanner.As4()}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-h.stop:
			return
		case <-tick.C:
		}
		if err := unix.Sendto(fd, pkts[i%len(pkts)], 0, sa); err == nil {
			h.sent.Add(1)
		}
	}
}

func ip4(src, dst netip.Addr, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice(), Id: 4242}
}

func serialize(ls ...gopacket.SerializableLayer) []byte {
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		panic(err) // fixed, well-formed layers: cannot fail
	}
	return buf.Bytes()
}

// icmpQuoting is an ICMP port-unreachable from src to dst quoting a TCP SYN
// from qsrc to qdst:qport.
func icmpQuoting(src, dst, qsrc, qdst netip.Addr, qport uint16) []byte {
	inner := tcpPacket(qsrc, qdst, 40000, qport, false)
	return serialize(ip4(src, dst, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodePort)},
		gopacket.Payload(inner[:28]))
}

func tcpPacket(src, dst netip.Addr, sport, dport uint16, rst bool) []byte {
	ip := ip4(src, dst, layers.IPProtocolTCP)
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: 1, Window: 1024}
	if rst {
		tcp.RST, tcp.ACK, tcp.Ack = true, true, 1
	} else {
		tcp.SYN = true
	}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	return serialize(ip, tcp)
}

func icmpEchoReply(src, dst netip.Addr) []byte {
	return serialize(ip4(src, dst, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoReply, 0), Id: 7, Seq: 1},
		gopacket.Payload("unsolicited"))
}

// hugeCertConfig is a TLS server configuration with an expired
// certificate for another name carrying 2,000 SANs.
func hugeCertConfig() (*tls.Config, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	names := make([]string, 2000)
	for i := range names {
		names[i] = fmt.Sprintf("host-%04d.not-the-target.invalid", i)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: "\x1b[31mhostile\u202e", Organization: []string{"soak"}},
		NotBefore:    time.Now().Add(-72 * time.Hour),
		NotAfter:     time.Now().Add(-48 * time.Hour),
		DNSNames:     names,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: k}}, MinVersion: tls.VersionTLS12}, nil
}
