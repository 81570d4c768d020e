// Package scan is the scan orchestrator: scan requests, signed jobs, the
// appliance-wide limits on running scans, and the stored results.
//
// This first part holds the pieces that do not depend on the service layer:
// the dispatcher (at most the profile's max_concurrent_scans scans at once,
// per-tenant queues served round robin) and the results store and query.
// Jobs are probe/job documents; runners implement probe/runner.Runner.
package scan
