package probe

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"firewalliq/probe/bounded"
)

// Output file names in a scan directory.
const (
	ResultsFile    = "results.jsonl"
	EvidenceFile   = "probes.pcapng"
	SummaryFile    = "summary.json"
	CheckpointFile = "checkpoint.json"
)

// Output directory errors.
var (
	// ErrExists is returned when a new scan would overwrite the results
	// of another one.
	ErrExists = errors.New("output directory already holds a scan")
	// ErrNoCheckpoint is returned when asked to resume a directory that
	// has no checkpoint.
	ErrNoCheckpoint = errors.New("no checkpoint to resume from")
	// ErrResumeMismatch is returned when the checkpoint belongs to a
	// different scan (other scope, ports, kinds or rate).
	ErrResumeMismatch = errors.New("checkpoint belongs to a different scan")
	// ErrComplete is returned when resuming a scan that already finished.
	ErrComplete = errors.New("scan already complete")
)

// Checkpoint is the resume state of a scan, written atomically to
// checkpoint.json after every completed batch.
type Checkpoint struct {
	ScanID string `json:"scan_id"`
	// Fingerprint identifies what the scan plans (the caller's hash of
	// scope, ports, kinds and rate); resume refuses another one.
	Fingerprint string `json:"fingerprint"`
	// Seed is the target order's seed, so a resumed run walks the same
	// batches.
	Seed uint64 `json:"seed"`
	// NextBatch is the first batch not yet complete.
	NextBatch int `json:"next_batch"`
	// BatchTargets is the batch size the scan runs with (targets per
	// batch; 0: not recorded). A resumed run must use the same, or batch
	// NextBatch would start at another target: the engine's default
	// depends on the transport (raw or connect), which may differ between
	// runs.
	BatchTargets int `json:"batch_targets,omitempty"`
	// ResultsBytes is the length of results.jsonl holding exactly the
	// completed batches.
	ResultsBytes int64 `json:"results_bytes"`
	Complete     bool  `json:"complete"`
	Runs         int   `json:"runs"`
}

// Dir is a scan's output directory: results.jsonl, probes.pcapng,
// summary.json and checkpoint.json.
type Dir struct {
	path    string
	cp      Checkpoint
	resumed bool
	res     *os.File
	resBuf  *bufio.Writer
	resW    *ResultWriter
	resLen  int64
	pcap    *os.File
	ev      *Evidence
	states  map[State]int
}

// countingWriter tracks the bytes written through it.
type countingWriter struct {
	w io.Writer
	n *int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	*c.n += int64(n)
	return n, err
}

// OpenDir prepares path for a scan. For a new scan (resume false) it
// refuses a directory that already holds results. To resume, it reads the
// checkpoint, checks that cp.Fingerprint matches, truncates results.jsonl
// to the completed batches and probes.pcapng to its last whole block (the
// packets recorded there were really sent, so they stay), and continues its
// pcapng section. Resume returns the checkpoint read.
func OpenDir(path string, cp Checkpoint, resume bool) (*Dir, error) {
	if err := os.MkdirAll(path, 0o750); err != nil {
		return nil, fmt.Errorf("output dir: %w", err)
	}
	d := &Dir{path: path, cp: cp, resumed: resume, states: map[State]int{}}
	resPath := filepath.Join(path, ResultsFile)
	pcapPath := filepath.Join(path, EvidenceFile)
	flags := os.O_CREATE | os.O_WRONLY | os.O_EXCL
	if resume {
		b, err := bounded.ReadFile(filepath.Join(path, CheckpointFile), bounded.MaxScanCheckpoint)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w in %s", ErrNoCheckpoint, path)
		}
		if err != nil {
			return nil, fmt.Errorf("read checkpoint: %w", err)
		}
		var old Checkpoint
		if err := json.Unmarshal(b, &old); err != nil {
			return nil, fmt.Errorf("read checkpoint: %w", err)
		}
		if old.Fingerprint != cp.Fingerprint {
			return nil, fmt.Errorf("%w (checkpoint %.12s, this scan %.12s)", ErrResumeMismatch, old.Fingerprint, cp.Fingerprint)
		}
		if old.Complete {
			return nil, ErrComplete
		}
		d.cp = old
		if err := os.Truncate(resPath, old.ResultsBytes); err != nil {
			return nil, fmt.Errorf("truncate results: %w", err)
		}
		if err := d.countStates(resPath); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(pcapPath, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("open evidence: %w", err)
		}
		n, err := completePcapng(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("check evidence: %w", err)
		}
		if err := os.Truncate(pcapPath, n); err != nil {
			return nil, fmt.Errorf("truncate evidence: %w", err)
		}
		flags = os.O_WRONLY | os.O_APPEND
		d.resLen = old.ResultsBytes
	} else if _, err := os.Stat(resPath); err == nil {
		return nil, fmt.Errorf("%w: %s", ErrExists, path)
	}
	d.cp.Runs++
	var err error
	if d.res, err = os.OpenFile(resPath, flags, 0o640); err != nil {
		return nil, fmt.Errorf("open results: %w", err)
	}
	if d.pcap, err = os.OpenFile(pcapPath, flags, 0o640); err != nil {
		d.res.Close()
		return nil, fmt.Errorf("open evidence: %w", err)
	}
	d.resBuf = bufio.NewWriterSize(countingWriter{d.res, &d.resLen}, 256<<10)
	d.resW = NewResultWriter(d.resBuf)
	appending := false
	if resume {
		if st, err := d.pcap.Stat(); err == nil && st.Size() > 0 {
			appending = true
		}
	}
	if d.ev, err = newEvidence(d.pcap, d.cp.ScanID, appending); err != nil {
		d.Close()
		return nil, err
	}
	// A checkpoint from the start, so a scan interrupted before its first
	// batch completes can still be resumed (from batch 0, with the same
	// seed, keeping its evidence).
	if err := d.writeCheckpoint(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func (d *Dir) countStates(resPath string) error {
	f, err := os.Open(resPath)
	if err != nil {
		return fmt.Errorf("read results: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r struct {
			State State `json:"state"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("read results: %w", err)
		}
		d.states[r.State]++
	}
	return sc.Err()
}

// Resume returns the checkpoint the directory was opened with (for a
// resumed scan: the one read from disk).
func (d *Dir) Resume() Checkpoint { return d.cp }

// SetBatchTargets records the batch size of the scan in the checkpoint
// (see Checkpoint.BatchTargets); call it before the run, with the engine's
// BatchTargets.
func (d *Dir) SetBatchTargets(n int) { d.cp.BatchTargets = n }

// Evidence returns the pcapng writer.
func (d *Dir) Evidence() *Evidence { return d.ev }

// Result appends one result line (Config.Results).
func (d *Dir) Result(r Result) error {
	d.states[r.State]++
	return d.resW.Write(r)
}

// Checkpoint makes batches before next durable (results and evidence
// flushed and synced) and then records next in checkpoint.json, written to
// a temporary file and renamed, so a crash leaves the old or the new
// checkpoint, never half of one (Config.Checkpoint).
func (d *Dir) Checkpoint(next int) error {
	if err := d.resBuf.Flush(); err != nil {
		return fmt.Errorf("flush results: %w", err)
	}
	if err := d.ev.Flush(); err != nil {
		return err
	}
	if err := d.res.Sync(); err != nil {
		return fmt.Errorf("sync results: %w", err)
	}
	if err := d.pcap.Sync(); err != nil {
		return fmt.Errorf("sync evidence: %w", err)
	}
	d.cp.NextBatch = next
	d.cp.ResultsBytes = d.resLen
	return d.writeCheckpoint()
}

func (d *Dir) writeCheckpoint() error {
	return writeJSONAtomic(filepath.Join(d.path, CheckpointFile), d.cp)
}

// Finish writes summary.json (with the state counts over every run of the
// scan) and, when complete, marks the checkpoint complete.
func (d *Dir) Finish(s Summary, complete bool) error {
	if err := d.resBuf.Flush(); err != nil {
		return fmt.Errorf("flush results: %w", err)
	}
	if err := d.ev.Flush(); err != nil {
		return err
	}
	s.States = map[State]int{}
	for k, v := range d.states {
		s.States[k] = v
	}
	if complete {
		d.cp.Complete = true
		d.cp.ResultsBytes = d.resLen
		if err := d.writeCheckpoint(); err != nil {
			return err
		}
	}
	return writeJSONAtomic(filepath.Join(d.path, SummaryFile), s)
}

// Close closes the files (after Finish, or on error).
func (d *Dir) Close() error {
	var errs []error
	if d.res != nil {
		errs = append(errs, d.res.Close())
	}
	if d.pcap != nil {
		errs = append(errs, d.pcap.Close())
	}
	return errors.Join(errs...)
}

func writeJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", filepath.Base(path), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", filepath.Base(path), err)
	}
	return nil
}
