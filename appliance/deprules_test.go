package appliance

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyRules enforces the package dependency rules of DESIGN.md over
// the real build graph (go list -deps), so the worker stays standalone and the
// evidence and audit code stays small and independent.
func TestDependencyRules(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not on PATH")
	}
	cmd := exec.Command("go", "list", "-deps", "-json", "firewalliq/...")
	cmd.Dir = ".."
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type pkg struct {
		ImportPath string
		Imports    []string
		Deps       []string
		Standard   bool
	}
	var pkgs []pkg
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(p.ImportPath, "firewalliq") {
			pkgs = append(pkgs, p)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	if len(pkgs) < 5 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}

	under := func(path, root string) bool { return path == root || strings.HasPrefix(path, root+"/") }
	ours := func(path string) bool {
		return under(path, "firewalliq") && path != "firewalliq" || path == "firewalliq"
	}
	// smallValueTypes may be imported by audit and vault. Keep it tiny.
	smallValueTypes := map[string]bool{}

	for _, p := range pkgs {
		for _, d := range p.Deps {
			if !ours(d) {
				continue
			}
			switch {
			case under(p.ImportPath, "firewalliq/probe"):
				for _, banned := range []string{"firewalliq/appliance", "firewalliq/ui", "firewalliq/vault", "firewalliq/audit"} {
					if under(d, banned) {
						t.Errorf("%s depends on %s: probe/... must stand alone", p.ImportPath, d)
					}
				}
			case under(p.ImportPath, "firewalliq/audit"), under(p.ImportPath, "firewalliq/vault"):
				own := under(d, "firewalliq/audit") && under(p.ImportPath, "firewalliq/audit") ||
					under(d, "firewalliq/vault") && under(p.ImportPath, "firewalliq/vault")
				if !own && !smallValueTypes[d] {
					t.Errorf("%s depends on %s: audit and vault import nothing of ours but small value types", p.ImportPath, d)
				}
			case under(p.ImportPath, "firewalliq/appliance") && !under(p.ImportPath, "firewalliq/appliance/cli"):
				if under(d, "firewalliq/ui") {
					t.Errorf("%s depends on %s: ui imports appliance services, never the other way", p.ImportPath, d)
				}
			}
		}
		for _, imp := range p.Imports {
			// apptest builds a real appliance for the services' tests
			// (which import it from _test files only).
			if imp == "firewalliq/appliance" && p.ImportPath != "firewalliq" && p.ImportPath != "firewalliq/appliance/cli" && p.ImportPath != "firewalliq/appliance/internal/apptest" {
				t.Errorf("%s imports firewalliq/appliance: only main and appliance/cli may", p.ImportPath)
			}
		}
	}
}
