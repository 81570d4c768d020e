// Package keytest is a software security key for tests: a WebAuthn
// authenticator with ECDSA P-256 credentials that answers
// navigator.credentials.create() with attestation "none" and .get() with
// a signed assertion, built byte for byte as the WebAuthn Level 2
// specification describes (authenticator data, COSE key, CBOR
// attestation object, client data JSON). The relying party (go-webauthn
// in appliance/auth) verifies its answers with real cryptography; nothing
// here is a mock of it. Only tests import this package.
package keytest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
)

// Key is a software authenticator holding credentials for one origin.
type Key struct {
	// Origin is what the "browser" puts in client data
	// (https://host:port); RPID is checked against the options' rp id.
	Origin string
	// AnyCredential makes Get answer with its first credential even when
	// the options do not allow it: a key of another account, presented by
	// a client that ignores allowCredentials.
	AnyCredential bool
	// NoCounter makes it an authenticator without a signature counter
	// (as many platform authenticators and synced passkeys are): every
	// assertion reports 0.
	NoCounter bool
	mu        sync.Mutex
	creds     []*Credential
}

// Credential is one key pair the authenticator made.
type Credential struct {
	ID         []byte
	RPID       string
	UserHandle []byte
	Priv       *ecdsa.PrivateKey
	// Counter is the signature counter; each assertion adds one first
	// (unless the Key has NoCounter). A test sets it to n-1 to make the
	// next assertion report n.
	Counter uint32
}

// New returns an authenticator that answers as a page of origin would.
func New(origin string) *Key { return &Key{Origin: origin} }

// Credentials returns the credentials made so far.
func (k *Key) Credentials() []*Credential {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]*Credential(nil), k.creds...)
}

// Clone returns an authenticator holding copies of k's credentials (same
// private keys, same counters): what a cloned key is.
func (k *Key) Clone() *Key {
	k.mu.Lock()
	defer k.mu.Unlock()
	c := &Key{Origin: k.Origin}
	for _, cr := range k.creds {
		cp := *cr
		c.creds = append(c.creds, &cp)
	}
	return c
}

var b64 = base64.RawURLEncoding

// creationOptions is what Create reads of the options JSON.
type creationOptions struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RP        struct {
			ID string `json:"id"`
		} `json:"rp"`
		User struct {
			ID string `json:"id"`
		} `json:"user"`
		Params []struct {
			Alg int `json:"alg"`
		} `json:"pubKeyCredParams"`
		Exclude []struct {
			ID string `json:"id"`
		} `json:"excludeCredentials"`
	} `json:"publicKey"`
}

// Create answers creation options (the JSON a relying party hands to
// navigator.credentials.create(), {"publicKey":{...}}) with a new ES256
// credential and attestation "none", as the PublicKeyCredential JSON a
// page posts back.
func (k *Key) Create(options []byte) ([]byte, error) {
	var o creationOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, fmt.Errorf("keytest: creation options: %w", err)
	}
	pk := o.PublicKey
	es256 := false
	for _, p := range pk.Params {
		es256 = es256 || p.Alg == -7
	}
	if !es256 || pk.Challenge == "" || pk.RP.ID == "" {
		return nil, errors.New("keytest: options lack a challenge, an rp id or ES256")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, ex := range pk.Exclude {
		for _, c := range k.creds {
			if ex.ID == b64.EncodeToString(c.ID) {
				return nil, errors.New("keytest: InvalidStateError: this authenticator is already registered")
			}
		}
	}
	user, err := b64.DecodeString(pk.User.ID)
	if err != nil {
		return nil, fmt.Errorf("keytest: user id: %w", err)
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	id := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	c := &Credential{ID: id, RPID: pk.RP.ID, UserHandle: user, Priv: priv}
	k.creds = append(k.creds, c)

	cdj, err := clientData("webauthn.create", pk.Challenge, k.Origin)
	if err != nil {
		return nil, err
	}
	// Attested credential data: AAGUID (zero: "none" attestation),
	// credential id length and id, the COSE public key.
	var acd bytes.Buffer
	acd.Write(make([]byte, 16))
	_ = binary.Write(&acd, binary.BigEndian, uint16(len(id)))
	acd.Write(id)
	acd.Write(coseES256(&priv.PublicKey))
	ad := authData(c.RPID, flagUP|flagAT, 0, acd.Bytes())
	var att cbor
	att.mapHeader(3)
	att.text("fmt")
	att.text("none")
	att.text("attStmt")
	att.mapHeader(0)
	att.text("authData")
	att.bytes(ad)
	return json.Marshal(map[string]any{
		"id": b64.EncodeToString(id), "rawId": b64.EncodeToString(id), "type": "public-key",
		"authenticatorAttachment": "cross-platform",
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(cdj),
			"attestationObject": b64.EncodeToString(att.b.Bytes()),
			"transports":        []string{"usb"},
		},
		"clientExtensionResults": map[string]any{},
	})
}

// requestOptions is what Get reads of the options JSON.
type requestOptions struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RPID      string `json:"rpId"`
		Allow     []struct {
			ID string `json:"id"`
		} `json:"allowCredentials"`
	} `json:"publicKey"`
}

// Get answers request options (for navigator.credentials.get()) with an
// assertion by the first allowed credential this authenticator holds.
func (k *Key) Get(options []byte) ([]byte, error) {
	var o requestOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, fmt.Errorf("keytest: request options: %w", err)
	}
	pk := o.PublicKey
	k.mu.Lock()
	defer k.mu.Unlock()
	var c *Credential
	for _, a := range pk.Allow {
		for _, cr := range k.creds {
			if a.ID == b64.EncodeToString(cr.ID) && cr.RPID == pk.RPID {
				c = cr
			}
		}
	}
	if c == nil && k.AnyCredential && len(k.creds) > 0 {
		c = k.creds[0]
		c.RPID = pk.RPID
	}
	if c == nil {
		return nil, errors.New("keytest: NotAllowedError: no credential of this authenticator is allowed")
	}
	var counter uint32
	if !k.NoCounter {
		c.Counter++
		counter = c.Counter
	}
	cdj, err := clientData("webauthn.get", pk.Challenge, k.Origin)
	if err != nil {
		return nil, err
	}
	ad := authData(c.RPID, flagUP, counter, nil)
	// The signature is over authenticatorData || SHA-256(clientDataJSON),
	// ES256: ECDSA P-256 of its SHA-256, DER-encoded (§6.3.3, RFC 9053).
	cdh := sha256.Sum256(cdj)
	digest := sha256.Sum256(append(append([]byte(nil), ad...), cdh[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, c.Priv, digest[:])
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"id": b64.EncodeToString(c.ID), "rawId": b64.EncodeToString(c.ID), "type": "public-key",
		"authenticatorAttachment": "cross-platform",
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(cdj),
			"authenticatorData": b64.EncodeToString(ad),
			"signature":         b64.EncodeToString(sig),
			"userHandle":        b64.EncodeToString(c.UserHandle),
		},
		"clientExtensionResults": map[string]any{},
	})
}

// Authenticator data flags (WebAuthn §6.1).
const (
	flagUP = 0x01 // user present
	flagAT = 0x40 // attested credential data included
)

// authData is rpIdHash || flags || signCount (big-endian) || rest.
func authData(rpID string, flags byte, counter uint32, rest []byte) []byte {
	h := sha256.Sum256([]byte(rpID))
	out := append([]byte(nil), h[:]...)
	out = append(out, flags)
	out = binary.BigEndian.AppendUint32(out, counter)
	return append(out, rest...)
}

// clientData is the client data JSON a browser makes (§5.8.1).
func clientData(typ, challenge, origin string) ([]byte, error) {
	return json.Marshal(struct {
		Type        string `json:"type"`
		Challenge   string `json:"challenge"`
		Origin      string `json:"origin"`
		CrossOrigin bool   `json:"crossOrigin"`
	}{typ, challenge, origin, false})
}

// coseES256 encodes a P-256 public key as a COSE_Key (RFC 9053): kty 2
// (EC2), alg -7 (ES256), crv 1 (P-256), x, y.
func coseES256(pub *ecdsa.PublicKey) []byte {
	raw, _ := pub.Bytes() // 0x04 || x || y; cannot fail for a P-256 key
	var c cbor
	c.mapHeader(5)
	c.int(1)
	c.int(2)
	c.int(3)
	c.int(-7)
	c.int(-1)
	c.int(1)
	c.int(-2)
	c.bytes(raw[1:33])
	c.int(-3)
	c.bytes(raw[33:65])
	return c.b.Bytes()
}

// cbor writes the few CBOR items (RFC 8949) the attestation needs.
type cbor struct{ b bytes.Buffer }

func (c *cbor) head(major byte, n uint64) {
	switch {
	case n < 24:
		c.b.WriteByte(major<<5 | byte(n))
	case n < 1<<8:
		c.b.WriteByte(major<<5 | 24)
		c.b.WriteByte(byte(n))
	case n < 1<<16:
		c.b.WriteByte(major<<5 | 25)
		c.b.Write(binary.BigEndian.AppendUint16(nil, uint16(n)))
	default:
		c.b.WriteByte(major<<5 | 26)
		c.b.Write(binary.BigEndian.AppendUint32(nil, uint32(n)))
	}
}

func (c *cbor) int(v int64) {
	if v >= 0 {
		c.head(0, uint64(v))
		return
	}
	c.head(1, uint64(-1-v))
}
func (c *cbor) bytes(b []byte)  { c.head(2, uint64(len(b))); c.b.Write(b) }
func (c *cbor) text(s string)   { c.head(3, uint64(len(s))); c.b.WriteString(s) }
func (c *cbor) mapHeader(n int) { c.head(5, uint64(n)) }
