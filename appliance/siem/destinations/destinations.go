// Package destinations manages the SIEM destinations on behalf of
// principals: the service layer over siem.Outbox (which stores and delivers
// them). It is separate from package siem so that the outbox stays below
// the identity service in the import graph.
package destinations

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/siem"
	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// ErrNameTaken means a destination with that name already exists.
var ErrNameTaken = errors.New("siem destination name already taken")

// Gate is the identity service as destination management needs it;
// *auth.Service implements it.
type Gate interface {
	Authorize(ctx context.Context, p auth.Principal, op auth.Operation, tenant string) (string, error)
	UseStepUp(ctx context.Context, tx *sql.Tx, p auth.Principal, op auth.Operation, canonicalRequest []byte, code string) error
	StepUpRefused(ctx context.Context, p auth.Principal, tenant string, op auth.Operation, err error) error
	RefuseNotFound(ctx context.Context, p auth.Principal, tenant string, op auth.Operation, object string, err error) error
}

// Service manages SIEM destinations on behalf of principals: every method
// authorises the caller against the permission matrix (siem.read,
// siem.configure with step-up, siem.test), and every change is audited in
// its own transaction through the journal.
//
// Tenants: a tenant admin acts on its tenant's destinations. An appliance
// admin names a tenant, or passes "" for the appliance-wide destinations
// (which receive every tenant's events); listings with "" show all.
type Service struct {
	out  *siem.Outbox
	db   *sql.DB
	gate Gate
	rec  auth.Recorder
	dial func(siem.Destination, siem.Meta) (siem.Sender, error)
}

// ServiceDeps are the service's dependencies.
type ServiceDeps struct {
	Outbox *siem.Outbox
	// DB is the database the outbox lives in (its transactions).
	DB      *sql.DB
	Gate    Gate
	Journal auth.Recorder
	// Dial replaces the real transports for Test (tests); nil in use.
	Dial func(siem.Destination, siem.Meta) (siem.Sender, error)
}

// NewService checks deps and returns the service.
func NewService(d ServiceDeps) (*Service, error) {
	if d.Outbox == nil || d.DB == nil || d.Gate == nil || d.Journal == nil {
		return nil, errors.New("siem destinations: Outbox, DB, Gate and Journal are required")
	}
	return &Service{out: d.Outbox, db: d.DB, gate: d.Gate, rec: d.Journal, dial: d.Dial}, nil
}

// NewDestination is what Add takes: a siem.Destination without ID or dates.
// Secrets (ClientKeyPEM, HMACKey) are given as bytes, never as paths: the
// appliance reads no files on a caller's behalf.
type NewDestination struct {
	Name, Kind, Address, Format, ServerName string
	CAPEM, ClientCertPEM, ClientKeyPEM      []byte
	HMACKey                                 []byte
	MaxMessage                              int
	BudgetBytes                             int64
}

// AddRequest is the canonical request an Add's step-up is bound to. Secrets
// and certificates enter as SHA-256 digests, so the request can travel back
// to the client in a step-up challenge without carrying them.
func AddRequest(tenant string, d NewDestination) []byte {
	digest := func(b []byte) string {
		if len(b) == 0 {
			return ""
		}
		s := sha256.Sum256(b)
		return hex.EncodeToString(s[:])
	}
	return auth.OpRequest(auth.OpSIEMConfigure, tenant, map[string]string{
		"action": "add", "name": d.Name, "kind": d.Kind, "address": d.Address, "format": d.Format, "server_name": d.ServerName,
		"ca_sha256": digest(d.CAPEM), "client_cert_sha256": digest(d.ClientCertPEM), "client_key_sha256": digest(d.ClientKeyPEM),
		"hmac_key_sha256": digest(d.HMACKey), "max_message": strconv.Itoa(d.MaxMessage), "budget_bytes": strconv.FormatInt(d.BudgetBytes, 10),
	})
}

// RemoveRequest is the canonical request a Remove's step-up is bound to.
func RemoveRequest(tenant, name string) []byte {
	return auth.OpRequest(auth.OpSIEMConfigure, tenant, map[string]string{"action": "remove", "name": name})
}

// Add validates and stores a destination for tenant after a step-up (code,
// or "" to spend a grant made by auth's StepUp/StepUpFor for AddRequest;
// without one the error is an *auth.StepUpChallenge). It is audited as
// siem.destination.create. Invalid settings wrap siem.ErrInvalidDestination, a
// taken name ErrNameTaken; nothing is stored then.
func (s *Service) Add(ctx context.Context, p auth.Principal, tenant string, nd NewDestination, code string) (siem.Destination, error) {
	pin, err := s.gate.Authorize(ctx, p, auth.OpSIEMConfigure, tenant)
	if err != nil {
		return siem.Destination{}, fmt.Errorf("siem add: %w", err)
	}
	d := siem.Destination{Tenant: pin, Name: nd.Name, Kind: nd.Kind, Address: nd.Address, Format: nd.Format, ServerName: nd.ServerName,
		CAPEM: nd.CAPEM, ClientCertPEM: nd.ClientCertPEM, ClientKeyPEM: nd.ClientKeyPEM, HMACKey: nd.HMACKey,
		MaxMessage: nd.MaxMessage, BudgetBytes: nd.BudgetBytes}
	// Validate before the step-up: a malformed request should not spend
	// the user's code.
	if err := d.Validate(); err != nil {
		return siem.Destination{}, fmt.Errorf("siem add: %w", err)
	}
	if _, err := s.out.Destination(ctx, d.Name); err == nil {
		return siem.Destination{}, fmt.Errorf("siem add %q: %w", d.Name, ErrNameTaken)
	}
	req := AddRequest(pin, nd)
	var created siem.Destination
	var stepErr error
	err = store.InTx(ctx, s.db, func(tx *sql.Tx) error {
		if err := s.gate.UseStepUp(ctx, tx, p, auth.OpSIEMConfigure, req, code); err != nil {
			stepErr = err
			return err
		}
		var err error
		if created, err = s.out.CreateDestination(ctx, tx, d); err != nil {
			if strings.Contains(err.Error(), "UNIQUE") {
				return fmt.Errorf("%q: %w", d.Name, ErrNameTaken)
			}
			return err
		}
		_, err = s.rec.Record(ctx, tx, entry(p, created.Tenant, audit.ActSIEMDestinationCreate, created.ID, map[string]any{
			"name": created.Name, "kind": created.Kind, "address": created.Address, "format": created.Format, "tenant": created.Tenant,
			"client_cert": len(nd.ClientCertPEM) > 0, "hmac_key": len(nd.HMACKey) > 0}))
		return err
	})
	if stepErr != nil {
		return siem.Destination{}, fmt.Errorf("siem add: %w", s.gate.StepUpRefused(ctx, p, pin, auth.OpSIEMConfigure, stepErr))
	}
	if err != nil {
		return siem.Destination{}, fmt.Errorf("siem add: %w", err)
	}
	return created, nil
}

// Remove deletes tenant's destination name and its undelivered events,
// after a step-up bound to RemoveRequest, audited as
// siem.destination.delete. It returns how many events were discarded. A
// name not found in tenant wraps siem.ErrNotFound (and is audited as a refusal:
// another tenant's name looks the same).
func (s *Service) Remove(ctx context.Context, p auth.Principal, tenant, name, code string) (int64, error) {
	pin, err := s.gate.Authorize(ctx, p, auth.OpSIEMConfigure, tenant)
	if err != nil {
		return 0, fmt.Errorf("siem rm: %w", err)
	}
	d, err := s.find(ctx, p, pin, auth.OpSIEMConfigure, name)
	if err != nil {
		return 0, fmt.Errorf("siem rm: %w", err)
	}
	req := RemoveRequest(pin, name)
	var discarded int64
	var stepErr error
	err = store.InTx(ctx, s.db, func(tx *sql.Tx) error {
		if err := s.gate.UseStepUp(ctx, tx, p, auth.OpSIEMConfigure, req, code); err != nil {
			stepErr = err
			return err
		}
		// Delete first: the audit entry of the removal must not be refused
		// because this destination's outbox is full.
		var err error
		if discarded, err = s.out.DeleteDestination(ctx, tx, d.ID); err != nil {
			return err
		}
		_, err = s.rec.Record(ctx, tx, entry(p, d.Tenant, audit.ActSIEMDestinationDelete, d.ID, map[string]any{
			"name": d.Name, "kind": d.Kind, "address": d.Address, "discarded": discarded}))
		return err
	})
	if stepErr != nil {
		return 0, fmt.Errorf("siem rm: %w", s.gate.StepUpRefused(ctx, p, pin, auth.OpSIEMConfigure, stepErr))
	}
	if err != nil {
		return 0, fmt.Errorf("siem rm: %w", err)
	}
	return discarded, nil
}

// List returns tenant's destinations (all of them for an appliance admin
// passing ""), without secrets.
func (s *Service) List(ctx context.Context, p auth.Principal, tenant string) ([]siem.Destination, error) {
	pin, err := s.gate.Authorize(ctx, p, auth.OpSIEMRead, tenant)
	if err != nil {
		return nil, fmt.Errorf("siem list: %w", err)
	}
	ds, err := s.out.Destinations(ctx)
	if err != nil {
		return nil, err
	}
	return visible(ds, pin, p, func(d siem.Destination) string { return d.Tenant }), nil
}

// Status returns the delivery state of tenant's destinations (all for an
// appliance admin passing "").
func (s *Service) Status(ctx context.Context, p auth.Principal, tenant string) ([]siem.Status, error) {
	pin, err := s.gate.Authorize(ctx, p, auth.OpSIEMRead, tenant)
	if err != nil {
		return nil, fmt.Errorf("siem status: %w", err)
	}
	st, err := s.out.Statuses(ctx)
	if err != nil {
		return nil, err
	}
	return visible(st, pin, p, func(x siem.Status) string { return x.Tenant }), nil
}

// Test sends destination name one test message (sequence number 0, outside
// the outbox). Nothing is stored, so nothing is audited.
func (s *Service) Test(ctx context.Context, p auth.Principal, tenant, name string) error {
	pin, err := s.gate.Authorize(ctx, p, auth.OpSIEMTest, tenant)
	if err != nil {
		return fmt.Errorf("siem test: %w", err)
	}
	d, err := s.find(ctx, p, pin, auth.OpSIEMTest, name)
	if err != nil {
		return fmt.Errorf("siem test: %w", err)
	}
	w := s.out.NewWorker(siem.WorkerOptions{Dial: s.dial})
	if err := w.SendTest(ctx, d.ID); err != nil {
		return fmt.Errorf("siem test %s: %w", name, err)
	}
	return nil
}

// find looks name up among pin's destinations; one of another tenant is
// refused (and audited) exactly like a missing one.
func (s *Service) find(ctx context.Context, p auth.Principal, pin string, op auth.Operation, name string) (siem.Destination, error) {
	d, err := s.out.Destination(ctx, name)
	if err == nil && d.Tenant != pin {
		err = fmt.Errorf("siem destination %q: %w", name, siem.ErrNotFound)
	}
	if err != nil {
		if errors.Is(err, siem.ErrNotFound) {
			return siem.Destination{}, s.gate.RefuseNotFound(ctx, p, pin, op, name, fmt.Errorf("%w: %w", err, store.ErrNotFound))
		}
		return siem.Destination{}, err
	}
	return d, nil
}

// visible keeps the items of tenant pin; an appliance admin with pin ""
// sees everything.
func visible[T any](items []T, pin string, p auth.Principal, tenantOf func(T) string) []T {
	if pin == "" && p.ApplianceAdmin() {
		return items
	}
	out := []T{}
	for _, it := range items {
		if tenantOf(it) == pin {
			out = append(out, it)
		}
	}
	return out
}

// entry builds an audit entry attributed to p.
func entry(p auth.Principal, tenant string, action audit.Action, object string, details map[string]any) audit.Entry {
	return audit.Entry{Tenant: tenant, ActorID: p.UserID, ActorName: p.Name, ActorIP: p.Client.IP, UserAgent: p.Client.UserAgent,
		Action: action, Object: object, Details: mustJSON(details)}
}

// mustJSON marshals audit details built here from strings, numbers and
// booleans, which cannot fail.
func mustJSON(v map[string]any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage(`{"error":"details not encodable"}`)
	}
	return b
}
