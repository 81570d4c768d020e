//go:build lab

package safety

import (
	"errors"
	"testing"
)

// TestLabBuildRefusedInProduction runs only in a lab build
// (go test -tags lab ./probe/safety -run TestLabBuildRefusedInProduction):
// the lab profile never passes the production check, whoever signed it.
func TestLabBuildRefusedInProduction(t *testing.T) {
	p, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if !LabBuild() || EmbeddedName() != "lab" {
		t.Fatalf("LabBuild() = %v, embedded %q", LabBuild(), EmbeddedName())
	}
	if err := CheckProduction(p); !errors.Is(err, ErrNotProductionBuild) {
		t.Fatalf("CheckProduction(lab) = %v", err)
	}
}
