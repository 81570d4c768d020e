package probe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"firewalliq/probe/safety"
)

// prefixes is a tiny containment set for tests.
type prefixes []netip.Prefix

func (ps prefixes) Contains(a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func seqOf(as ...netip.Addr) func(func(netip.Addr) bool) {
	return func(yield func(netip.Addr) bool) {
		for _, a := range as {
			if !yield(a) {
				return
			}
		}
	}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 || !canRaw() {
		t.Skip("needs root / CAP_NET_RAW for raw sockets; skipping")
	}
}

// listenTCP opens a listener on addr:0 that accepts and holds connections
// (optionally writing greeting), and returns its port.
func listenTCP(t *testing.T, addr string, greeting string) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if greeting != "" {
				_, _ = c.Write([]byte(greeting))
			}
			go func() { time.Sleep(2 * time.Second); c.Close() }()
		}
	}()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// closedPort returns a TCP port on addr with nothing listening.
func closedPort(t *testing.T, addr string) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	p := uint16(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	return p
}

type collector struct {
	mu  sync.Mutex
	res []Result
}

func (c *collector) add(r Result) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.res = append(c.res, r)
	return nil
}

func (c *collector) find(kind Kind, port uint16) (Result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.res {
		if r.Probe == kind && r.Port == port {
			return r, true
		}
	}
	return Result{}, false
}

func runEngine(t *testing.T, cfg Config) (Summary, *collector) {
	t.Helper()
	col := &collector{}
	cfg.Results = col.add
	if cfg.Limits.Profile == 0 {
		cfg.Limits.Profile = 2000
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 300 * time.Millisecond
	}
	if cfg.Retries == 0 {
		cfg.Retries = 1
	}
	e, err := newTestEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := e.Run(ctx)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return s, col
}

func TestEngineTCPLoopback(t *testing.T) {
	for _, fam := range []struct{ name, addr string }{{"v4", "127.0.0.1"}, {"v6", "::1"}} {
		for _, mode := range []string{"raw", "connect"} {
			t.Run(fam.name+"/"+mode, func(t *testing.T) {
				if mode == "raw" {
					needRoot(t)
				}
				open := listenTCP(t, fam.addr, "")
				closed := closedPort(t, fam.addr)
				a := netip.MustParseAddr(fam.addr)
				s, col := runEngine(t, Config{
					ScanID: "t", Targets: seqOf(a), Scope: prefixes{netip.PrefixFrom(a, a.BitLen())},
					Ports: []Port{{"tcp", open}, {"tcp", closed}}, Kinds: []Kind{KindTCPSyn},
					NoRaw: mode == "connect",
				})
				wantKind, wantFrom := KindTCPSyn, Kind("")
				if mode == "connect" {
					wantKind, wantFrom = KindTCPConnect, KindTCPSyn
				}
				for _, c := range []struct {
					port  uint16
					state State
				}{{open, StateOpen}, {closed, StateClosed}} {
					r, ok := col.find(wantKind, c.port)
					if !ok {
						t.Fatalf("no result for port %d: %+v", c.port, col.res)
					}
					if r.State != c.state || r.Fallback != wantFrom || r.Target != fam.addr {
						t.Errorf("port %d: %+v, want state %s fallback %q", c.port, r, c.state, wantFrom)
					}
					if mode == "raw" && r.TTL == 0 {
						t.Errorf("port %d: no TTL", c.port)
					}
				}
				if s.PacketsSent < 2 || s.Probes != 2 || s.RefusedPackets != 0 || s.States[StateOpen] != 1 || s.States[StateClosed] != 1 {
					t.Errorf("summary %+v", s)
				}
			})
		}
	}
}

func TestRunOnce(t *testing.T) {
	e, err := New(Config{Targets: seqOf(), Scope: prefixes{}, Kinds: []Kind{KindTCPConnect}, Limits: Limits{Profile: 10}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Run(context.Background()); !errors.Is(err, ErrConfig) {
		t.Fatalf("second run: %v", err)
	}
}

func TestNewRefuses(t *testing.T) {
	a := netip.MustParseAddr("127.0.0.1")
	base := func() Config {
		return Config{Targets: seqOf(a), Scope: prefixes{}, Kinds: []Kind{KindTCPConnect}, Limits: Limits{Profile: 400, Scope: 300}}
	}
	tests := []struct {
		name string
		mod  func(*Config)
		want error
	}{
		{"rate above the scope cap", func(c *Config) { c.Limits.Requested = 301 }, ErrRateAboveCap},
		{"negative profile cap", func(c *Config) { c.Limits.Profile = -1 }, ErrConfig},
		{"unknown kind", func(c *Config) { c.Kinds = []Kind{"tcp-xmas"} }, ErrConfig},
		{"no scope", func(c *Config) { c.Scope = nil }, ErrConfig},
		{"bad port protocol", func(c *Config) { c.Ports = []Port{{"sctp", 1}} }, ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mod(&c)
			if _, err := New(c); !errors.Is(err, tt.want) {
				t.Fatalf("New: %v, want %v", err, tt.want)
			}
		})
	}
	c := base()
	c.Limits.Requested = 300
	e, err := New(c)
	if err != nil || e.Rate() != 300 {
		t.Fatalf("rate at the cap: %v %v", e, err)
	}
}

func TestKindsClosedList(t *testing.T) {
	want := []Kind{"tcp-syn", "tcp-connect", "udp", "icmp-echo", "tls-hello", "banner"}
	if !slices.Equal(Kinds(), want) {
		t.Fatalf("Kinds() = %v, want exactly %v", Kinds(), want)
	}
}

// TestVerdictWaitsForTap: a probe is declared unanswered only once the tap
// has drained past its deadline, or has lagged longer than maxTapLag.
func TestVerdictWaitsForTap(t *testing.T) {
	e, _, _ := testEngine(t)
	e.tap = &tap{} // any tap: only its presence matters here
	deadline := time.Unix(1000, 0)
	tests := []struct {
		name    string
		drained time.Time
		now     time.Time
		want    bool
	}{
		{"tap behind", deadline.Add(-time.Millisecond), deadline.Add(time.Second), false},
		{"tap drained after the deadline", deadline.Add(time.Millisecond), deadline.Add(time.Millisecond), true},
		{"tap stuck too long", deadline.Add(-time.Hour), deadline.Add(maxTapLag + time.Millisecond), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.drained.Store(tt.drained.UnixNano())
			if got := e.tapCaughtUp(deadline, tt.now); got != tt.want {
				t.Fatalf("caught up %v, want %v", got, tt.want)
			}
		})
	}
	if e.tapLagged.Load() != 1 {
		t.Fatalf("lagged %d, want 1", e.tapLagged.Load())
	}
}

// testProfile is a permissive profile for this package's tests, which
// probe their own loopback listeners and namespaces faster than the default
// profile allows. Only newEngine takes it; New always loads and verifies
// the compiled-in profile.
func testProfile() safety.Profile {
	return safety.Profile{ID: "package-test", Version: 1, GlobalPPS: 10_000_000, PerHostPPS: 10_000_000,
		MaxConcurrentScans: 1, MaxTargets: 1 << 24, ProbeKinds: safety.AllKinds(),
		UDPPayloads: []string{PayloadEmpty, PayloadDNS, PayloadNTP}}
}

func newTestEngine(cfg Config) (*Engine, error) { return newEngine(cfg, testProfile()) }

// TestNewEnforcesCompiledProfile: whatever a Go caller passes, New holds the
// engine to the verified compiled-in profile; nothing is clamped.
func TestNewEnforcesCompiledProfile(t *testing.T) {
	prof, err := safety.Load()
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr("127.0.0.1")
	base := func() Config {
		return Config{Targets: seqOf(a), Scope: prefixes{netip.MustParsePrefix("127.0.0.1/32")}, Ports: []Port{{"tcp", 1}}, Kinds: []Kind{KindTCPConnect}}
	}
	tests := []struct {
		name string
		mod  func(*Config)
		want error
	}{
		{"global cap above the profile", func(c *Config) { c.Limits.Profile = prof.GlobalPPS + 1 }, ErrRateAboveCap},
		{"per-host cap above the profile", func(c *Config) { c.Limits.PerHost = prof.PerHostPPS + 1 }, ErrRateAboveCap},
		{"requested above the profile", func(c *Config) { c.Limits.Requested = prof.GlobalPPS + 1 }, ErrRateAboveCap},
		{"payload off the profile", func(c *Config) { c.UDPPayloads = []string{"exploit"} }, ErrConfig},
		{"defaults are the profile's", func(*Config) {}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mod(&c)
			e, err := New(c)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("New = %v, want %v", err, tt.want)
			}
			if err == nil && (e.cfg.Limits.Profile != prof.GlobalPPS || e.cfg.Limits.PerHost != prof.PerHostPPS || e.Rate() > prof.GlobalPPS) {
				t.Fatalf("defaults %+v rate %d, want the profile's %d/%d", e.cfg.Limits, e.Rate(), prof.GlobalPPS, prof.PerHostPPS)
			}
		})
	}
}
