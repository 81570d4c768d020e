package vault

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"
)

// FuzzSpoolEntryDiffers checks the upload's comparison with the audit log:
// a record passes exactly when its key, tenant, header hash, header size
// and payload hash all equal what was recorded at spooling.
func FuzzSpoolEntryDiffers(f *testing.F) {
	sum := sha256.Sum256([]byte("evidence"))
	h := hex.EncodeToString(sum[:])
	other := sha256.Sum256([]byte("swapped"))
	o := hex.EncodeToString(other[:])
	// Seeds: the matching record; a swapped payload with a recomputed
	// header (the attack); a swapped payload under the old header; another
	// key; another tenant; another size.
	f.Add("tenants/t1/scans/s1/r.jsonl", "t1", h, int64(8), "tenants/t1/scans/s1/r.jsonl", "t1", h, int64(8), h)
	f.Add("tenants/t1/scans/s1/r.jsonl", "t1", h, int64(8), "tenants/t1/scans/s1/r.jsonl", "t1", o, int64(7), o)
	f.Add("tenants/t1/scans/s1/r.jsonl", "t1", h, int64(8), "tenants/t1/scans/s1/r.jsonl", "t1", h, int64(8), o)
	f.Add("tenants/t1/scans/s1/r.jsonl", "t1", h, int64(8), "tenants/t1/scans/s2/r.jsonl", "t1", h, int64(8), h)
	f.Add("tenants/t1/scans/s1/r.jsonl", "t1", h, int64(8), "tenants/t1/scans/s1/r.jsonl", "t2", h, int64(8), h)
	f.Add("tenants/t1/scans/s1/r.jsonl", "t1", h, int64(8), "tenants/t1/scans/s1/r.jsonl", "t1", h, int64(9), h)
	f.Fuzz(func(t *testing.T, eKey, eTenant, eSHA string, eSize int64, hKey, hTenant, hSHA string, hSize int64, got string) {
		e := SpoolEntry{ID: "r1", Key: eKey, Tenant: eTenant, SHA256: eSHA, Size: eSize, Seq: 7}
		rh := RecordHeader{Key: hKey, Tenant: hTenant, SHA256: hSHA, Size: hSize, Spooled: time.Unix(1, 0)}
		same := eKey == hKey && eTenant == hTenant && eSHA == hSHA && eSize == hSize && got == eSHA
		if reason := e.differs(rh, got); (reason == "") != same {
			t.Fatalf("differs(%+v, %+v, %q) = %q, want match %v", e, rh, got, reason, same)
		}
	})
}
