package cli

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// update rewrites the golden files of this package's pinning tests
// (go test ./appliance/cli -run 'TestCommandTree|TestRemoteOutputs' -update,
// and go test -tags lab ./appliance/cli -run TestCommandTree -update for
// the lab build's tree).
var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// golden compares got with testdata/name, or writes it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s differs from the golden file at line %d:\ngot:  %q\nwant: %q", path, i+1, g, w)
			}
		}
		t.Fatalf("%s differs from the golden file", path)
	}
}

// TestCommandTree pins every command's name, usage line, help text, flags
// (name, shorthand, type, default, help) and whether it takes arguments,
// so a refactor of the constructors cannot change what a user types or
// reads in --help.
func TestCommandTree(t *testing.T) {
	root := New(&Env{Stdin: strings.NewReader(""), Stdout: &strings.Builder{}, Stderr: &strings.Builder{},
		Getenv: func(string) string { return "" }})
	var b strings.Builder
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		fmt.Fprintf(&b, "== %s\nuse: %s\nshort: %s\n", c.CommandPath(), c.Use, c.Short)
		if c.Long != "" {
			fmt.Fprintf(&b, "long: %s\n", c.Long)
		}
		if c.GroupID != "" {
			fmt.Fprintf(&b, "group: %s\n", c.GroupID)
		}
		fmt.Fprintf(&b, "runs: %v hidden: %v\n", c.RunE != nil || c.Run != nil, c.Hidden)
		if c.Args != nil {
			// The arity each command accepts, and what it says otherwise.
			for n := range 4 {
				res := "ok"
				if err := c.Args(c, []string{"a", "b", "c"}[:min(n, 3)]); err != nil {
					res = err.Error()
				}
				fmt.Fprintf(&b, "args %d: %s\n", n, res)
			}
		}
		var flags []string
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			flags = append(flags, fmt.Sprintf("  --%s -%s %s default=%q: %s", f.Name, f.Shorthand, f.Value.Type(), f.DefValue, f.Usage))
		})
		sort.Strings(flags)
		for _, f := range flags {
			b.WriteString(f + "\n")
		}
		subs := c.Commands()
		sort.Slice(subs, func(i, j int) bool { return subs[i].Name() < subs[j].Name() })
		for _, s := range subs {
			walk(s)
		}
	}
	walk(root)
	golden(t, commandsGolden, b.String())
}
