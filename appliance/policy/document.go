// Package policy is the expected-policy model: what the customer intends
// the firewall to do, seen from one vantage point. It parses and validates
// policy documents (YAML or JSON, every error naming its line and field),
// lists which rules cover which scope targets (a dry run), evaluates a
// scan's results against a policy (exposure, blocked service, unexpected
// denial style, not tested, and an evidence-grade deny that needs a canary),
// compares results with a baseline (drift), and stores versioned policies
// and baselines per tenant behind the permission matrix (Service).
//
// The format is documented in docs/policy.md.
package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"firewalliq/probe/scope"
)

// Sentinel errors.
var (
	// ErrInvalid means a policy document does not parse or validate; the
	// error is a *ValidationError listing every problem with its line.
	ErrInvalid = errors.New("invalid policy")
	// ErrNotFound means no policy (or baseline) of that name or version
	// exists in the caller's tenant.
	ErrNotFound = errors.New("policy not found")
)

// Limits on a document, so that validation and evaluation stay bounded.
const (
	// MaxDocument is the largest policy document accepted, in bytes.
	MaxDocument = 1 << 20
	// MaxRules, MaxGroups, MaxCanaries and MaxCIDRs bound the lists.
	MaxRules    = 1000
	MaxGroups   = 1000
	MaxCanaries = 100
	MaxCIDRs    = 1000
)

// Action is what a rule demands of the services it covers.
type Action string

// Actions. ActionNone is only valid as a default: results no rule covers
// are then left out of the evaluation.
const (
	ActionAllow Action = "allow" // must be reachable
	ActionDeny  Action = "deny"  // must not be reachable
	ActionNone  Action = "none"
)

// Denial is the way a deny rule expects the firewall to refuse.
type Denial string

// Denial styles. Drop means silence (filtered, open|filtered); reject
// means an answer that refuses (a RST, closed, or an ICMP unreachable,
// rejected); either accepts both.
const (
	DenialDrop   Denial = "drop"
	DenialReject Denial = "reject"
	DenialEither Denial = "either"
)

// Severity ranks a rule, and the findings it produces.
type Severity string

// Severities, from most to least severe (the SIEM's vocabulary).
const (
	SeverityCritical Severity = "critical"
	SeverityHigh     Severity = "high"
	SeverityMedium   Severity = "medium"
	SeverityLow      Severity = "low"
	SeverityInfo     Severity = "info"
)

var severities = []Severity{SeverityCritical, SeverityHigh, SeverityMedium, SeverityLow, SeverityInfo}

// lower returns the next lower severity (info stays info).
func (s Severity) lower() Severity {
	i := slices.Index(severities, s)
	if i < 0 || i == len(severities)-1 {
		return SeverityInfo
	}
	return severities[i+1]
}

// Document is a parsed, validated policy. Its JSON form (Canonical) is what
// is stored, hashed and put into reports.
type Document struct {
	Version         int      `json:"version"`
	Name            string   `json:"name"`
	VantagePoint    string   `json:"vantage_point"`
	Description     string   `json:"description,omitempty"`
	Default         Action   `json:"default"`
	DefaultSeverity Severity `json:"default_severity"`
	// Denial is the expected denial style of deny rules that name none.
	Denial   Denial   `json:"denial"`
	Groups   []Group  `json:"groups"`
	Canaries []Canary `json:"canaries"`
	Rules    []Rule   `json:"rules"`
}

// Group is a named list of CIDRs.
type Group struct {
	Name  string         `json:"name"`
	CIDRs []netip.Prefix `json:"cidrs"`
	Line  int            `json:"-"`
}

// Canary is a known-open service on the same path as the denied ones: if it
// answered during a scan window, the path worked, so silence from a denied
// service is the firewall's doing and not lost packets.
type Canary struct {
	Name   string     `json:"name"`
	Target netip.Addr `json:"target"`
	Proto  string     `json:"proto"`
	Port   uint16     `json:"port"`
	Line   int        `json:"-"`
}

// Rule is one expectation. It covers the services (Ports) on the targets
// (To: group names or CIDRs); the first rule that covers a result decides.
type Rule struct {
	Name     string   `json:"name"`
	Action   Action   `json:"action"`
	To       []string `json:"to"`
	Ports    string   `json:"ports"`
	Denial   Denial   `json:"denial,omitempty"`
	Severity Severity `json:"severity"`
	// Canaries names the canaries that vouch for this rule's path; empty
	// means every canary of the policy.
	Canaries []string `json:"canaries,omitempty"`

	prefixes []netip.Prefix
	ports    map[scope.Port]bool
	portList []scope.Port
	Line     int `json:"-"`
}

// Prefixes returns the rule's targets with group names resolved.
func (r Rule) Prefixes() []netip.Prefix { return slices.Clone(r.prefixes) }

// PortList returns the rule's ports, sorted.
func (r Rule) PortList() []scope.Port { return slices.Clone(r.portList) }

// Covers reports whether the rule covers proto/port on addr.
func (r Rule) Covers(addr netip.Addr, proto string, port uint16) bool {
	if !r.ports[scope.Port{Proto: proto, Number: port}] {
		return false
	}
	addr = addr.Unmap()
	for _, p := range r.prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// ExpectedDenial is the rule's denial style, or the policy's default.
func (d *Document) ExpectedDenial(r Rule) Denial {
	if r.Denial != "" {
		return r.Denial
	}
	return d.Denial
}

// FieldError is one problem in a document, with its place.
type FieldError struct {
	Line   int    `json:"line"`
	Column int    `json:"column"`
	Field  string `json:"field"`
	Msg    string `json:"message"`
}

func (e FieldError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Msg)
}

// ValidationError lists every problem found in a document. It wraps
// ErrInvalid.
type ValidationError struct {
	Errors []FieldError
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString(ErrInvalid.Error())
	for i, fe := range e.Errors {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(fe.Error())
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// namePattern is what names (policy, groups, canaries, rules, vantage
// point) may look like: they appear in reports, logs and SIEM events.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// parser walks a YAML node tree, collecting errors.
type parser struct {
	errs []FieldError
}

func (p *parser) fail(n *yaml.Node, field, format string, args ...any) {
	line, col := 0, 0
	if n != nil {
		line, col = n.Line, n.Column
	}
	p.errs = append(p.errs, FieldError{Line: line, Column: col, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// mapping returns the key/value pairs of n, failing on anything else, on
// duplicate keys and on keys not in known.
func (p *parser) mapping(n *yaml.Node, field string, known ...string) map[string]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		p.fail(n, field, "must be a mapping")
		return nil
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := join(field, k.Value)
		switch {
		case k.Kind != yaml.ScalarNode:
			p.fail(k, field, "keys must be plain strings")
		case !slices.Contains(known, k.Value):
			p.fail(k, name, "unknown field (known: %s)", strings.Join(known, ", "))
		case out[k.Value] != nil:
			p.fail(k, name, "given twice")
		default:
			out[k.Value] = v
		}
	}
	return out
}

func join(parent, child string) string {
	if parent == "" {
		return child
	}
	return parent + "." + child
}

// str reads a scalar string.
func (p *parser) str(n *yaml.Node, field string) (string, bool) {
	if n == nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" || n.Tag == "!!map" || n.Tag == "!!seq" {
		p.fail(n, field, "must be a string")
		return "", false
	}
	return n.Value, true
}

// name reads a required name.
func (p *parser) name(n *yaml.Node, parent *yaml.Node, field string) string {
	if n == nil {
		p.fail(parent, field, "required")
		return ""
	}
	s, ok := p.str(n, field)
	if ok && !namePattern.MatchString(s) {
		p.fail(n, field, "%q is not a name (letters, digits, '.', '_', '-'; at most 64; starting with a letter or digit)", s)
		return ""
	}
	return s
}

// list reads a sequence.
func (p *parser) list(n *yaml.Node, field string, max int) []*yaml.Node {
	if n.Kind != yaml.SequenceNode {
		p.fail(n, field, "must be a list")
		return nil
	}
	if len(n.Content) > max {
		p.fail(n, field, "has %d items, at most %d allowed", len(n.Content), max)
		return n.Content[:max]
	}
	return n.Content
}

// enum reads one of allowed.
func enum[T ~string](p *parser, n *yaml.Node, field string, allowed ...T) (T, bool) {
	s, ok := p.str(n, field)
	if !ok {
		return "", false
	}
	for _, a := range allowed {
		if string(a) == s {
			return a, true
		}
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	p.fail(n, field, "%q is not one of %s", s, strings.Join(names, ", "))
	return "", false
}

// noAliases rejects YAML aliases and anchors anywhere: a policy has no use
// for them, and refusing them keeps expansion bounded by the input size.
func (p *parser) noAliases(n *yaml.Node) {
	stack := []*yaml.Node{n}
	for steps := 0; len(stack) > 0 && steps < 1<<20; steps++ {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if c.Kind == yaml.AliasNode || c.Anchor != "" {
			p.fail(c, "", "YAML anchors and aliases are not allowed")
			return
		}
		stack = append(stack, c.Content...)
	}
}

// Parse reads a policy document (YAML or JSON; JSON is read as the YAML
// subset it is, so errors name lines either way) and validates it. Every
// problem is reported in one *ValidationError (wrapping ErrInvalid).
func Parse(src []byte) (*Document, error) {
	if len(src) > MaxDocument {
		return nil, &ValidationError{Errors: []FieldError{{Line: 1, Msg: fmt.Sprintf("document is %d bytes, at most %d allowed", len(src), MaxDocument)}}}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil, &ValidationError{Errors: []FieldError{{Line: yamlErrLine(err), Msg: "not YAML or JSON: " + err.Error()}}}
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 {
		return nil, &ValidationError{Errors: []FieldError{{Line: 1, Msg: "empty document"}}}
	}
	p := &parser{}
	p.noAliases(&root)
	if len(p.errs) > 0 {
		return nil, &ValidationError{Errors: p.errs}
	}
	doc := p.document(root.Content[0])
	if len(p.errs) > 0 {
		slices.SortStableFunc(p.errs, func(a, b FieldError) int { return a.Line - b.Line })
		return nil, &ValidationError{Errors: p.errs}
	}
	return doc, nil
}

// yamlErrLine digs the line number out of a yaml error ("yaml: line 3: ...").
func yamlErrLine(err error) int {
	m := regexp.MustCompile(`line (\d+)`).FindStringSubmatch(err.Error())
	if m == nil {
		return 1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func (p *parser) document(n *yaml.Node) *Document {
	m := p.mapping(n, "", "version", "name", "vantage_point", "description", "default", "default_severity", "denial", "groups", "canaries", "rules")
	if m == nil {
		return nil
	}
	d := &Document{Default: ActionDeny, DefaultSeverity: SeverityMedium, Denial: DenialEither}
	if v := m["version"]; v == nil {
		p.fail(n, "version", "required (1)")
	} else if s, ok := p.str(v, "version"); ok && s != "1" {
		p.fail(v, "version", "%q: this appliance reads version 1", s)
	} else {
		d.Version = 1
	}
	d.Name = p.name(m["name"], n, "name")
	d.VantagePoint = p.name(m["vantage_point"], n, "vantage_point")
	if v := m["description"]; v != nil {
		if s, ok := p.str(v, "description"); ok {
			if len(s) > 1024 || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 && r != '\n' || r == 0x7f }) {
				p.fail(v, "description", "at most 1024 characters, no control characters")
			} else {
				d.Description = s
			}
		}
	}
	if v := m["default"]; v != nil {
		d.Default, _ = enum(p, v, "default", ActionAllow, ActionDeny, ActionNone)
	}
	if v := m["default_severity"]; v != nil {
		d.DefaultSeverity, _ = enum(p, v, "default_severity", severities...)
	}
	if v := m["denial"]; v != nil {
		d.Denial, _ = enum(p, v, "denial", DenialDrop, DenialReject, DenialEither)
	}
	groups := map[string][]netip.Prefix{}
	if v := m["groups"]; v != nil {
		for i, g := range p.list(v, "groups", MaxGroups) {
			f := fmt.Sprintf("groups[%d]", i)
			gm := p.mapping(g, f, "name", "cidrs")
			if gm == nil {
				continue
			}
			grp := Group{Name: p.name(gm["name"], g, f+".name"), Line: g.Line}
			if grp.Name != "" && groups[grp.Name] != nil {
				p.fail(gm["name"], f+".name", "group %q defined twice", grp.Name)
			}
			if c := gm["cidrs"]; c == nil {
				p.fail(g, f+".cidrs", "required")
			} else {
				for j, cn := range p.list(c, f+".cidrs", MaxCIDRs) {
					if pr, ok := p.prefix(cn, fmt.Sprintf("%s.cidrs[%d]", f, j)); ok {
						grp.CIDRs = append(grp.CIDRs, pr)
					}
				}
				if len(c.Content) == 0 {
					p.fail(c, f+".cidrs", "must not be empty")
				}
			}
			if grp.Name != "" {
				groups[grp.Name] = grp.CIDRs
			}
			d.Groups = append(d.Groups, grp)
		}
	}
	canaries := map[string]bool{}
	if v := m["canaries"]; v != nil {
		for i, c := range p.list(v, "canaries", MaxCanaries) {
			f := fmt.Sprintf("canaries[%d]", i)
			cm := p.mapping(c, f, "name", "target", "proto", "port")
			if cm == nil {
				continue
			}
			cn := Canary{Name: p.name(cm["name"], c, f+".name"), Line: c.Line}
			if canaries[cn.Name] {
				p.fail(cm["name"], f+".name", "canary %q defined twice", cn.Name)
			}
			canaries[cn.Name] = true
			if t := cm["target"]; t == nil {
				p.fail(c, f+".target", "required")
			} else if s, ok := p.str(t, f+".target"); ok {
				a, err := netip.ParseAddr(s)
				if err != nil || a.Zone() != "" {
					p.fail(t, f+".target", "%q is not an IP address", s)
				} else {
					cn.Target = a.Unmap()
				}
			}
			cn.Proto = "tcp"
			if pr := cm["proto"]; pr != nil {
				cn.Proto, _ = enum(p, pr, f+".proto", "tcp", "udp")
			}
			if pt := cm["port"]; pt == nil {
				p.fail(c, f+".port", "required")
			} else if s, ok := p.str(pt, f+".port"); ok {
				n, err := strconv.ParseUint(s, 10, 16)
				if err != nil || n == 0 {
					p.fail(pt, f+".port", "%q is not a port (1-65535)", s)
				} else {
					cn.Port = uint16(n)
				}
			}
			d.Canaries = append(d.Canaries, cn)
		}
	}
	ruleNames := map[string]bool{}
	if v := m["rules"]; v == nil {
		p.fail(n, "rules", "required (a list of rules)")
	} else {
		for i, r := range p.list(v, "rules", MaxRules) {
			if rule, ok := p.rule(r, fmt.Sprintf("rules[%d]", i), groups, canaries); ok {
				if ruleNames[rule.Name] {
					p.fail(r, fmt.Sprintf("rules[%d].name", i), "rule %q defined twice", rule.Name)
				}
				ruleNames[rule.Name] = true
				d.Rules = append(d.Rules, rule)
			}
		}
	}
	if ruleNames["default"] {
		p.fail(m["rules"], "rules", `"default" is reserved for the policy's default`)
	}
	return d
}

func (p *parser) prefix(n *yaml.Node, field string) (netip.Prefix, bool) {
	s, ok := p.str(n, field)
	if !ok {
		return netip.Prefix{}, false
	}
	pr, err := netip.ParsePrefix(s)
	if err != nil {
		a, aerr := netip.ParseAddr(s)
		if aerr != nil || a.Zone() != "" {
			p.fail(n, field, "%q is not a CIDR or address", s)
			return netip.Prefix{}, false
		}
		pr = netip.PrefixFrom(a, a.BitLen())
	}
	if pr.Addr().Is4In6() {
		p.fail(n, field, "%q: write IPv4 prefixes as IPv4", s)
		return netip.Prefix{}, false
	}
	if pr.Masked() != pr {
		p.fail(n, field, "%q has host bits set (did you mean %s?)", s, pr.Masked())
		return netip.Prefix{}, false
	}
	return pr, true
}

func (p *parser) rule(n *yaml.Node, f string, groups map[string][]netip.Prefix, canaries map[string]bool) (Rule, bool) {
	m := p.mapping(n, f, "name", "action", "to", "ports", "denial", "severity", "canaries")
	if m == nil {
		return Rule{}, false
	}
	before := len(p.errs)
	r := Rule{Name: p.name(m["name"], n, f+".name"), Line: n.Line, Severity: ""}
	if a := m["action"]; a == nil {
		p.fail(n, f+".action", "required (allow or deny)")
	} else {
		r.Action, _ = enum(p, a, f+".action", ActionAllow, ActionDeny)
	}
	if t := m["to"]; t == nil {
		p.fail(n, f+".to", "required (group names or CIDRs)")
	} else {
		items := []*yaml.Node{t}
		if t.Kind == yaml.SequenceNode {
			items = p.list(t, f+".to", MaxCIDRs)
			if len(items) == 0 {
				p.fail(t, f+".to", "must not be empty")
			}
		}
		for j, it := range items {
			fj := fmt.Sprintf("%s.to[%d]", f, j)
			s, ok := p.str(it, fj)
			if !ok {
				continue
			}
			r.To = append(r.To, s)
			if g, ok := groups[s]; ok {
				r.prefixes = append(r.prefixes, g...)
				continue
			}
			if strings.ContainsAny(s, ".:") {
				if pr, ok := p.prefix(it, fj); ok {
					r.prefixes = append(r.prefixes, pr)
				}
				continue
			}
			p.fail(it, fj, "%q is neither a group of this policy nor a CIDR", s)
		}
	}
	if pt := m["ports"]; pt == nil {
		p.fail(n, f+".ports", `required (a port spec such as "tcp:22,443 udp:53")`)
	} else if s, ok := p.str(pt, f+".ports"); ok {
		ps, err := scope.ParsePorts(s)
		if err != nil {
			p.fail(pt, f+".ports", "%v", err)
		} else {
			r.Ports = s
			r.portList = ps
			r.ports = make(map[scope.Port]bool, len(ps))
			for _, x := range ps {
				r.ports[x] = true
			}
		}
	}
	if dn := m["denial"]; dn != nil {
		r.Denial, _ = enum(p, dn, f+".denial", DenialDrop, DenialReject, DenialEither)
		if r.Action == ActionAllow {
			p.fail(dn, f+".denial", "only deny rules expect a denial style")
		}
	}
	if sv := m["severity"]; sv == nil {
		p.fail(n, f+".severity", "required (critical, high, medium, low or info)")
	} else {
		r.Severity, _ = enum(p, sv, f+".severity", severities...)
	}
	if cs := m["canaries"]; cs != nil {
		for j, c := range p.list(cs, f+".canaries", MaxCanaries) {
			fj := fmt.Sprintf("%s.canaries[%d]", f, j)
			if s, ok := p.str(c, fj); ok {
				if !canaries[s] {
					p.fail(c, fj, "no canary %q in this policy", s)
				}
				r.Canaries = append(r.Canaries, s)
			}
		}
		if r.Action == ActionAllow && len(cs.Content) > 0 {
			p.fail(cs, f+".canaries", "only deny rules use canaries")
		}
	}
	return r, len(p.errs) == before
}

// Canonical returns the document's canonical JSON: the fields in a fixed
// order, no insignificant whitespace. Stored policies, their SHA-256 and
// reports use this form, so a YAML and a JSON source saying the same thing
// hash the same.
func (d *Document) Canonical() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	c := *d
	if c.Groups == nil {
		c.Groups = []Group{}
	}
	if c.Canaries == nil {
		c.Canaries = []Canary{}
	}
	if c.Rules == nil {
		c.Rules = []Rule{}
	}
	if err := enc.Encode(c); err != nil {
		// Every field is a string, number, address or list of those.
		panic("policy: encode: " + err.Error())
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// SHA256 is the hex SHA-256 of Canonical.
func (d *Document) SHA256() string {
	s := sha256.Sum256(d.Canonical())
	return hex.EncodeToString(s[:])
}

// canary returns the canary called name.
func (d *Document) canary(name string) (Canary, bool) {
	i := slices.IndexFunc(d.Canaries, func(c Canary) bool { return c.Name == name })
	if i < 0 {
		return Canary{}, false
	}
	return d.Canaries[i], true
}
