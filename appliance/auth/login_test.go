package auth

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"firewalliq/audit"
)

// Regression tests for issue 13, "Anyone can lock anyone out, and user
// names can be enumerated".

var (
	addrA = Client{IP: "192.0.2.21", UserAgent: "attacker/1.0"}
	addrB = Client{IP: "198.51.100.22", UserAgent: "real-user/1.0"}
)

// TestLockoutFromOtherAddress: five wrong passwords from address A do not
// stop a correct login from address B; A itself is throttled (even with
// the right password), and the block is audited as auth.lockout for the
// (name, address) pair.
func TestLockoutFromOtherAddress(t *testing.T) {
	f := newFixture(t)
	u := f.user(f.a, "lara", "operator")
	mark := f.head()
	for i := 0; i < 5; i++ {
		if _, err := f.svc.Login(f.ctx, u.Name, "wrong password!", addrA, ""); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("attempt %d from A: %v", i, err)
		}
	}
	if _, err := f.svc.Login(f.ctx, u.Name, u.password, addrA, ""); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("right password from A while throttled: %v, want ErrRateLimited", err)
	}
	l, err := f.svc.Login(f.ctx, u.Name, u.password, addrB, "")
	if err != nil || l.Stage != "password" {
		t.Fatalf("right password from B: %+v %v", l, err)
	}
	locks := f.expectAudit(audit.ActAuthLockout, mark, 1)
	if d := details(t, locks[0]); d["scope"] != "name+address" || d["ip"] != addrA.IP || d["seconds"] != float64(60) {
		t.Fatalf("lockout details %v", d)
	}
	failed := f.expectAudit(audit.ActAuthLoginFailed, mark, 6)
	for _, e := range failed {
		if e.ActorIP != addrA.IP || e.UserAgent != addrA.UserAgent || e.Object != u.Name {
			t.Fatalf("failed-login entry lacks client: %+v", e)
		}
	}
	// Nothing about the account changed: its state has no lock.
	st, err := f.st.AuthState(f.ctx, f.st.Reader(), u.ID)
	if err != nil || !st.LockedUntil.IsZero() || st.FailedLogins != 0 {
		t.Fatalf("account state after throttled pair: %+v %v", st, err)
	}
	// Sweep forgets the pair once quiet for a day (and no longer blocked).
	rows := func() int {
		var n int
		if err := f.st.DB().QueryRow(`SELECT count(*) FROM auth_login_throttle`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := f.svc.Sweep(f.ctx); err != nil || rows() != 1 {
		t.Fatalf("sweep while blocked: %d rows, %v", rows(), err)
	}
	f.clock.advance(24*time.Hour + time.Second)
	if err := f.svc.Sweep(f.ctx); err != nil || rows() != 0 {
		t.Fatalf("sweep after a quiet day: %d rows, %v", rows(), err)
	}
}

// TestThrottleGrowingDelay: with the clock injected, the pair's block
// starts at ThrottleBase, doubles with every further failure, stops at
// ThrottleMax, and a right password from the pair clears it.
func TestThrottleGrowingDelay(t *testing.T) {
	f := newFixture(t, func(p *Params) {
		p.ThrottleThreshold = 3
		p.ThrottleBase = 10 * time.Second
		p.ThrottleMax = 40 * time.Second
	})
	u := f.user(f.a, "greg", "operator")
	wrong := func() error { _, err := f.svc.Login(f.ctx, u.Name, "wrong password!", addrA, ""); return err }
	right := func() error { _, err := f.svc.Login(f.ctx, u.Name, u.password, addrA, ""); return err }
	for i := 0; i < 3; i++ {
		if err := wrong(); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	for _, want := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 40 * time.Second} {
		f.clock.advance(want - time.Second)
		if err := right(); !errors.Is(err, ErrRateLimited) {
			t.Fatalf("%s into a %s block: %v, want ErrRateLimited", want-time.Second, want, err)
		}
		f.clock.advance(time.Second)
		// The block is over; the next wrong password starts a longer one.
		if err := wrong(); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("after a %s block: %v", want, err)
		}
	}
	f.clock.advance(40 * time.Second)
	if err := right(); err != nil {
		t.Fatalf("after the last block: %v", err)
	}
	// The right password cleared the pair: two wrong ones are free again.
	for i := 0; i < 2; i++ {
		if err := wrong(); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("after success, failure %d: %v", i, err)
		}
	}
	if err := right(); err != nil {
		t.Fatalf("below the threshold again: %v", err)
	}
}

// TestUnknownAndKnownAlike: a wrong password for an existing user, a
// disabled user, and an unknown name give the same error text and run
// argon2 exactly once each (counted through the verifier hook); after the
// threshold both are throttled with the same answer.
func TestUnknownAndKnownAlike(t *testing.T) {
	f := newFixture(t)
	u := f.user(f.a, "kara", "operator")
	adm := f.user(f.a, "adele", "admin")
	dis := f.user(f.a, "dirk", "operator")
	ap, _ := f.login(adm)
	if err := f.svc.DisableUser(f.ctx, ap, "", dis.ID, f.code(adm)); err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int64
	f.svc.verify = func(encoded, password string) error {
		runs.Add(1)
		return VerifyPassword(encoded, password)
	}
	attempt := func(name, password string, c Client) (string, int64) {
		t.Helper()
		before := runs.Load()
		_, err := f.svc.Login(f.ctx, name, password, c, "")
		if err == nil {
			t.Fatalf("%s logged in", name)
		}
		return err.Error(), runs.Load() - before
	}
	tests := []struct{ name, user, password string }{
		{"known user, wrong password", u.Name, "wrong password!"},
		{"disabled user, right password", dis.Name, dis.password},
		{"unknown user", "nobody-here", "wrong password!"},
	}
	var first string
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Client{IP: fmt.Sprintf("203.0.113.%d", i+1), UserAgent: "probe"}
			for k := 0; k < 5; k++ {
				msg, n := attempt(tt.user, tt.password, c)
				if n != 1 {
					t.Fatalf("attempt %d ran argon2 %d times, want 1", k, n)
				}
				if first == "" {
					first = msg
				}
				if msg != first || msg != ErrUnauthenticated.Error() {
					t.Fatalf("attempt %d answered %q, want %q", k, msg, first)
				}
			}
			// Throttled: the same answer for every kind of name, and no
			// argon2 at all.
			msg, n := attempt(tt.user, tt.password, c)
			if n != 0 || msg != fmt.Sprintf("%s: retry after %s", ErrRateLimited, f.clock.now().Add(time.Minute).Format(time.RFC3339)) {
				t.Fatalf("throttled attempt: %q, %d argon2 runs", msg, n)
			}
		})
	}
}

// TestManySourcesAlert: failures for one account from many addresses raise
// one anomaly.alert (activity login.sources) naming them; fewer do not.
func TestManySourcesAlert(t *testing.T) {
	f := newFixture(t, func(p *Params) {
		p.Anomaly = map[Activity]AnomalyRule{ActivityLoginSources: {Window: 10 * time.Minute, Threshold: 4}}
	})
	u := f.user(f.a, "mona", "operator")
	mark := f.head()
	from := func(i int) {
		c := Client{IP: fmt.Sprintf("203.0.113.%d", i), UserAgent: "bot"}
		if _, err := f.svc.Login(f.ctx, u.Name, "wrong password!", c, ""); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("from %s: %v", c.IP, err)
		}
	}
	for i := 1; i <= 3; i++ {
		from(i)
		from(i) // repeats from one address count once
	}
	f.expectAudit(audit.ActAnomalyAlert, mark, 0)
	// Unknown names never alert (and never tell).
	for i := 10; i < 20; i++ {
		_, _ = f.svc.Login(f.ctx, "ghost", "wrong password!", Client{IP: fmt.Sprintf("203.0.113.%d", i)}, "")
	}
	f.expectAudit(audit.ActAnomalyAlert, mark, 0)
	from(4)
	es := f.expectAudit(audit.ActAnomalyAlert, mark, 1)
	d := details(t, es[0])
	if d["activity"] != string(ActivityLoginSources) || d["count"] != float64(4) || es[0].ActorID != u.ID || len(d["sources"].([]any)) != 4 {
		t.Fatalf("alert %s", es[0].Details)
	}
	from(5) // same window: no second alert
	f.expectAudit(audit.ActAnomalyAlert, mark, 1)
	// The real user still signs in from their own address.
	if _, err := f.svc.Login(f.ctx, u.Name, u.password, addrB, ""); err != nil {
		t.Fatalf("real user: %v", err)
	}
}

// TestPasswordChangeThrottled: guessing the old password through a
// stolen session is throttled like a login.
func TestPasswordChangeThrottled(t *testing.T) {
	f := newFixture(t)
	u := f.user(f.a, "pia", "operator")
	p, _ := f.login(u)
	for i := 0; i < 5; i++ {
		if _, err := f.svc.ChangePassword(f.ctx, p, "wrong password!", "a brand new passphrase"); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	if _, err := f.svc.ChangePassword(f.ctx, p, u.password, "a brand new passphrase"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("right password while throttled: %v", err)
	}
}
