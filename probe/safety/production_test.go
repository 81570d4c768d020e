package safety

import (
	"errors"
	"os"
	"testing"

	"firewalliq/probe/keys"
)

// TestProductionModeRefusesDevelopmentSignedOrLab is the regression test of
// "Production mode accepts a development-signed profile": the embedded
// profile of a repository build is signed by the development key and must
// be refused; the same bytes signed by another (release) key pass, unless
// the build is a lab build.
func TestProductionModeRefusesDevelopmentSignedOrLab(t *testing.T) {
	embedded, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("profile/default.json")
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	release, err := Verify(data, Sign(data, priv), pub)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		p          Profile
		lab        bool
		wantSigner string
		refused    bool
	}{
		{name: "development-signed embedded profile", p: embedded, wantSigner: SignerDevelopment, refused: true},
		{name: "release-signed profile", p: release, wantSigner: SignerRelease},
		{name: "release-signed profile in a lab build", p: release, lab: true, wantSigner: SignerRelease, refused: true},
		{name: "development-signed lab build", p: embedded, lab: true, wantSigner: SignerDevelopment, refused: true},
		{name: "unverified zero profile", p: Profile{}, wantSigner: SignerRelease, refused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.p.keyID != "" && tt.p.Signer() != tt.wantSigner {
				t.Fatalf("Signer() = %q, want %q", tt.p.Signer(), tt.wantSigner)
			}
			err := checkProduction(tt.p, tt.lab)
			if tt.refused != (err != nil) {
				t.Fatalf("checkProduction = %v, refused want %v", err, tt.refused)
			}
			if err != nil && !errors.Is(err, ErrNotProductionBuild) {
				t.Fatalf("error %v does not wrap ErrNotProductionBuild", err)
			}
		})
	}
	// This build (development key; the lab tag has its own test) is refused.
	if err := CheckProduction(embedded); !errors.Is(err, ErrNotProductionBuild) {
		t.Fatalf("CheckProduction(embedded) = %v", err)
	}
	if release.KeyID() != keys.ID(pub) {
		t.Fatalf("release key id %s, want %s", release.KeyID(), keys.ID(pub))
	}
}
