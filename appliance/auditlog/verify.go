package auditlog

import (
	"context"
	"errors"
	"fmt"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// ErrNoEntry means the audit log has no entry of that seq in the caller's
// tenant (another tenant's entry is refused the same way).
var ErrNoEntry = errors.New("audit entry not found")

// ErrNotCovered means the entry is newer than the latest signed
// checkpoint: no proof exists for it until the next checkpoint.
var ErrNotCovered = errors.New("audit entry not yet covered by a signed checkpoint")

// Verify recomputes the whole hash chain and Merkle tree from the database
// and checks every stored checkpoint and the state file, as `firewalliq
// audit verify` does on the appliance's shell: the answer of the log as it
// is now, not the start-up check's. It changes nothing. A broken log is a
// Report with Intact false and its first Problem.
func (s *Service) Verify(ctx context.Context, p auth.Principal) (audit.Report, error) {
	if _, err := s.gate.Authorize(ctx, p, auth.OpAuditRead, ""); err != nil {
		return audit.Report{}, fmt.Errorf("audit verify: %w", err)
	}
	if len(s.pub) == 0 {
		return audit.Report{}, errors.New("audit verify: no audit public key configured")
	}
	var state []byte
	if s.statePath != "" {
		st, _, err := audit.ReadStateNote(s.statePath)
		if err != nil {
			return audit.Report{}, fmt.Errorf("audit verify: %w", err)
		}
		state = st
	}
	rep, err := audit.Verify(ctx, s.db, audit.VerifyOptions{Public: s.pub, State: state, RequireState: s.statePath != ""})
	if err != nil {
		return audit.Report{}, fmt.Errorf("audit verify: %w", err)
	}
	return rep, nil
}

// Prove returns the inclusion proof of entry seq in the tree of the latest
// signed checkpoint, checked here with the audit public key before it is
// returned. Tenant users may prove their tenant's entries only; an
// appliance admin any entry.
func (s *Service) Prove(ctx context.Context, p auth.Principal, tenant string, seq int64) (audit.InclusionProof, error) {
	pin, err := s.gate.Authorize(ctx, p, auth.OpAuditRead, tenant)
	if err != nil {
		return audit.InclusionProof{}, fmt.Errorf("audit prove: %w", err)
	}
	e, err := audit.ReadEntry(ctx, s.db, seq)
	if err != nil || ((pin != "" || !p.ApplianceAdmin()) && e.Tenant != pin) {
		return audit.InclusionProof{}, fmt.Errorf("audit prove: %w: seq %d: %w", ErrNoEntry, seq, store.ErrNotFound)
	}
	cp, err := audit.LatestStoredCheckpoint(ctx, s.db)
	if err != nil {
		return audit.InclusionProof{}, fmt.Errorf("audit prove: %w", err)
	}
	if cp.Size < seq {
		return audit.InclusionProof{}, fmt.Errorf("audit prove: seq %d, latest checkpoint %d: %w", seq, cp.Size, ErrNotCovered)
	}
	proof, err := audit.ProveInclusionAt(ctx, s.db, seq, cp)
	if err != nil {
		return audit.InclusionProof{}, fmt.Errorf("audit prove: %w", err)
	}
	if len(s.pub) > 0 {
		if _, err := audit.VerifyInclusion(proof, s.pub); err != nil {
			return audit.InclusionProof{}, fmt.Errorf("audit prove: the proof does not verify: %w", err)
		}
	}
	return proof, nil
}
