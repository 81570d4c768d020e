package sensor

import (
	"fmt"
	"net"
	"strconv"
	"time"
)

// Config is the console side's fleet configuration (the "sensors" keys of
// the appliance configuration, docs/configuration.md).
type Config struct {
	// Listen is the address the embedded NATS server listens on for
	// sensors ("host:port"). Empty (the default) turns the fleet off: no
	// port is opened. Env FIQ_SENSORS_LISTEN.
	Listen string `yaml:"listen"`
	// Advertise is the URL sensors are told to dial at enrolment
	// ("tls://console.example:4222"); by default "tls://" + Listen, with
	// the host of the enrolment request when Listen has none.
	// Env FIQ_SENSORS_ADVERTISE.
	Advertise string `yaml:"advertise"`
	// SilentAfter is how long an active sensor may send no heartbeat
	// before a sensor.silent alert is written. Env FIQ_SENSORS_SILENT_AFTER.
	SilentAfter time.Duration `yaml:"silent_after"`
}

// Defaults.
const (
	DefaultSilentAfter = 90 * time.Second
	// HeartbeatInterval is how often a sensor reports its state.
	HeartbeatInterval = 15 * time.Second
)

// DefaultConfig returns the documented defaults (fleet off).
func DefaultConfig() Config { return Config{SilentAfter: DefaultSilentAfter} }

// LoadEnv applies the FIQ_SENSORS_* variables over c.
func (c *Config) LoadEnv(getenv func(string) string) error {
	if v := getenv("FIQ_SENSORS_LISTEN"); v != "" {
		c.Listen = v
	}
	if v := getenv("FIQ_SENSORS_ADVERTISE"); v != "" {
		c.Advertise = v
	}
	if v := getenv("FIQ_SENSORS_SILENT_AFTER"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("FIQ_SENSORS_SILENT_AFTER=%q: %w", v, err)
		}
		c.SilentAfter = d
	}
	return nil
}

// Validate checks the values.
func (c Config) Validate() error {
	if c.Listen != "" {
		if _, _, err := splitListen(c.Listen); err != nil {
			return err
		}
	}
	if c.SilentAfter < 2*HeartbeatInterval {
		return fmt.Errorf("sensors.silent_after %s is shorter than two heartbeats (%s)", c.SilentAfter, 2*HeartbeatInterval)
	}
	return nil
}

// splitListen parses "host:port"; port 0 picks a free port.
func splitListen(s string) (string, int, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("sensors.listen %q: %w", s, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("sensors.listen %q: port must be 0-65535", s)
	}
	return h, n, nil
}
