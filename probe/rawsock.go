package probe

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrNoRaw means the process lacks CAP_NET_RAW (or raw sockets are
// otherwise unavailable).
var ErrNoRaw = errors.New("raw sockets unavailable (CAP_NET_RAW missing)")

// packetConn sends fully built IP packets. The engine's send path checks
// scope before it hands anything to a packetConn; tests wrap one to count
// what reaches the kernel.
type packetConn interface {
	// send sends pkts[i] to dsts[i] and returns how many were sent.
	send(pkts [][]byte, dsts []netip.Addr) (int, error)
	close() error
}

// rawConn is a pair of IPPROTO_RAW sockets (IPv4 and IPv6). IPPROTO_RAW
// implies IP_HDRINCL / IPV6_HDRINCL: we hand the kernel the exact bytes
// (built by us, recorded as evidence) and it adds only the link header.
// Packets go out in batches with sendmmsg(2), one syscall per batch.
type rawConn struct {
	fd4, fd6 int
	msgs     []unix.Mmsghdr
	iovs     []unix.Iovec
	names4   []unix.RawSockaddrInet4
	names6   []unix.RawSockaddrInet6
}

// maxBatch is the most packets per sendmmsg call.
const maxBatch = 64

func openRaw() (*rawConn, error) {
	c := &rawConn{fd4: -1, fd6: -1}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoRaw, err)
	}
	c.fd4 = fd
	// IPv6 may be disabled on the host; IPv4 alone is still useful.
	if fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW); err == nil {
		c.fd6 = fd
	}
	for _, fd := range []int{c.fd4, c.fd6} {
		if fd >= 0 {
			// A large send buffer lets a batch of 64 go out in one call
			// without blocking at high rates.
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
		}
	}
	c.msgs = make([]unix.Mmsghdr, maxBatch)
	c.iovs = make([]unix.Iovec, maxBatch)
	c.names4 = make([]unix.RawSockaddrInet4, maxBatch)
	c.names6 = make([]unix.RawSockaddrInet6, maxBatch)
	return c, nil
}

// canRaw reports whether raw sockets can be opened.
// RawAvailable reports whether this process may open raw sockets
// (CAP_NET_RAW): tcp-syn, udp and icmp-echo need them; without, tcp-syn
// falls back to tcp-connect and udp and icmp-echo are refused.
func RawAvailable() bool { return canRaw() }

func canRaw() bool {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

func (c *rawConn) close() error {
	for _, fd := range []int{c.fd4, c.fd6} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	c.fd4, c.fd6 = -1, -1
	return nil
}

// send sends pkts with one sendmmsg per run of packets of the same family.
func (c *rawConn) send(pkts [][]byte, dsts []netip.Addr) (int, error) {
	sent := 0
	for sent < len(pkts) {
		v4 := dsts[sent].Is4()
		j := sent
		for j < len(pkts) && j-sent < maxBatch && dsts[j].Is4() == v4 {
			j++
		}
		n, err := c.sendRun(pkts[sent:j], dsts[sent:j], v4)
		sent += n
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

func (c *rawConn) sendRun(pkts [][]byte, dsts []netip.Addr, v4 bool) (int, error) {
	fd := c.fd4
	if !v4 {
		fd = c.fd6
	}
	if fd < 0 {
		return 0, fmt.Errorf("send: no IPv6 raw socket")
	}
	for i, p := range pkts {
		c.iovs[i] = unix.Iovec{Base: &p[0]}
		c.iovs[i].SetLen(len(p))
		h := &c.msgs[i].Hdr
		*h = unix.Msghdr{Iov: &c.iovs[i]}
		h.SetIovlen(1)
		if v4 {
			c.names4[i] = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: dsts[i].As4()}
			h.Name = (*byte)(unsafe.Pointer(&c.names4[i]))
			h.Namelen = unix.SizeofSockaddrInet4
		} else {
			c.names6[i] = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: dsts[i].As16()}
			h.Name = (*byte)(unsafe.Pointer(&c.names6[i]))
			h.Namelen = unix.SizeofSockaddrInet6
		}
	}
	done := 0
	for tries := 0; done < len(pkts); {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&c.msgs[done])), uintptr(len(pkts)-done), 0, 0, 0)
		if e != 0 {
			if (e == unix.ENOBUFS || e == unix.EAGAIN || e == unix.EINTR) && tries < 100 {
				// The queue is momentarily full: back off briefly.
				tries++
				time.Sleep(50 * time.Microsecond)
				continue
			}
			return done, fmt.Errorf("sendmmsg: %w", e)
		}
		done += int(r)
	}
	return done, nil
}

// tap is an AF_PACKET socket (SOCK_DGRAM: packets start at the IP header)
// bound to every interface. It sees replies to the raw probes, ICMP errors
// quoting them, and (when asked) the kernel's own packets of connect-based
// probes, which is how those are recorded as evidence.
//
// The socket is non-blocking and read through the Go runtime's poller, so
// an idle reader parks like any network read instead of holding a thread
// in a blocking syscall (which keeps the scheduler's monitor spinning and
// cost several percent of a core at low rates).
type tap struct {
	f  *os.File
	rc syscall.RawConn
	lo int // ifindex of the loopback interface, where every packet shows twice
	// busy is set from the start of each read attempt until the reader
	// finds the socket empty: while it is false, the reader holds no
	// packet it has not handled (see idle).
	busy atomic.Bool
}

// Linux packet types (sockaddr_ll.sll_pkttype).
const pktOutgoing = unix.PACKET_OUTGOING

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func openTap(tcpPorts []uint16, udpPort uint16, allTCP, keepOutgoing bool) (*tap, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return nil, fmt.Errorf("%w: packet socket: %w", ErrNoRaw, err)
	}
	raw, err := tapFilter(tcpPorts, udpPort, allTCP, keepOutgoing)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tap filter: %w", err)
	}
	prog := unix.SockFprog{Len: uint16(len(raw)), Filter: (*unix.SockFilter)(unsafe.Pointer(&raw[0]))}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("attach tap filter: %w", err)
	}
	// Room for a burst of replies at high rates.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
	f := os.NewFile(uintptr(fd), "tap")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("tap: %w", err)
	}
	t := &tap{f: f, rc: rc, lo: -1}
	if ifs, err := net.Interfaces(); err == nil {
		for _, i := range ifs {
			if i.Flags&net.FlagLoopback != 0 {
				t.lo = i.Index
			}
		}
	}
	return t, nil
}

// next waits for one packet and reads it into buf. Each time it finds the
// socket empty it calls empty (with the time taken just before looking),
// then parks until the socket is readable. It fails once the tap is closed.
func (t *tap) next(buf []byte, now func() time.Time, empty func(time.Time)) (n int, outgoing, loopback bool, err error) {
	var from unix.Sockaddr
	var rerr error
	err = t.rc.Read(func(fd uintptr) bool {
		before := now()
		t.busy.Store(true)
		n, from, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
		if rerr == unix.EAGAIN {
			t.busy.Store(false)
			if empty != nil {
				empty(before)
			}
			return false
		}
		return rerr != unix.EINTR
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return 0, false, false, fmt.Errorf("tap read: %w", err)
	}
	if ll, isLL := from.(*unix.SockaddrLinklayer); isLL {
		outgoing = ll.Pkttype == pktOutgoing
		loopback = ll.Ifindex == t.lo
	}
	return n, outgoing, loopback, nil
}

// read reads one packet into buf, waiting at most 20 ms: ok is false on
// timeout (for callers that poll a stop signal).
func (t *tap) read(buf []byte) (n int, outgoing, loopback, ok bool, err error) {
	_ = t.f.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	n, outgoing, loopback, err = t.next(buf, time.Now, nil)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, false, false, false, nil
	}
	return n, outgoing, loopback, err == nil, err
}

// idle reports whether, at the moment of the call, the socket's queue is
// empty and the reader holds no unhandled packet: every packet that
// arrived before has been handled. The queue is checked first and the
// reader second, so a packet dequeued in between is seen as busy.
func (t *tap) idle() bool {
	queued := 1
	if err := t.rc.Control(func(fd uintptr) {
		if v, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ); err == nil {
			queued = v
		}
	}); err != nil {
		return false
	}
	return queued == 0 && !t.busy.Load()
}

// close closes the socket; a reader parked in next returns an error.
func (t *tap) close() error { return t.f.Close() }

// router finds the local address the kernel would use to reach a
// destination, by connecting a UDP socket (which sends nothing) and reading
// its local address back. One socket per family is reused: two syscalls per
// lookup, cheap enough to do for every target.
//
// For IPv4 the answer is cached per most specific routing prefix (see
// fibKeys); without a readable FIB every target is looked up.
type router struct {
	mu       sync.Mutex
	fd4, fd6 int
	fib      *fibKeys
	cache    map[netip.Prefix]netip.Addr
}

func newRouter() *router {
	r := &router{fd4: -1, fd6: -1, cache: map[netip.Prefix]netip.Addr{}}
	if k, err := loadFIBKeys(); err == nil {
		r.fib = k
	}
	return r
}

func (r *router) source(dst netip.Addr) (netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var key netip.Prefix
	cached := false
	if dst.Is4() && r.fib != nil {
		if key, cached = r.fib.key(dst); cached {
			if s, ok := r.cache[key]; ok {
				return s, nil
			}
		}
	}
	s, err := r.lookup(dst)
	if err == nil && cached {
		r.cache[key] = s
	}
	return s, err
}

func (r *router) lookup(dst netip.Addr) (netip.Addr, error) {
	fd, family := &r.fd4, unix.AF_INET
	var sa unix.Sockaddr
	if dst.Is4() {
		sa = &unix.SockaddrInet4{Port: 9, Addr: dst.As4()}
	} else {
		fd, family = &r.fd6, unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: 9, Addr: dst.As16()}
	}
	if *fd < 0 {
		s, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("route to %s: %w", dst, err)
		}
		*fd = s
	}
	if err := unix.Connect(*fd, sa); err != nil {
		return netip.Addr{}, fmt.Errorf("route to %s: %w", dst, err)
	}
	// getsockname(2) directly: x/sys's wrapper also queries the socket's
	// protocol, a third syscall we do not need.
	var rsa unix.RawSockaddrInet6 // large enough for either family
	l := uint32(unsafe.Sizeof(rsa))
	if _, _, e := unix.RawSyscall(unix.SYS_GETSOCKNAME, uintptr(*fd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&l))); e != 0 {
		return netip.Addr{}, fmt.Errorf("route to %s: getsockname: %w", dst, e)
	}
	if rsa.Family == unix.AF_INET {
		v4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&rsa))
		return netip.AddrFrom4(v4.Addr), nil
	}
	return netip.AddrFrom16(rsa.Addr), nil
}

func (r *router) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, fd := range []*int{&r.fd4, &r.fd6} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// synPorts is how many source ports the SYN probes rotate through, one
// per attempt: a retry from the same port and sequence number is a
// retransmitted SYN to a target still in SYN-RECEIVED (its SYN-ACK was
// lost), which Linux answers at most once per 500 ms
// (net.ipv4.tcp_invalid_ratelimit); from a fresh port it is a new SYN,
// answered at once.
const synPorts = 4

// reservePorts binds synPorts TCP sockets and a UDP socket on
// kernel-chosen ports, dual-stack, so no local application can take the
// source ports the raw probes use, and so UDP replies land on a socket (the
// kernel would otherwise answer them with ICMP port unreachable). The TCP
// ones are bound, never listening: the kernel still answers a SYN-ACK with
// a RST, which is normal for a SYN scan.
func reservePorts() (tcpPorts []uint16, udpPort uint16, closer func(), err error) {
	var fds []int
	closeAll := func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	for range synPorts {
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			closeAll()
			return nil, 0, nil, fmt.Errorf("reserve tcp port: %w", err)
		}
		fds = append(fds, fd)
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
		if err := unix.Bind(fd, &unix.SockaddrInet6{}); err != nil {
			closeAll()
			return nil, 0, nil, fmt.Errorf("reserve tcp port: %w", err)
		}
		sa, err := unix.Getsockname(fd)
		if err != nil {
			closeAll()
			return nil, 0, nil, fmt.Errorf("reserve tcp port: %w", err)
		}
		tcpPorts = append(tcpPorts, uint16(sa.(*unix.SockaddrInet6).Port))
	}
	uc, err := net.ListenUDP("udp", &net.UDPAddr{})
	if err != nil {
		closeAll()
		return nil, 0, nil, fmt.Errorf("reserve udp port: %w", err)
	}
	go func() {
		// Drain datagrams so the socket buffer never fills; the tap has
		// already seen them.
		b := make([]byte, 2048)
		for {
			if _, _, err := uc.ReadFrom(b); err != nil {
				return
			}
		}
	}()
	return tcpPorts, uint16(uc.LocalAddr().(*net.UDPAddr).Port), func() { closeAll(); uc.Close() }, nil
}
