package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// NamePrefix starts the name of every namespace the lab creates, followed by
// the creating process id, so Sweep can tell a live lab from a stale one.
const NamePrefix = "fiqlab-"

// netnsDir is where iproute2 keeps named network namespaces.
const netnsDir = "/run/netns"

// ErrNotRoot is returned by New when the process cannot create namespaces.
var ErrNotRoot = errors.New("lab: needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to build network namespaces")

// ErrNoNetem is returned when a delay is asked for on a kernel without the
// netem queueing discipline (loss does not need it).
var ErrNoNetem = errors.New("lab: this kernel has no sch_netem; delay is unavailable (loss works without it)")

// Do runs f on an OS thread that has joined the named network namespace.
// Sockets f opens stay in that namespace for their whole life, whichever
// thread later uses them, so Do is how listeners, captures and in-process
// dials are placed in the lab.
//
// The thread is locked and never unlocked: when the goroutine ends the
// runtime destroys the thread instead of returning it, still inside the lab
// namespace, to the scheduler, where an unrelated socket could be opened in
// the wrong namespace.
func Do(ns string, f func() error) error {
	if strings.ContainsRune(ns, '/') || ns == "" {
		return fmt.Errorf("lab: bad namespace name %q", ns)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(filepath.Join(netnsDir, ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("lab: open namespace %s: %w", ns, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("lab: enter namespace %s: %w", ns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// runner runs iproute2/nftables/tc commands and keeps their output so a
// failing test can print what the lab did.
type runner struct {
	log func(format string, args ...any)
}

// run executes name args... and returns its combined output; a non-zero
// exit becomes an error carrying that output.
func (r runner) run(ctx context.Context, stdin string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if r.log != nil {
		r.log("$ %s %s\n%s", name, strings.Join(args, " "), out.String())
	}
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// Exec runs name args... the way the lab runs ip, nft, tc and sysctl, for
// the demo sandbox: stdin (when set) on its standard input, the combined
// output returned, and a non-zero exit an error carrying that output. logf,
// when set, receives the command and its output.
func Exec(ctx context.Context, logf func(format string, args ...any), stdin, name string, args ...string) (string, error) {
	return runner{log: logf}.run(ctx, stdin, name, args...)
}

// ipn runs "ip -n ns args...".
func (r runner) ipn(ctx context.Context, ns string, args ...string) error {
	_, err := r.run(ctx, "", "ip", append([]string{"-n", ns}, args...)...)
	return err
}

// sysctl sets kernel parameters inside a namespace (the ones used here are
// all per network namespace, so the host's values are never touched).
func (r runner) sysctl(ctx context.Context, ns string, kv ...string) error {
	args := append([]string{"netns", "exec", ns, "sysctl", "-q", "-w"}, kv...)
	_, err := r.run(ctx, "", "ip", args...)
	return err
}

// Undo is what a lab, or the demo sandbox, must undo when it ends: the
// closers it registered (listeners, captures) and its namespaces. The zero
// value is ready to use.
type Undo struct {
	mu      sync.Mutex
	closers []io.Closer
	done    bool
}

// Add registers c to be closed at teardown; closers run last first.
func (u *Undo) Add(c io.Closer) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closers = append(u.closers, c)
}

// Teardown closes the closers, last first, then deletes each namespace of
// names that still exists, which removes its veth links, routes and
// nftables tables with it. It runs once (later calls return nil), keeps
// going after errors and returns them all. It is not bound to the context
// that built the namespaces (an interrupted lab or demo still cleans up):
// each deletion has a deadline of its own. logf, when set, receives each
// command and its output.
func (u *Undo) Teardown(names []string, logf func(format string, args ...any)) error {
	u.mu.Lock()
	if u.done {
		u.mu.Unlock()
		return nil
	}
	u.done = true
	closers := u.closers
	u.closers = nil
	u.mu.Unlock()
	var errs []error
	for i := len(closers) - 1; i >= 0; i-- {
		if err := closers[i].Close(); err != nil {
			errs = append(errs, err)
		}
	}
	r := runner{log: logf}
	for _, ns := range names {
		if err := r.deleteNamespace(ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// deleteNamespace deletes ns if it exists, within 30 seconds of its own.
func (r runner) deleteNamespace(ns string) error {
	if _, err := os.Stat(netnsDir + "/" + ns); err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := r.run(ctx, "", "ip", "netns", "del", ns)
	return err
}

// Sweep deletes namespaces left by earlier lab processes that died without
// tearing down (a killed test binary, a crashed benchmark). Namespaces of
// processes still alive, including other labs running right now, are kept.
// It returns the names it deleted.
func Sweep(ctx context.Context) ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lab: sweep: %w", err)
	}
	var deleted []string
	var errs []error
	r := runner{}
	for _, e := range entries {
		pid, ok := ownerPID(e.Name())
		if !ok || processAlive(pid) {
			continue
		}
		if _, err := r.run(ctx, "", "ip", "netns", "del", e.Name()); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, e.Name())
	}
	return deleted, errors.Join(errs...)
}

// ownerPID parses the process id out of a lab namespace name
// ("fiqlab-<pid>-<id>-<role>").
func ownerPID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, NamePrefix)
	if !ok {
		return 0, false
	}
	pidStr, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

// processAlive reports whether pid exists (signal 0 probes without sending).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
