package evidence

import "firewalliq/vault"

// Settings describes the configured backend (bucket, lock mode and
// retention, encryption; no secrets) for the console's settings page. A
// backend that cannot describe itself (a test double) gives only its
// Backend string as Kind.
func (s *Service) Settings() vault.Settings {
	st := s.v.Store()
	if c, ok := st.(vault.Configured); ok {
		return c.Settings()
	}
	return vault.Settings{Kind: st.Backend()}
}
