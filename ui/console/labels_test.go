package console_test

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// attr is n's attribute key, "" when it has none.
func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasAttr(n *html.Node, key string) bool {
	for _, a := range n.Attr {
		if a.Key == key {
			return true
		}
	}
	return false
}

// unlabelled lists the form controls of page that a screen reader could
// not name: every input (except hidden, submit, button, reset and image
// ones, whose value or alt names them), select and textarea needs a
// <label for=its id>, a <label> around it, or aria-label /
// aria-labelledby (naming elements that exist). It also lists labels
// whose for names no element, and ids used twice.
func unlabelled(t *testing.T, page string) []string {
	bad, _ := checkLabels(t, page)
	return bad
}

// checkLabels is unlabelled, with the number of controls it checked.
func checkLabels(t *testing.T, page string) ([]string, int) {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	labelFor := map[string]bool{}
	ids := map[string]int{}
	var controls []*html.Node
	inLabel := map[*html.Node]bool{}
	var walk func(n *html.Node, label bool)
	walk = func(n *html.Node, label bool) {
		if n.Type == html.ElementNode {
			if id := attr(n, "id"); id != "" {
				ids[id]++
			}
			switch n.DataAtom {
			case atom.Label:
				label = true
				if f := attr(n, "for"); f != "" {
					labelFor[f] = true
				}
			case atom.Input:
				switch strings.ToLower(attr(n, "type")) {
				case "hidden", "submit", "button", "reset", "image":
				default:
					controls = append(controls, n)
					inLabel[n] = label
				}
			case atom.Select, atom.Textarea:
				controls = append(controls, n)
				inLabel[n] = label
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, label)
		}
	}
	walk(doc, false)
	var bad []string
	for _, n := range controls {
		id := attr(n, "id")
		switch {
		case inLabel[n], id != "" && labelFor[id], strings.TrimSpace(attr(n, "aria-label")) != "":
			continue
		case hasAttr(n, "aria-labelledby"):
			ok := true
			for _, ref := range strings.Fields(attr(n, "aria-labelledby")) {
				ok = ok && ids[ref] > 0
			}
			if ok && strings.TrimSpace(attr(n, "aria-labelledby")) != "" {
				continue
			}
		}
		var b strings.Builder
		_ = html.Render(&b, n)
		bad = append(bad, "unlabelled "+b.String())
	}
	for f := range labelFor {
		if ids[f] == 0 {
			bad = append(bad, `<label for="`+f+`"> names no element`)
		}
	}
	for id, n := range ids {
		if n > 1 {
			bad = append(bad, `id "`+id+`" used more than once`)
		}
	}
	sort.Strings(bad)
	return bad, len(controls)
}

// pickersWithoutButton lists the picker forms (form.picker: filters and
// the tenant selector) of page that have no submit button. console.js
// submits a picker only when its select is changed with a pointer, so the
// button is how keyboard users (and browsers without script) apply it.
func pickersWithoutButton(t *testing.T, page string) []string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	var hasSubmit func(n *html.Node) bool
	hasSubmit = func(n *html.Node) bool {
		if n.Type == html.ElementNode {
			typ := strings.ToLower(attr(n, "type"))
			if (n.DataAtom == atom.Button && (typ == "" || typ == "submit")) || (n.DataAtom == atom.Input && typ == "submit") {
				return true
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			if hasSubmit(c) {
				return true
			}
		}
		return false
	}
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.DataAtom == atom.Form && strings.Contains(" "+attr(n, "class")+" ", " picker ") && !hasSubmit(n) {
			var b strings.Builder
			_ = html.Render(&b, n)
			bad = append(bad, "picker without a submit button: "+b.String())
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return bad
}

// menuLinks are the menu's page links of a console page.
func menuLinks(t *testing.T, page string) []string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(n *html.Node, nav bool)
	walk = func(n *html.Node, nav bool) {
		if n.Type == html.ElementNode && n.DataAtom == atom.Nav {
			nav = true
		}
		if nav && n.Type == html.ElementNode && n.DataAtom == atom.A && strings.HasPrefix(attr(n, "href"), "/console/") {
			out = append(out, attr(n, "href"))
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, nav)
		}
	}
	walk(doc, false)
	return out
}

// TestEveryInputLabelled: on every page of an appliance admin's and a
// security lead's menu, the form pages (scan request, a scan and its
// results, policy editor, report form, settings, keys, scopes, sessions,
// security keys, password), the sign-in pages and the step-up prompt,
// every form control has an accessible name.
func TestEveryInputLabelled(t *testing.T) {
	f := newFixture(t)
	root, rootSecret, _ := f.firstRun("root", f.init.OneTimePassword)
	w := newScanWorldOn(t, f, root, rootSecret)
	f.runScans()
	id := w.request(w.op, w.opS, w.dev, nil)
	w.waitState(w.op, id, "completed")

	extra := []string{"/console/scans", "/console/scans/" + id, "/console/scans/" + id + "/results", "/console/policies",
		"/console/reports", "/console/findings", "/console/settings", "/console/keys", "/console/scopes", "/console/scopes/" + w.dev,
		"/console/sessions", "/console/security-keys", "/console/password", "/console/evidence", "/console/approvals",
		"/console/reviews", "/console/sensors", "/console/users", "/console/audit", "/console/alerts", "/console/siem",
		"/console/tokens", "/console/support"}
	for _, u := range []struct {
		name string
		b    *browser
	}{{"admin", root}, {"security lead", w.lead}, {"operator", w.op}} {
		t.Run(u.name, func(t *testing.T) {
			home := u.b.get("/console/")
			want(t, home, http.StatusOK, "<h1>Dashboard</h1>")
			pages := append([]string{"/console/"}, menuLinks(t, home.body)...)
			if len(pages) < 5 {
				t.Fatalf("a menu of %d links: %v", len(pages)-1, pages)
			}
			seen := map[string]bool{}
			checked, opened := 0, 0
			for _, p := range append(pages, extra...) {
				if seen[p] {
					continue
				}
				seen[p] = true
				a := u.b.get(p)
				if a.status != http.StatusOK {
					continue // not this role's page (the menu test covers who sees what)
				}
				bad, n := checkLabels(t, a.body)
				bad = append(bad, pickersWithoutButton(t, a.body)...)
				if len(bad) > 0 {
					t.Errorf("%s:\n  %s", p, strings.Join(bad, "\n  "))
				}
				checked, opened = checked+n, opened+1
			}
			t.Logf("%d pages, %d form controls checked", opened, checked)
			if opened < 10 || checked < 15 {
				t.Fatalf("only %d pages and %d controls checked", opened, checked)
			}
		})
	}
	t.Run("sign-in and step-up", func(t *testing.T) {
		b := f.browser()
		for _, p := range []string{"/console/login"} {
			a := b.get(p)
			want(t, a, http.StatusOK)
			if bad := unlabelled(t, a.body); len(bad) > 0 {
				t.Errorf("%s:\n  %s", p, strings.Join(bad, "\n  "))
			}
		}
		wantRedirect(t, b.post("/console/login", url.Values{"name": {"lena"}, "password": {"lena chooses a long passphrase"}}), "/console/login/totp")
		for _, p := range []string{"/console/login/totp", "/console/login/recovery"} {
			a := b.get(p)
			if a.status != http.StatusOK {
				continue
			}
			if bad := unlabelled(t, a.body); len(bad) > 0 {
				t.Errorf("%s:\n  %s", p, strings.Join(bad, "\n  "))
			}
		}
		a := w.lead.post("/console/keys", url.Values{"name": {"k"}, "generate": {"1"}})
		want(t, a, http.StatusUnauthorized, `id="stepup-form"`)
		if bad := unlabelled(t, a.body); len(bad) > 0 {
			t.Errorf("step-up prompt:\n  %s", strings.Join(bad, "\n  "))
		}
	})
}

// TestLabelChecker: the checker above catches what it should, so a clean
// run of TestEveryInputLabelled means something.
func TestLabelChecker(t *testing.T) {
	tests := []struct {
		name, page string
		bad        int
	}{
		{"label for", `<label for="a">A</label><input id="a">`, 0},
		{"wrapping label", `<label>A <select name="s"></select></label>`, 0},
		{"aria-label", `<textarea aria-label="Notes"></textarea>`, 0},
		{"aria-labelledby", `<h2 id="h">H</h2><input aria-labelledby="h">`, 0},
		{"hidden and buttons", `<input type="hidden" name="csrf"><input type="submit"><input type="button">`, 0},
		{"bare input", `<input name="q">`, 1},
		{"label for another id", `<label for="b">B</label><input id="a"><input id="b">`, 1},
		{"labelledby a missing id", `<input aria-labelledby="nope">`, 1},
		{"empty aria-label", `<select aria-label=" "></select>`, 1},
		{"label for nothing", `<label for="x">X</label>`, 1},
		{"duplicate id", `<label for="a">A</label><input id="a"><p id="a"></p>`, 1},
		{"checkbox without label", `<input type="checkbox" name="c" value="1">`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if bad := unlabelled(t, "<!doctype html><html><body><form>"+tt.page+"</form></body></html>"); len(bad) != tt.bad {
				t.Fatalf("%d problems, want %d: %v", len(bad), tt.bad, bad)
			}
		})
	}
}
