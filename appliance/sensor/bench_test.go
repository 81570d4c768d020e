package sensor_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"firewalliq/appliance/sensor"
	"firewalliq/appliance/store"
	"firewalliq/probe"
	"firewalliq/probe/runner"
)

// TestFleetThroughput measures results per second from N simulated
// sensors into one console, stored in SQLite (the appliance's DSN:
// WAL, synchronous FULL) one transaction per intake batch, with the
// end-to-end latency from the sensor spooling an event to the console
// committing it. It runs only with FIQ_FLEET_BENCH=1:
//
//	FIQ_FLEET_BENCH=1 CGO_ENABLED=0 go test ./appliance/sensor -run TestFleetThroughput -v -timeout 20m
//
// docs/benchmarks.md records the figures.
func TestFleetThroughput(t *testing.T) {
	if os.Getenv("FIQ_FLEET_BENCH") != "1" {
		t.Skip("set FIQ_FLEET_BENCH=1 to run the fleet throughput benchmark")
	}
	const total = 20000 // results per measurement, split over the sensors
	fl := newFleet(t)
	st, err := store.Open(fl.Ctx, filepath.Join(t.TempDir(), "bench.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.DB().Exec(`CREATE TABLE bench_results (run TEXT NOT NULL, seq INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (run, seq)) STRICT`); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var lat []time.Duration
	stored := 0
	fl.Svc.SetSink(sensor.SinkFunc(func(ctx context.Context, batch []sensor.Delivery) error {
		err := st.InTx(ctx, func(tx *sql.Tx) error {
			for _, d := range batch {
				b, _ := json.Marshal(d.Event)
				if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO bench_results (run, seq, body) VALUES (?, ?, ?)`, d.Run, d.Event.Seq, b); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		now := time.Now()
		mu.Lock()
		for _, d := range batch {
			lat = append(lat, now.Sub(d.Event.Time))
		}
		stored += len(batch)
		mu.Unlock()
		return nil
	}))
	var dirs []string
	for _, n := range []int{1, 10, 100} {
		for len(dirs) < n {
			_, dir := fl.enrol(t, "admin", fmt.Sprintf("sim-%03d", len(dirs)))
			dirs = append(dirs, dir)
		}
		sims := make([]*sensor.SimSensor, n)
		for i := range sims {
			if sims[i], err = sensor.StartSim(dirs[i], 256); err != nil {
				t.Fatal(err)
			}
		}
		// Burst: every sensor spools its share at once (the console's
		// capacity; latency is mostly queueing). Paced: 2,000 results/s
		// in all, in chunks of 10 (latency below saturation).
		for _, m := range []struct {
			name     string
			total    int
			chunk    int
			interval time.Duration
		}{
			{"burst", total, 100, 0},
			{"paced 2000/s", 10000, 10, time.Duration(n) * 5 * time.Millisecond},
		} {
			mu.Lock()
			lat, stored = nil, 0
			mu.Unlock()
			per := m.total / n
			start := time.Now()
			var wg sync.WaitGroup
			for i, s := range sims {
				wg.Add(1)
				go func() {
					defer wg.Done()
					run := fmt.Sprintf("bench-%d-%d-%d", n, i, start.UnixNano())
					next := time.Now()
					for seq := 1; seq <= per; seq += m.chunk {
						var evs []runner.Event
						for k := seq; k < seq+m.chunk && k <= per; k++ {
							evs = append(evs, runner.Event{Seq: uint64(k), Type: runner.TypeResult, JobID: "job-b", ScanID: "scan-b", Time: time.Now(),
								Result: &probe.Result{Target: "10.0.0.1", Proto: "tcp", Port: uint16(k % 65536), Probe: "tcp-connect", State: "closed", Reason: "rst", Time: time.Now()}})
						}
						if err := s.Emit(run, evs); err != nil {
							t.Error(err)
							return
						}
						if m.interval > 0 {
							next = next.Add(m.interval)
							time.Sleep(time.Until(next))
						}
					}
				}()
			}
			wg.Wait()
			deadline := time.Now().Add(5 * time.Minute)
			for {
				mu.Lock()
				done := stored >= per*n
				mu.Unlock()
				if done {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("N=%d: only %d of %d results stored after 5 minutes", n, stored, per*n)
				}
				time.Sleep(5 * time.Millisecond)
			}
			wall := time.Since(start)
			mu.Lock()
			slices.Sort(lat)
			p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))].Round(100 * time.Microsecond) }
			t.Logf("N=%3d sensors, %-12s: %5d results in %7s = %6.0f results/s into SQLite; latency p50 %s p99 %s max %s",
				n, m.name, per*n, wall.Round(time.Millisecond), float64(per*n)/wall.Seconds(), p(0.5), p(0.99), lat[len(lat)-1].Round(100*time.Microsecond))
			mu.Unlock()
		}
		for _, s := range sims {
			s.Close()
		}
		var rows int
		if err := st.DB().QueryRow(`SELECT COUNT(*) FROM bench_results WHERE run LIKE ?`, fmt.Sprintf("bench-%d-%%", n)).Scan(&rows); err != nil || rows != (total/n+10000/n)*n {
			t.Fatalf("N=%d: %d rows stored, want %d (%v)", n, rows, (total/n+10000/n)*n, err)
		}
	}
}
