package probe

import (
	"testing"
	"time"
)

func TestRTTEstimator(t *testing.T) {
	const floor, ceiling = 100 * time.Millisecond, time.Second
	tests := []struct {
		name    string
		samples []time.Duration
		want    time.Duration
	}{
		{"no samples: the ceiling", nil, ceiling},
		{"too few samples: the ceiling", []time.Duration{time.Millisecond, time.Millisecond}, ceiling},
		{"lan: the floor", repeat(time.Millisecond, 20), floor},
		{"wan: srtt + 4 rttvar", repeat(200*time.Millisecond, 200), 200 * time.Millisecond},
		{"slow: the ceiling", repeat(3*time.Second, 20), ceiling},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r rttEstimator
			for _, s := range tt.samples {
				r.add(s)
			}
			got := r.timeout(floor, ceiling)
			want := tt.want
			if want < floor {
				want = floor
			}
			// rttvar decays geometrically; allow for what is left of it.
			if got < want || got > want+5*time.Millisecond {
				t.Fatalf("timeout %v, want %v", got, want)
			}
		})
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

// TestRetryBudget: one retry fewer until a probe is answered only on a
// retry, then the configured number; never below what was asked when it
// is 0 or 1.
func TestRetryBudget(t *testing.T) {
	for _, tt := range []struct{ retries, clean, lossy int }{{0, 0, 0}, {1, 1, 1}, {2, 1, 2}, {3, 2, 3}} {
		e := &Engine{cfg: Config{Retries: tt.retries}}
		if got := e.retryBudget(); got != tt.clean {
			t.Errorf("retries %d, no loss seen: budget %d, want %d", tt.retries, got, tt.clean)
		}
		b := &batch{done: make(chan struct{})}
		b.remaining.Store(1)
		en := &entry{kind: KindTCPSyn, b: b, attempts: 2, last: time.Now()}
		e.pending = map[probeKey]*entry{}
		e.finishLocked(en, StateOpen, ReasonSynAck, time.Now(), 64, nil)
		if got := e.retryBudget(); got != tt.lossy {
			t.Errorf("retries %d, loss seen: budget %d, want %d", tt.retries, got, tt.lossy)
		}
	}
}
