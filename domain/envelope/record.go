package envelope

import (
	"fmt"
	"io"

	"github.com/google/uuid"
	"golang.org/x/crypto/chacha20poly1305"
)

// Kind names what a sealed record is. It is bound into the record's
// additional data, so an archive record cannot be replayed as an offline
// message or the other way round.
type Kind string

// The record kinds of the archive (issue 4). Use separate data keys for
// each, so that shredding the offline queue's key after delivery leaves
// the history alone.
const (
	KindArchive Kind = "archive"
	KindOffline Kind = "offline"
)

// AAD is the context a record is sealed in. It is not stored in the
// record: the reader supplies it from where it found the record, and a
// record moved to another user, kind or id fails to open.
type AAD struct {
	// User is the owner's bare JID.
	User string
	// Kind is the kind of record.
	Kind Kind
	// RecordID is the record's id: the archive id (the <stanza-id>) of an
	// archived message, the event id of an offline one.
	RecordID uuid.UUID
}

func (a AAD) check() error {
	if err := checkBareJID("user", a.User); err != nil {
		return err
	}
	if a.Kind == "" {
		return fmt.Errorf("%w: empty record kind", ErrInvalid)
	}
	if a.RecordID == uuid.Nil {
		return fmt.Errorf("%w: nil record id", ErrInvalid)
	}
	return nil
}

// recordHeaderSize is version(1) ‖ key id(16) ‖ nonce(24).
const recordHeaderSize = 1 + uuidSize + nonceSize

// Overhead is how many bytes Seal adds to a plaintext.
const Overhead = recordHeaderSize + tagSize

// Seal encrypts plaintext under dk with XChaCha20-Poly1305 and a random
// 24-byte nonce from rand (pass crypto/rand.Reader). The result is
// version(1) ‖ key id(16) ‖ nonce(24) ‖ ciphertext ‖ tag(16); the header
// and aad are authenticated. Random nonces of 192 bits cannot collide in
// practice, so the number of records per key is limited by policy
// (RotationPolicy), not by the cipher.
func Seal(rand io.Reader, dk *DataKey, aad AAD, plaintext []byte) ([]byte, error) {
	if dk == nil {
		return nil, fmt.Errorf("%w: nil data key", ErrInvalid)
	}
	if dk.wiped {
		return nil, ErrWiped
	}
	if err := aad.check(); err != nil {
		return nil, err
	}
	out := make([]byte, recordHeaderSize, recordHeaderSize+len(plaintext)+tagSize)
	out[0] = sealedRecordV1
	copy(out[1:], dk.id[:])
	nonce := out[1+uuidSize : recordHeaderSize]
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return nil, fmt.Errorf("envelope: read nonce: %w", err)
	}
	c, err := chacha20poly1305.NewX(dk.key[:])
	if err != nil {
		return nil, fmt.Errorf("envelope: record cipher: %w", err)
	}
	return c.Seal(out, nonce, plaintext, recordAAD(out[:recordHeaderSize], aad)), nil
}

// Open decrypts a record sealed by Seal. A record that was modified, moved
// to another context (aad) or sealed under another key gives ErrAuth; a
// malformed one gives ErrCorrupt. Either concerns this record only.
func Open(dk *DataKey, aad AAD, sealed []byte) ([]byte, error) {
	if dk == nil {
		return nil, fmt.Errorf("%w: nil data key", ErrInvalid)
	}
	if dk.wiped {
		return nil, ErrWiped
	}
	if err := aad.check(); err != nil {
		return nil, err
	}
	keyID, err := RecordKeyID(sealed)
	if err != nil {
		return nil, err
	}
	if keyID != dk.id {
		return nil, fmt.Errorf("%w: record sealed under key %s, not %s", ErrAuth, keyID, dk.id)
	}
	c, err := chacha20poly1305.NewX(dk.key[:])
	if err != nil {
		return nil, fmt.Errorf("envelope: record cipher: %w", err)
	}
	nonce := sealed[1+uuidSize : recordHeaderSize]
	plain, err := c.Open(nil, nonce, sealed[recordHeaderSize:], recordAAD(sealed[:recordHeaderSize], aad))
	if err != nil {
		return nil, fmt.Errorf("%w: record %s", ErrAuth, aad.RecordID)
	}
	return plain, nil
}

// RecordKeyID returns the id of the data key a record was sealed under, so
// the reader knows which key to fetch from the key store. The id is in
// clear; it is authenticated only when the record is opened.
func RecordKeyID(sealed []byte) (uuid.UUID, error) {
	if err := checkVersion("sealed record", sealed, sealedRecordV1, -1); err != nil {
		return uuid.Nil, err
	}
	if len(sealed) < recordHeaderSize+tagSize {
		return uuid.Nil, fmt.Errorf("%w: sealed record of %d bytes, want at least %d", ErrCorrupt, len(sealed), recordHeaderSize+tagSize)
	}
	return uuid.UUID(sealed[1 : 1+uuidSize]), nil
}

// recordAAD is the header (version, key id, nonce) followed by the bound
// context. The key id is bound twice over (header and key), which costs
// nothing and keeps the header honest.
func recordAAD(header []byte, a AAD) []byte {
	return bind(append([]byte(nil), header...), labelRecordAAD, []byte(a.User), []byte(a.Kind), a.RecordID[:])
}
