package cli

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
)

// demoTargets are the demo's own services on 127.0.0.1: an open TCP port, a
// port that volunteers a banner, a TLS server, a UDP responder and a closed
// port. They are the only things the demo ever probes.
type demoTargets struct {
	Open, Banner, TLS, Closed, UDP uint16
	listeners                      []net.Listener
	udp                            net.PacketConn
	wg                             sync.WaitGroup
}

// startDemoTargets starts the demo services on ephemeral loopback ports.
func startDemoTargets(now time.Time) (*demoTargets, error) {
	d := &demoTargets{}
	fail := func(err error) (*demoTargets, error) { d.Close(); return nil, fmt.Errorf("demo targets: %w", err) }
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
	// A closed port: bind, note the port, release it.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	d.Closed = uint16(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
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
func (d *demoTargets) Close() {
	for _, ln := range d.listeners {
		ln.Close()
	}
	if d.udp != nil {
		d.udp.Close()
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
