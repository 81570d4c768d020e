package auth

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"firewalliq/audit"
)

// TestSecondFactorLockout: wrong TOTP codes count like wrong passwords, and
// a right password in between does not reset the count, so six digits
// cannot be guessed by alternating.
func TestSecondFactorLockout(t *testing.T) {
	f := newFixture(t)
	u := f.user(f.a, "gus", "operator")
	mark := f.head()
	var err error
	for i := 0; i < 5; i++ {
		l, lerr := f.svc.Login(f.ctx, u.Name, u.password, client, "")
		if lerr != nil {
			t.Fatalf("password %d: %v", i, lerr)
		}
		_, err = f.svc.VerifyTOTP(f.ctx, l.Token, "000000", client)
	}
	if !errors.Is(err, ErrLockedOut) || !errors.Is(err, ErrInvalidCode) {
		t.Fatalf("fifth wrong code: %v, want ErrInvalidCode and ErrLockedOut", err)
	}
	f.expectAudit(audit.ActAuthLockout, mark, 1)
	f.expectAudit(audit.ActAuthTOTPFailed, mark, 5)
	if _, err := f.svc.Login(f.ctx, u.Name, u.password, client, ""); !errors.Is(err, ErrLockedOut) {
		t.Fatalf("password while locked: %v", err)
	}
	f.clock.advance(time.Minute)
	f.login(u)
}

// TestIPRateLimit: failures from one address across many user names hit
// the per-address limit; another address is unaffected.
func TestIPRateLimit(t *testing.T) {
	f := newFixture(t, func(p *Params) { p.IPMaxFailures = 5 })
	u := f.user(f.a, "ivan", "operator")
	for i := 0; i < 5; i++ {
		if _, err := f.svc.Login(f.ctx, fmt.Sprintf("nobody%d", i), "whatever password", client, ""); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	mark := f.head()
	if _, err := f.svc.Login(f.ctx, u.Name, u.password, client, ""); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("sixth attempt from the address: %v, want ErrRateLimited", err)
	}
	f.expectAudit(audit.ActAuthLoginFailed, mark, 1)
	other := Client{IP: "198.51.100.7", UserAgent: "x"}
	if _, err := f.svc.Login(f.ctx, u.Name, u.password, other, ""); err != nil {
		t.Fatalf("other address: %v", err)
	}
	// The window slides: 15 minutes later the address may try again.
	f.clock.advance(15*time.Minute + time.Second)
	if _, err := f.svc.Login(f.ctx, u.Name, u.password, client, ""); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// TestSessionFixation: a session id the browser presents at login (planted
// by an attacker, or left over) is deleted, never promoted; every login
// step issues a new id.
func TestSessionFixation(t *testing.T) {
	f := newFixture(t)
	u := f.user(f.a, "fred", "operator")
	mallory := f.user(f.a, "mallory", "operator")
	// The attacker gets a real, pending session id and plants it.
	planted, err := f.svc.Login(f.ctx, mallory.Name, mallory.password, client, "")
	if err != nil {
		t.Fatal(err)
	}
	mark := f.head()
	l, err := f.svc.Login(f.ctx, u.Name, u.password, client, planted.Token)
	if err != nil {
		t.Fatal(err)
	}
	if l.Token == planted.Token {
		t.Fatal("login kept the presented session id")
	}
	// Ending the planted session is audited.
	if rev := f.expectAudit(audit.ActAuthSessionRevoke, mark, 1); rev[0].ActorID != mallory.ID {
		t.Fatalf("revocation names %q, want the planted session's owner %q", rev[0].ActorID, mallory.ID)
	}
	if _, err := f.svc.VerifyTOTP(f.ctx, planted.Token, f.code(mallory), client); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("planted session still usable: %v", err)
	}
	full, err := f.svc.VerifyTOTP(f.ctx, l.Token, f.code(u), client)
	if err != nil {
		t.Fatal(err)
	}
	if full.Token == l.Token || full.SessionID == l.SessionID {
		t.Fatal("second factor did not rotate the session id")
	}
	// The pre-TOTP id is dead; the new one works.
	if _, err := f.svc.VerifyTOTP(f.ctx, l.Token, f.code(u), client); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("pre-TOTP id reusable: %v", err)
	}
	if _, err := f.svc.Authenticate(f.ctx, Request{SessionToken: l.Token, Method: "GET"}); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("pre-TOTP id authenticates: %v", err)
	}
	if _, err := f.svc.Authenticate(f.ctx, Request{SessionToken: full.Token, Method: "GET"}); err != nil {
		t.Fatal(err)
	}
	// A privilege change (role) ends the user's sessions.
	adm := f.user(f.a, "adam", "admin")
	ap, _ := f.login(adm)
	if err := f.svc.SetRole(f.ctx, ap, "", u.ID, "approver", f.code(adm)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authenticate(f.ctx, Request{SessionToken: full.Token, Method: "GET"}); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("session survived a role change: %v", err)
	}
	p, _ := f.login(u)
	if p.Role != "approver" {
		t.Fatalf("role after re-login %s", p.Role)
	}
}

// TestCSRF: every state-changing method needs the session's CSRF token;
// a missing or foreign token is refused and audited; safe methods pass.
func TestCSRF(t *testing.T) {
	f := newFixture(t)
	u := f.user(f.a, "cora", "operator")
	v := f.user(f.a, "vera", "operator")
	_, l := f.login(u)
	_, other := f.login(v)
	tests := []struct {
		name, method, token string
		want                error
	}{
		{"GET without token", http.MethodGet, "", nil},
		{"HEAD without token", http.MethodHead, "", nil},
		{"POST with token", http.MethodPost, l.CSRF, nil},
		{"POST without token", http.MethodPost, "", ErrCSRF},
		{"PUT without token", http.MethodPut, "", ErrCSRF},
		{"DELETE without token", http.MethodDelete, "", ErrCSRF},
		{"PATCH without token", http.MethodPatch, "", ErrCSRF},
		{"unknown method without token", "PURGE", "", ErrCSRF},
		{"POST with another session's token", http.MethodPost, other.CSRF, ErrCSRF},
		{"POST with truncated token", http.MethodPost, l.CSRF[:len(l.CSRF)-1], ErrCSRF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mark := f.head()
			_, err := f.svc.Authenticate(f.ctx, Request{SessionToken: l.Token, Method: tt.method, CSRFToken: tt.token, Client: client})
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			n := 0
			if tt.want != nil {
				n = 1
			}
			es := f.expectAudit(audit.ActAccessDenied, mark, n)
			if n == 1 && (es[0].ActorID != u.ID || es[0].ActorIP != client.IP) {
				t.Fatalf("audit %+v", es[0])
			}
		})
	}
	tok, err := CSRFToken(l.Token)
	if err != nil || tok != l.CSRF || CheckCSRF(l.Token, tok) != nil || CheckCSRF(l.Token, other.CSRF) == nil {
		t.Fatal("CSRFToken/CheckCSRF disagree with the login's token")
	}
}

// TestSessionTimeouts: idle and absolute timeouts end sessions (audited);
// activity extends only the idle one.
func TestSessionTimeouts(t *testing.T) {
	f := newFixture(t)
	u := f.user(f.a, "tim", "operator")
	auth := func(tok string) error {
		_, err := f.svc.Authenticate(f.ctx, Request{SessionToken: tok, Method: "GET"})
		return err
	}
	_, l := f.login(u)
	f.clock.advance(14 * time.Minute)
	if err := auth(l.Token); err != nil {
		t.Fatalf("after 14 idle minutes: %v", err)
	}
	f.clock.advance(14 * time.Minute)
	if err := auth(l.Token); err != nil {
		t.Fatalf("active session: %v", err)
	}
	mark := f.head()
	f.clock.advance(15 * time.Minute)
	if err := auth(l.Token); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("after 15 idle minutes: %v", err)
	}
	es := f.expectAudit(audit.ActAuthSessionRevoke, mark, 1)
	if details(t, es[0])["reason"] != "idle timeout" {
		t.Fatalf("reason %v", details(t, es[0]))
	}
	// Absolute: active every 10 minutes, still ends after 8 hours.
	_, l = f.login(u)
	var err error
	for i := 0; i < 8*6 && err == nil; i++ {
		f.clock.advance(10 * time.Minute)
		err = auth(l.Token)
	}
	if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "absolute") {
		t.Fatalf("absolute timeout: %v", err)
	}
	// A half-finished login expires after 5 minutes.
	pl, err := f.svc.Login(f.ctx, u.Name, u.password, client, "")
	if err != nil {
		t.Fatal(err)
	}
	f.clock.advance(5 * time.Minute)
	c, _ := TOTPCode(u.secret, f.clock.now())
	if _, err := f.svc.VerifyTOTP(f.ctx, pl.Token, c, client); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("stale pending login: %v", err)
	}
}

// TestLogoutEverywhere ends all of a user's sessions and nobody else's.
func TestLogoutEverywhere(t *testing.T) {
	f := newFixture(t)
	u := f.user(f.a, "lena", "auditor")
	o := f.user(f.a, "otto", "auditor")
	p1, l1 := f.login(u)
	_, l2 := f.login(u)
	_, lo := f.login(o)
	ss, err := f.svc.Sessions(f.ctx, p1)
	if err != nil || len(ss) != 2 {
		t.Fatalf("sessions %d, %v", len(ss), err)
	}
	if err := f.svc.LogoutEverywhere(f.ctx, p1); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{l1.Token, l2.Token} {
		if _, err := f.svc.Authenticate(f.ctx, Request{SessionToken: tok, Method: "GET"}); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("session survived: %v", err)
		}
	}
	if _, err := f.svc.Authenticate(f.ctx, Request{SessionToken: lo.Token, Method: "GET"}); err != nil {
		t.Fatalf("other user's session ended: %v", err)
	}
	p, _ := f.login(u)
	if err := f.svc.Logout(f.ctx, p); err != nil {
		t.Fatal(err)
	}
}

// TestCookie checks the session cookie's attributes.
func TestCookie(t *testing.T) {
	c := SessionCookie("fiqs_x")
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" || !strings.HasPrefix(c.Name, "__Host-") {
		t.Fatalf("cookie %+v", c)
	}
	s := c.String()
	for _, want := range []string{"HttpOnly", "Secure", "SameSite=Strict"} {
		if !strings.Contains(s, want) {
			t.Fatalf("cookie %q lacks %s", s, want)
		}
	}
	if d := ClearSessionCookie(); d.MaxAge >= 0 || d.Name != c.Name {
		t.Fatalf("clear cookie %+v", d)
	}
}

// TestDisabledAndUnknownUsers: both fail like a wrong password.
func TestDisabledAndUnknownUsers(t *testing.T) {
	f := newFixture(t)
	adm := f.user(f.a, "ann", "admin")
	u := f.user(f.a, "dora", "operator")
	ap, _ := f.login(adm)
	_, ul := f.login(u)
	if err := f.svc.DisableUser(f.ctx, ap, "", u.ID, f.code(adm)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authenticate(f.ctx, Request{SessionToken: ul.Token, Method: "GET"}); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("disabled user's session: %v", err)
	}
	mark := f.head()
	for _, name := range []string{u.Name, "nobody"} {
		if _, err := f.svc.Login(f.ctx, name, u.password, client, ""); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	es := f.expectAudit(audit.ActAuthLoginFailed, mark, 2)
	if details(t, es[0])["reason"] != "user disabled" || details(t, es[1])["reason"] != "unknown user" {
		t.Fatalf("reasons %s %s", es[0].Details, es[1].Details)
	}
}

// TestRequestFrom: cookie, CSRF header or form field, peer address.
func TestRequestFrom(t *testing.T) {
	tests := []struct {
		name                 string
		method, body, header string
		wantCSRF             string
	}{
		{"header", http.MethodPost, "", "h1", "h1"},
		{"form field", http.MethodPost, "csrf=f1", "", "f1"},
		{"header wins", http.MethodPost, "csrf=f1", "h1", "h1"},
		{"GET ignores body", http.MethodGet, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "/x", strings.NewReader(tt.body))
			r.RemoteAddr = "203.0.113.9:51000"
			r.Header.Set("User-Agent", "ua/1")
			r.Header.Set("X-Forwarded-For", "10.9.9.9")
			if tt.body != "" {
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if tt.header != "" {
				r.Header.Set(CSRFHeader, tt.header)
			}
			r.AddCookie(SessionCookie("fiqs_abc"))
			got := RequestFrom(r)
			want := Request{SessionToken: "fiqs_abc", Method: tt.method, CSRFToken: tt.wantCSRF, Client: Client{IP: "203.0.113.9", UserAgent: "ua/1"}}
			if got != want {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}
}

// TestRehashOnLogin: a hash made with other parameters is replaced by one
// with the service's parameters at the next successful login.
func TestRehashOnLogin(t *testing.T) {
	stronger := ArgonParams{Time: 2, MemoryKiB: 128, Threads: 1}
	f := newFixture(t, func(p *Params) { p.Argon = stronger })
	u := f.user(f.a, "old-hash", "operator") // hashed with cheapArgon
	if _, err := f.svc.Login(f.ctx, u.Name, u.password, client, ""); err != nil {
		t.Fatal(err)
	}
	got, _ := f.st.UserByID(f.ctx, u.ID)
	if ap, ok := hashParams(got.PasswordHash); !ok || ap != stronger {
		t.Fatalf("hash params %+v after login, want %+v", ap, stronger)
	}
	if err := VerifyPassword(got.PasswordHash, u.password); err != nil {
		t.Fatal(err)
	}
}

// TestSessionTouch: a session's last_seen is written at most once a
// minute, and when many requests of one session arrive together after the
// minute, all succeed and the time is written (once, by whichever gets
// there first; the others skip or find it fresh).
func TestSessionTouch(t *testing.T) {
	f := newFixture(t)
	u := f.user(f.a, "tess", "operator")
	_, l := f.login(u)
	raw, err := parseSecret(sessionPrefix, l.Token)
	if err != nil {
		t.Fatal(err)
	}
	lastSeen := func() time.Time {
		se, err := f.st.SessionByHash(f.ctx, f.st.Reader(), hashSecret(raw))
		if err != nil {
			t.Fatal(err)
		}
		return se.LastSeen
	}
	start := lastSeen()
	for _, tc := range []struct {
		name    string
		advance time.Duration
		callers int
		moved   bool
	}{
		{name: "within the minute", advance: 30 * time.Second, callers: 1, moved: false},
		{name: "after the minute", advance: 31 * time.Second, callers: 1, moved: true},
		{name: "many at once after the minute", advance: 2 * time.Minute, callers: 20, moved: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := lastSeen()
			f.clock.advance(tc.advance)
			var wg sync.WaitGroup
			errs := make(chan error, tc.callers)
			for range tc.callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := f.svc.Authenticate(f.ctx, Request{SessionToken: l.Token, Method: "GET", Client: client})
					errs <- err
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			after := lastSeen()
			if moved := !after.Equal(before); moved != tc.moved {
				t.Fatalf("last_seen %v -> %v (start %v), moved %v, want %v", before, after, start, moved, tc.moved)
			}
			if tc.moved && !after.Equal(f.clock.now()) {
				t.Fatalf("last_seen %v, want %v", after, f.clock.now())
			}
		})
	}
}
