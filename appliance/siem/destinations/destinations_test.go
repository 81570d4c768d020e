package destinations_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/internal/apptest"
	"firewalliq/appliance/siem"
	"firewalliq/appliance/siem/destinations"
	"firewalliq/audit"
)

func udpDest(name string) destinations.NewDestination {
	return destinations.NewDestination{Name: name, Kind: siem.KindUDP, Address: "127.0.0.1:514"}
}

// TestAddByRole: who may add a destination, where, and what the log says.
func TestAddByRole(t *testing.T) {
	f := apptest.New(t)
	tests := []struct {
		name, role string
		tenant     string
		stepUp     bool
		want       error
		audited    audit.Action // the entry the call must write
	}{
		{name: "tenant admin, own tenant", role: "admin", stepUp: true, audited: audit.ActSIEMDestinationCreate},
		{name: "appliance admin, appliance-wide", role: "appliance_admin", stepUp: true, audited: audit.ActSIEMDestinationCreate},
		{name: "appliance admin, a tenant", role: "appliance_admin", tenant: "alpha", stepUp: true, audited: audit.ActSIEMDestinationCreate},
		{name: "tenant admin without step-up", role: "admin", want: auth.ErrStepUpRequired, audited: audit.ActAuthStepUpFailed},
		{name: "tenant admin, other tenant", role: "admin", tenant: "bravo", stepUp: true, want: auth.ErrForbidden, audited: audit.ActAccessDenied},
		{name: "security lead", role: "security_lead", stepUp: true, want: auth.ErrForbidden, audited: audit.ActAccessDenied},
		{name: "approver", role: "approver", stepUp: true, want: auth.ErrForbidden, audited: audit.ActAccessDenied},
		{name: "operator", role: "operator", stepUp: true, want: auth.ErrForbidden, audited: audit.ActAccessDenied},
		{name: "auditor", role: "auditor", stepUp: true, want: auth.ErrForbidden, audited: audit.ActAccessDenied},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := f.Users[tt.role]
			tenant := map[string]string{"": "", "alpha": f.Tenant, "bravo": f.Other}[tt.tenant]
			code := ""
			if tt.stepUp {
				code = f.Code(u)
			}
			mark := f.Head()
			name := "d" + string(rune('a'+i))
			d, err := f.App.SIEM.Add(f.Ctx, u.P, tenant, udpDest(name), code)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Add: %v, want %v", err, tt.want)
			}
			// With a code, auth.stepup comes first; then exactly the
			// expected entry, by this principal, and no creation when
			// refused.
			es := f.Entries(mark, tt.audited)
			if len(es) != 1 || es[0].ActorID != u.P.UserID {
				t.Fatalf("audit after Add: %d %s entries, want one by %s", len(es), tt.audited, u.P.Name)
			}
			if tt.want != nil && len(f.Entries(mark, audit.ActSIEMDestinationCreate)) != 0 {
				t.Fatal("refused Add audited a creation")
			}
			ds, lerr := f.App.SIEM.List(f.Ctx, f.Users["appliance_admin"].P, "")
			if lerr != nil {
				t.Fatal(lerr)
			}
			found := false
			for _, x := range ds {
				found = found || x.Name == name
			}
			if found != (tt.want == nil) {
				t.Fatalf("destination stored = %v, want %v", found, tt.want == nil)
			}
			if tt.want == nil && (d.Tenant != tenant && !(tenant == "" && tt.role == "admin" && d.Tenant == f.Tenant)) {
				t.Fatalf("stored in tenant %q", d.Tenant)
			}
		})
	}
}

// TestStepUpChallengeRoundTrip: Add without a grant returns the challenge;
// a step-up for exactly its bytes lets the same Add through, once.
func TestStepUpChallengeRoundTrip(t *testing.T) {
	f := apptest.New(t)
	adm := f.Users["admin"]
	nd := udpDest("soc")
	nd.HMACKey = nil
	_, err := f.App.SIEM.Add(f.Ctx, adm.P, "", nd, "")
	var ch *auth.StepUpChallenge
	if !errors.As(err, &ch) || ch.Op != auth.OpSIEMConfigure {
		t.Fatalf("Add without step-up: %v", err)
	}
	if strings.Contains(string(ch.Request), "hmac_key\"") {
		t.Fatalf("challenge carries a secret: %s", ch.Request)
	}
	if _, err := f.App.Auth.StepUpFor(f.Ctx, adm.P, ch.Op, ch.Request, f.Code(adm)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.App.SIEM.Add(f.Ctx, adm.P, "", nd, ""); err != nil {
		t.Fatalf("Add after step-up: %v", err)
	}
	// Remove needs its own step-up.
	if _, err := f.App.SIEM.Remove(f.Ctx, adm.P, "", "soc", ""); !errors.As(err, &ch) {
		t.Fatalf("Remove without step-up: %v", err)
	}
	if _, err := f.App.Auth.StepUpFor(f.Ctx, adm.P, ch.Op, ch.Request, f.Code(adm)); err != nil {
		t.Fatal(err)
	}
	mark := f.Head()
	if _, err := f.App.SIEM.Remove(f.Ctx, adm.P, "", "soc", ""); err != nil {
		t.Fatalf("Remove after step-up: %v", err)
	}
	if es := f.Entries(mark, audit.ActSIEMDestinationDelete); len(es) != 1 || apptest.Details(t, es[0])["name"] != "soc" {
		t.Fatalf("delete entries: %+v", es)
	}
}

// TestValidation: bad settings are refused before the step-up code is
// spent, and nothing is stored.
func TestValidation(t *testing.T) {
	f := apptest.New(t)
	adm := f.Users["admin"]
	long := strings.Repeat("n", siem.MaxNameLen+1)
	tests := []struct {
		name string
		d    destinations.NewDestination
	}{
		{"empty name", destinations.NewDestination{Kind: "udp", Address: "127.0.0.1:514"}},
		{"long name", destinations.NewDestination{Name: long, Kind: "udp", Address: "127.0.0.1:514"}},
		{"control character in name", destinations.NewDestination{Name: "soc\x1b[2J", Kind: "udp", Address: "127.0.0.1:514"}},
		{"port 0", destinations.NewDestination{Name: "p", Kind: "udp", Address: "127.0.0.1:0"}},
		{"port 65536", destinations.NewDestination{Name: "p", Kind: "tcp", Address: "127.0.0.1:65536"}},
		{"not host:port", destinations.NewDestination{Name: "p", Kind: "tcp", Address: "127.0.0.1"}},
		{"http webhook", destinations.NewDestination{Name: "w", Kind: "webhook", Address: "http://127.0.0.1/x", HMACKey: []byte("0123456789abcdef")}},
		{"credentials in webhook URL", destinations.NewDestination{Name: "w", Kind: "webhook", Address: "https://u:p@127.0.0.1/x", HMACKey: []byte("0123456789abcdef")}},
		{"webhook port 0", destinations.NewDestination{Name: "w", Kind: "webhook", Address: "https://127.0.0.1:0/x", HMACKey: []byte("0123456789abcdef")}},
		{"webhook short key", destinations.NewDestination{Name: "w", Kind: "webhook", Address: "https://127.0.0.1/x", HMACKey: []byte("short")}},
		{"tls without CA", destinations.NewDestination{Name: "t", Kind: "tls", Address: "127.0.0.1:6514"}},
		{"unknown kind", destinations.NewDestination{Name: "k", Kind: "smtp", Address: "127.0.0.1:25"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mark := f.Head()
			code := f.Code(adm)
			if _, err := f.App.SIEM.Add(f.Ctx, adm.P, "", tt.d, code); !errors.Is(err, siem.ErrInvalidDestination) {
				t.Fatalf("Add: %v, want ErrInvalidDestination", err)
			}
			if es := f.Entries(mark, ""); len(es) != 0 {
				t.Fatalf("refused Add wrote %d entries", len(es))
			}
		})
	}
	// The code was not spent: a valid Add accepts the last one.
	last, _ := auth.TOTPCode(adm.Secret, f.Clock.Now())
	if _, err := f.App.SIEM.Add(f.Ctx, adm.P, "", udpDest("ok"), last); err != nil {
		t.Fatalf("valid Add with an unspent code: %v", err)
	}
	if _, err := f.App.SIEM.Add(f.Ctx, adm.P, "", udpDest("ok"), f.Code(adm)); !errors.Is(err, destinations.ErrNameTaken) {
		t.Fatalf("duplicate name: %v", err)
	}
}

// TestReadAndTestByRole: list, status and test, and the tenant walls.
func TestReadAndTestByRole(t *testing.T) {
	f := apptest.New(t)
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	adm, root, other := f.Users["admin"], f.Users["appliance_admin"], f.Users["other_admin"]
	d := udpDest("alpha-soc")
	d.Address = udp.LocalAddr().String()
	if _, err := f.App.SIEM.Add(f.Ctx, adm.P, "", d, f.Code(adm)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.App.SIEM.Add(f.Ctx, root.P, "", udpDest("global"), f.Code(root)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, role string
		want       error
		sees       int
	}{
		{name: "tenant admin sees its own", role: "admin", sees: 1},
		{name: "auditor sees its tenant's", role: "auditor", sees: 1},
		{name: "appliance admin sees all", role: "appliance_admin", sees: 2},
		{name: "other tenant's admin sees none of alpha's", role: "other_admin", sees: 0},
		{name: "operator may not", role: "operator", want: auth.ErrForbidden},
		{name: "security lead may not", role: "security_lead", want: auth.ErrForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := f.App.SIEM.List(f.Ctx, f.Users[tt.role].P, "")
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) || len(ds) != tt.sees {
				t.Fatalf("List: %d, %v; want %d, %v", len(ds), err, tt.sees, tt.want)
			}
			st, err := f.App.SIEM.Status(f.Ctx, f.Users[tt.role].P, "")
			if !errors.Is(err, tt.want) || len(st) != tt.sees {
				t.Fatalf("Status: %d, %v", len(st), err)
			}
		})
	}
	// Test: the own tenant's destination gets a datagram; another tenant's
	// name is refused like a missing one (and audited).
	if err := f.App.SIEM.Test(f.Ctx, adm.P, "", "alpha-soc"); err != nil {
		t.Fatal(err)
	}
	_ = udp.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 8192)
	if n, _, err := udp.ReadFrom(buf); err != nil || !strings.Contains(string(buf[:n]), "siem.test") {
		t.Fatalf("test datagram: %v %q", err, buf[:n])
	}
	mark := f.Head()
	if err := f.App.SIEM.Test(f.Ctx, other.P, "", "alpha-soc"); !errors.Is(err, siem.ErrNotFound) {
		t.Fatalf("other tenant's Test: %v", err)
	}
	if _, err := f.App.SIEM.Remove(f.Ctx, other.P, "", "alpha-soc", f.Code(other)); !errors.Is(err, siem.ErrNotFound) {
		t.Fatalf("other tenant's Remove: %v", err)
	}
	if es := f.Entries(mark, audit.ActAccessDenied); len(es) != 2 {
		t.Fatalf("%d access.denied entries, want 2", len(es))
	}
	if err := f.App.SIEM.Test(f.Ctx, f.Users["auditor"].P, "", "alpha-soc"); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("auditor Test: %v", err)
	}
}
