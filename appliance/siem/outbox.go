package siem

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"firewalliq/audit"
)

// Destination kinds.
const (
	KindUDP     = "udp"     // RFC 5426
	KindTCP     = "tcp"     // RFC 6587, octet counting
	KindTLS     = "tls"     // RFC 5425
	KindWebhook = "webhook" // HTTPS POST, HMAC-SHA256 signed
)

// Defaults for a new destination.
const (
	// DefaultBudget is a destination's outbox disk budget. At about 1.5 KB
	// per stored event it holds roughly 170,000 events: days of a busy
	// appliance's audit traffic, so a SIEM outage of hours loses nothing.
	DefaultBudget = 256 << 20
	// DefaultMaxMessage is rsyslog's default maxMessageSize; longer
	// messages are shrunk (details dropped, long strings cut) to fit.
	DefaultMaxMessage = 8192
)

// Sentinel errors.
var (
	// ErrBudgetExceeded means a destination's outbox is full. Enqueue then
	// fails, and with it the action being audited: the outbox never drops an
	// event silently. The worker raises an alert well before (WarnAt).
	ErrBudgetExceeded = errors.New("siem outbox budget exceeded")
	// ErrInvalidDestination means a destination's settings are malformed.
	ErrInvalidDestination = errors.New("invalid siem destination")
	// ErrNotFound means no destination has that id or name.
	ErrNotFound = errors.New("siem destination not found")
	// ErrNoSealer means a destination has a secret but the outbox was made
	// without a Sealer to protect it.
	ErrNoSealer = errors.New("siem: no sealer for secrets")
)

// Sealer protects secrets at rest; *keyring.Keyring implements it.
type Sealer interface {
	Seal(plaintext, ad []byte) ([]byte, error)
	Open(sealed, ad []byte) ([]byte, error)
}

// Options configure an Outbox.
type Options struct {
	// ApplianceID identifies this appliance in every message.
	ApplianceID string
	// Hostname is the RFC 5424 HOSTNAME; ApplianceID when empty.
	Hostname string
	// Version is the product version reported in bodies; "dev" when empty.
	Version string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Sealer seals destination secrets; required for TLS client keys and
	// webhook keys.
	Sealer Sealer
}

// Outbox is the durable queue of SIEM events in the appliance database.
type Outbox struct {
	db   *sql.DB
	opts Options
}

// New returns an Outbox over db, which must have the siem migration.
func New(db *sql.DB, opts Options) *Outbox {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Hostname == "" {
		opts.Hostname = opts.ApplianceID
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	return &Outbox{db: db, opts: opts}
}

// meta returns the body metadata for sequence number seq.
func (o *Outbox) meta(seq int64) Meta {
	return Meta{ApplianceID: o.opts.ApplianceID, Hostname: o.opts.Hostname, Version: o.opts.Version, Seq: seq}
}

// Destination is where events go. Secrets (ClientKeyPEM, HMACKey) are
// accepted by CreateDestination and never returned by listings.
type Destination struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant,omitempty"` // "" means appliance-wide
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	// Address is host:port for syslog kinds and an https:// URL for webhooks.
	Address string `json:"address"`
	Format  string `json:"format"`
	// ServerName is the name the TLS certificate must carry; the host of
	// Address when empty.
	ServerName string `json:"server_name,omitempty"`
	// CAPEM pins the CA(s) that may sign the receiver's certificate (TLS:
	// required; webhook: optional, the system roots otherwise).
	CAPEM         []byte `json:"-"`
	ClientCertPEM []byte `json:"-"`
	ClientKeyPEM  []byte `json:"-"`
	HMACKey       []byte `json:"-"`
	MaxMessage    int    `json:"max_message"`
	BudgetBytes   int64  `json:"budget_bytes"`
	CreatedAt     string `json:"created_at"`
}

// validate checks d and fills defaults.
func (d *Destination) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidDestination, fmt.Sprintf(format, a...))
	}
	if strings.TrimSpace(d.Name) == "" {
		return bad("name is required")
	}
	if d.Format == "" {
		d.Format = FormatOCSF
	}
	if d.Format != FormatOCSF && d.Format != FormatCEF {
		return bad("format %q is not ocsf or cef", d.Format)
	}
	if d.MaxMessage == 0 {
		d.MaxMessage = DefaultMaxMessage
	}
	if d.MaxMessage < 480 {
		// RFC 5426: every receiver takes 480 octets; less cannot carry the
		// header and structured data.
		return bad("max message %d is below 480", d.MaxMessage)
	}
	if d.BudgetBytes == 0 {
		d.BudgetBytes = DefaultBudget
	}
	if d.BudgetBytes < 0 {
		return bad("negative budget")
	}
	switch d.Kind {
	case KindUDP, KindTCP, KindTLS:
		host, port, err := net.SplitHostPort(d.Address)
		if err != nil || host == "" || port == "" {
			return bad("address %q is not host:port", d.Address)
		}
		if d.Kind == KindTLS {
			if len(d.CAPEM) == 0 {
				return bad("a tls destination needs a pinned CA")
			}
			if d.ServerName == "" {
				d.ServerName = host
			}
		}
	case KindWebhook:
		u, err := url.Parse(d.Address)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return bad("webhook address %q is not an https URL", d.Address)
		}
		if len(d.HMACKey) < 16 {
			return bad("a webhook needs an HMAC key of at least 16 bytes")
		}
		if d.Format != FormatOCSF {
			return bad("webhooks carry OCSF JSON only")
		}
	default:
		return bad("kind %q is not udp, tcp, tls or webhook", d.Kind)
	}
	if len(d.CAPEM) > 0 {
		if !x509.NewCertPool().AppendCertsFromPEM(d.CAPEM) {
			return bad("CA file holds no PEM certificate")
		}
	}
	if (len(d.ClientCertPEM) > 0) != (len(d.ClientKeyPEM) > 0) {
		return bad("client certificate and key go together")
	}
	return nil
}

// newID returns a destination id.
func newID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("siem: crypto/rand failed: " + err.Error())
	}
	return fmt.Sprintf("siem_%x", b)
}

// CreateDestination stores d in tx and returns it with ID and CreatedAt set.
// The caller records audit.ActSIEMDestinationCreate in the same tx.
func (o *Outbox) CreateDestination(ctx context.Context, tx *sql.Tx, d Destination) (Destination, error) {
	if err := d.validate(); err != nil {
		return Destination{}, err
	}
	if d.ID == "" {
		d.ID = newID()
	}
	d.CreatedAt = o.opts.Now().UTC().Format(time.RFC3339Nano)
	var keySealed, hmacSealed []byte
	var err error
	if len(d.ClientKeyPEM) > 0 || len(d.HMACKey) > 0 {
		if o.opts.Sealer == nil {
			return Destination{}, ErrNoSealer
		}
	}
	if len(d.ClientKeyPEM) > 0 {
		if keySealed, err = o.opts.Sealer.Seal(d.ClientKeyPEM, []byte("siem-client-key:"+d.ID)); err != nil {
			return Destination{}, fmt.Errorf("seal client key: %w", err)
		}
	}
	if len(d.HMACKey) > 0 {
		if hmacSealed, err = o.opts.Sealer.Seal(d.HMACKey, []byte("siem-hmac:"+d.ID)); err != nil {
			return Destination{}, fmt.Errorf("seal hmac key: %w", err)
		}
	}
	var tenant any
	if d.Tenant != "" {
		tenant = d.Tenant
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO siem_destinations
		(id, tenant_id, name, kind, address, format, server_name, ca_pem, client_cert_pem, client_key_sealed, hmac_key_sealed, max_message, budget_bytes, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, tenant, d.Name, d.Kind, d.Address, d.Format, d.ServerName, nilIfEmpty(d.CAPEM), nilIfEmpty(d.ClientCertPEM),
		keySealed, hmacSealed, d.MaxMessage, d.BudgetBytes, d.CreatedAt)
	if err != nil {
		return Destination{}, fmt.Errorf("create siem destination %q: %w", d.Name, err)
	}
	d.ClientKeyPEM, d.HMACKey = nil, nil
	return d, nil
}

func nilIfEmpty(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// DeleteDestination removes a destination and its undelivered events. The
// caller records audit.ActSIEMDestinationDelete in the same tx. It returns
// how many undelivered events were discarded, for that entry's details.
func (o *Outbox) DeleteDestination(ctx context.Context, tx *sql.Tx, id string) (int64, error) {
	var n int64
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM siem_outbox WHERE dest_id = ?`, id).Scan(&n); err != nil {
		return 0, fmt.Errorf("delete siem destination: %w", err)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM siem_destinations WHERE id = ?`, id)
	if err != nil {
		return 0, fmt.Errorf("delete siem destination: %w", err)
	}
	if k, _ := res.RowsAffected(); k == 0 {
		return 0, fmt.Errorf("delete siem destination %s: %w", id, ErrNotFound)
	}
	return n, nil
}

const destColumns = `id, COALESCE(tenant_id, ''), name, kind, address, format, server_name, COALESCE(ca_pem, X''), COALESCE(client_cert_pem, X''), max_message, budget_bytes, created_at`

type scanner interface{ Scan(dest ...any) error }

func scanDest(r scanner) (Destination, error) {
	var d Destination
	err := r.Scan(&d.ID, &d.Tenant, &d.Name, &d.Kind, &d.Address, &d.Format, &d.ServerName, &d.CAPEM, &d.ClientCertPEM, &d.MaxMessage, &d.BudgetBytes, &d.CreatedAt)
	return d, err
}

// Destinations lists every destination, appliance-wide ones first.
func (o *Outbox) Destinations(ctx context.Context) ([]Destination, error) {
	rows, err := o.db.QueryContext(ctx, `SELECT `+destColumns+` FROM siem_destinations ORDER BY tenant_id IS NOT NULL, tenant_id, name`)
	if err != nil {
		return nil, fmt.Errorf("list siem destinations: %w", err)
	}
	defer rows.Close()
	var out []Destination
	for rows.Next() {
		d, err := scanDest(rows)
		if err != nil {
			return nil, fmt.Errorf("list siem destinations: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// Destination returns one destination by id or name.
func (o *Outbox) Destination(ctx context.Context, idOrName string) (Destination, error) {
	d, err := scanDest(o.db.QueryRowContext(ctx, `SELECT `+destColumns+` FROM siem_destinations WHERE id = ? OR name = ?`, idOrName, idOrName))
	if errors.Is(err, sql.ErrNoRows) {
		return Destination{}, fmt.Errorf("siem destination %q: %w", idOrName, ErrNotFound)
	}
	if err != nil {
		return Destination{}, fmt.Errorf("siem destination %q: %w", idOrName, err)
	}
	return d, nil
}

// secrets loads and opens d's sealed secrets.
func (o *Outbox) secrets(ctx context.Context, d *Destination) error {
	var key, mac []byte
	err := o.db.QueryRowContext(ctx, `SELECT COALESCE(client_key_sealed, X''), COALESCE(hmac_key_sealed, X'') FROM siem_destinations WHERE id = ?`, d.ID).Scan(&key, &mac)
	if err != nil {
		return fmt.Errorf("siem destination secrets: %w", err)
	}
	if len(key) == 0 && len(mac) == 0 {
		return nil
	}
	if o.opts.Sealer == nil {
		return ErrNoSealer
	}
	if len(key) > 0 {
		if d.ClientKeyPEM, err = o.opts.Sealer.Open(key, []byte("siem-client-key:"+d.ID)); err != nil {
			return fmt.Errorf("open client key: %w", err)
		}
	}
	if len(mac) > 0 {
		if d.HMACKey, err = o.opts.Sealer.Open(mac, []byte("siem-hmac:"+d.ID)); err != nil {
			return fmt.Errorf("open hmac key: %w", err)
		}
	}
	return nil
}

// Enqueue writes the SIEM events for a stored audit entry inside tx, the
// transaction that appended it: one outbox row per destination that takes
// the entry's tenant (its own tenant's destinations and the appliance-wide
// ones). Call it right after audit.Log.Append with the entry Append
// returned; Append is the convenience that does both.
//
// It fails with ErrBudgetExceeded when a destination's outbox is full; the
// caller must then fail its action, as for a failed audit write.
func (o *Outbox) Enqueue(ctx context.Context, tx *sql.Tx, e audit.Entry) error {
	return o.enqueue(ctx, tx, FromAudit(e))
}

// EnqueueFinding writes a finding event inside tx (the transaction that
// stores the finding). auditSeq is the seq of the audit entry of the scan
// that produced it, so the SIEM can tie the two together.
func (o *Outbox) EnqueueFinding(ctx context.Context, tx *sql.Tx, tenant string, auditSeq int64, f Finding) error {
	return o.enqueue(ctx, tx, FromFinding(tenant, auditSeq, o.opts.Now(), f))
}

// Append appends e to log and enqueues the stored entry, both in tx. It is
// the one call an audited action needs for both the audit log and the SIEM.
func (o *Outbox) Append(ctx context.Context, tx *sql.Tx, log *audit.Log, e audit.Entry) (audit.Entry, error) {
	stored, err := log.Append(ctx, tx, e)
	if err != nil {
		return audit.Entry{}, err
	}
	if err := o.Enqueue(ctx, tx, stored); err != nil {
		return audit.Entry{}, err
	}
	return stored, nil
}

// Recorder returns a function that appends an entry to log and enqueues it;
// the worker records its alerts with it.
func (o *Outbox) Recorder(log *audit.Log) func(ctx context.Context, tx *sql.Tx, e audit.Entry) error {
	return func(ctx context.Context, tx *sql.Tx, e audit.Entry) error {
		_, err := o.Append(ctx, tx, log, e)
		return err
	}
}

func (o *Outbox) enqueue(ctx context.Context, tx *sql.Tx, ev Event) error {
	payload, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("siem enqueue: %w", err)
	}
	type dest struct {
		id            string
		next, pending int64
		budget        int64
	}
	// Appliance-wide events (tenant "") match no tenant_id, only NULL.
	rows, err := tx.QueryContext(ctx, `SELECT id, next_seq, pending_bytes, budget_bytes FROM siem_destinations
		WHERE tenant_id IS NULL OR tenant_id = ? ORDER BY id`, ev.Tenant)
	if err != nil {
		return fmt.Errorf("siem enqueue: %w", err)
	}
	var dests []dest
	for rows.Next() {
		var d dest
		if err := rows.Scan(&d.id, &d.next, &d.pending, &d.budget); err != nil {
			rows.Close()
			return fmt.Errorf("siem enqueue: %w", err)
		}
		dests = append(dests, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("siem enqueue: %w", err)
	}
	size := int64(len(payload))
	now := o.opts.Now().UTC().Format(time.RFC3339Nano)
	for _, d := range dests {
		if d.pending+size > d.budget {
			return fmt.Errorf("siem enqueue to %s (%d of %d bytes pending): %w", d.id, d.pending, d.budget, ErrBudgetExceeded)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO siem_outbox (dest_id, seq, audit_seq, created_at, event) VALUES (?, ?, ?, ?, ?)`,
			d.id, d.next, ev.AuditSeq, now, payload); err != nil {
			return fmt.Errorf("siem enqueue: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE siem_destinations SET next_seq = next_seq + 1, pending_bytes = pending_bytes + ? WHERE id = ?`,
			size, d.id); err != nil {
			return fmt.Errorf("siem enqueue: %w", err)
		}
	}
	return nil
}

// Status is a destination's delivery state, for 'siem status' and the
// console.
type Status struct {
	Destination
	// LastSeq is the last sequence number assigned; DeliveredSeq the last
	// one delivered. Their difference is the number of pending events.
	LastSeq      int64 `json:"last_seq"`
	DeliveredSeq int64 `json:"delivered_seq"`
	Pending      int64 `json:"pending"`
	PendingBytes int64 `json:"pending_bytes"`
	// Oldest is when the oldest pending event was enqueued; Lag is how long
	// ago that was (zero when nothing is pending).
	Oldest      time.Time     `json:"oldest,omitzero"`
	Lag         time.Duration `json:"lag_ns"`
	DeliveredAt string        `json:"delivered_at,omitempty"`
	Attempts    int64         `json:"consecutive_failures"`
	Failures    int64         `json:"failures"`
	LastError   string        `json:"last_error,omitempty"`
	LastErrorAt string        `json:"last_error_at,omitempty"`
	NextAttempt string        `json:"next_attempt_at,omitempty"`
	// BudgetUsed is PendingBytes / BudgetBytes.
	BudgetUsed float64 `json:"budget_used"`
}

// Statuses reports every destination's delivery state.
func (o *Outbox) Statuses(ctx context.Context) ([]Status, error) {
	dests, err := o.Destinations(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Status, 0, len(dests))
	for _, d := range dests {
		s := Status{Destination: d}
		var oldest sql.NullString
		err := o.db.QueryRowContext(ctx, `SELECT next_seq - 1, delivered_seq, pending_bytes, delivered_at, attempts, failures, last_error, last_error_at, next_attempt_at,
			(SELECT COUNT(*) FROM siem_outbox WHERE dest_id = d.id), (SELECT MIN(created_at) FROM siem_outbox WHERE dest_id = d.id)
			FROM siem_destinations d WHERE id = ?`, d.ID).Scan(&s.LastSeq, &s.DeliveredSeq, &s.PendingBytes, &s.DeliveredAt, &s.Attempts, &s.Failures,
			&s.LastError, &s.LastErrorAt, &s.NextAttempt, &s.Pending, &oldest)
		if err != nil {
			return nil, fmt.Errorf("siem status %s: %w", d.Name, err)
		}
		if oldest.Valid {
			if t, err := time.Parse(time.RFC3339Nano, oldest.String); err == nil {
				s.Oldest = t
				s.Lag = o.opts.Now().Sub(t)
			}
		}
		s.BudgetUsed = float64(s.PendingBytes) / float64(s.BudgetBytes)
		out = append(out, s)
	}
	return out, nil
}

// ApplianceID derives the appliance id carried in every message from the
// appliance's audit public key: "fiq-" and the first 12 hex digits of its
// SHA-256. The key is unique per appliance and lives as long as its audit
// log, so the id is stable across restarts and upgrades.
func ApplianceID(auditPub []byte) string {
	sum := sha256.Sum256(auditPub)
	return "fiq-" + hex.EncodeToString(sum[:6])
}
