package appliance

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// goFile is one parsed non-test Go file, by its path from the module root.
type goFile struct {
	path string
	f    *ast.File
}

// sourceFiles parses every non-test .go file under the module-relative
// roots.
func sourceFiles(t *testing.T, roots ...string) []goFile {
	t.Helper()
	var out []goFile
	fset := token.NewFileSet()
	for _, root := range roots {
		err := filepath.WalkDir(filepath.Join("..", root), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel("..", path)
			out = append(out, goFile{path: filepath.ToSlash(rel), f: f})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(out) < 10 {
		t.Fatalf("found only %d source files under %v", len(out), roots)
	}
	return out
}

// selectors calls fn for every x.Name selector in f that is called, or
// used as a method value on something that looks like an audit log (its
// expression names a log or Audit). Field reads (opts.Append, a function
// field) are not calls of the log.
func selectors(f *ast.File, fn func(x ast.Expr, name string, pos token.Pos)) {
	called := map[*ast.SelectorExpr]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if c, ok := n.(*ast.CallExpr); ok {
			if s, ok := c.Fun.(*ast.SelectorExpr); ok {
				called[s] = true
			}
		}
		return true
	})
	ast.Inspect(f, func(n ast.Node) bool {
		s, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if called[s] || looksLikeLog(s.X) {
			fn(s.X, s.Sel.Name, s.Pos())
		}
		return true
	})
}

// looksLikeLog reports whether x's last name says it is an audit log.
func looksLikeLog(x ast.Expr) bool {
	var name string
	switch e := x.(type) {
	case *ast.Ident:
		name = e.Name
	case *ast.SelectorExpr:
		name = e.Sel.Name
	}
	l := strings.ToLower(name)
	return l == "log" || l == "lg" || strings.Contains(l, "audit")
}

// TestOneAuditWritePath: outside package audit, only the journal writes to
// the audit log (Append, AcknowledgeTx), and only the store's InTx begins a
// transaction. Every service records through journal.Journal.Record, which
// also queues the SIEM event, inside store.InTx.
func TestOneAuditWritePath(t *testing.T) {
	allowed := map[string]map[string]bool{
		"Append":        {"appliance/journal/journal.go": true},
		"AcknowledgeTx": {"appliance/journal/journal.go": true},
		"BeginTx":       {"appliance/store/store.go": true},
		"Begin":         {"appliance/store/store.go": true},
	}
	for _, gf := range sourceFiles(t, "appliance", "ui") {
		selectors(gf.f, func(_ ast.Expr, name string, _ token.Pos) {
			if ok, watched := allowed[name]; watched && !ok[gf.path] {
				t.Errorf("%s uses .%s: audit entries go through journal.Journal.Record, transactions through store.InTx", gf.path, name)
			}
		})
	}
}

// TestAdaptersUseServices: the CLI and the HTTP API are adapters over the
// services. Their non-test files import neither the store nor the journal,
// build no audit log or SIEM outbox of their own, and call no transaction
// or audit write API.
func TestAdaptersUseServices(t *testing.T) {
	bannedImports := map[string]bool{
		"firewalliq/appliance/store":   true,
		"firewalliq/appliance/journal": true,
	}
	bannedCalls := map[string]bool{"InTx": true, "Append": true, "AcknowledgeTx": true, "RecordAlone": true, "RecordForTest": true, "BeginTx": true}
	// Constructors that would give an adapter its own write path.
	bannedFuncs := map[string]bool{"audit.New": true, "siem.New": true, "journal.New": true}
	for _, gf := range sourceFiles(t, "appliance/cli", "ui") {
		for _, imp := range gf.f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); bannedImports[p] {
				t.Errorf("%s imports %s: adapters reach state through the appliance's services", gf.path, p)
			}
		}
		selectors(gf.f, func(x ast.Expr, name string, _ token.Pos) {
			if bannedCalls[name] {
				t.Errorf("%s uses .%s: adapters open no transactions and write no audit entries", gf.path, name)
			}
			if id, ok := x.(*ast.Ident); ok && bannedFuncs[id.Name+"."+name] {
				t.Errorf("%s calls %s.%s: adapters build no write path of their own", gf.path, id.Name, name)
			}
		})
	}
}

// TestAppTestOnlyInTests: the test fixture that opens a real appliance is
// imported by _test files only.
func TestAppTestOnlyInTests(t *testing.T) {
	for _, gf := range sourceFiles(t, "appliance", "ui") {
		for _, imp := range gf.f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "firewalliq/appliance/internal/apptest" {
				t.Errorf("%s imports apptest outside a test", gf.path)
			}
		}
	}
}
