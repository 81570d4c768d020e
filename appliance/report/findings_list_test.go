package report

import (
	"slices"
	"testing"
	"time"
)

// TestTimelineSpread: a sampled timeline spreads the results between two
// samples over the seconds their stamps span, and keeps the total.
func TestTimelineSpread(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tests := []struct {
		name    string
		samples []timeSample
		want    []int
	}{
		{"one sample", []timeSample{{1, at(200)}}, []int{1}},
		{"same second", []timeSample{{1, at(100)}, {11, at(900)}}, []int{11}},
		{"steady ten a second", []timeSample{{1, at(0)}, {11, at(1000)}, {21, at(2000)}, {31, at(3000)}}, []int{6, 10, 10, 5}},
		{"a gap", []timeSample{{1, at(0)}, {5, at(400)}, {9, at(3400)}}, []int{6, 1, 1, 1}},
		{"stamps out of order", []timeSample{{1, at(2000)}, {11, at(1500)}}, []int{11}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tl Timeline
			tl.spread(tt.samples)
			if !slices.Equal(tl.PerSecond, tt.want) {
				t.Fatalf("per second %v, want %v", tl.PerSecond, tt.want)
			}
		})
	}
}
