package sensor

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"firewalliq/probe/runner"
)

// Errors of the fleet's wire messages.
var (
	// ErrMessage means a dispatch or trust message is malformed.
	ErrMessage = errors.New("malformed sensor message")
	// ErrTrust means a trust bundle is not signed by the pinned job key
	// or names another tenant.
	ErrTrust = errors.New("sensor trust bundle does not verify")
)

// MaxMessage bounds one dispatch message (a job embeds its scope).
const MaxMessage = 1 << 20

// trustContext separates trust-bundle signatures from every other use of
// the job key (jobs have their own context in probe/job).
const trustContext = "firewalliq sensor trust bundle v1\n"

// runIDPattern is the shape of a run id: one NATS subject token and a
// message-id prefix.
var runIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{8,64}$`)

// Trust is the set of scope-signing keys the console trusts, sent with
// each job and signed with the console's job key (pinned by the sensor at
// enrolment). The sensor verifies a job's scope against these keys exactly
// as the local runner verifies it against the console's own trust.
type Trust struct {
	Tenant     string    `json:"tenant"`      // tenant id
	TenantName string    `json:"tenant_name"` // scopes may name the tenant by name
	ScopeKeys  [][]byte  `json:"scope_keys"`  // Ed25519 public keys
	IssuedAt   time.Time `json:"issued_at"`
}

// signedTrust is a Trust's wire form.
type signedTrust struct {
	Body []byte `json:"body"` // the Trust, JSON
	Sig  []byte `json:"sig"`  // Ed25519(job key, trustContext + body)
}

// signTrust signs t with the job key.
func signTrust(t Trust, jobKey ed25519.PrivateKey) ([]byte, error) {
	body, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	return json.Marshal(signedTrust{Body: body, Sig: ed25519.Sign(jobKey, append([]byte(trustContext), body...))})
}

// openTrust verifies a signed trust bundle against the pinned job key and
// the sensor's tenant.
func openTrust(b []byte, jobKey ed25519.PublicKey, tenant string) (Trust, error) {
	var st signedTrust
	if err := strictDecode(b, &st); err != nil {
		return Trust{}, fmt.Errorf("%w: trust: %v", ErrMessage, err)
	}
	if len(jobKey) != ed25519.PublicKeySize || !ed25519.Verify(jobKey, append([]byte(trustContext), st.Body...), st.Sig) {
		return Trust{}, fmt.Errorf("%w: signature", ErrTrust)
	}
	var t Trust
	if err := strictDecode(st.Body, &t); err != nil {
		return Trust{}, fmt.Errorf("%w: trust body: %v", ErrMessage, err)
	}
	if t.Tenant != tenant {
		return Trust{}, fmt.Errorf("%w: bundle of tenant %q, sensor of %q", ErrTrust, t.Tenant, tenant)
	}
	for _, k := range t.ScopeKeys {
		if len(k) != ed25519.PublicKeySize {
			return Trust{}, fmt.Errorf("%w: scope key of %d bytes", ErrMessage, len(k))
		}
	}
	return t, nil
}

// Dispatch is what the console publishes on a sensor's job subject.
type Dispatch struct {
	// Run names this run of the job: the prefix of every result's message
	// id, so a re-dispatch (a resume) is not taken for a duplicate.
	Run     string          `json:"run"`
	Request runner.Request  `json:"request"`
	Trust   json.RawMessage `json:"trust"`
}

// decodeDispatch parses a dispatch strictly.
func decodeDispatch(b []byte) (Dispatch, error) {
	if len(b) > MaxMessage {
		return Dispatch{}, fmt.Errorf("%w: %d bytes", ErrMessage, len(b))
	}
	var d Dispatch
	if err := strictDecode(b, &d); err != nil {
		return Dispatch{}, fmt.Errorf("%w: %v", ErrMessage, err)
	}
	if !runIDPattern.MatchString(d.Run) {
		return Dispatch{}, fmt.Errorf("%w: run id %q", ErrMessage, d.Run)
	}
	return d, nil
}

// resultMsgID is the JetStream message id of a run's event: JetStream
// drops a second message with the same id within ResultsDedupWindow.
func resultMsgID(run string, seq uint64) string { return fmt.Sprintf("%s-%d", run, seq) }

// Header names: the run of a result message, the job of a dispatch.
const (
	headerRun = "Fiq-Run"
	headerJob = "Fiq-Job"
)

func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// Cancel is what the console publishes on a sensor's cancel subject
// (fiq.cancel.<sensor>): stop run Run, or stop every run of job Job other
// than Keep (the job was dispatched again as run Keep: resumed after a
// console restart or an interrupted run). The agent remembers a cancelled
// run for CancelMemory, so that its dispatch, if fetched later, is refused
// before its first packet.
type Cancel struct {
	Run  string `json:"run,omitempty"`
	Job  string `json:"job,omitempty"`
	Keep string `json:"keep,omitempty"`
}

// CancelMemory is how long an agent remembers cancelled runs: a dispatch
// waits in the jobs stream at most this long.
const CancelMemory = 25 * time.Hour

// maxJobID bounds a job id in a cancel message.
const maxJobID = 128

// decodeCancel parses a cancel message: a Cancel, or (the first form) a
// bare run id.
func decodeCancel(b []byte) (Cancel, error) {
	if len(b) > 1024 {
		return Cancel{}, fmt.Errorf("%w: cancel of %d bytes", ErrMessage, len(b))
	}
	var c Cancel
	if len(b) > 0 && b[0] == '{' {
		if err := strictDecode(b, &c); err != nil {
			return Cancel{}, fmt.Errorf("%w: cancel: %v", ErrMessage, err)
		}
	} else {
		c.Run = string(b)
	}
	switch {
	case c.Run == "" && c.Job == "":
		return Cancel{}, fmt.Errorf("%w: cancel names no run and no job", ErrMessage)
	case c.Run != "" && !runIDPattern.MatchString(c.Run):
		return Cancel{}, fmt.Errorf("%w: cancel of run %q", ErrMessage, c.Run)
	case c.Keep != "" && !runIDPattern.MatchString(c.Keep):
		return Cancel{}, fmt.Errorf("%w: cancel keeping run %q", ErrMessage, c.Keep)
	case len(c.Job) > maxJobID || (c.Keep != "" && c.Job == ""):
		return Cancel{}, fmt.Errorf("%w: cancel of job %q", ErrMessage, c.Job)
	}
	return c, nil
}
