package probe

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
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// selfSigned makes a TLS certificate for 127.0.0.1, ::1 and localhost.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		// A hostile subject: control characters must come out escaped.
		Subject:     pkix.Name{CommonName: "probe-test\x1b[31m", Organization: []string{"FirewallIQ test"}},
		NotBefore:   time.Now().Add(-time.Hour),
		NotAfter:    time.Now().Add(time.Hour),
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// listenTLS runs a crypto/tls server on addr and returns its port. It
// counts bytes of application data received (there must be none) and the
// connections it has finished reading (ended).
func listenTLS(t *testing.T, addr string, appData, ended *atomic.Int64) uint16 {
	t.Helper()
	l, err := tls.Listen("tcp", net.JoinHostPort(addr, "0"), &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}})
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer ended.Add(1)
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(3 * time.Second))
				b := make([]byte, 512)
				for {
					n, err := c.Read(b)
					appData.Add(int64(n))
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

func TestEngineTLSAndBanner(t *testing.T) {
	for _, addr := range []string{"127.0.0.1", "::1"} {
		t.Run(addr, func(t *testing.T) {
			var appData, ended atomic.Int64
			tlsPort := listenTLS(t, addr, &appData, &ended)
			banner := "SSH-2.0-Test\r\n\x1b[2J\\evil"
			bPort := listenTCP(t, addr, banner)
			quiet := listenTCP(t, addr, "")
			a := netip.MustParseAddr(addr)
			_, col := runEngine(t, Config{
				ScanID: "t", Targets: seqOf(a), Scope: prefixes{netip.PrefixFrom(a, a.BitLen())},
				Ports: []Port{{"tcp", tlsPort}, {"tcp", bPort}, {"tcp", quiet}},
				Kinds: []Kind{KindTLSHello, KindBanner}, ReadTimeout: 500 * time.Millisecond,
			})
			r, ok := col.find(KindTLSHello, tlsPort)
			if !ok || r.State != StateOpen || r.TLS == nil || len(r.TLS.Chain) != 1 {
				t.Fatalf("tls result %+v", r)
			}
			c := r.TLS.Chain[0]
			if r.TLS.Version != "TLS 1.3" || !strings.Contains(c.Subject, `probe-test\x1b[31m`) || len(c.SHA256) != 64 || c.DNSNames[0] != "localhost" || len(c.IPs) != 2 {
				t.Errorf("tls metadata %+v %+v", r.TLS, c)
			}
			// Both probes of the TLS port (tls-hello, banner) must have
			// ended on the server's side before its count means anything.
			for deadline := time.Now().Add(5 * time.Second); ended.Load() < 2 && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			if ended.Load() < 2 {
				t.Errorf("the TLS server saw %d of 2 connections end", ended.Load())
			}
			if appData.Load() != 0 {
				t.Errorf("tls-hello sent %d bytes of application data", appData.Load())
			}
			r, ok = col.find(KindBanner, bPort)
			if !ok || r.State != StateOpen || r.Banner == nil {
				t.Fatalf("banner result %+v", r)
			}
			if want := `SSH-2.0-Test\x0d\x0a\x1b[2J\\evil`; r.Banner.Text != want || r.Banner.Bytes != len(banner) {
				t.Errorf("banner %q (%d bytes), want %q", r.Banner.Text, r.Banner.Bytes, want)
			}
			if r, _ := col.find(KindBanner, quiet); r.State != StateOpen || r.Banner != nil {
				t.Errorf("quiet server: %+v", r)
			}
			// A TLS handshake against a plain banner port fails: open,
			// reason tls-failed.
			if r, _ := col.find(KindTLSHello, bPort); r.State != StateOpen || r.Reason != ReasonTLSFailed {
				t.Errorf("tls on banner port: %+v", r)
			}
		})
	}
}

func TestEngineUDPAndICMP(t *testing.T) {
	needRoot(t)
	for _, addr := range []string{"127.0.0.1", "::1"} {
		t.Run(addr, func(t *testing.T) {
			uc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(addr), 0)))
			if err != nil {
				t.Skip(err)
			}
			defer uc.Close()
			go func() {
				b := make([]byte, 1500)
				for {
					n, from, err := uc.ReadFromUDPAddrPort(b)
					if err != nil {
						return
					}
					_, _ = uc.WriteToUDPAddrPort(b[:n], from) // echo
				}
			}()
			open := uint16(uc.LocalAddr().(*net.UDPAddr).Port)
			closedC, _ := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(addr), 0)))
			closed := uint16(closedC.LocalAddr().(*net.UDPAddr).Port)
			closedC.Close()
			a := netip.MustParseAddr(addr)
			dir := t.TempDir()
			d, err := OpenDir(dir, Checkpoint{ScanID: "udp-icmp", Fingerprint: "x"}, false)
			if err != nil {
				t.Fatal(err)
			}
			s, col := runEngine(t, Config{
				ScanID: "udp-icmp", Targets: seqOf(a), Scope: prefixes{netip.PrefixFrom(a, a.BitLen())},
				Ports: []Port{{"udp", open}, {"udp", closed}}, Kinds: []Kind{KindUDP, KindICMPEcho},
				Evidence: d.Evidence(),
			})
			if err := d.Finish(s, true); err != nil {
				t.Fatal(err)
			}
			d.Close()
			if r, _ := col.find(KindUDP, open); r.State != StateOpen || r.Reason != ReasonUDPResponse {
				t.Errorf("open udp: %+v", r)
			}
			if r, _ := col.find(KindUDP, closed); r.State != StateClosed || r.Reason != ReasonICMPPortUnr || r.ICMP == nil {
				t.Errorf("closed udp: %+v", r)
			} else if (a.Is4() && (r.ICMP.Type != 3 || r.ICMP.Code != 3)) || (a.Is6() && (r.ICMP.Type != 1 || r.ICMP.Code != 4)) {
				t.Errorf("closed udp icmp %+v", r.ICMP)
			}
			if r, _ := col.find(KindICMPEcho, 0); r.State != StateOpen || r.Reason != ReasonEchoReply || r.Proto != "icmp" {
				t.Errorf("echo: %+v", r)
			}
			// Evidence: the section comment names the scan, and the file
			// holds our 3 probes and 3 replies.
			f, err := os.Open(filepath.Join(dir, EvidenceFile))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
			if err != nil {
				t.Fatal(err)
			}
			if c := r.SectionInfo().Comment; c != "scan udp-icmp" {
				t.Errorf("section comment %q", c)
			}
			n := 0
			for {
				data, _, err := r.ReadPacketData()
				if err != nil {
					break
				}
				n++
				pk := gopacket.NewPacket(data, layers.LayerTypeIPv4, gopacket.Default)
				if a.Is6() {
					pk = gopacket.NewPacket(data, layers.LayerTypeIPv6, gopacket.Default)
				}
				if el := pk.ErrorLayer(); el != nil {
					t.Errorf("evidence packet %d does not decode: %v", n, el.Error())
				}
			}
			if n != 6 {
				t.Errorf("evidence holds %d packets, want 6", n)
			}
		})
	}
}

// countingConn counts what reaches the kernel, per destination.
type countingConn struct {
	packetConn
	mu          sync.Mutex
	dsts        map[netip.Addr]int
	first, last time.Time
	// sending, if not nil, is closed at the first send.
	sending chan struct{}
}

func (c *countingConn) send(pkts [][]byte, dsts []netip.Addr) (int, error) {
	c.mu.Lock()
	for _, d := range dsts {
		c.dsts[d]++
	}
	c.last = time.Now()
	if c.first.IsZero() {
		c.first = c.last
		if c.sending != nil {
			close(c.sending)
		}
	}
	c.mu.Unlock()
	return c.packetConn.send(pkts, dsts)
}

// TestSendPathRefusesOutOfScope pushes a destination past the planner and
// proves the send path refuses it: it never reaches the socket, and a
// capture on the loopback interface sees no packet to it.
func TestSendPathRefusesOutOfScope(t *testing.T) {
	needRoot(t)
	in, out := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	port := closedPort(t, "127.0.0.1")
	e, err := newTestEngine(Config{
		ScanID: "refuse", Targets: seqOf(in, out), Scope: prefixes{netip.MustParsePrefix("127.0.0.1/32")},
		Ports: []Port{{"tcp", port}}, Kinds: []Kind{KindTCPSyn}, Limits: Limits{Profile: 1000},
		Timeout: 200 * time.Millisecond, Retries: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.plannerContains = func(netip.Addr) bool { return true } // the planner is fooled
	raw, err := openRaw()
	if err != nil {
		t.Fatal(err)
	}
	cc := &countingConn{packetConn: raw, dsts: map[netip.Addr]int{}}
	e.conn = cc
	// An independent capture on loopback.
	capt, err := openTap(nil, 0, true, true)
	if err != nil {
		t.Fatal(err)
	}
	var seenOut atomic.Int64
	stop := make(chan struct{})
	capDone := make(chan struct{})
	go func() {
		defer close(capDone)
		defer capt.close()
		buf := make([]byte, 65536)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, _, _, ok, err := capt.read(buf)
			if err != nil {
				return
			}
			if p, err := decode(buf[:n]); ok && err == nil && p.dst == out {
				seenOut.Add(1)
			}
		}
	}()
	col := &collector{}
	e.cfg.Results = col.add
	s, err := e.Run(context.Background())
	time.Sleep(50 * time.Millisecond)
	close(stop)
	<-capDone
	if err != nil {
		t.Fatal(err)
	}
	if cc.dsts[out] != 0 || cc.dsts[in] != 1 {
		t.Fatalf("socket saw %v", cc.dsts)
	}
	if seenOut.Load() != 0 {
		t.Fatalf("capture saw %d packets to %s", seenOut.Load(), out)
	}
	if s.RefusedPackets != 1 || len(s.RefusedSample) != 1 || s.RefusedSample[0] != out.String() {
		t.Fatalf("summary: refused %d %v", s.RefusedPackets, s.RefusedSample)
	}
	r, ok := col.find(KindTCPSyn, port)
	_ = r
	if !ok {
		t.Fatal("no results")
	}
	for _, r := range col.res {
		if r.Target == out.String() && (r.State != StateError || r.Reason != "out-of-scope-refused") {
			t.Fatalf("refused target result %+v", r)
		}
	}
}

func TestPlannerRefusesOutOfScope(t *testing.T) {
	in, out := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	port := closedPort(t, "127.0.0.1")
	s, col := runEngine(t, Config{
		Targets: seqOf(in, out), Scope: prefixes{netip.MustParsePrefix("127.0.0.1/32")},
		Ports: []Port{{"tcp", port}}, Kinds: []Kind{KindTCPConnect},
	})
	if s.RefusedTargets != 1 || len(col.res) != 1 || col.res[0].Target != "127.0.0.1" {
		t.Fatalf("refused %d, results %+v", s.RefusedTargets, col.res)
	}
}

// TestCancelStopsSending cancels a slow scan and checks that nothing was
// handed to the socket more than 100 ms later.
func TestCancelStopsSending(t *testing.T) {
	needRoot(t)
	a := netip.MustParseAddr("127.0.0.1")
	var ports []Port
	for p := 20000; p < 22000; p++ {
		ports = append(ports, Port{"tcp", uint16(p)})
	}
	e, err := newTestEngine(Config{
		Targets: seqOf(a), Scope: prefixes{netip.MustParsePrefix("127.0.0.0/8")},
		Ports: ports, Kinds: []Kind{KindTCPSyn}, Limits: Limits{Profile: 500},
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := openRaw()
	if err != nil {
		t.Fatal(err)
	}
	cc := &countingConn{packetConn: raw, dsts: map[netip.Addr]int{}, sending: make(chan struct{})}
	e.conn = cc
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cancelled atomic.Int64 // when cancel really ran (a late timer must not fail the test)
	// 300 ms into the sending, not into the test: under load and -race
	// the engine's start took longer than that (nothing had been sent).
	go func() {
		select {
		case <-cc.sending:
		case <-ctx.Done():
			return
		}
		time.Sleep(300 * time.Millisecond)
		cancelled.Store(time.Now().UnixNano())
		cancel()
	}()
	_, err = e.Run(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("run: %v", err)
	}
	cancelAt := time.Unix(0, cancelled.Load())
	cc.mu.Lock()
	first, last, n := cc.first, cc.last, cc.dsts[a]
	cc.mu.Unlock()
	if n == 0 || n > 500*int(time.Since(first).Seconds()+1) {
		t.Fatalf("sent %d packets in ~300 ms at 500 pps", n)
	}
	if d := last.Sub(cancelAt); d > 100*time.Millisecond {
		t.Fatalf("last send %v after cancel", d)
	}
	if d := time.Since(cancelAt); d > time.Second {
		t.Fatalf("Run returned %v after cancel", d)
	}
}

// TestConnectEvidence: the kernel-built packets of a connect-based probe
// are captured by the tap and recorded as they were on the wire (here the
// loopback interface), both directions, once each.
func TestConnectEvidence(t *testing.T) {
	needRoot(t)
	port := listenTCP(t, "127.0.0.1", "hello\r\n")
	a := netip.MustParseAddr("127.0.0.1")
	dir := t.TempDir()
	d, err := OpenDir(dir, Checkpoint{ScanID: "connect-evidence"}, false)
	if err != nil {
		t.Fatal(err)
	}
	s, col := runEngine(t, Config{
		ScanID: "connect-evidence", Targets: seqOf(a), Scope: prefixes{netip.MustParsePrefix("127.0.0.1/32")},
		Ports: []Port{{"tcp", port}}, Kinds: []Kind{KindBanner}, Evidence: d.Evidence(), ReadTimeout: 300 * time.Millisecond,
	})
	time.Sleep(100 * time.Millisecond)
	if err := d.Finish(s, true); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if r, _ := col.find(KindBanner, port); r.State != StateOpen || r.TTL != 64 {
		t.Fatalf("banner %+v", r)
	}
	f, err := os.Open(filepath.Join(dir, EvidenceFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	var syn, synack, data int
	for {
		b, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		p, err := decode(b)
		if err != nil || p.proto != protoTCP {
			t.Fatalf("evidence packet %x: %v", b, err)
		}
		switch {
		case p.dport == port && p.flags == tcpSYN:
			syn++
		case p.sport == port && p.flags == tcpSYN|tcpACK:
			synack++
		case p.sport == port && len(b) > 52 && p.flags&tcpFIN == 0:
			data++
		}
	}
	if syn != 1 || synack != 1 || data != 1 {
		t.Fatalf("evidence: %d SYN, %d SYN-ACK, %d banner segments; want 1 each", syn, synack, data)
	}
}

// TestSendCheckedReadsTheWire: the send path checks the destination
// written in each packet, not only the address the packet is routed to. A
// packet whose header names an out-of-scope address is refused even when
// it would be routed to an in-scope one.
func TestSendCheckedReadsTheWire(t *testing.T) {
	in, out := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	e, err := New(Config{Targets: seqOf(), Scope: prefixes{netip.MustParsePrefix("127.0.0.1/32")}, Kinds: []Kind{KindTCPSyn}, Limits: Limits{Profile: 100}})
	if err != nil {
		t.Fatal(err)
	}
	cc := &countingConn{packetConn: nopConn{}, dsts: map[netip.Addr]int{}}
	e.conn = cc
	good, _ := buildUDP(in, in, 1, 2, nil)
	forged, _ := buildUDP(in, out, 1, 2, nil) // header says 127.0.0.2
	b := &batch{done: make(chan struct{})}
	b.remaining.Store(2)
	ents := []*entry{{b: b}, {b: b}}
	e.sendChecked([][]byte{good, forged}, []netip.Addr{in, in}, ents)
	if cc.dsts[in] != 1 || e.refused.Load() != 1 || e.refusedList[0] != out.String() {
		t.Fatalf("sent %v, refused %d %v", cc.dsts, e.refused.Load(), e.refusedList)
	}
	if ents[1].res.State != StateError || ents[0].fin {
		t.Fatalf("entries %+v %+v", ents[0].res, ents[1].res)
	}
}

// nopConn pretends to send.
type nopConn struct{}

func (nopConn) send(pkts [][]byte, _ []netip.Addr) (int, error) { return len(pkts), nil }
func (nopConn) close() error                                    { return nil }

// refusingConn fails the send of any packet to bad, as the kernel does for
// a broadcast address or a destination a local output filter rejects:
// sendmmsg sends the packets before it, then reports the error.
type refusingConn struct {
	bad  netip.Addr
	sent []netip.Addr
}

func (c *refusingConn) send(_ [][]byte, dsts []netip.Addr) (int, error) {
	for i, d := range dsts {
		if d == c.bad {
			return i, syscall.EACCES
		}
		c.sent = append(c.sent, d)
	}
	return len(dsts), nil
}
func (c *refusingConn) close() error { return nil }

// TestSendCheckedPacketError: a packet the kernel refuses fails alone; the
// packets after it in the same batch are still sent, not marked failed.
func TestSendCheckedPacketError(t *testing.T) {
	a, bad, c := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
	e, err := New(Config{Targets: seqOf(), Scope: prefixes{netip.MustParsePrefix("127.0.0.0/8")}, Kinds: []Kind{KindTCPSyn}, Limits: Limits{Profile: 100}})
	if err != nil {
		t.Fatal(err)
	}
	rc := &refusingConn{bad: bad}
	e.conn = rc
	b := &batch{done: make(chan struct{})}
	b.remaining.Store(3)
	ents := []*entry{{b: b}, {b: b}, {b: b}}
	var pkts [][]byte
	for _, d := range []netip.Addr{a, bad, c} {
		p, _ := buildUDP(a, d, 1, 2, nil)
		pkts = append(pkts, p)
	}
	e.sendChecked(pkts, []netip.Addr{a, bad, c}, ents)
	if len(rc.sent) != 2 || rc.sent[0] != a || rc.sent[1] != c || e.sent.Load() != 2 {
		t.Fatalf("sent %v (counted %d), want %s and %s", rc.sent, e.sent.Load(), a, c)
	}
	if ents[0].fin || ents[2].fin {
		t.Fatalf("sent probes finished: %+v %+v", ents[0].res, ents[2].res)
	}
	if !ents[1].fin || ents[1].res.State != StateError || !strings.Contains(ents[1].res.Error, "permission denied") {
		t.Fatalf("refused probe %+v", ents[1].res)
	}
}

// TestCancelStopsConnectIO: a banner read or TLS handshake against a
// server that says nothing ends as soon as the scan is cancelled, not when
// ReadTimeout runs out (and a handshake sends nothing after the cancel).
func TestCancelStopsConnectIO(t *testing.T) {
	for _, kind := range []Kind{KindBanner, KindTLSHello} {
		t.Run(string(kind), func(t *testing.T) {
			port := silentListener(t)
			e, err := newTestEngine(Config{
				Targets: seqOf(netip.MustParseAddr("127.0.0.1")), Scope: prefixes{netip.MustParsePrefix("127.0.0.1/32")},
				Ports: []Port{{"tcp", port}}, Kinds: []Kind{kind}, Limits: Limits{Profile: 1000},
				ReadTimeout: 20 * time.Second, NoRaw: true,
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			var cancelled atomic.Int64
			time.AfterFunc(300*time.Millisecond, func() { cancelled.Store(time.Now().UnixNano()); cancel() })
			if _, err := e.Run(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("run: %v", err)
			}
			// Generous for a loaded machine, far below ReadTimeout.
			if d := time.Since(time.Unix(0, cancelled.Load())); d > 3*time.Second {
				t.Fatalf("Run returned %v after cancel", d)
			}
		})
	}
}

// silentListener accepts connections on 127.0.0.1 and holds them open,
// saying nothing, until the test ends.
func silentListener(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("cannot listen: %v", err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// TestConnectSendPathRefusesOutOfScope: the connect-based kinds check the
// destination right before connect(2), with and without the packet tap (two
// dial paths): a destination pushed past the planner never gets a SYN.
func TestConnectSendPathRefusesOutOfScope(t *testing.T) {
	for _, noRaw := range []bool{true, false} {
		t.Run(fmt.Sprintf("noRaw=%v", noRaw), func(t *testing.T) {
			if !noRaw {
				needRoot(t)
			}
			out := netip.MustParseAddr("127.0.0.2")
			l, err := net.Listen("tcp", "127.0.0.2:0")
			if err != nil {
				t.Skipf("cannot listen on %s: %v", out, err)
			}
			var accepted atomic.Int64
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					accepted.Add(1)
					c.Close()
				}
			}()
			defer l.Close()
			port := uint16(l.Addr().(*net.TCPAddr).Port)
			e, err := newTestEngine(Config{
				Targets: seqOf(out), Scope: prefixes{netip.MustParsePrefix("127.0.0.1/32")},
				Ports: []Port{{"tcp", port}}, Kinds: []Kind{KindTCPConnect, KindBanner, KindTLSHello},
				Limits: Limits{Profile: 1000}, Timeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, NoRaw: noRaw,
			})
			if err != nil {
				t.Fatal(err)
			}
			e.plannerContains = func(netip.Addr) bool { return true } // the planner is fooled
			col := &collector{}
			e.cfg.Results = col.add
			s, err := e.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if accepted.Load() != 0 {
				t.Fatalf("%d connections reached %s", accepted.Load(), out)
			}
			if s.RefusedPackets != 3 || s.PacketsSent != 0 || len(col.res) != 3 {
				t.Fatalf("refused %d, sent %d, results %+v", s.RefusedPackets, s.PacketsSent, col.res)
			}
			for _, r := range col.res {
				if r.State != StateError || r.Reason != "out-of-scope-refused" {
					t.Fatalf("result %+v", r)
				}
			}
		})
	}
}

// TestBannerSendsNothing: the banner probe connects, reads what the
// server volunteers and closes; the server receives not one byte. The
// check waits for the server to see the connection end, so it cannot pass
// before the probe had a chance to send.
func TestBannerSendsNothing(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("cannot listen: %v", err)
	}
	defer l.Close()
	type seen struct {
		n   int64
		eof bool
	}
	got := make(chan seen, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte("220 ready\r\n"))
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var s seen
		b := make([]byte, 512)
		for {
			n, err := c.Read(b)
			s.n += int64(n)
			if err != nil {
				s.eof = errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
				got <- s
				return
			}
		}
	}()
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	_, col := runEngine(t, Config{
		Targets: seqOf(netip.MustParseAddr("127.0.0.1")), Scope: prefixes{netip.MustParsePrefix("127.0.0.1/32")},
		Ports: []Port{{"tcp", port}}, Kinds: []Kind{KindBanner}, ReadTimeout: 500 * time.Millisecond, NoRaw: true,
	})
	if r, ok := col.find(KindBanner, port); !ok || r.Banner == nil || r.Banner.Text != `220 ready\x0d\x0a` {
		t.Fatalf("banner result %+v", r)
	}
	select {
	case s := <-got:
		if !s.eof || s.n != 0 {
			t.Fatalf("server received %d bytes (connection ended cleanly: %v); want 0 and the probe's close", s.n, s.eof)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the probe never closed its connection")
	}
}
