package sensor

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"firewalliq/probe/runner"
)

// spool is the sensor's durable outbox: each run's events as JSON Lines
// in <dir>/<run>.events (fsync'd before they may be sent), and the count
// the console has acknowledged in <dir>/<run>.acked. A run's files go once
// every event, the final one included, is acknowledged. A restart reads
// them back and sends what is left; JetStream's message ids make a second
// send of an acknowledged-but-unrecorded event harmless.
type spool struct {
	dir  string
	mu   sync.Mutex
	runs map[string]*spoolRun
	wake chan struct{}
}

type spoolRun struct {
	run     string
	f       *os.File
	events  []runner.Event
	acked   int // events[:acked] are acknowledged
	final   bool
	created time.Time
}

// maxSpoolLine bounds one spooled event (runner.MaxEventSize).
const maxSpoolLine = runner.MaxEventSize

// openSpool loads dir's runs. A run without its final event was cut short
// by a restart of the sensor: it is closed with a final "done" (or
// "refused" when nothing was sent) whose code is "interrupted", so the
// console learns why it stopped.
func openSpool(dir string, now func() time.Time) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &spool{dir: dir, runs: map[string]*spoolRun{}, wake: make(chan struct{}, 1)}
	names, err := filepath.Glob(filepath.Join(dir, "*.events"))
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	sort.Strings(names)
	for _, n := range names {
		run := strings.TrimSuffix(filepath.Base(n), ".events")
		if !runIDPattern.MatchString(run) {
			continue
		}
		r, err := s.load(run)
		if err != nil {
			return nil, err
		}
		s.runs[run] = r
		if !r.final {
			ev := runner.Event{Seq: uint64(len(r.events)) + 1, Time: now().UTC()}
			if len(r.events) > 0 {
				ev.JobID, ev.ScanID = r.events[0].JobID, r.events[0].ScanID
			}
			if len(r.events) == 0 {
				ev.Type, ev.Refused = runner.TypeRefused, &runner.Refusal{Code: "interrupted", Reason: "the sensor restarted before the run began"}
			} else {
				ev.Type, ev.Done = runner.TypeDone, &runner.Done{Error: "the sensor restarted during the run", Code: "interrupted"}
			}
			if err := s.appendLocked(r, []runner.Event{ev}); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

func (s *spool) load(run string) (*spoolRun, error) {
	path := filepath.Join(s.dir, run+".events")
	f, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	r := &spoolRun{run: run, f: f}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), maxSpoolLine)
	var good int64
	for sc.Scan() {
		var ev runner.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.Validate() != nil || ev.Seq != uint64(len(r.events))+1 {
			// A torn last line from a crash mid-write: cut it off.
			break
		}
		r.events = append(r.events, ev)
		r.final = r.final || ev.Type == runner.TypeDone || ev.Type == runner.TypeRefused
		good += int64(len(sc.Bytes())) + 1
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	if _, err := f.Seek(good, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	if b, err := os.ReadFile(filepath.Join(s.dir, run+".acked")); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n >= 0 && n <= len(r.events) {
			r.acked = n
		}
	}
	return r, nil
}

// has reports whether run is in the spool (a redelivered dispatch).
func (s *spool) has(run string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.runs[run]
	return ok
}

// create makes run's file durably (before the dispatch is acknowledged).
func (s *spool) create(run string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.runs[run]; ok {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(s.dir, run+".events"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("spool: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return err
	}
	s.runs[run] = &spoolRun{run: run, f: f, created: now}
	return nil
}

// append writes events durably and wakes the sender.
func (s *spool) append(run string, evs []runner.Event) error {
	s.mu.Lock()
	r := s.runs[run]
	if r == nil {
		s.mu.Unlock()
		return fmt.Errorf("spool: no run %s", run)
	}
	err := s.appendLocked(r, evs)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return err
}

func (s *spool) appendLocked(r *spoolRun, evs []runner.Event) error {
	var b []byte
	for _, ev := range evs {
		line, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		b = append(append(b, line...), '\n')
	}
	if _, err := r.f.Write(b); err != nil {
		return fmt.Errorf("spool %s: %w", r.run, err)
	}
	if err := r.f.Sync(); err != nil {
		return fmt.Errorf("spool %s: %w", r.run, err)
	}
	for _, ev := range evs {
		r.events = append(r.events, ev)
		r.final = r.final || ev.Type == runner.TypeDone || ev.Type == runner.TypeRefused
	}
	return nil
}

// unsent returns up to max events of one run not yet acknowledged, oldest
// run first.
func (s *spool) unsent(max int) (string, []runner.Event, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.runs))
	for n := range s.runs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := s.runs[n]
		if r.acked < len(r.events) {
			end := min(len(r.events), r.acked+max)
			return n, append([]runner.Event(nil), r.events[r.acked:end]...), r.acked
		}
	}
	return "", nil, 0
}

// acked records that run's first n events are acknowledged, and removes
// the run once its final event is.
func (s *spool) acked(run string, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.runs[run]
	if r == nil || n <= r.acked {
		return nil
	}
	r.acked = n
	if r.final && r.acked == len(r.events) {
		r.f.Close()
		delete(s.runs, run)
		err := errors.Join(os.Remove(filepath.Join(s.dir, run+".events")), ignoreMissing(os.Remove(filepath.Join(s.dir, run+".acked"))))
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		return nil
	}
	tmp := filepath.Join(s.dir, run+".acked.tmp")
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(n)), 0o600); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, run+".acked")); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

// pending returns the number of events not yet acknowledged.
func (s *spool) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.runs {
		n += len(r.events) - r.acked
	}
	return n
}

func (s *spool) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.runs {
		r.f.Close()
	}
}

func ignoreMissing(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}
