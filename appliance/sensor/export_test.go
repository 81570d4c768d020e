package sensor

import (
	"context"
	"encoding/json"
	"fmt"

	"firewalliq/appliance/store"
	"firewalliq/probe/job"
	"firewalliq/probe/runner"
)

// Test hooks for the external tests (package sensor_test cannot be an
// internal test: apptest imports appliance, which imports this package).

// BuildDispatch returns a dispatch of req for its sensor, as Run would
// publish it, without publishing it.
func (rr *RemoteRunner) BuildDispatch(ctx context.Context, req runner.Request) (Dispatch, error) {
	unverified, _, err := job.Open(req.Job)
	if err != nil {
		return Dispatch{}, err
	}
	x, err := rr.s.sensorByID(ctx, unverified.Request.Vantage)
	if err != nil {
		return Dispatch{}, err
	}
	keys, err := rr.s.d.ScopeKeys(ctx)
	if err != nil {
		return Dispatch{}, err
	}
	t := Trust{Tenant: x.Tenant, IssuedAt: rr.s.now()}
	t.TenantName, _ = rr.s.tenantName(ctx, x.Tenant)
	for _, k := range keys {
		t.ScopeKeys = append(t.ScopeKeys, []byte(k))
	}
	trust, err := signTrust(t, rr.s.d.JobKey)
	if err != nil {
		return Dispatch{}, err
	}
	return Dispatch{Run: store.NewID("run"), Request: req, Trust: trust}, nil
}

// Publish publishes d (possibly altered) to sensorID as the console
// would, and returns the run's stream.
func (rr *RemoteRunner) Publish(ctx context.Context, sensorID string, d Dispatch, body []byte) (runner.Stream, error) {
	x, err := rr.s.sensorByID(ctx, sensorID)
	if err != nil {
		return nil, err
	}
	if body == nil {
		if body, err = json.Marshal(d); err != nil {
			return nil, err
		}
	}
	unverified, _, err := job.Open(d.Request.Job)
	if err != nil {
		return nil, fmt.Errorf("test dispatch: %w", err)
	}
	return rr.dispatch(ctx, x, d.Run, body, unverified.NotAfter)
}

// Kick closes the sensor's connections without revoking it (a partition).
func (s *Service) Kick(sensorID string) int {
	if h := s.currentHub(); h != nil {
		return h.kick(sensorID)
	}
	return 0
}

// Pending is the agent spool's unacknowledged event count.
func (a *Agent) Pending() int {
	if a.spool == nil {
		return -1
	}
	return a.spool.pending()
}

// Inbox and subjects, for the isolation test.
var (
	JobSubject    = jobSubject
	ResultSubject = resultSubject
	InboxPrefix   = inboxPrefix
)
