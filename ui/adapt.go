package ui

import (
	"context"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auth"
)

// Most read handlers are one service call of the same shape: the request's
// context, the caller, the tenant it names (?tenant=, which the service
// honours for appliance admins only) and usually the route's :id go in;
// the value that comes back is answered as JSON, an error goes to the one
// error handler. The helpers below write that shape once, so a handler
// names only the method it calls and how its answer looks. They add
// nothing else: authorisation, step-up and the audit entry stay in the
// service (the one door).

// idCall is a service method on the object a route's :id names.
type idCall[T any] func(ctx context.Context, p auth.Principal, tenant, id string) (T, error)

// listCall is a service method listing what a tenant holds.
type listCall[T any] func(ctx context.Context, p auth.Principal, tenant string) ([]T, error)

// docCall renders the document a route's :id names in a format; it returns
// the bytes and their media type.
type docCall func(ctx context.Context, p auth.Principal, tenant, id, format string) ([]byte, string, error)

// asIs answers a service's value unchanged (for sendByID and sendPage).
func asIs[T any](v T) T { return v }

// sendByID answers, with 200, what call returns for the route's :id,
// shaped for the API by out.
func sendByID[T, O any](c echo.Context, call idCall[T], out func(T) O) error {
	v, err := call(c.Request().Context(), principal(c), tenantParam(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out(v))
}

// sendPage answers one page (?limit=, ?after=) of what call lists, each
// item shaped by out and keyed for the cursor by key. The page parameters
// are read first, so a bad cursor is refused before the service is asked.
func sendPage[T, O any](c echo.Context, call listCall[T], out func(T) O, key func(O) string) error {
	pg, err := pageOf(c)
	if err != nil {
		return err
	}
	vs, err := call(c.Request().Context(), principal(c), tenantParam(c))
	if err != nil {
		return err
	}
	items := make([]O, 0, len(vs))
	for _, v := range vs {
		items = append(items, out(v))
	}
	return c.JSON(http.StatusOK, paginate(items, key, pg))
}

// sendDocument answers call's rendering of the route's :id in format as an
// attachment named name-<id>.<ext> (.json when ext is ""). The id is one
// the service accepted, so it holds no quotes or slashes.
func sendDocument(c echo.Context, call docCall, format, name, ext string) error {
	b, ct, err := call(c.Request().Context(), principal(c), tenantParam(c), c.Param("id"), format)
	if err != nil {
		return err
	}
	if ext == "" {
		ext = "json"
	}
	c.Response().Header().Set("Content-Disposition", `attachment; filename="`+name+"-"+c.Param("id")+"."+ext+`"`)
	return c.Blob(http.StatusOK, ct, b)
}

// download is sendDocument for the documents whose file name keeps the
// ?format= asked for (signed reports and reviews: json, html, pdf).
func download(c echo.Context, call docCall, name string) error {
	format := c.QueryParam("format")
	// The services take the format in any case; the file's extension is
	// its lower-case form.
	return sendDocument(c, call, format, name, strings.ToLower(format))
}
