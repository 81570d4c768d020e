package console

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/fault"
	"firewalliq/appliance/scan"
	"firewalliq/probe/scope"
)

// Signing a scope with a key the appliance holds: a security lead pastes
// (or uploads) an unsigned scope document, picks one of their held keys,
// steps up (TOTP or security key, the shared stepUp flow), and the page
// calls scan.Keys.Sign and then scan.Scopes.Register: the same two
// service calls as `POST /api/v1/scope-keys/{id}/sign` followed by
// `POST /api/v1/scopes`. Each writes its own audit entry (scope.sign,
// scope.register) in its own transaction; the pair is not atomic, so a
// registration refused after the signature leaves the scope.sign entry
// (and no scope), which the page says.

// signForm is what the sign form showed or was sent with: kept on a
// refusal so a corrected document need not be pasted again.
type signForm struct {
	Text  string
	KeyID string
}

// heldKeys are p's active keys the appliance holds: the ones Sign accepts.
func (c *Console) heldKeys(ec echo.Context, p auth.Principal) ([]scan.SigningKey, error) {
	if c.d.ScopeKeys == nil || p.TenantID == "" || !c.allowed(p.Role, auth.OpScopeSign) {
		return nil, nil
	}
	ks, err := c.d.ScopeKeys.List(ec.Request().Context(), p, "")
	if err != nil {
		if errors.Is(err, auth.ErrForbidden) {
			return nil, nil
		}
		return nil, err
	}
	var out []scan.SigningKey
	for _, k := range ks {
		if k.Held && k.State == scan.KeyActive && k.UserID == p.UserID {
			out = append(out, k)
		}
	}
	return out, nil
}

// scopeSign signs the pasted (field "document_text") or uploaded (field
// "document") unsigned scope document with the held key "key_id", after
// the user's step-up, and registers the signed envelope.
func (c *Console) scopeSign(ec echo.Context) error {
	if c.d.Scopes == nil || c.d.ScopeKeys == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	r := ec.Request()
	form := signForm{Text: r.PostFormValue("document_text"), KeyID: strings.TrimSpace(r.PostFormValue("key_id"))}
	raw, err := uploadedScope(r)
	if err != nil {
		return c.signRefused(ec, form, err)
	}
	// An uploaded file travels on as text: the step-up prompt re-posts
	// the form's fields, and a file input cannot be carried over.
	form.Text = string(raw)
	if r.PostForm != nil {
		r.PostForm.Set("document_text", form.Text)
	}
	if form.KeyID == "" {
		return c.signRefused(ec, form, errInvalid("choose the key to sign with"))
	}
	doc, err := scope.DecodeDocument(raw)
	if err != nil {
		return c.signRefused(ec, form, err)
	}
	signed, err := c.d.ScopeKeys.Sign(r.Context(), p, "", form.KeyID, doc, "")
	if err != nil {
		return c.signRefused(ec, form, err)
	}
	sc, err := c.d.Scopes.Register(r.Context(), p, "", signed)
	if err != nil {
		return c.signRefused(ec, form, &signedNotRegistered{err})
	}
	return redirectFlash(ec, Prefix+"/scopes", "Scope "+sc.ID+" signed with key "+form.KeyID+" and registered ("+sc.Environment+").")
}

// signedNotRegistered is a registration refused after the signature
// (audited as scope.sign) was made.
type signedNotRegistered struct{ err error }

func (e *signedNotRegistered) Error() string { return e.err.Error() }
func (e *signedNotRegistered) Unwrap() error { return e.err }

// signRefused shows the scopes page again with the refusal above the sign
// form and the document as it was sent. A step-up challenge, an ended
// session and internal failures go to the usual pages instead.
func (c *Console) signRefused(ec echo.Context, form signForm, err error) error {
	var su *auth.StepUpChallenge
	if errors.As(err, &su) {
		return err
	}
	class := fault.Classify(err)
	if class.Code == fault.CodeUnauthenticated || class.HTTP >= 500 {
		return err
	}
	msg := "The document was not signed: " + fault.Message(class, err)
	var snr *signedNotRegistered
	if errors.As(err, &snr) {
		msg = "The document was signed (audited as scope.sign) but not registered: " + fault.Message(class, err)
	}
	status := class.HTTP
	if errors.Is(err, scope.ErrInvalid) || errors.Is(err, auth.ErrInvalid) {
		status = http.StatusUnprocessableEntity
	}
	return c.showScopes(ec, status, msg, form)
}
