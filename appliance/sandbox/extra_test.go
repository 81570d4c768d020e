package sandbox

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"firewalliq/probe/lab"
)

// TestAddTCP adds a service to a running sandbox: the outside zone reads
// what it sends through the firewall (which the call opened for it), an
// unknown zone and port 0 are refused, and Close stops it with the rest.
func TestAddTCP(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the sandbox needs root (ip netns, nftables); run the suite as root, as CI does")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sb, err := New(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	const hello = "220 added <b>service</b>\r\n"
	addr, err := sb.AddTCP(ctx, ZoneDMZ, 8025, func(c net.Conn) { _, _ = c.Write([]byte(hello)) })
	if err != nil {
		t.Fatal(err)
	}
	if addr != dmzHost {
		t.Fatalf("address %s, want %s", addr, dmzHost)
	}
	for _, bad := range []struct {
		zone string
		port uint16
	}{{"moon", 1}, {ZoneInternal, 0}} {
		if _, err := sb.AddTCP(ctx, bad.zone, bad.port, func(net.Conn) {}); err == nil {
			t.Errorf("AddTCP(%q, %d) accepted", bad.zone, bad.port)
		}
	}
	var got string
	err = lab.Do(sb.Scanner, func() error {
		c, err := net.DialTimeout("tcp4", net.JoinHostPort(addr, "8025"), 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		b, err := io.ReadAll(c)
		got = string(b)
		return err
	})
	if err != nil || got != hello {
		t.Fatalf("read %q from the outside zone: %v", got, err)
	}
	out, err := exec.Command("ip", "netns", "exec", sb.Firewall, "nft", "list", "chain", "inet", table, "forward").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "dport 8025 accept") {
		t.Errorf("firewall chain: %v\n%s", err, out)
	}
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
}
