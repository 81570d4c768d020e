package console

import (
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/scan"
)

// The scopes page's upload: a security lead registers a scope document
// signed offline (`firewalliq scope sign`) by uploading the file or pasting
// it, the same service call as `firewalliq scope register`. The service
// checks the signature against the tenant's registered keys, the safety
// profile and the validity window; the document's text is only ever shown
// escaped.

type scopesData struct {
	Scopes []scan.Scope
	// CanRegister says the user may register scopes (security leads of a
	// tenant).
	CanRegister bool
	// HeldKeys are the user's active keys the appliance holds (the sign
	// form's choice; none: no form). Sign is the form as last sent.
	HeldKeys []scan.SigningKey
	Sign     signForm
}

// scopeRegister registers the uploaded (field "document") or pasted
// (field "document_text") signed scope document.
func (c *Console) scopeRegister(ec echo.Context) error {
	if c.d.Scopes == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	r := ec.Request()
	doc, err := uploadedScope(r)
	if err != nil {
		return err
	}
	sc, err := c.d.Scopes.Register(r.Context(), p, "", doc)
	if err != nil {
		return err
	}
	return redirectFlash(ec, Prefix+"/scopes", "Scope "+sc.ID+" registered ("+sc.Environment+").")
}

// uploadedScope reads the signed document of a scope upload: the file if
// one was sent, else the pasted text; at most scan.MaxDocument bytes.
func uploadedScope(r *http.Request) ([]byte, error) {
	if fh, _, err := r.FormFile("document"); err == nil {
		defer fh.Close()
		b, err := io.ReadAll(io.LimitReader(fh, scan.MaxDocument+1))
		if err != nil {
			return nil, errInvalid("read the uploaded file")
		}
		if len(b) > 0 {
			return sizeChecked(b)
		}
	} else if !errors.Is(err, http.ErrMissingFile) && !errors.Is(err, http.ErrNotMultipart) {
		return nil, errInvalid("read the uploaded file")
	}
	text := strings.TrimSpace(r.PostFormValue("document_text"))
	if text == "" {
		return nil, errInvalid("choose the signed scope file or paste its text")
	}
	return sizeChecked([]byte(text))
}

func sizeChecked(b []byte) ([]byte, error) {
	if len(b) > scan.MaxDocument {
		return nil, errInvalid("the document is larger than 1 MiB")
	}
	return b, nil
}

// canRegisterScope says whether p may register scopes from the page.
func (c *Console) canRegisterScope(p auth.Principal) bool {
	return p.TenantID != "" && c.allowed(p.Role, auth.OpScopeRegister)
}
