package envelope_test

import (
	"crypto/rand"
	"testing"

	"github.com/google/uuid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/domain/envelope"
)

// A typical chat message with its archive metadata is about 300 bytes.
const benchMessageSize = 300

func BenchmarkSeal300(b *testing.B) {
	dk := newDataKey(b, 1)
	aad := archiveAAD()
	msg := make([]byte, benchMessageSize)
	b.SetBytes(benchMessageSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := envelope.Seal(rand.Reader, dk, aad, msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen300(b *testing.B) {
	dk := newDataKey(b, 1)
	aad := archiveAAD()
	sealed, err := envelope.Seal(rand.Reader, dk, aad, make([]byte, benchMessageSize))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchMessageSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := envelope.Open(dk, aad, sealed); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealDataKey(b *testing.B) {
	_, pub := newIdentity(b, 1)
	dk := newDataKey(b, 2)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := envelope.SealDataKey(pub, alice, dk); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenDataKey(b *testing.B) {
	id, pub := newIdentity(b, 1)
	sealed, err := envelope.SealDataKey(pub, alice, newDataKey(b, 2))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := id.OpenDataKey(alice, sealed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnwrap measures HKDF and the AEAD only; deriving ClientKey
// (PBKDF2) is the SCRAM exchange's cost, paid whether or not the archive
// is encrypted.
func BenchmarkUnwrap(b *testing.B) {
	id, _ := newIdentity(b, 1)
	ck := clientKey(b, domain.HashSHA256, "pw")
	w, err := envelope.Wrap(rand.Reader, id, alice, domain.HashSHA256, ck)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := envelope.Unwrap(w, alice, ck); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBlindIndex(b *testing.B) {
	id, _ := newIdentity(b, 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := id.BlindIndex(bob); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewDataKey(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := envelope.NewDataKey(rand.Reader, uuid.Must(uuid.NewV7())); err != nil {
			b.Fatal(err)
		}
	}
}
