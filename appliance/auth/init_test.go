package auth_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"firewalliq/appliance"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/journal"
	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// TestFirstAdminFromInit walks the first admin's first login on a data
// directory made by the real `init`: one-time password, the TOTP secret init
// printed (enrolment shows the same secret, sealed under "totp:"+id),
// confirmation, forced password change. It is an external test so that it
// can import the composition root without an import cycle.
func TestFirstAdminFromInit(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 14, 0, 5, 0, time.UTC)
	clock := func() time.Time { return now }
	cfg := appliance.Config{DataDir: filepath.Join(t.TempDir(), "data")}
	res, err := appliance.Init(ctx, cfg, appliance.InitOptions{Admin: "root", Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	a, err := appliance.Open(ctx, cfg, clock)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// A second service over the same file, with cheap password hashing.
	st, err := store.Open(ctx, filepath.Join(cfg.DataDir, appliance.DatabaseFile), store.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	jr, err := journal.New(st.DB(), audit.New(audit.Options{Now: clock}), nil)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := auth.NewService(auth.Deps{Store: st, Journal: jr, Keys: a.Keys, Now: clock,
		Params: auth.Params{Argon: auth.ArgonParams{Time: 1, MemoryKiB: 64, Threads: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	c := auth.Client{IP: "127.0.0.1", UserAgent: "init-test"}
	l, err := svc.Login(ctx, "root", res.OneTimePassword, c, "")
	if err != nil {
		t.Fatal(err)
	}
	if l.Stage != "enrol" || !l.MustChangePassword {
		t.Fatalf("first login %+v", l)
	}
	en, err := svc.BeginEnrolment(ctx, l.Token, c)
	if err != nil {
		t.Fatal(err)
	}
	if en.Secret != res.TOTPSecret {
		t.Fatal("enrolment replaced the secret init printed")
	}
	code, err := auth.TOTPCode(res.TOTPSecret, now)
	if err != nil {
		t.Fatal(err)
	}
	full, codes, err := svc.ConfirmEnrolment(ctx, l.Token, code, c)
	if err != nil || len(codes) == 0 {
		t.Fatalf("confirm: %v", err)
	}
	p, err := svc.Authenticate(ctx, auth.Request{SessionToken: full.Token, Method: "GET", Client: c})
	if err != nil || !p.ApplianceAdmin() || !p.MustChangePassword {
		t.Fatalf("principal %+v, %v", p, err)
	}
	if _, err := svc.ChangePassword(ctx, p, res.OneTimePassword, "the admin's own passphrase"); err != nil {
		t.Fatal(err)
	}
}
