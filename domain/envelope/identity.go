package envelope

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

// clientKeySize returns the ClientKey size of a SCRAM hash, named as
// domain.HashSHA1 and domain.HashSHA256 spell it (the package does not
// import domain, so that domain may one day import it; a test keeps the
// names in step). The size check turns a ClientKey passed with the wrong
// hash name into ErrInvalid, not a puzzling ErrAuth.
func clientKeySize(hash string) (int, bool) {
	switch hash {
	case "SHA-1":
		return 20, true
	case "SHA-256":
		return 32, true
	}
	return 0, false
}

// PublicKey is an account's X25519 public key. It is stored in clear: the
// server needs it to seal data keys while the user is offline.
type PublicKey [32]byte

// MarshalText encodes the key as standard base64, so that it reads as a
// string in JSON event bodies.
func (p PublicKey) MarshalText() ([]byte, error) {
	return base64.StdEncoding.AppendEncode(nil, p[:]), nil
}

// UnmarshalText decodes the form written by MarshalText.
func (p *PublicKey) UnmarshalText(text []byte) error {
	b, err := base64.StdEncoding.AppendDecode(nil, text)
	if err != nil {
		return fmt.Errorf("%w: public key: %w", ErrCorrupt, err)
	}
	if len(b) != len(p) {
		return fmt.Errorf("%w: public key of %d bytes, want %d", ErrCorrupt, len(b), len(p))
	}
	copy(p[:], b)
	return nil
}

// String returns the base64 form; a public key is not secret.
func (p PublicKey) String() string { return base64.StdEncoding.EncodeToString(p[:]) }

// Identity is an account's unwrapped secrets: the X25519 private key that
// opens its data keys, and the key of its blind index. It exists in memory
// only, while the user has a session (or while the account is created or
// its password changed), and is wiped after.
//
// An Identity is safe for concurrent use by several goroutines, except
// Wipe, which must follow the last use.
type Identity struct {
	priv  [keySize]byte
	index [keySize]byte
	pub   PublicKey
	wiped bool
}

// NewIdentity draws a fresh key pair and index key from rand (pass
// crypto/rand.Reader). It is used at registration and when an
// administrator resets a password: the old identity cannot be recovered
// without the old password, so everything sealed to the old public key is
// lost for good (see the package documentation).
func NewIdentity(rand io.Reader) (*Identity, PublicKey, error) {
	id := &Identity{}
	if _, err := io.ReadFull(rand, id.priv[:]); err != nil {
		return nil, PublicKey{}, fmt.Errorf("envelope: read private key: %w", err)
	}
	if _, err := io.ReadFull(rand, id.index[:]); err != nil {
		id.Wipe()
		return nil, PublicKey{}, fmt.Errorf("envelope: read index key: %w", err)
	}
	if err := id.derivePublic(); err != nil {
		id.Wipe()
		return nil, PublicKey{}, err
	}
	return id, id.pub, nil
}

func (id *Identity) derivePublic() error {
	k, err := ecdh.X25519().NewPrivateKey(id.priv[:])
	if err != nil {
		return fmt.Errorf("envelope: private key: %w", err)
	}
	copy(id.pub[:], k.PublicKey().Bytes())
	return nil
}

// PublicKey returns the public half of the identity. At login the caller
// should compare it with the stored public key: someone who can write to
// the store could have replaced that key with their own to read messages
// sealed while the user was offline, and this is where it shows.
func (id *Identity) PublicKey() PublicKey { return id.pub }

// Wipe zeroes the secret keys. Later use fails with ErrWiped. See the
// package documentation for what zeroing can and cannot guarantee in Go.
func (id *Identity) Wipe() {
	clear(id.priv[:])
	clear(id.index[:])
	id.wiped = true
}

// BlindIndex returns the index term for a conversation partner:
// HMAC-SHA256 keyed with the user's index key over a labelled encoding of
// the partner's bare JID. Equal partners give equal terms for one user, so
// an index can be searched by partner; without the index key the terms
// reveal nothing, and two users' terms for the same partner are unrelated.
//
// partner must be the canonical string of a bare JID, normalised the same
// way when indexing and when querying, or the lookup will miss.
func (id *Identity) BlindIndex(partner string) ([32]byte, error) {
	var out [32]byte
	if id == nil {
		return out, fmt.Errorf("%w: nil identity", ErrInvalid)
	}
	if id.wiped {
		return out, ErrWiped
	}
	if err := checkBareJID("partner", partner); err != nil {
		return out, err
	}
	m := hmac.New(sha256.New, id.index[:])
	m.Write(bind(nil, labelBlindIndex, []byte(partner)))
	m.Sum(out[:0])
	return out, nil
}

// WrappedIdentity is an Identity encrypted under a key derived from one
// SCRAM ClientKey. An account keeps one per SCRAM hash it offers (SHA-1
// and SHA-256 derive different ClientKeys from the same password), so
// either mechanism, and PLAIN, can unlock it. The fields encode as base64
// in JSON.
type WrappedIdentity struct {
	// Hash is the SCRAM hash whose ClientKey unlocks Blob ("SHA-1" or
	// "SHA-256", as domain.HashSHA1 and domain.HashSHA256).
	Hash string `json:"hash"`
	// Salt is the HKDF salt of the key-encryption key, fresh per wrap.
	Salt []byte `json:"salt"`
	// Blob is version(1) ‖ nonce(24) ‖ XChaCha20-Poly1305(private key ‖
	// index key).
	Blob []byte `json:"blob"`
}

const wrappedIdentitySize = 1 + nonceSize + identityPlainSize + tagSize

// Wrap encrypts id under a key-encryption key derived from clientKey, the
// SCRAM ClientKey of user's password for hash. Call it once per SCRAM hash
// at registration and after every password change; the data keys and
// sealed records are not touched.
func Wrap(rand io.Reader, id *Identity, user, hash string, clientKey []byte) (WrappedIdentity, error) {
	if id == nil {
		return WrappedIdentity{}, fmt.Errorf("%w: nil identity", ErrInvalid)
	}
	if id.wiped {
		return WrappedIdentity{}, ErrWiped
	}
	if err := checkBareJID("user", user); err != nil {
		return WrappedIdentity{}, err
	}
	if err := checkClientKey(hash, clientKey); err != nil {
		return WrappedIdentity{}, err
	}
	salt := make([]byte, saltSize)
	if _, err := io.ReadFull(rand, salt); err != nil {
		return WrappedIdentity{}, fmt.Errorf("envelope: read salt: %w", err)
	}
	blob := make([]byte, 1+nonceSize, wrappedIdentitySize)
	blob[0] = wrappedIdentityV1
	if _, err := io.ReadFull(rand, blob[1:]); err != nil {
		return WrappedIdentity{}, fmt.Errorf("envelope: read nonce: %w", err)
	}
	kek, err := deriveKEK(clientKey, salt, user, hash)
	if err != nil {
		return WrappedIdentity{}, err
	}
	defer clear(kek)
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return WrappedIdentity{}, fmt.Errorf("envelope: kek cipher: %w", err)
	}
	var plain [identityPlainSize]byte
	defer clear(plain[:])
	copy(plain[:keySize], id.priv[:])
	copy(plain[keySize:], id.index[:])
	blob = aead.Seal(blob, blob[1:1+nonceSize], plain[:], wrapAAD(blob[0], user, hash, salt))
	return WrappedIdentity{Hash: hash, Salt: salt, Blob: blob}, nil
}

// Unwrap decrypts w with the ClientKey of user's password for w.Hash. A
// wrong password (hence a wrong ClientKey), a blob of another user and a
// modified byte all give ErrAuth; a malformed blob gives ErrCorrupt.
func Unwrap(w WrappedIdentity, user string, clientKey []byte) (*Identity, error) {
	if err := checkBareJID("user", user); err != nil {
		return nil, err
	}
	size, ok := clientKeySize(w.Hash)
	if !ok {
		return nil, fmt.Errorf("%w: wrapped identity for unknown hash %q", ErrCorrupt, w.Hash)
	}
	if len(clientKey) != size {
		return nil, fmt.Errorf("%w: %s ClientKey of %d bytes, want %d", ErrInvalid, w.Hash, len(clientKey), size)
	}
	if err := checkVersion("wrapped identity", w.Blob, wrappedIdentityV1, wrappedIdentitySize); err != nil {
		return nil, err
	}
	if len(w.Salt) != saltSize {
		return nil, fmt.Errorf("%w: wrapped identity salt of %d bytes, want %d", ErrCorrupt, len(w.Salt), saltSize)
	}
	kek, err := deriveKEK(clientKey, w.Salt, user, w.Hash)
	if err != nil {
		return nil, err
	}
	defer clear(kek)
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return nil, fmt.Errorf("envelope: kek cipher: %w", err)
	}
	nonce, ct := w.Blob[1:1+nonceSize], w.Blob[1+nonceSize:]
	plain, err := aead.Open(nil, nonce, ct, wrapAAD(w.Blob[0], user, w.Hash, w.Salt))
	if err != nil {
		return nil, fmt.Errorf("%w: wrapped identity of %s (%s)", ErrAuth, user, w.Hash)
	}
	defer clear(plain)
	id := &Identity{}
	copy(id.priv[:], plain[:keySize])
	copy(id.index[:], plain[keySize:])
	if err := id.derivePublic(); err != nil {
		id.Wipe()
		return nil, err
	}
	return id, nil
}

func checkClientKey(hash string, clientKey []byte) error {
	size, ok := clientKeySize(hash)
	if !ok {
		return fmt.Errorf("%w: unknown SCRAM hash %q", ErrInvalid, hash)
	}
	if len(clientKey) != size {
		return fmt.Errorf("%w: %s ClientKey of %d bytes, want %d", ErrInvalid, hash, len(clientKey), size)
	}
	return nil
}

// deriveKEK is HKDF-SHA256(ikm = ClientKey, salt, info = label ‖ user ‖
// hash). Binding user and hash means a wrapped identity copied to another
// account, or presented under the other hash, derives another key and
// fails to open.
func deriveKEK(clientKey, salt []byte, user, hash string) ([]byte, error) {
	info := bind(nil, labelKEK, []byte(user), []byte(hash))
	kek, err := hkdf.Key(sha256.New, clientKey, salt, string(info), keySize)
	if err != nil {
		return nil, fmt.Errorf("envelope: derive kek: %w", err)
	}
	return kek, nil
}

func wrapAAD(version byte, user, hash string, salt []byte) []byte {
	return bind([]byte{version}, labelWrapAAD, []byte(user), []byte(hash), salt)
}
