package lab

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
	"unsafe"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"golang.org/x/sys/unix"
)

// captureSnaplen keeps headers and the start of payloads; probes are small.
const captureSnaplen = 256

// captureBuf is the socket receive buffer; large so a burst is not lost
// while the writer is busy (losses are reported by Stop, never hidden).
const captureBuf = 64 << 20

// Capture records every frame crossing one interface of the firewall
// namespace, both directions, with kernel timestamps, into a pcap file.
type Capture struct {
	fd   int
	path string
	done chan struct{}
	stop chan struct{}
	once sync.Once
	err  error
	n    int
}

// CaptureStats is what a finished capture reports.
type CaptureStats struct {
	Path    string
	Packets int
	// Dropped counts frames the kernel could not queue to the capture
	// socket. Any drop invalidates a proof built on the capture.
	Dropped uint32
}

// StartCapture starts capturing on the firewall's scanner leg into path.
// Because the scanner's only link ends there, the capture sees every packet
// the scanner sends, before the firewall filters or netem loses it.
func (l *Lab) StartCapture(path string) (*Capture, error) {
	return startCapture(l.Firewall, FirewallScannerIf, path)
}

func startCapture(ns, ifname, path string) (*Capture, error) {
	c := &Capture{fd: -1, path: path, done: make(chan struct{}), stop: make(chan struct{})}
	err := Do(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return fmt.Errorf("capture interface %s: %w", ifname, err)
		}
		proto := htons(unix.ETH_P_ALL)
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		c.fd = fd
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
			return fmt.Errorf("bind packet socket: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, captureBuf); err != nil {
			return fmt.Errorf("SO_RCVBUFFORCE: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			return fmt.Errorf("SO_TIMESTAMPNS: %w", err)
		}
		// A receive timeout lets the reader notice Stop without a packet.
		tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return fmt.Errorf("SO_RCVTIMEO: %w", err)
		}
		return nil
	})
	if err != nil {
		if c.fd >= 0 {
			unix.Close(c.fd)
		}
		return nil, fmt.Errorf("lab: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		unix.Close(c.fd)
		return nil, fmt.Errorf("lab: capture file: %w", err)
	}
	go c.loop(f)
	return c, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// loop reads frames until Stop and writes them to f.
func (c *Capture) loop(f *os.File) {
	defer close(c.done)
	bw := bufio.NewWriterSize(f, 1<<20)
	w := pcapgo.NewWriterNanos(bw)
	err := w.WriteFileHeader(captureSnaplen, layers.LinkTypeEthernet)
	buf := make([]byte, captureSnaplen)
	oob := make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{})))*2)
	for err == nil {
		select {
		case <-c.stop:
			// Drain what is already queued, then finish.
			for {
				n, ok, rerr := c.readOne(buf, oob, w, unix.MSG_DONTWAIT)
				if rerr != nil || !ok {
					err = rerr
					break
				}
				c.n += n
			}
			goto out
		default:
		}
		var n int
		n, _, err = c.readOne(buf, oob, w, 0)
		c.n += n
	}
out:
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	c.err = err
}

// readOne reads at most one frame and writes it; ok is false when nothing
// was waiting.
func (c *Capture) readOne(buf, oob []byte, w *pcapgo.Writer, flags int) (n int, ok bool, err error) {
	rn, oobn, _, _, err := unix.Recvmsg(c.fd, buf, oob, flags|unix.MSG_TRUNC)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("capture read: %w", err)
	}
	ts := time.Now()
	if msgs, perr := unix.ParseSocketControlMessage(oob[:oobn]); perr == nil {
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS &&
				len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
				t := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
				ts = time.Unix(t.Sec, t.Nsec)
			}
		}
	}
	capLen := min(rn, len(buf))
	ci := gopacket.CaptureInfo{Timestamp: ts, CaptureLength: capLen, Length: rn}
	if err := w.WritePacket(ci, buf[:capLen]); err != nil {
		return 0, false, fmt.Errorf("capture write: %w", err)
	}
	return 1, true, nil
}

// Stop ends the capture, flushes the file and returns its statistics.
func (c *Capture) Stop() (CaptureStats, error) {
	c.once.Do(func() { close(c.stop) })
	<-c.done
	st := CaptureStats{Path: c.path, Packets: c.n}
	if c.fd >= 0 {
		if s, err := unix.GetsockoptTpacketStats(c.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			st.Dropped = s.Drops
		}
		unix.Close(c.fd)
		c.fd = -1
	}
	return st, c.err
}
