package audit

import (
	"context"
	"fmt"
)

// checkTables finds signed checkpoints and verified points that vanished.
// Both tables are append-only and their ids come from SQLite's rowid
// (max + 1, rows never deleted), so a healthy table has ids 1..n, and tree
// sizes never go down, except at an acknowledgement, whose checkpoint may
// start a new segment below a truncated old one (its size is the ack
// entry's seq). Someone who can write the file can still delete the newest
// rows without leaving a gap; the state file's checkpoint, which the
// stored checkpoints must reach, is what catches that.
func (v *verifier) checkTables(ctx context.Context, db Queryer, opts VerifyOptions, start int64) error {
	var head int64
	if err := db.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM audit_entries`).Scan(&head); err != nil {
		return fmt.Errorf("read entries: %w", err)
	}
	acks := map[int64]bool{}
	var lastAck int64
	rows, err := db.QueryContext(ctx, `SELECT seq FROM audit_alarms WHERE kind = 'ack'`)
	if err != nil {
		return fmt.Errorf("read alarms: %w", err)
	}
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return fmt.Errorf("read alarms: %w", err)
		}
		acks[s] = true
		lastAck = max(lastAck, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read alarms: %w", err)
	}
	n, top, err := v.checkSeries(ctx, db, "audit_checkpoints", "stored checkpoint", acks, lastAck)
	if err != nil {
		return err
	}
	if _, _, err := v.checkSeries(ctx, db, "audit_verified", "verified point", acks, lastAck); err != nil {
		return err
	}
	if head > 0 && n == 0 {
		v.report(Problem{Seq: 1, SeqEnd: head, Kind: KindVanished,
			Reason: fmt.Sprintf("the log has %d entries and no signed checkpoint: checkpoints were deleted", head)})
	}
	switch {
	case opts.State != nil:
		cp, err := openOrigin(opts.State, opts.Public, opts.Origin)
		if err == nil && top < cp.Size {
			v.report(Problem{Seq: top + 1, SeqEnd: cp.Size, Kind: KindVanished,
				Reason: fmt.Sprintf("the newest stored checkpoint signs %d entries but the state file's signs %d: checkpoints were deleted", top, cp.Size)})
		}
	case opts.RequireState && head > 0:
		v.report(Problem{Seq: 1, SeqEnd: head, Kind: KindVanished,
			Reason: "the state file (keys/" + StateFileName + ") with the last signed checkpoint is missing: it was deleted"})
	}
	return nil
}

// checkSeries checks one table of (id, size) rows: ids 1..n without gaps,
// sizes never below an earlier one except at an acknowledgement. Rows
// before the newest acknowledgement's (size lastAck) belong to a segment
// an admin has closed: whatever was wrong there was acknowledged, and the
// new segment's checkpoint, not those rows, is what signing now starts
// from. It returns the row count and the current segment's largest size.
func (v *verifier) checkSeries(ctx context.Context, db Queryer, table, what string, acks map[int64]bool, lastAck int64) (n, top int64, err error) {
	var startID int64
	if lastAck > 0 {
		if err := db.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM `+table+` WHERE size = ?`, lastAck).Scan(&startID); err != nil {
			return 0, 0, fmt.Errorf("read %s: %w", table, err)
		}
	}
	rows, err := db.QueryContext(ctx, `SELECT id, size FROM `+table+` ORDER BY id`)
	if err != nil {
		return 0, 0, fmt.Errorf("read %s: %w", table, err)
	}
	defer rows.Close()
	var prevID int64
	for rows.Next() {
		var id, size int64
		if err := rows.Scan(&id, &size); err != nil {
			return 0, 0, fmt.Errorf("read %s: %w", table, err)
		}
		n++
		switch {
		case id <= startID:
			prevID, top = id, size
			continue
		case id != prevID+1:
			v.report(Problem{Seq: top + 1, SeqEnd: max(size, top+1), Kind: KindVanished,
				Reason: fmt.Sprintf("%ss %d..%d are missing (ids jump from %d to %d): they were deleted", what, prevID+1, id-1, prevID, id)})
		case size < top && acks[size]:
			top = size // a new segment after an acknowledged break
		case size < top:
			v.report(Problem{Seq: size + 1, SeqEnd: top, Kind: KindVanished,
				Reason: fmt.Sprintf("%s %d has size %d, below the %d of an earlier one: newer ones were deleted and the log rolled back", what, id, size, top)})
		}
		prevID, top = id, max(top, size)
	}
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("read %s: %w", table, err)
	}
	return n, top, nil
}
