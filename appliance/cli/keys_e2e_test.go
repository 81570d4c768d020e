package cli

import (
	"strings"
	"testing"
)

// TestCLISecurityKeys: 'user key list' and 'user key remove' go through
// the API like every management command: an empty list on a new
// appliance, and removing a key that is not the user's asks for the
// step-up code and then fails with not found. (Registering a key needs a
// browser: the console.)
func TestCLISecurityKeys(t *testing.T) {
	e := startE2E(t)
	e.firstLogin()
	if out := e.must("", "user", "key", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("user key list: %q", out)
	}
	if out := e.must("", "user", "key", "list"); !strings.HasPrefix(out, "ID") {
		t.Fatalf("user key list (text): %q", out)
	}
	code, _, stderr := e.run(e.code()+"\n", "user", "key", "remove", "key_0000000000000000")
	if code == 0 || !strings.Contains(stderr, "not_found") && !strings.Contains(stderr, "not found") {
		t.Fatalf("user key remove of an unknown key: exit %d, %s", code, stderr)
	}
}
