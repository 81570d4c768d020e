package console

import (
	"net/http/httptest"
	"testing"
)

// TestEnrollCommand: the command shown with a new enrolment token names
// the console as the browser reached it, unless the Host header carries
// anything a shell would read as more than a host and port.
func TestEnrollCommand(t *testing.T) {
	tests := []struct {
		name, host, want string
	}{
		{"address and port", "127.0.0.1:8443", "firewalliq sensor enroll --console https://127.0.0.1:8443 --token fiqst_x --cert-sha256 ab"},
		{"name", "console.example", "firewalliq sensor enroll --console https://console.example --token fiqst_x --cert-sha256 ab"},
		{"IPv6", "[::1]:8443", "firewalliq sensor enroll --console https://[::1]:8443 --token fiqst_x --cert-sha256 ab"},
		{"command substitution", "a$(reboot)", "firewalliq sensor enroll --console https://CONSOLE-ADDRESS --token fiqst_x --cert-sha256 ab"},
		{"second command", "a;rm -rf /", "firewalliq sensor enroll --console https://CONSOLE-ADDRESS --token fiqst_x --cert-sha256 ab"},
		{"quote", "a'b", "firewalliq sensor enroll --console https://CONSOLE-ADDRESS --token fiqst_x --cert-sha256 ab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/console/sensors", nil)
			r.Host = tt.host
			if got := enrollCommand(r, "fiqst_x", "ab"); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
