package envelope_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/uuid"

	"verlauf.im/verlauf/domain/envelope"
)

func TestSealDataKeyRoundTrip(t *testing.T) {
	id, pub := newIdentity(t, 1)
	dk := newDataKey(t, 2)
	sealed, err := envelope.SealDataKey(pub, alice, dk)
	if err != nil {
		t.Fatal(err)
	}
	if sealed.ID != dk.ID() {
		t.Fatalf("sealed id %s, want %s", sealed.ID, dk.ID())
	}
	b, err := json.Marshal(sealed)
	if err != nil {
		t.Fatal(err)
	}
	var stored envelope.SealedDataKey
	if err := json.Unmarshal(b, &stored); err != nil {
		t.Fatal(err)
	}
	opened, err := id.OpenDataKey(alice, stored)
	if err != nil {
		t.Fatal(err)
	}
	checkSameDataKey(t, dk, opened)

	again, err := envelope.SealDataKey(pub, alice, dk)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(again.Blob, sealed.Blob) {
		t.Fatal("sealing twice gave the same blob: the ephemeral key is not fresh")
	}
}

func TestOpenDataKeyRefusesWrongContext(t *testing.T) {
	id, pub := newIdentity(t, 1)
	stranger, _ := newIdentity(t, 2)
	dk := newDataKey(t, 3)
	sealed, err := envelope.SealDataKey(pub, alice, dk)
	if err != nil {
		t.Fatal(err)
	}
	refiled := sealed
	refiled.ID = uuid.Must(uuid.NewV7())
	noID := sealed
	noID.ID = uuid.Nil

	tests := []struct {
		name   string
		id     *envelope.Identity
		user   string
		sealed envelope.SealedDataKey
		want   error
	}{
		{"other identity", stranger, alice, sealed, envelope.ErrAuth},
		{"other user", id, bob, sealed, envelope.ErrAuth},
		{"filed under another id", id, alice, refiled, envelope.ErrAuth},
		{"no id", id, alice, noID, envelope.ErrCorrupt},
		{"full JID", id, alice + "/x", sealed, envelope.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.id.OpenDataKey(tt.user, tt.sealed); !errors.Is(err, tt.want) {
				t.Fatalf("OpenDataKey error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestOpenDataKeyEveryFlipFails(t *testing.T) {
	id, pub := newIdentity(t, 1)
	sealed, err := envelope.SealDataKey(pub, alice, newDataKey(t, 2))
	if err != nil {
		t.Fatal(err)
	}
	for i, blob := range flips(sealed.Blob) {
		if _, err := id.OpenDataKey(alice, envelope.SealedDataKey{ID: sealed.ID, Blob: blob}); !isTyped(err) {
			t.Fatalf("flip %d: error %v, want ErrCorrupt or ErrAuth", i, err)
		}
	}
	for i, raw := range flips(sealed.ID[:]) {
		if _, err := id.OpenDataKey(alice, envelope.SealedDataKey{ID: uuid.UUID(raw), Blob: sealed.Blob}); !isTyped(err) {
			t.Fatalf("id flip %d: error %v, want ErrCorrupt or ErrAuth", i, err)
		}
	}
}

func TestOpenDataKeyMalformed(t *testing.T) {
	id, pub := newIdentity(t, 1)
	sealed, err := envelope.SealDataKey(pub, alice, newDataKey(t, 2))
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(sealed.Blob) {
		if _, err := id.OpenDataKey(alice, envelope.SealedDataKey{ID: sealed.ID, Blob: sealed.Blob[:n]}); !errors.Is(err, envelope.ErrCorrupt) {
			t.Fatalf("truncated to %d: error %v, want ErrCorrupt", n, err)
		}
	}
	v9 := bytes.Clone(sealed.Blob)
	v9[0] = 9
	if _, err := id.OpenDataKey(alice, envelope.SealedDataKey{ID: sealed.ID, Blob: v9}); !errors.Is(err, envelope.ErrUnknownVersion) {
		t.Fatalf("version 9: error %v, want ErrUnknownVersion", err)
	}
}

func TestSealDataKeyRefusesBadArguments(t *testing.T) {
	_, pub := newIdentity(t, 1)
	wiped := newDataKey(t, 2)
	wiped.Wipe()
	tests := []struct {
		name string
		pub  envelope.PublicKey
		user string
		dk   *envelope.DataKey
		want error
	}{
		{"nil data key", pub, alice, nil, envelope.ErrInvalid},
		{"wiped data key", pub, alice, wiped, envelope.ErrWiped},
		{"empty user", pub, "", newDataKey(t, 3), envelope.ErrInvalid},
		// The all-zero point has low order: any shared secret with it is
		// zero, so sealing to it would protect nothing.
		{"low-order public key", envelope.PublicKey{}, alice, newDataKey(t, 4), envelope.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := envelope.SealDataKey(tt.pub, tt.user, tt.dk); !errors.Is(err, tt.want) {
				t.Fatalf("SealDataKey error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestNewDataKeyRefusesNilID(t *testing.T) {
	if _, err := envelope.NewDataKey(testRand(1), uuid.Nil); !errors.Is(err, envelope.ErrInvalid) {
		t.Fatalf("NewDataKey(nil id): %v, want ErrInvalid", err)
	}
	if _, err := envelope.NewDataKey(bytes.NewReader(make([]byte, 31)), uuid.Must(uuid.NewV7())); err == nil {
		t.Fatal("NewDataKey with 31 random bytes succeeded")
	}
}
