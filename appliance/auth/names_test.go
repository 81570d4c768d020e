package auth

import (
	"errors"
	"strings"
	"testing"

	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// TestValidName: printable, at most 64 characters, no control characters
// (issue 13, "Unbounded reads and unchecked names").
func TestValidName(t *testing.T) {
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"plain", "alice", true},
		{"accents and space", "Zoë Ølsen", true},
		{"64 characters", strings.Repeat("é", 64), true},
		{"65 characters", strings.Repeat("x", 65), false},
		{"3000 characters", strings.Repeat("x", 3000), false},
		{"empty", "", false},
		{"newline", "mallory\nroot logged in", false},
		{"ANSI escape", "\x1b[2Jmallory", false},
		{"carriage return", "a\rb", false},
		{"DEL", "a\x7fb", false},
		{"right-to-left override", "admin\u202Etxt.exe", false},
		{"zero-width space", "ad\u200Bmin", false},
		{"no-break space", "ad\u00A0min", false},
		{"leading space", " alice", false},
		{"invalid UTF-8", "al\xffice", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidUserName(tt.in)
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
				t.Fatalf("ValidUserName(%q) = %v, want ok=%v", tt.in, err, tt.ok)
			}
		})
	}
}

// TestCreateUserBadName: a bad name is refused before anything is stored or
// any step-up code is spent.
func TestCreateUserBadName(t *testing.T) {
	f := newFixture(t)
	adm := f.user(f.a, "nadia", store.RoleAdmin)
	ap, _ := f.login(adm)
	mark := f.head()
	code := f.code(adm)
	for _, name := range []string{"ev\nil", "\x1b[31mred", strings.Repeat("n", 3000)} {
		if _, _, err := f.svc.CreateUser(f.ctx, ap, "", NewUser{Name: name, Role: store.RoleOperator}, code); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%q: %v", name, err)
		}
	}
	if _, err := f.svc.CreateTenant(f.ctx, ap, "tenant\x1b]0;pwned\x07", code); !errors.Is(err, ErrInvalid) {
		t.Fatalf("tenant name: %v", err)
	}
	f.expectAudit(audit.ActUserCreate, mark, 0)
	f.expectAudit(audit.ActAuthStepUp, mark, 0)
	// The code was not spent: it still works.
	if _, _, err := f.svc.CreateUser(f.ctx, ap, "", NewUser{Name: "good name", Role: store.RoleOperator}, code); err != nil {
		t.Fatal(err)
	}
}
