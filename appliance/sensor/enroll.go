package sensor

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nkeys"

	"firewalliq/appliance/auth"
	"firewalliq/probe/bounded"
)

// EnrollPath is where the console serves the enrolment exchange
// (EnrollHandler): POST an EnrollRequest, receive an EnrollResponse. It is
// the only console endpoint a sensor uses; the token is its credential.
const EnrollPath = "/api/v1/sensors/enroll"

// CredentialsFile is the sensor's credentials inside its state directory.
const CredentialsFile = "sensor.json"

// Sensor-side errors.
var (
	// ErrPin means the console's certificate is not the pinned one.
	ErrPin = errors.New("console certificate does not match the pinned fingerprint")
	// ErrEnrolled means the state directory already holds credentials.
	ErrEnrolled = errors.New("sensor is already enrolled in this directory")
	// ErrNotEnrolled means the state directory holds no credentials.
	ErrNotEnrolled = errors.New("sensor is not enrolled; run 'firewalliq sensor enroll'")
	// ErrRefused means the console refused the sensor's credentials
	// (revoked, or unknown to it).
	ErrRefused = errors.New("console refused the sensor's credentials")
)

// maxEnrollBody bounds an enrolment request or response.
const maxEnrollBody = 64 << 10

var fingerprintPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// NormalizeFingerprint accepts a SHA-256 fingerprint as 64 hex digits,
// with or without colons, in either case.
func NormalizeFingerprint(fp string) (string, error) {
	f := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(fp), ":", ""))
	if !fingerprintPattern.MatchString(f) {
		return "", fmt.Errorf("%w: certificate fingerprint must be 64 hex digits (SHA-256)", ErrInvalid)
	}
	return f, nil
}

// PinnedTLS returns a client TLS configuration that accepts exactly the
// certificate whose DER has SHA-256 fingerprint fp. The console's
// certificate is self-signed, so the pin replaces PKI verification (the
// chain and host name are not checked; the pin is stronger).
func PinnedTLS(fp string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, //nolint:gosec // VerifyConnection checks the pinned fingerprint instead.
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrPin
			}
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if hex.EncodeToString(sum[:]) != fp {
				return fmt.Errorf("%w: got %x", ErrPin, sum)
			}
			return nil
		},
	}
}

// EnrollHandler serves the enrolment exchange for the HTTP API to mount at
// EnrollPath. Errors answer {"error": "..."} with 400 (malformed), 401
// (token unknown, used or expired), 409 (name or key enrolled), 503
// (fleet off) or 500 (nothing internal is shown).
func EnrollHandler(s *Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "POST only"})
			return
		}
		var req EnrollRequest
		if err := strictDecodeReader(http.MaxBytesReader(w, r.Body, maxEnrollBody), &req); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "malformed enrolment request"})
			return
		}
		ip, _, _ := net.SplitHostPort(r.RemoteAddr)
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		resp, err := s.Enroll(r.Context(), req, auth.Client{IP: ip, UserAgent: r.UserAgent()}, host)
		switch {
		case err == nil:
			writeJSON(w, http.StatusOK, resp)
		case errors.Is(err, ErrInvalid):
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		case errors.Is(err, ErrToken):
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": ErrToken.Error()})
		case errors.Is(err, ErrExists):
			writeJSON(w, http.StatusConflict, map[string]string{"error": ErrExists.Error()})
		case errors.Is(err, ErrFleetOff):
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": ErrFleetOff.Error()})
		default:
			s.d.Logger.Error("sensor enrolment", "err", err)
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
		}
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func strictDecodeReader(r io.Reader, v any) error {
	b, err := io.ReadAll(io.LimitReader(r, maxEnrollBody+1))
	if err != nil {
		return err
	}
	if len(b) > maxEnrollBody {
		return errors.New("too large")
	}
	return strictDecode(b, v)
}

// Credentials are what a sensor keeps in its state directory (mode 0600):
// its identity, its NKey seed (generated on the sensor host; never sent),
// and the console's pinned job key and certificate fingerprint.
type Credentials struct {
	Console    string `json:"console"`
	SensorID   string `json:"sensor_id"`
	Tenant     string `json:"tenant"`
	TenantName string `json:"tenant_name"`
	Name       string `json:"name"`
	Vantage    string `json:"vantage"`
	NATSURL    string `json:"nats_url"`
	Seed       string `json:"nkey_seed"`
	JobKey     []byte `json:"job_key"`
	CertSHA256 string `json:"cert_sha256"`
}

// EnrollOptions are the sensor host's enrolment inputs.
type EnrollOptions struct {
	Console    string // https://console:8443
	Token      string
	CertSHA256 string
	Dir        string // state directory
	Version    string
	// ProfileSHA256 is the hash of the sensor's compiled-in profile.
	ProfileSHA256 string
	// Client is the HTTP client (its TLS configuration is replaced by the
	// pin); nil for a default with a 30 s timeout.
	Client *http.Client
}

// Enroll runs the sensor host's side of enrolment: it generates the NKey,
// posts the token and the public key to the console over TLS pinned to
// CertSHA256, and stores the credentials in Dir/sensor.json (0600). It
// refuses a directory that already holds credentials.
func Enroll(ctx context.Context, o EnrollOptions) (Credentials, error) {
	fp, err := NormalizeFingerprint(o.CertSHA256)
	if err != nil {
		return Credentials{}, err
	}
	if !strings.HasPrefix(o.Console, "https://") {
		return Credentials{}, fmt.Errorf("%w: console URL must start with https://", ErrInvalid)
	}
	path := filepath.Join(o.Dir, CredentialsFile)
	if _, err := os.Stat(path); err == nil {
		return Credentials{}, fmt.Errorf("%s: %w", path, ErrEnrolled)
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return Credentials{}, err
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	body, _ := json.Marshal(EnrollRequest{Token: o.Token, NKey: pub, Version: o.Version, ProfileSHA256: o.ProfileSHA256})
	hc := &http.Client{Timeout: 30 * time.Second}
	if o.Client != nil {
		c := *o.Client
		hc = &c
	}
	hc.Transport = &http.Transport{TLSClientConfig: PinnedTLS(fp), Proxy: http.ProxyFromEnvironment}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(o.Console, "/")+EnrollPath, bytes.NewReader(body))
	if err != nil {
		return Credentials{}, fmt.Errorf("%w: console URL: %v", ErrInvalid, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "firewalliq-sensor/"+o.Version)
	res, err := hc.Do(req)
	if err != nil {
		return Credentials{}, fmt.Errorf("enrol: %w", err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxEnrollBody+1))
	if err != nil {
		return Credentials{}, fmt.Errorf("enrol: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		switch res.StatusCode {
		case http.StatusUnauthorized:
			return Credentials{}, fmt.Errorf("enrol: %w", ErrToken)
		case http.StatusBadRequest:
			return Credentials{}, fmt.Errorf("enrol: %w: %s", ErrInvalid, e.Error)
		}
		return Credentials{}, fmt.Errorf("enrol: console answered %d: %s", res.StatusCode, e.Error)
	}
	var er EnrollResponse
	if err := strictDecode(raw, &er); err != nil {
		return Credentials{}, fmt.Errorf("enrol: %w: response: %v", ErrMessage, err)
	}
	if er.CertSHA256 != fp {
		return Credentials{}, fmt.Errorf("enrol: %w: console names %s", ErrPin, er.CertSHA256)
	}
	if len(er.JobKey) != ed25519.PublicKeySize || er.SensorID == "" || er.NATSURL == "" {
		return Credentials{}, fmt.Errorf("enrol: %w: incomplete response", ErrMessage)
	}
	c := Credentials{Console: o.Console, SensorID: er.SensorID, Tenant: er.Tenant, TenantName: er.TenantName, Name: er.Name,
		Vantage: er.Vantage, NATSURL: er.NATSURL, Seed: string(seed), JobKey: er.JobKey, CertSHA256: fp}
	if err := writeCredentials(o.Dir, c); err != nil {
		return Credentials{}, err
	}
	return c, nil
}

func writeCredentials(dir string, c Credentials) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, CredentialsFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("credentials: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("credentials: %w", err)
	}
	return f.Close()
}

// LoadCredentials reads Dir/sensor.json, refusing one that group or
// others can read.
func LoadCredentials(dir string) (Credentials, error) {
	path := filepath.Join(dir, CredentialsFile)
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return Credentials{}, fmt.Errorf("%s: %w", path, ErrNotEnrolled)
	}
	if err != nil {
		return Credentials{}, fmt.Errorf("credentials: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return Credentials{}, fmt.Errorf("credentials %s: mode %04o is readable by others; chmod 600", path, fi.Mode().Perm())
	}
	b, err := bounded.ReadFile(path, bounded.MaxKeyFile)
	if err != nil {
		return Credentials{}, fmt.Errorf("credentials: %w", err)
	}
	var c Credentials
	if err := strictDecode(b, &c); err != nil {
		return Credentials{}, fmt.Errorf("credentials %s: %w: %v", path, ErrMessage, err)
	}
	if _, err := nkeys.FromSeed([]byte(c.Seed)); err != nil || len(c.JobKey) != ed25519.PublicKeySize || c.SensorID == "" {
		return Credentials{}, fmt.Errorf("credentials %s: %w: incomplete", path, ErrMessage)
	}
	return c, nil
}
