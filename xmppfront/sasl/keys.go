package sasl

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"fmt"
	"hash"

	"golang.org/x/text/secure/precis"
)

// Hash names a SCRAM hash function the way RFC 5802 names the mechanisms.
type Hash string

// The hashes verlauf offers.
const (
	SHA1   Hash = "SHA-1"
	SHA256 Hash = "SHA-256"
)

// MinIterations is the lowest PBKDF2 iteration count accepted from a
// lookup (RFC 7677 §4 asks for at least 4096).
const MinIterations = 4096

// maxIterations bounds what a broken or hostile credential record can make
// a PLAIN login cost.
const maxIterations = 10_000_000

// minSaltLen is the shortest salt accepted from a lookup.
const minSaltLen = 8

func (h Hash) fn() (func() hash.Hash, error) {
	switch h {
	case SHA1:
		return sha1.New, nil
	case SHA256:
		return sha256.New, nil
	}
	return nil, fmt.Errorf("sasl: unsupported hash %q", string(h))
}

// Credentials are what the server stores per user and hash (RFC 5802 §3):
// the PBKDF2 salt and iteration count, StoredKey = H(ClientKey) and
// ServerKey. Never the password, never the ClientKey.
type Credentials struct {
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

func (c Credentials) check(h Hash) error {
	fn, err := h.fn()
	if err != nil {
		return err
	}
	size := fn().Size()
	switch {
	case c.Iterations < MinIterations || c.Iterations > maxIterations:
		return fmt.Errorf("sasl: stored iteration count %d out of range", c.Iterations)
	case len(c.Salt) < minSaltLen:
		return fmt.Errorf("sasl: stored salt of %d bytes is too short", len(c.Salt))
	case len(c.StoredKey) != size || len(c.ServerKey) != size:
		return fmt.Errorf("sasl: stored keys are not %d bytes long as %s needs", size, h)
	}
	return nil
}

// PreparePassword applies the PRECIS OpaqueString profile (RFC 8265 §4.2)
// to a password. DeriveKeys calls it, so registration and PLAIN agree on the
// bytes that get salted; SCRAM clients do their own (SASLprep), which gives
// the same result for every password that is not exotic Unicode.
func PreparePassword(password string) (string, error) {
	p, err := precis.OpaqueString.String(password)
	if err != nil {
		return "", fmt.Errorf("sasl: password: %w", err)
	}
	return p, nil
}

// DeriveKeys runs PBKDF2 on the prepared password and returns the user's
// ClientKey together with the Credentials to store. This is the expensive
// step; it runs at registration and password change (and at every PLAIN
// login), never for a SCRAM login.
func DeriveKeys(h Hash, password string, salt []byte, iterations int) (clientKey []byte, c Credentials, err error) {
	fn, err := h.fn()
	if err != nil {
		return nil, Credentials{}, err
	}
	if iterations < 1 {
		return nil, Credentials{}, fmt.Errorf("sasl: iteration count %d", iterations)
	}
	p, err := PreparePassword(password)
	if err != nil {
		return nil, Credentials{}, err
	}
	salted, err := pbkdf2.Key(fn, p, salt, iterations, fn().Size())
	if err != nil {
		return nil, Credentials{}, fmt.Errorf("sasl: pbkdf2: %w", err)
	}
	clientKey = mac(fn, salted, []byte("Client Key"))
	c = Credentials{
		Salt:       append([]byte(nil), salt...),
		Iterations: iterations,
		StoredKey:  sum(fn, clientKey),
		ServerKey:  mac(fn, salted, []byte("Server Key")),
	}
	return clientKey, c, nil
}

func mac(fn func() hash.Hash, key []byte, msg ...[]byte) []byte {
	m := hmac.New(fn, key)
	for _, b := range msg {
		m.Write(b)
	}
	return m.Sum(nil)
}

func sum(fn func() hash.Hash, b []byte) []byte {
	h := fn()
	h.Write(b)
	return h.Sum(nil)
}
