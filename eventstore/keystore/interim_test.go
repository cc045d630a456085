package keystore

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"verlauf.im/verlauf/domain/envelope"
)

func TestInterimLifecycle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	alice := newFixture(t, "alice@example.org", 1)
	in := Interim{
		Keys:       map[string][]byte{"SHA-1": randomBytes(t, 20), "SHA-256": randomBytes(t, 32)},
		StoredKeys: map[string][]byte{"SHA-1": randomBytes(t, 20), "SHA-256": randomBytes(t, 32)},
	}
	if _, ok, err := s.Interim(ctx, alice.user); err != nil || ok {
		t.Fatalf("interim before any: %v %v", ok, err)
	}
	if err := s.PutInterimIdentity(ctx, alice.user, alice.pub, alice.wraps, in); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Interim(ctx, alice.user)
	if err != nil || !ok {
		t.Fatalf("interim: %v %v", ok, err)
	}
	for _, h := range []string{"SHA-1", "SHA-256"} {
		if !bytes.Equal(got.Keys[h], in.Keys[h]) || !bytes.Equal(got.StoredKeys[h], in.StoredKeys[h]) {
			t.Fatalf("%s: round trip differs", h)
		}
	}

	// One hash resealed: its wrap is replaced, the other hash's interim
	// key stays.
	newWrap := envelope.WrappedIdentity{Hash: "SHA-256", Salt: randomBytes(t, 32), Blob: randomBytes(t, 105)}
	rest := Interim{Keys: map[string][]byte{"SHA-1": in.Keys["SHA-1"]}, StoredKeys: map[string][]byte{"SHA-1": in.StoredKeys["SHA-1"]}}
	if err := s.Reseal(ctx, alice.user, []envelope.WrappedIdentity{newWrap}, rest); err != nil {
		t.Fatal(err)
	}
	if w, _, _ := s.WrappedIdentity(ctx, alice.user, "SHA-256"); !bytes.Equal(w.Blob, newWrap.Blob) {
		t.Fatal("SHA-256 wrap not replaced")
	}
	if w, _, _ := s.WrappedIdentity(ctx, alice.user, "SHA-1"); !bytes.Equal(w.Blob, alice.wraps[0].Blob) {
		t.Fatal("SHA-1 wrap changed")
	}
	got, ok, _ = s.Interim(ctx, alice.user)
	if !ok || len(got.Keys) != 1 || got.Keys["SHA-1"] == nil {
		t.Fatalf("interim after a partial reseal: %v %v", ok, got.Keys)
	}
	// The last one: the record is gone, and so are its bytes.
	if err := s.Reseal(ctx, alice.user, nil, Interim{}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Interim(ctx, alice.user); err != nil || ok {
		t.Fatalf("interim after the last reseal: %v %v", ok, err)
	}
	s.Close()
	secrets := [][]byte{in.Keys["SHA-1"], in.Keys["SHA-256"], alice.wraps[1].Blob}
	if found := scanDir(t, dir, secrets); len(found) > 0 {
		t.Fatalf("interim keys or the replaced wrap still in %v", found)
	}
}

// A password change (PutIdentity with the user's own wraps) ends the
// interim keys too.
func TestPutIdentityEndsInterim(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	defer s.Close()
	alice := newFixture(t, "alice@example.org", 0)
	in := Interim{Keys: map[string][]byte{"SHA-1": randomBytes(t, 20)}, StoredKeys: map[string][]byte{"SHA-1": randomBytes(t, 20)}}
	if err := s.PutInterimIdentity(ctx, alice.user, alice.pub, alice.wraps, in); err != nil {
		t.Fatal(err)
	}
	if err := s.PutIdentity(ctx, alice.user, alice.pub, alice.wraps); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Interim(ctx, alice.user); err != nil || ok {
		t.Fatalf("interim after PutIdentity: %v %v", ok, err)
	}
	if err := s.PutInterimIdentity(ctx, alice.user, alice.pub, alice.wraps, Interim{}); err == nil {
		t.Fatal("interim identity without keys accepted")
	}
}

func TestDecodeInterimRefusesDamage(t *testing.T) {
	good, err := encodeInterim(Interim{Keys: map[string][]byte{"SHA-1": {1, 2}}, StoredKeys: map[string][]byte{"SHA-1": {3}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{nil, {2, 0}, good[:len(good)-1], append(append([]byte(nil), good...), 0)} {
		if _, err := decodeInterim(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("decode %x: %v, want ErrCorrupt", bad, err)
		}
	}
}
