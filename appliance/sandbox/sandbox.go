package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"

	"firewalliq/probe/lab"
	"firewalliq/probe/safety"
)

// ErrNotRoot means the sandbox cannot be built: namespaces need root.
var ErrNotRoot = errors.New("sandbox: needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to build network namespaces")

// Addressing. 198.18.0.0/15 is reserved for benchmarking (RFC 2544); these
// addresses exist only inside the sandbox's namespaces.
const (
	fwOutside   = "198.18.0.1"
	scannerAddr = "198.18.0.2"
	fwDMZ       = "198.18.10.1"
	dmzHost     = "198.18.10.10"
	fwInternal  = "198.18.20.1"
	intHost     = "198.18.20.10"
	dmzNet      = "198.18.10.0/24"
	intNet      = "198.18.20.0/24"
	// Interface names inside the firewall namespace (each namespace has
	// its own interface table).
	ifOutside  = "vout"
	ifDMZ      = "vdmz"
	ifInternal = "vint"
	legIf      = "eth0"
	// table is the firewall's nftables table (in the firewall namespace).
	table = "fiqdemo"
)

// Sandbox is a running namespace sandbox. Close tears it down.
type Sandbox struct {
	// ID is the common part of every namespace name: lab.NamePrefix, the
	// creating process id and a random suffix, so lab.Sweep removes the
	// namespaces of a demo that was killed before it could tear down.
	ID string
	// Scanner is the outside zone's namespace: the appliance's scan runs
	// there. Firewall, DMZ and Internal are the other namespaces.
	Scanner, Firewall, DMZ, Internal string

	logf func(format string, args ...any)
	undo lab.Undo
}

// Options configure New.
type Options struct {
	// Logf receives every command the sandbox runs and its output.
	Logf func(format string, args ...any)
}

// Sweep removes namespaces left by an earlier demo (or lab) process that
// died without tearing down; those of live processes are kept.
func Sweep(ctx context.Context) ([]string, error) { return lab.Sweep(ctx) }

// New builds the sandbox: four namespaces, veth links between the
// firewall and each zone, addresses, routes, forwarding, the firewall's
// nftables ruleset (with its mistakes) and the zones' listeners. On error,
// and when ctx ends while building, everything built so far is removed.
func New(ctx context.Context, o Options) (*Sandbox, error) {
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	for _, tool := range []string{"ip", "nft", "sysctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("sandbox: %s not installed (iproute2, nftables, procps): %w", tool, err)
		}
	}
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("sandbox: id: %w", err)
	}
	id := fmt.Sprintf("%s%d-%s-demo", lab.NamePrefix, os.Getpid(), hex.EncodeToString(rnd[:]))
	s := &Sandbox{ID: id, Scanner: id + "-out", Firewall: id + "-fw", DMZ: id + "-dmz", Internal: id + "-int", logf: o.Logf}
	if err := s.build(ctx); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return s, nil
}

// Namespaces lists the sandbox's namespaces.
func (s *Sandbox) Namespaces() []string { return []string{s.Scanner, s.Firewall, s.DMZ, s.Internal} }

// run executes name args (lab.Exec) and returns an error carrying its
// output.
func (s *Sandbox) run(ctx context.Context, stdin, name string, args ...string) error {
	if _, err := lab.Exec(ctx, s.logf, stdin, name, args...); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	return nil
}

func (s *Sandbox) ipn(ctx context.Context, ns string, args ...string) error {
	return s.run(ctx, "", "ip", append([]string{"-n", ns}, args...)...)
}

func (s *Sandbox) build(ctx context.Context) error {
	for _, ns := range s.Namespaces() {
		if err := s.run(ctx, "", "ip", "netns", "add", ns); err != nil {
			return err
		}
		// Per-namespace settings (the host's are never touched): no ICMP
		// rate limit, so REJECTs and closed ports always answer.
		if err := s.run(ctx, "", "ip", "netns", "exec", ns, "sysctl", "-q", "-w",
			"net.ipv4.icmp_ratelimit=0", "net.ipv4.icmp_msgs_per_sec=1000000", "net.ipv4.icmp_msgs_burst=1000000"); err != nil {
			return err
		}
		if err := s.ipn(ctx, ns, "link", "set", "lo", "up"); err != nil {
			return err
		}
	}
	if err := s.run(ctx, "", "ip", "netns", "exec", s.Firewall, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"); err != nil {
		return err
	}
	// Each veth pair is made between two sandbox namespaces directly, never
	// in the root namespace.
	legs := []struct{ fwIf, peer, fwAddr, peerAddr, plen string }{
		{ifOutside, s.Scanner, fwOutside, scannerAddr, "24"},
		{ifDMZ, s.DMZ, fwDMZ, dmzHost, "24"},
		{ifInternal, s.Internal, fwInternal, intHost, "24"},
	}
	for _, g := range legs {
		for _, st := range [][]string{
			{s.Firewall, "link", "add", g.fwIf, "type", "veth", "peer", "name", legIf, "netns", g.peer},
			{s.Firewall, "addr", "add", g.fwAddr + "/" + g.plen, "dev", g.fwIf},
			{s.Firewall, "link", "set", g.fwIf, "up"},
			{g.peer, "addr", "add", g.peerAddr + "/" + g.plen, "dev", legIf},
			{g.peer, "link", "set", legIf, "up"},
			{g.peer, "route", "add", "default", "via", g.fwAddr},
		} {
			if err := s.ipn(ctx, st[0], st[1:]...); err != nil {
				return err
			}
		}
	}
	if err := s.run(ctx, Ruleset(), "ip", "netns", "exec", s.Firewall, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("sandbox: load the firewall's ruleset: %w", err)
	}
	for _, z := range []struct {
		ns   string
		list []lab.Service
	}{{s.DMZ, dmzServices()}, {s.Internal, internalServices()}} {
		if err := ctx.Err(); err != nil {
			return err
		}
		cl, err := lab.StartServices(z.ns, z.list)
		if err != nil {
			return fmt.Errorf("sandbox: services in %s: %w", z.ns, err)
		}
		s.undo.Add(cl)
	}
	return ctx.Err()
}

// dmzServices are the DMZ host's listeners.
func dmzServices() []lab.Service {
	return []lab.Service{
		{Proto: lab.TCP, Port: 22, Kind: lab.Banner, Banner: "SSH-2.0-OpenSSH_9.2 dmz-web-01\r\n"},
		{Proto: lab.TCP, Port: 25, Kind: lab.Banner, Banner: "220 mail.dmz.example ESMTP\r\n"},
		{Proto: lab.TCP, Port: 80, Kind: lab.Silent},
		{Proto: lab.TCP, Port: 443, Kind: lab.TLS},
		{Proto: lab.UDP, Port: 53, Kind: lab.DNS},
	}
}

// internalServices are the internal host's listeners.
func internalServices() []lab.Service {
	return []lab.Service{
		{Proto: lab.TCP, Port: 22, Kind: lab.Banner, Banner: "SSH-2.0-OpenSSH_9.2 db-01\r\n"},
		{Proto: lab.TCP, Port: 443, Kind: lab.TLS},
		{Proto: lab.TCP, Port: 5432, Kind: lab.Silent},
		{Proto: lab.UDP, Port: 53, Kind: lab.DNS},
	}
}

// Ruleset is the firewall's nftables ruleset. It filters what enters from
// the outside zone and lets everything else (the zones' replies) pass, so
// it needs no connection tracking. Three rules are deliberately wrong; the
// comments say so, and the demo policy finds each of them.
func Ruleset() string {
	return fmt.Sprintf(`table inet %[1]s {
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname != %[2]q accept comment "replies and inside traffic"
		iifname %[2]q ip daddr %[3]s tcp dport { 80, 443 } accept comment "dmz web"
		iifname %[2]q ip daddr %[3]s udp dport 53 accept comment "dmz dns"
		iifname %[2]q ip daddr %[3]s tcp dport 2525 accept comment "dmz mail: MISTAKE, a typo for 25, so mail is blocked"
		iifname %[2]q ip daddr %[3]s tcp dport 22 accept comment "vendor access: MISTAKE, left in, the admin port is exposed"
		iifname %[2]q ip daddr %[4]s tcp dport 5432 reject with icmpx type admin-prohibited comment "database: MISTAKE, REJECT where the policy says DROP"
		iifname %[2]q drop comment "default: drop"
	}
}
`, table, ifOutside, dmzNet, intNet)
}

// Plan is the sandbox's scan plan and expected policy.
func (s *Sandbox) Plan() Plan { return SandboxPlan() }

// SandboxPlan is the plan of a namespace sandbox (its addressing is fixed).
func SandboxPlan() Plan {
	return Plan{
		Mode:   ModeSandbox,
		CIDRs:  []string{dmzHost + "/32", intHost + "/32"},
		Ports:  "tcp:22,25,80,443,5432 udp:53",
		Probes: []safety.Kind{safety.KindTCPSyn, safety.KindUDP, safety.KindTLSHello, safety.KindBanner},
		MaxPPS: 100, PolicyName: "demo-perimeter",
		Policy: `# What the outside (the internet) may reach: the DMZ's web, mail and DNS,
# nothing else; everything denied is dropped, silently.
version: 1
name: demo-perimeter
vantage_point: outside
description: The demo company's perimeter, seen from the internet.
default: deny
default_severity: medium
denial: drop
groups:
  - {name: dmz, cidrs: [` + dmzNet + `]}
  - {name: internal, cidrs: [` + intNet + `]}
canaries:
  - {name: dmz-web, target: ` + dmzHost + `, proto: tcp, port: 443}
rules:
  - {name: dmz-web, action: allow, to: [dmz], ports: "tcp:80,443", severity: high}
  - {name: dmz-mail, action: allow, to: [dmz], ports: "tcp:25", severity: high}
  - {name: dmz-dns, action: allow, to: [dmz], ports: "udp:53", severity: medium}
  - {name: no-admin-from-outside, action: deny, to: [dmz, internal], ports: "tcp:22", severity: critical}
  - {name: internal-db, action: deny, to: [internal], ports: "tcp:5432", severity: high}
`,
		Hosts: []Host{
			{Zone: "dmz", Addr: dmzHost, Services: []string{"ssh tcp/22", "smtp tcp/25", "http tcp/80", "https tcp/443", "dns udp/53"}},
			{Zone: "internal", Addr: intHost, Services: []string{"ssh tcp/22", "https tcp/443", "postgres tcp/5432", "dns udp/53"}},
		},
		Firewall: []string{
			"outside -> dmz tcp/80,443 accept (web)",
			"outside -> dmz udp/53 accept (dns)",
			"outside -> dmz tcp/2525 accept (mail)          <- mistake: a typo for tcp/25",
			"outside -> dmz tcp/22 accept (vendor access)   <- mistake: admin port left open",
			"outside -> internal tcp/5432 reject            <- mistake: REJECT, policy says DROP",
			"outside -> anything else drop",
		},
		Mistakes: []Mistake{
			{Kind: KindExposure, Target: dmzHost, Proto: "tcp", Port: 22, What: "an admin port exposed to the outside"},
			{Kind: KindBlocked, Target: dmzHost, Proto: "tcp", Port: 25, What: "mail must be reachable but is not"},
			{Kind: KindDenialStyle, Target: intHost, Proto: "tcp", Port: 5432, What: "the database is refused by REJECT where the policy expects DROP"},
		},
		NotInScope: []string{"198.18.10.11", "10.0.0.1"},
	}
}

// Command returns a command that runs name inside the scanner namespace
// ("ip netns exec"): every socket the process opens lives in the outside
// zone, except those it inherits.
func (s *Sandbox) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", s.Scanner, name}, args...)...)
}

// Close stops the listeners and deletes every namespace (which removes the
// veth links, routes and the firewall's nftables table with them), the way
// a lab ends (lab.Undo). It is safe to call more than once and keeps
// going after errors.
func (s *Sandbox) Close() error { return s.undo.Teardown(s.Namespaces(), s.logf) }
