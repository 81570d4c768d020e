package ui

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// sniffTimeout bounds how long a new connection may take to send its first
// byte before it is dropped.
const sniffTimeout = 10 * time.Second

// TLSListener serves TLS on ln and answers a client that speaks plain HTTP
// to the same port with a permanent redirect to https:// (and nothing
// else), so the console is never served in clear. The first byte tells
// them apart: a TLS ClientHello starts with 0x16. Each connection is
// sniffed in its own goroutine, so a client that sends nothing cannot stall
// the accept loop; it is dropped after sniffTimeout.
func TLSListener(ln net.Listener, cfg *tls.Config) net.Listener {
	l := &sniffListener{Listener: ln, cfg: cfg, conns: make(chan net.Conn), done: make(chan struct{})}
	go l.acceptLoop()
	return l
}

type sniffListener struct {
	net.Listener
	cfg   *tls.Config
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	mu    sync.Mutex
	err   error
}

func (l *sniffListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			l.mu.Lock()
			l.err = err
			l.mu.Unlock()
			l.Close()
			return
		}
		go l.sniff(c)
	}
}

// sniff routes one connection: TLS to Accept, plain HTTP to a redirect.
func (l *sniffListener) sniff(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(sniffTimeout))
	br := bufio.NewReader(c)
	first, err := br.Peek(1)
	if err != nil {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	pc := &peekedConn{Conn: c, r: br}
	if first[0] != 0x16 {
		redirect(pc)
		return
	}
	select {
	case l.conns <- tls.Server(pc, l.cfg):
	case <-l.done:
		c.Close()
	}
}

// redirect reads one plain HTTP request and answers 308 to the same host
// and path over https, then closes.
func redirect(c *peekedConn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(sniffTimeout))
	req, err := http.ReadRequest(c.r)
	if err != nil || req.Host == "" || !httpguts.ValidHostHeader(req.Host) {
		_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
		return
	}
	target := "https://" + req.Host + req.URL.RequestURI()
	body := "use HTTPS: " + target + "\n"
	_, _ = fmt.Fprintf(c, "HTTP/1.1 308 Permanent Redirect\r\nLocation: %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", target, len(body), body)
}

// Accept returns the next TLS connection.
func (l *sniffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.err != nil {
			return nil, l.err
		}
		return nil, net.ErrClosed
	}
}

// Close stops accepting; connections already handed out stay open.
func (l *sniffListener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.Listener.Close()
	})
	return err
}

// peekedConn reads through the buffered reader that holds the sniffed
// byte.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
