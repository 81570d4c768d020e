package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// memLedger is an RFC 6962 tree over fake entries, built with tlog, so the
// proofs the vault writes can be checked with an independent verifier.
type memLedger struct {
	entries [][]byte
	hashes  []tlog.Hash // stored hashes, tlog's layout
}

func (m *memLedger) append(t *testing.T, n int) {
	for i := 0; i < n; i++ {
		e := []byte(fmt.Sprintf(`{"seq":%d,"action":"scan.start"}`, len(m.entries)+1))
		hs, err := tlog.StoredHashes(int64(len(m.entries)), e, tlog.HashReaderFunc(m.read))
		if err != nil {
			t.Fatal(err)
		}
		m.entries = append(m.entries, e)
		m.hashes = append(m.hashes, hs...)
	}
}

func (m *memLedger) read(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = m.hashes[x]
	}
	return out, nil
}

func (m *memLedger) root(t *testing.T, n int64) tlog.Hash {
	h, err := tlog.TreeHash(n, tlog.HashReaderFunc(m.read))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (m *memLedger) LatestCheckpoint(ctx context.Context) (int64, []byte, error) {
	n := int64(len(m.entries))
	h, _ := tlog.TreeHash(n, tlog.HashReaderFunc(m.read))
	return n, []byte(fmt.Sprintf("test-origin\n%d\n%s\n\n— test sig\n", n, h)), nil
}

func (m *memLedger) Entries(ctx context.Context, from, to int64) ([]byte, error) {
	var b bytes.Buffer
	for _, e := range m.entries[from:to] {
		b.Write(e)
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// consistencyDoc is memLedger's proof format.
type consistencyDoc struct {
	OldSize int64       `json:"old_size"`
	NewSize int64       `json:"new_size"`
	Proof   []tlog.Hash `json:"proof"`
}

func (m *memLedger) ConsistencyProof(ctx context.Context, oldSize, newSize int64) ([]byte, error) {
	p, err := tlog.ProveTree(newSize, oldSize, tlog.HashReaderFunc(m.read))
	if err != nil {
		return nil, err
	}
	return json.Marshal(consistencyDoc{oldSize, newSize, p})
}

func TestAnchor(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	l, _ := NewLocal(root, nil)
	rec := &memRecorder{}
	v := newTestVault(t, l, rec, t.TempDir())
	led := &memLedger{}
	led.append(t, 5)
	day1 := time.Date(2026, 11, 26, 23, 59, 0, 0, time.UTC)
	a1, err := v.Anchor(ctx, led, day1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a1.Day != "2026-11-26" || a1.FromSize != 0 || a1.ToSize != 5 || len(a1.Keys) != 2 {
		t.Fatalf("first anchor %+v", a1)
	}
	if _, err := v.Anchor(ctx, led, day1, 5); !errors.Is(err, ErrNothingToAnchor) {
		t.Fatalf("anchor without growth: %v", err)
	}
	led.append(t, 8)
	a2, err := v.Anchor(ctx, led, day1.Add(24*time.Hour), a1.ToSize)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(rec.byKey()); got != 5 {
		t.Fatalf("%d anchor objects recorded, want 5 (no proof for the first anchor)", got)
	}
	// Read the stored proof back and check it with tlog, independently.
	var doc consistencyDoc
	b := readLocal(t, root, a2.Keys[1])
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OldSize != 5 || doc.NewSize != 13 {
		t.Fatalf("consistency doc %+v", doc)
	}
	if err := tlog.CheckTree(doc.Proof, 13, led.root(t, 13), 5, led.root(t, 5)); err != nil {
		t.Fatalf("stored consistency proof does not verify: %v", err)
	}
	if lines := bytes.Count(readLocal(t, root, a2.Keys[0]), []byte("\n")); lines != 8 {
		t.Fatalf("entries object has %d lines, want 8", lines)
	}
	if _, err := v.Anchor(ctx, &memLedger{}, day1, 13); err == nil {
		t.Fatal("anchoring a shrunken log succeeded")
	}
}

func readLocal(t *testing.T, root, key string) []byte {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(root, filepath.FromSlash(key)+".v", "*"))
	if len(m) != 1 {
		t.Fatalf("%s: %d versions", key, len(m))
	}
	b, err := os.ReadFile(m[0])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReadAnchorCheckpoints reads the anchored checkpoint notes back from
// the local backend and from the real MinIO (compliance-locked bucket),
// after two anchors on two days: exactly the two notes, nothing else.
func TestReadAnchorCheckpoints(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		store func(t *testing.T) Store
	}{
		{"local", func(t *testing.T) Store { l, _ := NewLocal(t.TempDir(), nil); return l }},
		{"minio", func(t *testing.T) Store { return testMinIO(t, makeBucket(t, lockCompliance), nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.store(t)
			v := newTestVault(t, st, &memRecorder{}, t.TempDir())
			if err := v.Check(ctx); err != nil {
				t.Fatal(err)
			}
			if notes, err := ReadAnchorCheckpoints(ctx, st); err != nil || len(notes) != 0 {
				t.Fatalf("before any anchor: %v %v", notes, err)
			}
			led := &memLedger{}
			led.append(t, 3)
			day := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
			a1, err := v.Anchor(ctx, led, day, 0)
			if err != nil {
				t.Fatal(err)
			}
			led.append(t, 4)
			a2, err := v.Anchor(ctx, led, day.Add(24*time.Hour), a1.ToSize)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			notes, err := ReadAnchorCheckpoints(ctx, st)
			if err != nil {
				t.Fatal(err)
			}
			if len(notes) != 2 || !bytes.Equal(notes[0].Note, a1.Checkpoint) || !bytes.Equal(notes[1].Note, a2.Checkpoint) ||
				notes[0].Key != "appliance/anchors/2026-11-26/checkpoint-3.txt" || notes[1].VersionID == "" {
				t.Fatalf("notes read back: %+v", notes)
			}
		})
	}
}
