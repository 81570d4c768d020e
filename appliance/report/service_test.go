package report

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"firewalliq/appliance/auth"
	evsvc "firewalliq/appliance/evidence"
	"firewalliq/appliance/journal"
	"firewalliq/appliance/keyring"
	"firewalliq/appliance/report/verify"
	"firewalliq/appliance/store"
	"firewalliq/audit"
)

// TestServiceCreate: an operator's report is signed with the report key,
// spooled as evidence and recorded as report.sign in the transaction that
// records the evidence (with the same SHA-256); an auditor may not create
// one, and a refused or invalid request spools and records nothing.
func TestServiceCreate(t *testing.T) {
	ctx := context.Background()
	b := buildReport(t)
	dir := t.TempDir()
	now := time.Date(2026, 11, 29, 14, 0, 5, 0, time.UTC)
	clock := func() time.Time { return now }
	if _, err := keyring.Create(dir, now, []string{"localhost"}); err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, filepath.Join(dir, "fiq.db"), store.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := audit.New(audit.Options{Now: clock})
	jr, err := journal.New(st.DB(), log, nil)
	if err != nil {
		t.Fatal(err)
	}
	as, err := auth.NewService(auth.Deps{Store: st, Journal: jr, Keys: kr, Now: clock, Params: auth.Params{Argon: auth.ArgonParams{Time: 1, MemoryKiB: 64, Threads: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := evsvc.DefaultConfig()
	cfg.Backend, cfg.LocalDir = "local", filepath.Join(dir, "vault-local")
	ev, err := evsvc.Open(ctx, evsvc.Options{DB: st.DB(), Audit: log, Append: jr.Record, Config: cfg, DataDir: dir, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := NewService(ServiceDeps{Gate: as, Journal: jr, Spool: ev, Key: reportKey})
	if err != nil {
		t.Fatal(err)
	}
	var tenant string
	principal := func(name, role string) auth.Principal {
		pw := name + "-correct-horse"
		hash, _ := auth.HashPasswordWith(auth.ArgonParams{Time: 1, MemoryKiB: 64, Threads: 1}, pw)
		key, _ := totp.Generate(totp.GenerateOpts{Issuer: "FirewallIQ Secure", AccountName: name})
		id := store.NewID("u")
		sealed, _ := kr.Seal([]byte(key.Secret()), []byte("totp:"+id))
		err := st.InTx(ctx, func(tx *sql.Tx) error {
			if tenant == "" {
				tn, err := st.CreateTenant(ctx, tx, "acme")
				if err != nil {
					return err
				}
				tenant = tn.ID
			}
			ts, _ := st.Tenant(tenant)
			_, err := ts.CreateUser(ctx, tx, store.User{ID: id, Name: name, Role: role, PasswordHash: hash, TOTPSealed: sealed, TOTPConfirmed: true})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		c := auth.Client{IP: "192.0.2.10", UserAgent: "report-test"}
		l, err := as.Login(ctx, name, pw, c, "")
		if err != nil {
			t.Fatal(err)
		}
		now = now.Add(30 * time.Second)
		code, _ := auth.TOTPCode(key.Secret(), now)
		if l, err = as.VerifyTOTP(ctx, l.Token, code, c); err != nil {
			t.Fatal(err)
		}
		p, err := as.Authenticate(ctx, auth.Request{SessionToken: l.Token, Method: "GET", Client: c})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	oper, audi := principal("oper", store.RoleOperator), principal("audi", store.RoleAuditor)
	entries := func(a audit.Action) []audit.Entry {
		es, err := audit.ReadEntries(ctx, st.DB(), 1, 1<<62)
		if err != nil {
			t.Fatal(err)
		}
		var out []audit.Entry
		for _, e := range es {
			if e.Action == a {
				out = append(out, e)
			}
		}
		return out
	}

	if _, err := svc.Create(ctx, audi, "", "scan-1", b.in); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("auditor create: %v, want ErrForbidden", err)
	}
	bad := b.in
	bad.ID = "../x"
	if _, err := svc.Create(ctx, oper, "", "scan-1", bad); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("bad id: %v, want ErrIncomplete", err)
	}
	if len(entries(audit.ActEvidenceSpooled)) != 0 || len(entries(audit.ActReportSign)) != 0 {
		t.Fatal("a refused report was spooled or recorded")
	}

	c, err := svc.Create(ctx, oper, "", "scan-1", b.in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.Key, "scan-1") || !strings.HasSuffix(c.Key, "report-rpt_fixture.json") {
		t.Errorf("evidence key %q", c.Key)
	}
	spooled, signed := entries(audit.ActEvidenceSpooled), entries(audit.ActReportSign)
	if len(spooled) != 1 || len(signed) != 1 || signed[0].Seq != c.AuditSeq || spooled[0].Seq+1 != signed[0].Seq {
		t.Fatalf("evidence.spool %+v, report.sign %+v", spooled, signed)
	}
	for _, e := range []audit.Entry{spooled[0], signed[0]} {
		if !strings.Contains(string(e.Details), c.SHA256) || e.Tenant != tenant {
			t.Errorf("%s does not record the report's SHA-256 %s in its tenant: %s", e.Action, c.SHA256, e.Details)
		}
	}
	if signed[0].ActorName != "oper" || signed[0].Object != "report:rpt_fixture" {
		t.Errorf("report.sign entry %+v", signed[0])
	}
	// The stored report is signed by the service's key, for the caller's
	// tenant (whatever the input said), and still carries its proofs.
	res, err := verify.Verify(c.Signed, verify.Options{ReportKey: reportKey.Public().(ed25519.PublicKey), AuditKey: auditKey.Public().(ed25519.PublicKey)})
	if err == nil || !errors.Is(err, verify.ErrProof) {
		// The fixture's evidence entries belong to tenant t_acme; the
		// report now names the real tenant, so the verifier refuses the
		// mismatch. That is the check we want to see.
		t.Fatalf("verify: %+v, %v; want the tenant mismatch refused", res.Report.Tenant, err)
	}
	if !strings.Contains(err.Error(), "belongs to tenant t_acme") || res.Report.Tenant != tenant || res.KeyID != c.KeyID {
		t.Errorf("verify: tenant %q key %s, error %v", res.Report.Tenant, res.KeyID, err)
	}
}
