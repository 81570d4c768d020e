package vault

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Vault.
type Config struct {
	// Spool configures the local spool.
	Spool SpoolOptions
	// Production refuses a store that is not WORM (ErrNotWORM).
	Production bool
	// CheckEvery re-verifies the bucket's WORM configuration this often.
	// Default 10 minutes.
	CheckEvery time.Duration
	// MinBackoff and MaxBackoff bound the retry delay after a failed
	// upload or check; it doubles on each failure. Defaults 1s and 1m.
	MinBackoff, MaxBackoff time.Duration
	// Workers is how many uploads run at once. Default 4.
	Workers int
	// UploadTimeout bounds one object's upload and verification, so a
	// server that accepts connections but stalls cannot hold the queue.
	// Default 5 minutes.
	UploadTimeout time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Sleep waits for d or until ctx is done; a timer when nil (tests
	// inject a fast one).
	Sleep func(ctx context.Context, d time.Duration)
	// OnError is told about each failed upload or check (for logs); nil
	// ignores them. Failures are also visible in Status.
	OnError func(error)
	// Ledger, when set, records every record's SHA-256 as it enters the
	// spool (Add, AddRecorded) and is consulted before each upload: a
	// record that differs from its entry, or has none, is reported to it
	// and quarantined instead of uploaded (ErrTampered). The appliance
	// always sets it; without it only the record's own header is checked.
	Ledger SpoolLedger
}

// Vault is the spool plus a store plus a recorder: evidence goes into the
// spool (durably) and stays there until it is uploaded, verified and
// recorded.
type Vault struct {
	cfg   Config
	store Store
	rec   Recorder
	spool *Spool
	now   func() time.Time
	wake  chan struct{}

	mu        sync.Mutex
	checkedAt time.Time
	checkErr  error
	lastErr   error
	lastErrAt time.Time
	uploaded  int64
	// quarantined counts records this process moved aside as tampered.
	quarantined int64
	running     bool
}

// Status is the vault's state for `firewalliq vault status`.
type Status struct {
	Backend   string    `json:"backend"`
	WORM      bool      `json:"worm"`
	CheckedAt time.Time `json:"checked_at,omitempty"`
	CheckErr  string    `json:"check_error,omitempty"`
	LastErr   string    `json:"last_error,omitempty"`
	LastErrAt time.Time `json:"last_error_at,omitempty"`
	Uploaded  int64     `json:"uploaded"` // since this process started
	// Tampered counts records quarantined since this process started
	// because they differed from their evidence.spool entry.
	Tampered int64       `json:"tampered"`
	Spool    SpoolStatus `json:"spool"`
}

// New opens the spool and returns a Vault. It does not contact the store;
// Check (or Run) does. In production a non-WORM store is refused here.
func New(cfg Config, store Store, rec Recorder) (*Vault, error) {
	if store == nil || rec == nil {
		return nil, fmt.Errorf("%w: store and recorder are required", ErrBadConfig)
	}
	if cfg.Production && !store.WORM() {
		return nil, fmt.Errorf("vault %s: %w: production mode needs a compliance-locked MinIO/S3 bucket", store.Backend(), ErrNotWORM)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Spool.Now == nil {
		cfg.Spool.Now = cfg.Now
	}
	if cfg.CheckEvery == 0 {
		cfg.CheckEvery = 10 * time.Minute
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = time.Minute
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		return nil, fmt.Errorf("%w: max backoff below min backoff", ErrBadConfig)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.UploadTimeout <= 0 {
		cfg.UploadTimeout = 5 * time.Minute
	}
	if cfg.Sleep == nil {
		cfg.Sleep = func(ctx context.Context, d time.Duration) {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}
	}
	sp, err := OpenSpool(cfg.Spool)
	if err != nil {
		return nil, err
	}
	return &Vault{cfg: cfg, store: store, rec: rec, spool: sp, now: cfg.Now, wake: make(chan struct{}, 1)}, nil
}

// Store returns the backend.
func (v *Vault) Store() Store { return v.store }

// Add spools evidence for key (see ScanKey, AnchorKey) and wakes the
// uploader. It returns once the evidence is durable in the spool and, with
// a Ledger, recorded in it; the upload happens later. ErrSpoolFull means it
// was refused.
func (v *Vault) Add(ctx context.Context, key string, r io.Reader) (RecordHeader, error) {
	var record func(context.Context, SpoolEntry) (int64, error)
	if v.cfg.Ledger != nil {
		record = v.cfg.Ledger.Spooled
	}
	e, err := v.AddRecorded(ctx, key, r, record)
	if err != nil {
		return RecordHeader{}, err
	}
	return RecordHeader{Key: e.Key, Tenant: e.Tenant, Size: e.Size, SHA256: e.SHA256, Spooled: e.Spooled}, nil
}

// AddRecorded is Add for a submitter that records the spool entry itself,
// in its own transaction: record is called with the new record's entry
// once the record is durable and before the uploader can see it, and
// returns the audit sequence number of the entry it wrote. If record
// fails, the record is removed. With a nil record nothing is recorded
// (and, with a Ledger, the uploader will quarantine the record).
func (v *Vault) AddRecorded(ctx context.Context, key string, r io.Reader, record func(context.Context, SpoolEntry) (int64, error)) (SpoolEntry, error) {
	k, err := ParseKey(key)
	if err != nil {
		return SpoolEntry{}, err
	}
	var e SpoolEntry
	var hook func(string, RecordHeader) error
	if record != nil {
		hook = func(id string, h RecordHeader) error {
			e = SpoolEntry{ID: id, Key: h.Key, Tenant: h.Tenant, SHA256: h.SHA256, Size: h.Size, Spooled: h.Spooled}
			seq, err := record(ctx, e)
			e.Seq = seq
			return err
		}
	}
	id, h, err := v.spool.AddRecorded(ctx, key, k.Tenant, r, hook)
	if err != nil {
		return SpoolEntry{}, err
	}
	e.ID, e.Key, e.Tenant, e.SHA256, e.Size, e.Spooled = id, h.Key, h.Tenant, h.SHA256, h.Size, h.Spooled
	select {
	case v.wake <- struct{}{}:
	default:
	}
	return e, nil
}

// Check verifies the store's configuration now and remembers the result;
// uploads proceed only after a successful check.
func (v *Vault) Check(ctx context.Context) error {
	err := v.store.Check(ctx)
	v.mu.Lock()
	v.checkedAt, v.checkErr = v.now(), err
	v.mu.Unlock()
	if err != nil && v.cfg.OnError != nil {
		v.cfg.OnError(err)
	}
	return err
}

func (v *Vault) checkDue() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.checkedAt.IsZero() || v.checkErr != nil || v.now().Sub(v.checkedAt) >= v.cfg.CheckEvery
}

// Flush uploads everything pending now, returning the first error. Run
// calls it in a loop; tests and the benchmark call it directly.
func (v *Vault) Flush(ctx context.Context) error {
	if v.checkDue() {
		if err := v.Check(ctx); err != nil {
			return fmt.Errorf("%w: %w", ErrNotChecked, err)
		}
	}
	for {
		batch := v.spool.claim(0)
		if len(batch) == 0 {
			return nil
		}
		errs := make([]error, len(batch))
		// After the first failure the rest of the batch is skipped: the
		// store is likely down or refusing, and a stalled server would
		// otherwise cost UploadTimeout per pending object.
		var failed atomic.Bool
		var wg sync.WaitGroup
		next := make(chan int)
		for w := 0; w < v.cfg.Workers && w < len(batch); w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					if failed.Load() {
						continue
					}
					if errs[i] = v.upload(ctx, batch[i]); errs[i] != nil {
						failed.Store(true)
					}
				}
			}()
		}
		for i := range batch {
			next <- i
		}
		close(next)
		wg.Wait()
		for _, r := range batch {
			v.spool.unclaim(r.id)
		}
		if err := firstError(errs); err != nil {
			v.mu.Lock()
			v.lastErr, v.lastErrAt = err, v.now()
			v.mu.Unlock()
			if v.cfg.OnError != nil {
				v.cfg.OnError(err)
			}
			return err
		}
	}
}

// firstError returns the first non-nil error, noting how many failed.
func firstError(errs []error) error {
	var first error
	n := 0
	for _, err := range errs {
		if err != nil {
			if first == nil {
				first = err
			}
			n++
		}
	}
	if n > 1 {
		return fmt.Errorf("%d uploads failed, first: %w", n, first)
	}
	return first
}

// upload sends one record, verifies it, records it and only then removes
// it from the spool.
func (v *Vault) upload(ctx context.Context, r *spooled) error {
	f, err := v.spool.open(r)
	if err != nil {
		return fmt.Errorf("spool open %s: %w", r.hdr.Key, err)
	}
	defer f.Close()
	var want [32]byte
	if _, err := hex.Decode(want[:], []byte(r.hdr.SHA256)); err != nil {
		return fmt.Errorf("spool %s: %w", r.hdr.Key, ErrBadRecord)
	}
	// Re-hash the spooled payload first: a record damaged on local disk is
	// quarantined, never uploaded as if it were the original evidence.
	got, err := sumReader(io.NewSectionReader(f, 0, r.hdr.Size))
	if err != nil {
		return fmt.Errorf("spool %s: %w", r.hdr.Key, err)
	}
	var entry SpoolEntry
	if v.cfg.Ledger != nil {
		// The record's own header can be rewritten along with its payload;
		// what the audit log recorded at spooling cannot (without breaking
		// the chain), so that is what the upload must match.
		var reason string
		entry, err = v.cfg.Ledger.Recorded(ctx, r.id)
		switch {
		case errors.Is(err, ErrNotRecorded):
			reason = err.Error()
		case err != nil:
			return fmt.Errorf("spool %s: %w", r.hdr.Key, err)
		default:
			reason = entry.differs(r.hdr, hex.EncodeToString(got[:]))
		}
		if reason != "" {
			return v.quarantine(ctx, r, Quarantine{Recorded: entry, Found: r.hdr, FoundSHA256: hex.EncodeToString(got[:]), ID: r.id, Reason: reason})
		}
	}
	if got != want {
		err := fmt.Errorf("%w: payload hash does not match its header", ErrBadRecord)
		if v.cfg.Ledger != nil {
			return v.quarantine(ctx, r, Quarantine{Recorded: entry, Found: r.hdr, FoundSHA256: hex.EncodeToString(got[:]), ID: r.id, Reason: err.Error()})
		}
		if qerr := v.spool.dropCorrupt(r, err.Error()); qerr != nil {
			return errors.Join(err, qerr)
		}
		return fmt.Errorf("spool %s: %w", r.hdr.Key, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	body := io.NewSectionReader(f, 0, r.hdr.Size)
	pctx, cancel := context.WithTimeout(ctx, v.cfg.UploadTimeout)
	defer cancel()
	rc, err := v.store.Put(pctx, Object{Key: r.hdr.Key, Tenant: r.hdr.Tenant, Size: r.hdr.Size, SHA256: want}, body)
	if err != nil {
		return err
	}
	rc.Spooled = r.hdr.Spooled
	rc.SpoolID, rc.SpoolSeq = r.id, entry.Seq
	if err := v.rec.Record(ctx, rc); err != nil {
		return fmt.Errorf("record upload %s: %w", r.hdr.Key, err)
	}
	if err := v.spool.remove(r); err != nil {
		return err
	}
	v.mu.Lock()
	v.uploaded++
	v.mu.Unlock()
	return nil
}

// quarantine reports a record that differs from what was recorded (the
// ledger raises the tamper alarm), then moves it to corrupt/ so it is never
// uploaded. If reporting fails the record stays put and is reported again
// on the next attempt: it is never uploaded either way.
func (v *Vault) quarantine(ctx context.Context, r *spooled, q Quarantine) error {
	if err := v.cfg.Ledger.Quarantined(ctx, q); err != nil {
		return fmt.Errorf("spool %s: %w: %s; reporting it failed: %w", r.hdr.Key, ErrTampered, q.Reason, err)
	}
	if err := v.spool.dropCorrupt(r, q.Reason); err != nil {
		return fmt.Errorf("spool %s: %w: %s; moving it aside failed: %w", r.hdr.Key, ErrTampered, q.Reason, err)
	}
	v.mu.Lock()
	v.quarantined++
	v.mu.Unlock()
	return fmt.Errorf("spool %s: %w: %s (record %s quarantined)", r.hdr.Key, ErrTampered, q.Reason, r.id)
}

// differs says how a record (its header h and its payload's hash got)
// differs from what was recorded at spooling; "" when it matches.
func (e SpoolEntry) differs(h RecordHeader, got string) string {
	switch {
	case e.Key != h.Key || e.Tenant != h.Tenant:
		return fmt.Sprintf("record names %q (tenant %q), spooled as %q (tenant %q)", h.Key, h.Tenant, e.Key, e.Tenant)
	case got != e.SHA256:
		return fmt.Sprintf("payload sha256 %s, recorded at spooling (audit entry %d) as %s", got, e.Seq, e.SHA256)
	case h.SHA256 != e.SHA256 || h.Size != e.Size:
		return fmt.Sprintf("header says sha256 %s size %d, recorded at spooling (audit entry %d) as %s size %d", h.SHA256, h.Size, e.Seq, e.SHA256, e.Size)
	}
	return ""
}

// Run uploads in the background until ctx is done: it verifies the bucket
// (again every CheckEvery), uploads what is pending, and after a failure
// waits with exponential backoff before trying again. Evidence added
// meanwhile stays safe in the spool.
func (v *Vault) Run(ctx context.Context) error {
	backoff := v.cfg.MinBackoff
	for ctx.Err() == nil {
		err := v.Flush(ctx)
		wait := v.cfg.CheckEvery
		if err != nil {
			wait = backoff
			backoff = min(backoff*2, v.cfg.MaxBackoff)
		} else {
			backoff = v.cfg.MinBackoff
		}
		if err != nil {
			// Sleep the backoff out even if new evidence arrives: the store
			// is failing, and hammering it helps nobody.
			v.cfg.Sleep(ctx, wait)
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-v.wake:
				cancel()
			case <-wctx.Done():
			}
		}()
		v.cfg.Sleep(wctx, wait)
		cancel()
	}
	return ctx.Err()
}

// Status returns the vault's state.
func (v *Vault) Status() Status {
	v.mu.Lock()
	defer v.mu.Unlock()
	st := Status{Backend: v.store.Backend(), WORM: v.store.WORM() && v.checkErr == nil && !v.checkedAt.IsZero(),
		CheckedAt: v.checkedAt, LastErrAt: v.lastErrAt, Uploaded: v.uploaded, Tampered: v.quarantined, Spool: v.spool.Status()}
	if v.checkErr != nil {
		st.CheckErr = v.checkErr.Error()
	}
	if v.lastErr != nil {
		st.LastErr = v.lastErr.Error()
	}
	return st
}
