package envelope_test

import (
	"testing"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/domain/envelope"
)

// The blobs come from disk, not the network, but a damaged disk is as
// inventive as an attacker: no input may panic, and every failure must be
// one a reader can act on. The seed corpus runs with go test; run
// `go test -fuzz=FuzzOpenBlobs ./domain/envelope` to explore further.
func FuzzOpenBlobs(f *testing.F) {
	id, pub := newIdentity(f, 1)
	ck := clientKey(f, domain.HashSHA1, "pw")
	w, err := envelope.Wrap(testRand(2), id, alice, domain.HashSHA1, ck)
	if err != nil {
		f.Fatal(err)
	}
	dk := newDataKey(f, 3)
	sdk, err := envelope.SealDataKey(pub, alice, dk)
	if err != nil {
		f.Fatal(err)
	}
	aad := archiveAAD()
	rec, err := envelope.Seal(testRand(4), dk, aad, []byte("hello"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(w.Blob, sdk.Blob, rec)
	f.Add([]byte{}, []byte{1}, []byte{1, 2, 3})

	f.Fuzz(func(t *testing.T, wrapped, sealedKey, record []byte) {
		if _, err := envelope.Unwrap(envelope.WrappedIdentity{Hash: w.Hash, Salt: w.Salt, Blob: wrapped}, alice, ck); err != nil && !isTyped(err) {
			t.Fatalf("Unwrap: untyped error %v", err)
		}
		if _, err := id.OpenDataKey(alice, envelope.SealedDataKey{ID: sdk.ID, Blob: sealedKey}); err != nil && !isTyped(err) {
			t.Fatalf("OpenDataKey: untyped error %v", err)
		}
		if _, err := envelope.Open(dk, aad, record); err != nil && !isTyped(err) {
			t.Fatalf("Open: untyped error %v", err)
		}
		if _, err := envelope.RecordKeyID(record); err != nil && !isTyped(err) {
			t.Fatalf("RecordKeyID: untyped error %v", err)
		}
	})
}
