package envelope_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/uuid"

	"verlauf.im/verlauf/domain/envelope"
)

func archiveAAD() envelope.AAD {
	return envelope.AAD{User: alice, Kind: envelope.KindArchive, RecordID: uuid.MustParse("01900000-0000-7000-8000-000000000001")}
}

func TestSealOpenRoundTrip(t *testing.T) {
	dk := newDataKey(t, 1)
	for _, plain := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("hello "), 1000)} {
		sealed, err := envelope.Seal(testRand(2), dk, archiveAAD(), plain)
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) != len(plain)+envelope.Overhead {
			t.Fatalf("sealed %d bytes into %d, want overhead %d", len(plain), len(sealed), envelope.Overhead)
		}
		keyID, err := envelope.RecordKeyID(sealed)
		if err != nil || keyID != dk.ID() {
			t.Fatalf("RecordKeyID = %s, %v; want %s", keyID, err, dk.ID())
		}
		got, err := envelope.Open(dk, archiveAAD(), sealed)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, plain) {
			t.Fatalf("Open = %q, want %q", got, plain)
		}
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	dk := newDataKey(t, 1)
	r := testRand(2)
	a, err := envelope.Seal(r, dk, archiveAAD(), []byte("same"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := envelope.Seal(r, dk, archiveAAD(), []byte("same"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, b) {
		t.Fatal("two seals of one plaintext are identical")
	}
}

func TestOpenRefusesWrongContext(t *testing.T) {
	dk := newDataKey(t, 1)
	sealed, err := envelope.Seal(testRand(2), dk, archiveAAD(), []byte("hi bob"))
	if err != nil {
		t.Fatal(err)
	}
	otherUser := archiveAAD()
	otherUser.User = bob
	otherKind := archiveAAD()
	otherKind.Kind = envelope.KindOffline
	otherID := archiveAAD()
	otherID.RecordID = uuid.MustParse("01900000-0000-7000-8000-000000000002")

	tests := []struct {
		name string
		dk   *envelope.DataKey
		aad  envelope.AAD
	}{
		{"other user", dk, otherUser},
		{"other kind", dk, otherKind},
		{"other record id", dk, otherID},
		{"other data key", newDataKey(t, 3), archiveAAD()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := envelope.Open(tt.dk, tt.aad, sealed); !errors.Is(err, envelope.ErrAuth) {
				t.Fatalf("Open = %q, %v; want ErrAuth", got, err)
			}
		})
	}
}

// A data key filed under the record's key id but holding other key bytes
// (a swapped key-store entry) must not open the record either.
func TestOpenRefusesSwappedKeyWithSameID(t *testing.T) {
	dk := newDataKey(t, 1)
	sealed, err := envelope.Seal(testRand(2), dk, archiveAAD(), []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	impostor, err := envelope.NewDataKey(testRand(3), dk.ID())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := envelope.Open(impostor, archiveAAD(), sealed); !errors.Is(err, envelope.ErrAuth) {
		t.Fatalf("Open with a same-id impostor key: %v, want ErrAuth", err)
	}
}

func TestOpenEveryFlipFails(t *testing.T) {
	dk := newDataKey(t, 1)
	sealed, err := envelope.Seal(testRand(2), dk, archiveAAD(), bytes.Repeat([]byte("m"), 300))
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range flips(sealed) {
		if got, err := envelope.Open(dk, archiveAAD(), c); !isTyped(err) {
			t.Fatalf("flip %d: Open = %q, %v; want ErrCorrupt or ErrAuth", i, got, err)
		}
	}
}

func TestOpenMalformed(t *testing.T) {
	dk := newDataKey(t, 1)
	sealed, err := envelope.Seal(testRand(2), dk, archiveAAD(), []byte("short"))
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(sealed) {
		if _, err := envelope.Open(dk, archiveAAD(), sealed[:n]); !isTyped(err) {
			t.Fatalf("truncated to %d: error %v, want ErrCorrupt or ErrAuth", n, err)
		}
	}
	for n := range envelope.Overhead {
		if _, err := envelope.RecordKeyID(sealed[:n]); !errors.Is(err, envelope.ErrCorrupt) {
			t.Fatalf("RecordKeyID of %d bytes: %v, want ErrCorrupt", n, err)
		}
	}
	v0 := bytes.Clone(sealed)
	v0[0] = 0
	if _, err := envelope.Open(dk, archiveAAD(), v0); !errors.Is(err, envelope.ErrUnknownVersion) {
		t.Fatalf("version 0: %v, want ErrUnknownVersion", err)
	}
}

func TestSealRefusesBadArguments(t *testing.T) {
	dk := newDataKey(t, 1)
	wiped := newDataKey(t, 2)
	wiped.Wipe()
	tests := []struct {
		name string
		dk   *envelope.DataKey
		aad  envelope.AAD
		want error
	}{
		{"nil key", nil, archiveAAD(), envelope.ErrInvalid},
		{"wiped key", wiped, archiveAAD(), envelope.ErrWiped},
		{"empty user", dk, envelope.AAD{Kind: envelope.KindArchive, RecordID: archiveAAD().RecordID}, envelope.ErrInvalid},
		{"full JID", dk, envelope.AAD{User: alice + "/r", Kind: envelope.KindArchive, RecordID: archiveAAD().RecordID}, envelope.ErrInvalid},
		{"empty kind", dk, envelope.AAD{User: alice, RecordID: archiveAAD().RecordID}, envelope.ErrInvalid},
		{"nil record id", dk, envelope.AAD{User: alice, Kind: envelope.KindArchive}, envelope.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := envelope.Seal(testRand(3), tt.dk, tt.aad, []byte("x")); !errors.Is(err, tt.want) {
				t.Fatalf("Seal error %v, want %v", err, tt.want)
			}
			if _, err := envelope.Open(tt.dk, tt.aad, make([]byte, envelope.Overhead)); !errors.Is(err, tt.want) {
				t.Fatalf("Open error %v, want %v", err, tt.want)
			}
		})
	}
}
