package sandbox

import (
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
	"sync"
	"time"

	"firewalliq/probe/safety"
)

// Loopback is the sandbox without root: the demo's own services on
// 127.0.0.1 (an open web port, an admin port that volunteers an SSH banner,
// a TLS server, a UDP responder) and two closed ports, an application that
// should be reachable and a database. They are the only things the demo
// probes when it cannot build namespaces.
type Loopback struct {
	Open, Banner, TLS, Closed, DB, UDP uint16
	listeners                          []net.Listener
	udp                                net.PacketConn
	wg                                 sync.WaitGroup
}

// StartLoopback starts the services on ephemeral loopback ports.
func StartLoopback(now time.Time) (*Loopback, error) {
	d := &Loopback{}
	fail := func(err error) (*Loopback, error) { d.Close(); return nil, fmt.Errorf("demo targets: %w", err) }
	listen := func(serve func(net.Conn)) (uint16, error) {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		d.listeners = append(d.listeners, ln)
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { defer c.Close(); _ = c.SetDeadline(time.Now().Add(5 * time.Second)); serve(c) }()
			}
		}()
		return uint16(ln.Addr().(*net.TCPAddr).Port), nil
	}
	var err error
	if d.Open, err = listen(func(net.Conn) {}); err != nil {
		return fail(err)
	}
	if d.Banner, err = listen(func(c net.Conn) {
		_, _ = c.Write([]byte("SSH-2.0-FirewallIQ_demo\r\n"))
		time.Sleep(100 * time.Millisecond)
	}); err != nil {
		return fail(err)
	}
	cert, err := demoCert(now)
	if err != nil {
		return fail(err)
	}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if d.TLS, err = listen(func(c net.Conn) { _ = tls.Server(c, tlsConf).Handshake() }); err != nil {
		return fail(err)
	}
	// Closed ports: bind, note the port, release it.
	for _, p := range []*uint16{&d.Closed, &d.DB} {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return fail(err)
		}
		*p = uint16(ln.Addr().(*net.TCPAddr).Port)
		_ = ln.Close()
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	d.udp = pc
	d.UDP = uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		buf := make([]byte, 1500)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], addr) // answer like a DNS or NTP server would: something comes back
		}
	}()
	return d, nil
}

// Close stops every demo service.
func (d *Loopback) Close() {
	for _, ln := range d.listeners {
		_ = ln.Close()
	}
	if d.udp != nil {
		_ = d.udp.Close()
	}
	d.wg.Wait()
}

// demoCert makes the TLS service's self-signed certificate.
func demoCert(now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "demo.firewalliq.test", Organization: []string{"FirewallIQ demo"}},
		DNSNames:     []string{"demo.firewalliq.test"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(90 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	if len(der) == 0 {
		return tls.Certificate{}, errors.New("empty certificate")
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// Plan is the loopback story's scan plan and expected policy: the same
// three mistakes as the sandbox's, made by the services themselves (an
// admin port listening, an application that is down, a database port
// answered by a reset where the policy expects silence). raw says whether
// the scan may use raw sockets (CAP_NET_RAW, as the appliance's service
// has): only then does it also send TCP SYN and UDP probes.
func (d *Loopback) Plan(raw bool) Plan {
	ports := fmt.Sprintf("tcp:%d,%d,%d,%d,%d", d.Open, d.Banner, d.TLS, d.Closed, d.DB)
	kinds := []safety.Kind{safety.KindTCPConnect, safety.KindTLSHello, safety.KindBanner}
	dns := ""
	if raw {
		ports += fmt.Sprintf(" udp:%d", d.UDP)
		kinds = append([]safety.Kind{safety.KindTCPSyn}, append(kinds, safety.KindUDP)...)
		dns = fmt.Sprintf("  - {name: dns, action: allow, to: [self], ports: \"udp:%d\", severity: medium}\n", d.UDP)
	}
	p := func(n uint16) string { return fmt.Sprint(n) }
	return Plan{
		Mode: ModeLoopback, CIDRs: []string{"127.0.0.1/32"}, Ports: ports, Probes: kinds, MaxPPS: 50,
		PolicyName: "demo-loopback",
		Policy: `# The demo's loopback services: web and TLS must answer, the admin port
# must not, the application must be up; denied ports must be silent.
version: 1
name: demo-loopback
vantage_point: self
default: deny
default_severity: medium
denial: drop
groups:
  - {name: self, cidrs: [127.0.0.1/32]}
canaries:
  - {name: web, target: 127.0.0.1, proto: tcp, port: ` + p(d.TLS) + `}
rules:
  - {name: web, action: allow, to: [self], ports: "tcp:` + p(d.Open) + `,` + p(d.TLS) + `", severity: high}
  - {name: app, action: allow, to: [self], ports: "tcp:` + p(d.Closed) + `", severity: high}
  - {name: no-admin, action: deny, to: [self], ports: "tcp:` + p(d.Banner) + `", severity: critical}
  - {name: db, action: deny, to: [self], ports: "tcp:` + p(d.DB) + `", severity: high}
` + dns,
		Hosts: []Host{{Zone: "loopback", Addr: "127.0.0.1", Services: []string{
			"web tcp/" + p(d.Open), "ssh (admin) tcp/" + p(d.Banner), "https tcp/" + p(d.TLS),
			"app tcp/" + p(d.Closed) + " (down)", "db tcp/" + p(d.DB) + " (closed)", "dns udp/" + p(d.UDP)}}},
		Mistakes: []Mistake{
			{Kind: KindExposure, Target: "127.0.0.1", Proto: "tcp", Port: d.Banner, What: "an admin port that answers"},
			{Kind: KindBlocked, Target: "127.0.0.1", Proto: "tcp", Port: d.Closed, What: "an application that must be reachable but is down"},
			{Kind: KindDenialStyle, Target: "127.0.0.1", Proto: "tcp", Port: d.DB, What: "a database port refused by a reset where the policy expects silence"},
		},
		NotInScope: []string{"127.0.0.2", "10.0.0.1"},
	}
}
