// Package audit is the appliance's tamper-evident, append-only audit log: a
// hash chain and an RFC 6962 Merkle tree over every entry, signed checkpoints,
// inclusion and consistency proofs, and offline verification.
//
// It imports nothing of ours, so an auditor's verifier needs only this package
// and the appliance's audit public key.
package audit
