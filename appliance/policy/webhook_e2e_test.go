package policy_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"firewalliq/appliance/internal/apptest"
	"firewalliq/appliance/policy"
	"firewalliq/appliance/siem"
	"firewalliq/appliance/siem/destinations"
	"firewalliq/probe"
)

// receiver is the customer's webhook endpoint: a real HTTPS server that
// checks every request's HMAC signature, timestamp and nonce with
// siem.Verifier (as docs/siem.md tells a receiver to) and keeps the
// accepted bodies.
type receiver struct {
	v      *siem.Verifier
	mu     sync.Mutex
	bodies [][]byte
	bad    []error
}

func (h *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		err = h.v.Verify(r.Header, body)
	}
	if err != nil {
		h.bad = append(h.bad, err)
		http.Error(w, "refused", http.StatusUnauthorized)
		return
	}
	h.bodies = append(h.bodies, body)
	w.WriteHeader(http.StatusNoContent)
}

// hookFinding is what the test reads of a delivered OCSF finding.
type hookFinding struct {
	ClassUID   int    `json:"class_uid"`
	SeverityID int    `json:"severity_id"`
	Severity   string `json:"severity"`
	Info       struct {
		UID   string   `json:"uid"`
		Types []string `json:"types"`
	} `json:"finding_info"`
	Unmapped struct {
		Action  string       `json:"action"`
		Finding siem.Finding `json:"finding"`
	} `json:"unmapped"`
}

// TestFindingsReachWebhook: an evaluation's exposure finding and a drift
// finding (after a baseline accepted with step-up) travel from
// policy.Service.Evaluate through the SIEM outbox and the appliance's own
// outbox worker (Appliance.Run) to a real HTTPS webhook receiver, each
// with its severity (OCSF severity and the finding's own), and every
// request carries a valid HMAC signature.
func TestFindingsReachWebhook(t *testing.T) {
	f := apptest.New(t)
	f.Clock.Flow()
	key := []byte("customer-webhook-key-0123456789abcdef")
	recv := &receiver{v: siem.NewVerifier(key, siem.ReplayWindow, f.Clock.Now)}
	srv := httptest.NewTLSServer(recv)
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	root := f.Users["appliance_admin"]
	if _, err := f.App.SIEM.Add(f.Ctx, root.P, "", destinations.NewDestination{Name: "soc-hook", Kind: siem.KindWebhook,
		Address: srv.URL + "/fiq", CAPEM: ca, HMACKey: key, Format: siem.FormatOCSF}, f.Code(root)); err != nil {
		t.Fatal(err)
	}

	lead := f.Users["security_lead"]
	src := []byte(`version: 1
name: edge
vantage_point: outside
default: deny
rules:
  - {name: web, action: allow, to: 10.9.0.0/24, ports: "tcp:443", severity: high}
  - {name: ssh-denied, action: deny, to: 10.9.0.0/24, ports: "tcp:22", severity: critical}
`)
	if _, err := f.App.Policies.Create(f.Ctx, lead.P, "", src); err != nil {
		t.Fatal(err)
	}
	now := f.Clock.Now()
	res := func(port uint16, st probe.State) probe.Result {
		return probe.Result{Target: "10.9.0.7", Proto: "tcp", Port: port, Probe: probe.KindTCPSyn, State: st, Reason: "syn-ack", RTTms: 1, Time: now}
	}
	w := policy.Window{Start: now.Add(-time.Minute), End: now.Add(time.Minute)}
	// The baseline: https open, ssh answered with a reset.
	baseline := []probe.Result{res(443, probe.StateOpen), res(22, probe.StateClosed)}
	if _, err := f.App.Policies.AcceptBaseline(f.Ctx, lead.P, "", policy.BaselineRequest{ScopeID: "edge-zone", PolicyName: "edge", ScanID: "scan_base",
		Results: baseline}, f.Code(lead)); err != nil {
		t.Fatal(err)
	}
	// The scan after a firewall change: ssh is open (an exposure, and
	// newly open since the baseline).
	out, err := f.App.Policies.Evaluate(f.Ctx, lead.P, "", policy.EvaluateRequest{PolicyName: "edge", ScopeID: "edge-zone", ScanID: "scan_after",
		Results: []probe.Result{res(443, probe.StateOpen), res(22, probe.StateOpen)}, Window: w})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]policy.Finding{}
	for _, fd := range out.Findings {
		want[fd.ID] = fd
	}
	kinds := map[string]bool{}
	for _, fd := range out.Findings {
		kinds[fd.Kind] = true
	}
	if !kinds[policy.KindExposure] || !kinds[policy.KindDrift] {
		t.Fatalf("findings %+v: want an exposure and a drift finding", out.Findings)
	}

	ctx, cancel := context.WithCancel(f.Ctx)
	done := make(chan struct{})
	go func() { defer close(done); f.App.Run(ctx, func(err error) { t.Logf("background: %v", err) }) }()
	defer func() { cancel(); <-done }()

	got := map[string]hookFinding{}
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < len(want) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		recv.mu.Lock()
		for _, b := range recv.bodies {
			var h hookFinding
			if err := json.Unmarshal(b, &h); err != nil {
				t.Fatalf("webhook body: %v\n%s", err, b)
			}
			if h.Unmapped.Action == siem.ActionFinding {
				got[h.Unmapped.Finding.ID] = h
			}
		}
		recv.mu.Unlock()
	}
	recv.mu.Lock()
	bad, n := recv.bad, len(recv.bodies)
	recv.mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("the receiver refused %d requests: %v", len(bad), bad)
	}
	t.Logf("%d signed requests accepted, %d findings among them", n, len(got))
	sevIDs := map[string]int{"critical": 5, "high": 4, "medium": 3, "low": 2, "info": 1}
	for id, fd := range want {
		h, ok := got[id]
		if !ok {
			t.Errorf("finding %s (%s, %s) did not reach the webhook in 30 s", id, fd.Kind, fd.Severity)
			continue
		}
		sf := h.Unmapped.Finding
		if h.ClassUID != siem.ClassComplianceFinding || h.SeverityID != sevIDs[string(fd.Severity)] || sf.Severity != string(fd.Severity) ||
			sf.Kind != fd.Kind || sf.ScanID != "scan_after" || sf.Target != "10.9.0.7" || sf.Port != int(fd.Port) || len(h.Info.Types) != 1 || h.Info.Types[0] != fd.Kind {
			t.Errorf("finding %s arrived as %+v, want kind %s severity %s", id, h, fd.Kind, fd.Severity)
		}
	}
}
