package auth

import (
	"database/sql"
	"errors"
	"testing"
	"time"

	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// TestAnomalyAlerts: crossing a threshold in the sliding window writes one
// anomaly.alert at once (in the same transaction as the activity); the
// window slides; failed logins count too.
func TestAnomalyAlerts(t *testing.T) {
	f := newFixture(t, func(p *Params) {
		p.Anomaly = map[Activity]AnomalyRule{
			ActivityScanRequest: {Window: 10 * time.Minute, Threshold: 3},
			ActivityLoginFailed: {Window: 10 * time.Minute, Threshold: 3},
		}
	})
	u := f.user(f.a, "sam", store.RoleOperator)
	p, _ := f.login(u)
	record := func() {
		t.Helper()
		err := f.st.InTx(f.ctx, func(tx *sql.Tx) error { return f.svc.RecordActivity(f.ctx, tx, p, ActivityScanRequest) })
		if err != nil {
			t.Fatal(err)
		}
	}
	mark := f.head()
	record()
	f.clock.advance(4 * time.Minute)
	record()
	f.expectAudit(audit.ActAnomalyAlert, mark, 0)
	f.clock.advance(4 * time.Minute)
	record() // third within 10 minutes
	es := f.expectAudit(audit.ActAnomalyAlert, mark, 1)
	d := details(t, es[0])
	if d["activity"] != "scan.request" || d["count"] != float64(3) || d["threshold"] != float64(3) || es[0].ActorID != u.ID || es[0].Tenant != f.a {
		t.Fatalf("alert %+v %s", es[0], es[0].Details)
	}
	if !es[0].Time.Equal(f.clock.now()) {
		t.Fatalf("alert at %s, activity at %s", es[0].Time, f.clock.now())
	}
	record() // still over, same window: no second alert
	f.expectAudit(audit.ActAnomalyAlert, mark, 1)
	// The window slides: 11 minutes on, the count restarts.
	f.clock.advance(11 * time.Minute)
	record()
	record()
	f.expectAudit(audit.ActAnomalyAlert, mark, 1)
	record()
	f.expectAudit(audit.ActAnomalyAlert, mark, 2)

	// Failed logins: three wrong passwords raise an alert for the user.
	mark = f.head()
	for i := 0; i < 3; i++ {
		_, _ = f.svc.Login(f.ctx, u.Name, "not the password", client, "")
	}
	e := f.expectAudit(audit.ActAnomalyAlert, mark, 1)[0]
	if details(t, e)["activity"] != "login.failed" {
		t.Fatalf("alert %s", e.Details)
	}
	// An activity without a rule is refused.
	err := f.st.InTx(f.ctx, func(tx *sql.Tx) error { return f.svc.RecordActivity(f.ctx, tx, p, "coffee") })
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown activity: %v", err)
	}
	// Sweep prunes events older than the longest window.
	if err := f.svc.Sweep(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(time.Hour + time.Minute) // the longest window (exports, 1 h) has passed
	if err := f.svc.Sweep(f.ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := f.st.DB().QueryRow(`SELECT count(*) FROM auth_events`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d events left after sweep, %v", n, err)
	}
}

// TestRealArgonLogin logs in once with the production argon2id parameters,
// so the real cost path is exercised end to end.
func TestRealArgonLogin(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB argon2id hashes in -short mode")
	}
	f := newFixture(t, func(p *Params) { p.Argon = DefaultArgonParams() })
	hash, err := HashPassword("production parameters!")
	if err != nil {
		t.Fatal(err)
	}
	u := f.user(f.a, "real", store.RoleOperator)
	if err := f.st.InTx(f.ctx, func(tx *sql.Tx) error { return f.st.SetUserPassword(f.ctx, tx, u.ID, hash, false) }); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Login(f.ctx, u.Name, "production parameters!", client, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Login(f.ctx, "nobody", "production parameters!", client, ""); !errors.Is(err, ErrUnauthenticated) {
		t.Fatal(err)
	}
}
