package ui

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestTLSListener: on one port, TLS gets the console and plain HTTP gets a
// redirect to https and nothing else; a client that sends nothing does not
// hold up others.
func TestTLSListener(t *testing.T) {
	f := newFixture(t)
	cert, err := tls.LoadX509KeyPair(f.app.Keys.CertFile, f.app.Keys.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl := TLSListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	srv := &http.Server{Handler: f.srv.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(tl) }()
	defer srv.Close()
	addr := ln.Addr().String()

	// A silent client first: it must not block the accept loop.
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	plain := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := plain.Get("http://" + addr + "/api/v1/auth/whoami?x=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "https://"+addr+"/api/v1/auth/whoami?x=1" {
		t.Fatalf("plain HTTP: %d %v", resp.StatusCode, resp.Header)
	}

	pem, err := os.ReadFile(f.app.Keys.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	secure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}, ForceAttemptHTTP2: true}}
	resp, err = secure.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("TLS: %d", resp.StatusCode)
	}
	// A garbage first line is refused, not redirected.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: bad host\r\n\r\n"))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 400") {
		t.Fatalf("bad host: %q", buf[:n])
	}
	tl.Close()
	if _, err := tl.Accept(); err == nil {
		t.Fatal("Accept after Close succeeded")
	}
}
