// Package sandbox builds the customer-style sandbox that 'firewalliq demo'
// scans: network namespaces for an outside zone (where the scanner runs), a
// routing firewall whose nftables policy holds three deliberate mistakes,
// a DMZ and an internal zone with real services; and, without root, the
// same story on listeners on 127.0.0.1. Either way it hands the demo a Plan:
// what the scope covers, which probes to run, the expected policy to judge
// the results against, and the mistakes that policy must flag.
//
// Every address the sandbox uses is in 198.18.0.0/15 (RFC 2544, benchmark
// only) inside namespaces it created, or 127.0.0.0/8. No interface, route
// or nftables table is ever added to the host's root namespace: the
// firewall's table lives in the firewall namespace and goes with it.
package sandbox

import "firewalliq/probe/safety"

// Modes of a Plan.
const (
	// ModeSandbox is the namespace sandbox (root): raw-socket probes
	// through a real nftables firewall.
	ModeSandbox = "sandbox"
	// ModeLoopback is the fallback without root: listeners on 127.0.0.1,
	// connect probes.
	ModeLoopback = "loopback"
)

// Plan is what the demo scans and how it judges the results. It is JSON so
// the demo's parent process (which built the sandbox) can hand it to the
// child it runs inside the scanner namespace.
type Plan struct {
	Mode string `json:"mode"`
	// CIDRs are the scope's targets.
	CIDRs []string `json:"cidrs"`
	// Ports is the scope's port specification.
	Ports string `json:"ports"`
	// Probes are the probe kinds the scope allows and the scan runs.
	Probes []safety.Kind `json:"probes"`
	// MaxPPS is the scope's rate cap.
	MaxPPS int `json:"max_pps"`
	// PolicyName names Policy, the expected policy (YAML).
	PolicyName string `json:"policy_name"`
	Policy     string `json:"policy"`
	// Hosts describe the targets, for the story.
	Hosts []Host `json:"hosts"`
	// Firewall lists the firewall's rules in words (empty on loopback).
	Firewall []string `json:"firewall,omitempty"`
	// Mistakes are what the policy evaluation must find.
	Mistakes []Mistake `json:"mistakes"`
	// NotInScope are addresses the story shows being refused (never
	// probed).
	NotInScope []string `json:"not_in_scope"`
}

// Host is one target host and the services it runs.
type Host struct {
	Zone     string   `json:"zone"`
	Addr     string   `json:"addr"`
	Services []string `json:"services"`
}

// Finding kinds the mistakes raise (policy's vocabulary).
const (
	KindExposure    = "exposure"
	KindBlocked     = "blocked"
	KindDenialStyle = "denial-style"
)

// Mistake is a deliberate error in the sandbox and the finding it must
// raise.
type Mistake struct {
	Kind   string `json:"kind"`
	Target string `json:"target"`
	Proto  string `json:"proto"`
	Port   uint16 `json:"port"`
	What   string `json:"what"`
}
