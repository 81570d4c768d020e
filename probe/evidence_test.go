package probe

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// evidenceFile returns a pcapng file with n packets.
func evidenceFile(t testing.TB, n int) []byte {
	var buf bytes.Buffer
	ev, err := NewEvidence(&buf, "fuzz")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		ev.Write(time.Unix(int64(i), 0), []byte{0x45, 0, 0, 20, byte(i)})
	}
	if err := ev.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzCompletePcapng: the whole-block prefix finder never reads past the
// file, never returns more than its size, and keeps a valid file whole.
func FuzzCompletePcapng(f *testing.F) {
	whole := evidenceFile(f, 3)
	f.Add(whole)                                                   // a valid file: kept whole
	f.Add(whole[:len(whole)-5])                                    // a torn last block
	f.Add(append(bytes.Clone(whole), 6, 0, 0, 0, 255))             // a torn header of a next block
	f.Add([]byte{})                                                // empty
	f.Add([]byte{0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0, 0, 0, 0}) // bad byte-order magic
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "x.pcapng")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		fh, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		n, _ := completePcapng(fh)
		if n < 0 || n > int64(len(b)) || n%4 != 0 {
			t.Fatalf("prefix %d of %d bytes", n, len(b))
		}
		if bytes.Equal(b, whole) && n != int64(len(b)) {
			t.Fatalf("valid file cut to %d of %d", n, len(b))
		}
	})
}
