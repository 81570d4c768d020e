package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"firewalliq/appliance"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/cli/apiclient"
	"firewalliq/probe/safety"
)

// pinnedClient is an HTTPS client that trusts exactly the certificate
// whose SHA-256 (hex, of the DER) is pin, as the CLI's --cert-sha256 does.
func pinnedClient(pin string) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		// The certificate is checked by VerifyConnection against the pin
		// instead of a chain: it is self-signed.
		InsecureSkipVerify: true, //nolint:gosec // pinned in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no certificate")
			}
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if got := hex.EncodeToString(sum[:]); got != pin {
				return fmt.Errorf("certificate %s, want %s", got, pin)
			}
			return nil
		}}}}
}

// slowScans has root add a security lead who registers a key and a scope
// of 1,000 closed ports on 127.0.0.1, and requests n tcp-connect scans of
// it at 1 packet per second: scans that run for far longer than the test,
// and, past the safety profile's concurrent scans, wait in the queue. It
// returns the lead and the scans' ids.
func (e *e2e) slowScans(n int) (*e2e, []string) {
	t := e.t
	sam, keyDir := e.securityLead("sam")
	sam.must(sam.code()+"\n", "key", "add", filepath.Join(keyDir, "sam.pub"))
	now := e.clock().UTC()
	doc := fmt.Sprintf(`{"id":"slow-1","tenant":%q,"name":"slow","environment":"non-production","cidrs":["127.0.0.1/32"],"exclude":[],
		"ports":"tcp:41000-41999","probes":["tcp-connect"],"not_before":%q,"not_after":%q,"max_pps":1}`,
		e.res.Tenant, now.Add(-time.Hour).Format(time.RFC3339), now.Add(24*time.Hour).Format(time.RFC3339))
	signedFile := sam.signScopeFile(keyDir, "sam", doc)
	sam.must("", "scope", "register", signedFile)
	var ids []string
	for range n {
		var sc map[string]any
		if err := json.Unmarshal([]byte(sam.must(sam.code()+"\n", "scan", "request", "--scope", "slow-1", "--target", "127.0.0.1", "--rate", "1", "--json")), &sc); err != nil {
			t.Fatal(err)
		}
		id, _ := sc["id"].(string)
		if id == "" || (sc["state"] != "queued" && sc["state"] != "running") {
			t.Fatalf("scan request: %v", sc)
		}
		ids = append(ids, id)
	}
	return sam, ids
}

// stream is an open event stream read line by line.
type stream struct {
	lines chan string
	seen  []string
}

// openStream opens path (an event stream) with the session cookie token.
func (e *e2e) openStream(client *http.Client, path, token string) *stream {
	t := e.t
	req, err := http.NewRequest(http.MethodGet, e.addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: auth.SessionCookieName, Value: token})
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &stream{lines: make(chan string, 64)}
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
	}()
	return s
}

// next waits until deadline for the stream's next line, kept in seen. It
// says what came first: a line (ok), the end of the stream (ended), or the
// deadline (neither).
func (s *stream) next(deadline <-chan time.Time) (line string, ok, ended bool) {
	select {
	case l, open := <-s.lines:
		if !open {
			return "", false, true
		}
		s.seen = append(s.seen, l)
		return l, true, false
	case <-deadline:
		return "", false, false
	}
}

// ended reads the rest of the stream and reports whether it ended
// within d.
func (s *stream) ended(d time.Duration) bool {
	deadline := time.After(d)
	for {
		if _, ok, ended := s.next(deadline); !ok {
			return ended
		}
	}
}

// read reads lines until one starts with prefix (true), the stream ends
// or within passes (false).
func (s *stream) read(prefix string, within time.Duration) bool {
	deadline := time.After(within)
	for {
		l, ok, _ := s.next(deadline)
		if !ok {
			return false
		}
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
}

// TestServeShutdownWithOpenStream runs the real serve command, opens the
// console's live-progress stream of a running scan with a real HTTPS
// client, and stops serve (as SIGTERM does, through the command's
// context): the stream ends at once with a "shutdown" event and a retry
// delay, and serve exits 0 well within its 5 s shutdown bound. Before the
// fix, Shutdown waited for the stream, gave up after 5 s and serve failed
// with "serve: shutdown: context deadline exceeded".
func TestServeShutdownWithOpenStream(t *testing.T) {
	e := startE2E(t)
	e.firstLogin()
	// One scan more than the compiled-in profile runs at once (2 in the
	// shipped build, 4 in a lab build): the last waits in the queue. A
	// running scan's stream also ends when serve stops the scan; a queued
	// scan's stream has nothing to end it.
	prof, err := safety.Load()
	if err != nil {
		t.Fatal(err)
	}
	sam, ids := e.slowScans(prof.MaxConcurrentScans + 1)
	cred, err := apiclient.LoadCredentials(sam.credentialsPath())
	if err != nil {
		t.Fatal(err)
	}
	client := pinnedClient(e.pin)
	var streams []*stream
	queued := -1
	for i, id := range ids {
		s := e.openStream(client, "/console/scans/"+id+"/events", cred.Token)
		if !s.read("data: {", 10*time.Second) {
			t.Fatalf("scan %s: no progress event; stream so far %q", id, s.seen)
		}
		if strings.Contains(s.seen[len(s.seen)-1], `"state":"queued"`) {
			queued = i
		}
		streams = append(streams, s)
	}
	if queued < 0 {
		var seen [][]string
		for _, s := range streams {
			seen = append(seen, s.seen)
		}
		t.Fatalf("no scan waits in the queue: %q", seen)
	}
	// The API's stream of the queued scan, as 'firewalliq scan watch' reads it.
	api := e.openStream(client, "/api/v1/scans/"+ids[queued]+"/events", cred.Token)
	if !api.read("data: {", 10*time.Second) {
		t.Fatalf("API stream: no progress event; %q", api.seen)
	}

	start := time.Now()
	e.stop() // cancels serve's context (SIGTERM) and waits; fails the test unless it exits 0
	took := time.Since(start)
	if took > 3*time.Second {
		t.Errorf("serve took %v to stop with streams open (its shutdown bound is 5 s)", took)
	}
	if strings.Contains(e.logs.String(), "deadline exceeded") {
		t.Errorf("shutdown timed out:\n%s", e.logs.String())
	}
	// The browser of the queued scan was told: a retry delay and a
	// "shutdown" event, then the stream ended.
	q := streams[queued]
	if !q.read("event: shutdown", 2*time.Second) {
		t.Fatalf("queued scan: no shutdown event; stream %q", q.seen)
	}
	if !slices.Contains(q.seen, "retry: 5000") {
		t.Errorf("no retry field before the shutdown event: %q", q.seen)
	}
	// The API's stream says so too ('scan watch' then reports the
	// shutdown, not an end of the scan).
	if !api.read("event: shutdown", 2*time.Second) {
		t.Fatalf("API stream: no shutdown event; stream %q", api.seen)
	}
	for _, s := range append(streams, api) {
		if !s.ended(2 * time.Second) {
			t.Fatalf("stream did not end: %q", s.seen)
		}
	}
	t.Logf("serve stopped %v after the shutdown began, with %d event streams open", took, len(streams)+1)
}

// selfSigned writes a self-signed ECDSA certificate for 127.0.0.1 valid
// from notBefore to notAfter, and its key (0600), into dir; it returns the
// files and the certificate's DER.
func selfSigned(t *testing.T, dir, name string, notBefore, notAfter time.Time) (certFile, keyFile string, der []byte) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name, Organization: []string{"customer"}},
		NotBefore: notBefore, NotAfter: notAfter, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, der
}

// serveWith runs 'serve' on an initialised data directory dir with vars
// as its environment until the test ends or stop is called; it returns
// the address and fingerprint serve printed, and stop, which stops serve
// and returns its exit code.
func serveWith(t *testing.T, dir string, vars map[string]string) (addr, pin string, logs *syncBuffer, stop func() int) {
	t.Helper()
	logs = &syncBuffer{}
	environ := []string{}
	for k, v := range vars {
		environ = append(environ, k+"="+v)
	}
	env := &Env{Stdin: strings.NewReader(""), Stdout: logs, Stderr: logs, Getenv: func(k string) string { return vars[k] },
		Environ: func() []string { return environ }, Now: time.Now}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- Run(ctx, env, []string{"serve", "--data", dir, "--listen", "127.0.0.1:0"}) }()
	code := -1
	var once sync.Once
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(20 * time.Second):
				t.Errorf("serve did not stop")
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	listening := regexp.MustCompile(`listening on (https://[0-9.:]+) \(certificate SHA-256 ([0-9a-f]{64})\)`)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := listening.FindStringSubmatch(logs.String()); m != nil {
			return m[1], m[2], logs, stop
		}
		select {
		case code = <-done:
			once.Do(cancel)
			return "", "", logs, func() int { return code }
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("serve did not say where it listens:\n%s", logs.String())
	return "", "", logs, stop
}

// TestServeConfiguredCertificate serves the console with a certificate
// the test made (tls.cert_file, tls.key_file through FIQ_TLS_*): a client
// that trusts only that certificate connects and is served exactly it,
// and serve prints its fingerprint. A key of another certificate, an
// expired certificate (exit 1) and a half-set pair (exit 2) are refused
// at start with an error naming the key, before anything listens.
func TestServeConfiguredCertificate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cfg := appliance.DefaultConfig()
	cfg.DataDir = dir
	res, err := appliance.Init(context.Background(), cfg, appliance.InitOptions{Admin: "root"})
	if err != nil {
		t.Fatal(err)
	}
	certDir := t.TempDir()
	now := time.Now()
	cert, key, der := selfSigned(t, certDir, "customer", now.Add(-time.Hour), now.Add(90*24*time.Hour))
	_, otherKey, _ := selfSigned(t, certDir, "other", now.Add(-time.Hour), now.Add(90*24*time.Hour))
	expired, expiredKey, _ := selfSigned(t, certDir, "expired", now.AddDate(-1, 0, 0), now.Add(-time.Hour))

	addr, pin, logs, stop := serveWith(t, dir, map[string]string{"FIQ_PRODUCTION": "false", "FIQ_TLS_CERT_FILE": cert, "FIQ_TLS_KEY_FILE": key})
	if addr == "" {
		t.Fatalf("serve did not start: exit %d\n%s", stop(), logs.String())
	}
	sum := sha256.Sum256(der)
	if pin != hex.EncodeToString(sum[:]) || pin == res.CertFingerprint {
		t.Fatalf("serve printed fingerprint %s; the configured certificate's is %x, init's %s", pin, sum, res.CertFingerprint)
	}
	roots := x509.NewCertPool()
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots.AddCert(parsed)
	// An ordinary verifying client (name 127.0.0.1 against the IP SAN)
	// whose only root is the configured certificate.
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	resp, err := client.Get(addr + "/console/login")
	if err != nil {
		t.Fatalf("a client pinning the configured certificate: %v\n%s", err, logs.String())
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 || !bytes.Equal(resp.TLS.PeerCertificates[0].Raw, der) {
		t.Fatalf("status %d; the served leaf is not the configured certificate", resp.StatusCode)
	}
	// A client pinning init's certificate no longer gets through.
	if _, err := pinnedClient(res.CertFingerprint).Get(addr + "/console/login"); err == nil {
		t.Fatal("init's certificate is still served")
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, logs.String())
	}

	// A half-set pair is a usage error of the configuration (exit 2, like
	// any invalid value); the files are checked when the appliance opens
	// (exit 1, like the vault's files).
	tests := []struct {
		name string
		vars map[string]string
		exit int
		want string
	}{
		{"key of another certificate", map[string]string{"FIQ_TLS_CERT_FILE": cert, "FIQ_TLS_KEY_FILE": otherKey}, 1, "tls.key_file " + otherKey + " is not the private key of tls.cert_file"},
		{"expired certificate", map[string]string{"FIQ_TLS_CERT_FILE": expired, "FIQ_TLS_KEY_FILE": expiredKey}, 1, "tls.cert_file " + expired + ": expired at"},
		{"certificate without key", map[string]string{"FIQ_TLS_CERT_FILE": cert}, 2, "tls.cert_file and tls.key_file must be set together"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.vars["FIQ_PRODUCTION"] = "false"
			addr, _, logs, stop := serveWith(t, dir, tc.vars)
			code := stop()
			if addr != "" || code != tc.exit || !strings.Contains(logs.String(), tc.want) || !strings.Contains(logs.String(), "invalid configuration") {
				t.Fatalf("served at %q, exit %d, want %d and %q:\n%s", addr, code, tc.exit, tc.want, logs.String())
			}
		})
	}
}
