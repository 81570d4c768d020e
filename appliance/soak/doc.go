// Package soak holds the appliance's soak test (build tag soak): the real
// `firewalliq serve`, built from this tree, with the real MinIO, the real
// rsyslog and the network-namespace lab, run for a bounded time (default 10
// minutes, FIQ_SOAK_DURATION) while scans run continuously through the API
// and faults are injected: SIGKILL of the appliance, MinIO and rsyslog
// outages, a full spool disk, hostile API requests and hostile lab
// services. At the end it checks that nothing was lost, nothing leaked and
// the cap held, and writes a Markdown report (FIQ_SOAK_REPORT).
//
// Run it as root, one lab at a time:
//
//	flock /tmp/fiq-lab.lock go test -tags soak -run TestSoak -timeout 30m ./appliance/soak
//
// `make soak-smoke` runs it for 2 minutes. See docs/soak.md.
//
// The package has no non-test code beyond this comment.
package soak
