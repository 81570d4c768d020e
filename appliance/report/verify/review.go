package verify

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// FormatReviewV1 is the format of a signed access review: the second kind
// of document this package verifies. It travels in the same envelope as a
// compliance report ({"report":...,"signature":...}), signed by the same
// report key, so one command verifies both.
const FormatReviewV1 = "firewalliq.access-review/v1"

// Document kinds, as Result.Kind reports them.
const (
	KindComplianceReport = "compliance-report"
	// KindCombinedReport is a compliance report combining several scans
	// (Result.Combined is set).
	KindCombinedReport = "combined-compliance-report"
	KindAccessReview   = "access-review"
)

// ErrReview means a signed access review is internally inconsistent: a
// line without a valid decision, a line listed twice, or a summary that
// does not count what the review lists. (A changed byte fails the
// signature first; this catches a review signed wrongly.)
var ErrReview = errors.New("access review is inconsistent")

// Decisions a reviewer makes on a line.
const (
	DecisionKeep   = "keep"
	DecisionRevoke = "revoke"
)

// AccessReview is the signed body of an access review: a snapshot of who
// can do what in one tenant (or, with Tenant "", of the appliance admins),
// the changes since the previous review, and the reviewer's decision on
// every line. Times are RFC 3339, UTC; "" means never or not applicable.
type AccessReview struct {
	Format string `json:"format"`
	ID     string `json:"id"`
	// Tenant is the reviewed tenant's id, "" for the appliance-admin
	// review; TenantName its name.
	Tenant     string    `json:"tenant"`
	TenantName string    `json:"tenant_name"`
	Appliance  Appliance `json:"appliance"`
	StartedAt  string    `json:"started_at"`
	StartedBy  Operator  `json:"started_by"`
	SignedAt   string    `json:"signed_at"`
	Reviewer   Operator  `json:"reviewer"`
	// Previous is the review this one compares with; nil for the first.
	Previous *ReviewRef `json:"previous"`
	// UnusedDays is the threshold after which an account without a login
	// is highlighted as unused.
	UnusedDays   int            `json:"unused_days"`
	Users        []ReviewUser   `json:"users"`
	Tokens       []ReviewToken  `json:"tokens"`
	Tickets      []ReviewTicket `json:"support_tickets"`
	Flags        []ReviewFlag   `json:"review_flags"`
	ScopeSigners []ReviewKey    `json:"scope_signers"`
	// SecurityKeys are the users' registered security keys (WebAuthn);
	// omitted when none is registered, so reviews without keys encode
	// as before.
	SecurityKeys []ReviewSecurityKey `json:"security_keys,omitempty"`
	// NotTracked names what this appliance cannot list yet (security keys,
	// sensors...), so a reader knows the review does not cover it.
	NotTracked   []string      `json:"not_tracked"`
	Lines        []ReviewLine  `json:"lines"`
	Summary      ReviewSummary `json:"summary"`
	Verification Verification  `json:"verification"`
}

// ReviewRef names a previous signed review.
type ReviewRef struct {
	ID       string `json:"id"`
	SignedAt string `json:"signed_at"`
	SHA256   string `json:"sha256"`
}

// ReviewUser is one account. Changes highlight what differs from the
// previous review: "new", "role-changed", "unused", "no-mfa".
type ReviewUser struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Role         string `json:"role"`
	PreviousRole string `json:"previous_role"`
	Disabled     bool   `json:"disabled"`
	TOTP         bool   `json:"totp"`
	// SecurityKeys counts the user's registered security keys; KeyRequired
	// says the user's role must use one (TOTP refused). Omitted when 0 or
	// false.
	SecurityKeys int      `json:"security_keys,omitempty"`
	KeyRequired  bool     `json:"key_required,omitempty"`
	CreatedAt    string   `json:"created_at"`
	LastLogin    string   `json:"last_login"`
	Changes      []string `json:"changes"`
}

// ReviewToken is one API token; Changes may hold "new" and "unused".
type ReviewToken struct {
	ID        string   `json:"id"`
	Tenant    string   `json:"tenant"`
	Name      string   `json:"name"`
	UserID    string   `json:"user_id"`
	UserName  string   `json:"user_name"`
	Role      string   `json:"role"`
	CreatedAt string   `json:"created_at"`
	ExpiresAt string   `json:"expires_at"`
	RevokedAt string   `json:"revoked_at"`
	LastUsed  string   `json:"last_used"`
	Active    bool     `json:"active"`
	Changes   []string `json:"changes"`
}

// ReviewTicket is one support ticket, open or past.
type ReviewTicket struct {
	ID          string `json:"id"`
	SupportUser string `json:"support_user"`
	OpenedBy    string `json:"opened_by"`
	Reason      string `json:"reason"`
	OpenedAt    string `json:"opened_at"`
	ExpiresAt   string `json:"expires_at"`
	ClosedAt    string `json:"closed_at"`
	Open        bool   `json:"open"`
}

// ReviewFlag is an open access-review flag: a privileged role granted
// without a second admin's approval.
type ReviewFlag struct {
	ID        string `json:"id"`
	UserID    string `json:"user_id"`
	UserName  string `json:"user_name"`
	Role      string `json:"role"`
	GrantedBy string `json:"granted_by"`
	Reason    string `json:"reason"`
	FlaggedAt string `json:"flagged_at"`
}

// ReviewSecurityKey is one registered security key: whose, when
// registered and last used, and whether its signature counter ever went
// backwards (CloneWarning). Changes may hold "new" and "unused".
type ReviewSecurityKey struct {
	ID           string   `json:"id"`
	UserID       string   `json:"user_id"`
	UserName     string   `json:"user_name"`
	Name         string   `json:"name"`
	CreatedAt    string   `json:"created_at"`
	LastUsed     string   `json:"last_used"`
	CloneWarning bool     `json:"clone_warning"`
	Changes      []string `json:"changes"`
}

// ReviewKey is a key trusted to sign scope documents, and where the trust
// comes from.
type ReviewKey struct {
	KeyID  string `json:"key_id"`
	Source string `json:"source"`
}

// ReviewLine is one decision: Item names what is decided ("user:ID",
// "token:ID", "ticket:ID", "flag:ID", "securitykey:ID"), Effect what
// revoke does.
type ReviewLine struct {
	Item      string `json:"item"`
	Subject   string `json:"subject"`
	Effect    string `json:"effect"`
	Decision  string `json:"decision"`
	Note      string `json:"note"`
	DecidedBy string `json:"decided_by"`
	DecidedAt string `json:"decided_at"`
}

// ReviewSummary counts what the review lists and decides.
type ReviewSummary struct {
	Users       int `json:"users"`
	Tokens      int `json:"tokens"`
	OpenTickets int `json:"open_tickets"`
	Flags       int `json:"flags"`
	Lines       int `json:"lines"`
	Keep        int `json:"keep"`
	Revoke      int `json:"revoke"`
	NewUsers    int `json:"new_users"`
	RoleChanges int `json:"role_changes"`
	NewTokens   int `json:"new_tokens"`
	Unused      int `json:"unused"`
}

// Summarize counts r's lists and decisions: what Summary must hold.
func Summarize(r AccessReview) ReviewSummary {
	s := ReviewSummary{Users: len(r.Users), Tokens: len(r.Tokens), Flags: len(r.Flags), Lines: len(r.Lines)}
	for _, t := range r.Tickets {
		if t.Open {
			s.OpenTickets++
		}
	}
	for _, l := range r.Lines {
		switch l.Decision {
		case DecisionKeep:
			s.Keep++
		case DecisionRevoke:
			s.Revoke++
		}
	}
	for _, u := range r.Users {
		for _, c := range u.Changes {
			switch c {
			case "new":
				s.NewUsers++
			case "role-changed":
				s.RoleChanges++
			case "unused":
				s.Unused++
			}
		}
	}
	for _, t := range r.Tokens {
		for _, c := range t.Changes {
			if c == "new" {
				s.NewTokens++
			}
		}
	}
	return s
}

// SignReview encodes r in canonical form and signs it with priv, in the
// same envelope as a report.
func SignReview(r AccessReview, priv ed25519.PrivateKey) ([]byte, error) {
	if r.Format != FormatReviewV1 {
		return nil, fmt.Errorf("sign review: format %q", r.Format)
	}
	body, err := Marshal(r)
	if err != nil {
		return nil, err
	}
	return signBody(body, priv)
}

// checkReview decodes and checks a signed review's body (its signature
// already verified).
func checkReview(body []byte) (AccessReview, error) {
	var r AccessReview
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("%w: access review: %v", ErrFormat, err)
	}
	if r.ID == "" || r.Reviewer.ID == "" {
		return r, fmt.Errorf("%w: no id or reviewer", ErrReview)
	}
	for _, ts := range []string{r.StartedAt, r.SignedAt} {
		if _, err := time.Parse(time.RFC3339, ts); err != nil {
			return r, fmt.Errorf("%w: time %q: %v", ErrReview, ts, err)
		}
	}
	seen := map[string]bool{}
	for i, l := range r.Lines {
		if l.Item == "" || seen[l.Item] {
			return r, fmt.Errorf("%w: line %d %q empty or listed twice", ErrReview, i, l.Item)
		}
		seen[l.Item] = true
		if l.Decision != DecisionKeep && l.Decision != DecisionRevoke {
			return r, fmt.Errorf("%w: line %q has no keep or revoke decision", ErrReview, l.Item)
		}
	}
	if Summarize(r) != r.Summary {
		return r, fmt.Errorf("%w: the summary does not count the review's lines", ErrReview)
	}
	return r, nil
}

// KindOf says which kind of document data claims to be, from its format
// member alone, without verifying anything: KindAccessReview for an
// access review, KindComplianceReport otherwise. A tool uses it to ask
// for the keys that kind needs; Verify decides.
func KindOf(data []byte) string {
	var f struct {
		Report struct {
			Format string `json:"format"`
		} `json:"report"`
	}
	if json.Unmarshal(data, &f) == nil && f.Report.Format == FormatReviewV1 {
		return KindAccessReview
	}
	return KindComplianceReport
}
