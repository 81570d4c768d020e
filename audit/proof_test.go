package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

func TestInclusionAndConsistencyProofs(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	l := newTestLog(5)
	appendN(t, l, db, 37)
	if _, err := ProveInclusion(ctx, db, 37); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("proof beyond the latest checkpoint: %v", err)
	}
	for seq := int64(1); seq <= 35; seq++ {
		p, err := ProveInclusion(ctx, db, seq)
		if err != nil {
			t.Fatal(err)
		}
		// Round-trip through JSON, as the CLI prints it.
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var back InclusionProof
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if cp, err := VerifyInclusion(back, testPub()); err != nil || cp.Size != 35 {
			t.Fatalf("seq %d: %v", seq, err)
		}
	}
	for old := int64(1); old <= 35; old++ {
		p, err := ProveConsistency(ctx, db, old)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(p)
		var back ConsistencyProof
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if _, err := VerifyConsistency(back, testPub()); err != nil {
			t.Fatalf("from %d: %v", old, err)
		}
		if (old%5 == 0) != (back.OldCheckpoint != "") {
			t.Fatalf("from %d: old checkpoint %q", old, back.OldCheckpoint)
		}
	}
}

// TestProofMutations follows transparency-dev/merkle's testdata: every
// small change to a valid proof must be rejected.
func TestProofMutations(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	l := newTestLog(13)
	appendN(t, l, db, 26)
	incl, err := ProveInclusion(ctx, db, 11)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ReadEntry(ctx, db, 12)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := ProveConsistency(ctx, db, 13)
	if err != nil {
		t.Fatal(err)
	}
	cons7, err := ProveConsistency(ctx, db, 7)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(hs []tlog.Hash, i int) []tlog.Hash {
		out := append([]tlog.Hash(nil), hs...)
		out[i][3] ^= 0x10
		return out
	}
	inclTests := []struct {
		name string
		mut  func(p *InclusionProof)
	}{
		{"wrong leaf (other entry)", func(p *InclusionProof) { p.Entry = other }},
		{"edited entry field", func(p *InclusionProof) { p.Entry.ActorName = "mallory"; p.Entry.Hash = EntryHash(p.Entry) }},
		{"entry hash not its contents", func(p *InclusionProof) { p.Entry.Object = "scope:x" }},
		{"index plus one", func(p *InclusionProof) { p.Entry.Seq++ }},
		{"index minus one", func(p *InclusionProof) { p.Entry.Seq-- }},
		{"index zero", func(p *InclusionProof) { p.Entry.Seq = 0 }},
		{"index past size", func(p *InclusionProof) { p.Entry.Seq = 27 }},
		{"wrong size", func(p *InclusionProof) { p.TreeSize-- }},
		{"bit flip first hash", func(p *InclusionProof) { p.Proof = flip(p.Proof, 0) }},
		{"bit flip last hash", func(p *InclusionProof) { p.Proof = flip(p.Proof, len(p.Proof)-1) }},
		{"truncated proof", func(p *InclusionProof) { p.Proof = p.Proof[:len(p.Proof)-1] }},
		{"extended proof", func(p *InclusionProof) { p.Proof = append(p.Proof, p.Proof[0]) }},
		{"empty proof", func(p *InclusionProof) { p.Proof = nil }},
		{"wrong type", func(p *InclusionProof) { p.Type = ProofConsistency }},
		{"checkpoint body edited", func(p *InclusionProof) { p.Checkpoint = "x" + p.Checkpoint }},
		{"checkpoint signature bit flip", func(p *InclusionProof) {
			b := []byte(p.Checkpoint)
			b[len(b)-5] ^= 0x01
			p.Checkpoint = string(b)
		}},
		{"other key's checkpoint", func(p *InclusionProof) {
			p.Checkpoint = otherKeyNote(t, p.Checkpoint)
		}},
	}
	if _, err := VerifyInclusion(incl, testPub()); err != nil {
		t.Fatalf("unmutated inclusion proof: %v", err)
	}
	for _, tc := range inclTests {
		t.Run("inclusion/"+tc.name, func(t *testing.T) {
			p := incl
			p.Proof = append([]tlog.Hash(nil), incl.Proof...)
			tc.mut(&p)
			if _, err := VerifyInclusion(p, testPub()); err == nil {
				t.Fatal("mutated proof accepted")
			}
		})
	}
	consTests := []struct {
		name string
		base ConsistencyProof
		mut  func(p *ConsistencyProof)
	}{
		{"old size plus one", cons7, func(p *ConsistencyProof) { p.OldSize++ }},
		{"old size minus one", cons7, func(p *ConsistencyProof) { p.OldSize-- }},
		{"old size zero", cons7, func(p *ConsistencyProof) { p.OldSize = 0 }},
		{"old size past new", cons7, func(p *ConsistencyProof) { p.OldSize = 27 }},
		{"old root bit flip", cons7, func(p *ConsistencyProof) { p.OldRoot[0] ^= 1 }},
		{"bit flip in proof", cons7, func(p *ConsistencyProof) { p.Proof = flip(p.Proof, 1) }},
		{"truncated proof", cons7, func(p *ConsistencyProof) { p.Proof = p.Proof[:len(p.Proof)-1] }},
		{"extended proof", cons7, func(p *ConsistencyProof) { p.Proof = append(p.Proof, p.Proof[0]) }},
		{"old checkpoint of another size", cons, func(p *ConsistencyProof) { p.OldSize, p.OldRoot, p.Proof = cons7.OldSize, cons7.OldRoot, cons7.Proof }},
		{"old checkpoint signature flip", cons, func(p *ConsistencyProof) {
			b := []byte(p.OldCheckpoint)
			b[len(b)-5] ^= 0x01
			p.OldCheckpoint = string(b)
		}},
		{"wrong type", cons, func(p *ConsistencyProof) { p.Type = ProofInclusion }},
	}
	for _, base := range []ConsistencyProof{cons, cons7} {
		if _, err := VerifyConsistency(base, testPub()); err != nil {
			t.Fatalf("unmutated consistency proof from %d: %v", base.OldSize, err)
		}
	}
	for _, tc := range consTests {
		t.Run("consistency/"+tc.name, func(t *testing.T) {
			p := tc.base
			p.Proof = append([]tlog.Hash(nil), tc.base.Proof...)
			tc.mut(&p)
			if _, err := VerifyConsistency(p, testPub()); err == nil {
				t.Fatal("mutated proof accepted")
			}
		})
	}
}

// otherKeyNote re-signs a checkpoint's body with a different key.
func otherKeyNote(t *testing.T, note string) string {
	t.Helper()
	seed := make([]byte, 32)
	seed[0] = 9
	l := New(Options{Signer: ed25519.NewKeyFromSeed(seed)})
	cp, err := OpenCheckpoint([]byte(note), testPub())
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.signBody(CheckpointBody(cp.Origin, cp.Size, cp.Root))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
