package console

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/auditlog"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/scan"
	"firewalliq/audit"
)

// auditData is one page of the audit log browser.
type auditData struct {
	Entries []audit.Entry
	// Action and Actor filter the page (prefix of the action, exact actor
	// name or id); After is this page's cursor, Next the following one's
	// (0 at the head).
	Action, Actor string
	After, Next   int64
	NextURL       string
	Checkpoint    *audit.Checkpoint
	RootB64       string
	Health        Health
	// Verified is the result of "Verify now" (a full verification of the
	// log as it is now), nil when not asked.
	Verified *audit.Report
	// CanVerify offers "Verify now" and the per-entry proofs.
	CanVerify bool
}

// auditPages bounds how many service pages one filtered console page
// reads, so a filter that matches rarely still answers quickly; the cursor
// then continues where the reading stopped.
const auditPages = 10

func (c *Console) auditPage(ec echo.Context) error {
	if c.d.Audit == nil {
		return errUnavailable
	}
	ctx := ec.Request().Context()
	p, _ := principal(ec)
	tenant, tenants, err := c.listTenant(ec, p)
	if err != nil {
		return err
	}
	after, err := cursorOf(ec)
	if err != nil {
		return err
	}
	action := strings.TrimSpace(ec.QueryParam("action"))
	actor := strings.TrimSpace(ec.QueryParam("actor"))
	if len(action) > 100 || len(actor) > 100 {
		return fmt.Errorf("filters are at most 100 characters: %w", auth.ErrInvalid)
	}
	d := auditData{Action: action, Actor: actor, After: after}
	cur, atHead := after, false
	for i := 0; i < auditPages && len(d.Entries) < 50; i++ {
		pg, err := c.d.Audit.Entries(ctx, p, tenant, cur, 50)
		if err != nil {
			return err
		}
		for _, e := range pg.Entries {
			cur = e.Seq
			if (action == "" || strings.HasPrefix(string(e.Action), action)) && (actor == "" || e.ActorName == actor || e.ActorID == actor) {
				d.Entries = append(d.Entries, e)
				if len(d.Entries) == 50 {
					break
				}
			}
		}
		if len(d.Entries) == 50 {
			break
		}
		if pg.Next == 0 {
			atHead = true
			break
		}
		cur = pg.Next
	}
	if atHead {
		cur = 0
	}
	d.Next = cur
	if d.Next != 0 {
		q := url.Values{"after": {fmt.Sprint(d.Next)}}
		for k, v := range map[string]string{"action": action, "actor": actor, "tenant": tenant} {
			if v != "" {
				q.Set(k, v)
			}
		}
		d.NextURL = Prefix + "/audit?" + q.Encode()
	}
	if cp, err := c.d.Audit.Checkpoint(ctx, p); err == nil {
		d.Checkpoint = &cp
		d.RootB64 = base64.StdEncoding.EncodeToString(cp.Root[:])
	}
	d.CanVerify = c.allowed(p.Role, auth.OpAuditRead)
	if ec.QueryParam("verify") == "1" {
		rep, err := c.d.Audit.Verify(ctx, p)
		if err != nil {
			return err
		}
		d.Verified = &rep
	}
	v := view{Title: "Audit log", Nav: "audit", Tenant: tenant, Tenants: tenants}
	if h, err := c.d.Health(ctx); err == nil {
		d.Health, v.health = h, &h
	}
	v.Data = d
	return c.render(ec, http.StatusOK, "audit", v)
}

// auditProofData is an entry's inclusion proof page.
type auditProofData struct {
	Seq int64
	// Proof is nil when the entry is newer than the latest checkpoint
	// (Pending says so).
	Proof   *audit.InclusionProof
	Pending bool
	Hashes  []string
	Tenant  string
}

// auditProofPage shows entry seq's inclusion proof in the latest signed
// checkpoint's tree, checked by the service with the audit public key;
// ?download=1 answers the proof's JSON, which `firewalliq audit
// verify-proof` checks offline.
func (c *Console) auditProofPage(ec echo.Context) error {
	if c.d.Audit == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	seq, err := strconv.ParseInt(ec.Param("seq"), 10, 64)
	if err != nil || seq < 1 {
		return fmt.Errorf("entry numbers are whole numbers from 1: %w", auth.ErrInvalid)
	}
	tenant := ""
	if p.ApplianceAdmin() {
		tenant = ec.QueryParam("tenant")
	}
	d := auditProofData{Seq: seq, Tenant: tenant}
	proof, err := c.d.Audit.Prove(ec.Request().Context(), p, tenant, seq)
	switch {
	case errors.Is(err, auditlog.ErrNotCovered):
		d.Pending = true
	case err != nil:
		return err
	default:
		d.Proof = &proof
		for _, h := range proof.Proof {
			d.Hashes = append(d.Hashes, base64.StdEncoding.EncodeToString(h[:]))
		}
	}
	if d.Proof != nil && ec.QueryParam("download") == "1" {
		b, err := json.MarshalIndent(proof, "", "  ")
		if err != nil {
			return err
		}
		ec.Response().Header().Set(echo.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="audit-proof-%d.json"`, seq))
		return ec.Blob(http.StatusOK, "application/json", append(b, '\n'))
	}
	return c.render(ec, http.StatusOK, "auditproof", view{Title: fmt.Sprintf("Audit entry %d: inclusion proof", seq), Nav: "audit", Data: d})
}

// --- scopes ---

func (c *Console) scopesPage(ec echo.Context) error {
	return c.showScopes(ec, http.StatusOK, "", signForm{})
}

// showScopes renders the scopes page with status, a refusal to show
// (problem) and the sign form as it was sent (scopesign.go).
func (c *Console) showScopes(ec echo.Context, status int, problem string, form signForm) error {
	if c.d.Scopes == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	var tenant string
	var tenants []tenantOption
	var err error
	if ec.Request().Method == http.MethodGet {
		tenant, tenants, err = c.tenantFor(ec, p)
		if err != nil {
			return err
		}
	}
	ss, err := c.d.Scopes.List(ec.Request().Context(), p, tenant)
	if err != nil {
		return err
	}
	held, err := c.heldKeys(ec, p)
	if err != nil {
		return err
	}
	return c.render(ec, status, "scopes", view{Title: "Scopes", Nav: "scopes", Flash: flashOf(ec), Error: problem, Tenant: tenant, Tenants: tenants,
		Data: scopesData{Scopes: ss, CanRegister: c.canRegisterScope(p), HeldKeys: held, Sign: form}})
}

type scopeData struct {
	Scope scan.Scope
	// Document is the signed envelope, indented for reading.
	Document string
}

func (c *Console) scopePage(ec echo.Context) error {
	if c.d.Scopes == nil {
		return errUnavailable
	}
	p, _ := principal(ec)
	tenant, _, err := c.tenantFor(ec, p)
	if err != nil {
		return err
	}
	sc, err := c.d.Scopes.Get(ec.Request().Context(), p, tenant, ec.Param("id"))
	if err != nil {
		return err
	}
	return c.render(ec, http.StatusOK, "scope", view{Title: "Scope " + sc.Name, Nav: "scopes", Tenant: tenant, Data: scopeData{Scope: sc, Document: indent(sc.Document)}})
}

// indent pretty-prints a JSON document for reading; anything else is
// shown as it is (escaped by the template either way).
func indent(doc []byte) string {
	var b bytes.Buffer
	if err := json.Indent(&b, doc, "", "  "); err != nil {
		return string(doc)
	}
	return b.String()
}
