package auth

import (
	"bytes"
	"errors"
	"image/png"
	"strings"
	"sync"
	"testing"
	"time"

	"firewalliq/audit"
)

// TestTOTPSkewEdges checks the ±1 step window at its exact edges: a code
// for the step before or after the current one is accepted; two steps away,
// or at the first instant of the step beyond, it is refused.
func TestTOTPSkewEdges(t *testing.T) {
	const secret = "JBSWY3DPEHPK3PXP"
	base := time.Date(2026, 11, 27, 14, 0, 0, 0, time.UTC) // start of a step
	tests := []struct {
		name     string
		codeAt   time.Time // when the authenticator made the code
		verifyAt time.Time // the server's clock
		want     error
	}{
		{"same step", base, base.Add(29 * time.Second), nil},
		{"client one step behind", base, base.Add(30 * time.Second), nil},
		{"client one step behind, last instant", base, base.Add(59*time.Second + 999*time.Millisecond), nil},
		{"client two steps behind", base, base.Add(60 * time.Second), ErrInvalidCode},
		{"client one step ahead", base.Add(30 * time.Second), base.Add(29 * time.Second), nil},
		{"client one step ahead, first instant", base.Add(30 * time.Second), base, nil},
		{"client two steps ahead", base.Add(60 * time.Second), base.Add(29 * time.Second), ErrInvalidCode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, err := TOTPCode(secret, tt.codeAt)
			if err != nil {
				t.Fatal(err)
			}
			step, err := matchStep(secret, code, tt.verifyAt)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err == nil && step != TOTPStep(tt.codeAt) {
				t.Fatalf("matched step %d, want %d", step, TOTPStep(tt.codeAt))
			}
		})
	}
	for _, bad := range []string{"", "12345", "1234567", "12345a", " 123456", "１２３４５６"} {
		if _, err := matchStep(secret, bad, base); !errors.Is(err, ErrInvalidCode) {
			t.Errorf("code %q: %v, want ErrInvalidCode", bad, err)
		}
	}
}

// TestTOTPReplay: a code accepted once is refused the second time, even
// within its validity window, and an older code is refused after a newer
// one; both refusals are audited.
func TestTOTPReplay(t *testing.T) {
	f := newFixture(t)
	u := f.user(f.a, "olga", "operator")
	l1, err := f.svc.Login(f.ctx, u.Name, u.password, client, "")
	if err != nil {
		t.Fatal(err)
	}
	code := f.code(u)
	if _, err := f.svc.VerifyTOTP(f.ctx, l1.Token, code, client); err != nil {
		t.Fatal(err)
	}
	mark := f.head()
	// Same code, second login, same 30 s step.
	l2, err := f.svc.Login(f.ctx, u.Name, u.password, client, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.VerifyTOTP(f.ctx, l2.Token, code, client); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed code: %v, want ErrReplay", err)
	}
	// Same code 20 s later: still inside ±1 step, still refused.
	f.clock.advance(20 * time.Second)
	if _, err := f.svc.VerifyTOTP(f.ctx, l2.Token, code, client); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed code later: %v, want ErrReplay", err)
	}
	// A code of the previous step (older than the accepted one) is refused
	// although it is inside the skew window.
	older, _ := TOTPCode(u.secret, f.clock.now().Add(-30*time.Second))
	if _, err := f.svc.VerifyTOTP(f.ctx, l2.Token, older, client); !errors.Is(err, ErrReplay) {
		t.Fatalf("older code: %v, want refusal", err)
	}
	es := f.expectAudit(audit.ActAuthTOTPFailed, mark, 3)
	if es[0].ActorIP != client.IP || es[0].UserAgent != client.UserAgent || es[0].ActorID != u.ID {
		t.Fatalf("audit entry %+v", es[0])
	}
	// A fresh code works.
	if _, err := f.svc.VerifyTOTP(f.ctx, l2.Token, f.code(u), client); err != nil {
		t.Fatalf("fresh code: %v", err)
	}
}

// TestEnrolment: a user without TOTP is sent to enrolment, gets a QR code
// rendered here, confirms with a code, receives single-use recovery codes,
// and the secret is stored sealed.
func TestEnrolment(t *testing.T) {
	f := newFixture(t)
	admin, _ := f.login(f.user(f.a, "ada", "admin"))
	nu, otp, err := f.svc.CreateUser(f.ctx, admin, "", NewUser{Name: "nina", Role: "operator"}, f.code(testUser{secret: mustSecret(t, f, "ada")}))
	if err != nil {
		t.Fatal(err)
	}
	l, err := f.svc.Login(f.ctx, "nina", otp, client, "")
	if err != nil {
		t.Fatal(err)
	}
	if l.Stage != "enrol" || !l.MustChangePassword {
		t.Fatalf("login = %+v, want stage enrol and must change password", l)
	}
	// A session waiting for enrolment authenticates nothing.
	if _, err := f.svc.Authenticate(f.ctx, Request{SessionToken: l.Token, Method: "GET"}); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("pending session authenticated: %v", err)
	}
	if _, err := f.svc.VerifyTOTP(f.ctx, l.Token, "123456", client); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("VerifyTOTP before enrolment: %v", err)
	}
	en, err := f.svc.BeginEnrolment(f.ctx, l.Token, client)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(en.QRPNG))
	if err != nil || img.Bounds().Dx() != 256 {
		t.Fatalf("QR png: %v", err)
	}
	if !strings.HasPrefix(en.QRDataURI, "data:image/png;base64,") || !strings.Contains(en.URL, "secret="+en.Secret) {
		t.Fatalf("enrolment %+v", en.URL)
	}
	// Beginning again shows the same secret (not yet confirmed).
	en2, err := f.svc.BeginEnrolment(f.ctx, l.Token, client)
	if err != nil || en2.Secret != en.Secret {
		t.Fatalf("second BeginEnrolment: %v, secret changed %v", err, en2.Secret != en.Secret)
	}
	stored, err := f.st.UserByID(f.ctx, nu.ID)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored.TOTPSealed, []byte(en.Secret)) || stored.TOTPConfirmed {
		t.Fatal("secret stored in clear or confirmed early")
	}
	nina := testUser{User: stored, secret: en.Secret}
	if _, _, err := f.svc.ConfirmEnrolment(f.ctx, l.Token, "000000", client); !errors.Is(err, ErrInvalidCode) {
		t.Fatalf("wrong confirmation: %v", err)
	}
	full, codes, err := f.svc.ConfirmEnrolment(f.ctx, l.Token, f.code(nina), client)
	if err != nil {
		t.Fatal(err)
	}
	if full.Stage != "full" || full.Token == l.Token || len(codes) != 10 {
		t.Fatalf("confirm: stage %s rotated %v codes %d", full.Stage, full.Token != l.Token, len(codes))
	}
	p, err := f.svc.Authenticate(f.ctx, Request{SessionToken: full.Token, Method: "GET"})
	if err != nil || !p.MustChangePassword {
		t.Fatalf("authenticate: %v %+v", err, p)
	}
	// Until the password is changed, nothing else is allowed.
	if _, err := f.svc.ListTokens(f.ctx, p); !errors.Is(err, ErrPasswordChangeRequired) {
		t.Fatalf("ListTokens before password change: %v", err)
	}
	if _, err := f.svc.ChangePassword(f.ctx, p, otp, "short"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("short new password: %v", err)
	}
	l2, err := f.svc.ChangePassword(f.ctx, p, otp, "a much longer passphrase")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authenticate(f.ctx, Request{SessionToken: full.Token, Method: "GET"}); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("old session after password change: %v", err)
	}
	p2, err := f.svc.Authenticate(f.ctx, Request{SessionToken: l2.Token, Method: "GET"})
	if err != nil || p2.MustChangePassword {
		t.Fatalf("new session: %v %+v", err, p2)
	}

	// Recovery codes: single use, stored hashed, normalised.
	mark := f.head()
	login := func() Login {
		l, err := f.svc.Login(f.ctx, "nina", "a much longer passphrase", client, "")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if _, err := f.svc.UseRecoveryCode(f.ctx, login().Token, strings.ToUpper(codes[0]), client); err != nil {
		t.Fatalf("recovery code: %v", err)
	}
	if _, err := f.svc.UseRecoveryCode(f.ctx, login().Token, codes[0], client); !errors.Is(err, ErrInvalidCode) {
		t.Fatalf("reused recovery code: %v", err)
	}
	f.expectAudit(audit.ActAuthRecoveryUse, mark, 1)
	f.expectAudit(audit.ActAuthTOTPFailed, mark, 1)
	left, _ := f.st.RecoveryCodesLeft(f.ctx, nu.ID)
	if left != 9 {
		t.Fatalf("%d codes left, want 9", left)
	}
	var n int
	if err := f.st.DB().QueryRow(`SELECT count(*) FROM auth_recovery_codes WHERE code_hash = ?`, []byte(codes[1])).Scan(&n); err != nil || n != 0 {
		t.Fatal("recovery code stored in clear")
	}
}

// mustSecret recovers a fixture user's secret through the keyring, as the
// service does.
func mustSecret(t *testing.T, f *fixture, name string) string {
	t.Helper()
	u, err := f.st.UserByLoginName(f.ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.svc.openSecret(u)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSealedSecretBoundToUser: a sealed secret copied onto another user's
// row does not open (associated data "totp:"+id).
func TestSealedSecretBoundToUser(t *testing.T) {
	f := newFixture(t)
	a := f.user(f.a, "amy", "operator")
	b := f.user(f.a, "bob", "operator")
	b.TOTPSealed = a.TOTPSealed
	if _, err := f.svc.openSecret(b.User); err == nil {
		t.Fatal("secret sealed for one user opened for another")
	}
}

// TestTOTPReplayConcurrent: one code raced from eight logins at once is
// accepted exactly once (the step check and write are one statement in an
// immediate transaction).
func TestTOTPReplayConcurrent(t *testing.T) {
	f := newFixture(t)
	u := f.user(f.a, "rae", "operator")
	const n = 8
	tokens := make([]string, n)
	for i := range tokens {
		l, err := f.svc.Login(f.ctx, u.Name, u.password, client, "")
		if err != nil {
			t.Fatal(err)
		}
		tokens[i] = l.Token
	}
	code := f.code(u)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for _, tok := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.svc.VerifyTOTP(f.ctx, tok, code, client)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrReplay) && !errors.Is(err, ErrLockedOut):
			// Replays count as failures, so the racers lock the account.
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("code accepted %d times, want 1", ok)
	}
}

// TestResetTOTPAndRecoveryCodes: an admin's reset sends the user back to
// enrolment with a new secret; regenerated recovery codes replace the old.
func TestResetTOTPAndRecoveryCodes(t *testing.T) {
	f := newFixture(t)
	adm := f.user(f.a, "ada", "admin")
	u := f.user(f.a, "lost", "operator")
	ap, _ := f.login(adm)
	up, ul := f.login(u)
	codes, err := f.svc.RegenerateRecoveryCodes(f.ctx, up, f.code(u))
	if err != nil || len(codes) != 10 {
		t.Fatalf("regenerate: %d %v", len(codes), err)
	}
	codes2, err := f.svc.RegenerateRecoveryCodes(f.ctx, up, f.code(u))
	if err != nil {
		t.Fatal(err)
	}
	l, _ := f.svc.Login(f.ctx, u.Name, u.password, client, "")
	if _, err := f.svc.UseRecoveryCode(f.ctx, l.Token, codes[0], client); !errors.Is(err, ErrInvalidCode) {
		t.Fatalf("replaced recovery code: %v", err)
	}
	if _, err := f.svc.UseRecoveryCode(f.ctx, l.Token, codes2[0], client); err != nil {
		t.Fatalf("new recovery code: %v", err)
	}
	mark := f.head()
	if err := f.svc.ResetTOTP(f.ctx, ap, "", u.ID, f.code(adm)); err != nil {
		t.Fatal(err)
	}
	f.expectAudit(audit.ActUserUpdate, mark, 1)
	if _, err := f.svc.Authenticate(f.ctx, Request{SessionToken: ul.Token, Method: "GET"}); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("session survived TOTP reset: %v", err)
	}
	l, err = f.svc.Login(f.ctx, u.Name, u.password, client, "")
	if err != nil || l.Stage != "enrol" {
		t.Fatalf("login after reset: %+v %v", l, err)
	}
	en, err := f.svc.BeginEnrolment(f.ctx, l.Token, client)
	if err != nil || en.Secret == u.secret {
		t.Fatalf("enrolment after reset: %v, same secret %v", err, en.Secret == u.secret)
	}
	if left, _ := f.st.RecoveryCodesLeft(f.ctx, u.ID); left != 0 {
		t.Fatalf("%d recovery codes survived the reset", left)
	}
}
