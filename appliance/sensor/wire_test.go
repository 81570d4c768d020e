package sensor

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"firewalliq/probe/runner"
)

var (
	testJobKey   = ed25519.NewKeyFromSeed(slices.Repeat([]byte{7}, 32))
	testOtherKey = ed25519.NewKeyFromSeed(slices.Repeat([]byte{8}, 32))
)

func signedTestTrust(t testing.TB, tenant string) []byte {
	t.Helper()
	b, err := signTrust(Trust{Tenant: tenant, TenantName: "alpha", ScopeKeys: [][]byte{testOtherKey.Public().(ed25519.PublicKey)},
		IssuedAt: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}, testJobKey)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenTrust(t *testing.T) {
	good := signedTestTrust(t, "t_1")
	flip := func(b []byte) []byte {
		var st signedTrust
		_ = json.Unmarshal(b, &st)
		st.Body = []byte(string(st.Body[:len(st.Body)-1]) + ` }`)
		out, _ := json.Marshal(st)
		return out
	}
	pub := testJobKey.Public().(ed25519.PublicKey)
	tests := []struct {
		name   string
		bundle []byte
		key    ed25519.PublicKey
		tenant string
		err    error
	}{
		{"good", good, pub, "t_1", nil},
		{"another key", good, testOtherKey.Public().(ed25519.PublicKey), "t_1", ErrTrust},
		{"another tenant", good, pub, "t_2", ErrTrust},
		{"body changed", flip(good), pub, "t_1", ErrTrust},
		{"not JSON", []byte("{"), pub, "t_1", ErrMessage},
		{"unknown field", []byte(`{"body":"e30=","sig":"","x":1}`), pub, "t_1", ErrMessage},
		{"short key", good, pub[:10], "t_1", ErrTrust},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := openTrust(tc.bundle, tc.key, tc.tenant)
			if !errors.Is(err, tc.err) || (tc.err == nil && len(tr.ScopeKeys) != 1) {
				t.Fatalf("got %+v, %v; want %v", tr, err, tc.err)
			}
		})
	}
}

func TestDecodeDispatch(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"good", `{"run":"run_0123456789abcdef","request":{"job":"e30="},"trust":{}}`, true},
		{"short run id", `{"run":"r1","request":{"job":"e30="},"trust":{}}`, false},
		{"run id with a dot", `{"run":"run.0123456789","request":{"job":"e30="},"trust":{}}`, false},
		{"unknown field", `{"run":"run_0123456789abcdef","request":{"job":"e30="},"trust":{},"extra":1}`, false},
		{"two values", `{"run":"run_0123456789abcdef","request":{},"trust":{}} {}`, false},
		{"not JSON", `run`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeDispatch([]byte(tc.in))
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrMessage)) {
				t.Fatalf("err %v", err)
			}
		})
	}
}

// FuzzDecodeDispatch: the sensor's parser of console messages never
// panics, and what it accepts round-trips.
func FuzzDecodeDispatch(f *testing.F) {
	// Seeds: a valid dispatch, one with a resume batch, a malformed run
	// id, and truncated JSON.
	f.Add([]byte(`{"run":"run_0123456789abcdef","request":{"job":"e30="},"trust":{}}`))
	f.Add([]byte(`{"run":"run_0123456789abcdef","request":{"job":"e30=","resume_batch":3},"trust":{"body":"","sig":""}}`))
	f.Add([]byte(`{"run":"..","request":{},"trust":null}`))
	f.Add([]byte(`{"run":"run_0123456789abcdef","request":{"job":`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeDispatch(b)
		if err != nil {
			return
		}
		again, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		d2, err := decodeDispatch(again)
		if err != nil || d2.Run != d.Run || d2.Request.ResumeBatch != d.Request.ResumeBatch {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzOpenTrust: no input but one signed by the job key for the tenant
// verifies.
func FuzzOpenTrust(f *testing.F) {
	// Seeds: a valid bundle, the same with a byte changed, and junk.
	good := signedTestTrust(f, "t_1")
	f.Add(good)
	bad := slices.Clone(good)
	bad[len(bad)/2] ^= 1
	f.Add(bad)
	f.Add([]byte(`{"body":"","sig":""}`))
	pub := testJobKey.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := openTrust(b, pub, "t_1")
		if err != nil {
			return
		}
		if tr.Tenant != "t_1" {
			t.Fatalf("accepted tenant %q", tr.Tenant)
		}
		var st signedTrust
		if json.Unmarshal(b, &st) != nil || !ed25519.Verify(pub, append([]byte(trustContext), st.Body...), st.Sig) {
			t.Fatal("accepted an unsigned bundle")
		}
	})
}

// TestSpoolRecovery: a torn last line is cut off, a run without its final
// event is closed as interrupted, acknowledged counts survive a restart,
// and a run goes once its final event is acknowledged.
func TestSpoolRecovery(t *testing.T) {
	dir := t.TempDir()
	now := func() time.Time { return time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC) }
	sp, err := openSpool(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	run := "run_0123456789abcdef"
	if err := sp.create(run, now()); err != nil {
		t.Fatal(err)
	}
	evs := []runner.Event{
		{Seq: 1, Type: runner.TypeAccepted, JobID: "j", Time: now(), Accepted: &runner.Accepted{Runner: "s"}},
		{Seq: 2, Type: runner.TypeCheckpoint, JobID: "j", Time: now(), Checkpoint: &runner.Checkpoint{NextBatch: 1}},
	}
	if err := sp.append(run, evs); err != nil {
		t.Fatal(err)
	}
	if err := sp.acked(run, 1); err != nil {
		t.Fatal(err)
	}
	// A crash mid-write leaves half a line.
	if _, err := sp.runs[run].f.Write([]byte(`{"seq":3,"type":"res`)); err != nil {
		t.Fatal(err)
	}
	sp.close()

	sp, err = openSpool(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	r := sp.runs[run]
	if len(r.events) != 3 || r.acked != 1 || !r.final {
		t.Fatalf("recovered %d events, acked %d, final %v", len(r.events), r.acked, r.final)
	}
	last := r.events[2]
	if last.Type != runner.TypeDone || last.Done.Code != "interrupted" || last.Seq != 3 || last.JobID != "j" {
		t.Fatalf("closing event %+v", last)
	}
	name, un, base := sp.unsent(10)
	if name != run || len(un) != 2 || base != 1 {
		t.Fatalf("unsent %s %d %d", name, len(un), base)
	}
	if err := sp.acked(run, 3); err != nil {
		t.Fatal(err)
	}
	if sp.pending() != 0 || sp.has(run) {
		t.Fatal("run kept after its final event was acknowledged")
	}
	sp.close()
	sp, err = openSpool(dir, now)
	if err != nil || len(sp.runs) != 0 {
		t.Fatalf("after restart: %d runs, %v", len(sp.runs), err)
	}
	sp.close()
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		ok   bool
	}{
		{"default (off)", DefaultConfig(), true},
		{"loopback", Config{Listen: "127.0.0.1:4222", SilentAfter: time.Minute}, true},
		{"any address", Config{Listen: ":4222", SilentAfter: time.Minute}, true},
		{"no port", Config{Listen: "127.0.0.1", SilentAfter: time.Minute}, false},
		{"port too high", Config{Listen: "127.0.0.1:70000", SilentAfter: time.Minute}, false},
		{"silence shorter than two heartbeats", Config{SilentAfter: 20 * time.Second}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.c.Validate(); (err == nil) != tc.ok {
				t.Fatalf("err %v", err)
			}
		})
	}
}

// TestDecodeCancel: the two forms of a cancel message, and what is
// refused.
func TestDecodeCancel(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Cancel
		ok   bool
	}{
		{"bare run id", "run_0123456789abcdef", Cancel{Run: "run_0123456789abcdef"}, true},
		{"run", `{"run":"run_0123456789abcdef"}`, Cancel{Run: "run_0123456789abcdef"}, true},
		{"job superseded", `{"job":"job_1","keep":"run_0123456789abcdef"}`, Cancel{Job: "job_1", Keep: "run_0123456789abcdef"}, true},
		{"empty", ``, Cancel{}, false},
		{"nothing named", `{}`, Cancel{}, false},
		{"bad run id", `{"run":"a.b"}`, Cancel{}, false},
		{"bare bad run id", `fiq.>`, Cancel{}, false},
		{"keep without job", `{"keep":"run_0123456789abcdef"}`, Cancel{}, false},
		{"bad keep", `{"job":"j","keep":"x y"}`, Cancel{}, false},
		{"unknown field", `{"run":"run_0123456789abcdef","all":true}`, Cancel{}, false},
		{"long job", `{"job":"` + strings.Repeat("j", 200) + `"}`, Cancel{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeCancel([]byte(tt.in))
			if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
				t.Fatalf("decodeCancel(%q) = %+v, %v", tt.in, got, err)
			}
			if err != nil && !errors.Is(err, ErrMessage) {
				t.Fatalf("error %v is not ErrMessage", err)
			}
		})
	}
}
