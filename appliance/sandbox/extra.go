package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"firewalliq/probe/lab"
)

// Zones a test can add a service to with AddTCP.
const (
	ZoneDMZ      = "dmz"
	ZoneInternal = "internal"
)

// extraConnTimeout bounds one connection to an added service.
const extraConnTimeout = 5 * time.Second

// AddTCP starts one more TCP service in a running sandbox: a listener on
// port of zone's host (ZoneDMZ or ZoneInternal), inside that zone's
// namespace, calling serve for each connection (closed after at most 5 s),
// and a firewall rule that lets the outside zone reach it. It returns the
// host's address. It is for tests that need a service the demo's plan does
// not have (a server whose banner or certificate carries markup, for one);
// the demo never calls it, so its plan and firewall stay as documented.
// Close stops the service with the rest of the sandbox.
func (s *Sandbox) AddTCP(ctx context.Context, zone string, port uint16, serve func(net.Conn)) (string, error) {
	var ns, addr string
	switch zone {
	case ZoneDMZ:
		ns, addr = s.DMZ, dmzHost
	case ZoneInternal:
		ns, addr = s.Internal, intHost
	default:
		return "", fmt.Errorf("sandbox: add a service: unknown zone %q", zone)
	}
	if port == 0 {
		return "", errors.New("sandbox: add a service: port 0")
	}
	var ln net.Listener
	err := lab.Do(ns, func() error {
		l, err := net.Listen("tcp4", net.JoinHostPort(addr, fmt.Sprint(port)))
		ln = l
		return err
	})
	if err != nil {
		return "", fmt.Errorf("sandbox: add a service in %s: %w", ns, err)
	}
	es := &extraService{ln: ln}
	es.wg.Add(1)
	go es.serve(serve)
	s.undo.Add(es)
	rule := fmt.Sprintf("iifname %q ip daddr %s tcp dport %d accept comment \"added by a test\"", ifOutside, addr, port)
	if err := s.run(ctx, "", "ip", "netns", "exec", s.Firewall, "nft", "insert", "rule", "inet", table, "forward", rule); err != nil {
		return "", fmt.Errorf("sandbox: open the firewall for %s/%d: %w", addr, port, err)
	}
	return addr, nil
}

// extraService is a listener AddTCP started.
type extraService struct {
	ln net.Listener
	wg sync.WaitGroup
}

func (e *extraService) serve(h func(net.Conn)) {
	defer e.wg.Done()
	for {
		c, err := e.ln.Accept()
		if err != nil {
			return
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(extraConnTimeout))
			h(c)
		}()
	}
}

// Close stops accepting and waits for the connections being served.
func (e *extraService) Close() error {
	err := e.ln.Close()
	e.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
