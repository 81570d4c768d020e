package scan

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/store"
	"firewalliq/audit"
	"firewalliq/probe"
	"firewalliq/probe/job"
	"firewalliq/probe/keys"
	"firewalliq/probe/runner"
	"firewalliq/vault"
)

// Run runs the scan service until ctx ends: first recovery (Recover), then
// the scheduler (TickSchedules at start and every ScheduleTick) and the
// dispatcher, which issues each queued scan's signed job when one of
// the profile's max_concurrent_scans slots is free and it is the tenant's
// turn. When ctx ends, running scans are stopped where they are, without
// completing: their jobs stay "running", and the next Run resumes them
// from their last completed batch (or fails them, audited).
func (s *Scans) Run(ctx context.Context) error {
	if err := s.Recover(ctx); err != nil {
		s.onErr(fmt.Errorf("scan recovery: %w", err))
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.runSchedules(ctx, s.tick) }()
	err := s.disp.Run(ctx)
	wg.Wait()
	return err
}

// Recover handles what a stopped appliance left behind, before the
// dispatcher starts: every job left issued or running (UnfinishedJobs) is
// verified again (job signature and validity, scope and its key, tamper
// alarm, request state). One that passes is resumed under the same job
// from its last completed batch, audited as scan.resume; one that does not
// is failed with the reason, audited as scan.refuse (the job itself no
// longer verifies) or scan.fail. Queued scans without a job are queued
// again. Nothing starts over silently.
func (s *Scans) Recover(ctx context.Context) error {
	us, err := UnfinishedJobs(ctx, s.st.DB())
	if err != nil {
		return err
	}
	for _, u := range us {
		if err := s.recoverJob(ctx, u); err != nil {
			s.onErr(fmt.Errorf("recover job %s: %w", u.ID, err))
		}
	}
	rows, err := s.st.DB().QueryContext(ctx, `SELECT r.tenant_id, r.id FROM scan_requests r
		WHERE r.state = 'queued' AND NOT EXISTS (SELECT 1 FROM scan_jobs j WHERE j.scan_id = r.id) ORDER BY r.created_at, r.id`)
	if err != nil {
		return fmt.Errorf("queued scans: %w", err)
	}
	type q struct{ tenant, id string }
	var qs []q
	for rows.Next() {
		var x q
		if err := rows.Scan(&x.tenant, &x.id); err != nil {
			rows.Close()
			return err
		}
		qs = append(qs, x)
	}
	rows.Close()
	for _, x := range qs {
		s.submitOnce(x.tenant, x.id)
	}
	return rows.Err()
}

// submitOnce queues id unless it is queued already (a request queued
// before the dispatcher ran is found again by recovery).
func (s *Scans) submitOnce(tenant, id string) {
	s.disp.Queue().Remove(tenant, func(x string) bool { return x == id })
	s.disp.Submit(tenant, id)
}

func (s *Scans) recoverJob(ctx context.Context, u Unfinished) error {
	var reqState string
	if err := s.st.DB().QueryRowContext(ctx, `SELECT state FROM scan_requests WHERE id = ?`, u.ScanID).Scan(&reqState); err != nil {
		return err
	}
	fail := func(action audit.Action, code string, cause error) error {
		return s.st.InTx(ctx, func(tx *sql.Tx) error {
			if err := SetJobState(ctx, tx, u.No, JobFailed, code+": "+cause.Error(), s.now()); err != nil {
				return err
			}
			if reqState == StateRunning || reqState == StateQueued {
				if err := setState(ctx, tx, u.ScanID, reqState, StateFailed, "not resumed after restart: "+cause.Error(), s.now()); err != nil {
					return err
				}
			}
			_, err := s.rec.Record(ctx, tx, s.entry(system, u.TenantID, action, u.ScanID, map[string]any{"job": u.ID, "next_batch": u.NextBatch,
				"code": code, "reason": cause.Error(), "recovery": true}))
			return err
		})
	}
	if reqState == StateCancelled {
		// Cancel committed, but the run's end was never recorded (the
		// appliance stopped first): the job ends here, audited.
		err := s.stop(ctx, u.TenantID, u.ScanID, jobRow{no: u.No, id: u.ID, nextBatch: u.NextBatch}, map[string]any{
			"reason": "cancelled while the appliance was down", "recovery": true, "was": u.State})
		s.endWatch(u.ScanID, nil)
		return err
	}
	if err := s.checkJob(ctx, u.TenantID, u.Signed); err != nil {
		action := audit.ActScanFail
		code := "recovery"
		if c := runner.Code(err); c != "engine" {
			action, code = audit.ActScanRefuse, c
		}
		return fail(action, code, err)
	}
	err := s.st.InTx(ctx, func(tx *sql.Tx) error {
		_, err := s.rec.Record(ctx, tx, s.entry(system, u.TenantID, audit.ActScanResume, u.ScanID, map[string]any{"job": u.ID, "next_batch": u.NextBatch, "was": u.State}))
		return err
	})
	if err != nil {
		return err
	}
	s.submitOnce(u.TenantID, u.ScanID)
	return nil
}

// checkJob is what the orchestrator checks before handing a job (new or
// resumed) to a runner: the tamper alarm, the job against the job key,
// the tenant's trusted scope keys, the profile and the clock, and that
// its scope is not revoked.
func (s *Scans) checkJob(ctx context.Context, pin string, signed []byte) error {
	if err := audit.CheckNoAlarm(ctx, s.st.DB()); err != nil {
		return err
	}
	unverified, _, err := job.Open(signed)
	if err != nil {
		return err
	}
	trusted, err := trustedKeys(ctx, s.st, unverified.Request.Tenant)
	if err != nil {
		return err
	}
	v, err := job.Verify(signed, s.jobKey.Public().(ed25519.PublicKey), trusted, s.profile, s.now())
	if err != nil {
		return err
	}
	var scopeID string
	if err := s.st.DB().QueryRowContext(ctx, `SELECT scope_id FROM scan_requests WHERE id = ? AND tenant_id = ?`, v.Job.ScanID, pin).Scan(&scopeID); err != nil {
		return fmt.Errorf("%w: job names scan %s, not a scan of this tenant", job.ErrScopeMismatch, v.Job.ScanID)
	}
	if at, err := revokedAt(ctx, s.st.DB(), pin, scopeID); err != nil {
		return err
	} else if at != "" {
		return fmt.Errorf("%w: scope %s revoked at %s", ErrScopeRevoked, scopeID, at)
	}
	return nil
}

// execute runs one dispatched scan: it issues the job (or takes the one
// left by a stopped run), hands it to the runner, stores results batch by
// batch with their checkpoints, and records the outcome.
func (s *Scans) execute(ctx context.Context, tenant, id string) {
	// One run per scan: a scan queued twice (a request queued before a
	// restart and found again by recovery) runs once.
	s.mu.Lock()
	if s.claimed[id] {
		s.mu.Unlock()
		return
	}
	s.claimed[id] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.claimed, id)
		s.mu.Unlock()
	}()
	if err := s.executeErr(ctx, tenant, id); err != nil && ctx.Err() == nil {
		s.onErr(fmt.Errorf("scan %s: %w", id, err))
	}
}

// jobRow is the job of a scan as execute needs it.
type jobRow struct {
	no        int64
	id        string
	state     string
	signed    []byte
	nextBatch int
}

func (s *Scans) executeErr(ctx context.Context, tenant, id string) error {
	var state, reqSHA, approvalID, approversJSON string
	var canonical []byte
	err := s.st.DB().QueryRowContext(ctx, `SELECT state, request, request_sha256, approval_id, approvers FROM scan_requests WHERE id = ? AND tenant_id = ?`, id, tenant).
		Scan(&state, &canonical, &reqSHA, &approvalID, &approversJSON)
	if err != nil {
		return err
	}
	var jr jobRow
	err = s.st.DB().QueryRowContext(ctx, `SELECT no, id, state, signed, next_batch FROM scan_jobs WHERE scan_id = ?`, id).Scan(&jr.no, &jr.id, &jr.state, &jr.signed, &jr.nextBatch)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if state != StateQueued {
			// Cancelled, or its scope or key revoked, while queued.
			s.endWatch(id, &Progress{ScanID: id, State: state, Time: s.now()})
			return nil
		}
		if jr, err = s.issue(ctx, tenant, id, canonical, reqSHA, approvalID, approversJSON); err != nil || jr.no == 0 {
			return err
		}
	case err != nil:
		return err
	case jr.state != JobIssued && jr.state != JobRunning:
		return nil
	case state == StateCancelled:
		// Cancelled while queued to resume: its job ends here (a no-op
		// when Cancel recorded it already).
		defer s.endWatch(id, &Progress{ScanID: id, State: StateCancelled, Time: s.now()})
		return s.stop(ctx, tenant, id, jr, map[string]any{"reason": "cancelled by a user", "was": jr.state})
	case state != StateRunning:
		return nil
	}
	return s.run(ctx, tenant, id, jr)
}

// issue checks, builds, signs and records the scan's job (audited as
// scan.start by the orchestrator with the job's id and hash). A scan that
// may not run any more is failed with the reason (audited as scan.fail)
// and a zero jobRow is returned.
func (s *Scans) issue(ctx context.Context, tenant, id string, canonical []byte, reqSHA, approvalID, approversJSON string) (jobRow, error) {
	failScan := func(cause error) (jobRow, error) {
		defer s.endWatch(id, &Progress{ScanID: id, State: StateFailed, Time: s.now()})
		err := s.st.InTx(ctx, func(tx *sql.Tx) error {
			if err := setState(ctx, tx, id, StateQueued, StateFailed, cause.Error(), s.now()); err != nil {
				return err
			}
			_, err := s.rec.Record(ctx, tx, s.entry(system, tenant, audit.ActScanFail, id, map[string]any{"code": "not-issued", "reason": cause.Error()}))
			return err
		})
		return jobRow{}, err
	}
	if err := audit.CheckNoAlarm(ctx, s.st.DB()); err != nil {
		return failScan(err)
	}
	r, err := decodeRequest(canonical)
	if err != nil {
		return failScan(err)
	}
	var scopeID string
	if err := s.st.DB().QueryRowContext(ctx, `SELECT scope_id FROM scan_requests WHERE id = ?`, id).Scan(&scopeID); err != nil {
		return jobRow{}, err
	}
	ts, err := s.st.Tenant(tenant)
	if err != nil {
		return jobRow{}, err
	}
	row, err := ts.Scope(ctx, scopeID)
	if err != nil {
		return failScan(err)
	}
	if _, _, err := s.usableScope(ctx, tenant, row); err != nil {
		return failScan(err)
	}
	var approvers []string
	if err := json.Unmarshal([]byte(approversJSON), &approvers); err != nil {
		return failScan(err)
	}
	var seed [8]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return jobRow{}, err
	}
	now := s.now().UTC().Truncate(time.Second)
	j := job.Job{ID: store.NewID("job"), ScanID: id, Request: r, Scope: row.Document,
		Profile: job.ProfileRef{ID: s.profile.ID, SHA256: s.profile.SHA256()}, IssuedAt: now, NotBefore: now, NotAfter: now.Add(s.validity),
		Seed: binary.BigEndian.Uint64(seed[:]), BatchTargets: s.batch}
	for _, a := range approvers {
		j.Approvals = append(j.Approvals, job.Approval{ID: approvalID + ":" + a, Approver: a, RequestSHA256: reqSHA})
	}
	signed, err := job.Sign(j, s.jobKey)
	if err != nil {
		return failScan(err)
	}
	j.SignerKeyID = keys.ID(s.jobKey.Public().(ed25519.PublicKey))
	jsha, err := j.SHA256()
	if err != nil {
		return failScan(err)
	}
	out := jobRow{id: j.ID, state: JobIssued, signed: signed}
	label := s.vantageLabel(ctx, tenant, r.Vantage) // before the transaction: the fleet reads the store
	err = s.st.InTx(ctx, func(tx *sql.Tx) error {
		if err := setState(ctx, tx, id, StateQueued, StateRunning, "", s.now()); err != nil {
			return err
		}
		no, err := InsertJob(ctx, tx, JobRow{ID: j.ID, ScanID: id, TenantID: tenant, RequestID: id, JobSHA256: jsha, Signed: signed, Vantage: r.Vantage, State: JobIssued, IssuedAt: now})
		if err != nil {
			return err
		}
		out.no = no
		_, err = s.rec.Record(ctx, tx, s.entry(system, tenant, audit.ActScanStart, id, map[string]any{"state": StateRunning, "job": j.ID, "job_sha256": jsha,
			"request_sha256": reqSHA, "vantage": r.Vantage, "vantage_label": label, "not_after": j.NotAfter.Format(time.RFC3339), "approvers": approvers}))
		return err
	})
	if errors.Is(err, ErrState) {
		s.endWatch(id, &Progress{ScanID: id, State: StateCancelled, Time: s.now()})
		return jobRow{}, nil // cancelled meanwhile
	}
	return out, err
}

// run hands jr to the runner and consumes its events until the run ends.
func (s *Scans) run(ctx context.Context, tenant, id string, jr jobRow) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	act := &activeScan{cancel: cancel}
	s.mu.Lock()
	s.active[id] = act
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.active, id)
		s.mu.Unlock()
		s.endWatch(id, nil)
	}()
	// A Cancel that committed before this run was registered found no
	// run to stop (Cancel looks for one after its commit): end the job
	// here, before any packet.
	var reqState string
	if err := s.st.DB().QueryRowContext(ctx, `SELECT state FROM scan_requests WHERE id = ?`, id).Scan(&reqState); err != nil {
		return err
	}
	if reqState == StateCancelled {
		return s.stop(ctx, tenant, id, jr, map[string]any{"reason": "cancelled by a user", "was": jr.state, "packets": 0})
	}
	var firstSeq int64
	if err := s.st.DB().QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) + 1 FROM scan_results WHERE job_no = ?`, jr.no).Scan(&firstSeq); err != nil {
		return err
	}
	unverified, _, err := job.Open(jr.signed)
	if err != nil {
		return s.finish(ctx, tenant, id, jr, audit.ActScanFail, JobFailed, StateFailed, map[string]any{"code": "invalid", "reason": err.Error()})
	}
	rn, remote := s.runner, false
	if v := unverified.Request.Vantage; v != job.VantageLocal && s.fleet != nil {
		rn, remote = s.fleet, true
	}
	// A sensor restarted mid-run reports the run "interrupted": the job is
	// checked again and dispatched anew from its last checkpoint, at most
	// maxResumes times; results after that checkpoint were not stored and
	// are probed again, so none is lost or stored twice.
	for attempt := 0; ; attempt++ {
		interrupted, err := s.runOnce(ctx, runCtx, act, rn, remote, tenant, id, &jr, &firstSeq)
		if err != nil || interrupted == "" {
			return err
		}
		switch cerr := s.checkJob(ctx, tenant, jr.signed); {
		case attempt >= maxResumes:
			return s.finish(ctx, tenant, id, jr, audit.ActScanFail, JobFailed, StateFailed, map[string]any{"code": "interrupted",
				"reason": fmt.Sprintf("%s; not resumed again after %d resumptions", interrupted, maxResumes), "next_batch": jr.nextBatch})
		case cerr != nil:
			action, code := audit.ActScanFail, "interrupted"
			if c := runner.Code(cerr); c != "engine" {
				action, code = audit.ActScanRefuse, c
			}
			return s.finish(ctx, tenant, id, jr, action, JobFailed, StateFailed, map[string]any{"code": code,
				"reason": interrupted + "; not resumed: " + cerr.Error(), "next_batch": jr.nextBatch})
		}
		err = s.st.InTx(context.WithoutCancel(ctx), func(tx *sql.Tx) error {
			_, err := s.rec.Record(ctx, tx, s.entry(system, tenant, audit.ActScanResume, id, map[string]any{"job": jr.id, "next_batch": jr.nextBatch,
				"vantage": unverified.Request.Vantage, "interrupted": interrupted}))
			return err
		})
		if err != nil {
			return err
		}
	}
}

// runOnce dispatches jr from its checkpoint jr.nextBatch to rn and
// consumes the run's events until it ends. It returns the reason when the
// runner reports the run interrupted (code "interrupted": a sensor
// restarted mid-run), with jr.nextBatch at the last stored checkpoint;
// every other end is recorded here. remote says rn is the fleet: a
// stream error other than the appliance stopping (ErrSensorLost: the
// sensor stayed away past the job's validity) then fails the scan.
func (s *Scans) runOnce(ctx, runCtx context.Context, act *activeScan, rn runner.Runner, remote bool, tenant, id string, jr *jobRow, firstSeqp *int64) (string, error) {
	firstSeq := *firstSeqp
	defer func() { *firstSeqp = firstSeq }()
	var sent uint64 // packets, from the last progress event
	userCancelled := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return act.cancelled
	}
	// cancelled records the end of a run a user cancelled: packets sent
	// (the engine's count when it reported its end, else the last
	// progress report's) and when it stopped.
	cancelled := func(packets uint64, at time.Time) error {
		d := map[string]any{"reason": "cancelled by a user", "packets": packets, "was": jr.state}
		if !at.IsZero() {
			d["stopped_at"] = at.UTC().Format(time.RFC3339Nano)
		}
		return s.stop(ctx, tenant, id, *jr, d)
	}
	stream, err := rn.Run(runCtx, runner.Request{Job: jr.signed, ResumeBatch: jr.nextBatch})
	if err != nil && userCancelled() {
		return "", cancelled(0, time.Time{})
	}
	if err != nil {
		return "", s.finish(ctx, tenant, id, *jr, audit.ActScanFail, JobFailed, StateFailed, map[string]any{"code": "transport", "reason": err.Error()})
	}
	defer stream.Close()
	if remote {
		// A remote stream does not watch runCtx: closing it asks the
		// sensor to cancel the run (a user's Cancel, the appliance
		// stopping) and ends Recv.
		stop := context.AfterFunc(runCtx, func() { _ = stream.Close() })
		defer stop()
	}
	var batch []probe.Result
	next := jr.nextBatch
	var accepted *runner.Accepted
	var total uint64 // probes, from the last progress event
	for {
		ev, err := stream.Recv(context.WithoutCancel(ctx))
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if remote && ctx.Err() == nil && runCtx.Err() == nil {
				return "", s.finish(ctx, tenant, id, *jr, audit.ActScanFail, JobFailed, StateFailed, map[string]any{"code": "sensor-lost", "reason": err.Error(), "next_batch": next})
			}
			if userCancelled() {
				return "", cancelled(sent, time.Time{})
			}
			return "", err
		}
		switch ev.Type {
		case runner.TypeRefused:
			if userCancelled() {
				// Refused after the cancel (the runner may fail on its
				// cancelled context before the first packet): the end is
				// the cancel's; the refusal is kept in its details.
				return "", s.stop(ctx, tenant, id, *jr, map[string]any{"reason": "cancelled by a user", "packets": 0, "was": jr.state,
					"refused_code": ev.Refused.Code, "refused_reason": ev.Refused.Reason})
			}
			if ev.Refused.Code == "interrupted" {
				return ev.Refused.Reason, nil
			}
			return "", s.finish(ctx, tenant, id, *jr, audit.ActScanRefuse, JobRefused, StateFailed, map[string]any{"code": ev.Refused.Code, "reason": ev.Refused.Reason})
		case runner.TypeAccepted:
			accepted = ev.Accepted
			if jr.state == JobIssued {
				if err := s.st.InTx(ctx, func(tx *sql.Tx) error { return SetJobState(ctx, tx, jr.no, JobRunning, "", s.now()) }); err != nil {
					return "", err
				}
				jr.state = JobRunning
			}
			s.hub(id).publish(Progress{ScanID: id, State: StateRunning, CapPPS: accepted.RatePPS, Time: s.now()})
		case runner.TypeResult:
			batch = append(batch, *ev.Result)
		case runner.TypeCheckpoint:
			n := ev.Checkpoint.NextBatch
			if err := s.st.InTx(ctx, func(tx *sql.Tx) error { return SaveBatch(ctx, tx, jr.no, firstSeq, batch, nil, n) }); err != nil {
				return "", err
			}
			firstSeq += int64(len(batch))
			batch, next = nil, n
			jr.nextBatch = n
		case runner.TypeProgress:
			pr := ev.Progress
			p := Progress{ScanID: id, State: StateRunning, Sent: pr.Sent, Done: pr.Done, Total: pr.Total, RatePPS: pr.RatePPS, CapPPS: pr.CapPPS,
				ElapsedSeconds: pr.ElapsedSeconds, Time: ev.Time}
			total, sent = pr.Total, pr.Sent
			p.ETASeconds = eta(pr.ElapsedSeconds, pr.Done, pr.Total)
			s.hub(id).publish(p)
		case runner.TypeDone:
			d := ev.Done
			switch {
			case userCancelled():
				return "", cancelled(d.Summary.PacketsSent, d.Summary.Finished)
			case ctx.Err() != nil:
				// The appliance is stopping: leave the job running, as
				// after a crash; the next start resumes it.
				return "", nil
			case d.Code == "interrupted":
				return d.Error, nil
			case d.Error != "":
				return "", s.finish(ctx, tenant, id, *jr, audit.ActScanFail, JobFailed, StateFailed, map[string]any{"code": d.Code, "reason": d.Error, "packets": d.Summary.PacketsSent})
			}
			if len(batch) > 0 {
				n := next + 1
				if err := s.st.InTx(ctx, func(tx *sql.Tx) error { return SaveBatch(ctx, tx, jr.no, firstSeq, batch, nil, n) }); err != nil {
					return "", err
				}
			}
			return "", s.complete(ctx, tenant, id, *jr, d.Summary, total)
		}
	}
	switch {
	case userCancelled():
		// A remote run: closing the stream asked the sensor to stop, and
		// its final event goes to the Sink; the count is the last
		// progress report's.
		return "", cancelled(sent, time.Time{})
	case ctx.Err() != nil:
		return "", nil
	}
	return "", s.finish(ctx, tenant, id, *jr, audit.ActScanFail, JobFailed, StateFailed, map[string]any{"code": "transport", "reason": "stream ended without a final event"})
}

// finish records a run's end other than completion: the job's and the
// request's final states and the audit entry, in one transaction. The
// job's reason is details' "code: reason" (or reason alone, without a
// code). Ending a job as cancelled (stop) is idempotent: when the job has
// ended already (the run, Cancel and recovery may each try to close a
// cancelled scan's job), nothing is written and nothing is audited
// twice.
func (s *Scans) finish(ctx context.Context, tenant, id string, jr jobRow, action audit.Action, jobState, reqState string, details map[string]any) error {
	ctx = context.WithoutCancel(ctx)
	reason := fmt.Sprint(details["reason"])
	if code, ok := details["code"]; ok {
		reason = fmt.Sprint(code, ": ", reason)
	}
	details["job"] = jr.id
	err := s.st.InTx(ctx, func(tx *sql.Tx) error {
		if jobState == JobCancelled {
			// Read in the transaction that ends the job, so they are
			// exactly what it ends with.
			var cur, vantage string
			var next int
			if err := tx.QueryRowContext(ctx, `SELECT state, next_batch, vantage FROM scan_jobs WHERE no = ?`, jr.no).Scan(&cur, &next, &vantage); err != nil {
				return fmt.Errorf("scan job %d: %w", jr.no, err)
			}
			if cur != JobIssued && cur != JobRunning {
				return nil
			}
			// seq runs from 1 per job without gaps (batches are stored
			// whole from MAX(seq)+1), so its maximum is the count: one
			// index seek under the write lock instead of a walk of every
			// result (about 83 ms at 10^6).
			var results int64
			if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM scan_results WHERE job_no = ?`, jr.no).Scan(&results); err != nil {
				return fmt.Errorf("scan job %d results: %w", jr.no, err)
			}
			details["results"], details["next_batch"], details["vantage"] = results, next, vantage
		}
		if err := SetJobState(ctx, tx, jr.no, jobState, reason, s.now()); err != nil {
			return err
		}
		if err := setState(ctx, tx, id, StateRunning, reqState, reason, s.now()); err != nil && !errors.Is(err, ErrState) {
			return err
		}
		_, err := s.rec.Record(ctx, tx, s.entry(system, tenant, action, id, details))
		return err
	})
	s.hub(id).publish(Progress{ScanID: id, State: reqState, Time: s.now()})
	return err
}

// stop records the end of a cancelled scan's job through finish: the job
// becomes cancelled and the request ends cancelled (Cancel has moved it
// already), audited as scan.stop with details: the job, reason, packets
// sent when known, stopped_at (the engine's end) when known, and, read
// in the same transaction, the last stored checkpoint (next_batch), the
// results stored and where it ran (vantage: "local" or the sensor id). A
// job already ended is left alone, unaudited.
func (s *Scans) stop(ctx context.Context, tenant, id string, jr jobRow, details map[string]any) error {
	return s.finish(ctx, tenant, id, jr, audit.ActScanStop, JobCancelled, StateCancelled, details)
}

// stopUnfinished ends the issued or running job of cancelled scan id, if
// it has one, through stop.
func (s *Scans) stopUnfinished(ctx context.Context, tenant, id, reason string) error {
	var jr jobRow
	err := s.st.DB().QueryRowContext(ctx, `SELECT no, id, state FROM scan_jobs WHERE scan_id = ? AND state IN (?, ?)`, id, JobIssued, JobRunning).
		Scan(&jr.no, &jr.id, &jr.state)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("scan %s job: %w", id, err)
	}
	return s.stop(ctx, tenant, id, jr, map[string]any{"reason": reason, "was": jr.state})
}

// Manifest is the evidence manifest of a completed scan: what ran, under
// which authority, and the SHA-256 of its results file.
type Manifest struct {
	ScanID        string          `json:"scan_id"`
	Tenant        string          `json:"tenant"`
	Job           string          `json:"job"`
	JobSHA256     string          `json:"job_sha256"`
	RequestSHA256 string          `json:"request_sha256"`
	Request       json.RawMessage `json:"request"`
	Scope         string          `json:"scope"`
	ScopeSHA256   string          `json:"scope_sha256"`
	Profile       job.ProfileRef  `json:"profile"`
	Approvals     []job.Approval  `json:"approvals"`
	Requester     string          `json:"requester"`
	Started       time.Time       `json:"started"`
	Finished      time.Time       `json:"finished"`
	PacketsSent   uint64          `json:"packets_sent"`
	MeasuredPPS   float64         `json:"measured_pps"`
	Worst100ms    int             `json:"worst_100ms_window"`
	// Sent is the final run's packets per bucket of seconds (a resumed
	// scan's earlier runs are not in it).
	Sent          *probe.SendSeries `json:"sent,omitempty"`
	Results       int64             `json:"results"`
	ResultsSHA256 string            `json:"results_sha256"`
	// PcapngSHA256 is the SHA-256 of the packet capture (probes.pcapng),
	// "" when there is none (no raw sockets, or no capture configured).
	PcapngSHA256 string `json:"pcapng_sha256,omitempty"`
	Transport    string `json:"transport"`
	// Vantage is where the scan ran from: "local" or a sensor id, with
	// the sensor's vantage label.
	Vantage      string `json:"vantage"`
	VantageLabel string `json:"vantage_label,omitempty"`
}

// complete writes the results file and the manifest to the vault (when
// one is configured) and records the completion, audited as scan.complete
// with the evidence keys and hashes. The manifest's evidence record and
// the completion commit in one transaction.
func (s *Scans) complete(ctx context.Context, tenant, id string, jr jobRow, sum probe.Summary, total uint64) error {
	ctx = context.WithoutCancel(ctx)
	var results bytes.Buffer
	n, err := s.writeResults(ctx, tenant, jr.id, &results)
	if err != nil {
		return err
	}
	rsum := sha256.Sum256(results.Bytes())
	j, _, err := job.Open(jr.signed)
	if err != nil {
		return err
	}
	jsha, _ := j.SHA256()
	rsha, _ := j.Request.SHA256()
	var scopeID, scopeSHA string
	if err := s.st.DB().QueryRowContext(ctx, `SELECT scope_id, scope_sha256 FROM scan_requests WHERE id = ?`, id).Scan(&scopeID, &scopeSHA); err != nil {
		return err
	}
	canon, _ := j.Request.Canonical()
	m := Manifest{ScanID: id, Tenant: tenant, Job: j.ID, JobSHA256: jsha, RequestSHA256: rsha, Request: canon, Scope: scopeID, ScopeSHA256: scopeSHA,
		Profile: j.Profile, Approvals: j.Approvals, Requester: j.Request.Requester, Started: sum.Started, Finished: sum.Finished,
		PacketsSent: sum.PacketsSent, MeasuredPPS: sum.MeasuredPPS, Worst100ms: sum.Worst100ms, Sent: sum.Sent, Results: n, ResultsSHA256: hex.EncodeToString(rsum[:]), Transport: sum.Transport,
		Vantage: j.Request.Vantage, VantageLabel: s.vantageLabel(ctx, tenant, j.Request.Vantage)}
	if m.Approvals == nil {
		m.Approvals = []job.Approval{}
	}
	pcap := ""
	if s.capture != nil && s.evidence != nil {
		if p := s.capture(id); p != "" {
			if sum, err := fileSHA256(p); err == nil {
				pcap, m.PcapngSHA256 = p, sum
			} else if !errors.Is(err, os.ErrNotExist) {
				return s.finish(ctx, tenant, id, jr, audit.ActScanFail, JobFailed, StateFailed, map[string]any{"code": "evidence", "reason": evidenceReason(err)})
			}
		}
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	details := map[string]any{"job": j.ID, "job_sha256": jsha, "results": n, "results_sha256": m.ResultsSHA256, "packets": sum.PacketsSent,
		"measured_pps": sum.MeasuredPPS, "worst_100ms_window": sum.Worst100ms, "vantage": m.Vantage}
	if sum.Sent != nil {
		details["sent"] = sum.Sent
	}
	if m.VantageLabel != m.Vantage {
		details["vantage_label"] = m.VantageLabel
	}
	lateCancel := false
	final := func(ctx context.Context, tx *sql.Tx, evidence []string) error {
		lateCancel = false // a retried transaction decides again
		if len(evidence) > 0 {
			ev, _ := json.Marshal(evidence)
			if _, err := tx.ExecContext(ctx, `UPDATE scan_results SET evidence = ? WHERE job_no = ?`, string(ev), jr.no); err != nil {
				return err
			}
			details["evidence"] = evidence
		}
		err := setState(ctx, tx, id, StateRunning, StateCompleted, "", s.now())
		if errors.Is(err, ErrState) {
			var cur string
			if err := tx.QueryRowContext(ctx, `SELECT state FROM scan_requests WHERE id = ?`, id).Scan(&cur); err != nil {
				return fmt.Errorf("scan %s: %w", id, err)
			}
			if cur == StateCancelled {
				// A user cancelled after the last probe, while the
				// results and evidence were written: the request stays
				// cancelled, as Cancel answered, and the job ends
				// cancelled with what the completion would have recorded.
				lateCancel = true
				if err := SetJobState(ctx, tx, jr.no, JobCancelled, "cancelled by a user", s.now()); err != nil {
					return err
				}
				details["reason"], details["next_batch"], details["stopped_at"] = "cancelled by a user after the last probe", jr.nextBatch, sum.Finished.UTC().Format(time.RFC3339Nano)
				_, err := s.rec.Record(ctx, tx, s.entry(system, tenant, audit.ActScanStop, id, details))
				return err
			}
		} else if err != nil {
			return err
		}
		if err := SetJobState(ctx, tx, jr.no, JobCompleted, "", s.now()); err != nil {
			return err
		}
		_, err = s.rec.Record(ctx, tx, s.entry(system, tenant, audit.ActScanComplete, id, details))
		return err
	}
	if s.evidence == nil {
		err = s.st.InTx(ctx, func(tx *sql.Tx) error { return final(ctx, tx, nil) })
	} else {
		var rkey string
		re, err := s.evidence.Submit(ctx, auth.Principal{}, tenant, id, "results.jsonl", bytes.NewReader(results.Bytes()), nil)
		if err != nil {
			return s.finish(ctx, tenant, id, jr, audit.ActScanFail, JobFailed, StateFailed, map[string]any{"code": "evidence", "reason": evidenceReason(err)})
		}
		rkey = re.Key
		details["results_key"] = rkey
		keys := []string{rkey}
		if pcap != "" {
			f, err := os.Open(pcap)
			if err != nil {
				return s.finish(ctx, tenant, id, jr, audit.ActScanFail, JobFailed, StateFailed, map[string]any{"code": "evidence", "reason": evidenceReason(err)})
			}
			pe, err := s.evidence.Submit(ctx, auth.Principal{}, tenant, id, "probes.pcapng", f, nil)
			f.Close()
			if err != nil {
				return s.finish(ctx, tenant, id, jr, audit.ActScanFail, JobFailed, StateFailed, map[string]any{"code": "evidence", "reason": evidenceReason(err)})
			}
			details["pcapng_key"], details["pcapng_sha256"] = pe.Key, pe.SHA256
			keys = append(keys, pe.Key)
		}
		_, err = s.evidence.Submit(ctx, auth.Principal{}, tenant, id, "manifest.json", bytes.NewReader(mb), func(ctx context.Context, tx *sql.Tx, e vault.SpoolEntry) error {
			details["manifest_key"], details["manifest_sha256"] = e.Key, e.SHA256
			return final(ctx, tx, append(keys, e.Key))
		})
		if err != nil {
			return s.finish(ctx, tenant, id, jr, audit.ActScanFail, JobFailed, StateFailed, map[string]any{"code": "evidence", "reason": evidenceReason(err)})
		}
		if pcap != "" {
			// The spool holds its own copy now.
			if err := os.Remove(pcap); err != nil {
				s.onErr(fmt.Errorf("scan %s: remove capture: %w", id, err))
			}
		}
	}
	end := StateCompleted
	if lateCancel {
		end = StateCancelled
	}
	s.hub(id).publish(Progress{ScanID: id, State: end, Sent: sum.PacketsSent, Done: total, Total: total, ElapsedSeconds: sum.WallSeconds, Time: s.now()})
	return err
}

// fileSHA256 returns the hex SHA-256 of the file at path.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeResults writes every stored result of job jobID as JSON Lines, in
// seq order, and returns how many.
func (s *Scans) writeResults(ctx context.Context, tenant, jobID string, w io.Writer) (int64, error) {
	enc := json.NewEncoder(w)
	var n int64
	f := ResultFilter{Limit: MaxPageSize}
	for range 1 << 20 { // at most 2^20 pages of 500: far above max_targets x ports
		page, err := QueryResults(ctx, s.st.DB(), tenant, jobID, f)
		if err != nil {
			return 0, err
		}
		for _, r := range page.Items {
			if err := enc.Encode(r); err != nil {
				return 0, err
			}
			n++
		}
		if page.Next == "" {
			return n, nil
		}
		f.After = page.Next
	}
	return 0, errors.New("results file: too many pages")
}

// Progress is a snapshot of a scan's progress (Watch).
type Progress struct {
	ScanID string `json:"scan_id"`
	// State is the scan's state; the last message of a finished scan
	// carries its final state.
	State string `json:"state"`
	// Sent counts probe packets sent, retries included; Done and Total
	// count targets.
	Sent  uint64 `json:"sent"`
	Done  uint64 `json:"done"`
	Total uint64 `json:"total"`
	// RatePPS is the current send rate, CapPPS the job's cap.
	RatePPS        float64   `json:"rate_pps"`
	CapPPS         int       `json:"cap_pps"`
	ElapsedSeconds float64   `json:"elapsed_seconds"`
	ETASeconds     float64   `json:"eta_seconds"`
	Time           time.Time `json:"time"`
}

// hub fans a scan's progress out to its watchers. A slow watcher misses
// snapshots (each is complete on its own) rather than holding the scan.
type hub struct {
	mu   sync.Mutex
	subs map[chan Progress]struct{}
	last *Progress
}

func (s *Scans) hub(id string) *hub {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hubs[id]
	if h == nil {
		h = &hub{subs: map[chan Progress]struct{}{}}
		s.hubs[id] = h
	}
	return h
}

func (h *hub) publish(p Progress) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last = &p
	for c := range h.subs {
		select {
		case c <- p:
		default:
		}
	}
}

// endWatch ends scan id's progress feed: watchers get last (when not nil)
// and their channels are closed.
func (s *Scans) endWatch(id string, last *Progress) {
	s.mu.Lock()
	h := s.hubs[id]
	delete(s.hubs, id)
	s.mu.Unlock()
	if h == nil {
		return
	}
	if last != nil {
		h.publish(*last)
	}
	h.close()
}

// close ends every watcher's channel (the scan's run ended).
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.subs {
		close(c)
		delete(h.subs, c)
	}
}

// Watch returns a channel of scan id's progress snapshots (Progress: probes
// sent, targets done of total, current rate against the cap, ETA) for p
// (scan.read). The first value is the scan's current state; while it runs,
// snapshots follow about four times a second; the channel is closed when
// the run ends (after a last snapshot with the final state) or ctx ends.
// A scan that is not running gets its state and a closed channel. This is
// what the console's Server-Sent Events stream relays: one event per value.
func (s *Scans) Watch(ctx context.Context, p auth.Principal, tenant, id string) (<-chan Progress, error) {
	sc, err := s.Get(ctx, p, tenant, id)
	if err != nil {
		return nil, err
	}
	out := make(chan Progress, 16)
	first := Progress{ScanID: id, State: sc.State, Time: s.now()}
	// Under s.mu, so a run cannot end between the check and the
	// subscription (endWatch takes the hub under s.mu).
	s.mu.Lock()
	_, running := s.active[id]
	if !running {
		// Read the state again: the run may have ended since Get.
		if err := s.st.DB().QueryRowContext(ctx, `SELECT state FROM scan_requests WHERE id = ?`, id).Scan(&first.State); err != nil {
			s.mu.Unlock()
			return nil, err
		}
	}
	if !running && first.State != StateQueued {
		s.mu.Unlock()
		out <- first
		close(out)
		return out, nil
	}
	h := s.hubs[id]
	if h == nil {
		h = &hub{subs: map[chan Progress]struct{}{}}
		s.hubs[id] = h
	}
	s.mu.Unlock()
	h.mu.Lock()
	if h.last != nil {
		first = *h.last
	}
	out <- first
	h.subs[out] = struct{}{}
	h.mu.Unlock()
	go func() {
		<-ctx.Done()
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[out]; ok {
			delete(h.subs, out)
			close(out)
		}
	}()
	return out, nil
}

// evidenceReason is err as a scan's failure reason. Tenant users read
// reasons (and the audit entry that carries them), so a file system error
// (a full spool disk, say) says what failed without the appliance's own
// paths (the spool is under data_dir).
func evidenceReason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return "evidence spool: " + pe.Op + ": " + pe.Err.Error()
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return "evidence spool: " + le.Op + ": " + le.Err.Error()
	}
	return err.Error()
}

// eta estimates the seconds left of a run from its elapsed seconds and
// targets done of total, assuming the pace so far holds: elapsed/done per
// target times the targets left. It is 0 before the first target is done
// (no pace yet) and once none are left.
func eta(elapsed float64, done, total uint64) float64 {
	if done == 0 || total <= done {
		return 0
	}
	return elapsed / float64(done) * float64(total-done)
}
