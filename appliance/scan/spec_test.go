package scan

import (
	"errors"
	"testing"
	"time"
)

func TestSpecNext(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name, spec, from, want string
	}{
		{"interval", "@every 6h", "2026-11-27T14:00:05Z", "2026-11-27T20:00:05Z"},
		{"daily at 03:00", "0 3 * * *", "2026-11-27T14:00:05Z", "2026-11-28T03:00:00Z"},
		{"every 15 minutes", "*/15 * * * *", "2026-11-27T14:00:05Z", "2026-11-27T14:15:00Z"},
		{"weekdays 09:30", "30 9 * * 1-5", "2026-11-27T14:00:00Z", "2026-11-30T09:30:00Z"}, // Friday -> Monday
		{"first of the month", "0 0 1 * *", "2026-11-27T14:00:00Z", "2026-12-01T00:00:00Z"},
		{"list and range", "5,10-12 8 * 1 *", "2026-11-27T14:00:00Z", "2027-01-01T08:05:00Z"},
		{"dom or dow", "0 12 13 * 5", "2026-11-27T14:00:00Z", "2026-12-04T12:00:00Z"}, // next Friday before the 13th
		{"strictly after", "0 14 * * *", "2026-11-27T14:00:00Z", "2026-11-28T14:00:00Z"},
		{"never (31 February)", "0 0 31 2 *", "2026-11-27T14:00:00Z", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp, err := ParseSpec(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			got := sp.Next(at(tt.from))
			if tt.want == "" {
				if !got.IsZero() {
					t.Fatalf("Next = %s, want never", got)
				}
				return
			}
			if !got.Equal(at(tt.want)) {
				t.Fatalf("Next = %s, want %s", got.Format(time.RFC3339), tt.want)
			}
		})
	}
}

func TestSpecRefuses(t *testing.T) {
	for _, s := range []string{"", "@every 1m", "@every 100d", "@every soon", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *",
		"* * 0 * *", "* * * 13 *", "* * * * 7", "*/0 * * * *", "5-1 * * * *", "a * * * *", "*  * * * *", "1,,2 * * * *"} {
		if _, err := ParseSpec(s); !errors.Is(err, ErrSpec) {
			t.Errorf("ParseSpec(%q) = %v, want ErrSpec", s, err)
		}
	}
}

// FuzzParseSpec: no input panics, and a parsed spec's next time is after
// the start and itself due (its own Next from one minute before is it).
func FuzzParseSpec(f *testing.F) {
	// Seeds: each syntax form, and near misses.
	for _, s := range []string{"@every 6h", "0 3 * * *", "*/15 * * * *", "30 9 * * 1-5", "5,10-12 8 * 1 *", "0 12 13 * 5", "0 0 31 2 *", "* * * * 7", "@every 1m"} {
		f.Add(s)
	}
	start := time.Date(2026, 11, 27, 14, 0, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := ParseSpec(s)
		if err != nil {
			return
		}
		n := sp.Next(start)
		if n.IsZero() {
			return
		}
		if !n.After(start) {
			t.Fatalf("%q: Next %s not after %s", s, n, start)
		}
		if sp.every == 0 && !sp.Next(n.Add(-time.Minute)).Equal(n) {
			t.Fatalf("%q: %s is not due", s, n)
		}
	})
}
