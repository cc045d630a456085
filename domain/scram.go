package domain

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1" // SCRAM-SHA-1 is mandatory to implement for XMPP (RFC 6120).
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"io"

	"golang.org/x/text/secure/precis"
)

// SCRAM hash names, spelled as in the SASL mechanism names
// (SCRAM-SHA-1, SCRAM-SHA-256). Only these two are stored: SHA-1 because
// RFC 6120 makes it mandatory and old clients offer nothing else, SHA-256
// because RFC 7677 recommends it. Each needs its own verifier since the
// hash is part of every derived key.
const (
	HashSHA1   = "SHA-1"
	HashSHA256 = "SHA-256"
)

// MinSCRAMIterations is the lowest iteration count accepted for a new
// verifier. RFC 7677 asks for at least 4096; fewer would make an offline
// guess at a stolen verifier cheap.
const MinSCRAMIterations = 4096

// MinSaltLen is the shortest salt accepted for a new verifier (RFC 8018
// asks for at least 64 bits).
const MinSaltLen = 8

// DefaultSaltLen is the salt length NewSCRAMVerifiers draws.
const DefaultSaltLen = 16

// ErrInvalidCredentials is wrapped by every error about a malformed
// password, salt, iteration count or verifier.
var ErrInvalidCredentials = errors.New("domain: invalid credentials")

// SCRAMVerifier is what the server keeps of a password for one SCRAM hash
// (RFC 5802 §3): enough to check a client's proof and to prove itself to
// the client, never enough to log in as the user without guessing the
// password. The password itself is never stored or recorded in the log.
//
// The byte slices encode as base64 in JSON event bodies.
type SCRAMVerifier struct {
	// Hash is HashSHA1 or HashSHA256.
	Hash string `json:"hash"`
	// Salt is the salt sent to the client in the server-first-message.
	Salt []byte `json:"salt"`
	// Iterations is the PBKDF2 iteration count i.
	Iterations int `json:"iterations"`
	// StoredKey is H(ClientKey).
	StoredKey []byte `json:"stored_key"`
	// ServerKey is HMAC(SaltedPassword, "Server Key").
	ServerKey []byte `json:"server_key"`
}

// scramHash returns the hash constructor for a SCRAM hash name.
func scramHash(name string) (func() hash.Hash, error) {
	switch name {
	case HashSHA1:
		return sha1.New, nil
	case HashSHA256:
		return sha256.New, nil
	default:
		return nil, fmt.Errorf("%w: unsupported SCRAM hash %q", ErrInvalidCredentials, name)
	}
}

// NormalizePassword applies the PRECIS OpaqueString profile (RFC 8265
// §4.2), which RFC 7677 and RFC 8265 require in place of SASLprep: a
// password typed with a different Unicode composition on another device
// still derives the same keys. Empty passwords are rejected by the profile.
func NormalizePassword(password string) (string, error) {
	p, err := precis.OpaqueString.String(password)
	if err != nil {
		return "", fmt.Errorf("%w: password: %w", ErrInvalidCredentials, err)
	}
	return p, nil
}

// SaltedPassword computes Hi(Normalize(password), salt, i) of RFC 5802,
// the secret from which ClientKey and ServerKey derive. It is exported for
// PLAIN authentication, where the server has the password and derives
// ClientKey to unwrap the user's keys (see DESIGN.md, encryption at rest).
func SaltedPassword(hashName, password string, salt []byte, iterations int) ([]byte, error) {
	h, err := scramHash(hashName)
	if err != nil {
		return nil, err
	}
	norm, err := NormalizePassword(password)
	if err != nil {
		return nil, err
	}
	if len(salt) == 0 {
		return nil, fmt.Errorf("%w: empty salt", ErrInvalidCredentials)
	}
	if iterations < 1 {
		return nil, fmt.Errorf("%w: iteration count %d", ErrInvalidCredentials, iterations)
	}
	sp, err := pbkdf2.Key(h, norm, salt, iterations, h().Size())
	if err != nil {
		return nil, fmt.Errorf("%w: pbkdf2: %w", ErrInvalidCredentials, err)
	}
	return sp, nil
}

// ClientKey computes HMAC(SaltedPassword, "Client Key").
func ClientKey(hashName string, saltedPassword []byte) ([]byte, error) {
	h, err := scramHash(hashName)
	if err != nil {
		return nil, err
	}
	return hmacSum(h, saltedPassword, []byte("Client Key")), nil
}

// NewSCRAMVerifier derives the verifier of password for one hash, per RFC
// 5802 §3. The salt is given, not drawn, so the function stays pure and
// deterministic (and testable against the RFC vectors); NewSalt draws one.
// New verifiers must use at least MinSCRAMIterations and a salt of at
// least MinSaltLen bytes.
func NewSCRAMVerifier(hashName, password string, salt []byte, iterations int) (SCRAMVerifier, error) {
	if iterations < MinSCRAMIterations {
		return SCRAMVerifier{}, fmt.Errorf("%w: %d iterations, want at least %d", ErrInvalidCredentials, iterations, MinSCRAMIterations)
	}
	if len(salt) < MinSaltLen {
		return SCRAMVerifier{}, fmt.Errorf("%w: salt of %d bytes, want at least %d", ErrInvalidCredentials, len(salt), MinSaltLen)
	}
	h, err := scramHash(hashName)
	if err != nil {
		return SCRAMVerifier{}, err
	}
	sp, err := SaltedPassword(hashName, password, salt, iterations)
	if err != nil {
		return SCRAMVerifier{}, err
	}
	clientKey := hmacSum(h, sp, []byte("Client Key"))
	stored := h()
	stored.Write(clientKey)
	return SCRAMVerifier{
		Hash:       hashName,
		Salt:       append([]byte(nil), salt...),
		Iterations: iterations,
		StoredKey:  stored.Sum(nil),
		ServerKey:  hmacSum(h, sp, []byte("Server Key")),
	}, nil
}

// NewSalt reads n random bytes from rand. The domain never reads
// crypto/rand itself: the caller passes crypto/rand.Reader in production
// and a fixed reader in tests.
func NewSalt(rand io.Reader, n int) ([]byte, error) {
	if n < MinSaltLen {
		return nil, fmt.Errorf("%w: salt of %d bytes, want at least %d", ErrInvalidCredentials, n, MinSaltLen)
	}
	salt := make([]byte, n)
	if _, err := io.ReadFull(rand, salt); err != nil {
		return nil, fmt.Errorf("domain: read salt: %w", err)
	}
	return salt, nil
}

// NewSCRAMVerifiers derives one verifier per supported hash (SHA-1 and
// SHA-256), each with its own fresh salt from rand, as account
// registration and password changes record them.
func NewSCRAMVerifiers(rand io.Reader, password string, iterations int) ([]SCRAMVerifier, error) {
	hashes := []string{HashSHA1, HashSHA256}
	out := make([]SCRAMVerifier, 0, len(hashes))
	for _, name := range hashes {
		salt, err := NewSalt(rand, DefaultSaltLen)
		if err != nil {
			return nil, err
		}
		v, err := NewSCRAMVerifier(name, password, salt, iterations)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Validate checks that v is a well-formed verifier: a supported hash, a
// salt, a positive iteration count and keys of the hash's size. Events are
// validated before they are recorded so that a bad verifier cannot lock a
// user out later.
func (v SCRAMVerifier) Validate() error {
	h, err := scramHash(v.Hash)
	if err != nil {
		return err
	}
	size := h().Size()
	switch {
	case len(v.Salt) == 0:
		return fmt.Errorf("%w: %s verifier without salt", ErrInvalidCredentials, v.Hash)
	case v.Iterations < 1:
		return fmt.Errorf("%w: %s verifier with %d iterations", ErrInvalidCredentials, v.Hash, v.Iterations)
	case len(v.StoredKey) != size || len(v.ServerKey) != size:
		return fmt.Errorf("%w: %s verifier keys must be %d bytes", ErrInvalidCredentials, v.Hash, size)
	}
	return nil
}

// VerifyClientProof checks a SCRAM client-final-message's proof against
// the verifier (RFC 5802 §3, server side): ClientKey = ClientProof XOR
// HMAC(StoredKey, AuthMessage) must hash to StoredKey. On success it
// returns ClientKey, which the server needs for a moment to unwrap the
// user's archive keys; the caller must wipe it after use.
func (v SCRAMVerifier) VerifyClientProof(authMessage, clientProof []byte) (clientKey []byte, ok bool) {
	h, err := scramHash(v.Hash)
	if err != nil || len(clientProof) != len(v.StoredKey) {
		return nil, false
	}
	sig := hmacSum(h, v.StoredKey, authMessage)
	key := make([]byte, len(sig))
	subtle.XORBytes(key, clientProof, sig)
	sum := h()
	sum.Write(key)
	if subtle.ConstantTimeCompare(sum.Sum(nil), v.StoredKey) != 1 {
		return nil, false
	}
	return key, true
}

// ServerSignature computes HMAC(ServerKey, AuthMessage), the "v=" value of
// the server-final-message that proves to the client that the server knew
// the verifier.
func (v SCRAMVerifier) ServerSignature(authMessage []byte) ([]byte, error) {
	h, err := scramHash(v.Hash)
	if err != nil {
		return nil, err
	}
	return hmacSum(h, v.ServerKey, authMessage), nil
}

func hmacSum(h func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil)
}
