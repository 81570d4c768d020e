package verify

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
)

var reportPriv = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))

// sampleReview is a small signed access review: two users, one token,
// two decided lines.
func sampleReview() AccessReview {
	r := AccessReview{
		Format: FormatReviewV1, ID: "rev_1", Tenant: "t_1", TenantName: "alpha",
		Appliance: Appliance{ID: "fiq-1", Version: "1.0.0"},
		StartedAt: "2026-11-27T14:00:05Z", StartedBy: Operator{ID: "u_a", Name: "admin", Role: "admin"},
		SignedAt: "2026-11-27T15:00:05Z", Reviewer: Operator{ID: "u_a", Name: "admin", Role: "admin"},
		UnusedDays: 90,
		Users: []ReviewUser{
			{ID: "u_a", Name: "admin", Role: "admin", TOTP: true, CreatedAt: "2026-01-01T00:00:00Z", LastLogin: "2026-11-27T14:00:05Z", Changes: []string{}},
			{ID: "u_o", Name: "op", Role: "operator", TOTP: true, CreatedAt: "2026-01-01T00:00:00Z", Changes: []string{"unused", "new"}},
		},
		Tokens:       []ReviewToken{{ID: "tok_1", Tenant: "t_1", Name: "ci", UserID: "u_o", UserName: "op", Role: "operator", Active: true, Changes: []string{"new"}}},
		Tickets:      []ReviewTicket{},
		Flags:        []ReviewFlag{},
		ScopeSigners: []ReviewKey{},
		NotTracked:   []string{"sensors"},
		Lines: []ReviewLine{
			{Item: "token:tok_1", Decision: DecisionRevoke, Effect: "revoke the token"},
			{Item: "user:u_o", Decision: DecisionKeep, Effect: "disable the user"},
		},
		Verification: Verification{Command: "firewalliq report verify review.json --pub report.pub"},
	}
	r.Summary = Summarize(r)
	return r
}

func TestVerifyReview(t *testing.T) {
	file, err := SignReview(sampleReview(), reportPriv)
	if err != nil {
		t.Fatal(err)
	}
	// No audit key needed: a review carries no proofs.
	res, err := Verify(file, Options{ReportKey: reportPub})
	if err != nil {
		t.Fatal(err)
	}
	if res.Kind != KindAccessReview || res.Review == nil || res.Review.Summary.Revoke != 1 || res.Review.Summary.NewUsers != 1 || res.Review.Summary.Unused != 1 {
		t.Fatalf("%+v", res)
	}
	bad := sampleReview()
	bad.Format = FormatV1
	if _, err := SignReview(bad, reportPriv); err == nil {
		t.Fatal("SignReview signed a body that is not a review")
	}
	tests := []struct {
		name string
		edit func(*AccessReview)
		want error
	}{
		{"line undecided", func(r *AccessReview) { r.Lines[0].Decision = "" }, ErrReview},
		{"unknown decision", func(r *AccessReview) { r.Lines[0].Decision = "maybe" }, ErrReview},
		{"line twice", func(r *AccessReview) { r.Lines[1].Item = r.Lines[0].Item }, ErrReview},
		{"summary wrong", func(r *AccessReview) { r.Summary.Revoke = 0 }, ErrReview},
		{"no reviewer", func(r *AccessReview) { r.Reviewer.ID = "" }, ErrReview},
		{"bad time", func(r *AccessReview) { r.SignedAt = "yesterday" }, ErrReview},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sampleReview()
			tt.edit(&r)
			if tt.name != "summary wrong" {
				// Keep the summary consistent, so only the edit fails.
				r.Summary = Summarize(r)
			}
			file, err := SignReview(r, reportPriv)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Verify(file, Options{ReportKey: reportPub}); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// FuzzVerifyReview: the verifier never panics on a mangled review, and
// whatever it accepts as a review is canonical and self-consistent.
func FuzzVerifyReview(f *testing.F) {
	good, err := SignReview(sampleReview(), reportPriv)
	if err != nil {
		f.Fatal(err)
	}
	// Seeds: a good review, truncated, a flipped byte, and a review-format
	// body with an empty signature.
	f.Add(good)
	f.Add(good[:len(good)/2])
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x01
	f.Add(flipped)
	f.Add([]byte(`{"report":{"format":"firewalliq.access-review/v1"},"signature":{"alg":"ed25519","key_id":"x","sig":""}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := Verify(b, Options{ReportKey: reportPub})
		if err != nil || res.Kind != KindAccessReview {
			return
		}
		body := bytes.TrimSuffix(b, []byte("\n"))
		if c, err := Canonical(body); err != nil || !bytes.Equal(c, body) {
			t.Fatal("accepted a non-canonical review")
		}
		if Summarize(*res.Review) != res.Review.Summary {
			t.Fatal("accepted an inconsistent review")
		}
	})
}
