package lab

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

func parseFile(t *testing.T, name string, parse func(*os.File) ([]Observation, error)) []Observation {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	obs, err := parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return obs
}

func TestParsers(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		parse func(*os.File) ([]Observation, error)
		want  []Observation
	}{
		{"nmap", "nmap.xml", func(f *os.File) ([]Observation, error) { return ParseNmapXML(f) }, []Observation{
			{Key{addr("198.18.1.1"), TCP, 22}, Open, "syn-ack"},
			{Key{addr("198.18.1.1"), TCP, 25}, Closed, "reset"},
			{Key{addr("198.18.1.1"), TCP, 3306}, Filtered, "no-response"},
			{Key{addr("198.18.1.1"), TCP, 8443}, Filtered, "admin-prohibited"},
			{Key{addr("198.18.1.100"), TCP, 22}, Filtered, "host-prohibited"},
		}},
		{"masscan", "masscan.txt", func(f *os.File) ([]Observation, error) { return ParseMasscanList(f) }, []Observation{
			{Key{addr("198.18.1.1"), TCP, 22}, Open, ""},
			{Key{addr("198.18.1.1"), TCP, 80}, Open, ""},
		}},
		{"engine", "results.jsonl", func(f *os.File) ([]Observation, error) { return ParseResults(f) }, []Observation{
			{Key{addr("198.18.1.1"), TCP, 22}, Open, "syn-ack"},
			{Key{addr("198.18.1.1"), TCP, 8443}, Rejected, "icmp-admin-prohibited"},
			{Key{addr("fd00:f1a9:1::1"), UDP, 53}, Open, "udp-response"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseFile(t, tt.file, tt.parse)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d rows %+v, want %d", len(got), got, len(tt.want))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("row %d: got %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestCompare(t *testing.T) {
	tr := defaultTruth()
	asked := Keys([]netip.Addr{addr("198.18.1.1")}, TCP, []uint16{22, 25, 3306, 8443})
	asked = append(asked, asked[0]) // a duplicate ask counts once
	obs := []Observation{
		{Key: Key{addr("198.18.1.1"), TCP, 22}, State: Open},
		{Key: Key{addr("198.18.1.1"), TCP, 3306}, State: Filtered},
		{Key: Key{addr("198.18.1.1"), TCP, 8443}, State: Filtered},      // rejected, reported filtered
		{Key: Key{addr("::ffff:198.18.1.1"), TCP, 9999}, State: Closed}, // not asked
	}
	a := tr.Compare(asked, obs)
	if a.Expected != 4 || a.Right != 2 || a.Missing != 1 || a.Extra != 1 || a.OpenRight != 4 {
		t.Errorf("got %+v", a)
	}
	if len(a.Mismatches) != 2 || a.Mismatches[0].Port != 25 || a.Mismatches[0].Got != "" || a.Mismatches[1].Port != 8443 {
		t.Errorf("mismatches %+v", a.Mismatches)
	}
	if a.ByState[Rejected] != [2]int{0, 1} || a.ByState[Open] != [2]int{1, 1} {
		t.Errorf("by state %v", a.ByState)
	}
}
