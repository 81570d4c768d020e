// Package scan is the scan orchestrator: the security leads' scope-signing
// keys (Keys), the scope registry (Scopes), and the scan service (Scans):
// requests checked against their scope and the safety profile, dual
// approval for production scopes, the requester's step-up, signed jobs
// (probe/job) handed to a runner (probe/runner), the dispatcher that holds
// the profile's max_concurrent_scans and serves per-tenant queues round
// robin, results stored per batch with their checkpoint, evidence and a
// manifest for the vault, a progress feed, and recovery of the jobs a
// stopped appliance left unfinished. docs/scans.md describes the whole
// lifecycle.
package scan
