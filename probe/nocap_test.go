package probe

import (
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"testing"
)

// noCapEnv marks the child test process that runs without CAP_NET_RAW.
const noCapEnv = "FIQ_PROBE_NOCAP_CHILD"

// TestWithoutCapNetRaw re-runs itself with CAP_NET_RAW removed from the
// bounding set (setpriv), so the engine really cannot open raw sockets:
// tcp-syn must fall back to tcp-connect on its own and say so in every
// result, and udp must be refused rather than approximated.
func TestWithoutCapNetRaw(t *testing.T) {
	if os.Getenv(noCapEnv) == "" {
		needRoot(t)
		if _, err := exec.LookPath("setpriv"); err != nil {
			t.Skip("needs setpriv (util-linux) to drop CAP_NET_RAW")
		}
		cmd := exec.Command("setpriv", "--bounding-set", "-net_raw", os.Args[0], "-test.run=^TestWithoutCapNetRaw$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), noCapEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || testing.Verbose() {
			t.Logf("child:\n%s", out)
		}
		if err != nil {
			t.Fatalf("child: %v", err)
		}
		return
	}
	if canRaw() {
		t.Fatal("child still has raw sockets")
	}
	open := listenTCP(t, "127.0.0.1", "")
	closed := closedPort(t, "127.0.0.1")
	a := netip.MustParseAddr("127.0.0.1")
	scope := prefixes{netip.MustParsePrefix("127.0.0.1/32")}
	if _, err := New(Config{Targets: seqOf(a), Scope: scope, Ports: []Port{{"udp", 53}}, Kinds: []Kind{KindUDP}, Limits: Limits{Profile: 100}}); !errors.Is(err, ErrNoRaw) {
		t.Fatalf("udp without CAP_NET_RAW: %v, want ErrNoRaw", err)
	}
	s, col := runEngine(t, Config{Targets: seqOf(a), Scope: scope, Ports: []Port{{"tcp", open}, {"tcp", closed}}, Kinds: []Kind{KindTCPSyn}})
	if s.Transport != "connect" {
		t.Errorf("transport %q", s.Transport)
	}
	for port, st := range map[uint16]State{open: StateOpen, closed: StateClosed} {
		r, ok := col.find(KindTCPConnect, port)
		if !ok || r.State != st || r.Fallback != KindTCPSyn {
			t.Errorf("port %d: %+v, want %s as tcp-connect with fallback_from tcp-syn", port, r, st)
		}
	}
}
