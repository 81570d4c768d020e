package vault

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Spool record format (docs/vault.md). A record is one file, written under a
// temporary name, fsync'd, renamed to <id>.rec and the directory fsync'd, so
// a record either exists complete or not at all:
//
//	payload        (size bytes)
//	header JSON    (n bytes: key, tenant, size, sha256, spooled)
//	n              (uint32, big endian)
//	magic          "FIQSPL01"
//
// The header trails the payload because evidence is streamed in and its
// size and hash are only known at the end.
const (
	recordMagic   = "FIQSPL01"
	trailerLen    = 4 + len(recordMagic)
	maxHeaderLen  = 64 << 10
	recordExt     = ".rec"
	tempExt       = ".tmp"
	quarantineDir = "corrupt"
)

// RecordHeader is the metadata stored with a spooled object.
type RecordHeader struct {
	Key     string    `json:"key"`
	Tenant  string    `json:"tenant"`
	Size    int64     `json:"size"`
	SHA256  string    `json:"sha256"` // hex
	Spooled time.Time `json:"spooled"`
}

func (h RecordHeader) validate() error {
	k, err := ParseKey(h.Key)
	if err != nil {
		return err
	}
	if k.Tenant != h.Tenant {
		return fmt.Errorf("%w: tenant %q does not own key %q", ErrBadRecord, h.Tenant, h.Key)
	}
	if h.Size < 0 {
		return fmt.Errorf("%w: negative size", ErrBadRecord)
	}
	if b, err := hex.DecodeString(h.SHA256); err != nil || len(b) != sha256.Size || strings.ToLower(h.SHA256) != h.SHA256 {
		return fmt.Errorf("%w: sha256 is not 64 lower-case hex digits", ErrBadRecord)
	}
	if h.Spooled.IsZero() {
		return fmt.Errorf("%w: no spool time", ErrBadRecord)
	}
	return nil
}

// EncodeTrailer returns the bytes that follow the payload of a record.
func EncodeTrailer(h RecordHeader) ([]byte, error) {
	if err := h.validate(); err != nil {
		return nil, err
	}
	js, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode spool header: %w", err)
	}
	out := make([]byte, 0, len(js)+trailerLen)
	out = append(out, js...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(js)))
	return append(out, recordMagic...), nil
}

// DecodeRecord reads the header of the record in r, a file of fileSize
// bytes, and checks that the sizes add up. It does not read the payload.
func DecodeRecord(r io.ReaderAt, fileSize int64) (RecordHeader, error) {
	var h RecordHeader
	if fileSize < int64(trailerLen) {
		return h, fmt.Errorf("%w: %d bytes is too short", ErrBadRecord, fileSize)
	}
	tail := make([]byte, trailerLen)
	if _, err := r.ReadAt(tail, fileSize-int64(trailerLen)); err != nil {
		return h, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	if string(tail[4:]) != recordMagic {
		return h, fmt.Errorf("%w: bad magic", ErrBadRecord)
	}
	n := int64(binary.BigEndian.Uint32(tail[:4]))
	if n == 0 || n > maxHeaderLen || n > fileSize-int64(trailerLen) {
		return h, fmt.Errorf("%w: header length %d", ErrBadRecord, n)
	}
	js := make([]byte, n)
	if _, err := r.ReadAt(js, fileSize-int64(trailerLen)-n); err != nil {
		return h, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return RecordHeader{}, fmt.Errorf("%w: header: %w", ErrBadRecord, err)
	}
	if dec.More() {
		return RecordHeader{}, fmt.Errorf("%w: trailing data after header", ErrBadRecord)
	}
	if err := h.validate(); err != nil {
		return RecordHeader{}, err
	}
	if h.Size != fileSize-int64(trailerLen)-n {
		return RecordHeader{}, fmt.Errorf("%w: header says %d payload bytes, file holds %d", ErrBadRecord, h.Size, fileSize-int64(trailerLen)-n)
	}
	return h, nil
}

// SpoolOptions configure a Spool.
type SpoolOptions struct {
	// Dir holds the records. It is created (0700) if missing.
	Dir string
	// MaxBytes bounds the spool's size on disk; Add refuses evidence that
	// would exceed it. Default 1 GiB.
	MaxBytes int64
	// AlertAt is the fraction of MaxBytes at which OnAlert fires. Default 0.8.
	AlertAt float64
	// OnAlert is called (outside the spool's lock) when the spool crosses
	// AlertAt going up (full is true when an Add was refused). It fires
	// again only after the spool dropped back below the mark.
	OnAlert func(SpoolStatus)
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Spool is a durable local queue of evidence awaiting verified upload.
type Spool struct {
	dir     string
	max     int64
	alertAt int64
	onAlert func(SpoolStatus)
	now     func() time.Time

	mu       sync.Mutex
	recs     map[string]*spooled // by record id
	bytes    int64               // on-disk bytes of recs, plus reservations
	alerted  bool
	corrupt  int
	inflight map[string]bool
}

type spooled struct {
	id     string
	hdr    RecordHeader
	onDisk int64
}

// SpoolStatus is what `firewalliq vault status` shows about the spool.
type SpoolStatus struct {
	Dir      string        `json:"dir"`
	Pending  int           `json:"pending"`
	Bytes    int64         `json:"bytes"`
	MaxBytes int64         `json:"max_bytes"`
	Oldest   time.Time     `json:"oldest,omitempty"`
	Age      time.Duration `json:"oldest_age_ns"`
	Corrupt  int           `json:"corrupt"` // records moved to corrupt/ for inspection
	Alert    bool          `json:"alert"`   // at or above the alert mark
	Full     bool          `json:"full"`
}

// OpenSpool opens (creating if needed) the spool directory and re-reads
// every record in it, so evidence spooled before a restart is uploaded
// after it. Unfinished temporary files were never acknowledged to a caller
// and are removed; records that do not decode are moved to corrupt/ rather
// than deleted.
func OpenSpool(opts SpoolOptions) (*Spool, error) {
	if opts.Dir == "" {
		return nil, fmt.Errorf("%w: spool dir is empty", ErrBadConfig)
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = 1 << 30
	}
	if opts.MaxBytes < 0 {
		return nil, fmt.Errorf("%w: spool max bytes must be positive", ErrBadConfig)
	}
	if opts.AlertAt == 0 {
		opts.AlertAt = 0.8
	}
	if opts.AlertAt < 0 || opts.AlertAt > 1 {
		return nil, fmt.Errorf("%w: spool alert mark must be in (0, 1]", ErrBadConfig)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Spool{
		dir: opts.Dir, max: opts.MaxBytes, alertAt: int64(float64(opts.MaxBytes) * opts.AlertAt),
		onAlert: opts.OnAlert, now: opts.Now,
		recs: map[string]*spooled{}, inflight: map[string]bool{},
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() {
			if name == quarantineDir {
				q, _ := os.ReadDir(filepath.Join(s.dir, name))
				s.corrupt = len(q)
			}
			continue
		}
		path := filepath.Join(s.dir, name)
		switch {
		case strings.HasSuffix(name, tempExt):
			if err := os.Remove(path); err != nil {
				return nil, fmt.Errorf("open spool: %w", err)
			}
		case strings.HasSuffix(name, recordExt):
			id := strings.TrimSuffix(name, recordExt)
			hdr, size, err := readHeaderFile(path)
			if errors.Is(err, ErrBadRecord) || errors.Is(err, ErrBadKey) {
				if qerr := s.quarantine(id); qerr != nil {
					return nil, fmt.Errorf("open spool: %w", qerr)
				}
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("open spool: %w", err)
			}
			s.recs[id] = &spooled{id: id, hdr: hdr, onDisk: size}
			s.bytes += size
		}
	}
	return s, nil
}

func readHeaderFile(path string) (RecordHeader, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return RecordHeader{}, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return RecordHeader{}, 0, err
	}
	h, err := DecodeRecord(f, st.Size())
	return h, st.Size(), err
}

// quarantine moves a record that cannot be uploaded to corrupt/, keeping it
// for inspection: evidence is never silently deleted.
func (s *Spool) quarantine(id string) error {
	qdir := filepath.Join(s.dir, quarantineDir)
	if err := os.MkdirAll(qdir, 0o700); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(s.dir, id+recordExt), filepath.Join(qdir, id+recordExt)); err != nil {
		return err
	}
	s.corrupt++
	return syncDir(s.dir)
}

// Add streams r into a new durable record for key and returns its header.
// It returns only after the record and its directory entry are fsync'd. It
// refuses (ErrSpoolFull) evidence that would take the spool past MaxBytes.
func (s *Spool) Add(ctx context.Context, key, tenant string, r io.Reader) (RecordHeader, error) {
	hdr := RecordHeader{Key: key, Tenant: tenant, Spooled: s.now().UTC(), SHA256: strings.Repeat("0", 64), Size: 0}
	if err := hdr.validate(); err != nil {
		return RecordHeader{}, err
	}
	if st := s.Status(); st.Full {
		s.alert(true)
		return RecordHeader{}, fmt.Errorf("spool %s: %w", key, ErrSpoolFull)
	}
	id := fmt.Sprintf("%020d-%s", hdr.Spooled.UnixNano(), randHex(6))
	tmp := filepath.Join(s.dir, id+tempExt)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return RecordHeader{}, fmt.Errorf("spool %s: %w", key, err)
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	// Stop copying as soon as the spool could not take the object anyway.
	lim := &io.LimitedReader{R: ctxReader{ctx, r}, N: s.max + 1}
	n, err := io.Copy(io.MultiWriter(f, h), lim)
	if err != nil {
		return RecordHeader{}, fmt.Errorf("spool %s: %w", key, err)
	}
	hdr.Size = n
	hdr.SHA256 = hex.EncodeToString(h.Sum(nil))
	tr, err := EncodeTrailer(hdr)
	if err != nil {
		return RecordHeader{}, err
	}
	if _, err := f.Write(tr); err != nil {
		return RecordHeader{}, fmt.Errorf("spool %s: %w", key, err)
	}
	onDisk := n + int64(len(tr))
	// Reserve the space before the slow fsyncs so concurrent Adds cannot
	// together exceed the bound.
	s.mu.Lock()
	if s.bytes+onDisk > s.max {
		s.mu.Unlock()
		s.alert(true)
		return RecordHeader{}, fmt.Errorf("spool %s (%d bytes): %w", key, onDisk, ErrSpoolFull)
	}
	s.bytes += onDisk
	s.mu.Unlock()
	release := func() { s.mu.Lock(); s.bytes -= onDisk; s.mu.Unlock() }
	if err := f.Sync(); err != nil {
		release()
		return RecordHeader{}, fmt.Errorf("spool %s: fsync: %w", key, err)
	}
	if err := f.Close(); err != nil {
		release()
		return RecordHeader{}, fmt.Errorf("spool %s: %w", key, err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, id+recordExt)); err != nil {
		release()
		return RecordHeader{}, fmt.Errorf("spool %s: %w", key, err)
	}
	done = true
	if err := syncDir(s.dir); err != nil {
		// The record exists but its name may not survive a crash; keep it
		// (it will be uploaded) but tell the caller it is not durable.
		s.mu.Lock()
		s.recs[id] = &spooled{id: id, hdr: hdr, onDisk: onDisk}
		s.mu.Unlock()
		return RecordHeader{}, fmt.Errorf("spool %s: fsync dir: %w", key, err)
	}
	s.mu.Lock()
	s.recs[id] = &spooled{id: id, hdr: hdr, onDisk: onDisk}
	s.mu.Unlock()
	s.alert(false)
	return hdr, nil
}

// alert fires OnAlert once per crossing of the alert mark (and on every
// refusal, so an operator sees that evidence is being turned away).
func (s *Spool) alert(refused bool) {
	st := s.Status()
	s.mu.Lock()
	fire := refused || (st.Alert && !s.alerted)
	s.alerted = st.Alert
	s.mu.Unlock()
	if fire && s.onAlert != nil {
		st.Full = st.Full || refused
		s.onAlert(st)
	}
}

// Status returns the spool's counters.
func (s *Spool) Status() SpoolStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := SpoolStatus{Dir: s.dir, Pending: len(s.recs), Bytes: s.bytes, MaxBytes: s.max, Corrupt: s.corrupt}
	for _, r := range s.recs {
		if st.Oldest.IsZero() || r.hdr.Spooled.Before(st.Oldest) {
			st.Oldest = r.hdr.Spooled
		}
	}
	if !st.Oldest.IsZero() {
		st.Age = s.now().Sub(st.Oldest)
	}
	st.Alert = s.bytes >= s.alertAt
	st.Full = s.bytes >= s.max
	return st
}

// pending returns records not being uploaded, oldest first, and marks
// them in flight.
func (s *Spool) claim(limit int) []*spooled {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*spooled, 0, len(s.recs))
	for id, r := range s.recs {
		if !s.inflight[id] {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	for _, r := range out {
		s.inflight[r.id] = true
	}
	return out
}

func (s *Spool) unclaim(id string) {
	s.mu.Lock()
	delete(s.inflight, id)
	s.mu.Unlock()
}

// open opens a record's payload for reading.
func (s *Spool) open(r *spooled) (*os.File, error) {
	return os.Open(filepath.Join(s.dir, r.id+recordExt))
}

// remove deletes a record whose upload was verified and recorded.
func (s *Spool) remove(r *spooled) error {
	if err := os.Remove(filepath.Join(s.dir, r.id+recordExt)); err != nil {
		return fmt.Errorf("spool remove: %w", err)
	}
	s.mu.Lock()
	delete(s.recs, r.id)
	delete(s.inflight, r.id)
	s.bytes -= r.onDisk
	if s.bytes < s.alertAt {
		s.alerted = false
	}
	s.mu.Unlock()
	return syncDir(s.dir)
}

// dropCorrupt moves a record whose payload no longer matches its header to
// corrupt/.
func (s *Spool) dropCorrupt(r *spooled) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.quarantine(r.id); err != nil {
		return err
	}
	delete(s.recs, r.id)
	delete(s.inflight, r.id)
	s.bytes -= r.onDisk
	return nil
}

// ReadSpoolStatus reads a spool directory without opening it for writing,
// for `firewalliq vault status` while the server owns the spool.
func ReadSpoolStatus(dir string, maxBytes int64, alertAt float64, now time.Time) (SpoolStatus, error) {
	if maxBytes <= 0 {
		maxBytes = 1 << 30
	}
	if alertAt <= 0 {
		alertAt = 0.8
	}
	st := SpoolStatus{Dir: dir, MaxBytes: maxBytes}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read spool: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() && e.Name() == quarantineDir {
			q, _ := os.ReadDir(filepath.Join(dir, quarantineDir))
			st.Corrupt = len(q)
			continue
		}
		if !strings.HasSuffix(e.Name(), recordExt) {
			continue
		}
		hdr, size, err := readHeaderFile(filepath.Join(dir, e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // uploaded meanwhile
		}
		if err != nil {
			st.Corrupt++
			continue
		}
		st.Pending++
		st.Bytes += size
		if st.Oldest.IsZero() || hdr.Spooled.Before(st.Oldest) {
			st.Oldest = hdr.Spooled
		}
	}
	if !st.Oldest.IsZero() {
		st.Age = now.Sub(st.Oldest)
	}
	st.Alert = float64(st.Bytes) >= float64(maxBytes)*alertAt
	st.Full = st.Bytes >= maxBytes
	return st, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

// ctxReader stops a long copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func sumReader(r io.Reader) ([32]byte, error) {
	h := sha256.New()
	var sum [32]byte
	if _, err := io.Copy(h, r); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}
