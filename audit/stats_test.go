package audit

import (
	"context"
	"database/sql"
	"testing"
)

func TestReadStats(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	l := newTestLog(0)
	tests := []struct {
		name       string
		add        int
		checkpoint bool
		size, cp   int64
	}{
		{"empty", 0, false, 0, 0},
		{"entries, no checkpoint", 3, false, 3, 0},
		{"checkpointed", 0, true, 3, 3},
		{"grown past the checkpoint", 2, false, 5, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			appendN(t, l, db, tt.add)
			if tt.checkpoint {
				if err := inTx(ctx, db, func(tx *sql.Tx) error { _, _, err := l.Checkpoint(ctx, tx); return err }); err != nil {
					t.Fatal(err)
				}
			}
			st, err := ReadStats(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			if st.Size != tt.size || st.CheckpointSize != tt.cp || (tt.cp > 0) == st.CheckpointTime.IsZero() {
				t.Fatalf("%+v, want size %d checkpoint %d", st, tt.size, tt.cp)
			}
		})
	}
}
