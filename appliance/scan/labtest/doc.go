// Package labtest holds the network-lab integration tests of the scan
// service: scans requested, approved, started and stored through
// appliance/scan (Appliance.ScopeKeys, Scopes, Scans) against the lab's
// target zone, compared with the lab's ground truth, and proved on the
// wire by the firewall's capture (docs/lab.md, docs/scans.md).
//
// The whole appliance runs in a child process started with "ip netns
// exec" in the lab's scanner namespace (the test binary re-executing one
// test), so every socket the local runner opens is in the lab; the parent
// builds the lab, captures on the firewall and judges what the child
// stored and what the wire shows. Every test needs root and skips with a
// message without it.
package labtest
