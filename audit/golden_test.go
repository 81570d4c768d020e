package audit

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestFormatsGolden pins the documented output formats (checkpoint note,
// inclusion and consistency proof JSON) for a fixed key, clock and log; the
// Ed25519 signatures are deterministic. Run with -update after a deliberate
// format change, and update docs/audit.md with it.
func TestFormatsGolden(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	l := newTestLog(5)
	appendN(t, l, db, 5)
	cp, err := LatestCheckpoint(ctx, db, testPub())
	if err != nil {
		t.Fatal(err)
	}
	incl, err := ProveInclusion(ctx, db, 3)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := ProveConsistency(ctx, db, 2)
	if err != nil {
		t.Fatal(err)
	}
	indent := func(v any) string {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		return string(b) + "\n"
	}
	for _, g := range []struct{ name, got string }{
		{"checkpoint.golden", cp.Note},
		{"inclusion.golden", indent(incl)},
		{"consistency.golden", indent(cons)},
	} {
		t.Run(g.name, func(t *testing.T) {
			path := filepath.Join("testdata", g.name)
			if *update {
				if err := os.WriteFile(path, []byte(g.got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if g.got != string(want) {
				t.Fatalf("format changed:\n got %s\nwant %s", g.got, want)
			}
		})
	}
	// The golden proofs still verify: the files double as offline
	// verification vectors for other implementations.
	for _, name := range []string{"inclusion.golden", "consistency.golden"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		var head struct{ Type string }
		_ = json.Unmarshal(b, &head)
		if head.Type == ProofInclusion {
			var p InclusionProof
			if err := json.Unmarshal(b, &p); err != nil {
				t.Fatal(err)
			}
			_, err = VerifyInclusion(p, testPub())
		} else {
			var p ConsistencyProof
			if err := json.Unmarshal(b, &p); err != nil {
				t.Fatal(err)
			}
			_, err = VerifyConsistency(p, testPub())
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}
