package report

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/report/verify"
	"firewalliq/audit"
	"firewalliq/probe/keys"
	"firewalliq/vault"
)

// Gate is the identity service as the report service needs it;
// *auth.Service implements it.
type Gate interface {
	Authorize(ctx context.Context, p auth.Principal, op auth.Operation, tenant string) (string, error)
}

// Spooler stores evidence durably and records its SHA-256 in the audit
// log, running within in the same transaction; *evidence.Service
// implements it (Submit).
type Spooler interface {
	Submit(ctx context.Context, p auth.Principal, tenant, scan, name string, r io.Reader,
		within func(ctx context.Context, tx *sql.Tx, e vault.SpoolEntry) error) (vault.SpoolEntry, error)
}

// ServiceDeps are the report service's dependencies.
type ServiceDeps struct {
	Gate    Gate
	Journal auth.Recorder
	Spool   Spooler
	// Key is the appliance's report signing key (keys/report.key).
	Key ed25519.PrivateKey
}

// Service creates signed compliance reports on behalf of principals.
type Service struct {
	gate  Gate
	rec   auth.Recorder
	spool Spooler
	key   ed25519.PrivateKey
}

// NewService checks deps and returns the service.
func NewService(d ServiceDeps) (*Service, error) {
	if d.Gate == nil || d.Journal == nil || d.Spool == nil || len(d.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("report: Gate, Journal, Spool and an Ed25519 Key are required")
	}
	return &Service{gate: d.Gate, rec: d.Journal, spool: d.Spool, key: d.Key}, nil
}

// Created is a signed, stored report.
type Created struct {
	ID     string `json:"id"`
	SHA256 string `json:"sha256"`
	KeyID  string `json:"key_id"`
	// Key is the evidence object's key in the vault.
	Key      string `json:"key"`
	AuditSeq int64  `json:"audit_seq"`
	// Signed is report.json.
	Signed []byte `json:"-"`
}

// idPattern is what report and scan ids may look like (they name
// evidence objects).
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Create builds and signs the report for in (its tenant is the caller's,
// pinned by Authorize), spools report.json as evidence of scanID, and
// records report.sign (report id, SHA-256, key id, policy, findings) in the
// transaction that records the evidence, so the report exists exactly when
// its audit entry does. Needs report.create.
func (s *Service) Create(ctx context.Context, p auth.Principal, tenant, scanID string, in Input) (Created, error) {
	pin, err := s.gate.Authorize(ctx, p, auth.OpReportCreate, tenant)
	if err != nil {
		return Created{}, fmt.Errorf("create report: %w", err)
	}
	if !idPattern.MatchString(in.ID) || !idPattern.MatchString(scanID) {
		return Created{}, fmt.Errorf("create report: %w: report and scan ids must be names", ErrIncomplete)
	}
	in.Tenant = pin
	pub := s.key.Public().(ed25519.PublicKey)
	in.ReportKeyID = keys.ID(pub)
	r, err := Build(in)
	if err != nil {
		return Created{}, fmt.Errorf("create report: %w", err)
	}
	signed, err := Sign(r, s.key)
	if err != nil {
		return Created{}, fmt.Errorf("create report: %w", err)
	}
	vantages := []string{in.Scan.VantageLabel}
	return s.store(ctx, p, pin, []string{scanID}, vantages, r.ID, signed, r.Policy.Name, r.Policy.Version, r.Summary.Findings, r.Imported)
}

// CreateCombined builds and signs one report combining the inputs of
// several scans (Combine; each input with its own policy), spools it as
// evidence of the first scan and records report.sign with every scan id
// and vantage, as Create does. Needs report.create.
func (s *Service) CreateCombined(ctx context.Context, p auth.Principal, tenant, id string, created time.Time, app verify.Appliance, ins []Input) (Created, error) {
	pin, err := s.gate.Authorize(ctx, p, auth.OpReportCreate, tenant)
	if err != nil {
		return Created{}, fmt.Errorf("create report: %w", err)
	}
	if !idPattern.MatchString(id) || len(ins) == 0 {
		return Created{}, fmt.Errorf("create report: %w: a report id and at least one scan", ErrIncomplete)
	}
	kid := keys.ID(s.key.Public().(ed25519.PublicKey))
	var scans, vantages []string
	for i := range ins {
		if !idPattern.MatchString(ins[i].Scan.ID) {
			return Created{}, fmt.Errorf("create report: %w: scan ids must be names", ErrIncomplete)
		}
		ins[i].ReportKeyID = kid
		scans = append(scans, ins[i].Scan.ID)
		vantages = append(vantages, ins[i].Scan.VantageLabel)
	}
	c, err := Combine(id, pin, created, app, ins)
	if err != nil {
		return Created{}, fmt.Errorf("create report: %w", err)
	}
	signed, err := verify.SignCombined(c, s.key)
	if err != nil {
		return Created{}, fmt.Errorf("create report: %w", err)
	}
	var names []string
	imported := false
	for _, part := range c.Parts {
		names = append(names, part.Policy.Name)
		imported = imported || part.Imported
	}
	return s.store(ctx, p, pin, scans, vantages, id, signed, strings.Join(names, ","), 0, c.Summary.Findings, imported)
}

// store spools signed as evidence of the first scan and records
// report.sign in the same transaction.
func (s *Service) store(ctx context.Context, p auth.Principal, pin string, scans, vantages []string, id string, signed []byte,
	policyName string, policyVersion int, findings map[string]int, imported bool) (Created, error) {
	kid := keys.ID(s.key.Public().(ed25519.PublicKey))
	sum := sha256.Sum256(signed)
	out := Created{ID: id, SHA256: hex.EncodeToString(sum[:]), KeyID: kid, Signed: signed}
	e, err := s.spool.Submit(ctx, p, pin, scans[0], "report-"+id+".json", bytes.NewReader(signed), func(ctx context.Context, tx *sql.Tx, se vault.SpoolEntry) error {
		det := map[string]any{"report_id": id, "sha256": out.SHA256, "key_id": out.KeyID, "scan_id": scans[0],
			"policy": policyName, "policy_version": policyVersion, "findings": findings, "imported": imported, "evidence_key": se.Key,
			"vantages": vantages}
		if len(scans) > 1 {
			det["scan_ids"] = scans
		}
		d, err := json.Marshal(det)
		if err != nil {
			return err
		}
		ent, err := s.rec.Record(ctx, tx, audit.Entry{Tenant: pin, ActorID: p.UserID, ActorName: p.Name, ActorIP: p.Client.IP, UserAgent: p.Client.UserAgent,
			Action: audit.ActReportSign, Object: "report:" + id, Details: d})
		out.AuditSeq = ent.Seq
		return err
	})
	if err != nil {
		return Created{}, fmt.Errorf("create report %s: %w", id, err)
	}
	out.Key = e.Key
	return out, nil
}
