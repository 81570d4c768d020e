package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestReport renders medians per (tool, rate, loss) and the worst window
// over all runs of a group.
func TestReport(t *testing.T) {
	runs := `{"tool":"nmap","rate":400,"loss":0,"rep":1,"wall_s":5,"cpu_s":0.1,"cpu_ms_per_1000_probes":50,"wire":{"achieved_over_requested":0.99,"worst_100ms":45,"cap_100ms":41},"accuracy":{"accuracy":0.778,"open_accuracy":1,"by_state":{"rejected":[0,341],"closed":[250,256]}}}
{"tool":"nmap","rate":400,"loss":0,"rep":2,"wall_s":7,"cpu_s":0.1,"cpu_ms_per_1000_probes":70,"wire":{"achieved_over_requested":0.95,"worst_100ms":47,"cap_100ms":41},"accuracy":{"accuracy":0.778,"open_accuracy":1,"by_state":{"rejected":[0,341],"closed":[250,256]}}}
{"tool":"nmap","rate":400,"loss":0,"rep":3,"wall_s":6,"cpu_s":0.1,"cpu_ms_per_1000_probes":60,"wire":{"achieved_over_requested":0.97,"worst_100ms":46,"cap_100ms":41,"out_of_scope_packets":1},"accuracy":{"accuracy":0.778,"open_accuracy":1,"by_state":{"rejected":[0,341],"closed":[250,256]}}}
`
	p := filepath.Join(t.TempDir(), "runs.jsonl")
	if err := os.WriteFile(p, []byte(runs), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := report([]string{"--in", p}, &out); err != nil {
		t.Fatal(err)
	}
	want := "| nmap | 400 | 0% | 3 | 6.00 | 0.970 | 46 (max 47; cap 41) | 77.8% | 100.0% | 0/341 | 250/256 | 0/0 | 1 | 60 |"
	if !strings.Contains(out.String(), want) {
		t.Errorf("report:\n%s\nwant row:\n%s", out.String(), want)
	}
}
