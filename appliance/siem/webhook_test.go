package siem

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"firewalliq/audit"
)

// hookReceiver is an HTTPS webhook endpoint that verifies every request with
// a Verifier and fails the first `fail` ones with 503.
type hookReceiver struct {
	v    *Verifier
	mu   sync.Mutex
	fail int
	reqs []capturedReq
	seqs []int64
	errs []error
}

type capturedReq struct {
	h    http.Header
	body []byte
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reqs = append(h.reqs, capturedReq{r.Header.Clone(), body})
	if err := h.v.Verify(r.Header, body); err != nil {
		h.errs = append(h.errs, err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if h.fail > 0 {
		h.fail--
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	var obj struct {
		Metadata struct {
			Sequence int64 `json:"sequence"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(body, &obj); err != nil {
		h.errs = append(h.errs, err)
	}
	h.seqs = append(h.seqs, obj.Metadata.Sequence)
	w.WriteHeader(http.StatusNoContent)
}

// TestWebhook delivers events to an httptest TLS server that checks each
// signature, refuses the first requests (so the worker retries), and then
// checks that a replayed, a stale and a tampered request are rejected.
func TestWebhook(t *testing.T) {
	key := []byte("k3y-0123456789abcdef-0123456789ab")
	recv := &hookReceiver{v: NewVerifier(key, ReplayWindow, nil), fail: 2}
	srv := httptest.NewTLSServer(recv)
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	f := newFixture(t)
	f.clock.mu.Lock()
	f.clock.real = true
	f.clock.mu.Unlock()
	d := f.create(t, Destination{Name: "hook", Tenant: f.tA, Kind: KindWebhook, Address: srv.URL + "/siem", CAPEM: ca, HMACKey: key})
	wrongKey := f.create(t, Destination{Name: "hook-wrong-key", Tenant: f.tA, Kind: KindWebhook, Address: srv.URL + "/siem", CAPEM: ca, HMACKey: []byte("not-the-right-key!")})
	for i := 0; i < 5; i++ {
		if err := f.act(f.tA, audit.ActScanStart, "scan_1"); err != nil {
			t.Fatal(err)
		}
	}
	w := f.ob.NewWorker(WorkerOptions{Now: f.clock.Now, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	defer w.closeAll()
	for i := 0; i < 20; i++ {
		res, err := w.DeliverOnce(t.Context(), d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if res.Err == nil && res.Sent == 0 {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	recv.mu.Lock()
	if got := recv.seqs; len(got) != 5 || got[0] != 1 || got[4] != 5 {
		t.Fatalf("receiver got seqs %v, want 1..5", got)
	}
	if len(recv.errs) != 0 {
		t.Fatalf("verifier errors: %v", recv.errs)
	}
	good := recv.reqs[len(recv.reqs)-1]
	recv.mu.Unlock()

	// A request signed with another key is refused, and stays pending.
	res, err := w.DeliverOnce(t.Context(), wrongKey.ID)
	if err != nil || res.Err == nil || res.Sent != 0 {
		t.Fatalf("wrong key: sent %d, %v, %v", res.Sent, res.Err, err)
	}

	// The receiver-side checks, one by one.
	tampered := append([]byte(nil), good.body...)
	tampered[len(tampered)-2] ^= 1
	later := NewVerifier(key, ReplayWindow, func() time.Time { return time.Now().Add(ReplayWindow + time.Minute) })
	for _, tc := range []struct {
		name string
		v    *Verifier
		body []byte
		want error
	}{
		{"replayed within the window", recv.v, good.body, ErrReplay},
		{"replayed after the window", later, good.body, ErrStale},
		{"body changed", NewVerifier(key, 0, nil), tampered, ErrSignature},
		{"other key", NewVerifier([]byte("another key entirely"), 0, nil), good.body, ErrSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.v.Verify(good.h, tc.body); !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
	if good.h.Get(HeaderSeq) != "5" || good.h.Get(HeaderAppliance) != "fiq-test" {
		t.Errorf("headers %v", good.h)
	}
}
