package envelope_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/google/uuid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/domain/envelope"
)

const (
	alice = "alice@example.org"
	bob   = "bob@example.net"
)

// testRand is a deterministic reader, so a failing test fails the same way
// twice. Each test gets its own seed.
func testRand(seed uint64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	return rand.NewChaCha8(s)
}

// clientKey derives the SCRAM ClientKey of password the way the server
// does under PLAIN, with domain's own functions.
func clientKey(t testing.TB, hash, password string) []byte {
	t.Helper()
	salt := bytes.Repeat([]byte{0x5a}, domain.DefaultSaltLen)
	sp, err := domain.SaltedPassword(hash, password, salt, domain.MinSCRAMIterations)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := domain.ClientKey(hash, sp)
	if err != nil {
		t.Fatal(err)
	}
	return ck
}

func newIdentity(t testing.TB, seed uint64) (*envelope.Identity, envelope.PublicKey) {
	t.Helper()
	id, pub, err := envelope.NewIdentity(testRand(seed))
	if err != nil {
		t.Fatal(err)
	}
	return id, pub
}

func newDataKey(t testing.TB, seed uint64) *envelope.DataKey {
	t.Helper()
	dk, err := envelope.NewDataKey(testRand(seed), uuid.Must(uuid.NewV7()))
	if err != nil {
		t.Fatal(err)
	}
	return dk
}

// isTyped reports whether err is one of the errors a reader of the archive
// can act on: a corrupt or an unauthentic blob.
func isTyped(err error) bool {
	return errors.Is(err, envelope.ErrCorrupt) || errors.Is(err, envelope.ErrAuth)
}

// flips returns a copy of b for every position and for two masks (low bit,
// whole byte), each with that one byte changed.
func flips(b []byte) [][]byte {
	var out [][]byte
	for i := range b {
		for _, mask := range []byte{0x01, 0xff} {
			c := bytes.Clone(b)
			c[i] ^= mask
			out = append(out, c)
		}
	}
	return out
}
