// Package runner is the contract between the scan orchestrator and whatever
// runs a scan: the local engine today (Local), remote sensors later. The
// orchestrator hands a runner a signed job (probe/job) and reads back a
// stream of Events; both are plain serialisable values (JSON), not
// in-process callbacks, so the same contract can cross a message bus.
//
// A runner verifies the job itself, before the first packet, and answers a
// job it refuses with one "refused" event that names the reason (Code), so
// the orchestrator can audit it. A run it accepts produces "accepted", then
// "result", "checkpoint" and "progress" events, and ends with one "done".
// Events carry a sequence number from 1 without gaps, so a consumer on the
// far side of a network can tell loss from silence (progress events may be
// dropped when the consumer is slow; they never take a sequence number then).
package runner

import (
	"context"
	"errors"
	"time"

	"firewalliq/probe"
	"firewalliq/probe/job"
)

// Runner runs signed jobs.
type Runner interface {
	// Run starts the job in req and returns its event stream. The error
	// is only for failing to start the exchange (a transport failure); a
	// refused job is a "refused" event on the stream. Cancelling ctx, or
	// closing the stream, stops the run; the stream still ends with "done".
	Run(ctx context.Context, req Request) (Stream, error)
}

// Stream is a run's events, in order.
type Stream interface {
	// Recv returns the next event, or io.EOF after the final one
	// ("refused" or "done"), or ctx's error.
	Recv(ctx context.Context) (Event, error)
	// Close stops the run if it is still going and releases the stream.
	// Events not yet received are discarded.
	Close() error
}

// Request is what the orchestrator sends a runner.
type Request struct {
	// Job is the signed job envelope, exactly as issued.
	Job []byte `json:"job"`
	// ResumeBatch skips the batches a previous run of the same job
	// completed (its last "checkpoint" event's NextBatch). 0 starts at
	// the beginning.
	ResumeBatch int `json:"resume_batch,omitempty"`
}

// Event types.
const (
	TypeAccepted   = "accepted"
	TypeRefused    = "refused"
	TypeProgress   = "progress"
	TypeResult     = "result"
	TypeCheckpoint = "checkpoint"
	TypeDone       = "done"
)

// Event is one message of a run's stream. Type says which one of the
// pointer members is set.
type Event struct {
	Seq    uint64    `json:"seq"` // 1, 2, 3, ... within one run
	Type   string    `json:"type"`
	JobID  string    `json:"job_id,omitempty"`
	ScanID string    `json:"scan_id,omitempty"`
	Time   time.Time `json:"time"`

	Accepted   *Accepted     `json:"accepted,omitempty"`
	Refused    *Refusal      `json:"refused,omitempty"`
	Progress   *Progress     `json:"progress,omitempty"`
	Result     *probe.Result `json:"result,omitempty"`
	Checkpoint *Checkpoint   `json:"checkpoint,omitempty"`
	Done       *Done         `json:"done,omitempty"`
}

// Accepted says the runner verified the job and is about to send.
type Accepted struct {
	Runner        string `json:"runner"`         // the runner's vantage id
	JobSHA256     string `json:"job_sha256"`     // job.Job.SHA256 of what it runs
	RequestSHA256 string `json:"request_sha256"` // job.Request.SHA256
	Targets       uint64 `json:"targets"`        // addresses in the expansion
	RatePPS       int    `json:"rate_pps"`       // the rate the engine enforces
	Transport     string `json:"transport"`      // "raw" or "connect"
	BatchTargets  int    `json:"batch_targets"`  // the unit of checkpoints
	ResumeBatch   int    `json:"resume_batch,omitempty"`
}

// Refusal says why a runner refused a job; nothing was sent.
type Refusal struct {
	Code   string `json:"code"`   // stable identifier, see Code
	Reason string `json:"reason"` // the verifier's message
}

// Progress is a snapshot of a running scan.
type Progress struct {
	Sent           uint64  `json:"sent"`
	Done           uint64  `json:"done"`
	Total          uint64  `json:"total"`
	RatePPS        float64 `json:"rate_pps"`
	CapPPS         int     `json:"cap_pps"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	Retries        uint64  `json:"retries"`
	Refused        uint64  `json:"refused"`
}

// Checkpoint says every batch before NextBatch is complete and its
// results were sent before this event.
type Checkpoint struct {
	NextBatch int `json:"next_batch"`
}

// Done ends an accepted run. Error is empty when the scan finished; Code
// classifies a failure ("cancelled", "engine").
type Done struct {
	Summary probe.Summary `json:"summary"`
	Error   string        `json:"error,omitempty"`
	Code    string        `json:"code,omitempty"`
}

// ErrVantage means the job names another vantage point than this runner.
var ErrVantage = errors.New("job is for another vantage point")

// Refusal and failure codes. They are part of the contract (a remote
// sensor sends them), so they are stable strings, not Go error text.
var codes = []struct {
	err  error
	code string
}{
	{job.ErrInvalid, "invalid"},
	{job.ErrUntrustedKey, "untrusted-key"},
	{job.ErrSignature, "signature"},
	{job.ErrNotYetValid, "not-yet-valid"},
	{job.ErrExpired, "expired"},
	{job.ErrProfileMismatch, "profile-mismatch"},
	{job.ErrScopeUntrusted, "scope-untrusted"},
	{job.ErrScope, "scope"},
	{job.ErrScopeMismatch, "scope-mismatch"},
	{job.ErrTargetOutOfScope, "target-out-of-scope"},
	{job.ErrTooManyTargets, "too-many-targets"},
	{job.ErrPortOutOfScope, "port-out-of-scope"},
	{job.ErrProbeNotAllowed, "probe-not-allowed"},
	{job.ErrRateAboveCap, "rate-above-cap"},
	{job.ErrApprovalMismatch, "approval-mismatch"},
	{job.ErrApprovals, "approvals"},
	{ErrVantage, "vantage-mismatch"},
	{context.Canceled, "cancelled"},
	{context.DeadlineExceeded, "cancelled"},
}

// Code returns the stable code for err: the first sentinel it matches, or
// "engine" for anything else (a local failure of the runner).
func Code(err error) string {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return "engine"
}
