package scan

import (
	"math"
	"testing"
)

// TestETA: the live progress's estimate of the seconds left is the pace
// so far (elapsed per target done) times the targets left, and 0 while
// there is no pace yet or nothing is left.
func TestETA(t *testing.T) {
	tests := []struct {
		name        string
		elapsed     float64
		done, total uint64
		want        float64
	}{
		{"nothing done yet", 3, 0, 100, 0},
		{"a quarter done", 10, 25, 100, 30},
		{"half done", 4.5, 50, 100, 4.5},
		{"one left", 99, 99, 100, 1},
		{"all done", 10, 100, 100, 0},
		{"done above total", 10, 101, 100, 0},
		{"no total", 10, 0, 0, 0},
		{"no time yet", 0, 5, 10, 0},
		{"large counts", 3600, 1 << 32, 1 << 33, 3600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := eta(tt.elapsed, tt.done, tt.total)
			if math.Abs(got-tt.want) > 1e-9 || got < 0 {
				t.Fatalf("eta(%v, %d, %d) = %v, want %v", tt.elapsed, tt.done, tt.total, got, tt.want)
			}
		})
	}
}
