package envelope

import (
	"encoding/binary"
	"fmt"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// Version 1 of each stored format. The version is the first byte of every
// blob and is covered by the blob's authentication, so a later format can
// live beside v1: readers dispatch on the byte and refuse one they do not
// know (ErrUnknownVersion) rather than guess.
const (
	wrappedIdentityV1 byte = 1
	sealedDataKeyV1   byte = 1
	sealedRecordV1    byte = 1
)

// Domain-separation labels. Each derivation and each AEAD in the package
// has its own label, so a key or ciphertext made for one purpose is never
// accepted for another, even if every other input matched.
const (
	labelKEK          = "verlauf kek v1"
	labelWrapAAD      = "verlauf wrapped identity v1"
	labelDataKey      = "verlauf data key v1"
	labelRecordAAD    = "verlauf record v1"
	labelBlindIndex   = "verlauf blind index v1"
	keySize           = 32
	saltSize          = 32
	nonceSize         = chacha20poly1305.NonceSizeX
	tagSize           = chacha20poly1305.Overhead
	uuidSize          = 16
	identityPlainSize = 2 * keySize // private key, then index key
)

// bind encodes a label and context fields as one unambiguous byte string,
// appended to dst: each part is preceded by its length as 4 big-endian
// bytes, so no two different tuples encode alike ("ab","c" and "a","bc"
// differ). It feeds HKDF info, HPKE info and AEAD additional data.
func bind(dst []byte, label string, fields ...[]byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(label)))
	dst = append(dst, label...)
	for _, f := range fields {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(f)))
		dst = append(dst, f...)
	}
	return dst
}

// checkBareJID rejects what cannot be a bare JID. The package does not
// parse JIDs (callers pass the canonical string of a parsed bare JID, the
// same at seal and open time); it only catches the two mistakes that would
// make data unreadable later: an empty string and a full JID whose
// resource would differ between sessions.
func checkBareJID(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty %s", ErrInvalid, what)
	case strings.Contains(s, "/"):
		return fmt.Errorf("%w: %s %q is a full JID, want the bare JID", ErrInvalid, what, s)
	}
	return nil
}

// checkVersion validates the version byte and the exact length of a v1
// blob. Version comes first so that a future, longer format is reported as
// an unknown version, not as a wrong length.
func checkVersion(what string, blob []byte, version byte, size int) error {
	if len(blob) == 0 {
		return fmt.Errorf("%w: empty %s", ErrCorrupt, what)
	}
	if blob[0] != version {
		return fmt.Errorf("%w: %w: %s version %d", ErrCorrupt, ErrUnknownVersion, what, blob[0])
	}
	if size >= 0 && len(blob) != size {
		return fmt.Errorf("%w: %s of %d bytes, want %d", ErrCorrupt, what, len(blob), size)
	}
	return nil
}
