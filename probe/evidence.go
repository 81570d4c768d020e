package probe

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// Evidence writes probe packets and replies to a pcapng stream: one section
// per run, whose header comment names the scan, and one interface of link
// type RAW (packets start at the IPv4 or IPv6 header). Raw probes are
// recorded as the exact bytes handed to the kernel, at the time the send
// call returned; replies and the kernel-built packets of connect-based
// probes as captured by the tap. It is safe for concurrent use.
type Evidence struct {
	mu  sync.Mutex
	buf *bufio.Writer
	w   *pcapgo.NgWriter
	n   uint64
	err error
}

// NewEvidence starts a pcapng section on w for scanID.
func NewEvidence(w io.Writer, scanID string) (*Evidence, error) {
	return newEvidence(w, scanID, false)
}

// switchWriter lets the pcapng writer's header go to io.Discard when
// appending to an existing section.
type switchWriter struct{ w io.Writer }

func (s *switchWriter) Write(p []byte) (int, error) { return s.w.Write(p) }

// newEvidence starts a section on w, or with appending continues the
// section already in the file that w appends to (written by an earlier run
// of the same scan, so with the same interface). One section per file
// keeps it readable by libpcap, which refuses a second section's
// interface.
func newEvidence(w io.Writer, scanID string, appending bool) (*Evidence, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	sw := &switchWriter{w: bw}
	if appending {
		sw.w = io.Discard
	}
	ng, err := pcapgo.NewNgWriterInterface(sw, pcapgo.NgInterface{
		Name:        "firewalliq",
		Description: "probes sent by the engine and replies captured by it",
		LinkType:    layers.LinkTypeRaw,
		SnapLength:  65535,
	}, pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{
		Application: "firewalliq probe",
		OS:          runtime.GOOS,
		Comment:     "scan " + scanID,
	}})
	if err != nil {
		return nil, fmt.Errorf("start pcapng: %w", err)
	}
	if err := ng.Flush(); err != nil {
		return nil, fmt.Errorf("start pcapng: %w", err)
	}
	sw.w = bw
	return &Evidence{buf: bw, w: ng}, nil
}

// Write records one packet seen at t. Errors are sticky and reported by
// Flush: evidence loss must fail the scan, but not mid-packet.
func (ev *Evidence) Write(t time.Time, data []byte) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	ev.writeLocked(t, data)
}

// writeLocked is Write for a caller holding ev.mu.
func (ev *Evidence) writeLocked(t time.Time, data []byte) {
	if ev.err != nil {
		return
	}
	ci := gopacket.CaptureInfo{Timestamp: t, CaptureLength: len(data), Length: len(data)}
	if err := ev.w.WritePacket(ci, data); err != nil {
		ev.err = fmt.Errorf("write evidence: %w", err)
		return
	}
	ev.n++
}

// Packets returns how many packets were recorded.
func (ev *Evidence) Packets() uint64 {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return ev.n
}

// Flush writes buffered packets through and returns any earlier error.
func (ev *Evidence) Flush() error {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if ev.err != nil {
		return ev.err
	}
	if err := ev.w.Flush(); err != nil {
		return fmt.Errorf("flush evidence: %w", err)
	}
	if err := ev.buf.Flush(); err != nil {
		return fmt.Errorf("flush evidence: %w", err)
	}
	return nil
}

// errPcapng is a pcapng file whose structure is broken before its end.
var errPcapng = errors.New("malformed pcapng")

// completePcapng returns the length of the longest prefix of f made of
// whole pcapng blocks. A run that died mid-write leaves a partial block;
// resume truncates to this length and continues the section, so every
// packet that was recorded whole stays (they were really sent).
func completePcapng(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	var off int64
	hdr := make([]byte, 12)
	order := binary.ByteOrder(binary.LittleEndian)
	for off+12 <= size {
		if _, err := f.ReadAt(hdr, off); err != nil {
			return off, nil
		}
		if binary.LittleEndian.Uint32(hdr) == 0x0A0D0D0A { // section header
			switch binary.LittleEndian.Uint32(hdr[8:]) {
			case 0x1A2B3C4D:
				order = binary.LittleEndian
			case 0x4D3C2B1A:
				order = binary.BigEndian
			default:
				return off, fmt.Errorf("%w: bad byte-order magic at %d", errPcapng, off)
			}
		}
		l := int64(order.Uint32(hdr[4:]))
		if l < 12 || l%4 != 0 || off+l > size {
			break
		}
		off += l
	}
	return off, nil
}
