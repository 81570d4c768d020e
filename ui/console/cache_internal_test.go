package console

import (
	"testing"

	"firewalliq/appliance/scan"
)

// TestSettled: a scan read is reused (cache.go) only once nothing about it
// can change without an audit entry. A cancelled request whose job is
// still running is not settled: the runner keeps saving result batches,
// which are not audited, so a cached read would show a stale result
// count until the job's end (scan.stop) or some unrelated audit entry.
func TestSettled(t *testing.T) {
	job := func(state string) *scan.JobInfo { return &scan.JobInfo{ID: "job_1", State: state, Results: 10} }
	tests := []struct {
		name string
		sc   scan.Scan
		want bool
	}{
		{"pending, no job", scan.Scan{State: scan.StatePending}, false},
		{"running", scan.Scan{State: scan.StateRunning, Job: job(scan.JobRunning)}, false},
		{"cancelled before a job", scan.Scan{State: scan.StateCancelled}, true},
		{"cancelled, job still issued", scan.Scan{State: scan.StateCancelled, Job: job(scan.JobIssued)}, false},
		{"cancelled, job still running", scan.Scan{State: scan.StateCancelled, Job: job(scan.JobRunning)}, false},
		{"cancelled, job cancelled", scan.Scan{State: scan.StateCancelled, Job: job(scan.JobCancelled)}, true},
		{"completed", scan.Scan{State: scan.StateCompleted, Job: job(scan.JobCompleted)}, true},
		{"failed", scan.Scan{State: scan.StateFailed, Job: job(scan.JobFailed)}, true},
		{"refused", scan.Scan{State: scan.StateFailed, Job: job(scan.JobRefused)}, true},
		{"denied", scan.Scan{State: scan.StateDenied}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := settled(tt.sc); got != tt.want {
				t.Errorf("settled(%s, job %v) = %v, want %v", tt.sc.State, tt.sc.Job, got, tt.want)
			}
		})
	}
}
