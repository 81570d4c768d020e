package report

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"firewalliq/appliance/report/verify"
	"firewalliq/audit"
)

// edit decodes a signed report, lets fn change the report value (as
// generic JSON), and re-encodes it canonically, keeping the old signature
// unless resign is set (then the report key signs the edited value: the
// proofs must still catch the edit).
func edit(t *testing.T, signed []byte, resign bool, fn func(r map[string]any)) []byte {
	t.Helper()
	var f map[string]any
	if err := json.Unmarshal(signed, &f); err != nil {
		t.Fatal(err)
	}
	r := f["report"].(map[string]any)
	fn(r)
	out, err := verify.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if resign {
		if out, err = verify.Resign(out, reportKey); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// evidence returns the i-th evidence object of a generic report.
func evidence(r map[string]any, i int) map[string]any {
	return r["evidence"].([]any)[i].(map[string]any)
}

// editProof changes the inclusion proof (a JSON string) of evidence i.
func editProof(t *testing.T, r map[string]any, i int, fn func(p *audit.InclusionProof)) {
	var p audit.InclusionProof
	if err := json.Unmarshal([]byte(evidence(r, i)["proof"].(string)), &p); err != nil {
		t.Fatal(err)
	}
	fn(&p)
	b, _ := json.Marshal(p)
	evidence(r, i)["proof"] = string(b)
}

// TestVerifyTamper is the tamper table: every field of the report, each
// proof, the checkpoint, the anchor and each evidence file. Without a new
// signature every edit fails on the signature; with one (a stolen report
// key) the audit proofs and the evidence hashes still catch it.
func TestVerifyTamper(t *testing.T) {
	b := buildReport(t)
	if _, err := verify.Verify(b.signed, opts(b.evidenceDir)); err != nil {
		t.Fatalf("untouched report: %v", err)
	}

	// Every field, unsigned edit: the signature fails.
	var generic map[string]any
	_ = json.Unmarshal(b.signed, &generic)
	for field, val := range generic["report"].(map[string]any) {
		t.Run("field "+field, func(t *testing.T) {
			out := edit(t, b.signed, false, func(r map[string]any) {
				switch v := val.(type) {
				case string:
					r[field] = v + "x"
				case bool:
					r[field] = !v
				case float64:
					r[field] = v + 1
				case nil:
					r[field] = map[string]any{}
				default:
					r[field] = nil
				}
			})
			if _, err := verify.Verify(out, opts("")); !errors.Is(err, verify.ErrSignature) && !errors.Is(err, verify.ErrFormat) {
				t.Fatalf("edited %s: %v, want a signature failure", field, err)
			}
		})
	}

	// Any changed byte of the file fails (one in every 61, to keep it quick).
	t.Run("every byte", func(t *testing.T) {
		for i := 0; i < len(b.signed); i += 61 {
			out := []byte(string(b.signed))
			out[i] ^= 0x01
			if _, err := verify.Verify(out, opts("")); err == nil {
				t.Fatalf("byte %d changed (%q), still verifies", i, b.signed[i])
			}
		}
	})

	anchorNote := func(r map[string]any) map[string]any { return r["anchor"].(map[string]any) }
	tests := []struct {
		name   string
		resign bool
		edit   func(t *testing.T, r map[string]any)
		evDir  func(t *testing.T, dir string)
		opts   func(o *verify.Options)
		want   error
	}{
		{name: "evidence sha256", resign: true, want: verify.ErrProof, edit: func(t *testing.T, r map[string]any) {
			evidence(r, 0)["sha256"] = strings.Repeat("0", 64)
		}},
		{name: "evidence audit seq", resign: true, want: verify.ErrProof, edit: func(t *testing.T, r map[string]any) { evidence(r, 1)["audit_seq"] = float64(2) }},
		{name: "proof 0 path hash", resign: true, want: verify.ErrProof, edit: func(t *testing.T, r map[string]any) {
			editProof(t, r, 0, func(p *audit.InclusionProof) { p.Proof[0][0] ^= 1 })
		}},
		{name: "proof 1 entry details", resign: true, want: verify.ErrProof, edit: func(t *testing.T, r map[string]any) {
			editProof(t, r, 1, func(p *audit.InclusionProof) { p.Entry.Details = json.RawMessage(`{"sha256":"forged"}`) })
		}},
		{name: "proof 1 entry seq", resign: true, want: verify.ErrProof, edit: func(t *testing.T, r map[string]any) {
			editProof(t, r, 1, func(p *audit.InclusionProof) { p.Entry.Seq = 2 })
		}},
		{name: "proof 0 leads to another checkpoint", resign: true, want: verify.ErrCheckpoint, edit: func(t *testing.T, r map[string]any) {
			editProof(t, r, 0, func(p *audit.InclusionProof) { p.Checkpoint = b.older })
		}},
		{name: "checkpoint swapped for an older signed one", resign: true, want: verify.ErrCheckpoint, edit: func(t *testing.T, r map[string]any) { r["checkpoint"] = b.older }},
		{name: "checkpoint root edited", resign: true, want: verify.ErrCheckpoint, edit: func(t *testing.T, r map[string]any) {
			lines := strings.Split(r["checkpoint"].(string), "\n")
			lines[2] = "AAAA" + lines[2][4:]
			r["checkpoint"] = strings.Join(lines, "\n")
		}},
		{name: "anchor checkpoint", resign: true, want: verify.ErrCheckpoint, edit: func(t *testing.T, r map[string]any) { anchorNote(r)["checkpoint"] = r["checkpoint"] }},
		{name: "anchor consistency proof", resign: true, want: verify.ErrProof, edit: func(t *testing.T, r map[string]any) {
			var c audit.ConsistencyProof
			_ = json.Unmarshal([]byte(anchorNote(r)["consistency"].(string)), &c)
			c.OldRoot[0] ^= 1
			c.OldCheckpoint = ""
			bb, _ := json.Marshal(c)
			anchorNote(r)["consistency"] = string(bb)
			anchorNote(r)["checkpoint"] = ""
		}},
		{name: "evidence name escapes the directory", resign: true, want: verify.ErrFormat, edit: func(t *testing.T, r map[string]any) { evidence(r, 0)["name"] = "../etc/passwd" }},
		{name: "evidence file changed", want: verify.ErrEvidence, evDir: func(t *testing.T, dir string) {
			p := filepath.Join(dir, "scans/scan-1/results.jsonl")
			bb, _ := os.ReadFile(p)
			bb[10] ^= 1
			_ = os.WriteFile(p, bb, 0o644)
		}},
		{name: "evidence file missing", want: verify.ErrEvidence, evDir: func(t *testing.T, dir string) { _ = os.Remove(filepath.Join(dir, "scans/scan-1/probes.pcapng")) }},
		{name: "evidence file grown", want: verify.ErrEvidence, evDir: func(t *testing.T, dir string) {
			f, _ := os.OpenFile(filepath.Join(dir, "scans/scan-1/probes.pcapng"), os.O_APPEND|os.O_WRONLY, 0)
			_, _ = f.Write([]byte{0})
			f.Close()
		}},
		{name: "wrong report key", want: verify.ErrSignature, opts: func(o *verify.Options) { o.ReportKey = otherKey.Public().(ed25519.PublicKey) }},
		{name: "wrong audit key", want: verify.ErrCheckpoint, opts: func(o *verify.Options) { o.AuditKey = otherKey.Public().(ed25519.PublicKey) }},
		{name: "signed by another key", want: verify.ErrSignature, edit: func(t *testing.T, r map[string]any) {}, resign: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := b.signed
			if tt.edit != nil {
				out = edit(t, b.signed, tt.resign, func(r map[string]any) { tt.edit(t, r) })
			}
			if tt.name == "signed by another key" {
				var err error
				if out, err = verify.Resign(b.signed, otherKey); err != nil {
					t.Fatal(err)
				}
			}
			dir := t.TempDir()
			if err := os.CopyFS(dir, os.DirFS(b.evidenceDir)); err != nil {
				t.Fatal(err)
			}
			if tt.evDir != nil {
				tt.evDir(t, dir)
			}
			o := opts(dir)
			if tt.opts != nil {
				tt.opts(&o)
			}
			_, err := verify.Verify(out, o)
			if !errors.Is(err, tt.want) {
				t.Fatalf("%v, want %v", err, tt.want)
			}
			t.Logf("refused: %v", err)
		})
	}
}
