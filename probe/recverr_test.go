package probe

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cmsg builds one control message.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

// extErr builds a sock_extended_err followed by the offender's sockaddr.
func extErr(origin, typ, code uint8, from netip.Addr) []byte {
	b := make([]byte, 16)
	binary.NativeEndian.PutUint32(b, uint32(unix.EHOSTUNREACH))
	b[4], b[5], b[6] = origin, typ, code
	if from.Is4() {
		sa := make([]byte, 16)
		binary.NativeEndian.PutUint16(sa, unix.AF_INET)
		a := from.As4()
		copy(sa[4:], a[:])
		return append(b, sa...)
	}
	sa := make([]byte, 28)
	binary.NativeEndian.PutUint16(sa, unix.AF_INET6)
	a := from.As16()
	copy(sa[8:], a[:])
	return append(b, sa...)
}

func TestParseRecvErr(t *testing.T) {
	tests := []struct {
		name string
		oob  []byte
		want *queuedICMP
	}{
		{"icmp admin prohibited", cmsg(unix.IPPROTO_IP, unix.IP_RECVERR, extErr(unix.SO_EE_ORIGIN_ICMP, 3, 13, fw4)), &queuedICMP{typ: 3, code: 13, from: fw4}},
		{"icmpv6 admin prohibited", cmsg(unix.IPPROTO_IPV6, unix.IPV6_RECVERR, extErr(unix.SO_EE_ORIGIN_ICMP6, 1, 1, fw6)), &queuedICMP{typ: 1, code: 1, from: fw6, v6: true}},
		{"local error, not ICMP", cmsg(unix.IPPROTO_IP, unix.IP_RECVERR, extErr(unix.SO_EE_ORIGIN_LOCAL, 0, 0, fw4)), nil},
		{"short", cmsg(unix.IPPROTO_IP, unix.IP_RECVERR, []byte{1, 2, 3}), nil},
		{"other message", cmsg(unix.SOL_SOCKET, unix.SCM_RIGHTS, make([]byte, 4)), nil},
		{"garbage", []byte{1, 2, 3}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseRecvErr(tt.oob)
			if (got == nil) != (tt.want == nil) || (got != nil && *got != *tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// FuzzParseRecvErr: the control-message parser never panics.
func FuzzParseRecvErr(f *testing.F) {
	f.Add(cmsg(unix.IPPROTO_IP, unix.IP_RECVERR, extErr(unix.SO_EE_ORIGIN_ICMP, 3, 13, fw4)))     // a v4 rejection
	f.Add(cmsg(unix.IPPROTO_IPV6, unix.IPV6_RECVERR, extErr(unix.SO_EE_ORIGIN_ICMP6, 1, 4, fw6))) // a v6 port unreachable
	f.Add(cmsg(unix.IPPROTO_IP, unix.IP_RECVERR, extErr(unix.SO_EE_ORIGIN_ICMP, 3, 3, fw4))[:20]) // cut inside the offender
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = parseRecvErr(b)
	})
}
