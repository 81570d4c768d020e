package evidence

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"firewalliq/appliance/auth"
	"firewalliq/audit"
	"firewalliq/vault"
)

// spoolDetails is the evidence.spool audit entry's details: what the
// uploader must find in the record before it uploads it.
type spoolDetails struct {
	Record string `json:"record"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Add spools one evidence object of a scan as the appliance itself (actor
// "vault") and records its SHA-256 in an evidence.spool audit entry before
// the uploader can see it. It is durable and recorded when Add returns.
func (s *Service) Add(ctx context.Context, tenant, scan, name string, r io.Reader) (vault.RecordHeader, error) {
	e, err := s.Submit(ctx, auth.Principal{}, tenant, scan, name, r, nil)
	if err != nil {
		return vault.RecordHeader{}, err
	}
	return vault.RecordHeader{Key: e.Key, Tenant: e.Tenant, Size: e.Size, SHA256: e.SHA256, Spooled: e.Spooled}, nil
}

// Submit spools one evidence object of a scan on behalf of p (the zero
// Principal means the appliance itself) and writes the evidence.spool audit
// entry, with the object's SHA-256, size and spool record id, in one
// transaction together with within (when not nil): the submitter's own
// change, such as linking the scan's results to the object. The record
// becomes visible to the uploader only after that transaction commits; if
// it fails, the record is removed and nothing is recorded.
//
// Submit is called by the services that produce evidence (scans) for their
// own jobs; it authorises nothing itself.
func (s *Service) Submit(ctx context.Context, p auth.Principal, tenant, scan, name string, r io.Reader, within func(ctx context.Context, tx *sql.Tx, e vault.SpoolEntry) error) (vault.SpoolEntry, error) {
	key, err := vault.ScanKey(tenant, scan, name)
	if err != nil {
		return vault.SpoolEntry{}, err
	}
	return s.v.AddRecorded(ctx, key, r, func(ctx context.Context, e vault.SpoolEntry) (int64, error) {
		return s.recordSpooled(ctx, p, e, within)
	})
}

// SubmitAppliance is Submit for a signed appliance-admin access review,
// which belongs to no tenant: it is stored under appliance/reviews/<name>
// (tenant "" in the spool, the ledger and the audit entry, like the daily
// audit anchors), recorded in the audit log before within runs in the
// same transaction.
func (s *Service) SubmitAppliance(ctx context.Context, p auth.Principal, name string, r io.Reader, within func(ctx context.Context, tx *sql.Tx, e vault.SpoolEntry) error) (vault.SpoolEntry, error) {
	key, err := vault.ReviewKey(name)
	if err != nil {
		return vault.SpoolEntry{}, err
	}
	return s.v.AddRecorded(ctx, key, r, func(ctx context.Context, e vault.SpoolEntry) (int64, error) {
		return s.recordSpooled(ctx, p, e, within)
	})
}

// Spooled implements vault.SpoolLedger for evidence the vault spools itself
// (the daily audit anchors): the appliance is the actor.
func (s *Service) Spooled(ctx context.Context, e vault.SpoolEntry) (int64, error) {
	return s.recordSpooled(ctx, auth.Principal{}, e, nil)
}

func (s *Service) recordSpooled(ctx context.Context, p auth.Principal, e vault.SpoolEntry, within func(context.Context, *sql.Tx, vault.SpoolEntry) error) (int64, error) {
	det, err := json.Marshal(spoolDetails{Record: e.ID, SHA256: e.SHA256, Size: e.Size})
	if err != nil {
		return 0, err
	}
	ent := audit.Entry{Tenant: e.Tenant, ActorID: systemID, ActorName: systemName, Action: audit.ActEvidenceSpooled, Object: e.Key, Details: det}
	if p.UserID != "" {
		ent.ActorID, ent.ActorName, ent.ActorIP, ent.UserAgent = p.UserID, p.Name, p.Client.IP, p.Client.UserAgent
	}
	var seq int64
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		a, err := s.appendEntry(ctx, tx, ent)
		if err != nil {
			return err
		}
		seq = a.Seq
		if _, err := tx.ExecContext(ctx, `INSERT INTO evidence_spool (id, seq, key, tenant, sha256, size, spooled_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, 'spooled')`,
			e.ID, seq, e.Key, e.Tenant, e.SHA256, e.Size, e.Spooled.UTC().Format(time.RFC3339Nano)); err != nil {
			return fmt.Errorf("record spooled evidence %s: %w", e.Key, err)
		}
		if within != nil {
			e.Seq = seq
			return within(ctx, tx, e)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return seq, nil
}

// Recorded implements vault.SpoolLedger: what the evidence.spool audit
// entry of record id says. The row in evidence_spool only locates the
// entry; the values come from the entry itself, which is hash-chained, so
// editing the row (or the record, or both) cannot make a swapped record
// match.
func (s *Service) Recorded(ctx context.Context, id string) (vault.SpoolEntry, error) {
	var seq int64
	var state string
	err := s.db.QueryRowContext(ctx, `SELECT seq, state FROM evidence_spool WHERE id = ?`, id).Scan(&seq, &state)
	if errors.Is(err, sql.ErrNoRows) {
		return vault.SpoolEntry{}, fmt.Errorf("%w: no evidence.spool entry for record %s", vault.ErrNotRecorded, id)
	}
	if err != nil {
		return vault.SpoolEntry{}, fmt.Errorf("spool record %s: %w", id, err)
	}
	if state == "quarantined" {
		return vault.SpoolEntry{}, fmt.Errorf("%w: record %s was quarantined before and is back in the spool", vault.ErrNotRecorded, id)
	}
	es, err := audit.ReadEntries(ctx, s.db, seq, seq)
	if err != nil {
		return vault.SpoolEntry{}, fmt.Errorf("spool record %s: %w", id, err)
	}
	var d spoolDetails
	if len(es) != 1 || es[0].Action != audit.ActEvidenceSpooled || json.Unmarshal(es[0].Details, &d) != nil || d.Record != id {
		return vault.SpoolEntry{}, fmt.Errorf("%w: audit entry %d is not the evidence.spool entry of record %s", vault.ErrNotRecorded, seq, id)
	}
	return vault.SpoolEntry{ID: id, Key: es[0].Object, Tenant: es[0].Tenant, SHA256: d.SHA256, Size: d.Size, Seq: seq, Spooled: es[0].Time}, nil
}

// tamperDetails is the audit.tamper entry's details for spooled evidence.
type tamperDetails struct {
	Kind           string `json:"kind"` // "evidence"
	Record         string `json:"record"`
	SpoolSeq       int64  `json:"spool_seq,omitempty"`
	RecordedSHA256 string `json:"recorded_sha256,omitempty"`
	FoundSHA256    string `json:"found_sha256"`
	HeaderSHA256   string `json:"header_sha256"`
	Reason         string `json:"reason"`
}

// Quarantined implements vault.SpoolLedger: a spool record differs from its
// evidence.spool entry. In one transaction it appends an audit.tamper entry
// (which the SIEM receives), raises the tamper alarm (scans and exports stop
// until an admin acknowledges it) and marks the record quarantined.
func (s *Service) Quarantined(ctx context.Context, q vault.Quarantine) error {
	key := q.Found.Key
	if q.Recorded.Key != "" {
		key = q.Recorded.Key
	}
	det, err := json.Marshal(tamperDetails{Kind: "evidence", Record: q.ID, SpoolSeq: q.Recorded.Seq, RecordedSHA256: q.Recorded.SHA256,
		FoundSHA256: q.FoundSHA256, HeaderSHA256: q.Found.SHA256, Reason: q.Reason})
	if err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		e, err := s.appendEntry(ctx, tx, audit.Entry{Tenant: q.Recorded.Tenant, ActorID: systemID, ActorName: systemName,
			Action: audit.ActAuditTamper, Object: "evidence:" + key, Details: det})
		if err != nil {
			return err
		}
		if _, err := audit.RaiseAlarmTx(ctx, tx, e, q.Recorded.Seq, "spooled evidence "+key+": "+q.Reason); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE evidence_spool SET state = 'quarantined', reason = ? WHERE id = ?`, q.Reason, q.ID)
		return err
	})
}

// markUploaded links a spool record to its evidence.upload entry.
func markUploaded(ctx context.Context, tx *sql.Tx, id string, uploadSeq int64) error {
	if id == "" {
		return nil
	}
	_, err := tx.ExecContext(ctx, `UPDATE evidence_spool SET state = 'uploaded', upload_seq = ? WHERE id = ? AND state = 'spooled'`, uploadSeq, id)
	return err
}

var _ vault.SpoolLedger = (*Service)(nil)
