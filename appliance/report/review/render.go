package review

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/go-pdf/fpdf"

	"firewalliq/appliance/report/verify"
)

//go:embed templates/review.html.tmpl
var templateFS embed.FS

// Renderer renders signed reviews. Its template is parsed once, when it is
// made, so a broken template fails at start-up.
type Renderer struct {
	html *template.Template
}

// NewRenderer parses the embedded template.
func NewRenderer() (*Renderer, error) {
	t, err := template.ParseFS(templateFS, "templates/review.html.tmpl")
	if err != nil {
		return nil, fmt.Errorf("review templates: %w", err)
	}
	return &Renderer{html: t}, nil
}

// View is what the renderings show.
type View struct {
	Review     verify.AccessReview
	Signature  verify.Signature
	FileSHA256 string
}

// ParseView reads a signed review file for display. It does not verify
// it: that is verify.Verify's job, and the renderings say how.
func ParseView(signed []byte) (View, error) {
	var f verify.File
	if err := json.Unmarshal(signed, &f); err != nil {
		return View{}, fmt.Errorf("render review: %w", err)
	}
	var r verify.AccessReview
	if err := json.Unmarshal(f.Report, &r); err != nil {
		return View{}, fmt.Errorf("render review: %w", err)
	}
	if r.Format != verify.FormatReviewV1 {
		return View{}, fmt.Errorf("render review: format %q is not an access review", r.Format)
	}
	sum := sha256.Sum256(signed)
	return View{Review: r, Signature: f.Signature, FileSHA256: hex.EncodeToString(sum[:])}, nil
}

// HTML writes the review as a self-contained page (no script).
func (rd *Renderer) HTML(w io.Writer, signed []byte) error {
	v, err := ParseView(signed)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := rd.html.Execute(&buf, v); err != nil {
		return fmt.Errorf("render review html: %w", err)
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// PDF writes the review as a PDF with the same sections as the HTML. Its
// dates are the review's, so equal reviews give equal bytes.
func (rd *Renderer) PDF(w io.Writer, signed []byte) error {
	v, err := ParseView(signed)
	if err != nil {
		return err
	}
	r := v.Review
	pdf := fpdf.New("L", "mm", "A4", "")
	at, err := time.Parse(time.RFC3339, r.SignedAt)
	if err != nil {
		at = time.Unix(0, 0).UTC()
	}
	pdf.SetCreationDate(at)
	pdf.SetModificationDate(at)
	pdf.SetCatalogSort(true)
	pdf.SetProducer("FirewallIQ Secure", false)
	pdf.SetTitle("Access review "+r.ID, false)
	pdf.SetAutoPageBreak(true, 12)
	pdf.SetMargins(12, 12, 12)
	// Core fonts are cp1252; every text passes through the translator.
	tr := pdf.UnicodeTranslatorFromDescriptor("")
	pdf.AddPage()
	h2 := func(s string) {
		if pdf.GetY() > 170 {
			pdf.AddPage()
		}
		pdf.Ln(3)
		pdf.SetFont("Helvetica", "B", 12)
		pdf.MultiCell(0, 6, tr(s), "", "L", false)
	}
	para := func(s string) {
		pdf.SetFont("Helvetica", "", 9)
		pdf.MultiCell(0, 4.5, tr(s), "", "L", false)
	}
	table := func(widths []float64, head []string, rows [][]string) {
		pdf.SetFont("Helvetica", "B", 8)
		pdf.SetFillColor(230, 230, 230)
		for i, hd := range head {
			pdf.CellFormat(widths[i], 5, tr(hd), "1", 0, "L", true, 0, "")
		}
		pdf.Ln(-1)
		pdf.SetFont("Helvetica", "", 8)
		if len(rows) == 0 {
			pdf.CellFormat(sum(widths), 5, "none", "1", 1, "L", false, 0, "")
		}
		for _, row := range rows {
			lines := 1
			for i, c := range row {
				lines = max(lines, len(pdf.SplitText(tr(c), widths[i]-2)))
			}
			hgt := float64(lines) * 4
			if pdf.GetY()+hgt > 198 {
				pdf.AddPage()
			}
			x, y := pdf.GetXY()
			for i, c := range row {
				pdf.Rect(x, y, widths[i], hgt, "D")
				pdf.SetXY(x+1, y)
				pdf.MultiCell(widths[i]-2, 4, tr(c), "", "L", false)
				x += widths[i]
			}
			pdf.SetXY(12, y+hgt)
		}
		pdf.Ln(2)
	}
	pdf.SetFont("Helvetica", "B", 16)
	pdf.MultiCell(0, 8, tr("Access review"), "", "L", false)
	of := "the appliance admins"
	if r.Tenant != "" {
		of = "tenant " + r.TenantName + " (" + r.Tenant + ")"
	}
	para(fmt.Sprintf("Review %s of %s, started %s by %s (%s), signed %s by %s (%s, %s) on appliance %s (version %s).",
		r.ID, of, r.StartedAt, r.StartedBy.Name, r.StartedBy.Role, r.SignedAt, r.Reviewer.Name, r.Reviewer.Role, r.Reviewer.ID, r.Appliance.ID, r.Appliance.Version))
	if p := r.Previous; p != nil {
		para(fmt.Sprintf("Changes are highlighted against review %s, signed %s (SHA-256 %s).", p.ID, p.SignedAt, p.SHA256))
	} else {
		para("This is the first review: no changes are highlighted.")
	}
	h2("Signature")
	para("Signed with Ed25519 by the appliance report key " + v.Signature.KeyID + ".")
	pdf.SetFont("Courier", "", 8)
	pdf.MultiCell(0, 4, "signature "+v.Signature.Sig+"\nSHA-256 of review.json "+v.FileSHA256, "", "L", false)
	para("Verify offline: " + r.Verification.Command + ". This PDF is a rendering; the signed document is review.json.")
	s := r.Summary
	h2("Summary")
	para(fmt.Sprintf("%d users (%d new, %d role changes, %d unused for %d days); %d API tokens (%d new); %d open support tickets; %d open review flags; %d lines: %d keep, %d revoke (applied when signed).",
		s.Users, s.NewUsers, s.RoleChanges, s.Unused, r.UnusedDays, s.Tokens, s.NewTokens, s.OpenTickets, s.Flags, s.Lines, s.Keep, s.Revoke))
	h2("Decisions")
	var rows [][]string
	for _, l := range r.Lines {
		rows = append(rows, []string{l.Item, l.Subject, strings.ToUpper(l.Decision), l.Effect, l.Note, l.DecidedAt + " by " + l.DecidedBy})
	}
	table([]float64{45, 70, 18, 55, 50, 35}, []string{"line", "subject", "decision", "if revoked", "note", "decided"}, rows)
	h2("Users")
	rows = nil
	for _, u := range r.Users {
		role := u.Role
		if u.PreviousRole != "" {
			role += " (was " + u.PreviousRole + ")"
		}
		mfa, state := "none", "enabled"
		if u.TOTP {
			mfa = "TOTP"
		}
		if u.SecurityKeys > 0 {
			mfa = fmt.Sprintf("%d key(s)", u.SecurityKeys)
			if u.TOTP {
				mfa = "TOTP + " + mfa
			}
		}
		if u.KeyRequired {
			mfa += " (key required)"
		}
		if u.Disabled {
			state = "disabled"
		}
		rows = append(rows, []string{u.Name + "\n" + u.ID, role, mfa, or(u.LastLogin, "never"), u.CreatedAt, state, strings.Join(u.Changes, ", ")})
	}
	table([]float64{55, 40, 18, 40, 40, 20, 60}, []string{"name", "role", "MFA", "last login", "created", "state", "changes"}, rows)
	h2("API tokens")
	rows = nil
	for _, t := range r.Tokens {
		state := "active"
		if !t.Active {
			state = "expired"
			if t.RevokedAt != "" {
				state = "revoked " + t.RevokedAt
			}
		}
		rows = append(rows, []string{t.Name + "\n" + t.ID, t.UserName, t.Role, t.CreatedAt, t.ExpiresAt, or(t.LastUsed, "never"), state, strings.Join(t.Changes, ", ")})
	}
	table([]float64{45, 30, 25, 35, 35, 35, 40, 28}, []string{"name", "owner", "role", "created", "expires", "last used", "state", "changes"}, rows)
	h2("Security keys")
	rows = nil
	for _, k := range r.SecurityKeys {
		state := "ok"
		if k.CloneWarning {
			state = "possibly cloned"
		}
		rows = append(rows, []string{k.Name + "\n" + k.ID, k.UserName, k.CreatedAt, or(k.LastUsed, "never"), state, strings.Join(k.Changes, ", ")})
	}
	table([]float64{60, 40, 40, 40, 35, 58}, []string{"name", "owner", "registered", "last used", "state", "changes"}, rows)
	h2("Support tickets")
	rows = nil
	for _, t := range r.Tickets {
		id := t.ID
		if t.Open {
			id += " (open)"
		}
		rows = append(rows, []string{id, t.SupportUser, t.OpenedBy, t.Reason, t.OpenedAt, t.ExpiresAt, t.ClosedAt})
	}
	table([]float64{40, 30, 30, 65, 35, 35, 38}, []string{"ticket", "support user", "opened by", "reason", "opened", "expires", "closed"}, rows)
	h2("Review flags (unapproved privileged grants)")
	rows = nil
	for _, f := range r.Flags {
		rows = append(rows, []string{f.ID, f.UserName, f.Role, f.GrantedBy, f.Reason, f.FlaggedAt})
	}
	table([]float64{40, 35, 30, 35, 95, 38}, []string{"flag", "user", "role", "granted by", "reason", "flagged"}, rows)
	h2("Scope-signing keys")
	rows = nil
	for _, k := range r.ScopeSigners {
		rows = append(rows, []string{k.KeyID, k.Source})
	}
	table([]float64{80, 193}, []string{"key id", "trusted through"}, rows)
	h2("Not covered by this review")
	for _, n := range r.NotTracked {
		para("- " + n)
	}
	var buf bytes.Buffer
	if err := pdf.Output(&buf); err != nil {
		return fmt.Errorf("render review pdf: %w", err)
	}
	_, err = w.Write(buf.Bytes())
	return err
}

func or(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

func sum(ws []float64) float64 {
	t := 0.0
	for _, w := range ws {
		t += w
	}
	return t
}
