package cli

import (
	"bufio"
	"context"
	"fmt"
	"strings"

	"firewalliq/appliance"
	"firewalliq/appliance/auth"
)

// stdinLines reads secrets from standard input, one per line, so they
// never appear in the process list or shell history.
type stdinLines struct {
	env *Env
	in  *bufio.Scanner
	cmd string
}

func newStdinLines(env *Env, cmd string) *stdinLines {
	return &stdinLines{env: env, in: bufio.NewScanner(env.Stdin), cmd: cmd}
}

// line prompts on standard error and reads one line.
func (s *stdinLines) line(prompt string) (string, error) {
	fmt.Fprint(s.env.Stderr, prompt)
	if !s.in.Scan() {
		return "", usagef("%s: standard input ended before the %s", s.cmd, strings.TrimSuffix(prompt, ": "))
	}
	return strings.TrimSpace(s.in.Text()), nil
}

// signIn signs user in on app with a password and a TOTP code read from
// lines, and returns the principal and a function that ends the session.
// It is how local commands act as a principal until they become clients of
// the HTTP API.
func signIn(ctx context.Context, app *appliance.Appliance, lines *stdinLines, user string) (auth.Principal, func(), error) {
	c := auth.Client{IP: "local", UserAgent: "firewalliq-cli"}
	password, err := lines.line("password: ")
	if err != nil {
		return auth.Principal{}, nil, err
	}
	l, err := app.Auth.Login(ctx, user, password, c, "")
	if err != nil {
		return auth.Principal{}, nil, fmt.Errorf("sign in: %w", err)
	}
	if l.Stage != "password" || l.MustChangePassword {
		return auth.Principal{}, nil, fmt.Errorf("sign in: %s has not finished the first login (TOTP enrolment and password change); do that in the console first", user)
	}
	code, err := lines.line("TOTP code: ")
	if err != nil {
		return auth.Principal{}, nil, err
	}
	full, err := app.Auth.VerifyTOTP(ctx, l.Token, code, c)
	if err != nil {
		return auth.Principal{}, nil, fmt.Errorf("sign in: %w", err)
	}
	p, err := app.Auth.Authenticate(ctx, auth.Request{SessionToken: full.Token, Method: "GET", Client: c})
	if err != nil {
		return auth.Principal{}, nil, fmt.Errorf("sign in: %w", err)
	}
	return p, func() { _ = app.Auth.Logout(ctx, p) }, nil
}
