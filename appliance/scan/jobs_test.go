package scan

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"firewalliq/appliance/store"
)

func TestJobStates(t *testing.T) {
	st, tenant := fixture(t, t.TempDir())
	ctx := context.Background()
	set := func(no int64, to string) error {
		return st.InTx(ctx, func(tx *sql.Tx) error { return SetJobState(ctx, tx, no, to, "why", t0) })
	}
	a, b, c := addJob(t, st, tenant, "job-a"), addJob(t, st, tenant, "job-b"), addJob(t, st, tenant, "job-c")
	// addJob makes running jobs; job-c goes back to issued for the test.
	st.DB().Exec(`UPDATE scan_jobs SET state = 'issued' WHERE no = ?`, c)
	tests := []struct {
		name string
		no   int64
		to   string
		want error
	}{
		{"running completes", a, JobCompleted, nil},
		{"completed never moves", a, JobRunning, ErrTransition},
		{"completed cannot fail", a, JobFailed, ErrTransition},
		{"issued starts", c, JobRunning, nil},
		{"running cannot be refused", c, JobRefused, ErrTransition},
		{"unknown state", b, "exploded", ErrTransition},
		{"unknown job", 999, JobFailed, store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := set(tt.no, tt.to); !errors.Is(err, tt.want) {
				t.Fatalf("SetJobState = %v, want %v", err, tt.want)
			}
		})
	}
	var started, finished, reason string
	st.DB().QueryRow(`SELECT started_at, finished_at, reason FROM scan_jobs WHERE no = ?`, a).Scan(&started, &finished, &reason)
	if finished == "" || reason != "why" {
		t.Fatalf("job a: started %q finished %q reason %q", started, finished, reason)
	}
	// Recovery sees b and c (running), not a (completed).
	load(t, st, b, synth(10))
	un, err := UnfinishedJobs(ctx, st.DB())
	if err != nil {
		t.Fatal(err)
	}
	if len(un) != 2 || un[0].ID != "job-b" || un[0].NextBatch != 1 || un[1].ID != "job-c" || un[1].State != JobRunning {
		t.Fatalf("unfinished %+v", un)
	}
}
