package console

import (
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/fault"
)

// The sign-in steps follow the service's stages: password, then TOTP (or a
// recovery code); a user without a confirmed TOTP enrols first; a user with
// a one-time password must replace it before any other page opens. Every
// step gets a new session id (auth rotates it), set as the cookie here.

func setSession(ec echo.Context, l auth.Login) {
	ec.SetCookie(auth.SessionCookie(l.Token))
}

// next sends the browser to the page of login stage l.
func next(ec echo.Context, l auth.Login) error {
	switch {
	case l.Stage == "password":
		return ec.Redirect(http.StatusSeeOther, Prefix+"/login/totp")
	case l.Stage == "enrol":
		return ec.Redirect(http.StatusSeeOther, Prefix+"/enrol")
	case l.MustChangePassword:
		return ec.Redirect(http.StatusSeeOther, Prefix+"/password")
	}
	return ec.Redirect(http.StatusSeeOther, Prefix+"/")
}

// loginError is what a refused step says: the service's classified
// message, which never tells whether the name or the password was wrong.
func loginError(err error) (int, string) {
	class := fault.Classify(err)
	return class.HTTP, fault.Message(class, err)
}

func (c *Console) loginForm(ec echo.Context) error {
	return c.render(ec, http.StatusOK, "login", view{Title: "Sign in", Flash: flashOf(ec)})
}

func (c *Console) loginPost(ec echo.Context) error {
	r := ec.Request()
	l, err := c.d.Auth.Login(r.Context(), r.PostFormValue("name"), r.PostFormValue("password"), auth.ClientFrom(r), sessionToken(ec))
	if err != nil {
		status, msg := loginError(err)
		if status >= 500 {
			return err
		}
		return c.render(ec, status, "login", view{Title: "Sign in", Error: msg, Data: map[string]string{"Name": r.PostFormValue("name")}})
	}
	setSession(ec, l)
	return next(ec, l)
}

func (c *Console) totpForm(ec echo.Context) error {
	return c.render(ec, http.StatusOK, "totp", view{Title: "Authenticator code"})
}

func (c *Console) totpPost(ec echo.Context) error {
	r := ec.Request()
	l, err := c.d.Auth.VerifyTOTP(r.Context(), sessionToken(ec), strings.TrimSpace(r.PostFormValue("code")), auth.ClientFrom(r))
	return c.secondFactor(ec, l, err)
}

func (c *Console) recoveryPost(ec echo.Context) error {
	r := ec.Request()
	l, err := c.d.Auth.UseRecoveryCode(r.Context(), sessionToken(ec), strings.TrimSpace(r.PostFormValue("code")), auth.ClientFrom(r))
	return c.secondFactor(ec, l, err)
}

// secondFactor finishes a TOTP or recovery step; a refusal shows the
// prompt again, or the login page once the pending session is gone.
func (c *Console) secondFactor(ec echo.Context, l auth.Login, err error) error {
	if err != nil {
		status, msg := loginError(err)
		if status >= 500 {
			return err
		}
		if errors.Is(err, auth.ErrUnauthenticated) {
			return c.render(ec, status, "login", view{Title: "Sign in", Error: "Please sign in again."})
		}
		return c.render(ec, status, "totp", view{Title: "Authenticator code", Error: msg})
	}
	setSession(ec, l)
	return next(ec, l)
}

// enrolData is the enrolment page: the secret as text and as a QR code
// (a PNG data: URI made by the service; the CSP allows img-src data:).
type enrolData struct {
	Secret string
	QR     template.URL
	// Codes are the recovery codes, shown once after confirmation.
	Codes []string
}

func (c *Console) enrolForm(ec echo.Context) error {
	return c.showEnrol(ec, http.StatusOK, "")
}

func (c *Console) showEnrol(ec echo.Context, status int, problem string) error {
	r := ec.Request()
	en, err := c.d.Auth.BeginEnrolment(r.Context(), sessionToken(ec), auth.ClientFrom(r))
	if err != nil {
		if errors.Is(err, auth.ErrUnauthenticated) {
			return ec.Redirect(http.StatusSeeOther, Prefix+"/login")
		}
		return err
	}
	return c.render(ec, status, "enrol", view{Title: "Set up your authenticator", Error: problem,
		Data: enrolData{Secret: en.Secret, QR: qrURL(en.QRDataURI)}})
}

func (c *Console) enrolPost(ec echo.Context) error {
	r := ec.Request()
	l, codes, err := c.d.Auth.ConfirmEnrolment(r.Context(), sessionToken(ec), strings.TrimSpace(r.PostFormValue("code")), auth.ClientFrom(r))
	if err != nil {
		status, msg := loginError(err)
		if status >= 500 {
			return err
		}
		return c.showEnrol(ec, status, msg)
	}
	setSession(ec, l)
	// The recovery codes are shown once, on this answer; the link goes on.
	target := Prefix + "/"
	if l.MustChangePassword {
		target = Prefix + "/password"
	}
	return c.render(ec, http.StatusOK, "codes", view{Title: "Recovery codes", Data: map[string]any{"Codes": codes, "Next": target}})
}

func (c *Console) passwordForm(ec echo.Context) error {
	return c.render(ec, http.StatusOK, "password", view{Title: "Change password", Nav: "password"})
}

func (c *Console) passwordPost(ec echo.Context) error {
	r := ec.Request()
	p, _ := principal(ec)
	old, nw := r.PostFormValue("old_password"), r.PostFormValue("new_password")
	if nw != r.PostFormValue("confirm_password") {
		return c.render(ec, http.StatusBadRequest, "password", view{Title: "Change password", Error: "The new passwords do not match."})
	}
	l, err := c.d.Auth.ChangePassword(r.Context(), p, old, nw)
	if err != nil {
		class := fault.Classify(err)
		if class.HTTP >= 500 {
			return err
		}
		msg := fault.Message(class, err)
		if class.Code == fault.CodeUnauthenticated {
			msg = "The current password is wrong."
		}
		return c.render(ec, class.HTTP, "password", view{Title: "Change password", Error: msg})
	}
	setSession(ec, l)
	return redirectFlash(ec, Prefix+"/", "Password changed; your other sessions were ended.")
}

func (c *Console) logoutPost(ec echo.Context) error {
	p, _ := principal(ec)
	if err := c.d.Auth.Logout(ec.Request().Context(), p); err != nil {
		return err
	}
	ec.SetCookie(auth.ClearSessionCookie())
	return redirectFlash(ec, Prefix+"/login", "Signed out.")
}

func (c *Console) logoutAllPost(ec echo.Context) error {
	p, _ := principal(ec)
	if err := c.d.Auth.LogoutEverywhere(ec.Request().Context(), p); err != nil {
		return err
	}
	ec.SetCookie(auth.ClearSessionCookie())
	return redirectFlash(ec, Prefix+"/login", "Signed out of every session.")
}

func (c *Console) sessionsPage(ec echo.Context) error {
	p, _ := principal(ec)
	ss, err := c.d.Auth.Sessions(ec.Request().Context(), p)
	if err != nil {
		return err
	}
	return c.render(ec, http.StatusOK, "sessions", view{Title: "Your sessions", Nav: "sessions", Flash: flashOf(ec), Data: ss})
}

// qrURL marks the service's QR code data: URI as safe for an <img src>
// (html/template refuses data: URLs otherwise). Only a base64 PNG passes;
// anything else shows no image.
func qrURL(uri string) template.URL {
	const prefix = "data:image/png;base64,"
	rest, ok := strings.CutPrefix(uri, prefix)
	if !ok || strings.ContainsFunc(rest, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '+' || r == '/' || r == '=')
	}) {
		return ""
	}
	return template.URL(uri) //nolint:gosec // checked above: a base64 PNG
}

// recoveryCodesPost replaces the user's recovery codes (step-up) and shows
// the new ones once.
func (c *Console) recoveryCodesPost(ec echo.Context) error {
	p, _ := principal(ec)
	codes, err := c.d.Auth.RegenerateRecoveryCodes(ec.Request().Context(), p, "")
	if err != nil {
		return err
	}
	return c.render(ec, http.StatusOK, "codes", view{Title: "New recovery codes", Data: map[string]any{"Codes": codes, "Next": Prefix + "/sessions"}})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func trimFloat(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }
