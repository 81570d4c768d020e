//go:build lab

package safety

import _ "embed"

// The lab high-cap profile, only for benchmarks in the network lab
// (`go test -tags lab`, `go build -tags lab`). It is signed with the
// development release key, so a lab build verifies only against that key and
// can never pass for a vendor-signed release.

//go:embed profile/lab.json
var embeddedProfile []byte

//go:embed profile/lab.json.sig
var embeddedSignature []byte

//go:embed profile/release.pub
var embeddedReleaseKey []byte

const embeddedName = "lab"
