package ui

import (
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"testing"

	"github.com/labstack/echo/v4"
)

// FuzzPage feeds arbitrary ?limit= and ?after= values to the page parser:
// it must never panic, must accept only limits 1..500, and paging a set
// of keys from any accepted start must visit each later key exactly once,
// in order (the keyset property every list relies on).
func FuzzPage(f *testing.F) {
	// Seeds: the defaults, the bounds, a real cursor, garbage.
	f.Add("", "")
	f.Add("1", cursor("k05"))
	f.Add("500", "")
	f.Add("501", "")
	f.Add("0", "")
	f.Add("-3", "***")
	f.Add("2", cursor(""))
	f.Add("7", "a2V5")
	e := echo.New()
	keys := make([]string, 0, 23)
	for i := range 23 {
		keys = append(keys, "k"+strconv.Itoa(100 + i)[1:])
	}
	parse := func(query string) (page, error) {
		req := httptest.NewRequest("GET", "/", nil)
		req.URL.RawQuery = query
		return pageOf(e.NewContext(req, httptest.NewRecorder()))
	}
	f.Fuzz(func(t *testing.T, limit, after string) {
		v := url.Values{"limit": {limit}, "after": {after}}
		pg, err := parse(v.Encode())
		if err != nil {
			return
		}
		if pg.limit < 1 || pg.limit > maxLimit {
			t.Fatalf("%v: limit %d accepted", v, pg.limit)
		}
		var want []string
		for _, k := range keys {
			if k > pg.after {
				want = append(want, k)
			}
		}
		var seen []string
		for range len(keys) + 1 {
			l := paginate(keys, func(k string) string { return k }, pg)
			if len(l.Items) > pg.limit {
				t.Fatalf("page of %d > limit %d", len(l.Items), pg.limit)
			}
			seen = append(seen, l.Items...)
			if l.Next == "" {
				break
			}
			if pg, err = parse("limit=" + strconv.Itoa(pg.limit) + "&after=" + l.Next); err != nil {
				t.Fatalf("our own cursor %q refused: %v", l.Next, err)
			}
		}
		if !slices.Equal(seen, want) {
			t.Fatalf("%v: paged %v, want %v", v, seen, want)
		}
	})
}
