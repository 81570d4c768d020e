package scan

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"firewalliq/probe/safety"
)

func TestQueueRoundRobin(t *testing.T) {
	tests := []struct {
		name string
		push []string // "tenant:item"
		want []string
	}{
		{"one tenant is FIFO", []string{"a:1", "a:2", "a:3"}, []string{"a:1", "a:2", "a:3"}},
		{"two tenants alternate", []string{"a:1", "a:2", "a:3", "a:4", "b:1", "b:2"}, []string{"a:1", "b:1", "a:2", "b:2", "a:3", "a:4"}},
		{"three tenants", []string{"a:1", "a:2", "b:1", "c:1", "c:2", "b:2"}, []string{"a:1", "b:1", "c:1", "a:2", "b:2", "c:2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := NewQueue[string]()
			for _, p := range tt.push {
				tenant, _, _ := strings.Cut(p, ":")
				q.Push(tenant, p)
			}
			var got []string
			for range len(tt.push) + 1 {
				if _, it, ok := q.Pop(); ok {
					got = append(got, it)
				}
			}
			if !slices.Equal(got, tt.want) || q.Len() != 0 {
				t.Fatalf("got %v, want %v (left %d)", got, tt.want, q.Len())
			}
		})
	}
}

// TestQueueInterleaved: a tenant arriving while another's backlog drains
// is served next (the other just had its turn) and then gets every other
// slot.
func TestQueueInterleaved(t *testing.T) {
	q := NewQueue[string]()
	for i := range 5 {
		q.Push("a", fmt.Sprint("a", i))
	}
	var got []string
	pop := func() {
		_, it, _ := q.Pop()
		got = append(got, it)
	}
	pop()
	pop()
	q.Push("b", "b0")
	q.Push("b", "b1")
	for q.Len() > 0 {
		pop()
	}
	if want := []string{"a0", "a1", "b0", "a2", "b1", "a3", "a4"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestQueueRemove(t *testing.T) {
	q := NewQueue[string]()
	q.Push("a", "a1")
	q.Push("b", "b1")
	q.Push("c", "c1")
	q.Push("a", "a2")
	if _, it, _ := q.Pop(); it != "a1" {
		t.Fatal(it)
	}
	if !q.Remove("b", func(s string) bool { return s == "b1" }) || q.Remove("b", func(string) bool { return true }) {
		t.Fatal("Remove")
	}
	var got []string
	for q.Len() > 0 {
		_, it, _ := q.Pop()
		got = append(got, it)
	}
	if want := []string{"c1", "a2"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestDispatcherFairAndBounded: two tenants, one with a long backlog; the
// dispatcher never runs more than max_concurrent_scans at once, and starts
// the tenants' scans alternately while both have some queued.
//
// The test decides when each scan ends (one at a time, once the slots
// are full), so every start after the first round is the one scan the
// freed slot lets through: the order of starts is the dispatcher's, not
// that of goroutines racing to record it.
func TestDispatcherFairAndBounded(t *testing.T) {
	want := []string{"a0", "b0", "a1", "b1", "a2", "b2", "a3", "a4", "a5", "a6", "a7"}
	for _, slots := range []int{1, 2, 3} {
		t.Run(fmt.Sprint("slots=", slots), func(t *testing.T) {
			prof := safety.Profile{ID: "t", MaxConcurrentScans: slots}
			var (
				running atomic.Int64
				peak    atomic.Int64
				started = make(chan string, 100)
				release = make(chan struct{})
			)
			d, err := NewDispatcher(prof, func(ctx context.Context, tenant, item string) {
				n := running.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				started <- item
				select {
				case <-release:
				case <-ctx.Done():
				}
				running.Add(-1)
			})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 8 {
				d.Submit("a", fmt.Sprint("a", i))
			}
			for i := range 3 {
				d.Submit("b", fmt.Sprint("b", i))
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- d.Run(ctx) }()
			defer func() { cancel(); <-done }()
			next := func() string {
				t.Helper()
				select {
				case item := <-started:
					return item
				case <-time.After(10 * time.Second):
					t.Fatal("no scan started within 10 s")
					return ""
				}
			}
			// The first round fills the slots; they start together, in
			// any order.
			var got []string
			for range slots {
				got = append(got, next())
			}
			if first := slices.Sorted(slices.Values(got)); !slices.Equal(first, slices.Sorted(slices.Values(want[:slots]))) {
				t.Fatalf("first round %v, want %v", got, want[:slots])
			}
			// Then each scan that ends lets exactly the next one start.
			for len(got) < len(want) {
				release <- struct{}{}
				if item := next(); item != want[len(got)] {
					t.Fatalf("start %d is %s, want %s (started %v)", len(got)+1, item, want[len(got)], got)
				}
				got = append(got, want[len(got)])
			}
			if p := peak.Load(); p != int64(slots) {
				t.Fatalf("peak %d concurrent scans with %d slots", p, slots)
			}
		})
	}
}

func TestDispatcherRefusesZeroSlots(t *testing.T) {
	if _, err := NewDispatcher(safety.Profile{ID: "t"}, func(context.Context, string, int) {}); err == nil {
		t.Fatal("no error for a profile without concurrent scans")
	}
}
