package sensor

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// Subjects and JetStream names, inside each tenant's account. A tenant is
// one NATS account, so these names never collide across tenants and no
// subject of one tenant is visible from another's.
const (
	// JobsStream holds signed jobs, one subject per sensor
	// (jobSubject), each read by the sensor's own durable consumer.
	JobsStream = "FIQ_JOBS"
	// ResultsStream holds the events sensors send back (resultSubject),
	// read by the console's consumer and removed once acknowledged.
	ResultsStream = "FIQ_RESULTS"
	// ResultsConsumer is the console's durable consumer of ResultsStream.
	ResultsConsumer = "console"
	// ResultsDedupWindow is how long JetStream remembers a result's
	// message id: a sensor that re-sends within it (after a lost ack or a
	// partition) stores nothing twice. It spans a job's longest validity.
	ResultsDedupWindow = 24 * time.Hour
)

func jobSubject(sensorID string) string    { return "fiq.job." + sensorID }
func resultSubject(sensorID string) string { return "fiq.res." + sensorID }
func heartbeatSubject(sensorID string) string {
	return "fiq.hb." + sensorID
}
func inboxPrefix(sensorID string) string { return "_INBOX_" + sensorID }

// Identity is who an NKey belongs to.
type Identity struct {
	SensorID string
	Tenant   string
}

// hub is the embedded NATS server with JetStream, its authenticator and
// the console's own connection to each tenant's account.
type hub struct {
	srv    *server.Server
	auth   *authenticator
	logf   func(string, ...any)
	mu     sync.Mutex
	tenant map[string]*tenantConn // by tenant id
}

// tenantConn is the console's in-process connection to one tenant account.
type tenantConn struct {
	nc *nats.Conn
	js jetstream.JetStream
}

// hubOptions configure startHub.
type hubOptions struct {
	Listen   string      // host:port; port 0 picks one
	StoreDir string      // JetStream storage
	TLS      *tls.Config // the console certificate
	// Lookup finds an active sensor by its public NKey; any error refuses
	// the connection.
	Lookup func(ctx context.Context, nkey string) (Identity, error)
	Logf   func(string, ...any)
	// Within, if set, runs the server's start (which opens its listener)
	// on a thread of its choosing (see Service.ListenWithin).
	Within func(start func() error) error
}

// authenticator is the server's CustomClientAuthentication: it checks the
// NKey signature over the connection's nonce, asks Lookup whether the key
// belongs to an active sensor (every connection, so a revoked sensor is
// refused at once), and binds the connection to the sensor's tenant
// account with permissions for its own subjects only.
type authenticator struct {
	lookup  func(ctx context.Context, nkey string) (Identity, error)
	account func(tenant string) (*server.Account, error)
	mu      sync.Mutex
	console map[string]string // console NKey -> tenant (in memory only)
	logf    func(string, ...any)
}

func (a *authenticator) Check(c server.ClientAuthentication) bool {
	o := c.GetOpts()
	if o == nil || o.Nkey == "" || o.Sig == "" {
		return false
	}
	pk, err := nkeys.FromPublicKey(o.Nkey)
	if err != nil {
		return false
	}
	sig, err := decodeSig(o.Sig)
	if err != nil || pk.Verify(c.GetNonce(), sig) != nil {
		return false
	}
	a.mu.Lock()
	tenant, isConsole := a.console[o.Nkey]
	a.mu.Unlock()
	if isConsole {
		acc, err := a.account(tenant)
		if err != nil {
			return false
		}
		c.RegisterUser(&server.User{Username: "console", Account: acc})
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id, err := a.lookup(ctx, o.Nkey)
	if err != nil {
		a.logf("sensor connection refused from %s: %v", c.RemoteAddress(), err)
		return false
	}
	acc, err := a.account(id.Tenant)
	if err != nil {
		a.logf("sensor %s: account: %v", id.SensorID, err)
		return false
	}
	c.RegisterUser(&server.User{Username: id.SensorID, Account: acc, Permissions: sensorPermissions(id.SensorID)})
	return true
}

// sensorPermissions lets a sensor read its own job consumer, publish its
// own results and heartbeats, and receive replies on its own inbox, and
// nothing else in its tenant's account.
func sensorPermissions(id string) *server.Permissions {
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			resultSubject(id),
			heartbeatSubject(id),
			"$JS.API.CONSUMER.INFO." + JobsStream + "." + id,
			"$JS.API.CONSUMER.MSG.NEXT." + JobsStream + "." + id,
			"$JS.ACK." + JobsStream + "." + id + ".>",
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{inboxPrefix(id) + ".>", cancelSubject(id)}},
	}
}

// startHub starts the embedded server and waits until it accepts
// connections.
func startHub(o hubOptions) (*hub, error) {
	host, port, err := splitListen(o.Listen)
	if err != nil {
		return nil, err
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	h := &hub{tenant: map[string]*tenantConn{}, logf: o.Logf}
	h.auth = &authenticator{lookup: o.Lookup, account: h.account, console: map[string]string{}, logf: o.Logf}
	opts := &server.Options{
		ServerName: "firewalliq-console",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Clean(o.StoreDir),
		// The appliance owns the process: no signal handlers, no
		// HTTP monitor, and the server's log stays off (errors reach
		// the appliance log through the services).
		NoSigs: true, NoLog: true, HTTPPort: 0,
		// Sensors sign the nonce with their NKey (authenticator.Check).
		AlwaysEnableNonce:          true,
		CustomClientAuthentication: h.auth,
		MaxPayload:                 1 << 20,
	}
	if o.TLS != nil {
		opts.TLSConfig = o.TLS
		opts.TLS = true
		opts.TLSTimeout = 5
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("sensor hub: %w", err)
	}
	// Start does not block; it opens the listener on the calling thread,
	// which is what lets Within place the listener in another network
	// namespace.
	start := func() error { srv.Start(); return nil }
	if o.Within != nil {
		err = o.Within(start)
	} else {
		err = start()
	}
	if err != nil {
		srv.Shutdown()
		return nil, fmt.Errorf("sensor hub: %w", err)
	}
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("sensor hub: server did not start within 10s")
	}
	h.srv = srv
	return h, nil
}

// URL is the listener's address as a URL, "tls://host:port".
func (h *hub) URL() string {
	ip, port := h.addr()
	return "tls://" + net.JoinHostPort(ip.String(), strconv.Itoa(port))
}

// addr is the listener's address.
func (h *hub) addr() (net.IP, int) {
	if a, ok := h.srv.Addr().(*net.TCPAddr); ok {
		return a.IP, a.Port
	}
	return net.IPv4zero, 0
}

// account returns the tenant's account, created with JetStream on first use.
func (h *hub) account(tenant string) (*server.Account, error) {
	if tenant == "" {
		return nil, errors.New("no tenant")
	}
	acc, isNew := h.srv.LookupOrRegisterAccount(tenant)
	if isNew || !acc.JetStreamEnabled() {
		if err := acc.EnableJetStream(nil, nil); err != nil {
			return nil, fmt.Errorf("tenant %s: enable jetstream: %w", tenant, err)
		}
	}
	return acc, nil
}

// conn returns the console's connection to tenant's account, creating the
// account, the connection and the two streams on first use.
func (h *hub) conn(ctx context.Context, tenant string) (*tenantConn, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if tc := h.tenant[tenant]; tc != nil {
		return tc, nil
	}
	if _, err := h.account(tenant); err != nil {
		return nil, err
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	pub, _ := kp.PublicKey()
	h.auth.mu.Lock()
	h.auth.console[pub] = tenant
	h.auth.mu.Unlock()
	nc, err := nats.Connect("", nats.InProcessServer(h.srv), nats.Nkey(pub, kp.Sign), nats.Name("console:"+tenant),
		nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("console connection to tenant %s: %w", tenant, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: JobsStream, Subjects: []string{"fiq.job.*"}, Storage: jetstream.FileStorage,
		Retention: jetstream.WorkQueuePolicy, MaxAge: 25 * time.Hour, Duplicates: 10 * time.Minute,
	}); err != nil {
		nc.Close()
		return nil, fmt.Errorf("tenant %s: jobs stream: %w", tenant, err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: ResultsStream, Subjects: []string{"fiq.res.*"}, Storage: jetstream.FileStorage,
		Retention: jetstream.WorkQueuePolicy, Duplicates: ResultsDedupWindow,
	}); err != nil {
		nc.Close()
		return nil, fmt.Errorf("tenant %s: results stream: %w", tenant, err)
	}
	tc := &tenantConn{nc: nc, js: js}
	h.tenant[tenant] = tc
	return tc, nil
}

// ensureConsumer creates the sensor's durable job consumer (idempotent).
func (h *hub) ensureConsumer(ctx context.Context, tenant, sensorID string) error {
	tc, err := h.conn(ctx, tenant)
	if err != nil {
		return err
	}
	_, err = tc.js.CreateOrUpdateConsumer(ctx, JobsStream, jetstream.ConsumerConfig{
		Durable: sensorID, FilterSubject: jobSubject(sensorID), AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: time.Minute, MaxDeliver: -1,
	})
	if err != nil {
		return fmt.Errorf("job consumer of sensor %s: %w", sensorID, err)
	}
	return nil
}

// kick closes every connection authenticated with nkey (after a
// revocation: the authenticator then refuses its reconnection, since
// Lookup no longer finds the key active).
func (h *hub) kick(nkey string) int {
	cz, err := h.srv.Connz(&server.ConnzOptions{Username: true, Limit: 1 << 20})
	if err != nil {
		return 0
	}
	n := 0
	for _, c := range cz.Conns {
		if c.AuthorizedUser == nkey && h.srv.DisconnectClientByID(c.Cid) == nil {
			n++
		}
	}
	return n
}

// connected returns the NKeys with a live connection (the server reports
// a connection's NKey as its authorised user).
func (h *hub) connected() map[string]bool {
	out := map[string]bool{}
	cz, err := h.srv.Connz(&server.ConnzOptions{Username: true, Limit: 1 << 20})
	if err != nil {
		return out
	}
	for _, c := range cz.Conns {
		if c.AuthorizedUser != "" {
			out[c.AuthorizedUser] = true
		}
	}
	return out
}

// shutdown closes the console connections and stops the server.
func (h *hub) shutdown() {
	h.mu.Lock()
	for _, tc := range h.tenant {
		tc.nc.Close()
	}
	h.tenant = map[string]*tenantConn{}
	h.mu.Unlock()
	h.srv.Shutdown()
	h.srv.WaitForShutdown()
}

// decodeSig reads a nonce signature as the server's own NKey check does:
// raw URL base64, or standard base64 from older clients.
func decodeSig(s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.StdEncoding.DecodeString(s)
	}
	return b, err
}
