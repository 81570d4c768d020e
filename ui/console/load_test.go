package console_test

import (
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"

	"firewalliq/appliance/auth"
)

// TestDashboardLoad runs wrk against the signed-in dashboard (50
// connections, 10 s) and logs its figures and the process's resident
// memory. It is a benchmark, not a check: it runs only with
// FIQ_CONSOLE_WRK=1 (see docs/console.md).
func TestDashboardLoad(t *testing.T) {
	if os.Getenv("FIQ_CONSOLE_WRK") == "" {
		t.Skip("set FIQ_CONSOLE_WRK=1 to measure the dashboard with wrk")
	}
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		t.Skip("wrk is not installed (Debian: apt-get install -y wrk)")
	}
	f := newFixture(t)
	admin, _, _ := f.firstRun("root", f.init.OneTimePassword)
	u, _ := url.Parse(f.srv.URL)
	var cookie string
	for _, c := range admin.c.Jar.Cookies(u) {
		if c.Name == auth.SessionCookieName {
			cookie = c.Name + "=" + c.Value
		}
	}
	if cookie == "" {
		t.Fatal("no session cookie")
	}
	t.Logf("RSS before: %s", rss())
	// FIQ_CONSOLE_WRK_DURATION (a wrk duration such as 20s) lengthens the
	// run, as docs/benchmarks.md's medians use.
	dur := "10s"
	if v := os.Getenv("FIQ_CONSOLE_WRK_DURATION"); v != "" {
		dur = v
	}
	out, err := exec.Command(wrk, "-t2", "-c50", "-d"+dur, "--latency", "-H", "Cookie: "+cookie, f.srv.URL+"/console/").CombinedOutput()
	if err != nil {
		t.Fatalf("wrk: %v\n%s", err, out)
	}
	t.Logf("wrk GET /console/ (dashboard):\n%s", out)
	t.Logf("RSS after: %s", rss())
	if !strings.Contains(string(out), "Requests/sec") {
		t.Fatal("wrk printed no rate")
	}
}

// rss is this process's resident set size (the server runs in it).
func rss() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:"))
		}
	}
	return "unknown"
}
