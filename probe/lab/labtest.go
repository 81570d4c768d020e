package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// NewT builds a lab for a test: it skips the test with a clear message when
// not root, sweeps namespaces left by dead earlier runs, tears the lab down
// in t.Cleanup (also when the test fails or panics), and prints the lab's
// command log only when the test failed.
func NewT(t testing.TB, opts Options) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network lab needs root (ip netns, nftables, tc); run the suite as root, as CI does")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if gone, err := Sweep(ctx); err != nil {
		t.Logf("lab: sweep of stale namespaces: %v", err)
	} else if len(gone) > 0 {
		t.Logf("lab: removed stale namespaces %v", gone)
	}
	var (
		mu  sync.Mutex
		buf bytes.Buffer
	)
	user := opts.Logf
	opts.Logf = func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(&buf, format+"\n", args...)
		if user != nil {
			user(format, args...)
		}
	}
	l, err := New(ctx, opts)
	if err != nil {
		t.Logf("lab log:\n%s", buf.String())
		if errors.Is(err, ErrNotRoot) {
			t.Skip(err)
		}
		t.Fatalf("build lab: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab teardown: %v", err)
		}
		if t.Failed() {
			mu.Lock()
			t.Logf("lab log:\n%s", buf.String())
			mu.Unlock()
		}
	})
	return l
}
