package evidence

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"firewalliq/appliance/auth"
	"firewalliq/appliance/store"
	"firewalliq/audit"
	"firewalliq/vault"
	"firewalliq/vault/vaulttest"
)

// srv is the real MinIO server shared by the tests (set by TestMain).
var srv *vaulttest.Server

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "fiq-evidence-minio-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	s, err := vaulttest.Start(tmp)
	if err != nil {
		fmt.Fprintln(os.Stderr, "evidence tests: start minio:", err)
		return 1
	}
	srv = s
	code := m.Run()
	s.Stop()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "---- minio server log ----\n%s\n---- end minio log ----\n", s.Log())
	}
	return code
}

func openDB(t *testing.T) *sql.DB {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "fiq.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st.DB()
}

func fastSleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(min(d, 20*time.Millisecond))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// minioConfig writes the secret key file and returns a config for bucket.
func minioConfig(t *testing.T, bucket string) Config {
	t.Helper()
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(vaulttest.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.Backend, c.Endpoint, c.Bucket, c.CAFile = "minio", srv.Addr, bucket, srv.CAFile()
	c.AccessKey, c.SecretKeyFile, c.RetentionDays = vaulttest.User, secret, 1
	return c
}

type auditRow struct {
	Tenant, Actor, Action, Object string
	Details                       map[string]any
}

// auditRows reads the log through the audit package's own reader, so the
// tests do not depend on how it lays out its tables.
func auditRows(t *testing.T, db *sql.DB) []auditRow {
	t.Helper()
	es, err := audit.ReadEntries(context.Background(), db, 1, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	var out []auditRow
	for _, e := range es {
		r := auditRow{Tenant: e.Tenant, Actor: e.ActorID, Action: string(e.Action), Object: e.Object}
		if len(e.Details) > 0 {
			if err := json.Unmarshal(e.Details, &r.Details); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, r)
	}
	return out
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Backend, ok.Endpoint, ok.Bucket, ok.AccessKey, ok.SecretKeyFile = "minio", "h:9000", "b", "a", "/s"
	local := DefaultConfig()
	local.Backend = "local"
	for _, tc := range []struct {
		name       string
		mut        func(*Config)
		base       Config
		production bool
		want       error
	}{
		{"minio", func(*Config) {}, ok, true, nil},
		{"local demo", func(*Config) {}, local, false, nil},
		{"local production", func(*Config) {}, local, true, vault.ErrNotWORM},
		{"unset", func(c *Config) { c.Backend = "" }, ok, false, vault.ErrBadConfig},
		{"unknown", func(c *Config) { c.Backend = "s3fs" }, ok, false, vault.ErrBadConfig},
		{"no endpoint", func(c *Config) { c.Endpoint = "" }, ok, false, vault.ErrBadConfig},
		{"no retention", func(c *Config) { c.RetentionDays = 0 }, ok, false, vault.ErrBadConfig},
		{"tiny spool", func(c *Config) { c.SpoolMaxBytes = 10 }, ok, false, vault.ErrBadConfig},
		{"alert over 1", func(c *Config) { c.SpoolAlertAt = 1.5 }, ok, false, vault.ErrBadConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.base
			tc.mut(&c)
			if err := c.Validate(tc.production); !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("Validate = %v, want %v", err, tc.want)
			}
		})
	}
	env := map[string]string{"FIQ_VAULT_BACKEND": "minio", "FIQ_VAULT_RETENTION_DAYS": "30", "FIQ_VAULT_CHECK_INTERVAL": "1m", "FIQ_VAULT_SPOOL_ALERT_AT": "0.5"}
	c := DefaultConfig()
	if err := c.LoadEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if c.Backend != "minio" || c.RetentionDays != 30 || c.CheckInterval != time.Minute || c.SpoolAlertAt != 0.5 {
		t.Fatalf("LoadEnv: %+v", c)
	}
}

func TestOpenRefusals(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	log := audit.New(audit.Options{})
	local := DefaultConfig()
	local.Backend = "local"
	if _, err := Open(ctx, Options{DB: db, Audit: log, Config: local, DataDir: t.TempDir(), Production: true}); !errors.Is(err, vault.ErrNotWORM) {
		t.Fatalf("production with local backend: %v", err)
	}
	gov, err := srv.MakeBucket(ctx, vaulttest.Governance)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, Options{DB: db, Audit: log, Config: minioConfig(t, gov), DataDir: t.TempDir(), Production: true}); !errors.Is(err, vault.ErrGovernanceMode) {
		t.Fatalf("governance bucket: %v", err)
	}
	// A server whose certificate is not trusted (no vault.ca_file) is not
	// talked to, and not a refusal either: the check error is shown.
	locked, err := srv.MakeBucket(ctx, vaulttest.Compliance)
	if err != nil {
		t.Fatal(err)
	}
	untrusted := minioConfig(t, locked)
	untrusted.CAFile = ""
	s0, err := Open(ctx, Options{DB: db, Audit: log, Config: untrusted, DataDir: t.TempDir(), Production: true})
	if err != nil {
		t.Fatalf("untrusted certificate refused start-up: %v", err)
	}
	if st := s0.Status(); st.WORM || !strings.Contains(st.CheckErr, "certificate") {
		t.Fatalf("status with an untrusted certificate: %+v", st)
	}
	// Unreachable is not a refusal: the appliance starts and spools.
	c := minioConfig(t, "fiq-unreachable")
	c.Endpoint = "127.0.0.1:1"
	s, err := Open(ctx, Options{DB: db, Audit: log, Config: c, DataDir: t.TempDir(), Production: true})
	if err != nil {
		t.Fatalf("unreachable server refused start-up: %v", err)
	}
	if _, err := s.Add(ctx, "t1", "s1", "x.json", strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); st.Spool.Pending != 1 || st.CheckErr == "" || st.WORM {
		t.Fatalf("status %+v", st)
	}
}

func TestUploadRecordedInAudit(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	bucket, err := srv.MakeBucket(ctx, vaulttest.Compliance)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, Options{DB: db, Audit: audit.New(audit.Options{}), Config: minioConfig(t, bucket), DataDir: t.TempDir(), Production: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(ctx, "t1", "scan-9", "results.jsonl", strings.NewReader("{\"a\":1}\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.Vault().Flush(ctx); err != nil {
		t.Fatal(err)
	}
	rows := auditRows(t, db)
	if len(rows) != 2 || rows[0].Action != string(audit.ActEvidenceSpooled) {
		t.Fatalf("audit rows %+v (want evidence.spool, evidence.upload)", rows)
	}
	r := rows[1]
	if r.Action != string(audit.ActEvidenceUpload) || r.Tenant != "t1" || r.Object != "tenants/t1/scans/scan-9/results.jsonl" ||
		r.Details["mode"] != "COMPLIANCE" || r.Details["sse"] != "AES256" || r.Details["worm"] != true || r.Details["version_id"] == "" || len(r.Details["sha256"].(string)) != 64 {
		t.Fatalf("audit row %+v", r)
	}
	objs, err := s.Objects(ctx, "t1", "tenants/t1/scans/scan-9/")
	if err != nil || len(objs) != 1 || objs[0].SHA256 != r.Details["sha256"] || !objs[0].WORM {
		t.Fatalf("objects %+v, %v", objs, err)
	}
	if other, _ := s.Objects(ctx, "t2", "tenants/t1/"); len(other) != 0 {
		t.Fatalf("tenant t2 sees t1's objects: %+v", other)
	}
}

// fakeGate stands in for the identity service (auth.Service), whose own
// tests cover the real dual approval and step-up.
type fakeGate struct {
	authErr, apErr, stepErr error
	ap                      auth.Approval
	canon                   []byte
	refused                 int
	spent                   map[string]bool
}

func (f *fakeGate) Authorize(ctx context.Context, p auth.Principal, op auth.Operation, tenant string) (string, error) {
	if op != auth.OpEvidenceExport {
		return "", fmt.Errorf("unexpected operation %s", op)
	}
	if tenant == "" {
		tenant = p.TenantID
	}
	return tenant, f.authErr
}

func (f *fakeGate) VerifiedApprovalFor(ctx context.Context, tenant, requester, id string, canon []byte) (auth.Approval, error) {
	f.canon = canon
	if f.apErr == nil && f.ap.RequesterID != requester {
		return auth.Approval{}, auth.ErrForbidden
	}
	if f.ap.TenantID != tenant && f.apErr == nil {
		return auth.Approval{}, errors.New("approval belongs to another tenant")
	}
	if f.apErr != nil {
		return auth.Approval{}, f.apErr
	}
	if id != f.ap.ID {
		return auth.Approval{}, errors.New("no such request")
	}
	return f.ap, nil
}

func (f *fakeGate) SpendApproval(ctx context.Context, tx *sql.Tx, tenant, id string) error {
	if f.spent[id] {
		return auth.ErrApprovalUsed
	}
	f.spent[id] = true
	return nil
}

func (f *fakeGate) ConsumeStepUp(ctx context.Context, tx *sql.Tx, p auth.Principal, op auth.Operation, canon []byte) error {
	return f.stepErr
}

func (f *fakeGate) StepUpRefused(ctx context.Context, p auth.Principal, tenant string, op auth.Operation, err error) error {
	f.refused++
	return err
}

func approvers(ids ...string) []auth.Approver {
	var out []auth.Approver
	for _, id := range ids {
		out = append(out, auth.Approver{UserID: id})
	}
	return out
}

func TestExport(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	bucket, err := srv.MakeBucket(ctx, vaulttest.Compliance)
	if err != nil {
		t.Fatal(err)
	}
	gate := &fakeGate{spent: map[string]bool{}}
	now := time.Now()
	s, err := Open(ctx, Options{DB: db, Audit: audit.New(audit.Options{}), Config: minioConfig(t, bucket), DataDir: t.TempDir(),
		Production: true, Gate: gate, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("pcapng bytes")
	if _, err := s.Add(ctx, "t1", "scan-e", "capture.pcapng", bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if err := s.Vault().Flush(ctx); err != nil {
		t.Fatal(err)
	}
	objs, _ := s.Objects(ctx, "t1", "")
	obj := objs[0]
	alice := auth.Principal{UserID: "u-alice", Name: "alice", TenantID: "t1", Client: auth.Client{IP: "192.0.2.1", UserAgent: "test"}}
	req := ExportRequest{Principal: alice, Key: obj.Key, VersionID: obj.VersionID, RequestID: "req-1"}
	good := auth.Approval{ID: "req-1", TenantID: "t1", Kind: auth.KindEvidenceExport, RequesterID: "u-alice", Approvers: approvers("u-carol", "u-bob")}
	with := func(f func(*auth.Approval)) auth.Approval { a := good; f(&a); return a }
	otherTenant := req
	otherTenant.Tenant = "t2"
	for _, tc := range []struct {
		name                    string
		ap                      auth.Approval
		authErr, apErr, stepErr error
		req                     ExportRequest
		want                    error
	}{
		{"forbidden role", good, auth.ErrForbidden, nil, nil, req, auth.ErrForbidden},
		{"not approved", good, nil, auth.ErrApprovalPending, nil, req, ErrNotApproved},
		{"one approver twice", with(func(a *auth.Approval) { a.Approvers = approvers("u-bob", "u-bob") }), nil, nil, nil, req, ErrNotApproved},
		{"requester approved", with(func(a *auth.Approval) { a.Approvers = approvers("u-alice", "u-bob") }), nil, nil, nil, req, ErrNotApproved},
		{"someone else's request", with(func(a *auth.Approval) { a.RequesterID = "u-mallory" }), nil, nil, nil, req, ErrNotApproved},
		{"scan approval", with(func(a *auth.Approval) { a.Kind = auth.KindProductionScan }), nil, nil, nil, req, ErrNotApproved},
		{"approval of another tenant", with(func(a *auth.Approval) { a.TenantID = "t2" }), nil, nil, nil, req, ErrNotApproved},
		{"no step-up", good, nil, nil, auth.ErrStepUpRequired, req, ErrNotApproved},
		{"object of another tenant", with(func(a *auth.Approval) { a.TenantID = "t2" }), nil, nil, nil, otherTenant, ErrNotFound},
		{"ok", good, nil, nil, nil, req, nil},
		{"second export with the same approval", good, nil, nil, nil, req, ErrNotApproved},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gate.ap, gate.authErr, gate.apErr, gate.stepErr = tc.ap, tc.authErr, tc.apErr, tc.stepErr
			before := len(auditRows(t, db))
			res, err := s.Export(ctx, tc.req)
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("Export = %v, want %v", err, tc.want)
			}
			rows := auditRows(t, db)
			if tc.want != nil {
				if len(rows) != before {
					t.Fatal("refused export was audited as an export")
				}
				return
			}
			if want := ExportCanonical("t1", "u-alice", obj.Key, obj.VersionID); !bytes.Equal(gate.canon, want) {
				t.Fatalf("approval checked against %s, want %s", gate.canon, want)
			}
			if !res.Expires.Equal(now.Add(ExportTTL).UTC()) || res.SHA256 != obj.SHA256 {
				t.Fatalf("result %+v", res)
			}
			last := rows[len(rows)-1]
			if last.Action != string(audit.ActEvidenceExport) || last.Actor != "u-alice" || last.Object != obj.Key || last.Tenant != "t1" ||
				fmt.Sprint(last.Details["approvers"]) != "[u-bob u-carol]" || last.Details["expires"] != res.Expires.Format(time.RFC3339) ||
				last.Details["request_id"] != "req-1" {
				t.Fatalf("export audit row %+v", last)
			}
			if strings.Contains(fmt.Sprint(last.Details), "X-Amz-Signature") {
				t.Fatal("signed URL leaked into the audit log")
			}
			resp, err := srv.HTTPClient().Get(res.URL)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
				t.Fatalf("GET export URL: %d %q", resp.StatusCode, got)
			}
		})
	}
	if gate.refused != 1 {
		t.Errorf("step-up refusal audited %d times, want 1", gate.refused)
	}
	// A raised, unacknowledged audit tamper alarm refuses even a fully
	// approved export. (The row is what audit.Log.Startup writes when it
	// finds a broken log; audit's own tamper suite covers raising it.)
	gate.ap, gate.authErr, gate.apErr, gate.stepErr = good, nil, nil, nil
	if _, err := db.ExecContext(ctx, `INSERT INTO audit_alarms (seq, kind, bad_seq, reason) VALUES (999, 'raise', 3, 'test alarm')`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Export(ctx, req); !errors.Is(err, audit.ErrTamperAlarm) {
		t.Fatalf("Export during a tamper alarm = %v, want ErrTamperAlarm", err)
	}
	// The canonical request binds every field.
	base := ExportCanonical("t1", "u-alice", "k", "v")
	for _, c := range [][]byte{ExportCanonical("t2", "u-alice", "k", "v"), ExportCanonical("t1", "u-bob", "k", "v"), ExportCanonical("t1", "u-alice", "k2", "v"), ExportCanonical("t1", "u-alice", "k", "v2")} {
		if bytes.Equal(c, base) {
			t.Errorf("canonical request did not change: %s", c)
		}
	}
}

// The identity service is the production Gate.
var _ Gate = (*auth.Service)(nil)
