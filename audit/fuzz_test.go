package audit

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzParseCanonical: the decoder never panics, and whatever it accepts
// re-encodes to exactly the same bytes (one encoding per entry).
func FuzzParseCanonical(f *testing.F) {
	e := Entry{Seq: 1, Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Action: ActAuthLogin, Details: []byte(`{}`), PrevHash: make([]byte, HashSize)}
	f.Add(Canonical(e)) // a valid minimal entry
	e.Tenant, e.ActorName, e.Details = "t-1", "ålice", []byte(`{"k":[1,2,{"x":null}]}`)
	f.Add(Canonical(e))                   // non-ASCII and nested details
	f.Add([]byte(canonicalMagic))         // header only
	f.Add(Canonical(e)[:40])              // truncated inside a field
	f.Add(append(Canonical(e), 0))        // trailing byte
	f.Add([]byte("fiq.audit.entry.v2\n")) // wrong version
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ParseCanonical(b)
		if err != nil {
			return
		}
		if re := Canonical(got); string(re) != string(b) {
			t.Fatalf("accepted input does not re-encode:\n in %x\nout %x", b, re)
		}
		if string(EntryHash(got)) != string(got.Hash) {
			t.Fatal("hash mismatch")
		}
	})
}

// FuzzVerifyInclusion: the proof verifier never panics on arbitrary JSON,
// and never accepts a proof for an entry other than the one the log holds
// at that seq.
func FuzzVerifyInclusion(f *testing.F) {
	ctx := context.Background()
	db, _ := newDB(f)
	l := newTestLog(6)
	stored := map[int64]string{}
	for _, e := range appendN(f, l, db, 12) {
		stored[e.Seq] = string(Canonical(e))
	}
	for _, seq := range []int64{1, 6, 12} {
		p, err := ProveInclusion(ctx, db, seq)
		if err != nil {
			f.Fatal(err)
		}
		b, _ := json.Marshal(p)
		f.Add(b) // valid proofs: first, middle, last leaf
	}
	f.Add([]byte(`{}`))                                      // empty object
	f.Add([]byte(`{"type":"inclusion","proof":null}`))       // no checkpoint
	f.Add([]byte(`{"type":"inclusion","tree_size":-1}`))     // negative size
	f.Add([]byte(`{"type":"inclusion","entry":{"seq":-5}}`)) // negative seq
	f.Fuzz(func(t *testing.T, b []byte) {
		var p InclusionProof
		if json.Unmarshal(b, &p) != nil {
			return
		}
		if _, err := VerifyInclusion(p, testPub()); err != nil {
			return
		}
		// Details may be re-indented (VerifyInclusion normalizes them, as
		// Append did); every other byte must be what the log holds.
		e := p.Entry
		if d, err := normalizeDetails(e.Details); err == nil {
			e.Details = d
		}
		if want, ok := stored[e.Seq]; !ok || string(Canonical(e)) != want {
			t.Fatalf("accepted a proof for an entry the log does not hold: %+v", p.Entry)
		}
	})
}

// FuzzVerifyConsistency: never panics; an accepted proof's old root is the
// real root of the log at that size.
func FuzzVerifyConsistency(f *testing.F) {
	ctx := context.Background()
	db, _ := newDB(f)
	l := newTestLog(10)
	appendN(f, l, db, 10)
	roots := map[int64]string{}
	for n := int64(1); n <= 10; n++ {
		p, err := ProveConsistency(ctx, db, n)
		if err != nil {
			f.Fatal(err)
		}
		roots[n] = p.OldRoot.String()
		b, _ := json.Marshal(p)
		f.Add(b) // valid proofs from every size
	}
	f.Add([]byte(`{"type":"consistency","old_size":0}`)) // zero old size
	f.Fuzz(func(t *testing.T, b []byte) {
		var p ConsistencyProof
		if json.Unmarshal(b, &p) != nil {
			return
		}
		if _, err := VerifyConsistency(p, testPub()); err != nil {
			return
		}
		if roots[p.OldSize] != p.OldRoot.String() {
			t.Fatalf("accepted a wrong old root for size %d", p.OldSize)
		}
	})
}

// FuzzOpenCheckpoint: never panics; whatever verifies re-formats to the
// signed body.
func FuzzOpenCheckpoint(f *testing.F) {
	ctx := context.Background()
	db, _ := newDB(f)
	l := newTestLog(3)
	appendN(f, l, db, 3)
	cp, err := LatestCheckpoint(ctx, db, testPub())
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(cp.Note))                 // valid
	f.Add([]byte("firewalliq.audit\n3\n")) // unsigned, short
	f.Add([]byte(""))                      // empty
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := OpenCheckpoint(b, testPub())
		if err != nil {
			return
		}
		if noteBody(string(b)) != CheckpointBody(got.Origin, got.Size, got.Root) {
			t.Fatalf("verified note body differs from its parse: %q", b)
		}
	})
}

// FuzzCheckWitnesses: the witness (anchor) checker never panics on an
// arbitrary note, and accepts one only when it is a genuine checkpoint of
// this log, signed by the key, whose tree the log extends.
func FuzzCheckWitnesses(f *testing.F) {
	ctx := context.Background()
	db, _ := newDB(f)
	l := newTestLog(4)
	appendN(f, l, db, 10)
	genuine := map[string]bool{}
	rows, err := db.Query(`SELECT note FROM audit_checkpoints`)
	if err != nil {
		f.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			f.Fatal(err)
		}
		genuine[n] = true
		f.Add([]byte(n)) // genuine checkpoints (sizes 4 and 8)
	}
	rows.Close()
	f.Add([]byte("firewalliq.audit\n12\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— firewalliq.audit AAAA\n")) // beyond the head, bad signature
	f.Add([]byte(""))                                                                                                // empty
	f.Add([]byte("firewalliq.audit\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"))                             // unsigned empty tree
	f.Fuzz(func(t *testing.T, note []byte) {
		n, p, err := CheckWitnesses(ctx, db, testPub(), "", [][]byte{note})
		if err != nil {
			t.Fatal(err)
		}
		if p == nil && (n != 1 || !genuine[string(note)]) {
			t.Fatalf("accepted a note that is not a genuine checkpoint: %q", note)
		}
	})
}

// FuzzReadState: the state file reader never panics and accepts only a
// note signed by the key (written here as the file's whole content).
func FuzzReadState(f *testing.F) {
	ctx := context.Background()
	db, _ := newDB(f)
	l := newTestLog(4)
	appendN(f, l, db, 4)
	cp, err := LatestCheckpoint(ctx, db, testPub())
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(cp.Note))             // a genuine note
	f.Add([]byte(cp.Note[:20]))        // truncated
	f.Add([]byte(cp.Note + "\nextra")) // trailing text
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), StateFileName)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		got, ok, err := ReadState(path, testPub(), "")
		if !ok {
			t.Fatal("an existing file read as missing")
		}
		if err == nil && got.Note != cp.Note {
			t.Fatalf("accepted a note that is not the signed one: %q", b)
		}
	})
}
