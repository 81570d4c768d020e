package console

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

// TestQueued: at most PagesInFlight page requests are worked on at once;
// a request gives its slot back as soon as its page is rendered
// (releaseSlot, before the write), so the next one starts while the first
// is still writing; a request whose client has gone stops waiting (499).
func TestQueued(t *testing.T) {
	e := echo.New()
	newCtx := func(ctx context.Context) echo.Context {
		r := httptest.NewRequest(http.MethodGet, "/console/", nil).WithContext(ctx)
		return e.NewContext(r, httptest.NewRecorder())
	}
	tests := []struct {
		name     string
		inFlight int
		requests int
	}{
		{"one at a time", 1, 8},
		{"two at a time", 2, 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Console{slots: make(chan struct{}, tt.inFlight)}
			var now, peak atomic.Int32
			h := c.queued(func(echo.Context) error {
				n := now.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				time.Sleep(2 * time.Millisecond)
				now.Add(-1)
				return nil
			})
			var wg sync.WaitGroup
			for range tt.requests {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := h(newCtx(context.Background())); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if got := int(peak.Load()); got < 1 || got > tt.inFlight {
				t.Fatalf("peak in flight %d, want 1..%d", got, tt.inFlight)
			}
			if len(c.slots) != 0 {
				t.Fatalf("%d slots still held", len(c.slots))
			}
		})
	}

	t.Run("released before the write", func(t *testing.T) {
		c := &Console{slots: make(chan struct{}, 1)}
		rendered, next := make(chan struct{}), make(chan struct{})
		first := c.queued(func(ec echo.Context) error {
			releaseSlot(ec) // what render does before writing
			close(rendered)
			<-next // still "writing"
			releaseSlot(ec)
			return nil
		})
		done := make(chan error, 1)
		go func() { done <- first(newCtx(context.Background())) }()
		<-rendered
		second := c.queued(func(echo.Context) error { return nil })
		if err := second(newCtx(context.Background())); err != nil {
			t.Fatalf("second request: %v", err)
		}
		close(next)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if len(c.slots) != 0 {
			t.Fatalf("%d slots still held (a double release would panic or leak)", len(c.slots))
		}
	})

	t.Run("client gone while waiting", func(t *testing.T) {
		c := &Console{slots: make(chan struct{}, 1)}
		c.slots <- struct{}{} // the only slot is busy
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		ran := false
		ec := newCtx(ctx)
		err := c.queued(func(echo.Context) error { ran = true; return nil })(ec)
		if err != nil || ran || ec.Response().Status != statusClientClosed {
			t.Fatalf("err %v, ran %v, status %d: want %d without running", err, ran, ec.Response().Status, statusClientClosed)
		}
	})
}
