package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// keyFixture stores two users and one security key of the first, whose
// stored signature counter starts at 0.
func keyFixture(t *testing.T) (*Store, User, User, WebAuthnKey) {
	t.Helper()
	ctx := context.Background()
	s := openTest(t)
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	var u, other User
	k := WebAuthnKey{ID: "key1", CredentialID: []byte("cred1"), Name: "blue", Credential: []byte(`{"n":0}`), CreatedAt: now}
	err := s.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if u, err = s.CreateAdmin(ctx, tx, User{Name: "root", PasswordHash: "x"}); err != nil {
			return err
		}
		if other, err = s.CreateAdmin(ctx, tx, User{Name: "other", PasswordHash: "x"}); err != nil {
			return err
		}
		k.UserID = u.ID
		return s.AddWebAuthnKey(ctx, tx, k)
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, u, other, k
}

// storedKey reads key id of user id back.
func storedKey(t *testing.T, s *Store, userID, id string) WebAuthnKey {
	t.Helper()
	ks, err := s.WebAuthnKeys(context.Background(), s.Reader(), userID)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range ks {
		if k.ID == id {
			return k
		}
	}
	t.Fatalf("key %s of %s not found", id, userID)
	return WebAuthnKey{}
}

// TestUseWebAuthnKeyCounter: a use is written only if its signature
// counter advances the stored one (or both are 0, an authenticator
// without a counter); anything else is ErrStale and writes nothing, so the
// stored counter never goes down. The steps run in order on one key.
func TestUseWebAuthnKeyCounter(t *testing.T) {
	ctx := context.Background()
	s, u, other, k := keyFixture(t)
	t0 := time.Date(2026, 11, 29, 13, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		user       string
		id         string
		counter    uint32
		want       error
		wantStored uint32
	}{
		{"no counter: 0 over 0", u.ID, k.ID, 0, nil, 0},
		{"no counter again", u.ID, k.ID, 0, nil, 0},
		{"counter starts", u.ID, k.ID, 5, nil, 5},
		{"lower counter", u.ID, k.ID, 3, ErrStale, 5},
		{"same counter", u.ID, k.ID, 5, ErrStale, 5},
		{"0 after counters", u.ID, k.ID, 0, ErrStale, 5},
		{"next counter", u.ID, k.ID, 6, nil, 6},
		{"jump ahead", u.ID, k.ID, 1 << 31, nil, 1 << 31},
		{"top of the range", u.ID, k.ID, 1<<32 - 1, nil, 1<<32 - 1},
		{"wrapped to 1", u.ID, k.ID, 1, ErrStale, 1<<32 - 1},
		{"another user's key", other.ID, k.ID, 1<<32 - 1, ErrNotFound, 1<<32 - 1},
		{"unknown key", u.ID, "key2", 7, ErrNotFound, 1<<32 - 1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := storedKey(t, s, u.ID, k.ID)
			at := t0.Add(time.Duration(i) * time.Minute)
			record := []byte(fmt.Sprintf(`{"n":%d}`, tt.counter))
			err := s.InTx(ctx, func(tx *sql.Tx) error {
				return s.UseWebAuthnKey(ctx, tx, tt.user, tt.id, record, tt.counter, "192.0.2.7", at)
			})
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			after := storedKey(t, s, u.ID, k.ID)
			if after.SignCount != tt.wantStored {
				t.Fatalf("stored counter %d, want %d", after.SignCount, tt.wantStored)
			}
			if tt.want == nil {
				if string(after.Credential) != string(record) || !after.LastUsedAt.Equal(at) || after.LastUsedIP != "192.0.2.7" {
					t.Fatalf("use not recorded: %+v", after)
				}
				return
			}
			// Refused: the credential record and the last use stay as
			// they were, with the counter they belong to.
			if string(after.Credential) != string(before.Credential) || !after.LastUsedAt.Equal(before.LastUsedAt) {
				t.Fatalf("refused use wrote: before %+v, after %+v", before, after)
			}
		})
	}
	var stored uint32
	err := s.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		stored, err = s.FlagWebAuthnClone(ctx, tx, u.ID, k.ID)
		return err
	})
	if err != nil || stored != 1<<32-1 {
		t.Fatalf("flag: stored %d, %v", stored, err)
	}
	if !storedKey(t, s, u.ID, k.ID).CloneWarning {
		t.Fatal("key not flagged")
	}
	err = s.InTx(ctx, func(tx *sql.Tx) error { _, err := s.FlagWebAuthnClone(ctx, tx, other.ID, k.ID); return err })
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("flag another user's key: %v", err)
	}
}

// TestUseWebAuthnKeyConcurrent: uses of one key with counters 1..n, each
// in its own transaction on its own goroutine, committed in whatever order
// the scheduler and SQLite's write lock give. Whatever the order, the
// stored counter ends at n (the highest always advances whatever was
// stored), and the accepted counters, in commit order, only go up.
func TestUseWebAuthnKeyConcurrent(t *testing.T) {
	ctx := context.Background()
	s, u, _, k := keyFixture(t)
	const n = 24
	var (
		mu       sync.Mutex
		accepted []uint32 // in commit order: appended inside the transaction
		wg       sync.WaitGroup
		start    = make(chan struct{})
		errs     = make(chan error, n)
	)
	// Launched highest first, so a scheduler that runs them in launch
	// order commits them in the worst order.
	for c := uint32(n); c >= 1; c-- {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			err := s.InTx(ctx, func(tx *sql.Tx) error {
				if err := s.UseWebAuthnKey(ctx, tx, u.ID, k.ID, []byte(fmt.Sprintf(`{"n":%d}`, c)), c, "192.0.2.7", time.Unix(int64(c), 0)); err != nil {
					return err
				}
				// Still inside the write transaction: commits are serialised
				// by SQLite's lock, so this order is the commit order.
				mu.Lock()
				accepted = append(accepted, c)
				mu.Unlock()
				return nil
			})
			if err != nil && !errors.Is(err, ErrStale) {
				errs <- fmt.Errorf("counter %d: %w", c, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := storedKey(t, s, u.ID, k.ID)
	if got.SignCount != n || string(got.Credential) != fmt.Sprintf(`{"n":%d}`, n) {
		t.Fatalf("stored counter %d, record %s; want %d", got.SignCount, got.Credential, n)
	}
	for i := 1; i < len(accepted); i++ {
		if accepted[i] <= accepted[i-1] {
			t.Fatalf("accepted counters went down: %v", accepted)
		}
	}
	t.Logf("accepted in commit order: %v", accepted)
}
