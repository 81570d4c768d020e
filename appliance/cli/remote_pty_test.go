//go:build linux

package cli

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"firewalliq/appliance/auth"
)

// openPTY opens a pseudo-terminal pair, or skips the test where there is
// none (a container without /dev/pts).
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Skipf("unlock pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Skipf("pseudo-terminal number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("open pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

// TestLoginOnTerminal: on a terminal, login asks with prompts, reads the
// password and codes without echo, and shows the enrolment secret with a
// QR code.
func TestLoginOnTerminal(t *testing.T) {
	master, tty := openPTY(t)
	e := startE2E(t)
	screen := &syncBuffer{}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			screen.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	// waitFor waits until the screen shows what, after the screen's
	// length at the previous answer.
	from := 0
	waitFor := func(what string) string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if s := screen.String(); strings.Contains(s[from:], what) {
				return s
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("terminal never showed %q; it shows:\n%s", what, screen.String())
		return ""
	}
	answer := func(s string) {
		t.Helper()
		from = len(screen.String())
		if _, err := master.Write([]byte(s + "\r")); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan int, 1)
	vars := map[string]string{"XDG_CONFIG_HOME": e.xdg}
	env := &Env{Stdin: tty, Stdout: tty, Stderr: tty, Getenv: func(k string) string { return vars[k] }, Now: e.clock}
	go func() {
		done <- Run(context.Background(), env, []string{"login", "--addr", e.addr, "--user", "root", "--cert-sha256", e.pin})
	}()

	waitFor("password: ")
	answer(e.res.OneTimePassword)
	s := waitFor("first TOTP code from the authenticator: ")
	m := regexp.MustCompile(`secret: ([A-Z2-7]+)`).FindStringSubmatch(s)
	if m == nil || m[1] != e.res.TOTPSecret || !strings.Contains(s, "otpauth://") || !strings.Contains(s, "█") {
		t.Fatalf("enrolment screen lacks the secret, URI or QR code:\n%s", s)
	}
	e.now.Add(int64(30 * time.Second))
	code, err := auth.TOTPCode(m[1], e.clock())
	if err != nil {
		t.Fatal(err)
	}
	answer(code)
	waitFor("new password (at least 12 characters): ")
	answer("a new long password 1")
	waitFor("new password again: ")
	answer("a new long password 1")
	select {
	case rc := <-done:
		if rc != 0 {
			t.Fatalf("login exit %d:\n%s", rc, screen.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("login did not finish:\n%s", screen.String())
	}
	out := waitFor("logged in to")
	for _, secret := range []string{e.res.OneTimePassword, code, "a new long password 1"} {
		if strings.Contains(out, secret) {
			t.Fatalf("the terminal echoed %q:\n%s", secret, out)
		}
	}
}
