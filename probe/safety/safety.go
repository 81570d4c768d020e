// Package safety holds the compiled-in, signed safety profile: the packet-rate
// caps, concurrency and target limits and the probe kinds that this binary
// will never exceed.
//
// The profile bytes, their Ed25519 signature and the release public key are
// embedded with go:embed (see embed_default.go and embed_lab.go). Load
// verifies them every time it is called; there is deliberately no way to
// construct a verified Profile from a flag, an environment variable, a
// configuration key or an API call, because a cap that can be raised at run
// time is not a cap. Packaging swaps the embedded files before `go build`
// (docs/safety-profile.md), so a vendor's release key never has to enter the
// repository.
package safety

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"unicode/utf8"

	"firewalliq/probe/keys"

	"firewalliq/probe/internal/strictjson"
)

// Kind identifies a probe kind. The set is closed: AllKinds lists every kind
// the binary contains, and nothing else can be sent.
type Kind string

// The closed list of probe kinds (DESIGN.md, "No offensive primitives").
const (
	// KindTCPSyn sends one SYN and reads SYN-ACK, RST or ICMP; it never
	// completes the handshake.
	KindTCPSyn Kind = "tcp-syn"
	// KindTCPConnect completes a TCP handshake through the kernel and closes.
	KindTCPConnect Kind = "tcp-connect"
	// KindUDP sends one benign UDP payload from UDPPayloads.
	KindUDP Kind = "udp"
	// KindICMPEcho sends one ICMP or ICMPv6 echo request.
	KindICMPEcho Kind = "icmp-echo"
	// KindTLSHello sends a TLS ClientHello, reads the server's handshake,
	// then closes.
	KindTLSHello Kind = "tls-hello"
	// KindBanner connects and reads what the server volunteers, sending
	// nothing.
	KindBanner Kind = "banner"
)

// The closed list of UDP payload templates a profile may allow.
const (
	// PayloadEmpty is a zero-length UDP datagram.
	PayloadEmpty = "empty"
	// PayloadDNSQuery is a standard DNS query for a fixed name.
	PayloadDNSQuery = "dns-query"
	// PayloadNTPClient is an NTP client mode request.
	PayloadNTPClient = "ntp-client"
)

// AllKinds returns the closed list of probe kinds, in a fixed order. It
// returns a new slice each time so no caller can change the list.
func AllKinds() []Kind {
	return []Kind{KindTCPSyn, KindTCPConnect, KindUDP, KindICMPEcho, KindTLSHello, KindBanner}
}

// AllUDPPayloads returns the closed list of UDP payload templates.
func AllUDPPayloads() []string {
	return []string{PayloadEmpty, PayloadDNSQuery, PayloadNTPClient}
}

// Errors returned by this package.
var (
	// ErrUnknownKind means a probe kind is not on the closed list.
	ErrUnknownKind = errors.New("unknown probe kind")
	// ErrSignature means the profile's signature does not verify against
	// the release key.
	ErrSignature = errors.New("safety profile signature does not verify")
	// ErrInvalid means the profile verified but its content is malformed.
	ErrInvalid = errors.New("invalid safety profile")
)

// ParseKind parses a probe kind identifier exactly (case-sensitive, no
// surrounding space), because identifiers are compared as bytes everywhere.
func ParseKind(s string) (Kind, error) {
	for _, k := range AllKinds() {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("%w %q (want one of tcp-syn, tcp-connect, udp, icmp-echo, tls-hello, banner)", ErrUnknownKind, s)
}

// Profile is a verified safety profile. The zero value allows nothing. Only
// Load and Verify return one with its hash set.
type Profile struct {
	ID                 string   `json:"id"`
	Version            int      `json:"version"`
	GlobalPPS          int      `json:"global_pps"`           // packets per second, whole appliance
	PerHostPPS         int      `json:"per_host_pps"`         // packets per second to one destination address
	MaxConcurrentScans int      `json:"max_concurrent_scans"` // scans running at once
	MaxTargets         int      `json:"max_targets"`          // max addresses in one scan
	ProbeKinds         []Kind   `json:"probe_kinds"`          // allowed kinds
	UDPPayloads        []string `json:"udp_payloads"`         // allowed UDP payload templates

	raw   []byte // the exact signed bytes
	keyID string // id of the key that verified raw
}

// SHA256 returns the lower-case hex SHA-256 of the exact profile bytes that
// were verified. Jobs and evidence name a profile by this hash.
func (p Profile) SHA256() string {
	sum := sha256.Sum256(p.raw)
	return hex.EncodeToString(sum[:])
}

// Bytes returns a copy of the exact profile bytes that were verified, for
// evidence bundles.
func (p Profile) Bytes() []byte { return bytes.Clone(p.raw) }

// KeyID returns the id (probe/keys.ID) of the release key that verified the
// profile.
func (p Profile) KeyID() string { return p.keyID }

// Allows reports whether the profile allows probe kind k.
func (p Profile) Allows(k Kind) bool { return slices.Contains(p.ProbeKinds, k) }

// AllowsPayload reports whether the profile allows UDP payload template t.
func (p Profile) AllowsPayload(t string) bool { return slices.Contains(p.UDPPayloads, t) }

// signingContext is prepended to the profile bytes before signing, so a
// release-key signature over a profile can never be replayed as a signature
// over anything else (a scope, a job, a report) and vice versa.
const signingContext = "firewalliq safety profile v1\n"

// Sign returns the signature file content for profile data: the standard
// base64 of the Ed25519 signature over signingContext+data, and a newline.
// It is used by the packaging tool and the development re-signing test.
func Sign(data []byte, priv ed25519.PrivateKey) []byte {
	sig := ed25519.Sign(priv, append([]byte(signingContext), data...))
	return []byte(base64.StdEncoding.EncodeToString(sig) + "\n")
}

// Verify checks sigFile (as written by Sign) over data with pub and, if it
// verifies, parses and validates the profile. Nothing is parsed before the
// signature verifies.
func Verify(data, sigFile []byte, pub ed25519.PublicKey) (Profile, error) {
	if len(pub) != ed25519.PublicKeySize {
		return Profile{}, fmt.Errorf("%w: release public key has %d bytes", ErrSignature, len(pub))
	}
	sigText := bytes.TrimSuffix(sigFile, []byte("\n"))
	sig, err := base64.StdEncoding.Strict().DecodeString(string(sigText))
	if err != nil || len(sig) != ed25519.SignatureSize {
		return Profile{}, fmt.Errorf("%w: signature file is not one base64 Ed25519 signature", ErrSignature)
	}
	if !ed25519.Verify(pub, append([]byte(signingContext), data...), sig) {
		return Profile{}, fmt.Errorf("%w (release key %s)", ErrSignature, keys.ID(pub))
	}
	p, err := parse(data)
	if err != nil {
		return Profile{}, err
	}
	p.raw = bytes.Clone(data)
	p.keyID = keys.ID(pub)
	return p, nil
}

// Load verifies the embedded profile against the embedded signature and the
// compiled-in release public key. It is cheap (one Ed25519 verification) and
// has no inputs, so nothing outside the binary can influence the result.
func Load() (Profile, error) {
	pub, err := ReleaseKey()
	if err != nil {
		return Profile{}, err
	}
	p, err := Verify(embeddedProfile, embeddedSignature, pub)
	if err != nil {
		return Profile{}, fmt.Errorf("embedded profile %s: %w", embeddedName, err)
	}
	return p, nil
}

// ReleaseKey returns the compiled-in release public key.
func ReleaseKey() (ed25519.PublicKey, error) {
	pub, err := keys.ParsePublic(embeddedReleaseKey)
	if err != nil {
		return nil, fmt.Errorf("%w: compiled-in release key: %v", ErrSignature, err)
	}
	return pub, nil
}

// DevelopmentKeyID is the key id of the development release key committed in
// probe/safety/devkey. A binary whose release key has this id was not built
// with a vendor release key; 'profile show' says so.
const DevelopmentKeyID = "a662b3f3054f91ca"

// IsDevelopmentKey reports whether p was verified by the development release
// key rather than a vendor release key.
func (p Profile) IsDevelopmentKey() bool { return p.keyID == DevelopmentKeyID }

// EmbeddedName returns which embedded profile this build carries ("default"
// or, with the lab build tag, "lab").
func EmbeddedName() string { return embeddedName }

// LabBuild reports whether this binary was built with the lab build tag
// (the high-cap lab profile).
func LabBuild() bool { return embeddedName == "lab" }

// Who signed a profile, as 'version' and 'profile show' report it.
const (
	// SignerDevelopment is the committed development key (DevelopmentKeyID),
	// whose private half is public knowledge.
	SignerDevelopment = "development"
	// SignerRelease is any other key: a vendor release key supplied at
	// build time (docs/safety-profile.md).
	SignerRelease = "release"
)

// Signer returns SignerDevelopment or SignerRelease for p's key.
func (p Profile) Signer() string {
	if p.IsDevelopmentKey() {
		return SignerDevelopment
	}
	return SignerRelease
}

// ErrNotProductionBuild means the binary may not run in production mode:
// its profile is signed by the development key, or it is a lab build. The
// development private key is public, so such a profile proves nothing about
// who approved its caps.
var ErrNotProductionBuild = errors.New("this build may not run in production mode")

// CheckProduction returns nil when the verified profile p, in this build,
// may run in production mode, and an error wrapping ErrNotProductionBuild
// otherwise. Serve and every scan call it when production mode is on.
func CheckProduction(p Profile) error { return checkProduction(p, LabBuild()) }

// checkProduction takes the build tag as a parameter so both branches are
// tested in the normal build.
func checkProduction(p Profile, lab bool) error {
	if lab {
		return fmt.Errorf("%w: lab build (profile %s, %d pps, %d targets per scan) is for the network lab only", ErrNotProductionBuild, p.ID, p.GlobalPPS, p.MaxTargets)
	}
	if p.keyID == "" {
		return fmt.Errorf("%w: profile %q is not verified", ErrNotProductionBuild, p.ID)
	}
	if p.IsDevelopmentKey() {
		return fmt.Errorf("%w: safety profile %s is signed by the development key %s, not a release key", ErrNotProductionBuild, p.ID, p.keyID)
	}
	return nil
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// wireFields are the profile's JSON keys, all required.
var wireFields = []string{"id", "version", "global_pps", "per_host_pps", "max_concurrent_scans", "max_targets", "probe_kinds", "udp_payloads"}

// parse decodes and validates profile JSON strictly: exact key names (no
// case folding), no unknown or duplicate keys, integers only.
func parse(data []byte) (Profile, error) {
	var p Profile
	if !utf8.Valid(data) {
		return p, fmt.Errorf("%w: not UTF-8", ErrInvalid)
	}
	fields, err := strictjson.Object(data)
	if err != nil {
		return p, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	for k := range fields {
		if !slices.Contains(wireFields, k) {
			return p, fmt.Errorf("%w: unknown field %q", ErrInvalid, k)
		}
	}
	for _, k := range wireFields {
		if _, ok := fields[k]; !ok {
			return p, fmt.Errorf("%w: missing field %q", ErrInvalid, k)
		}
	}
	var kinds []string
	targets := []struct {
		key string
		v   any
	}{
		{"id", &p.ID}, {"version", &p.Version}, {"global_pps", &p.GlobalPPS}, {"per_host_pps", &p.PerHostPPS},
		{"max_concurrent_scans", &p.MaxConcurrentScans}, {"max_targets", &p.MaxTargets},
		{"probe_kinds", &kinds}, {"udp_payloads", &p.UDPPayloads},
	}
	for _, t := range targets {
		if err := json.Unmarshal(fields[t.key], t.v); err != nil {
			return p, fmt.Errorf("%w: field %q: %v", ErrInvalid, t.key, err)
		}
	}
	if !idPattern.MatchString(p.ID) {
		return p, fmt.Errorf("%w: id %q is not [a-z0-9._-]{1,64}", ErrInvalid, p.ID)
	}
	for _, c := range []struct {
		name string
		v    int
	}{{"version", p.Version}, {"global_pps", p.GlobalPPS}, {"per_host_pps", p.PerHostPPS}, {"max_concurrent_scans", p.MaxConcurrentScans}, {"max_targets", p.MaxTargets}} {
		if c.v < 1 {
			return p, fmt.Errorf("%w: %s must be at least 1, got %d", ErrInvalid, c.name, c.v)
		}
	}
	if p.PerHostPPS > p.GlobalPPS {
		return p, fmt.Errorf("%w: per_host_pps %d exceeds global_pps %d", ErrInvalid, p.PerHostPPS, p.GlobalPPS)
	}
	if len(kinds) == 0 {
		return p, fmt.Errorf("%w: probe_kinds is empty", ErrInvalid)
	}
	for _, s := range kinds {
		k, err := ParseKind(s)
		if err != nil {
			return p, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if slices.Contains(p.ProbeKinds, k) {
			return p, fmt.Errorf("%w: probe kind %q listed twice", ErrInvalid, s)
		}
		p.ProbeKinds = append(p.ProbeKinds, k)
	}
	for i, t := range p.UDPPayloads {
		if !slices.Contains(AllUDPPayloads(), t) {
			return p, fmt.Errorf("%w: unknown UDP payload template %q", ErrInvalid, t)
		}
		if slices.Contains(p.UDPPayloads[:i], t) {
			return p, fmt.Errorf("%w: UDP payload template %q listed twice", ErrInvalid, t)
		}
	}
	if p.Allows(KindUDP) && len(p.UDPPayloads) == 0 {
		return p, fmt.Errorf("%w: udp probes allowed but no UDP payload template", ErrInvalid)
	}
	if p.UDPPayloads == nil {
		p.UDPPayloads = []string{}
	}
	return p, nil
}
