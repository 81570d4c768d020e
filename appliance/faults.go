package appliance

import (
	"net/http"

	"firewalliq/appliance/fault"
)

// FaultRules classifies the composition root's own sentinel errors for
// fault.Classify: package fault cannot import this package (only main and
// appliance/cli may), so appliance/cli passes these rows as extra rules,
// and fault's coverage test counts them.
func FaultRules() []fault.Rule {
	usage := func(code, msg string) fault.Class {
		return fault.Class{Code: code, HTTP: http.StatusBadRequest, Exit: fault.ExitUsage, Message: msg, Detail: true}
	}
	return []fault.Rule{
		{Name: "appliance.ErrAlreadyInitialized", Err: ErrAlreadyInitialized, Class: fault.Class{Code: "already_initialized", HTTP: http.StatusConflict, Exit: fault.ExitFailure, Message: "data directory is already initialised", Detail: true}},
		{Name: "appliance.ErrNotInitialized", Err: ErrNotInitialized, Class: fault.Class{Code: "not_initialized", HTTP: http.StatusServiceUnavailable, Exit: fault.ExitFailure, Message: "data directory is not initialised"}},
		{Name: "appliance.ErrSafetyKey", Err: ErrSafetyKey, Class: usage("safety_key", "safety caps are compiled into the binary and cannot be configured")},
		{Name: "appliance.ErrInvalidConfig", Err: ErrInvalidConfig, Class: usage("invalid_config", "invalid configuration")},
	}
}
