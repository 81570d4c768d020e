package console

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/report/review"
)

// The access-review pages (appliance/report/review): the reviews of the
// user's own tenant (for an appliance admin, the appliance-admin review),
// starting one, keep or revoke decisions on every line, signing (step-up;
// the revocations take effect then) and the signed document's downloads.

type reviewsData struct {
	Reviews  []review.Review
	CanStart bool
}

func (c *Console) reviewsPage(ec echo.Context) error {
	if c.d.Reviews == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	rs, err := c.d.Reviews.List(ec.Request().Context(), p, "")
	if err != nil {
		return err
	}
	return c.render(ec, http.StatusOK, "reviews", view{Title: "Access reviews", Nav: "reviews", Flash: flashOf(ec),
		Data: reviewsData{Reviews: rs, CanStart: c.allowed(p.Role, auth.OpReviewStart)}})
}

func (c *Console) reviewStart(ec echo.Context) error {
	if c.d.Reviews == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	r, err := c.d.Reviews.Start(ec.Request().Context(), p, "")
	if err != nil {
		return err
	}
	return redirectFlash(ec, Prefix+"/reviews/"+url.PathEscape(r.ID), "Access review started: decide keep or revoke on every line, then sign.")
}

type reviewData struct {
	Review review.Review
	// Open says decisions and signing are possible; CanDecide and
	// CanSign what the viewer's role allows.
	Open, CanDecide, CanSign bool
}

func (c *Console) reviewPage(ec echo.Context) error {
	if c.d.Reviews == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	r, err := c.d.Reviews.Show(ec.Request().Context(), p, "", ec.Param("id"))
	if err != nil {
		return err
	}
	open := r.SignedAt.IsZero()
	return c.render(ec, http.StatusOK, "review", view{Title: "Access review " + r.ID, Nav: "reviews", Flash: flashOf(ec),
		Data: reviewData{Review: r, Open: open, CanDecide: open && c.allowed(p.Role, auth.OpReviewDecide), CanSign: open && c.allowed(p.Role, auth.OpReviewSign)}})
}

// reviewDecide records the form's decisions: a field "d:ITEM" (keep or
// revoke) per decided line with its note in "n:ITEM"; lines left blank
// are not sent.
func (c *Console) reviewDecide(ec echo.Context) error {
	if c.d.Reviews == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	r := ec.Request()
	if err := r.ParseForm(); err != nil {
		return errInvalid("the form could not be read")
	}
	var ds []review.Decision
	for k, vs := range r.PostForm {
		item, ok := strings.CutPrefix(k, "d:")
		if !ok || len(vs) == 0 || vs[0] == "" {
			continue
		}
		ds = append(ds, review.Decision{Item: item, Decision: vs[0], Note: strings.TrimSpace(r.PostFormValue("n:" + item))})
	}
	if len(ds) == 0 {
		return errInvalid("mark at least one line keep or revoke")
	}
	rv, err := c.d.Reviews.Decide(r.Context(), p, "", ec.Param("id"), ds)
	if err != nil {
		return err
	}
	flash := "Decisions recorded."
	if len(rv.Undecided) > 0 {
		flash += " Lines still undecided: " + strings.Join(rv.Undecided, ", ") + "."
	}
	return redirectFlash(ec, Prefix+"/reviews/"+url.PathEscape(rv.ID), flash)
}

func (c *Console) reviewSign(ec echo.Context) error {
	if c.d.Reviews == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	s, err := c.d.Reviews.Sign(ec.Request().Context(), p, "", ec.Param("id"), "")
	if err != nil {
		return err
	}
	return redirectFlash(ec, Prefix+"/reviews/"+url.PathEscape(s.ID), "Review signed (SHA-256 "+s.SHA256+"); the revocations took effect.")
}

// reviewDownload serves the signed review as json, html or pdf, always as
// an attachment: the rendered HTML carries its own styles, which the
// console's CSP would block if shown as a page.
func (c *Console) reviewDownload(ec echo.Context) error {
	if c.d.Reviews == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	format := ec.Param("format")
	switch format {
	case "json", "html", "pdf":
	default:
		return errPageNotFound
	}
	id := ec.Param("id")
	b, media, err := c.d.Reviews.Download(ec.Request().Context(), p, "", id, format)
	if err != nil {
		return err
	}
	ec.Response().Header().Set("Content-Disposition", `attachment; filename="review-`+strings.Map(safeName, id)+`.`+format+`"`)
	return ec.Blob(http.StatusOK, media, b)
}

// safeName keeps a file name's characters to letters, digits, '-' and '_'.
func safeName(r rune) rune {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
		return r
	}
	return '_'
}
