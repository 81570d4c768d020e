package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// dialTimeout is how long the reference classifier waits for an answer
// before calling a port filtered: the lab answers in well under 10 ms.
const dialTimeout = 800 * time.Millisecond

// classify probes one key with the kernel's own sockets from inside the
// scanner namespace and maps the outcome to a state. It is the lab's
// reference scanner: independent of the engine, so it validates the lab.
func classify(l *Lab, k Key) (State, string, error) {
	var st State
	var why string
	err := Do(l.Scanner, func() error {
		ap := netip.AddrPortFrom(k.Addr, k.Port).String()
		switch k.Proto {
		case TCP:
			c, err := net.DialTimeout("tcp", ap, dialTimeout)
			st, why = tcpState(err)
			if c != nil {
				c.Close()
			}
		case UDP:
			c, err := net.Dial("udp", ap)
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := c.Write(dnsQuery()); err != nil {
				return err
			}
			_ = c.SetReadDeadline(time.Now().Add(dialTimeout))
			_, err = c.Read(make([]byte, 512))
			st, why = udpState(err)
		default:
			return fmt.Errorf("classify: proto %q", k.Proto)
		}
		return nil
	})
	return st, why, err
}

func tcpState(err error) (State, string) {
	var ne net.Error
	switch {
	case err == nil:
		return Open, "connected"
	case errors.Is(err, syscall.ECONNREFUSED):
		return Closed, "refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EACCES):
		return Rejected, err.Error()
	case errors.As(err, &ne) && ne.Timeout():
		return Filtered, "timeout"
	}
	return "", err.Error()
}

func udpState(err error) (State, string) {
	st, why := tcpState(err)
	switch {
	case err == nil:
		return Open, "reply"
	case st == Filtered:
		return OpenFiltered, why
	}
	return st, why
}

// dnsQuery is a DNS question for "fiq.test" type A.
func dnsQuery() []byte {
	q := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	q = append(q, 3, 'f', 'i', 'q', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1)
	return q
}

// TestLabGroundTruth builds the lab and checks, with plain kernel sockets
// from the scanner namespace, that every kind of host and port behaves as
// the ground truth says, over IPv4 and IPv6. The replies are also judged on
// the wire (WireStates over the firewall capture), which sees what kernel
// sockets hide: Linux does not fail a TCPv6 connect on ICMPv6
// admin-prohibited and reports no "soft" unreachable codes to UDP sockets.
func TestLabGroundTruth(t *testing.T) {
	l := NewT(t, Options{})
	capPath := filepath.Join(t.TempDir(), "truth.pcap")
	c, err := l.StartCapture(capPath)
	if err != nil {
		t.Fatal(err)
	}
	hosts := []uint8{1, 7, 99, 100, 127, 128, 199, 200, 254}
	var keys []Key
	for _, h := range hosts {
		for _, z := range []netip.Prefix{l.Target.V4, l.Target.V6} {
			a := hostAddr(z, h)
			keys = append(keys, Keys([]netip.Addr{a}, TCP, []uint16{22, 25, 80, 443, 3306, 8080, 8081, 8443})...)
			keys = append(keys, Keys([]netip.Addr{a}, UDP, []uint16{53, 123, 161, 514, 1900, 5060})...)
		}
	}
	obs := make([]Observation, len(keys))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			st, why, err := classify(l, k)
			if err != nil {
				t.Errorf("%s: %v", k, err)
			}
			obs[i] = Observation{Key: k, State: st, Reason: why}
		}()
	}
	wg.Wait()
	st, err := c.Stop()
	if err != nil || st.Dropped != 0 {
		t.Fatalf("capture: %v, dropped %d", err, st.Dropped)
	}

	var kernelKeys []Key
	for _, k := range keys {
		want, _ := l.Truth.Expect(k.Addr, k.Proto, k.Port)
		if k.Addr.Is6() && want.State == Rejected {
			continue // invisible to kernel sockets, checked on the wire below
		}
		if k.Proto == TCP && want.State == Rejected && want.ICMPType >= 0 && want.ICMPCode == portUnreachCode(k.Addr) {
			// The kernel fails the connect with ECONNREFUSED, as for a
			// RST: only the wire (below) tells this REJECT apart.
			continue
		}
		kernelKeys = append(kernelKeys, k)
	}
	acc := l.Truth.Compare(kernelKeys, obs)
	for _, m := range acc.Mismatches {
		t.Errorf("socket %s: got %q (%s), want %q (%s, rule %q)", m.Key, m.Got, m.Reason, m.Want.State, m.Want.Reason, m.Want.Rule)
	}

	pkts, err := ReadPcap(capPath)
	if err != nil {
		t.Fatal(err)
	}
	var wire []Observation
	for _, o := range WireStates(pkts, l.ScannerV4, l.ScannerV6) {
		wire = append(wire, o)
	}
	acc = l.Truth.Compare(keys, wire)
	for _, m := range acc.Mismatches {
		t.Errorf("wire %s: got %q (%s), want %q (%s, rule %q)", m.Key, m.Got, m.Reason, m.Want.State, m.Want.Reason, m.Want.Rule)
	}
	// The ICMP type and code must be the ones the truth names.
	for _, o := range wire {
		want, _ := l.Truth.Expect(o.Addr, o.Proto, o.Port)
		if want.ICMPType >= 0 && o.Reason != fmt.Sprintf("icmp-unreachable type %d code %d", want.ICMPType, want.ICMPCode) {
			t.Errorf("wire %s: reason %q, want type %d code %d", o.Key, o.Reason, want.ICMPType, want.ICMPCode)
		}
	}
	if acc.Right != len(keys) {
		t.Errorf("wire: %d of %d right", acc.Right, len(keys))
	}
}

// portUnreachCode is the ICMP port unreachable code of addr's family.
func portUnreachCode(addr netip.Addr) int {
	if addr.Unmap().Is4() {
		return icmp4PortUnreach
	}
	return icmp6PortUnreach
}

func hostAddr(p netip.Prefix, h uint8) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	b[len(b)-1] = h
	a, _ := netip.AddrFromSlice(b)
	return a
}

// TestLabServices checks what the listeners say: the SSH-style banner and
// the NTP server reply, from both address families.
func TestLabServices(t *testing.T) {
	l := NewT(t, Options{})
	for _, z := range []netip.Prefix{l.Target.V4, l.Target.V6} {
		a := hostAddr(z, 42)
		err := Do(l.Scanner, func() error {
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(a, 22).String(), time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(time.Second))
			b := make([]byte, 64)
			n, err := io.ReadAtLeast(c, b, len("SSH-2.0-"))
			if err != nil {
				return err
			}
			if !bytes.HasPrefix(b[:n], []byte("SSH-2.0-FiqLab")) {
				return fmt.Errorf("banner %q", b[:n])
			}
			u, err := net.Dial("udp", netip.AddrPortFrom(a, 123).String())
			if err != nil {
				return err
			}
			defer u.Close()
			req := make([]byte, 48)
			req[0] = 0x23 // v4 client
			copy(req[40:], "ORIGIN!!")
			if _, err := u.Write(req); err != nil {
				return err
			}
			_ = u.SetReadDeadline(time.Now().Add(time.Second))
			n, err = u.Read(b)
			if err != nil {
				return err
			}
			if n != 48 || b[0]&7 != 4 || string(b[24:32]) != "ORIGIN!!" {
				return fmt.Errorf("ntp reply % x", b[:n])
			}
			return nil
		})
		if err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
}

// TestLabNmap runs nmap inside the scanner namespace against a few hosts
// and checks it sees the lab as the ground truth says, except that nmap
// calls ICMP-rejected ports "filtered" (with the ICMP reason), which is the
// accuracy gap the benchmark reports.
func TestLabNmap(t *testing.T) {
	if _, err := exec.LookPath("nmap"); err != nil {
		t.Skip("nmap not installed (scripts/deps.sh installs it)")
	}
	l := NewT(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	targets := []netip.Addr{hostAddr(l.Target.V4, 1), hostAddr(l.Target.V4, 100), hostAddr(l.Target.V4, 200)}
	ports := BenchTCPPorts()
	args := []string{"-sS", "-Pn", "-n", "--max-retries", "1", "--reason", "-oX", "-", "-p", joinPorts(ports)}
	for _, a := range targets {
		args = append(args, a.String())
	}
	out, err := l.Command(ctx, l.Scanner, "nmap", args...).Output()
	if err != nil {
		t.Fatalf("nmap: %v\n%s", err, out)
	}
	obs, err := ParseNmapXML(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range obs {
		// nmap's documented difference: ICMP unreachable codes 9, 10, 13
		// are "filtered" with the code as reason.
		if o.State == Filtered && (o.Reason == "admin-prohibited" || o.Reason == "host-prohibited") {
			obs[i].State = Rejected
		}
	}
	acc := l.Truth.Compare(Keys(targets, TCP, ports), obs)
	for _, m := range acc.Mismatches {
		t.Errorf("nmap %s: got %q (%s), want %q", m.Key, m.Got, m.Reason, m.Want.State)
	}
}

func joinPorts(ps []uint16) string {
	var b []byte
	for i, p := range ps {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(p), 10)
	}
	return string(b)
}

// TestLabCapture checks that the firewall capture records the scanner's
// packets with their destinations, and that OutOfScope flags a packet to
// the outside zone and nothing else.
func TestLabCapture(t *testing.T) {
	l := NewT(t, Options{})
	path := filepath.Join(t.TempDir(), "cap.pcap")
	c, err := l.StartCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	in := hostAddr(l.Target.V4, 5)
	out := hostAddr(l.Outside.V4, 5)
	in6 := hostAddr(l.Target.V6, 5)
	for _, a := range []netip.Addr{in, in6, out} {
		_, _, err := classify(l, Key{Addr: a, Proto: TCP, Port: 80})
		if err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	st, err := c.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if st.Dropped != 0 {
		t.Errorf("capture dropped %d", st.Dropped)
	}
	pkts, err := ReadPcap(path)
	if err != nil {
		t.Fatal(err)
	}
	probes := Probes(pkts, l.ScannerV4, l.ScannerV6)
	if len(probes) != 3 {
		t.Fatalf("probes = %d (%v), want 3", len(probes), probes)
	}
	bad := OutOfScope(pkts, l.Target.Contains, l.ScannerV4, l.ScannerV6)
	if len(bad) == 0 || bad[0].Dst != out {
		t.Fatalf("out of scope = %v, want packets to %s", bad, out)
	}
	for _, p := range bad {
		if p.Dst != out {
			t.Errorf("unexpected out-of-scope packet %+v", p)
		}
	}
}

// TestSweep checks that namespaces of a dead owner are removed and those
// of a live one kept.
func TestSweep(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	ctx := context.Background()
	// A pid above the kernel's pid_max can never be alive.
	dead := fmt.Sprintf("%s%d-0000aa-scan", NamePrefix, 1<<23)
	live := fmt.Sprintf("%s%d-0000aa-scan", NamePrefix, os.Getpid())
	r := runner{}
	for _, ns := range []string{dead, live} {
		if _, err := r.run(ctx, "", "ip", "netns", "add", ns); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_, _ = r.run(ctx, "", "ip", "netns", "del", live)
		_, _ = r.run(ctx, "", "ip", "netns", "del", dead)
	})
	gone, err := Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(gone) != 1 || gone[0] != dead {
		t.Errorf("swept %v, want [%s]", gone, dead)
	}
	if _, err := os.Stat(filepath.Join(netnsDir, live)); err != nil {
		t.Errorf("live namespace removed: %v", err)
	}
}

// TestLabLeavesHostAlone checks, while a lab is up, that the host's root
// namespace has no address or route in the lab ranges: lab traffic can only
// ever be routed inside the lab.
func TestLabLeavesHostAlone(t *testing.T) {
	NewT(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, args := range [][]string{{"-4", "addr"}, {"-6", "addr"}, {"-4", "route", "show", "table", "all"}, {"-6", "route", "show", "table", "all"}} {
		out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %v: %v", args, err)
		}
		for _, bad := range []string{"198.18.", "198.19.", "fd00:f1a9"} {
			if bytes.Contains(out, []byte(bad)) {
				t.Errorf("host namespace has %s in 'ip %v':\n%s", bad, args, out)
			}
		}
	}
}
