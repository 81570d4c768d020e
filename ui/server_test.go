package ui

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"firewalliq/appliance/store"
)

func TestRoutes(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "ui.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := New(Deps{Ping: st.DB().PingContext})
	if err != nil {
		t.Fatal(err)
	}
	srv.e.GET("/boom", func(echo.Context) error { return errors.New("secret internal detail") })
	tests := []struct {
		name, path string
		status     int
		body       string
	}{
		{"health", "/healthz", 200, `"status":"ok"`},
		{"unknown route", "/nope", 404, `"error":"Not Found"`},
		{"internal error hides detail", "/boom", 500, `"error":"Internal Server Error"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.body) {
				t.Fatalf("GET %s = %d %s", tt.path, rec.Code, rec.Body)
			}
			if strings.Contains(rec.Body.String(), "secret") {
				t.Fatal("internal detail leaked")
			}
			if !strings.Contains(rec.Header().Get("Content-Security-Policy"), "script-src 'self'") {
				t.Fatal("CSP missing")
			}
		})
	}
}
