package cli

import (
	"database/sql"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"firewalliq/appliance"
	"firewalliq/appliance/store"
)

// TestSiemCommands walks the siem group: add (udp, webhook with a generated
// key, refused tls without a CA), list, test (a real datagram on loopback),
// status and rm.
func TestSiemCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if code, _, stderr := runCLI(t, nil, "init", "--data", dir, "--admin", "root-admin"); code != 0 {
		t.Fatalf("init: %s", stderr)
	}
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"add udp", []string{"siem", "add", "--name", "soc-udp", "--kind", "udp", "--address", udp.LocalAddr().String()}, 0, "added soc-udp"},
		{"add webhook", []string{"siem", "add", "--name", "hook", "--kind", "webhook", "--address", "https://127.0.0.1:9/x", "--tenant", "default"}, 0, "webhook HMAC key"},
		{"tls needs a CA", []string{"siem", "add", "--name", "t", "--kind", "tls", "--address", "127.0.0.1:6514"}, 2, ""},
		{"unknown tenant", []string{"siem", "add", "--name", "u", "--kind", "udp", "--address", "127.0.0.1:514", "--tenant", "nope"}, 1, ""},
		{"missing flags", []string{"siem", "add", "--name", "x"}, 2, ""},
		{"list", []string{"siem", "list"}, 0, "soc-udp"},
		{"test", []string{"siem", "test", "soc-udp"}, 0, "test message sent"},
		{"status", []string{"siem", "status"}, 0, "soc-udp"},
		{"rm", []string{"siem", "rm", "hook"}, 0, "removed hook"},
		{"rm again", []string{"siem", "rm", "hook"}, 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := runCLI(t, nil, append(tc.args, "--data", dir)...)
			if code != tc.code || !strings.Contains(out, tc.out) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tc.code, out, stderr)
			}
		})
	}
	_ = udp.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65536)
	n, _, err := udp.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no test datagram: %v", err)
	}
	if msg := string(buf[:n]); !strings.Contains(msg, `seq="0"`) || !strings.Contains(msg, "siem.test") {
		t.Fatalf("test message %q", msg)
	}
	code, out, _ := runCLI(t, nil, "siem", "status", "--json", "--data", dir)
	var st []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st) != 1 {
		t.Fatalf("status --json: exit %d\n%s", code, out)
	}
	// The udp destination holds at least its own creation event and the
	// webhook's creation and removal (appliance-wide destinations get every
	// tenant's), plus any checkpoints signed meanwhile; nothing delivered.
	if st[0]["last_seq"].(float64) < 3 || st[0]["pending"] != st[0]["last_seq"] {
		t.Errorf("status %v", st[0])
	}
}

// TestSiemAddCheckpoints: the audit entries 'siem add' writes go through the
// appliance's signing log, so an entry on an audit.checkpoint_every boundary
// gets its signed checkpoint (with checkpoint_every 1, every entry does).
func TestSiemAddCheckpoints(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if code, _, stderr := runCLI(t, nil, "init", "--data", dir, "--admin", "root-admin"); code != 0 {
		t.Fatalf("init: %s", stderr)
	}
	env := map[string]string{"FIQ_AUDIT_CHECKPOINT_EVERY": "1"}
	if code, _, stderr := runCLI(t, env, "siem", "add", "--name", "soc", "--kind", "udp", "--address", "127.0.0.1:514", "--data", dir); code != 0 {
		t.Fatalf("siem add: %s", stderr)
	}
	db, err := sql.Open("sqlite", store.DSN(filepath.Join(dir, appliance.DatabaseFile), true))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var head, signed int64
	if err := db.QueryRow(`SELECT (SELECT max(seq) FROM audit_entries), (SELECT max(size) FROM audit_checkpoints)`).Scan(&head, &signed); err != nil {
		t.Fatal(err)
	}
	if signed != head {
		t.Fatalf("latest signed checkpoint covers %d of %d entries", signed, head)
	}
}
