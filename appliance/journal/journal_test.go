package journal_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"firewalliq/appliance/journal"
	"firewalliq/appliance/siem"
	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// TestRecord: an entry and its SIEM event commit together, or neither does.
func TestRecord(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "j.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out := siem.New(st.DB(), siem.Options{ApplianceID: "fiq-test"})
	jr, err := journal.New(st.DB(), audit.New(audit.Options{}), out)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.InTx(ctx, func(tx *sql.Tx) error {
		_, err := out.CreateDestination(ctx, tx, siem.Destination{Name: "soc", Kind: siem.KindUDP, Address: "127.0.0.1:514"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	counts := func() (entries, events int) {
		t.Helper()
		if err := st.DB().QueryRow(`SELECT (SELECT COUNT(*) FROM audit_entries), (SELECT COUNT(*) FROM siem_outbox)`).Scan(&entries, &events); err != nil {
			t.Fatal(err)
		}
		return entries, events
	}
	boom := errors.New("the change failed")
	tests := []struct {
		name                 string
		entry                audit.Entry
		fail                 error
		wantEntries, wantEvt int
		wantErr              error
	}{
		{name: "committed", entry: audit.Entry{ActorName: "alice", Action: audit.ActScopeRegister, Object: "scope:1"}, wantEntries: 1, wantEvt: 1},
		{name: "the change fails after the entry", entry: audit.Entry{ActorName: "alice", Action: audit.ActScopeRegister, Object: "scope:2"}, fail: boom, wantEntries: 1, wantEvt: 1, wantErr: boom},
		{name: "unknown action fails the transaction", entry: audit.Entry{ActorName: "alice", Action: "scope.made-up"}, wantEntries: 1, wantEvt: 1, wantErr: audit.ErrUnknownAction},
		{name: "second commit", entry: audit.Entry{ActorName: "bob", Action: audit.ActScopeDelete, Object: "scope:1"}, wantEntries: 2, wantEvt: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := st.InTx(ctx, func(tx *sql.Tx) error {
				if _, err := jr.Record(ctx, tx, tt.entry); err != nil {
					return err
				}
				return tt.fail
			})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("InTx: %v, want %v", err, tt.wantErr)
			}
			if e, ev := counts(); e != tt.wantEntries || ev != tt.wantEvt {
				t.Fatalf("%d entries, %d SIEM events; want %d, %d", e, ev, tt.wantEntries, tt.wantEvt)
			}
		})
	}
	if err := jr.RecordAlone(ctx, audit.Entry{ActorName: "carol", Action: audit.ActAccessDenied}); err != nil {
		t.Fatal(err)
	}
	if e, ev := counts(); e != 3 || ev != 3 {
		t.Fatalf("RecordAlone: %d entries, %d events", e, ev)
	}
	if _, err := journal.New(nil, nil, nil); err == nil {
		t.Fatal("New without a log succeeded")
	}
}
