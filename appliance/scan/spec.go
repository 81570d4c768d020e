package scan

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrSpec means a schedule specification is malformed.
var ErrSpec = errors.New("invalid schedule specification")

// Spec is a parsed schedule: an interval ("@every 6h", at least 15
// minutes, at most 90 days) or a five-field cron line ("m h dom mon dow",
// UTC; each field "*", "N", "N-M", a step "*/S" or "N-M/S", or a comma
// list of these; day of week 0-6 from Sunday; when both day fields are
// restricted, either matches, as in cron).
type Spec struct {
	text  string
	every time.Duration
	// sets of allowed values per cron field: minute, hour, day of month,
	// month, day of week.
	fields [5]uint64
	domAny bool
	dowAny bool
}

// Bounds of an interval schedule.
const (
	MinInterval = 15 * time.Minute
	MaxInterval = 90 * 24 * time.Hour
)

var cronRanges = [5][2]int{{0, 59}, {0, 23}, {1, 31}, {1, 12}, {0, 6}}

// ParseSpec parses a schedule specification.
func ParseSpec(s string) (Spec, error) {
	bad := func(format string, a ...any) (Spec, error) {
		return Spec{}, fmt.Errorf("%w: %q: %s", ErrSpec, s, fmt.Sprintf(format, a...))
	}
	if len(s) > 128 {
		return bad("longer than 128 characters")
	}
	if d, ok := strings.CutPrefix(s, "@every "); ok {
		every, err := time.ParseDuration(d)
		if err != nil {
			return bad("interval: %v", err)
		}
		if every < MinInterval || every > MaxInterval {
			return bad("interval must be %s to %s", MinInterval, MaxInterval)
		}
		return Spec{text: s, every: every}, nil
	}
	parts := strings.Split(s, " ")
	if len(parts) != 5 {
		return bad("want '@every DURATION' or five cron fields separated by single spaces")
	}
	sp := Spec{text: s}
	for i, f := range parts {
		set, err := cronField(f, cronRanges[i][0], cronRanges[i][1])
		if err != nil {
			return bad("field %d: %v", i+1, err)
		}
		sp.fields[i] = set
	}
	sp.domAny, sp.dowAny = parts[2] == "*", parts[4] == "*"
	return sp, nil
}

// cronField parses one cron field into a bit set of values lo..hi.
func cronField(f string, lo, hi int) (uint64, error) {
	var set uint64
	for _, item := range strings.Split(f, ",") {
		rng, step := item, 1
		if r, st, ok := strings.Cut(item, "/"); ok {
			n, err := strconv.Atoi(st)
			if err != nil || n < 1 || n > hi {
				return 0, fmt.Errorf("step %q", st)
			}
			rng, step = r, n
		}
		a, b := lo, hi
		switch {
		case rng == "*":
		case strings.Contains(rng, "-"):
			x, y, _ := strings.Cut(rng, "-")
			var err1, err2 error
			a, err1 = strconv.Atoi(x)
			b, err2 = strconv.Atoi(y)
			if err1 != nil || err2 != nil || a > b {
				return 0, fmt.Errorf("range %q", rng)
			}
		default:
			n, err := strconv.Atoi(rng)
			if err != nil {
				return 0, fmt.Errorf("value %q", rng)
			}
			a, b = n, n
			if step != 1 {
				b = hi
			}
		}
		if a < lo || b > hi {
			return 0, fmt.Errorf("%q outside %d-%d", item, lo, hi)
		}
		for v := a; v <= b; v += step {
			set |= 1 << uint(v)
		}
	}
	return set, nil
}

// String returns the specification as written.
func (s Spec) String() string { return s.text }

// Next returns the first time strictly after t (UTC, whole minutes for
// cron) the schedule is due, or the zero time if none within a year and a
// day (a cron line such as "0 0 31 2 *" never matches).
func (s Spec) Next(t time.Time) time.Time {
	t = t.UTC()
	if s.every > 0 {
		return t.Add(s.every)
	}
	c := t.Truncate(time.Minute).Add(time.Minute)
	limit := c.Add(366 * 24 * time.Hour)
	for c.Before(limit) {
		if s.fields[3]&(1<<uint(c.Month())) == 0 {
			c = time.Date(c.Year(), c.Month()+1, 1, 0, 0, 0, 0, time.UTC)
			continue
		}
		if !s.dayMatches(c) {
			c = time.Date(c.Year(), c.Month(), c.Day()+1, 0, 0, 0, 0, time.UTC)
			continue
		}
		if s.fields[1]&(1<<uint(c.Hour())) == 0 {
			c = c.Truncate(time.Hour).Add(time.Hour)
			continue
		}
		if s.fields[0]&(1<<uint(c.Minute())) == 0 {
			c = c.Add(time.Minute)
			continue
		}
		return c
	}
	return time.Time{}
}

func (s Spec) dayMatches(c time.Time) bool {
	dom := s.fields[2]&(1<<uint(c.Day())) != 0
	dow := s.fields[4]&(1<<uint(c.Weekday())) != 0
	switch {
	case s.domAny && s.dowAny:
		return true
	case s.domAny:
		return dow
	case s.dowAny:
		return dom
	}
	return dom || dow
}
