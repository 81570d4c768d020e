package verify

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"firewalliq/audit"
	"firewalliq/probe/keys"
)

// Sentinel errors. Every verification failure wraps exactly one of them
// (or ErrFormat) and says which part failed.
var (
	// ErrSignature means the report's signature does not verify with the
	// given report key (or names another key).
	ErrSignature = errors.New("report signature does not verify")
	// ErrCheckpoint means the audit checkpoint is not signed by the given
	// audit key, or a proof leads to another checkpoint.
	ErrCheckpoint = errors.New("report audit checkpoint does not verify")
	// ErrProof means an evidence object's inclusion proof, or the anchor's
	// consistency proof, does not verify, or the audit entry it proves
	// does not record that object.
	ErrProof = errors.New("report proof does not verify")
	// ErrEvidence means an evidence file is missing or its SHA-256 or
	// size differs from the report's.
	ErrEvidence = errors.New("evidence file does not match the report")
)

// MaxReport bounds the size of a report file the verifier reads.
const MaxReport = 64 << 20

// Options are the verifier's inputs besides the report.
type Options struct {
	// ReportKey verifies the document's signature; AuditKey a compliance
	// report's checkpoint and proofs. ReportKey is always required,
	// AuditKey for compliance reports (an access review carries no
	// proofs).
	ReportKey ed25519.PublicKey
	AuditKey  ed25519.PublicKey
	// EvidenceDir, when set, holds the evidence files under their report
	// names; each must exist and match its SHA-256 and size.
	EvidenceDir string
}

// Result is what a successful verification established.
type Result struct {
	// Kind is KindComplianceReport (Report is set), KindCombinedReport
	// (Combined is set) or KindAccessReview (Review is set).
	Kind   string
	Review *AccessReview
	// Combined is set for KindCombinedReport; Report is then empty and
	// the counts below are over every part.
	Combined   *Combined
	Report     Report
	KeyID      string
	Checkpoint audit.Checkpoint
	// Proofs is how many inclusion proofs verified; EvidenceFiles how many
	// files were hashed (0 without EvidenceDir).
	Proofs        int
	EvidenceFiles int
	// Anchored is true when a daily anchor's consistency proof verified.
	Anchored bool
}

// Verify checks a report file offline, with public keys only: that it is
// in canonical form, its signature by the report key, the audit
// checkpoint's signature by the audit key, each evidence object's
// inclusion proof against that checkpoint (and that the proved entry
// records the object's SHA-256), the anchor's consistency proof when
// present, and, with EvidenceDir, each evidence file's SHA-256 and size.
// It stops at the first failure and says what failed.
func Verify(data []byte, o Options) (Result, error) {
	var res Result
	if len(o.ReportKey) != ed25519.PublicKeySize {
		return res, errors.New("verify report: the report public key is required")
	}
	if len(data) > MaxReport {
		return res, fmt.Errorf("%w: %d bytes, at most %d", ErrFormat, len(data), MaxReport)
	}
	body := bytes.TrimSuffix(data, []byte("\n"))
	c, err := Canonical(body)
	if err != nil {
		return res, err
	}
	if !bytes.Equal(c, body) {
		return res, fmt.Errorf("%w: the file differs from its canonical form (bytes were changed, added or reordered)", ErrFormat)
	}
	var f File
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return res, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if len(f.Report) == 0 {
		return res, fmt.Errorf("%w: no report", ErrFormat)
	}

	// 1. The signature, over the canonical report value.
	kid := keys.ID(o.ReportKey)
	if f.Signature.Alg != "ed25519" {
		return res, fmt.Errorf("%w: algorithm %q", ErrSignature, f.Signature.Alg)
	}
	if f.Signature.KeyID != kid {
		return res, fmt.Errorf("%w: signed by key %s, the given report key is %s", ErrSignature, f.Signature.KeyID, kid)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(f.Signature.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return res, fmt.Errorf("%w: malformed signature", ErrSignature)
	}
	if !ed25519.Verify(o.ReportKey, f.Report, sig) {
		return res, fmt.Errorf("%w: the report's content was changed after signing, or another key signed it", ErrSignature)
	}
	res.KeyID = kid
	// The format names the kind of document; only then is the body
	// decoded strictly as that kind.
	var head struct {
		Format string `json:"format"`
	}
	if err := json.Unmarshal(f.Report, &head); err != nil {
		return res, fmt.Errorf("%w: report: %v", ErrFormat, err)
	}
	if head.Format == FormatReviewV1 {
		rv, err := checkReview(f.Report)
		if err != nil {
			return res, err
		}
		res.Kind, res.Review = KindAccessReview, &rv
		return res, nil
	}
	if len(o.AuditKey) != ed25519.PublicKeySize {
		return res, errors.New("verify report: a compliance report needs the audit public key")
	}
	if head.Format == FormatCombinedV1 {
		var c Combined
		dec = json.NewDecoder(bytes.NewReader(f.Report))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return res, fmt.Errorf("%w: report: %v", ErrFormat, err)
		}
		res.Kind, res.Combined = KindCombinedReport, &c
		if len(c.Parts) == 0 || len(c.Parts) > MaxParts {
			return res, fmt.Errorf("%w: %d parts, want 1 to %d", ErrFormat, len(c.Parts), MaxParts)
		}
		sum := Summary{Rules: map[string]int{}, Findings: map[string]int{}}
		seen := map[string]bool{}
		res.Anchored = true
		for i, part := range c.Parts {
			if part.ID != c.ID || part.Tenant != c.Tenant {
				return res, fmt.Errorf("%w: part %d is report %s of tenant %s, the combined report is %s of %s", ErrFormat, i+1, part.ID, part.Tenant, c.ID, c.Tenant)
			}
			if part.Scan.ID == "" || seen[part.Scan.ID] {
				return res, fmt.Errorf("%w: part %d: scan %q is missing or listed twice", ErrFormat, i+1, part.Scan.ID)
			}
			seen[part.Scan.ID] = true
			pr, err := checkReport(part, o)
			if err != nil {
				return res, fmt.Errorf("part %d (scan %s, vantage %s): %w", i+1, part.Scan.ID, part.Scan.VantageLabel, err)
			}
			res.Proofs += pr.Proofs
			res.EvidenceFiles += pr.EvidenceFiles
			res.Anchored = res.Anchored && pr.Anchored
			res.Checkpoint = pr.Checkpoint
			for k, n := range part.Summary.Rules {
				sum.Rules[k] += n
			}
			for k, n := range part.Summary.Findings {
				sum.Findings[k] += n
			}
			sum.Results += part.Summary.Results
		}
		if !sameSummary(sum, c.Summary) {
			return res, fmt.Errorf("%w: the combined summary is not the sum of its parts' summaries", ErrFormat)
		}
		return res, nil
	}
	res.Kind = KindComplianceReport
	var r Report
	dec = json.NewDecoder(bytes.NewReader(f.Report))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return res, fmt.Errorf("%w: report: %v", ErrFormat, err)
	}
	res.Report = r
	pr, err := checkReport(r, o)
	if err != nil {
		return res, err
	}
	res.Checkpoint, res.Proofs, res.EvidenceFiles, res.Anchored = pr.Checkpoint, pr.Proofs, pr.EvidenceFiles, pr.Anchored
	return res, nil
}

// sameSummary compares summaries, treating zero counts as absent.
func sameSummary(a, b Summary) bool {
	same := func(x, y map[string]int) bool {
		for k, n := range x {
			if y[k] != n {
				return false
			}
		}
		for k, n := range y {
			if x[k] != n {
				return false
			}
		}
		return true
	}
	return a.Results == b.Results && same(a.Rules, b.Rules) && same(a.Findings, b.Findings)
}

// checkReport checks one compliance report body (a single report, or a
// part of a combined one) after the signature: its format, the audit
// checkpoint, every inclusion proof, the anchor, and with EvidenceDir the
// evidence files.
func checkReport(r Report, o Options) (Result, error) {
	var res Result
	if r.Format != FormatV1 {
		return res, fmt.Errorf("%w: format %q, this verifier reads %q", ErrFormat, r.Format, FormatV1)
	}
	// 2. The checkpoint the proofs lead to.
	cp, err := audit.OpenCheckpoint([]byte(r.Checkpoint), o.AuditKey)
	if err != nil {
		return res, fmt.Errorf("%w: %v", ErrCheckpoint, err)
	}
	res.Checkpoint = cp

	// 3. Each evidence object's inclusion proof.
	names := map[string]bool{}
	for i, e := range r.Evidence {
		where := fmt.Sprintf("evidence[%d] %q", i, e.Name)
		if err := checkName(e.Name); err != nil {
			return res, fmt.Errorf("%w: %s: %v", ErrFormat, where, err)
		}
		if names[e.Name] {
			return res, fmt.Errorf("%w: %s listed twice", ErrFormat, where)
		}
		names[e.Name] = true
		var p audit.InclusionProof
		pd := json.NewDecoder(strings.NewReader(e.Proof))
		pd.DisallowUnknownFields()
		if err := pd.Decode(&p); err != nil {
			return res, fmt.Errorf("%w: %s: proof: %v", ErrProof, where, err)
		}
		if p.Checkpoint != r.Checkpoint {
			return res, fmt.Errorf("%w: %s: its proof leads to another checkpoint than the report's", ErrCheckpoint, where)
		}
		if _, err := audit.VerifyInclusion(p, o.AuditKey); err != nil {
			return res, fmt.Errorf("%w: %s: %v", ErrProof, where, err)
		}
		if int64(e.AuditSeq) != p.Entry.Seq {
			return res, fmt.Errorf("%w: %s: proof is for entry %d, the report says %d", ErrProof, where, p.Entry.Seq, e.AuditSeq)
		}
		var d struct {
			SHA256 string `json:"sha256"`
		}
		if err := json.Unmarshal(p.Entry.Details, &d); err != nil || d.SHA256 == "" || d.SHA256 != e.SHA256 {
			return res, fmt.Errorf("%w: %s: audit entry %d does not record SHA-256 %s", ErrProof, where, p.Entry.Seq, e.SHA256)
		}
		if p.Entry.Tenant != "" && r.Tenant != "" && p.Entry.Tenant != r.Tenant {
			return res, fmt.Errorf("%w: %s: audit entry %d belongs to tenant %s", ErrProof, where, p.Entry.Seq, p.Entry.Tenant)
		}
		res.Proofs++
	}

	// 4. The daily anchor, when present: the anchored tree is a prefix of
	// the report's checkpoint.
	if a := r.Anchor; a != nil {
		var cpf audit.ConsistencyProof
		pd := json.NewDecoder(strings.NewReader(a.Consistency))
		pd.DisallowUnknownFields()
		if err := pd.Decode(&cpf); err != nil {
			return res, fmt.Errorf("%w: anchor %s: %v", ErrProof, a.Day, err)
		}
		if cpf.Checkpoint != r.Checkpoint || cpf.OldCheckpoint != a.Checkpoint {
			return res, fmt.Errorf("%w: anchor %s: its consistency proof does not join the anchor's checkpoint to the report's", ErrCheckpoint, a.Day)
		}
		if _, err := audit.VerifyConsistency(cpf, o.AuditKey); err != nil {
			return res, fmt.Errorf("%w: anchor %s: %v", ErrProof, a.Day, err)
		}
		res.Anchored = true
	}

	// 5. The evidence files themselves.
	if o.EvidenceDir != "" {
		root, err := os.OpenRoot(o.EvidenceDir)
		if err != nil {
			return res, fmt.Errorf("%w: %v", ErrEvidence, err)
		}
		defer root.Close()
		for i, e := range r.Evidence {
			sum, n, err := hashFile(root, e.Name)
			if err != nil {
				return res, fmt.Errorf("%w: evidence[%d] %q: %v", ErrEvidence, i, e.Name, err)
			}
			if sum != e.SHA256 || n != int64(e.Size) {
				return res, fmt.Errorf("%w: evidence[%d] %q: SHA-256 %s (%d bytes), the report says %s (%d bytes)", ErrEvidence, i, e.Name, sum, n, e.SHA256, e.Size)
			}
			res.EvidenceFiles++
		}
	}
	return res, nil
}

// checkName accepts relative slash-separated names without "." or ".."
// elements, so a report cannot point the verifier outside EvidenceDir.
func checkName(name string) error {
	if name == "" || len(name) > 512 || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") {
		return errors.New("not a relative object name")
	}
	for _, el := range strings.Split(name, "/") {
		if el == "" || el == "." || el == ".." {
			return errors.New("not a clean relative object name")
		}
	}
	return nil
}

func hashFile(root *os.Root, name string) (string, int64, error) {
	f, err := root.Open(filepath.FromSlash(name))
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// SignCombined encodes c in canonical form and signs it with priv,
// returning the report file (canonical, with a final newline).
func SignCombined(c Combined, priv ed25519.PrivateKey) ([]byte, error) {
	body, err := Marshal(c)
	if err != nil {
		return nil, err
	}
	return signBody(body, priv)
}

// Sign encodes r in canonical form and signs it with priv, returning the
// report file (canonical, with a final newline).
func Sign(r Report, priv ed25519.PrivateKey) ([]byte, error) {
	body, err := Marshal(r)
	if err != nil {
		return nil, err
	}
	return signBody(body, priv)
}

// signBody signs already-canonical report bytes.
func signBody(body []byte, priv ed25519.PrivateKey) ([]byte, error) {
	pub, ok := priv.Public().(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("sign report: not an Ed25519 key")
	}
	sig := ed25519.Sign(priv, body)
	f := File{Report: body, Signature: Signature{Alg: "ed25519", KeyID: keys.ID(pub), Sig: base64.StdEncoding.EncodeToString(sig)}}
	out, err := Marshal(f)
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// Resign replaces a report file's signature with one by priv over its
// (possibly edited) report value. It exists for tests that prove the
// proof checks hold even against a holder of the report key.
func Resign(data []byte, priv ed25519.PrivateKey) ([]byte, error) {
	var f File
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("resign: %w", err)
	}
	body, err := Canonical(f.Report)
	if err != nil {
		return nil, err
	}
	return signBody(body, priv)
}
