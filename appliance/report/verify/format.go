package verify

import "encoding/json"

// FormatV1 is the value of Report.Format this package reads.
const FormatV1 = "firewalliq.report/v1"

// File is a report file: the signed body and its signature.
type File struct {
	Report    json.RawMessage `json:"report"`
	Signature Signature       `json:"signature"`
}

// Signature is an Ed25519 signature over the canonical "report" value.
type Signature struct {
	Alg   string `json:"alg"`    // "ed25519"
	KeyID string `json:"key_id"` // probe/keys.ID of the report public key
	Sig   string `json:"sig"`    // standard base64
}

// Report is the signed body. Every number in it is an integer (rates in
// milli-packets per second) so the canonical form has one spelling.
type Report struct {
	Format    string    `json:"format"`
	ID        string    `json:"id"`
	Tenant    string    `json:"tenant"`
	CreatedAt string    `json:"created_at"` // RFC 3339, UTC
	Appliance Appliance `json:"appliance"`
	// Imported marks a report built from imported results (an Nmap XML
	// file): unsigned evidence that no scan of this appliance produced.
	Imported     bool   `json:"imported"`
	VantagePoint string `json:"vantage_point"`
	// Scan names the scan judged and where it ran from; absent (all
	// empty) in reports made before the scan's vantage was recorded.
	Scan         Scan         `json:"scan"`
	Window       Window       `json:"window"`
	Scope        Scope        `json:"scope"`
	Policy       Policy       `json:"policy"`
	Profile      Profile      `json:"profile"`
	Job          Job          `json:"job"`
	Approvals    []Approval   `json:"approvals"`
	Operators    []Operator   `json:"operators"`
	Rate         Rate         `json:"rate"`
	Summary      Summary      `json:"summary"`
	Verdicts     []Verdict    `json:"verdicts"`
	Canaries     []Canary     `json:"canaries"`
	Findings     []Finding    `json:"findings"`
	Drift        Drift        `json:"drift"`
	Compliance   []Control    `json:"compliance"`
	Evidence     []Evidence   `json:"evidence"`
	Checkpoint   string       `json:"checkpoint"` // signed note the proofs lead to
	Anchor       *Anchor      `json:"anchor"`     // null when no daily anchor covers it yet
	Verification Verification `json:"verification"`
}

// Scan is the scan a report judges: its id and its vantage, the runner
// that sent the probes ("local" for the appliance itself, or a sensor id)
// with that runner's vantage label (the sensor's label; "local" for the
// appliance). VantagePoint, beside it, is the vantage point the policy
// was written for.
type Scan struct {
	ID           string `json:"id"`
	Vantage      string `json:"vantage"`
	VantageLabel string `json:"vantage_label"`
}

// FormatCombinedV1 is the format of a report that combines the reports of
// several scans (typically from several vantage points) in one signed
// document.
const FormatCombinedV1 = "firewalliq.report.combined/v1"

// Combined is the signed body of a combined report: one complete
// compliance report per scan (Parts, each in FormatV1 with its own policy,
// vantage point, verdicts, findings, evidence proofs and checkpoint), the
// totals over all parts, and the control mapping over every part's rules
// (named "vantage_point/rule"). Verify checks every part as it checks a
// single report, and that the totals are the parts' sums.
type Combined struct {
	Format       string       `json:"format"`
	ID           string       `json:"id"`
	Tenant       string       `json:"tenant"`
	CreatedAt    string       `json:"created_at"`
	Appliance    Appliance    `json:"appliance"`
	Summary      Summary      `json:"summary"`
	Compliance   []Control    `json:"compliance"`
	Parts        []Report     `json:"parts"`
	Verification Verification `json:"verification"`
}

// MaxParts bounds the scans one combined report holds.
const MaxParts = 32

// Appliance identifies the appliance and build that made the report.
type Appliance struct {
	ID      string `json:"id"`
	Version string `json:"version"`
}

// Window is when the scan ran (RFC 3339, UTC).
type Window struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// Scope is the signed scope document the scan ran under.
type Scope struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Environment string   `json:"environment"`
	SHA256      string   `json:"sha256"`
	SignerKeyID string   `json:"signer_key_id"`
	CIDRs       []string `json:"cidrs"`
	Exclude     []string `json:"exclude"`
	Ports       string   `json:"ports"`
}

// Policy is the expected policy the results were judged against; Document
// is its canonical JSON as a string (so it is signed byte for byte).
type Policy struct {
	Name         string `json:"name"`
	Version      int    `json:"version"`
	SHA256       string `json:"sha256"`
	VantagePoint string `json:"vantage_point"`
	Document     string `json:"document"`
}

// Profile is the compiled-in safety profile the scan ran under.
type Profile struct {
	ID     string `json:"id"`
	SHA256 string `json:"sha256"`
	MaxPPS int    `json:"max_pps"`
}

// Job is the signed job the runner verified before the first packet.
type Job struct {
	ID     string `json:"id"`
	SHA256 string `json:"sha256"`
	KeyID  string `json:"key_id"`
}

// Approval is one approver's grant for the scan.
type Approval struct {
	Approver string `json:"approver"`
	Role     string `json:"role"`
	Time     string `json:"time"`
}

// Operator is a person who acted on the scan (requested, approved,
// accepted the baseline, created the report).
type Operator struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Role string `json:"role"`
}

// Rate is the measured packet rate against the cap.
type Rate struct {
	RequestedPPS int `json:"requested_pps"`
	CapPPS       int `json:"cap_pps"`
	// MeasuredMilliPPS is the long-run rate in thousandths of a packet per
	// second.
	MeasuredMilliPPS int `json:"measured_milli_pps"`
	Worst100ms       int `json:"worst_100ms"`
	WindowLimit      int `json:"window_limit"`
	PacketsSent      int `json:"packets_sent"`
}

// Summary counts rules by verdict and findings by kind.
type Summary struct {
	Rules    map[string]int `json:"rules"`
	Findings map[string]int `json:"findings"`
	Results  int            `json:"results"`
}

// Verdict is one rule's outcome.
type Verdict struct {
	Rule         string `json:"rule"`
	Action       string `json:"action"`
	Severity     string `json:"severity"`
	Verdict      string `json:"verdict"`
	Tested       int    `json:"tested"`
	Passed       int    `json:"passed"`
	Failed       int    `json:"failed"`
	DenialStyle  int    `json:"denial_style"`
	Inconclusive int    `json:"inconclusive"`
}

// Canary says whether a canary answered in the window.
type Canary struct {
	Name     string `json:"name"`
	Target   string `json:"target"`
	Proto    string `json:"proto"`
	Port     int    `json:"port"`
	Answered bool   `json:"answered"`
}

// Finding is one finding (evaluation or drift). ICMPType and ICMPCode are
// -1 when no ICMP message decided it.
type Finding struct {
	ID       string `json:"id"`
	Kind     string `json:"kind"`
	Severity string `json:"severity"`
	Rule     string `json:"rule"`
	Title    string `json:"title"`
	Target   string `json:"target"`
	Proto    string `json:"proto"`
	Port     int    `json:"port"`
	Expected string `json:"expected"`
	Observed string `json:"observed"`
	Reason   string `json:"reason"`
	ICMPType int    `json:"icmp_type"`
	ICMPCode int    `json:"icmp_code"`
}

// Drift is the comparison with the accepted baseline.
type Drift struct {
	BaselineID string   `json:"baseline_id"` // "" when none was accepted
	Changes    []Change `json:"changes"`
}

// Change is one drift item.
type Change struct {
	Kind     string `json:"kind"`
	Severity string `json:"severity"`
	Target   string `json:"target"`
	Proto    string `json:"proto"`
	Port     int    `json:"port"`
	Before   string `json:"before"`
	After    string `json:"after"`
}

// Control maps verdicts to one control of a framework.
type Control struct {
	Framework string `json:"framework"` // "PCI DSS v4.0", "ISO/IEC 27001:2022", "SOC 2"
	Control   string `json:"control"`   // "11.4.5", "A.8.20", "CC6.6"
	Title     string `json:"title"`
	// Status is "satisfied", "not-satisfied" or "incomplete" (some rule
	// inconclusive or not tested).
	Status string   `json:"status"`
	Basis  string   `json:"basis"`
	Rules  []string `json:"rules"`
}

// Evidence is one evidence object: its SHA-256 and the audit entry that
// recorded it, with the entry's inclusion proof (the audit package's JSON
// proof format, as a string) against Checkpoint.
type Evidence struct {
	Name     string `json:"name"`
	SHA256   string `json:"sha256"`
	Size     int    `json:"size"`
	AuditSeq int    `json:"audit_seq"`
	Proof    string `json:"proof"`
}

// Anchor is the daily anchor Checkpoint is consistent with: its signed
// note and the consistency proof (audit JSON format, as a string) from its
// tree to Checkpoint's.
type Anchor struct {
	Day         string `json:"day"`
	Checkpoint  string `json:"checkpoint"`
	Consistency string `json:"consistency"`
}

// Verification tells a reader how to check the report.
type Verification struct {
	Command     string `json:"command"`
	AuditKeyID  string `json:"audit_key_id"`
	ReportKeyID string `json:"report_key_id"`
}
