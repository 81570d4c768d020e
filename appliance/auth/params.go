package auth

import "time"

// Params tune the service. DefaultParams documents every default; a zero
// field in Deps.Params takes the default, so tests override only what they
// need (usually Argon, to keep hashing cheap).
type Params struct {
	// Argon are the password hashing costs (DefaultArgonParams).
	Argon ArgonParams

	// PendingTTL bounds a half-finished login (password checked, TOTP or
	// enrolment pending): 5 minutes.
	PendingTTL time.Duration
	// SessionIdle ends a session with no request for this long: 15 minutes.
	SessionIdle time.Duration
	// SessionAbsolute ends a session this long after login, active or not:
	// 8 hours (a working day).
	SessionAbsolute time.Duration

	// LockoutThreshold consecutive wrong second-factor codes (TOTP at login
	// or step-up, recovery codes) lock the account: 5. Only someone who
	// knows the password gets that far, so this is not a lock any client
	// can trigger. LockoutBase is the first lockout; each further lockout
	// doubles it (backoff) up to LockoutMax: 1 minute, then 2, 4, ... up
	// to 1 hour.
	LockoutThreshold int
	LockoutBase      time.Duration
	LockoutMax       time.Duration
	// Wrong passwords are throttled per (login name, source address)
	// pair, never per account, so nobody can lock a user out from another
	// address: after ThrottleThreshold failures of a pair (5), the pair is
	// refused for ThrottleBase (1 minute), doubled with every further
	// failure up to ThrottleMax (1 hour). A pair's count is forgotten after
	// ThrottleForget (24 hours) without a failure, and cleared by a right
	// password from it. Unknown names are throttled exactly like known ones.
	ThrottleThreshold int
	ThrottleBase      time.Duration
	ThrottleMax       time.Duration
	ThrottleForget    time.Duration
	// IPWindow and IPMaxFailures rate-limit one source address: at most 20
	// failed logins per 15 minutes, across all user names (guessing many
	// accounts one password each).
	IPWindow      time.Duration
	IPMaxFailures int

	// StepUpTTL is how long a step-up stays usable: 5 minutes.
	StepUpTTL time.Duration
	// ApprovalTTL is how long a request may collect approvals and then be
	// used: 24 hours.
	ApprovalTTL time.Duration
	// TokenMaxTTL caps API token lifetime: 90 days; TokenDefaultTTL is used
	// when none is asked: 30 days.
	TokenMaxTTL     time.Duration
	TokenDefaultTTL time.Duration
	// SupportMaxTTL caps a support ticket: 8 hours.
	SupportMaxTTL time.Duration

	// Anomaly thresholds per activity (see Activity).
	Anomaly map[Activity]AnomalyRule
	// RecoveryCodes is how many recovery codes enrolment issues: 10.
	RecoveryCodes int
	// KeyCeremonyTTL is how long a begun security-key ceremony (register,
	// login, step-up) may be finished: 5 minutes.
	KeyCeremonyTTL time.Duration
}

// AnomalyRule raises an anomaly.alert when a user's count of one activity in
// the sliding Window reaches Threshold (for ActivityLoginSources: the count
// of distinct source addresses of failed logins). At most one alert per user,
// activity and window.
type AnomalyRule struct {
	Window    time.Duration
	Threshold int
}

// DefaultParams returns the documented defaults.
func DefaultParams() Params {
	return Params{
		Argon:             DefaultArgonParams(),
		PendingTTL:        5 * time.Minute,
		SessionIdle:       15 * time.Minute,
		SessionAbsolute:   8 * time.Hour,
		LockoutThreshold:  5,
		LockoutBase:       time.Minute,
		LockoutMax:        time.Hour,
		ThrottleThreshold: 5,
		ThrottleBase:      time.Minute,
		ThrottleMax:       time.Hour,
		ThrottleForget:    24 * time.Hour,
		IPWindow:          15 * time.Minute,
		IPMaxFailures:     20,
		StepUpTTL:         5 * time.Minute,
		ApprovalTTL:       24 * time.Hour,
		TokenMaxTTL:       90 * 24 * time.Hour,
		TokenDefaultTTL:   30 * 24 * time.Hour,
		SupportMaxTTL:     8 * time.Hour,
		Anomaly: map[Activity]AnomalyRule{
			ActivityScanRequest: {Window: time.Hour, Threshold: 50},
			ActivityExport:      {Window: time.Hour, Threshold: 10},
			ActivityLoginFailed: {Window: 15 * time.Minute, Threshold: 10},
			// Failures for one account from many addresses: a distributed
			// guess, which the per-address throttle alone does not stop.
			ActivityLoginSources: {Window: time.Hour, Threshold: 5},
		},
		RecoveryCodes:  10,
		KeyCeremonyTTL: 5 * time.Minute,
	}
}

func (p Params) withDefaults() Params {
	d := DefaultParams()
	if p.Argon.Time == 0 || p.Argon.MemoryKiB == 0 || p.Argon.Threads == 0 {
		p.Argon = d.Argon
	}
	dur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	num := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	dur(&p.PendingTTL, d.PendingTTL)
	dur(&p.SessionIdle, d.SessionIdle)
	dur(&p.SessionAbsolute, d.SessionAbsolute)
	num(&p.LockoutThreshold, d.LockoutThreshold)
	dur(&p.LockoutBase, d.LockoutBase)
	dur(&p.LockoutMax, d.LockoutMax)
	num(&p.ThrottleThreshold, d.ThrottleThreshold)
	dur(&p.ThrottleBase, d.ThrottleBase)
	dur(&p.ThrottleMax, d.ThrottleMax)
	dur(&p.ThrottleForget, d.ThrottleForget)
	dur(&p.IPWindow, d.IPWindow)
	num(&p.IPMaxFailures, d.IPMaxFailures)
	dur(&p.StepUpTTL, d.StepUpTTL)
	dur(&p.ApprovalTTL, d.ApprovalTTL)
	dur(&p.TokenMaxTTL, d.TokenMaxTTL)
	dur(&p.TokenDefaultTTL, d.TokenDefaultTTL)
	dur(&p.SupportMaxTTL, d.SupportMaxTTL)
	num(&p.RecoveryCodes, d.RecoveryCodes)
	dur(&p.KeyCeremonyTTL, d.KeyCeremonyTTL)
	// Copy the map so the caller's later changes do not reach the service.
	m := make(map[Activity]AnomalyRule, len(d.Anomaly))
	for k, v := range d.Anomaly {
		m[k] = v
	}
	for k, v := range p.Anomaly {
		if v.Window > 0 && v.Threshold > 0 {
			m[k] = v
		}
	}
	p.Anomaly = m
	return p
}
