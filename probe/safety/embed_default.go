//go:build !lab

package safety

import _ "embed"

// The production default profile. Packaging may replace these files before
// `go build` (docs/safety-profile.md); the release key must then match.

//go:embed profile/default.json
var embeddedProfile []byte

//go:embed profile/default.json.sig
var embeddedSignature []byte

//go:embed profile/release.pub
var embeddedReleaseKey []byte

const embeddedName = "default"
