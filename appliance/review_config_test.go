package appliance

import (
	"errors"
	"testing"
	"time"
)

// TestReviewInterval: review.interval defaults to quarterly, is set by
// FIQ_REVIEW_INTERVAL, and refuses malformed or sub-hour values.
func TestReviewInterval(t *testing.T) {
	if d := DefaultConfig().Review.Interval; d != 91*24*time.Hour {
		t.Fatalf("default %s", d)
	}
	tests := []struct {
		name string
		env  string
		want time.Duration
		err  error
	}{
		{name: "monthly", env: "720h", want: 720 * time.Hour},
		{name: "malformed", env: "quarterly", err: ErrInvalidConfig},
		{name: "too short", env: "10m", err: ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.DataDir = t.TempDir()
			getenv := func(k string) string {
				if k == "FIQ_REVIEW_INTERVAL" {
					return tt.env
				}
				return ""
			}
			err := c.LoadEnv(getenv, []string{"FIQ_REVIEW_INTERVAL=" + tt.env})
			if err == nil {
				err = c.Validate()
			}
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("got %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || c.Review.Interval != tt.want {
				t.Fatalf("interval %s, %v", c.Review.Interval, err)
			}
		})
	}
}
