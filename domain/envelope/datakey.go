package envelope

import (
	"crypto/ecdh"
	"crypto/hpke"
	"fmt"
	"io"

	"github.com/google/uuid"
)

// DataKey is a symmetric key that seals message records
// (XChaCha20-Poly1305). It is identified by a UUID, which every record
// sealed under it carries in clear and binds in its additional data.
//
// A DataKey is safe for concurrent use, except Wipe, which must follow the
// last use.
type DataKey struct {
	id    uuid.UUID
	key   [keySize]byte
	wiped bool
}

// NewDataKey draws a fresh key from rand (pass crypto/rand.Reader). id
// names it in the key store; use a fresh UUIDv7 so ids sort by creation.
func NewDataKey(rand io.Reader, id uuid.UUID) (*DataKey, error) {
	if id == uuid.Nil {
		return nil, fmt.Errorf("%w: nil data key id", ErrInvalid)
	}
	dk := &DataKey{id: id}
	if _, err := io.ReadFull(rand, dk.key[:]); err != nil {
		return nil, fmt.Errorf("envelope: read data key: %w", err)
	}
	return dk, nil
}

// ID returns the key's id.
func (k *DataKey) ID() uuid.UUID { return k.id }

// Wipe zeroes the key. Later use fails with ErrWiped.
func (k *DataKey) Wipe() {
	clear(k.key[:])
	k.wiped = true
}

// SealedDataKey is a data key sealed to an account's public key, as the key
// store keeps it. Deleting it from the store shreds every record sealed
// under the key, in the log and in every backup alike.
type SealedDataKey struct {
	// ID is the data key's id, bound into Blob: a blob filed under another
	// id does not open.
	ID uuid.UUID `json:"id"`
	// Blob is version(1) ‖ HPKE encapsulated key(32) ‖ HPKE ciphertext of
	// the key (32 + 16 tag).
	Blob []byte `json:"blob"`
}

const sealedDataKeySize = 1 + 32 + keySize + tagSize

// The HPKE suite of sealed data keys (RFC 9180, base mode):
// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305. This is the
// standard form of the "sealed box": an ephemeral X25519 key per sealing,
// its shared secret with the recipient's key run through HKDF together
// with both public keys.
func hpkeSuite() (hpke.KEM, hpke.KDF, hpke.AEAD) {
	return hpke.DHKEM(ecdh.X25519()), hpke.HKDFSHA256(), hpke.ChaCha20Poly1305()
}

// SealDataKey seals dk to pub, the public key of user. It needs no secret
// of the user, so the server can seal messages that arrive while the user
// is offline. The ephemeral HPKE key is drawn from crypto/rand by the
// standard library, which since Go 1.26 ignores caller-supplied randomness
// for key generation; this is the one draw not taken from a passed reader.
func SealDataKey(pub PublicKey, user string, dk *DataKey) (SealedDataKey, error) {
	if dk == nil {
		return SealedDataKey{}, fmt.Errorf("%w: nil data key", ErrInvalid)
	}
	if dk.wiped {
		return SealedDataKey{}, ErrWiped
	}
	if err := checkBareJID("user", user); err != nil {
		return SealedDataKey{}, err
	}
	kem, kdf, aead := hpkeSuite()
	pk, err := kem.NewPublicKey(pub[:])
	if err != nil {
		return SealedDataKey{}, fmt.Errorf("%w: public key: %w", ErrInvalid, err)
	}
	enc, sender, err := hpke.NewSender(pk, kdf, aead, dataKeyInfo(user, dk.id))
	if err != nil {
		// X25519 refuses a low-order public key (all-zero shared secret).
		return SealedDataKey{}, fmt.Errorf("%w: seal to public key: %w", ErrInvalid, err)
	}
	header := []byte{sealedDataKeyV1}
	ct, err := sender.Seal(header, dk.key[:])
	if err != nil {
		return SealedDataKey{}, fmt.Errorf("envelope: seal data key: %w", err)
	}
	blob := make([]byte, 0, sealedDataKeySize)
	blob = append(append(append(blob, header...), enc...), ct...)
	return SealedDataKey{ID: dk.id, Blob: blob}, nil
}

// OpenDataKey opens a data key sealed to the identity's public key for
// user. One X25519 operation per data key, not per message: the caller
// keeps the opened key for the records sealed under it, and wipes it when
// the session ends.
func (id *Identity) OpenDataKey(user string, sk SealedDataKey) (*DataKey, error) {
	if id == nil {
		return nil, fmt.Errorf("%w: nil identity", ErrInvalid)
	}
	if id.wiped {
		return nil, ErrWiped
	}
	if err := checkBareJID("user", user); err != nil {
		return nil, err
	}
	if sk.ID == uuid.Nil {
		return nil, fmt.Errorf("%w: sealed data key without id", ErrCorrupt)
	}
	if err := checkVersion("sealed data key", sk.Blob, sealedDataKeyV1, sealedDataKeySize); err != nil {
		return nil, err
	}
	kem, kdf, aead := hpkeSuite()
	priv, err := kem.NewPrivateKey(id.priv[:])
	if err != nil {
		return nil, fmt.Errorf("envelope: private key: %w", err)
	}
	header, enc, ct := sk.Blob[:1], sk.Blob[1:33], sk.Blob[33:]
	recipient, err := hpke.NewRecipient(enc, priv, kdf, aead, dataKeyInfo(user, sk.ID))
	if err != nil {
		// A modified encapsulated key may be a low-order point; it is as
		// unauthentic as any other modified byte.
		return nil, fmt.Errorf("%w: data key %s: %w", ErrAuth, sk.ID, err)
	}
	plain, err := recipient.Open(header, ct)
	if err != nil {
		return nil, fmt.Errorf("%w: data key %s", ErrAuth, sk.ID)
	}
	defer clear(plain)
	dk := &DataKey{id: sk.ID}
	copy(dk.key[:], plain)
	return dk, nil
}

// dataKeyInfo is the HPKE info of a sealed data key: it binds the owner and
// the key id, so a sealed key moved to another account or filed under
// another id fails to open. The recipient's public key is bound by HPKE
// itself.
func dataKeyInfo(user string, id uuid.UUID) []byte {
	return bind(nil, labelDataKey, []byte(user), id[:])
}
