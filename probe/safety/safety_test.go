package safety

import (
	"bytes"
	"crypto/ed25519"
	"flag"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"firewalliq/probe/keys"
)

// update re-signs the embedded profiles with the development release key:
//
//	go test ./probe/safety -run TestEmbeddedSignatures -update
var update = flag.Bool("update", false, "re-sign profile/*.json with the development release key")

// devKey reads the committed development release key. It parses the PEM
// directly rather than with keys.ReadPrivate because git does not keep the
// 0600 mode, and this key is public knowledge anyway.
func devKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	data, err := os.ReadFile("devkey/dev-release.key")
	if err != nil {
		t.Fatal(err)
	}
	priv, err := keys.ParsePrivate(data)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func TestEmbeddedSignatures(t *testing.T) {
	priv := devKey(t)
	pub := priv.Public().(ed25519.PublicKey)
	if got := keys.ID(pub); got != DevelopmentKeyID {
		t.Fatalf("DevelopmentKeyID = %s, devkey has %s", DevelopmentKeyID, got)
	}
	for _, name := range []string{"default", "lab"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("profile", name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			sigPath := filepath.Join("profile", name+".json.sig")
			if *update {
				if err := os.WriteFile(sigPath, Sign(data, priv), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			sig, err := os.ReadFile(sigPath)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Verify(data, sig, pub); err != nil {
				t.Fatalf("%s does not verify with the development key (run with -update after editing it): %v", name, err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	p, err := Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !bytes.Equal(p.Bytes(), embeddedProfile) {
		t.Fatal("Bytes differ from the embedded profile")
	}
	if len(p.SHA256()) != 64 {
		t.Fatalf("SHA256 = %q", p.SHA256())
	}
	if p.KeyID() == "" {
		t.Fatal("no key id")
	}
	switch EmbeddedName() {
	case "default":
		want := Profile{ID: "default", Version: 1, GlobalPPS: 1000, PerHostPPS: 100, MaxConcurrentScans: 2, MaxTargets: 65536}
		got := p
		got.ProbeKinds, got.UDPPayloads, got.raw, got.keyID = nil, nil, nil, ""
		if !equalProfile(got, want) {
			t.Fatalf("default profile = %+v, want %+v", got, want)
		}
	case "lab":
		if p.ID != "lab-highcap" || p.GlobalPPS < 150000 {
			t.Fatalf("lab profile = %+v", p)
		}
	}
}

func equalProfile(a, b Profile) bool {
	return a.ID == b.ID && a.Version == b.Version && a.GlobalPPS == b.GlobalPPS && a.PerHostPPS == b.PerHostPPS &&
		a.MaxConcurrentScans == b.MaxConcurrentScans && a.MaxTargets == b.MaxTargets &&
		slices.Equal(a.ProbeKinds, b.ProbeKinds) && slices.Equal(a.UDPPayloads, b.UDPPayloads)
}

// TestModifiedByteFails flips every byte of the embedded profile in turn (and
// every bit of one byte) and checks that verification fails each time.
func TestModifiedByteFails(t *testing.T) {
	pub, err := ReleaseKey()
	if err != nil {
		t.Fatal(err)
	}
	for i := range embeddedProfile {
		m := bytes.Clone(embeddedProfile)
		m[i] ^= 0x01
		if _, err := Verify(m, embeddedSignature, pub); err == nil {
			t.Fatalf("profile with byte %d modified verified", i)
		}
	}
	for bit := range 8 {
		m := bytes.Clone(embeddedProfile)
		m[len(m)/2] ^= 1 << bit
		if _, err := Verify(m, embeddedSignature, pub); err == nil {
			t.Fatalf("profile with bit %d of the middle byte flipped verified", bit)
		}
	}
	// An appended newline or space is a modification too.
	if _, err := Verify(append(bytes.Clone(embeddedProfile), ' '), embeddedSignature, pub); err == nil {
		t.Fatal("profile with an appended byte verified")
	}
	sig := bytes.Clone(embeddedSignature)
	sig[3] ^= 0x01
	if _, err := Verify(embeddedProfile, sig, pub); err == nil {
		t.Fatal("modified signature verified")
	}
	other, _, _ := ed25519.GenerateKey(nil)
	if _, err := Verify(embeddedProfile, embeddedSignature, other); err == nil {
		t.Fatal("profile verified with another key")
	}
}

// TestClosedKindList asserts that the probe kinds compiled into the binary
// are exactly the closed list of DESIGN.md ("Probe kind identifiers,
// everywhere: tcp-syn, tcp-connect, udp, icmp-echo, tls-hello, banner"),
// which docs/safety-profile.md repeats between markers.
func TestClosedKindList(t *testing.T) {
	design := []Kind{"tcp-syn", "tcp-connect", "udp", "icmp-echo", "tls-hello", "banner"}
	if !slices.Equal(AllKinds(), design) {
		t.Fatalf("AllKinds = %v, DESIGN.md says %v", AllKinds(), design)
	}
	doc, err := os.ReadFile("../../docs/safety-profile.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- closed-kinds -->(.*?)<!-- /closed-kinds -->").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/safety-profile.md lacks the closed-kinds markers")
	}
	var documented []Kind
	for _, f := range regexp.MustCompile("`([a-z-]+)`").FindAllSubmatch(m[1], -1) {
		documented = append(documented, Kind(f[1]))
	}
	if !slices.Equal(documented, design) {
		t.Fatalf("docs list %v, want %v", documented, design)
	}
	// The source declares no Kind constant beyond the list.
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "safety.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for name := range f.Scope.Objects {
		if strings.HasPrefix(name, "Kind") && name != "Kind" {
			n++
		}
	}
	if n != len(design) {
		t.Fatalf("safety.go declares %d Kind constants, want %d", n, len(design))
	}
	// Every embedded profile allows only kinds on the list.
	p, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range p.ProbeKinds {
		if !slices.Contains(design, k) {
			t.Fatalf("profile allows %q", k)
		}
	}
}

// TestNoRuntimeInputs proves that nothing at run time can raise a cap: the
// package reads no environment, flags, files or network, and Load returns
// the same profile whatever the environment says.
func TestNoRuntimeInputs(t *testing.T) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	forbidden := []string{"os", "flag", "net", "net/http", "syscall", "os/exec", "io/fs", "unsafe", "reflect"}
	for _, pkg := range pkgs {
		for name, f := range pkg.Files {
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				if slices.Contains(forbidden, path) {
					t.Errorf("%s imports %q; the profile must come only from the embedded bytes", name, path)
				}
			}
		}
	}
	before, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"FIQ_GLOBAL_PPS", "FIQ_PER_HOST_PPS", "FIQ_MAX_PPS", "FIQ_PROFILE", "FIQ_MAX_TARGETS", "FIQ_PROBE_KINDS"} {
		t.Setenv(k, "100000000")
	}
	after, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if after.SHA256() != before.SHA256() || !equalProfile(after, before) {
		t.Fatal("environment changed the profile")
	}
}

func TestParseKind(t *testing.T) {
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"syn", "tcp-syn", true},
		{"banner", "banner", true},
		{"upper case", "TCP-SYN", false},
		{"space", " udp", false},
		{"empty", "", false},
		{"offensive", "tcp-xmas", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKind(tt.in)
			if (err == nil) != tt.ok || (tt.ok && string(k) != tt.in) {
				t.Fatalf("ParseKind(%q) = %q, %v", tt.in, k, err)
			}
		})
	}
}

// TestParseRejects checks that a correctly signed but malformed profile is
// still refused.
func TestParseRejects(t *testing.T) {
	priv := devKey(t)
	pub := priv.Public().(ed25519.PublicKey)
	good := `{"id":"x","version":1,"global_pps":10,"per_host_pps":5,"max_concurrent_scans":1,"max_targets":1,"probe_kinds":["tcp-syn"],"udp_payloads":[]}`
	if _, err := Verify([]byte(good), Sign([]byte(good), priv), pub); err != nil {
		t.Fatalf("good profile: %v", err)
	}
	tests := []struct{ name, data string }{
		{"unknown kind", strings.Replace(good, `"tcp-syn"`, `"tcp-xmas"`, 1)},
		{"duplicate kind", strings.Replace(good, `["tcp-syn"]`, `["tcp-syn","tcp-syn"]`, 1)},
		{"no kinds", strings.Replace(good, `["tcp-syn"]`, `[]`, 1)},
		{"zero pps", strings.Replace(good, `"global_pps":10`, `"global_pps":0`, 1)},
		{"per-host above global", strings.Replace(good, `"per_host_pps":5`, `"per_host_pps":50`, 1)},
		{"float", strings.Replace(good, `"global_pps":10`, `"global_pps":10.5`, 1)},
		{"exponent", strings.Replace(good, `"global_pps":10`, `"global_pps":1e1`, 1)},
		{"unknown field", strings.Replace(good, `{"id"`, `{"extra":1,"id"`, 1)},
		{"duplicate key", strings.Replace(good, `{"id":"x"`, `{"id":"x","id":"y"`, 1)},
		{"case-folded key", strings.Replace(good, `"max_targets"`, `"MAX_TARGETS"`, 1)},
		{"missing field", strings.Replace(good, `,"udp_payloads":[]`, ``, 1)},
		{"udp without payloads", strings.Replace(good, `["tcp-syn"]`, `["udp"]`, 1)},
		{"unknown payload", strings.Replace(good, `"udp_payloads":[]`, `"udp_payloads":["exploit"]`, 1)},
		{"trailing data", good + `{}`},
		{"bad id", strings.Replace(good, `"id":"x"`, `"id":"X Y"`, 1)},
		{"not an object", `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Verify([]byte(tt.data), Sign([]byte(tt.data), priv), pub); err == nil {
				t.Fatalf("accepted %s", tt.data)
			}
		})
	}
}

// FuzzVerify checks that Verify never panics and never accepts bytes other
// than the signed ones. Seeds: the embedded profile, a truncation, an empty
// input and a non-object.
func FuzzVerify(f *testing.F) {
	f.Add(embeddedProfile, embeddedSignature)
	f.Add(embeddedProfile[:len(embeddedProfile)/2], embeddedSignature)
	f.Add([]byte{}, []byte{})
	f.Add([]byte(`[1,2]`), []byte("AAAA\n"))
	pub, err := ReleaseKey()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data, sig []byte) {
		p, err := Verify(data, sig, pub)
		if err != nil {
			return
		}
		if !bytes.Equal(data, embeddedProfile) && !bytes.Equal(data, lab(t)) {
			t.Fatalf("verified bytes that the release key never signed: %q", data)
		}
		if len(p.ProbeKinds) == 0 {
			t.Fatal("verified profile allows nothing")
		}
	})
}

// FuzzParse checks that the profile parser never panics and that whatever it
// accepts is within the closed lists.
func FuzzParse(f *testing.F) {
	f.Add(embeddedProfile)
	f.Add([]byte(`{"id":"x"}`))
	f.Add([]byte(`{"id":"x","id":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parse(data)
		if err != nil {
			return
		}
		for _, k := range p.ProbeKinds {
			if _, err := ParseKind(string(k)); err != nil {
				t.Fatalf("accepted kind %q", k)
			}
		}
		if p.GlobalPPS < 1 || p.PerHostPPS > p.GlobalPPS {
			t.Fatalf("accepted caps %+v", p)
		}
	})
}

func lab(t *testing.T) []byte {
	b, err := os.ReadFile("profile/lab.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}
