package fault_test

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"firewalliq/appliance"
	"firewalliq/appliance/auth"
	"firewalliq/appliance/fault"
	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// skipDirs are source trees whose sentinels never reach a caller of the
// API or the CLI: test harnesses that build network labs.
var skipDirs = map[string]string{
	"probe/lab":     "test harness (network namespaces), not linked into the binary",
	"probe/labtest": "test harness",
	"bench":         "benchmarks",
	"scripts":       "scripts",
	// Go's internal rule keeps package fault from importing it; its one
	// sentinel (canon.ErrValue) reaches callers wrapped in probe/job's and
	// probe/scope's own errors.
	"probe/internal/canon": "internal to probe/",
}

// sentinel is an exported Err* variable found in the source.
type sentinel struct {
	name string // "appliance/auth.ErrForbidden"
	text string // the errors.New literal, "" when not a literal
}

// sentinels parses every non-test Go file below the module root and
// returns its exported Err* package-level variables.
func sentinels(t *testing.T, root string) []sentinel {
	t.Helper()
	var out []sentinel
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if _, skip := skipDirs[rel]; skip || strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		if f.Name.Name == "main" {
			return nil
		}
		pkg := filepath.ToSlash(filepath.Dir(rel))
		if pkg == "." {
			return nil
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if !n.IsExported() || !strings.HasPrefix(n.Name, "Err") {
						continue
					}
					s := sentinel{name: pkg + "." + n.Name}
					if i < len(vs.Values) {
						s.text = newLiteral(vs.Values[i])
					}
					out = append(out, s)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// newLiteral returns the message of errors.New("literal"), else "".
func newLiteral(e ast.Expr) string {
	call, ok := e.(*ast.CallExpr)
	if !ok || len(call.Args) != 1 {
		return ""
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "New" {
		return ""
	}
	if id, ok := sel.X.(*ast.Ident); !ok || id.Name != "errors" {
		return ""
	}
	lit, ok := call.Args[0].(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return ""
	}
	s, err := strconv.Unquote(lit.Value)
	if err != nil {
		return ""
	}
	return s
}

func allRules() []fault.Rule { return append(fault.Rules(), appliance.FaultRules()...) }

// TestEverySentinelClassified fails when an exported Err* variable of any
// package has no row in the table, or a row names a variable that does
// not exist, or a row's error is not the variable it names (checked by the
// errors.New message).
func TestEverySentinelClassified(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s", root)
	}
	found := sentinels(t, root)
	if len(found) < 50 {
		t.Fatalf("found only %d sentinels; is the walk broken?", len(found))
	}
	rules := map[string]fault.Rule{}
	for _, r := range allRules() {
		if _, dup := rules[r.Name]; dup {
			t.Errorf("%s has two rows", r.Name)
		}
		rules[r.Name] = r
	}
	inSource := map[string]bool{}
	for _, s := range found {
		inSource[s.name] = true
		r, ok := rules[s.name]
		if !ok {
			t.Errorf("%s is not classified: add a row to appliance/fault.Rules (code, HTTP status, exit code)", s.name)
			continue
		}
		if s.text != "" && r.Err.Error() != s.text {
			t.Errorf("row %s holds an error saying %q, but the source says %q", s.name, r.Err.Error(), s.text)
		}
	}
	for name := range rules {
		if !inSource[name] {
			t.Errorf("row %s names no exported variable in the source", name)
		}
	}
}

var codeRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// TestClasses checks every class is usable: a snake_case code, a real
// status, a documented exit code, a message; one code means one status.
func TestClasses(t *testing.T) {
	byCode := map[string]fault.Class{}
	for _, r := range allRules() {
		c := r.Class
		if !codeRE.MatchString(c.Code) || http.StatusText(c.HTTP) == "" || c.HTTP < 400 || c.Message == "" {
			t.Errorf("%s: bad class %+v", r.Name, c)
		}
		if c.Exit < fault.ExitFailure || c.Exit > fault.ExitProduction {
			t.Errorf("%s: exit %d", r.Name, c.Exit)
		}
		if c.HTTP >= 500 && c.Detail {
			t.Errorf("%s: a 5xx must never show the error's text", r.Name)
		}
		if c.HTTP == http.StatusUnauthorized && c.Detail {
			t.Errorf("%s: a 401 must not say which check failed", r.Name)
		}
		if prev, ok := byCode[c.Code]; ok && (prev.HTTP != c.HTTP || prev.Exit != c.Exit) {
			t.Errorf("code %s has two statuses: %+v and %+v", c.Code, prev, c)
		}
		byCode[c.Code] = c
	}
	for _, r := range fault.Rules() {
		if c, ok := fault.ByCode(r.Class.Code); !ok || c.HTTP != r.Class.HTTP || c.Exit != r.Class.Exit {
			t.Errorf("ByCode(%q) = %+v, %v", r.Class.Code, c, ok)
		}
	}
}

func TestClassify(t *testing.T) {
	locked := fmt.Errorf("%w until 2026-01-01T00:00:00Z", auth.ErrLockedOut)
	tests := []struct {
		name   string
		err    error
		code   string
		status int
		exit   int
		msg    string
	}{
		{"nil", nil, "", 200, 0, ""},
		{"wrapped forbidden", fmt.Errorf("user.create: %w", auth.ErrForbidden), "forbidden", 403, 1, "user.create: forbidden"},
		{"password change beats forbidden", fmt.Errorf("op: %w: %w", auth.ErrForbidden, auth.ErrPasswordChangeRequired), "password_change_required", 403, 1, "password change required"},
		{"locked beats invalid code", errors.Join(auth.ErrInvalidCode, locked), "locked_out", 429, 1, "invalid code"},
		{"locked beats step-up", fmt.Errorf("%w: %w", auth.ErrStepUpRequired, locked), "locked_out", 429, 1, "step-up authentication required: account temporarily locked until 2026-01-01T00:00:00Z"},
		{"unauthenticated hides why", fmt.Errorf("%w: token owner disabled", auth.ErrUnauthenticated), "unauthenticated", 401, 1, "not authenticated"},
		{"not found shows what", fmt.Errorf("approval apr_1: %w", store.ErrNotFound), "not_found", 404, 1, "approval apr_1: not found"},
		{"invalid is usage", fmt.Errorf("role %q: %w", "x", auth.ErrInvalid), "invalid_argument", 400, 2, `role "x": invalid argument`},
		{"tamper alarm", fmt.Errorf("scan: %w", audit.ErrTamperAlarm), "tamper_alarm", 423, 1, "audit tamper alarm raised; an appliance admin must acknowledge it with step-up MFA"},
		{"unknown is internal", errors.New("disk on fire at /var/lib"), "internal", 500, 1, "internal error"},
		{"composition root", fmt.Errorf("open: %w", appliance.ErrNotInitialized), "not_initialized", 503, 1, "data directory is not initialised"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fault.Classify(tt.err, appliance.FaultRules()...)
			if c.Code != tt.code || c.HTTP != tt.status || c.Exit != tt.exit {
				t.Fatalf("Classify = %+v, want %s %d exit %d", c, tt.code, tt.status, tt.exit)
			}
			if got := fault.Message(c, tt.err); tt.err != nil && got != tt.msg {
				t.Fatalf("Message = %q, want %q", got, tt.msg)
			}
		})
	}
}

func TestByCode(t *testing.T) {
	for _, code := range []string{fault.CodeInternal, fault.CodeTooLarge, fault.CodeRateLimited, fault.CodeInvalid, fault.CodeNotFound, fault.CodeUnauthenticated, fault.CodeMethodNotAllowed, fault.CodeStepUpRequired, fault.CodeUnsupportedMedia, "csrf", "conflict"} {
		if c := fault.Of(code); c.Code != code {
			t.Errorf("Of(%q) = %+v", code, c)
		}
	}
	if _, ok := fault.ByCode("no_such_code"); ok {
		t.Error("unknown code found")
	}
}
