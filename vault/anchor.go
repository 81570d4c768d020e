package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

// ErrNothingToAnchor means the audit log has not grown since the previous
// anchor, so there is nothing new to write.
var ErrNothingToAnchor = errors.New("audit log has not grown since the last anchor")

// Ledger is what daily anchoring needs from the audit log. The appliance
// adapts the audit package to it; vault does not import audit.
type Ledger interface {
	// LatestCheckpoint returns the newest signed checkpoint: the tree size
	// it covers and its signed-note text.
	LatestCheckpoint(ctx context.Context) (size int64, note []byte, err error)
	// Entries returns the entries at tree indexes [from, to) (sequence
	// numbers from+1 .. to) as JSON Lines, one entry per line.
	Entries(ctx context.Context, from, to int64) ([]byte, error)
	// ConsistencyProof returns, as a self-describing JSON document in the
	// ledger's own proof format (the appliance uses the audit package's, so
	// 'firewalliq audit verify-proof' checks it offline), the RFC 6962
	// consistency proof from tree size oldSize (>= 1) to newSize.
	ConsistencyProof(ctx context.Context, oldSize, newSize int64) ([]byte, error)
}

// AnchorResult describes what Anchor spooled.
type AnchorResult struct {
	Day        string   `json:"day"`       // YYYY-MM-DD (UTC)
	FromSize   int64    `json:"from_size"` // previous anchor's tree size
	ToSize     int64    `json:"to_size"`   // this checkpoint's tree size
	Checkpoint []byte   `json:"checkpoint"`
	Keys       []string `json:"keys"`
}

// Anchor spools the audit entries added since prevSize, the latest signed
// checkpoint and (unless prevSize is 0) the consistency proof from prevSize
// to it, under
// appliance/anchors/<day>/. Names carry the tree sizes, so a second anchor
// on the same day adds objects rather than replacing any. The objects are
// uploaded (and each recorded) like any evidence; Anchor returns once they
// are durable in the spool.
func (v *Vault) Anchor(ctx context.Context, l Ledger, day time.Time, prevSize int64) (AnchorResult, error) {
	size, note, err := l.LatestCheckpoint(ctx)
	if err != nil {
		return AnchorResult{}, fmt.Errorf("anchor: checkpoint: %w", err)
	}
	if size < prevSize {
		// The log shrank: a rolled-back database. Never paper over it.
		return AnchorResult{}, fmt.Errorf("anchor: checkpoint size %d is below the previous anchor's %d", size, prevSize)
	}
	if size == prevSize {
		return AnchorResult{}, ErrNothingToAnchor
	}
	entries, err := l.Entries(ctx, prevSize, size)
	if err != nil {
		return AnchorResult{}, fmt.Errorf("anchor: entries: %w", err)
	}
	type object struct {
		name string
		body []byte
	}
	objs := []object{{fmt.Sprintf("entries-%d-%d.jsonl", prevSize, size), entries}}
	// The first anchor has nothing to be consistent with.
	if prevSize > 0 {
		proof, err := l.ConsistencyProof(ctx, prevSize, size)
		if err != nil {
			return AnchorResult{}, fmt.Errorf("anchor: consistency proof: %w", err)
		}
		if !json.Valid(proof) {
			return AnchorResult{}, fmt.Errorf("anchor: consistency proof is not JSON")
		}
		objs = append(objs, object{fmt.Sprintf("consistency-%d-%d.json", prevSize, size), proof})
	}
	objs = append(objs, object{fmt.Sprintf("checkpoint-%d.txt", size), note})
	res := AnchorResult{Day: day.UTC().Format(time.DateOnly), FromSize: prevSize, ToSize: size, Checkpoint: note}
	for _, o := range objs {
		key, err := AnchorKey(day, o.name)
		if err != nil {
			return AnchorResult{}, err
		}
		if _, err := v.Add(ctx, key, bytes.NewReader(o.body)); err != nil {
			return AnchorResult{}, fmt.Errorf("anchor: %w", err)
		}
		res.Keys = append(res.Keys, key)
	}
	return res, nil
}

// ErrCannotReadAnchors means the backend cannot list and read anchors back.
var ErrCannotReadAnchors = errors.New("evidence backend cannot read anchors back")

// AnchorNote is one stored version of an anchor's checkpoint object
// (appliance/anchors/<day>/checkpoint-<size>.txt): the signed checkpoint
// note that left the appliance that day. The caller verifies it.
type AnchorNote struct {
	Key       string `json:"key"`
	VersionID string `json:"version_id"`
	Note      []byte `json:"note"`
}

// AnchorReader is a Store that can read the anchored checkpoints back, so
// the appliance and 'audit verify --anchors' can prove that the log still
// extends every checkpoint that went to the WORM bucket.
type AnchorReader interface {
	AnchorCheckpoints(ctx context.Context) ([]AnchorNote, error)
}

// maxAnchorNote bounds one checkpoint object: a note is about 200 bytes.
const maxAnchorNote = 16 << 10

var anchorCheckpointRE = regexp.MustCompile(`^checkpoint-[0-9]+\.txt$`)

// ReadAnchorCheckpoints returns every stored version of every anchor
// checkpoint object in s, sorted by key and version. Objects still in the
// spool are not in s yet and are not returned.
func ReadAnchorCheckpoints(ctx context.Context, s Store) ([]AnchorNote, error) {
	r, ok := s.(AnchorReader)
	if !ok {
		return nil, fmt.Errorf("%s: %w", s.Backend(), ErrCannotReadAnchors)
	}
	notes, err := r.AnchorCheckpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("read anchors from %s: %w", s.Backend(), err)
	}
	sort.Slice(notes, func(i, j int) bool {
		if notes[i].Key != notes[j].Key {
			return notes[i].Key < notes[j].Key
		}
		return notes[i].VersionID < notes[j].VersionID
	})
	return notes, nil
}

// AnchorCheckpoints implements AnchorReader: it walks
// <dir>/appliance/anchors/<day>/checkpoint-<size>.txt.v/<version>.
func (l *Local) AnchorCheckpoints(ctx context.Context) ([]AnchorNote, error) {
	root := filepath.Join(l.dir, "appliance", "anchors")
	days, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var out []AnchorNote
	for _, d := range days {
		if !d.IsDir() || !dayRE.MatchString(d.Name()) {
			continue
		}
		objs, err := os.ReadDir(filepath.Join(root, d.Name()))
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			name, ok := strings.CutSuffix(o.Name(), ".v")
			if !ok || !o.IsDir() || !anchorCheckpointRE.MatchString(name) {
				continue
			}
			vdir := filepath.Join(root, d.Name(), o.Name())
			versions, err := os.ReadDir(vdir)
			if err != nil {
				return nil, err
			}
			for _, v := range versions {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				b, err := readRegular(filepath.Join(vdir, v.Name()), maxAnchorNote)
				if err != nil {
					return nil, err
				}
				out = append(out, AnchorNote{Key: "appliance/anchors/" + d.Name() + "/" + name, VersionID: v.Name(), Note: b})
			}
		}
	}
	return out, nil
}

// readRegular reads a regular file of at most limit bytes.
func readRegular(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() > limit {
		return nil, fmt.Errorf("%s: not a regular file of at most %d bytes", path, limit)
	}
	return io.ReadAll(io.LimitReader(f, limit))
}

// AnchorCheckpoints implements AnchorReader: it lists every version under
// appliance/anchors/ and reads the checkpoint objects.
func (m *MinIO) AnchorCheckpoints(ctx context.Context) ([]AnchorNote, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine on an early return
	var out []AnchorNote
	for obj := range m.c.ListObjects(ctx, m.cfg.Bucket, minio.ListObjectsOptions{Prefix: "appliance/anchors/", Recursive: true, WithVersions: true}) {
		if obj.Err != nil {
			return nil, obj.Err
		}
		if obj.IsDeleteMarker {
			continue
		}
		k, err := ParseKey(obj.Key)
		if err != nil || k.Day == "" || !anchorCheckpointRE.MatchString(k.Name) {
			continue
		}
		if obj.Size > maxAnchorNote {
			return nil, fmt.Errorf("%s: %d bytes, more than a checkpoint note", obj.Key, obj.Size)
		}
		o, err := m.c.GetObject(ctx, m.cfg.Bucket, obj.Key, minio.GetObjectOptions{VersionID: obj.VersionID})
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(io.LimitReader(o, maxAnchorNote+1))
		o.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", obj.Key, err)
		}
		if len(b) > maxAnchorNote {
			return nil, fmt.Errorf("%s: more than a checkpoint note", obj.Key)
		}
		out = append(out, AnchorNote{Key: obj.Key, VersionID: obj.VersionID, Note: b})
	}
	return out, nil
}
