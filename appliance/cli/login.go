package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io"
	"os"
	"strings"
	"time"

	"github.com/boombuler/barcode/qr"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"firewalliq/appliance/cli/apiclient"
)

// DefaultAddr is where login looks when no --addr, FIQ_ADDR or earlier
// login names the appliance: the console on this machine (serve's default
// listen address is :8443).
const DefaultAddr = "https://localhost:8443"

// loginAnswer is what every login step returns (docs/api.md).
type loginAnswer struct {
	Stage              string    `json:"stage"`
	Token              string    `json:"token"`
	CSRF               string    `json:"csrf"`
	SessionID          string    `json:"session_id"`
	MustChangePassword bool      `json:"must_change_password"`
	ExpiresAt          time.Time `json:"expires_at"`
	RecoveryCodes      []string  `json:"recovery_codes,omitempty"`
}

// enrolment is the answer of POST /auth/enrol.
type enrolment struct {
	Secret string `json:"totp_secret"`
	URL    string `json:"totp_url"`
}

func newLoginCmd(r *remote) *cobra.Command {
	var (
		addr, user, pin string
		recovery        bool
		asJSON          bool
	)
	cmd := &cobra.Command{
		Use:   "login [--addr URL] [--user NAME] [--cert-sha256 FP] [--json]",
		Short: "Sign in to the appliance's API; the session is kept for the management commands",
		Long: `login signs in to the appliance's console API with a password and a TOTP
code, read without echo on a terminal, or one line each from standard input
otherwise. On a first login it also enrols TOTP (the secret and otpauth URI
are shown, as a QR code on a terminal; with --json as one JSON object
{"totp_secret","totp_url"} on standard output before the first code is read)
and, when the password is a one-time password, reads the new password.

The session is kept in $XDG_CONFIG_HOME/firewalliq/credentials (default
~/.config/firewalliq/credentials, mode 0600) with the address and the
certificate pin. --cert-sha256 is the console certificate's SHA-256 as
'init' and 'serve' print it; FIQ_CACERT trusts a CA file instead.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return remoteErr("login", r.login(cmd, addr, user, pin, recovery, asJSON))
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "", "appliance URL (env FIQ_ADDR; default the last login's, else "+DefaultAddr+")")
	f.StringVar(&user, "user", "", "user name (asked for when missing)")
	f.StringVar(&pin, "cert-sha256", "", "SHA-256 of the console certificate, as init prints it (env FIQ_CERT_SHA256)")
	f.BoolVar(&recovery, "recovery", false, "use a recovery code instead of a TOTP code")
	f.BoolVar(&asJSON, "json", false, "print the enrolment secret and the result as JSON objects")
	return cmd
}

// login runs the login steps and saves the session.
func (r *remote) login(cmd *cobra.Command, addr, user, pin string, recovery, asJSON bool) error {
	env := r.env
	path, err := apiclient.CredentialsPath(env.Getenv)
	if err != nil {
		return err
	}
	old, oldErr := apiclient.LoadCredentials(path)
	if addr == "" {
		addr = env.Getenv(EnvAddr)
	}
	if addr == "" && oldErr == nil {
		addr = old.Addr
	}
	if addr == "" {
		addr = DefaultAddr
	}
	addr = strings.TrimRight(addr, "/")
	if pin == "" {
		pin = env.Getenv(EnvCertSHA256)
	}
	if pin == "" && oldErr == nil && old.Addr == addr {
		pin = old.CertSHA256
	}
	if pin != "" {
		if pin, err = apiclient.ParsePin(pin); err != nil {
			return err
		}
	}
	ca := env.Getenv(EnvCACert)
	cfg := apiclient.Config{Addr: addr, CertSHA256: pin, CACertFile: ca}
	if oldErr == nil && old.Addr == addr {
		// The first step carries the session being replaced, and the
		// appliance ends it: logging in again leaves no orphan session.
		cfg.Session, cfg.CSRF = old.Token, old.CSRF
	}
	c, err := apiclient.New(cfg)
	if err != nil {
		return err
	}
	in := r.in
	if user == "" {
		if user, err = in.Line("user"); err != nil {
			return err
		}
	}
	password, err := in.Secret("password")
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	var l loginAnswer
	if err := c.Post(ctx, "/auth/login", map[string]string{"name": user, "password": password}, &l); err != nil {
		return err
	}
	c.SetSession(l.Token, l.CSRF)
	switch l.Stage {
	case "password":
		what, path := "TOTP code", "/auth/totp"
		if recovery {
			what, path = "recovery code", "/auth/recovery"
		}
		code, err := in.Code(what)
		if err != nil {
			return err
		}
		if err := c.Post(ctx, path, map[string]string{"code": code}, &l); err != nil {
			return err
		}
	case "enrol":
		var en enrolment
		if err := c.Post(ctx, "/auth/enrol", struct{}{}, &en); err != nil {
			return err
		}
		if err := showEnrolment(env, en, asJSON); err != nil {
			return err
		}
		code, err := in.Code("first TOTP code from the authenticator")
		if err != nil {
			return err
		}
		if err := c.Post(ctx, "/auth/enrol/confirm", map[string]string{"code": code}, &l); err != nil {
			return err
		}
		if !asJSON && len(l.RecoveryCodes) > 0 {
			fmt.Fprintf(env.Stdout, "Recovery codes (each works once, shown only now; keep them offline):\n")
			for _, rc := range l.RecoveryCodes {
				fmt.Fprintf(env.Stdout, "  %s\n", termSafe(rc))
			}
		}
	default:
		return fmt.Errorf("unexpected login stage %q", termSafe(l.Stage))
	}
	c.SetSession(l.Token, l.CSRF)
	if l.Stage != "full" {
		return fmt.Errorf("login did not finish (stage %q)", termSafe(l.Stage))
	}
	if l.MustChangePassword {
		next, err := r.newPassword()
		if err != nil {
			return err
		}
		codes := l.RecoveryCodes
		if err := c.Post(ctx, "/auth/password", map[string]string{"old_password": password, "new_password": next}, &l); err != nil {
			return fmt.Errorf("change the one-time password: %w", err)
		}
		l.RecoveryCodes = codes
		c.SetSession(l.Token, l.CSRF)
	}
	token, csrf := c.Session()
	cred := apiclient.Credentials{Addr: c.Addr(), CertSHA256: pin, CACertFile: ca, User: user, Token: token, CSRF: csrf, ExpiresAt: l.ExpiresAt}
	if err := apiclient.SaveCredentials(path, cred); err != nil {
		return err
	}
	if asJSON {
		return writeJSONLine(env.Stdout, map[string]any{"addr": cred.Addr, "user": user, "expires_at": l.ExpiresAt, "credentials": path, "recovery_codes": l.RecoveryCodes})
	}
	fmt.Fprintf(env.Stdout, "logged in to %s as %s; session kept in %s", termSafe(cred.Addr), termSafe(user), path)
	if !l.ExpiresAt.IsZero() {
		fmt.Fprintf(env.Stdout, " (expires %s)", l.ExpiresAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(env.Stdout)
	return nil
}

// newPassword reads the new password (twice on a terminal, where a typo
// would otherwise lock the user out of their own account).
func (r *remote) newPassword() (string, error) {
	next, err := r.in.Secret("new password (at least 12 characters)")
	if err != nil {
		return "", err
	}
	if r.in.Terminal() {
		again, err := r.in.Secret("new password again")
		if err != nil {
			return "", err
		}
		if again != next {
			return "", errors.New("the two new passwords differ")
		}
	}
	return next, nil
}

// showEnrolment shows a new TOTP secret: with --json exactly one JSON object
// on one line (written before the next read, so a script can answer with a
// code), else the secret, the URI and, on a terminal, a QR code.
func showEnrolment(env *Env, en enrolment, asJSON bool) error {
	if asJSON {
		return writeJSONLine(env.Stdout, map[string]string{"totp_secret": en.Secret, "totp_url": en.URL})
	}
	fmt.Fprintf(env.Stdout, "TOTP enrolment: add this account to an authenticator app.\n  secret: %s\n  URI:    %s\n", termSafe(en.Secret), termSafe(en.URL))
	if f, ok := env.Stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		q, err := renderQR(en.URL)
		if err != nil {
			return err
		}
		fmt.Fprint(env.Stdout, q)
	}
	return nil
}

// writeJSONLine writes v as one line of JSON and flushes it when the
// writer can be flushed.
func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return err
	}
	if f, ok := w.(interface{ Sync() error }); ok {
		_ = f.Sync() // a pipe or terminal cannot be synced; the write is already out
	}
	return nil
}

// renderQR draws a QR code of s with Unicode half blocks: each text row
// holds two module rows. Light modules (and the 4-module quiet zone) are
// drawn as blocks, so it scans on the usual light-on-dark terminal.
func renderQR(s string) (string, error) {
	code, err := qr.Encode(s, qr.M, qr.Auto)
	if err != nil {
		return "", fmt.Errorf("QR code: %w", err)
	}
	const quiet = 4
	bnd := code.Bounds()
	w, h := bnd.Dx(), bnd.Dy()
	light := func(x, y int) bool {
		x, y = x-quiet, y-quiet
		if x < 0 || y < 0 || x >= w || y >= h {
			return true
		}
		lum, _, _, _ := color.GrayModel.Convert(code.At(bnd.Min.X+x, bnd.Min.Y+y)).RGBA()
		return lum > 0x7fff
	}
	var b strings.Builder
	for y := 0; y < h+2*quiet; y += 2 {
		for x := 0; x < w+2*quiet; x++ {
			top, bottom := light(x, y), light(x, y+1)
			switch {
			case top && bottom:
				b.WriteRune('█')
			case top:
				b.WriteRune('▀')
			case bottom:
				b.WriteRune('▄')
			default:
				b.WriteByte(' ')
			}
		}
		b.WriteByte('\n')
	}
	return b.String(), nil
}

func newLogoutCmd(r *remote) *cobra.Command {
	env := r.env
	return &cobra.Command{
		Use:   "logout",
		Short: "End the session on the appliance and remove the credentials file",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := apiclient.CredentialsPath(env.Getenv)
			if err != nil {
				return remoteErr("logout", err)
			}
			cred, err := apiclient.LoadCredentials(path)
			if errors.Is(err, apiclient.ErrNoCredentials) {
				fmt.Fprintln(env.Stdout, "not logged in")
				return nil
			}
			if err != nil {
				return remoteErr("logout", err)
			}
			cfg := apiclient.Config{Addr: cred.Addr, CertSHA256: cred.CertSHA256, CACertFile: cred.CACertFile, Session: cred.Token, CSRF: cred.CSRF}
			if v := env.Getenv(EnvCACert); v != "" {
				cfg.CACertFile = v
			}
			var serverErr error
			if c, err := apiclient.New(cfg); err != nil {
				serverErr = err
			} else {
				serverErr = c.Post(cmd.Context(), "/auth/logout", struct{}{}, nil)
				// An expired session has ended already: nothing to tell.
				if errors.Is(serverErr, &apiclient.Error{Code: apiclient.CodeUnauthenticated}) {
					serverErr = nil
				}
			}
			// The local copy goes in any case: keeping a session the user
			// asked to end would be worse than a stale one on the server,
			// which expires on its own.
			if err := apiclient.RemoveCredentials(path); err != nil {
				return remoteErr("logout", err)
			}
			if serverErr != nil {
				return remoteErr("logout", fmt.Errorf("credentials removed, but the appliance was not told (the session expires on its own): %w", serverErr))
			}
			fmt.Fprintf(env.Stdout, "logged out of %s\n", termSafe(cred.Addr))
			return nil
		},
	}
}
