package ui

import (
	"os"
	"strings"
	"testing"

	"firewalliq/appliance/fault"
)

// TestAPIDocCodes: docs/api.md names every error code the API can answer.
func TestAPIDocCodes(t *testing.T) {
	doc, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	codes := []string{fault.CodeInternal, fault.CodeTooLarge, fault.CodeRateLimited, fault.CodeInvalid, fault.CodeNotFound,
		fault.CodeUnauthenticated, fault.CodeMethodNotAllowed, fault.CodeStepUpRequired, fault.CodeUnsupportedMedia}
	for _, r := range fault.Rules() {
		codes = append(codes, r.Class.Code)
	}
	for _, c := range codes {
		if !strings.Contains(string(doc), "`"+c+"`") {
			t.Errorf("docs/api.md does not document error code %s", c)
		}
	}
}
