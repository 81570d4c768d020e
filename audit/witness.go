package audit

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// VerifyAll is the background full verification: every entry from seq 1,
// every stored checkpoint, the state file's checkpoint and the vanished-row
// checks, as 'audit verify' does. A break that an admin already
// acknowledged (its seq is the bad_seq of an acknowledged alarm) does not
// count again: verification goes on from the acknowledgement's checkpoint
// (the start of the next segment), so a new edit anywhere else still
// shows. It returns the first unacknowledged problem's report; the caller
// raises the alarm (RaiseAlarm) when it is not intact.
func (l *Log) VerifyAll(ctx context.Context, db *sql.DB) (Report, error) {
	if l.signer == nil {
		return Report{}, ErrNoSigner
	}
	opts := VerifyOptions{Public: l.signer.key.Public().(ed25519.PublicKey), Origin: l.origin, RequireState: l.state != ""}
	if l.state != "" {
		note, ok, err := ReadStateNote(l.state)
		if err != nil && ok {
			note = []byte("unreadable state file") // reported as vanished
		} else if err != nil {
			return Report{}, err
		}
		if ok {
			opts.State = note
		}
	}
	// Acknowledged breaks, each with the seq where its new segment starts.
	acked := map[int64][]int64{}
	rows, err := db.QueryContext(ctx, `SELECT seq, bad_seq FROM audit_alarms WHERE kind = 'ack' ORDER BY seq`)
	if err != nil {
		return Report{}, fmt.Errorf("read alarms: %w", err)
	}
	var nAcks int
	for rows.Next() {
		var seq, bad int64
		if err := rows.Scan(&seq, &bad); err != nil {
			rows.Close()
			return Report{}, fmt.Errorf("read alarms: %w", err)
		}
		acked[bad] = append(acked[bad], seq)
		nAcks++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Report{}, fmt.Errorf("read alarms: %w", err)
	}
	var start int64
	// Each turn either ends or moves start past an acknowledgement, so
	// there are at most one more turns than acknowledgements.
	for range nAcks + 1 {
		rep, err := verifyFrom(ctx, db, opts, start)
		if err != nil {
			return rep, err
		}
		if rep.Intact {
			return rep, nil
		}
		next := int64(-1)
		for _, s := range acked[rep.Problem.Seq] {
			if s > start && s >= rep.Problem.Seq {
				next = s
				break
			}
		}
		if next < 0 {
			return rep, nil
		}
		start = next
	}
	return Report{}, fmt.Errorf("verify all: more segments than acknowledgements")
}

// CheckWitnesses proves that the log extends each signed checkpoint note
// kept outside the database (the daily anchors in the WORM bucket, the
// SIEM's copies): it verifies each note's signature and origin, then a
// consistency proof from its tree to the current head's tree, both read
// from the stored Merkle hashes. The proof is checked against the signed
// root, so stored hashes rewritten to match a forged history fail it. It
// returns how many notes it checked and the first problem (nil when all
// are consistent); only an I/O error is an error.
func CheckWitnesses(ctx context.Context, q Queryer, pub ed25519.PublicKey, origin string, notes [][]byte) (int, *Problem, error) {
	head, _, err := readHead(ctx, q)
	if err != nil {
		return 0, nil, err
	}
	r := dbHashes{ctx, q}
	var headRoot tlog.Hash
	if head > 0 {
		if headRoot, err = tlog.TreeHash(head, r); err != nil {
			return 0, &Problem{Seq: head, Kind: KindTree, Reason: fmt.Sprintf("the stored tree at the head (%d) cannot be hashed: %v", head, err)}, nil
		}
	}
	for i, note := range notes {
		cp, err := openOrigin(note, pub, origin)
		if err != nil {
			return i, &Problem{Seq: 1, Kind: KindCheckpoint, Reason: fmt.Sprintf("witness %d: %v", i+1, err)}, nil
		}
		if cp.Size > head {
			return i, &Problem{Seq: head + 1, SeqEnd: cp.Size, Kind: KindRollback,
				Reason: fmt.Sprintf("the log has %d entries but a witnessed checkpoint signed %d: the database was rolled back or truncated", head, cp.Size)}, nil
		}
		if cp.Size == 0 {
			continue
		}
		p, err := tlog.ProveTree(head, cp.Size, r)
		if err == nil {
			err = tlog.CheckTree(p, head, headRoot, cp.Size, cp.Root)
		}
		if err != nil {
			return i, &Problem{Seq: 1, SeqEnd: cp.Size, Kind: KindRollback,
				Reason: fmt.Sprintf("the log is not consistent with the witnessed checkpoint of size %d: entries up to %d were rewritten (%v)", cp.Size, cp.Size, err)}, nil
		}
	}
	return len(notes), nil, nil
}
