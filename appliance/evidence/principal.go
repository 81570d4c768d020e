package evidence

import (
	"context"
	"fmt"

	"firewalliq/appliance/auth"
)

// List returns tenant's recorded evidence objects whose key starts with
// prefix, for p: it authorises evidence.read in tenant ("" for p's own)
// first. Export is the other principal-taking method.
func (s *Service) List(ctx context.Context, p auth.Principal, tenant, prefix string) ([]Object, error) {
	if s.gate == nil {
		return nil, fmt.Errorf("list evidence: %w: no identity service configured", auth.ErrForbidden)
	}
	pin, err := s.gate.Authorize(ctx, p, auth.OpEvidenceRead, tenant)
	if err != nil {
		return nil, fmt.Errorf("list evidence: %w", err)
	}
	return s.Objects(ctx, pin, prefix)
}
