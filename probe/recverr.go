package probe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// queuedICMP is an ICMP error the kernel queued on a socket (IP_RECVERR).
type queuedICMP struct {
	typ, code uint8
	from      netip.Addr
	v6        bool
}

// dialRecvErr connects a TCP socket to dst like net.Dialer, but with
// IP_RECVERR / IPV6_RECVERR set, so the kernel queues ICMP errors about
// our SYN on the socket, with their exact type, code and sender. It is the
// connect path when there is no packet tap (no CAP_NET_RAW): Linux does
// not fail a TCPv6 connect on ICMPv6 administratively prohibited, and
// reports IPv4 rejections only as an errno, so without the queue a REJECT
// would look like a DROP or lose its code. control runs right before
// connect(2), like net.Dialer.Control (the scope check).
func dialRecvErr(ctx context.Context, dst netip.AddrPort, timeout time.Duration, control func(network, address string, c syscall.RawConn) error) (net.Conn, *queuedICMP, error) {
	family, level, opt := unix.AF_INET, unix.IPPROTO_IP, unix.IP_RECVERR
	var sa unix.Sockaddr = &unix.SockaddrInet4{Port: int(dst.Port())}
	if dst.Addr().Is6() {
		family, level, opt = unix.AF_INET6, unix.IPPROTO_IPV6, unix.IPV6_RECVERR
		sa = &unix.SockaddrInet6{Port: int(dst.Port()), Addr: dst.Addr().As16()}
	} else {
		sa.(*unix.SockaddrInet4).Addr = dst.Addr().As4()
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("dial %s: %w", dst, err)
	}
	if err := unix.SetsockoptInt(fd, level, opt, 1); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("dial %s: recverr: %w", dst, err)
	}
	f := os.NewFile(uintptr(fd), "tcp")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, nil, fmt.Errorf("dial %s: %w", dst, err)
	}
	if err := control("tcp", dst.String(), rc); err != nil {
		return nil, nil, err
	}
	if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS {
		return nil, readErrQueue(rc), &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", err)}
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = f.SetWriteDeadline(deadline)
	// Cancellation ends the wait at once, like net.Dialer's DialContext.
	stop := context.AfterFunc(ctx, func() { _ = f.SetWriteDeadline(time.Now()) })
	defer stop()
	var soErr error
	werr := rc.Write(func(fd uintptr) bool {
		v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err == nil && v != 0 {
			soErr = syscall.Errno(v)
			return true
		}
		_, err = unix.Getpeername(int(fd))
		return err == nil // connected; otherwise still in progress: wait
	})
	switch {
	case werr != nil && errors.Is(werr, os.ErrDeadlineExceeded):
		return nil, readErrQueue(rc), &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}
	case werr != nil:
		return nil, nil, &net.OpError{Op: "dial", Net: "tcp", Err: werr}
	case soErr != nil:
		return nil, readErrQueue(rc), &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", soErr)}
	}
	c, err := net.FileConn(f) // a dup; f is closed on return
	if err != nil {
		return nil, nil, fmt.Errorf("dial %s: %w", dst, err)
	}
	return c, nil, nil
}

// readErrQueue reads the first ICMP error queued on the socket, if any.
func readErrQueue(rc syscall.RawConn) *queuedICMP {
	var out *queuedICMP
	_ = rc.Control(func(fd uintptr) {
		b := make([]byte, 256)
		oob := make([]byte, 512)
		for range 8 {
			_, oobn, _, _, err := unix.Recvmsg(int(fd), b, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
			if err != nil {
				return
			}
			if q := parseRecvErr(oob[:oobn]); q != nil && out == nil {
				out = q
			}
		}
	})
	return out
}

// parseRecvErr finds an ICMP-originated sock_extended_err in control
// messages: ee_errno u32, ee_origin u8, ee_type u8, ee_code u8, pad u8,
// ee_info u32, ee_data u32, then the offender's sockaddr.
func parseRecvErr(oob []byte) *queuedICMP {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	for _, m := range msgs {
		v4 := m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_RECVERR
		v6 := m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_RECVERR
		if (!v4 && !v6) || len(m.Data) < 16 {
			continue
		}
		origin := m.Data[4]
		if origin != unix.SO_EE_ORIGIN_ICMP && origin != unix.SO_EE_ORIGIN_ICMP6 {
			continue
		}
		q := &queuedICMP{typ: m.Data[5], code: m.Data[6], v6: origin == unix.SO_EE_ORIGIN_ICMP6}
		off := m.Data[16:]
		if len(off) >= 2 {
			switch binary.NativeEndian.Uint16(off) {
			case unix.AF_INET:
				if len(off) >= 8 {
					q.from = netip.AddrFrom4([4]byte(off[4:8]))
				}
			case unix.AF_INET6:
				if len(off) >= 24 {
					q.from = netip.AddrFrom16([16]byte(off[8:24]))
				}
			}
		}
		return q
	}
	return nil
}
