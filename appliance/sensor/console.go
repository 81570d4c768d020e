package sensor

// CertSHA256 is the console certificate's fingerprint (hex SHA-256 of the
// DER) that sensors pin at enrolment: the console shows it in the
// `firewalliq sensor enroll` command next to a new token. It is public
// (the certificate is presented to every client).
func (s *Service) CertSHA256() string { return s.d.CertSHA256 }

// SilentAfter is how long a sensor may stay without a heartbeat before
// CheckSilent raises its sensor.silent alert.
func (s *Service) SilentAfter() string { return s.d.Config.SilentAfter.String() }
