package scan

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"firewalliq/probe/safety"
)

// Queue holds queued items per tenant and hands them out round robin
// across tenants (first come, first served within a tenant), so one
// tenant's backlog cannot starve another's. It is safe for concurrent use.
type Queue[T any] struct {
	mu      sync.Mutex
	order   []string       // tenants with queued items, in rotation order
	items   map[string][]T // per tenant, oldest first
	next    int            // index in order of the tenant served next
	pending int
}

// NewQueue returns an empty queue.
func NewQueue[T any]() *Queue[T] { return &Queue[T]{items: map[string][]T{}} }

// Push queues item for tenant.
func (q *Queue[T]) Push(tenant string, item T) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items[tenant]) == 0 {
		// A tenant joining the rotation goes last, behind every tenant
		// already waiting.
		q.order = append(q.order, tenant)
	}
	q.items[tenant] = append(q.items[tenant], item)
	q.pending++
}

// Pop returns the next item: the oldest of the next tenant in the
// rotation. ok is false when the queue is empty.
func (q *Queue[T]) Pop() (tenant string, item T, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.order) == 0 {
		return "", item, false
	}
	if q.next >= len(q.order) {
		q.next = 0
	}
	tenant = q.order[q.next]
	list := q.items[tenant]
	item, q.items[tenant] = list[0], list[1:]
	q.pending--
	if len(q.items[tenant]) == 0 {
		delete(q.items, tenant)
		q.order = append(q.order[:q.next], q.order[q.next+1:]...)
		// next now names the tenant after the one removed.
	} else {
		q.next++
	}
	return tenant, item, true
}

// Remove drops the first queued item of tenant for which match is true
// (a cancelled request) and reports whether there was one.
func (q *Queue[T]) Remove(tenant string, match func(T) bool) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	list := q.items[tenant]
	for i, it := range list {
		if !match(it) {
			continue
		}
		q.items[tenant] = append(list[:i:i], list[i+1:]...)
		q.pending--
		if len(q.items[tenant]) == 0 {
			delete(q.items, tenant)
			for j, t := range q.order {
				if t == tenant {
					q.order = append(q.order[:j], q.order[j+1:]...)
					if j < q.next {
						q.next--
					}
					break
				}
			}
		}
		return true
	}
	return false
}

// Len returns the number of queued items.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.pending
}

// ErrStopped means the dispatcher is not running.
var ErrStopped = errors.New("scan dispatcher stopped")

// Dispatcher starts queued scans: at most the profile's
// max_concurrent_scans at once (a semaphore; there is no setting that
// raises it), taking them from per-tenant queues round robin.
type Dispatcher[T any] struct {
	queue *Queue[T]
	slots chan struct{}
	wake  chan struct{}
	run   func(ctx context.Context, tenant string, item T)
	wg    sync.WaitGroup
}

// NewDispatcher returns a dispatcher that calls run for each item, in its
// own goroutine, holding one of p.MaxConcurrentScans slots until run
// returns. p is the verified compiled-in profile.
func NewDispatcher[T any](p safety.Profile, run func(ctx context.Context, tenant string, item T)) (*Dispatcher[T], error) {
	if p.MaxConcurrentScans < 1 {
		return nil, fmt.Errorf("scan dispatcher: profile %s allows %d concurrent scans", p.ID, p.MaxConcurrentScans)
	}
	if run == nil {
		return nil, errors.New("scan dispatcher: no run function")
	}
	return &Dispatcher[T]{
		queue: NewQueue[T](),
		slots: make(chan struct{}, p.MaxConcurrentScans),
		wake:  make(chan struct{}, 1),
		run:   run,
	}, nil
}

// Queue returns the dispatcher's queue (to inspect or remove items).
func (d *Dispatcher[T]) Queue() *Queue[T] { return d.queue }

// Submit queues item for tenant; it starts when a slot is free and it is
// the tenant's turn.
func (d *Dispatcher[T]) Submit(tenant string, item T) {
	d.queue.Push(tenant, item)
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run dispatches until ctx ends, then waits for the running scans (which
// see ctx cancelled) to return, and returns ctx's error. Queued items stay
// queued.
func (d *Dispatcher[T]) Run(ctx context.Context) error {
	defer d.wg.Wait()
	for {
		// A slot first, then an item: an item is taken off the queue only
		// when it can start, so Remove can still cancel it until then.
		select {
		case d.slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		var (
			tenant string
			item   T
			ok     bool
		)
		for {
			if tenant, item, ok = d.queue.Pop(); ok {
				break
			}
			select {
			case <-d.wake:
			case <-ctx.Done():
				<-d.slots
				return ctx.Err()
			}
		}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			defer func() { <-d.slots }()
			d.run(ctx, tenant, item)
		}()
	}
}
