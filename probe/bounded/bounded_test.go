package bounded

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUnboundedReads is the regression test of the finding "Unbounded reads
// and unchecked names" (issue 13): /dev/zero, a FIFO, a directory and an
// oversized file fail at once with an error that names the file, and reading
// stops at the limit.
func TestUnboundedReads(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, n int) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, bytes.Repeat([]byte("a"), n), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	exact := write("exact", 100)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(exact, link); err != nil {
		t.Fatal(err)
	}
	zeroLink := filepath.Join(dir, "zero-link")
	if err := os.Symlink("/dev/zero", zeroLink); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		want    error // nil: reads len bytes
		len     int
		message string // part of the error text
	}{
		{name: "empty", path: write("empty", 0), len: 0},
		{name: "exactly the limit", path: exact, len: 100},
		{name: "symlink to a regular file", path: link, len: 100},
		{name: "one byte over", path: write("over", 101), want: ErrTooLarge, message: "over: file too large (limit 100 bytes)"},
		{name: "far over", path: write("far", 1<<20), want: ErrTooLarge, message: "limit 100 bytes"},
		{name: "/dev/zero", path: "/dev/zero", want: ErrNotRegular, message: "/dev/zero: not a regular file (a character device)"},
		{name: "symlink to /dev/zero", path: zeroLink, want: ErrNotRegular, message: "character device"},
		{name: "FIFO", path: fifo, want: ErrNotRegular, message: "(a FIFO)"},
		{name: "directory", path: dir, want: ErrNotRegular, message: "(a directory)"},
		{name: "missing", path: filepath.Join(dir, "missing"), want: os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			b, err := ReadFile(tt.path, 100)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v; must fail fast", d)
			}
			if tt.want == nil {
				if err != nil || len(b) != tt.len {
					t.Fatalf("ReadFile = %d bytes, %v; want %d bytes", len(b), err, tt.len)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("ReadFile error = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.message) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line containing %q", err, tt.message)
			}
		})
	}
}

// TestOpenGrows proves the limit holds while reading, not only at the size
// check: a file that grows after Open is cut at the limit.
func TestOpenGrows(t *testing.T) {
	p := filepath.Join(t.TempDir(), "grows")
	if err := os.WriteFile(p, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(bytes.Repeat([]byte("x"), 1000)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	b, err := io.ReadAll(f)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("read of a grown file: %v, want ErrTooLarge", err)
	}
	if len(b) > 16 {
		t.Fatalf("read %d bytes past a 16-byte limit", len(b))
	}
	// Reading again after the error keeps failing and never returns a
	// negative count.
	if n, err := f.Read(make([]byte, 8)); n != 0 || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Read after limit = %d, %v", n, err)
	}
}

func TestReadAll(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{name: "under", in: "abc"},
		{name: "exact", in: "abcd"},
		{name: "over", in: "abcde", want: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := ReadAll(strings.NewReader(tt.in), 4, "standard input")
			if !errors.Is(err, tt.want) {
				t.Fatalf("ReadAll = %v, want %v", err, tt.want)
			}
			if err == nil && string(b) != tt.in {
				t.Fatalf("ReadAll = %q", b)
			}
			if err != nil && !strings.Contains(err.Error(), "standard input") {
				t.Errorf("error %q does not name the input", err)
			}
		})
	}
	// An endless reader stops at the limit.
	if _, err := ReadAll(zeros{}, 1<<20, "stdin"); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("endless input: %v", err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestFormatSize(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		want string
	}{{100, "100 bytes"}, {64 << 10, "64 KiB"}, {4 << 20, "4 MiB"}, {4 << 30, "4 GiB"}, {1<<20 + 1, "1048577 bytes"}} {
		if got := FormatSize(tt.n); got != tt.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

// FuzzReadFile checks the bounded reader against its definition: a file of
// at most limit bytes reads back exactly; a larger one fails with
// ErrTooLarge; nothing else can happen.
func FuzzReadFile(f *testing.F) {
	f.Add([]byte(""), int64(0))               // empty file, zero limit
	f.Add([]byte("a"), int64(0))              // one byte over a zero limit
	f.Add([]byte("hello"), int64(5))          // exactly at the limit
	f.Add([]byte("hello"), int64(4))          // one byte over
	f.Add([]byte("-----BEGIN"), int64(1<<10)) // well under
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, limit int64) {
		if limit < 0 || limit > 1<<20 {
			t.Skip()
		}
		p := filepath.Join(dir, "f")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadFile(p, limit)
		check := func(what string, got []byte, err error) {
			if int64(len(data)) <= limit {
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("%s: %d bytes under limit %d: %v", what, len(data), limit, err)
				}
			} else if !errors.Is(err, ErrTooLarge) || got != nil {
				t.Fatalf("%s: %d bytes over limit %d: got %d bytes, %v", what, len(data), limit, len(got), err)
			}
		}
		check("ReadFile", got, err)
		got, err = ReadAll(bytes.NewReader(data), limit, "input")
		check("ReadAll", got, err)
	})
}
