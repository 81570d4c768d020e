package auth

import (
	"errors"
	"strings"
	"testing"
)

func TestPassword(t *testing.T) {
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=4$") {
		t.Fatalf("hash %q", h)
	}
	tests := []struct {
		name, hash, pw string
		want           error
	}{
		{"right", h, "correct horse battery", nil},
		{"wrong", h, "correct horse battery!", ErrWrongPassword},
		{"not argon", "$2a$10$abc", "x", ErrBadHash},
		{"bad params", "$argon2id$v=19$m=0,t=3,p=4$AAAA$AAAA", "x", ErrBadHash},
		{"bad base64", "$argon2id$v=19$m=65536,t=3,p=4$!!$AAAA", "x", ErrBadHash},
		{"empty", "", "x", ErrBadHash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := VerifyPassword(tt.hash, tt.pw); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := HashPassword("short"); !errors.Is(err, ErrPasswordTooShort) {
		t.Fatalf("short password: %v", err)
	}
	p1, _ := RandomPassword()
	p2, _ := RandomPassword()
	if len(p1) != 20 || p1 == p2 {
		t.Fatalf("random passwords %q %q", p1, p2)
	}
}
