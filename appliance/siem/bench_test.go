package siem

import (
	"context"
	"database/sql"
	"testing"

	"firewalliq/audit"
)

// BenchmarkAppend measures one audited action per transaction (fsync'd)
// with and without SIEM destinations, to show what Enqueue adds to the
// audit append path.
func BenchmarkAppend(b *testing.B) {
	for _, tc := range []struct {
		name  string
		dests int
	}{{"no destinations", 0}, {"2 destinations", 2}, {"8 destinations", 8}} {
		b.Run(tc.name, func(b *testing.B) {
			f := newFixture(b)
			for i := 0; i < tc.dests; i++ {
				f.create(b, Destination{Name: "d" + itoa(int64(i)), Kind: KindUDP, Address: "127.0.0.1:9", BudgetBytes: 1 << 40})
			}
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				err := f.st.InTx(ctx, func(tx *sql.Tx) error {
					_, err := f.ob.Append(ctx, tx, f.log, audit.Entry{Tenant: f.tA, ActorName: "alice", Action: audit.ActAuthLogin, Object: "u1"})
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
