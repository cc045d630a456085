package envelope

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/google/uuid"
)

func TestWipeZeroesKeys(t *testing.T) {
	id, _, err := NewIdentity(rand.NewChaCha8([32]byte{1}))
	if err != nil {
		t.Fatal(err)
	}
	dk, err := NewDataKey(rand.NewChaCha8([32]byte{2}), uuid.Must(uuid.NewV7()))
	if err != nil {
		t.Fatal(err)
	}
	if id.priv == [keySize]byte{} || id.index == [keySize]byte{} || dk.key == [keySize]byte{} {
		t.Fatal("fresh keys are zero")
	}
	id.Wipe()
	dk.Wipe()
	if id.priv != [keySize]byte{} || id.index != [keySize]byte{} {
		t.Error("Identity.Wipe left key bytes")
	}
	if dk.key != [keySize]byte{} {
		t.Error("DataKey.Wipe left key bytes")
	}
	if _, err := id.OpenDataKey("a@b", SealedDataKey{ID: dk.ID(), Blob: []byte{1}}); !errors.Is(err, ErrWiped) {
		t.Errorf("OpenDataKey after Wipe: %v, want ErrWiped", err)
	}
}
