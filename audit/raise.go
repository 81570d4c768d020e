package audit

import (
	"context"
	"database/sql"
	"fmt"
)

// RaiseAlarmTx raises the tamper alarm for a problem found outside the
// log's own verification (for example spooled evidence whose bytes differ
// from the hash this log recorded). The caller has appended tamper, an
// audit.tamper entry, in tx through its own write path (so it reaches the
// SIEM); RaiseAlarmTx records the alarm for it in the same transaction,
// naming badSeq, the entry whose record was contradicted. If an alarm is
// already raised it stays the current one and raised is false: the entry
// still records the new finding. While raised, CheckNoAlarm refuses scans
// and exports until an admin acknowledges it.
func RaiseAlarmTx(ctx context.Context, tx *sql.Tx, tamper Entry, badSeq int64, reason string) (raised bool, err error) {
	if tamper.Action != ActAuditTamper || tamper.Seq == 0 {
		return false, fmt.Errorf("raise audit alarm: entry %d is not an appended %s entry", tamper.Seq, ActAuditTamper)
	}
	if _, already, err := CurrentAlarm(ctx, tx); err != nil {
		return false, err
	} else if already {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_alarms (seq, kind, bad_seq, reason) VALUES (?, 'raise', ?, ?)`, tamper.Seq, badSeq, reason); err != nil {
		return false, fmt.Errorf("raise audit alarm: %w", err)
	}
	return true, nil
}
