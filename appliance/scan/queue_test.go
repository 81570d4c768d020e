package scan

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
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
func TestDispatcherFairAndBounded(t *testing.T) {
	for _, slots := range []int{1, 2, 3} {
		t.Run(fmt.Sprint("slots=", slots), func(t *testing.T) {
			prof := safety.Profile{ID: "t", MaxConcurrentScans: slots}
			var (
				mu       sync.Mutex
				started  []string
				running  atomic.Int64
				peak     atomic.Int64
				finished = make(chan struct{}, 100)
			)
			d, err := NewDispatcher(prof, func(ctx context.Context, tenant, item string) {
				n := running.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				mu.Lock()
				started = append(started, item)
				mu.Unlock()
				time.Sleep(20 * time.Millisecond) // a scan takes a while (long against scheduling delays)
				running.Add(-1)
				finished <- struct{}{}
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
			for range 11 {
				select {
				case <-finished:
				case <-time.After(10 * time.Second):
					t.Fatal("scans did not finish")
				}
			}
			cancel()
			<-done
			if p := peak.Load(); p > int64(slots) || p < 1 {
				t.Fatalf("peak %d concurrent scans with %d slots", p, slots)
			}
			// Start order is the queue's order (each start takes the next
			// item); goroutines may append in another order when several
			// start together, so compare as sets per round.
			want := []string{"a0", "b0", "a1", "b1", "a2", "b2", "a3", "a4", "a5", "a6", "a7"}
			mu.Lock()
			defer mu.Unlock()
			if slots == 1 && !slices.Equal(started, want) {
				t.Fatalf("start order %v, want %v", started, want)
			}
			if got := slices.Sorted(slices.Values(started)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
				t.Fatalf("started %v", started)
			}
			// Fairness with more slots: b's three scans are among the
			// first six started.
			firstB := 0
			for _, s := range started[:6] {
				if s[0] == 'b' {
					firstB++
				}
			}
			if firstB != 3 {
				t.Fatalf("b got %d of the first six starts: %v", firstB, started)
			}
		})
	}
}

func TestDispatcherRefusesZeroSlots(t *testing.T) {
	if _, err := NewDispatcher(safety.Profile{ID: "t"}, func(context.Context, string, int) {}); err == nil {
		t.Fatal("no error for a profile without concurrent scans")
	}
}
