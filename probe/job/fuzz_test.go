package job

import (
	"bytes"
	"encoding/base64"
	"os"
	"testing"
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// FuzzOpen: the strict decoder never panics, and whatever it accepts and
// validates survives the canonical round trip.
func FuzzOpen(f *testing.F) {
	good := sign(f, goodJob(f), jobKey)
	// Seeds: a valid envelope, one reformatted, a truncation, duplicate
	// and null members, a float, and the committed example.
	f.Add(good)
	f.Add(bytes.ReplaceAll(good, []byte(`,"`), []byte(", \"")))
	f.Add(good[:len(good)-30])
	f.Add([]byte(`{"job":{"id":"a","id":"b"},"signature":{}}`))
	f.Add([]byte(`{"job":null,"signature":null}`))
	f.Add(bytes.Replace(good, []byte(`"rate":200`), []byte(`"rate":2e2`), 1))
	if ex, err := os.ReadFile("testdata/example.json"); err == nil {
		f.Add(ex)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		j, _, err := Open(data)
		if err != nil || j.Validate() != nil {
			return
		}
		c1, err := j.Canonical()
		if err != nil {
			t.Fatalf("valid job has no canonical form: %v", err)
		}
		env := append(append([]byte(`{"job":`), c1...), `,"signature":{"alg":"ed25519","key_id":"0000000000000000","sig":"`+b64(make([]byte, 64))+`"}}`...)
		j2, _, err := Open(env)
		if err != nil {
			t.Fatalf("canonical form does not decode: %v\n%s", err, c1)
		}
		c2, err := j2.Canonical()
		if err != nil || !bytes.Equal(c1, c2) {
			t.Fatalf("canonical round trip differs:\n%s\n%s", c1, c2)
		}
	})
}

// FuzzVerify: Verify never panics, and any envelope it accepts carries
// exactly the canonical job that the job key signed (the seed): a mutation
// can change formatting, never meaning.
func FuzzVerify(f *testing.F) {
	j := goodJob(f)
	good := sign(f, j, jobKey)
	want, _ := mustOpenF(f, good).Canonical()
	// Seeds: the valid envelope, reformatted, and a flipped byte.
	f.Add(good)
	f.Add(bytes.ReplaceAll(good, []byte(`":`), []byte(`" : `)))
	flipped := bytes.Clone(good)
	flipped[len(flipped)/3] ^= 1
	f.Add(flipped)
	p := testProfile(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := verify(data, p)
		if err != nil {
			return
		}
		got, err := v.Job.Canonical()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("accepted a job with other meaning:\n%s\n%s", got, want)
		}
	})
}

func mustOpenF(f *testing.F, signed []byte) Job {
	j, _, err := Open(signed)
	if err != nil {
		f.Fatal(err)
	}
	return j
}
