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
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"firewalliq/appliance/buildinfo"
	"firewalliq/appliance/store"
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
	// DefaultMaxMessageUDP is the UDP default, see validate.
	DefaultMaxMessageUDP = 2048
)

// Sentinel errors.
var (
	// ErrBudgetExceeded means a destination's outbox is at twice its budget
	// and EnqueueFinding cannot add a finding (audit events never see it:
	// they wait in the audit log).
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
	// Version is the product version reported in bodies; the running
	// build's (buildinfo.Get) when empty.
	Version string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Sealer seals destination secrets; required for TLS client keys and
	// webhook keys.
	Sealer Sealer
}

// Outbox is the durable queue of SIEM events in the appliance database.
type Outbox struct {
	db *sql.DB
	// reads runs the status reads, which every dashboard and /readyz
	// request makes, through prepared statements (store.StmtCache).
	reads *store.StmtCache
	opts  Options
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
		opts.Version = buildinfo.Get().Version
	}
	return &Outbox{db: db, reads: store.NewStmtCache(db), opts: opts}
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

// Validate checks d's settings as CreateDestination will, without storing
// anything; errors wrap ErrInvalidDestination.
func (d Destination) Validate() error { return d.validate() }

// validate checks d and fills defaults.
func (d *Destination) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidDestination, fmt.Sprintf(format, a...))
	}
	if err := checkName(d.Name); err != nil {
		return bad("%v", err)
	}
	if d.Format == "" {
		d.Format = FormatOCSF
	}
	if d.Format != FormatOCSF && d.Format != FormatCEF {
		return bad("format %q is not ocsf or cef", d.Format)
	}
	if d.MaxMessage == 0 {
		d.MaxMessage = DefaultMaxMessage
		if d.Kind == KindUDP {
			// RFC 5426 section 3.2: receivers SHOULD take 2048 octets;
			// more risks IP fragmentation, which firewalls often drop.
			d.MaxMessage = DefaultMaxMessageUDP
		}
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
		if err := checkPort(port); err != nil {
			return bad("address %q: %v", d.Address, err)
		}
		if strings.ContainsAny(host, "@/ ") || hasControl(host) {
			return bad("address %q: host holds a character a host name cannot", d.Address)
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
		if hasControl(d.Address) {
			return bad("webhook address holds control characters")
		}
		if strings.ContainsAny(d.Address, " \t") {
			// url.Parse accepts a space in the path; a receiver would see
			// another URL than the one listed, so refuse it outright.
			return bad("webhook address %q holds a space; percent-encode it", d.Address)
		}
		u, err := url.Parse(d.Address)
		if err != nil || u.Scheme != "https" || u.Hostname() == "" || u.Opaque != "" {
			return bad("webhook address %q is not an https URL", d.Address)
		}
		if u.User != nil {
			// Credentials in a URL end up in listings, logs and the audit
			// entry; the webhook authenticates with its HMAC key instead.
			return bad("webhook address must not carry credentials (user:pass@)")
		}
		if p := u.Port(); p != "" {
			if err := checkPort(p); err != nil {
				return bad("webhook address: %v", err)
			}
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

// MaxNameLen is the longest destination name, in bytes.
const MaxNameLen = 64

// checkName accepts printable names of at most MaxNameLen bytes: they are
// shown in tables, logs and audit entries.
func checkName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return errors.New("name is required")
	case len(name) > MaxNameLen:
		return fmt.Errorf("name is longer than %d bytes", MaxNameLen)
	case !utf8.ValidString(name):
		return errors.New("name is not UTF-8")
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("name holds the non-printable character %U", r)
		}
	}
	return nil
}

// hasControl reports whether s holds a control character.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}

// checkPort accepts a decimal port 1..65535.
func checkPort(p string) error {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p {
		return fmt.Errorf("port %q is not 1..65535", p)
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
	// A new destination starts at the current end of the audit log: it
	// receives what happens from now on (its own creation entry first).
	head, headCP, err := heads(ctx, tx)
	if err != nil {
		return Destination{}, err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO siem_destinations
		(id, tenant_id, name, kind, address, format, server_name, ca_pem, client_cert_pem, client_key_sealed, hmac_key_sealed, max_message, budget_bytes, created_at, audit_cursor, checkpoint_cursor)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, tenant, d.Name, d.Kind, d.Address, d.Format, d.ServerName, nilIfEmpty(d.CAPEM), nilIfEmpty(d.ClientCertPEM),
		keySealed, hmacSealed, d.MaxMessage, d.BudgetBytes, d.CreatedAt, head, headCP)
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
	rows, err := o.reads.QueryContext(ctx, `SELECT `+destColumns+` FROM siem_destinations ORDER BY tenant_id IS NOT NULL, tenant_id, name`)
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
// ones). journal.Journal.Record, the appliance's one audit write path,
// calls it right after appending the entry.
//
// Enqueue takes every audit entry up to e.Seq that a destination has not
// taken yet, not only e: entries the audit package appends itself (tamper
// alarms) and checkpoints it signs inside Append travel in the same
// transaction, in audit order, and calling Enqueue twice for one entry does
// nothing the second time. A destination whose outbox is at its budget
// takes nothing more: its events wait in the audit log, and the worker
// moves them into the outbox as deliveries free space. So Enqueue never
// fails an action because a SIEM is down.
func (o *Outbox) Enqueue(ctx context.Context, tx *sql.Tx, e audit.Entry) error {
	return o.syncWith(ctx, tx, e.Seq, "", &e)
}

// EnqueueFinding writes a finding event inside tx (the transaction that
// stores the finding). auditSeq is the seq of the audit entry of the scan
// that produced it, so the SIEM can tie the two together. Audit entries
// already committed are enqueued first, so the finding follows them.
//
// Findings are not in the audit log and cannot wait there, so they are
// written even when a destination is over its budget, up to twice the
// budget; beyond that EnqueueFinding fails with ErrBudgetExceeded.
func (o *Outbox) EnqueueFinding(ctx context.Context, tx *sql.Tx, tenant string, auditSeq int64, f Finding) error {
	head, _, err := heads(ctx, tx)
	if err != nil {
		return err
	}
	if err := o.sync(ctx, tx, head, ""); err != nil {
		return err
	}
	ev := FromFinding(tenant, auditSeq, o.opts.Now(), f)
	payload, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("siem enqueue finding: %w", err)
	}
	dests, err := loadCursors(ctx, tx, "")
	if err != nil {
		return err
	}
	for _, d := range dests {
		if d.tenant != "" && d.tenant != tenant {
			continue
		}
		if d.pending+int64(len(payload)) > 2*d.budget {
			return fmt.Errorf("siem enqueue finding to %s (%d of %d bytes pending): %w", d.id, d.pending, d.budget, ErrBudgetExceeded)
		}
		if err := o.insert(ctx, tx, d, auditSeq, payload); err != nil {
			return err
		}
		if err := d.save(ctx, tx); err != nil {
			return err
		}
	}
	return nil
}

// syncBatch bounds the audit entries one sync moves, so that catching up a
// long backlog never holds the write lock for long.
const syncBatch = 1000

// cursor is one destination's enqueueing state.
type cursor struct {
	id, tenant       string // tenant "" means appliance-wide
	next, pending    int64
	budget           int64
	auditCur, cpCur  int64
	changed, blocked bool
}

func loadCursors(ctx context.Context, tx *sql.Tx, only string) ([]*cursor, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, COALESCE(tenant_id, ''), next_seq, pending_bytes, budget_bytes, audit_cursor, checkpoint_cursor
		FROM siem_destinations WHERE ? = '' OR id = ? ORDER BY id`, only, only)
	if err != nil {
		return nil, fmt.Errorf("siem enqueue: %w", err)
	}
	defer rows.Close()
	var out []*cursor
	for rows.Next() {
		c := &cursor{}
		if err := rows.Scan(&c.id, &c.tenant, &c.next, &c.pending, &c.budget, &c.auditCur, &c.cpCur); err != nil {
			return nil, fmt.Errorf("siem enqueue: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (c *cursor) save(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `UPDATE siem_destinations SET next_seq = ?, pending_bytes = ?, audit_cursor = ?, checkpoint_cursor = ? WHERE id = ?`,
		c.next, c.pending, c.auditCur, c.cpCur, c.id)
	if err != nil {
		return fmt.Errorf("siem enqueue: %w", err)
	}
	return nil
}

// insert adds one outbox row for c with c's next sequence number.
func (o *Outbox) insert(ctx context.Context, tx *sql.Tx, c *cursor, auditSeq int64, payload []byte) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO siem_outbox (dest_id, seq, audit_seq, created_at, event) VALUES (?, ?, ?, ?, ?)`,
		c.id, c.next, auditSeq, o.opts.Now().UTC().Format(time.RFC3339Nano), payload)
	if err != nil {
		return fmt.Errorf("siem enqueue: %w", err)
	}
	c.next++
	c.pending += int64(len(payload))
	c.changed = true
	return nil
}

// heads returns the last audit seq and the last checkpoint id.
func heads(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (seq, cp int64, err error) {
	err = q.QueryRowContext(ctx, `SELECT (SELECT COALESCE(MAX(seq), 0) FROM audit_entries), (SELECT COALESCE(MAX(id), 0) FROM audit_checkpoints)`).Scan(&seq, &cp)
	if err != nil {
		return 0, 0, fmt.Errorf("siem: audit head: %w", err)
	}
	return seq, cp, nil
}

// item is one audit entry or checkpoint on its way into the outbox, at its
// place in the audit log: a checkpoint of tree size n follows entry n.
type item struct {
	pos     int64 // audit seq, or checkpoint tree size
	cpID    int64 // 0 for entries
	tenant  string
	payload []byte
}

// sync moves audit entries up to seq upto, and the checkpoints they reach,
// into the outbox of every destination (or only destination `only`) that
// has not taken them yet, within each destination's budget.
func (o *Outbox) sync(ctx context.Context, tx *sql.Tx, upto int64, only string) error {
	return o.syncWith(ctx, tx, upto, only, nil)
}

// syncWith is sync with the entry at upto already in hand (or nil), which
// spares reading back and decoding the entry just appended: the common case.
func (o *Outbox) syncWith(ctx context.Context, tx *sql.Tx, upto int64, only string, have *audit.Entry) error {
	dests, err := loadCursors(ctx, tx, only)
	if err != nil || len(dests) == 0 {
		return err
	}
	minCur, minCP := dests[0].auditCur, dests[0].cpCur
	for _, d := range dests[1:] {
		minCur, minCP = min(minCur, d.auditCur), min(minCP, d.cpCur)
	}
	items, limit, err := o.readAudit(ctx, tx, minCur, minCP, upto, have)
	if err != nil || len(items) == 0 {
		return err
	}
	for _, d := range dests {
		for _, it := range items {
			if it.pos > limit {
				break
			}
			if (it.cpID == 0 && it.pos <= d.auditCur) || (it.cpID != 0 && it.cpID <= d.cpCur) {
				continue // already taken
			}
			// Checkpoints cover the whole appliance: appliance-wide
			// destinations only.
			take := d.tenant == "" || (it.cpID == 0 && it.tenant == d.tenant)
			if take {
				if d.pending+int64(len(it.payload)) > d.budget {
					break // wait in the audit log until deliveries free space
				}
				if err := o.insert(ctx, tx, d, it.pos, it.payload); err != nil {
					return err
				}
			}
			if it.cpID == 0 {
				d.auditCur = it.pos
			} else {
				d.cpCur = it.cpID
			}
			d.changed = true
		}
		if d.changed {
			if err := d.save(ctx, tx); err != nil {
				return err
			}
		}
	}
	return nil
}

// readEntriesTolerant reads entries from..to one by one and forwards a row
// that no longer decodes as an audit.tamper event naming its seq, instead of
// stopping: the SIEM is the independent witness, and a corrupted row must
// not keep it from hearing about the row, or about the tamper alarm that
// start-up verification raises after it.
func (o *Outbox) readEntriesTolerant(ctx context.Context, tx *sql.Tx, from, to int64) ([]audit.Entry, error) {
	var out []audit.Entry
	for seq := from; seq <= to; seq++ {
		e, err := audit.ReadEntry(ctx, tx, seq)
		switch {
		case errors.Is(err, audit.ErrBadEncoding):
			det, _ := json.Marshal(map[string]string{"reason": "undecodable audit entry", "error": err.Error()})
			e = audit.Entry{Seq: seq, Time: o.opts.Now().UTC(), ActorName: "siem", Action: audit.ActAuditTamper,
				Object: fmt.Sprintf("audit entry %d", seq), Details: det}
		case errors.Is(err, sql.ErrNoRows):
			// A row deleted from the middle: nothing to forward; the gap in
			// audit seq numbers is itself visible at the SIEM.
			continue
		case err != nil:
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// readAudit reads the entries after seq `after` up to `upto` (at most
// syncBatch) and the checkpoints after id `afterCP`, merged in audit order.
// limit is the last position the batch covers completely.
func (o *Outbox) readAudit(ctx context.Context, tx *sql.Tx, after, afterCP, upto int64, have *audit.Entry) ([]item, int64, error) {
	to := min(upto, after+syncBatch)
	var entries []audit.Entry
	if have != nil && have.Seq == upto && after == upto-1 {
		entries = []audit.Entry{*have}
	} else if after < to {
		// audit.ReadEntries decodes the stored entries; their encoding is
		// the audit package's business, not ours.
		var err error
		if entries, err = audit.ReadEntries(ctx, tx, after+1, to); errors.Is(err, audit.ErrBadEncoding) {
			entries, err = o.readEntriesTolerant(ctx, tx, after+1, to)
		}
		if err != nil {
			return nil, 0, fmt.Errorf("siem: %w", err)
		}
	}
	var items []item
	limit := upto
	for _, e := range entries {
		payload, err := json.Marshal(FromAudit(e))
		if err != nil {
			return nil, 0, fmt.Errorf("siem: encode event: %w", err)
		}
		items = append(items, item{pos: e.Seq, tenant: e.Tenant, payload: payload})
	}
	if to < upto {
		limit = to
	}
	cps, err := tx.QueryContext(ctx, `SELECT id, size, time, note FROM audit_checkpoints WHERE id > ? AND size <= ? ORDER BY id LIMIT ?`, afterCP, limit, syncBatch)
	if err != nil {
		return nil, 0, fmt.Errorf("siem: read checkpoints: %w", err)
	}
	defer cps.Close()
	var all []item
	k := 0
	for cps.Next() {
		var id, size int64
		var at, note string
		if err := cps.Scan(&id, &size, &at, &note); err != nil {
			return nil, 0, fmt.Errorf("siem: read checkpoints: %w", err)
		}
		for k < len(items) && items[k].pos <= size {
			all = append(all, items[k])
			k++
		}
		t, _ := time.Parse(time.RFC3339Nano, at)
		details, _ := json.Marshal(map[string]any{"tree_size": size, "note": note})
		payload, err := json.Marshal(Event{AuditSeq: size, Time: t.UTC(), Action: string(audit.ActAuditCheckpoint), ActorName: "appliance",
			Object: "checkpoint:" + itoa(size), Details: details})
		if err != nil {
			return nil, 0, fmt.Errorf("siem: encode checkpoint: %w", err)
		}
		all = append(all, item{pos: size, cpID: id, payload: payload})
	}
	if err := cps.Err(); err != nil {
		return nil, 0, fmt.Errorf("siem: read checkpoints: %w", err)
	}
	return append(all, items[k:]...), limit, nil
}

// SyncDest moves destination id's backlog from the audit log into its
// outbox, as far as its budget allows. The worker calls it before every
// delivery; it also picks up entries whose writers never called Enqueue.
func (o *Outbox) SyncDest(ctx context.Context, id string) error {
	var cur, cp int64
	err := o.db.QueryRowContext(ctx, `SELECT audit_cursor, checkpoint_cursor FROM siem_destinations WHERE id = ?`, id).Scan(&cur, &cp)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("siem destination %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("siem sync: %w", err)
	}
	head, headCP, err := heads(ctx, o.db)
	if err != nil {
		return err
	}
	if cur >= head && cp >= headCP {
		return nil // the common case: no write transaction at all
	}
	return store.InTx(ctx, o.db, func(tx *sql.Tx) error { return o.sync(ctx, tx, head, id) })
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
	// Backlog is the number of audit entries this destination has not yet
	// looked at (a tenant's destination will skip other tenants' among
	// them): non-zero while the outbox is at its budget, or for the moment
	// between an entry's commit and the worker's next look.
	Backlog int64 `json:"audit_backlog"`
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
		err := o.reads.QueryRowContext(ctx, `SELECT next_seq - 1, delivered_seq, pending_bytes, delivered_at, attempts, failures, last_error, last_error_at, next_attempt_at,
			(SELECT COUNT(*) FROM siem_outbox WHERE dest_id = d.id), (SELECT MIN(created_at) FROM siem_outbox WHERE dest_id = d.id),
			(SELECT COALESCE(MAX(seq), 0) FROM audit_entries) - d.audit_cursor
			FROM siem_destinations d WHERE id = ?`, d.ID).Scan(&s.LastSeq, &s.DeliveredSeq, &s.PendingBytes, &s.DeliveredAt, &s.Attempts, &s.Failures,
			&s.LastError, &s.LastErrorAt, &s.NextAttempt, &s.Pending, &oldest, &s.Backlog)
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
