// Package sensor is the fleet: remote sensors that scan from other
// segments and sites under one console, over NATS JetStream
// (docs/fleet.md).
//
// The console side is Service: one-time enrolment tokens (created by an
// admin with step-up), enrolment (a sensor trades a token for the right of
// its own NKey to connect), listing, revocation, heartbeats and silence
// alerts, all audited through the journal; Serve runs the embedded NATS
// server (TLS with the console certificate, one NATS account per tenant,
// JetStream under the data directory) and RemoteRunner dispatches signed
// jobs to a sensor as a probe/runner.Runner, so the scan service treats a
// sensor like the local engine.
//
// The sensor side is Agent (firewalliq sensor run): it dials out to the
// console, so only the console listens; it verifies every job exactly as
// the local runner does (it is a runner.Local, with the console's job key
// pinned at enrolment and its own compiled-in safety profile), spools the
// events durably, and sends them with JetStream message ids, so a retry
// after a partition stores nothing twice.
package sensor

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/store"
	"firewalliq/audit"
	"firewalliq/probe/safety"
)

// Errors of the sensor service. Suggested mappings are in docs/fleet.md.
var (
	// ErrNotFound means no sensor has that id in the caller's tenant.
	ErrNotFound = errors.New("sensor not found")
	// ErrToken means an enrolment token is unknown, used or expired.
	ErrToken = errors.New("enrolment token invalid, used or expired")
	// ErrInvalid means a name, vantage label or NKey is malformed.
	ErrInvalid = errors.New("invalid sensor request")
	// ErrExists means the tenant already has a sensor of that name.
	ErrExists = errors.New("sensor name already in use")
	// ErrRevoked means the sensor is revoked.
	ErrRevoked = errors.New("sensor revoked")
	// ErrFleetOff means the embedded NATS server is not running
	// (sensors.listen is not configured, or Serve has not started).
	ErrFleetOff = errors.New("sensor fleet is not running")
)

// TokenTTL is how long an enrolment token may be used.
const TokenTTL = 24 * time.Hour

// Gate is the identity service as the sensor service needs it;
// *auth.Service implements it.
type Gate interface {
	Authorize(ctx context.Context, p auth.Principal, op auth.Operation, tenant string) (string, error)
	RefuseNotFound(ctx context.Context, p auth.Principal, tenant string, op auth.Operation, object string, err error) error
	UseStepUp(ctx context.Context, tx *sql.Tx, p auth.Principal, op auth.Operation, canonicalRequest []byte, code string) error
	StepUpRefused(ctx context.Context, p auth.Principal, tenant string, op auth.Operation, err error) error
}

// Deps are the service's dependencies.
type Deps struct {
	Store   *store.Store
	Gate    Gate
	Journal auth.Recorder
	// JobKey signs trust bundles; its public half is pinned by sensors.
	JobKey ed25519.PrivateKey
	// Certificate returns the console TLS certificate; CertSHA256 is its
	// fingerprint (hex SHA-256 of the DER), which sensors pin.
	Certificate func() (tls.Certificate, error)
	CertSHA256  string
	// ScopeKeys returns the keys trusted to sign a tenant's scopes
	// (scan.Keys.Trusted: active keys of its security leads).
	ScopeKeys func(ctx context.Context, tenant string) ([]ed25519.PublicKey, error)
	// DataDir holds JetStream's storage (DataDir/nats).
	DataDir string
	Config  Config
	Now     func() time.Time
	Logger  *slog.Logger
}

// Service is the console side of the fleet.
type Service struct {
	d Deps

	mu      sync.Mutex
	hub     *hub
	intakes map[string]bool // tenants whose results and heartbeats are read
	stop    chan struct{}   // closed by Stop: intake workers end
	sink    Sink
	runs    *runTable
	within  func(start func() error) error

	staleMu sync.Mutex
	stale   map[string]staleAsk // runs cancelStale asked to stop

	// profile is this binary's safety profile, which the jobs it
	// dispatches name (the guard of a live run verifies them with it).
	profile safety.Profile
	// mono is the real clock, not the injected one: the guard bounds a
	// run's claimed duration by the time that really passed since its
	// dispatch, a physical bound a test clock would make wrong.
	mono func() time.Time
}

// New checks deps and returns the service (the fleet is not running yet).
func New(d Deps) (*Service, error) {
	if d.Store == nil || d.Gate == nil || d.Journal == nil || d.ScopeKeys == nil || d.Certificate == nil {
		return nil, errors.New("sensor: Store, Gate, Journal, ScopeKeys and Certificate are required")
	}
	if len(d.JobKey) != ed25519.PrivateKeySize {
		return nil, errors.New("sensor: JobKey is required")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Config.SilentAfter == 0 {
		d.Config.SilentAfter = DefaultSilentAfter
	}
	prof, err := safety.Load()
	if err != nil {
		return nil, fmt.Errorf("sensor: %w", err)
	}
	return &Service{d: d, intakes: map[string]bool{}, runs: newRunTable(), stale: map[string]staleAsk{}, profile: prof, mono: time.Now}, nil
}

// Sensor is a sensor's record and state.
type Sensor struct {
	ID            string    `json:"id"`
	Tenant        string    `json:"tenant"`
	Name          string    `json:"name"`
	Vantage       string    `json:"vantage"`
	NKey          string    `json:"nkey"`
	State         string    `json:"state"` // active or revoked
	EnrolledAt    time.Time `json:"enrolled_at"`
	RevokedAt     time.Time `json:"revoked_at,omitzero"`
	LastSeen      time.Time `json:"last_seen,omitzero"`
	Version       string    `json:"version"`
	ProfileSHA256 string    `json:"profile_sha256"`
	// Silent means a sensor.silent alert stands (no heartbeat since).
	Silent bool `json:"silent"`
	// Connected means the sensor has a live connection to this console.
	Connected bool `json:"connected"`
}

// Token is a created enrolment token; Secret is shown once.
type Token struct {
	ID        string    `json:"id"`
	Tenant    string    `json:"tenant"`
	Name      string    `json:"name"`
	Vantage   string    `json:"vantage"`
	Secret    string    `json:"secret"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (s *Service) now() time.Time { return s.d.Now().UTC() }

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func parseStamp(v string) time.Time {
	if v == "" {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, v)
	return t
}

func entry(p auth.Principal, tenant string, action audit.Action, object string, details map[string]any) audit.Entry {
	d, _ := json.Marshal(details)
	return audit.Entry{Tenant: tenant, ActorID: p.UserID, ActorName: p.Name, ActorIP: p.Client.IP, UserAgent: p.Client.UserAgent,
		Action: action, Object: object, Details: d}
}

// CreateToken makes a one-time enrolment token for a sensor named name at
// vantage point vantage in tenant (admins, with step-up: code is a fresh
// TOTP, or "" to spend a grant made by auth.Service.StepUpFor for the
// challenge this returns). Audited as sensor.token.create.
func (s *Service) CreateToken(ctx context.Context, p auth.Principal, tenant, name, vantage, code string) (Token, error) {
	pin, err := s.d.Gate.Authorize(ctx, p, auth.OpSensorEnroll, tenant)
	if err != nil {
		return Token{}, fmt.Errorf("sensor token: %w", err)
	}
	if err := auth.ValidName("sensor", name); err != nil {
		return Token{}, fmt.Errorf("sensor token: %w: %w", ErrInvalid, err)
	}
	if err := auth.ValidName("vantage", vantage); err != nil {
		return Token{}, fmt.Errorf("sensor token: %w: %w", ErrInvalid, err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return Token{}, err
	}
	secret := "fiqst_" + base64.RawURLEncoding.EncodeToString(raw[:])
	now := s.now()
	t := Token{ID: store.NewID("st"), Tenant: pin, Name: name, Vantage: vantage, Secret: secret, ExpiresAt: now.Add(TokenTTL)}
	req := auth.OpRequest(auth.OpSensorEnroll, pin, map[string]string{"name": name, "vantage": vantage})
	err = s.d.Store.InTx(ctx, func(tx *sql.Tx) error {
		if err := s.d.Gate.UseStepUp(ctx, tx, p, auth.OpSensorEnroll, req, code); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sensors WHERE tenant_id = ? AND name = ? AND state = 'active'`, pin, name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: %q", ErrExists, name)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO sensor_tokens (id, tenant_id, token_sha256, name, vantage, created_by, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, t.ID, pin, tokenHash(secret), name, vantage, p.UserID, stamp(now), stamp(t.ExpiresAt)); err != nil {
			return err
		}
		_, err := s.d.Journal.Record(ctx, tx, entry(p, pin, audit.ActSensorTokenCreate, "sensor-token:"+t.ID,
			map[string]any{"name": name, "vantage": vantage, "expires": t.ExpiresAt.Format(time.RFC3339)}))
		return err
	})
	if err != nil {
		return Token{}, fmt.Errorf("sensor token: %w", s.d.Gate.StepUpRefused(ctx, p, pin, auth.OpSensorEnroll, err))
	}
	return t, nil
}

func tokenHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// EnrollRequest is what a sensor sends to enrol (the body of the
// enrolment endpoint, EnrollPath).
type EnrollRequest struct {
	Token string `json:"token"`
	// NKey is the public NKey (user, "U...") the sensor generated; its
	// seed stays on the sensor host.
	NKey          string `json:"nkey"`
	Version       string `json:"version"`
	ProfileSHA256 string `json:"profile_sha256"`
}

// EnrollResponse is what the console answers.
type EnrollResponse struct {
	SensorID   string `json:"sensor_id"`
	Tenant     string `json:"tenant"`
	TenantName string `json:"tenant_name"`
	Name       string `json:"name"`
	Vantage    string `json:"vantage"`
	// NATSURL is the address the sensor dials ("tls://host:port").
	NATSURL string `json:"nats_url"`
	// JobKey is the console's job public key, which the sensor pins.
	JobKey []byte `json:"job_key"`
	// CertSHA256 is the console certificate's fingerprint, which the
	// sensor pins for the NATS connection too.
	CertSHA256 string `json:"cert_sha256"`
}

// Enroll spends a one-time token: it records a sensor with the caller's
// NKey in the token's tenant, audited as sensor.enroll with the sensor as
// the actor. The token is the credential (there is no principal yet); a
// refused attempt is audited as access.denied. client is the caller's
// address and user agent. natsHost, if not empty, is the host the sensor
// reached the console by (used when sensors.advertise is unset and the
// listener has no host).
func (s *Service) Enroll(ctx context.Context, req EnrollRequest, client auth.Client, natsHost string) (EnrollResponse, error) {
	if !nkeys.IsValidPublicUserKey(req.NKey) {
		return EnrollResponse{}, fmt.Errorf("enrol: %w: nkey is not a public user NKey", ErrInvalid)
	}
	if len(req.Version) > 128 || len(req.ProfileSHA256) > 64 || len(req.Token) > 128 {
		return EnrollResponse{}, fmt.Errorf("enrol: %w: field too long", ErrInvalid)
	}
	natsURL, err := s.advertise(natsHost)
	if err != nil {
		return EnrollResponse{}, fmt.Errorf("enrol: %w", err)
	}
	now := s.now()
	id := store.NewID("sn")
	var out EnrollResponse
	err = s.d.Store.InTx(ctx, func(tx *sql.Tx) error {
		var tokID, tenant, name, vantage, expires, used string
		err := tx.QueryRowContext(ctx, `SELECT id, tenant_id, name, vantage, expires_at, used_at FROM sensor_tokens WHERE token_sha256 = ?`,
			tokenHash(req.Token)).Scan(&tokID, &tenant, &name, &vantage, &expires, &used)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: unknown token", ErrToken)
		}
		if err != nil {
			return err
		}
		if used != "" {
			return fmt.Errorf("%w: token %s was used", ErrToken, tokID)
		}
		if !now.Before(parseStamp(expires)) {
			return fmt.Errorf("%w: token %s expired", ErrToken, tokID)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE sensor_tokens SET used_at = ?, sensor_id = ? WHERE id = ? AND used_at = ''`, stamp(now), id, tokID); err != nil {
			return err
		}
		// A revoked sensor's name may be reused by its replacement.
		if _, err := tx.ExecContext(ctx, `UPDATE sensors SET name = name || ' (revoked ' || id || ')' WHERE tenant_id = ? AND name = ? AND state = 'revoked'`, tenant, name); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO sensors (id, tenant_id, name, vantage, nkey, state, enrolled_at, version, profile_sha256)
			VALUES (?, ?, ?, ?, ?, 'active', ?, ?, ?)`, id, tenant, name, vantage, req.NKey, stamp(now), req.Version, req.ProfileSHA256); err != nil {
			if isUnique(err) {
				return fmt.Errorf("%w: %q (or its NKey) is enrolled", ErrExists, name)
			}
			return err
		}
		var tname string
		if err := tx.QueryRowContext(ctx, `SELECT name FROM tenants WHERE id = ?`, tenant).Scan(&tname); err != nil {
			return err
		}
		d, _ := json.Marshal(map[string]any{"token": tokID, "name": name, "vantage": vantage, "nkey": req.NKey, "version": req.Version, "profile_sha256": req.ProfileSHA256})
		if _, err := s.d.Journal.Record(ctx, tx, audit.Entry{Tenant: tenant, ActorID: id, ActorName: "sensor:" + name, ActorIP: client.IP, UserAgent: client.UserAgent,
			Action: audit.ActSensorEnroll, Object: "sensor:" + id, Details: d}); err != nil {
			return err
		}
		out = EnrollResponse{SensorID: id, Tenant: tenant, TenantName: tname, Name: name, Vantage: vantage, NATSURL: natsURL,
			JobKey: s.d.JobKey.Public().(ed25519.PublicKey), CertSHA256: s.d.CertSHA256}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrToken) || errors.Is(err, ErrExists) {
			d, _ := json.Marshal(map[string]any{"operation": "sensor.enroll", "reason": err.Error()})
			aerr := store.InTx(ctx, s.d.Store.DB(), func(tx *sql.Tx) error {
				_, err := s.d.Journal.Record(ctx, tx, audit.Entry{ActorName: "sensor-enrolment", ActorIP: client.IP, UserAgent: client.UserAgent,
					Action: audit.ActAccessDenied, Object: "sensor.enroll", Details: d})
				return err
			})
			return EnrollResponse{}, fmt.Errorf("enrol: %w", errors.Join(err, aerr))
		}
		return EnrollResponse{}, fmt.Errorf("enrol: %w", err)
	}
	// The sensor's job consumer exists before it first connects.
	// The enrolment has committed (the token is spent), so a failure here
	// is logged, not returned: dispatch ensures the same again.
	if h := s.currentHub(); h != nil {
		err := s.startTenant(ctx, out.Tenant)
		if err == nil {
			err = h.ensureConsumer(ctx, out.Tenant, out.SensorID)
		}
		if err != nil {
			s.d.Logger.Warn("sensor enrolled; its job consumer will be made at the first dispatch", "sensor", out.SensorID, "err", err)
		}
	}
	return out, nil
}

// isUnique reports a UNIQUE constraint failure (SQLite's message; the
// driver has no typed error for it).
func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint")
}

// advertise returns the URL sensors dial: sensors.advertise, else the
// running listener's address, with the host the enrolment request came to
// when the listener is on all addresses.
func (s *Service) advertise(reqHost string) (string, error) {
	if s.d.Config.Advertise != "" {
		return s.d.Config.Advertise, nil
	}
	h := s.currentHub()
	if h == nil {
		return "", ErrFleetOff
	}
	ip, port := h.addr()
	host := ip.String()
	if ip.IsUnspecified() {
		if reqHost == "" {
			return "", fmt.Errorf("%w: the listener has no host; set sensors.advertise", ErrFleetOff)
		}
		host = reqHost
	}
	return "tls://" + joinHostPort(host, port), nil
}

const sensorCols = `id, tenant_id, name, vantage, nkey, state, enrolled_at, revoked_at, last_seen, version, profile_sha256, silent`

func scanSensor(row interface{ Scan(...any) error }) (Sensor, error) {
	var x Sensor
	var enrolled, revoked, seen string
	var silent int
	if err := row.Scan(&x.ID, &x.Tenant, &x.Name, &x.Vantage, &x.NKey, &x.State, &enrolled, &revoked, &seen, &x.Version, &x.ProfileSHA256, &silent); err != nil {
		return Sensor{}, err
	}
	x.EnrolledAt, x.RevokedAt, x.LastSeen, x.Silent = parseStamp(enrolled), parseStamp(revoked), parseStamp(seen), silent != 0
	return x, nil
}

// List returns the tenant's sensors by name, with their connection state.
func (s *Service) List(ctx context.Context, p auth.Principal, tenant string) ([]Sensor, error) {
	pin, err := s.d.Gate.Authorize(ctx, p, auth.OpSensorRead, tenant)
	if err != nil {
		return nil, fmt.Errorf("sensors: %w", err)
	}
	rows, err := s.d.Store.DB().QueryContext(ctx, `SELECT `+sensorCols+` FROM sensors WHERE tenant_id = ? ORDER BY name LIMIT 10000`, pin)
	if err != nil {
		return nil, fmt.Errorf("sensors: %w", err)
	}
	defer rows.Close()
	live := s.connected()
	out := []Sensor{}
	for rows.Next() {
		x, err := scanSensor(rows)
		if err != nil {
			return nil, fmt.Errorf("sensors: %w", err)
		}
		x.Connected = live[x.NKey]
		out = append(out, x)
	}
	return out, rows.Err()
}

// Get returns one of the tenant's sensors; another tenant's id is refused
// (and audited) like a missing one, wrapping ErrNotFound.
func (s *Service) Get(ctx context.Context, p auth.Principal, tenant, id string) (Sensor, error) {
	pin, err := s.d.Gate.Authorize(ctx, p, auth.OpSensorRead, tenant)
	if err != nil {
		return Sensor{}, fmt.Errorf("sensor: %w", err)
	}
	x, err := scanSensor(s.d.Store.DB().QueryRowContext(ctx, `SELECT `+sensorCols+` FROM sensors WHERE tenant_id = ? AND id = ?`, pin, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Sensor{}, fmt.Errorf("sensor %q: %w", id, s.d.Gate.RefuseNotFound(ctx, p, pin, auth.OpSensorRead, "sensor:"+id, ErrNotFound))
	}
	if err != nil {
		return Sensor{}, fmt.Errorf("sensor %q: %w", id, err)
	}
	x.Connected = s.connected()[x.NKey]
	return x, nil
}

// Revoke revokes a sensor (admins, with step-up), audited as
// sensor.revoke. Its NATS connections are closed as soon as the
// transaction commits, and its NKey is refused from then on.
func (s *Service) Revoke(ctx context.Context, p auth.Principal, tenant, id, code string) (Sensor, error) {
	pin, err := s.d.Gate.Authorize(ctx, p, auth.OpSensorRevoke, tenant)
	if err != nil {
		return Sensor{}, fmt.Errorf("revoke sensor: %w", err)
	}
	req := auth.OpRequest(auth.OpSensorRevoke, pin, map[string]string{"sensor": id})
	var x Sensor
	err = s.d.Store.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		x, err = scanSensor(tx.QueryRowContext(ctx, `SELECT `+sensorCols+` FROM sensors WHERE tenant_id = ? AND id = ?`, pin, id))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if x.State == "revoked" {
			return fmt.Errorf("%w: %s", ErrRevoked, id)
		}
		if err := s.d.Gate.UseStepUp(ctx, tx, p, auth.OpSensorRevoke, req, code); err != nil {
			return err
		}
		now := s.now()
		if _, err := tx.ExecContext(ctx, `UPDATE sensors SET state = 'revoked', revoked_at = ? WHERE id = ?`, stamp(now), id); err != nil {
			return err
		}
		x.State, x.RevokedAt = "revoked", now
		_, err = s.d.Journal.Record(ctx, tx, entry(p, pin, audit.ActSensorRevoke, "sensor:"+id, map[string]any{"name": x.Name, "vantage": x.Vantage, "nkey": x.NKey}))
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return Sensor{}, fmt.Errorf("revoke sensor %q: %w", id, s.d.Gate.RefuseNotFound(ctx, p, pin, auth.OpSensorRevoke, "sensor:"+id, err))
	}
	if err != nil {
		return Sensor{}, fmt.Errorf("revoke sensor %q: %w", id, s.d.Gate.StepUpRefused(ctx, p, pin, auth.OpSensorRevoke, err))
	}
	if h := s.currentHub(); h != nil {
		h.kick(x.NKey)
	}
	return x, nil
}

// lookup is the hub's authenticator's question: the active sensor with
// this NKey.
func (s *Service) lookup(ctx context.Context, nkey string) (Identity, error) {
	var id Identity
	var state string
	err := s.d.Store.DB().QueryRowContext(ctx, `SELECT id, tenant_id, state FROM sensors WHERE nkey = ?`, nkey).Scan(&id.SensorID, &id.Tenant, &state)
	if err != nil {
		return Identity{}, fmt.Errorf("nkey %s: %w", nkey, err)
	}
	if state != "active" {
		return Identity{}, fmt.Errorf("sensor %s: %w", id.SensorID, ErrRevoked)
	}
	return id, nil
}

// sensorByID returns an active sensor.
func (s *Service) sensorByID(ctx context.Context, id string) (Sensor, error) {
	x, err := scanSensor(s.d.Store.DB().QueryRowContext(ctx, `SELECT `+sensorCols+` FROM sensors WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Sensor{}, fmt.Errorf("sensor %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Sensor{}, err
	}
	if x.State != "active" {
		return Sensor{}, fmt.Errorf("sensor %q: %w", id, ErrRevoked)
	}
	return x, nil
}

func (s *Service) currentHub() *hub {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hub
}

func (s *Service) connected() map[string]bool {
	if h := s.currentHub(); h != nil {
		return h.connected()
	}
	return map[string]bool{}
}

// SetSink sets where results of runs this process did not dispatch go
// (after a console restart, or from a sensor's buffer); see Sink.
func (s *Service) SetSink(k Sink) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sink = k
}

// Serve runs the fleet until ctx ends: the embedded NATS server on
// Config.Listen with the console certificate and JetStream under
// DataDir/nats, the intake of heartbeats and results of every tenant that
// has sensors, and the silence watcher. It returns ErrFleetOff when
// sensors.listen is empty.
func (s *Service) Serve(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	defer s.Stop()
	t := time.NewTicker(s.d.Config.SilentAfter / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := s.CheckSilent(ctx); err != nil {
				s.d.Logger.Error("sensor silence check", "err", err)
			}
		}
	}
}

// ListenWithin makes Start open the embedded server's listener through
// wrap, which must call its argument once, synchronously, on a thread of
// its choosing and return its error. The network-namespace lab tests pass
// a function running it on a thread inside the lab's management namespace
// (probe/lab.Do), so sensors in the lab reach the console there while the
// rest of the console stays where it is. nil (the default) opens the
// listener directly. Call it before Start.
func (s *Service) ListenWithin(wrap func(start func() error) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.within = wrap
}

// Start starts the embedded server and the intake (Serve without the
// watcher loop; Stop ends it).
func (s *Service) Start(ctx context.Context) error {
	if s.d.Config.Listen == "" {
		return ErrFleetOff
	}
	if s.currentHub() != nil {
		return errors.New("sensor hub: already running")
	}
	cert, err := s.d.Certificate()
	if err != nil {
		return fmt.Errorf("sensor hub: %w", err)
	}
	s.mu.Lock()
	within := s.within
	s.mu.Unlock()
	h, err := startHub(hubOptions{
		Listen: s.d.Config.Listen, StoreDir: filepath.Join(s.d.DataDir, "nats"),
		TLS:    &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Lookup: s.lookup,
		Logf:   func(f string, a ...any) { s.d.Logger.Warn(fmt.Sprintf(f, a...)) },
		Within: within,
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.hub = h
	s.intakes = map[string]bool{}
	s.stop = make(chan struct{})
	s.mu.Unlock()
	rows, err := s.d.Store.DB().QueryContext(ctx, `SELECT DISTINCT tenant_id FROM sensors WHERE state = 'active'`)
	if err != nil {
		s.Stop()
		return err
	}
	var tenants []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			s.Stop()
			return err
		}
		tenants = append(tenants, t)
	}
	rows.Close()
	for _, t := range tenants {
		if err := s.startTenant(ctx, t); err != nil {
			s.Stop()
			return err
		}
	}
	return nil
}

// Stop shuts the embedded server down.
func (s *Service) Stop() {
	s.mu.Lock()
	h := s.hub
	s.hub = nil
	s.intakes = map[string]bool{}
	if s.stop != nil {
		close(s.stop)
		s.stop = nil
	}
	s.mu.Unlock()
	if h != nil {
		h.shutdown()
	}
}

// URL is the embedded server's address ("" when not running).
func (s *Service) URL() string {
	if h := s.currentHub(); h != nil {
		return h.URL()
	}
	return ""
}

// startTenant starts reading a tenant's heartbeats and results (once).
func (s *Service) startTenant(ctx context.Context, tenant string) error {
	h := s.currentHub()
	if h == nil {
		return ErrFleetOff
	}
	s.mu.Lock()
	if s.intakes[tenant] {
		s.mu.Unlock()
		return nil
	}
	s.intakes[tenant] = true
	s.mu.Unlock()
	fail := func(err error) error {
		s.mu.Lock()
		delete(s.intakes, tenant)
		s.mu.Unlock()
		return err
	}
	tc, err := h.conn(ctx, tenant)
	if err != nil {
		return fail(err)
	}
	if _, err := tc.nc.Subscribe("fiq.hb.*", func(m *nats.Msg) { s.heartbeat(tenant, m) }); err != nil {
		return fail(fmt.Errorf("tenant %s heartbeats: %w", tenant, err))
	}
	cons, err := tc.js.CreateOrUpdateConsumer(ctx, ResultsStream, jetstream.ConsumerConfig{
		// A short AckWait: messages delivered to a console connection
		// that went away (a restart) come again within seconds.
		Durable: ResultsConsumer, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 5 * time.Second,
		MaxAckPending: 1 << 16, MaxDeliver: -1,
	})
	if err != nil {
		return fail(fmt.Errorf("tenant %s results consumer: %w", tenant, err))
	}
	s.mu.Lock()
	stop := s.stop
	s.mu.Unlock()
	ch := make(chan jetstream.Msg, intakeBatch)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case ch <- m:
		case <-stop: // not acknowledged: delivered again after the restart
		}
	}, jetstream.PullMaxMessagesWithBytesLimit(intakeBatch, intakeBufferBytes))
	if err != nil {
		return fail(fmt.Errorf("tenant %s results: %w", tenant, err))
	}
	go func() {
		<-stop
		cc.Stop()
	}()
	go s.intakeLoop(tenant, ch, stop)
	return nil
}

// intakeBufferBytes bounds the result messages a tenant's intake has
// asked the server for and not yet taken (its pull buffer): a few large
// events (a message is at most 1 MiB) cannot fill the console's memory.
const intakeBufferBytes = 8 << 20

// Heartbeat is what a sensor publishes every HeartbeatInterval.
type Heartbeat struct {
	Version       string `json:"version"`
	ProfileSHA256 string `json:"profile_sha256"`
}

// heartbeat records a sensor's heartbeat: last_seen, version, profile
// hash, and the end of a silence. Heartbeats are telemetry, not a
// principal's change, so they are not audited (the silence alert is).
func (s *Service) heartbeat(tenant string, m *nats.Msg) {
	id := m.Subject[len("fiq.hb."):]
	var hb Heartbeat
	if err := strictDecode(m.Data, &hb); err != nil || len(hb.Version) > 128 || len(hb.ProfileSHA256) > 64 {
		s.d.Logger.Warn("sensor heartbeat malformed", "sensor", id)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := s.d.Store.DB().ExecContext(ctx, `UPDATE sensors SET last_seen = ?, version = ?, profile_sha256 = ?, silent = 0
		WHERE id = ? AND tenant_id = ? AND state = 'active'`, stamp(s.now()), hb.Version, hb.ProfileSHA256, id, tenant)
	if err != nil {
		s.d.Logger.Error("sensor heartbeat", "sensor", id, "err", err)
	}
}

// CheckSilent writes a sensor.silent alert for each active sensor whose
// last heartbeat (or enrolment, if it never sent one) is older than
// Config.SilentAfter, once per silence, and returns their ids. Serve calls
// it periodically.
func (s *Service) CheckSilent(ctx context.Context) ([]string, error) {
	cut := stamp(s.now().Add(-s.d.Config.SilentAfter))
	rows, err := s.d.Store.DB().QueryContext(ctx, `SELECT `+sensorCols+` FROM sensors
		WHERE state = 'active' AND silent = 0 AND (CASE WHEN last_seen = '' THEN enrolled_at ELSE last_seen END) < ? LIMIT 1000`, cut)
	if err != nil {
		return nil, err
	}
	var quiet []Sensor
	for rows.Next() {
		x, err := scanSensor(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		quiet = append(quiet, x)
	}
	rows.Close()
	var ids []string
	for _, x := range quiet {
		err := s.d.Store.InTx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `UPDATE sensors SET silent = 1 WHERE id = ? AND silent = 0 AND state = 'active'`, x.ID)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return nil
			}
			d, _ := json.Marshal(map[string]any{"name": x.Name, "vantage": x.Vantage, "last_seen": stamp(x.LastSeen), "silent_after": s.d.Config.SilentAfter.String()})
			_, err = s.d.Journal.Record(ctx, tx, audit.Entry{Tenant: x.Tenant, ActorName: "sensor-watch", Action: audit.ActSensorSilent, Object: "sensor:" + x.ID, Details: d})
			return err
		})
		if err != nil {
			return ids, err
		}
		s.d.Logger.Warn("sensor silent", "sensor", x.ID, "name", x.Name, "last_seen", x.LastSeen)
		ids = append(ids, x.ID)
	}
	return ids, nil
}
