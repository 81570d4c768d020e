package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// closeFunc is an io.Closer made of a function.
type closeFunc func() error

func (f closeFunc) Close() error { return f() }

// TestUndo checks the teardown labs and the demo sandbox share: closers
// run last first and all of them despite an error, every namespace still
// there is deleted (a missing one is no error), the errors come back
// joined, and a second teardown does nothing.
func TestUndo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (ip netns)")
	}
	ctx := context.Background()
	r := runner{}
	// Named like a lab's, so Sweep removes them if this test dies.
	base := fmt.Sprintf("%s%d-undo", NamePrefix, os.Getpid())
	names := []string{base + "-a", base + "-b", base + "-missing"}
	for _, ns := range names[:2] {
		if _, err := r.run(ctx, "", "ip", "netns", "add", ns); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, ns := range names[:2] {
			_ = r.deleteNamespace(ns)
		}
	})
	var order []int
	closeErr := errors.New("closer 1 failed")
	var u Undo
	for i := range 3 {
		u.Add(closeFunc(func() error {
			order = append(order, i)
			if i == 1 {
				return closeErr
			}
			return nil
		}))
	}
	var log strings.Builder
	err := u.Teardown(names, func(format string, args ...any) { fmt.Fprintf(&log, format, args...) })
	tests := []struct {
		name string
		ok   bool
	}{
		{"closers ran last first, all of them", slices.Equal(order, []int{2, 1, 0})},
		{"the closer's error is returned", errors.Is(err, closeErr)},
		{"namespace a deleted", !exists(names[0])},
		{"namespace b deleted", !exists(names[1])},
		{"the deletions were logged", strings.Count(log.String(), "$ ip netns del ") == 2},
		{"a second teardown is a no-op", u.Teardown(names, nil) == nil && len(order) == 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.ok {
				t.Errorf("order %v, err %v, log:\n%s", order, err, log.String())
			}
		})
	}
}

func exists(ns string) bool {
	_, err := os.Stat(filepath.Join(netnsDir, ns))
	return err == nil
}
